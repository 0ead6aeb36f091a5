import { randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { Database, Unlisten } from "../db/client.js";
import type { HttpSender } from "../delivery/http-sender.js";
import type { AttemptResult } from "../delivery/outcome.js";
import { signatureHeaders } from "../delivery/signing.js";
import {
  claimDue,
  recordAttempts,
  releaseClaims,
  urlAuthority,
  type AttemptRecord,
  type ClaimedDelivery,
} from "./claim-sql.js";
import { OUTBOX_CHANNEL } from "./enqueue.js";
import { decideAttempt, interruptedRecord, noSecretResult } from "./attempt-record.js";

export interface WorkerOptions {
  database: Database;
  sender: HttpSender;
  logger: Logger;
  workerId?: string;
  /** Attempts in flight at once in this process. */
  concurrency: number;
  /** Attempts in flight at once to one destination (scheme://HOST:PORT) in this process. */
  hostConcurrency: number;
  /** Most deliveries claimed per round trip. */
  batchSize: number;
  /**
   * Deliveries claimed ahead of free slots, held in memory, so a slot that frees starts the next
   * attempt at once instead of waiting for a claim's round trip. One that waits longer than half the
   * lease margin is given back, so it never starts too late for its lease. 0 claims only for free slots.
   */
  prefetch?: number;
  /**
   * After a claim that emptied the queue, the next claim (and likewise the next write of results)
   * waits until this long after the previous one, so deliveries that arrive close together share a
   * round trip. A delivery arriving after a quiet spell is claimed at once. 0 turns this off.
   */
  batchWindowMs?: number;
  /** Fallback when no NOTIFY arrives. */
  pollIntervalMs: number;
  /** Added to each delivery's request timeout to form its lease. */
  leaseMarginMs: number;
  retryAfterCapMs: number;
  headerPrefix: string;
  /** How long stop() lets attempts in flight finish before aborting them. */
  shutdownGraceMs: number;
  /** Called once per recorded attempt; metrics hang here. */
  onAttempt?: (record: AttemptRecord) => void;
  /** Called after each claim with the number of deliveries claimed. */
  onClaim?: (count: number) => void;
}

/**
 * The claim loop: claim due deliveries into free slots, send each once, record results in batches.
 * Any number of these may run against one database; FOR UPDATE SKIP LOCKED keeps them apart.
 */
export class OutboxWorker {
  readonly workerId: string;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  /** Attempts sending now. */
  private inFlight = 0;
  /** Finished attempts whose results are not yet written (queued or being flushed). */
  private unrecorded = 0;
  /** Attempts in flight per destination. */
  private readonly perHost = new Map<string, number>();
  /** Claimed, not yet started (at most `prefetch` beyond the free slots), in claim order. */
  private readonly ready: ReadyDelivery[] = [];
  /** Set when prefetched deliveries waited too long; cleared when an attempt ends. */
  private prefetchPaused = false;
  /** Aborted when the shutdown grace runs out: every attempt still in flight listens to it. */
  private readonly shutdown = new AbortController();
  private wakeRequested = false;
  /** More may be due than the last claim took: a freed slot is then worth a claim. */
  private backlog = true;
  private readonly wakers = new Set<() => void>();
  /** Claims travelling now, and the most deliveries they may bring. */
  private claiming = 0;
  private reserved = 0;
  private unlisten: Unlisten | undefined;
  private readonly results: AttemptRecord[] = [];
  private flushing: Promise<void> | undefined;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private dbBackoffMs = 0;
  /** performance.now() when the last claim, and the last write of results, started. */
  private lastClaimAt = -Infinity;
  private lastFlushAt = -Infinity;
  private lastClaimFull = false;

  /** The smallest claim worth a round trip while attempts are in flight: a quarter of a batch. */
  private readonly minClaim: number;
  private readonly prefetch: number;
  /** How long a prefetched delivery may wait for a slot: its lease still covers a whole attempt. */
  private readonly readyWaitMs: number;

  constructor(private readonly options: WorkerOptions) {
    this.minClaim = Math.max(1, Math.floor(Math.min(options.batchSize, options.concurrency) / 4));
    this.readyWaitMs = Math.floor(options.leaseMarginMs / 2);
    this.prefetch = this.readyWaitMs > 0 ? (options.prefetch ?? 0) : 0;
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    setMaxListeners(0, this.shutdown.signal);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.unlisten = await this.options.database.listen(OUTBOX_CHANNEL, () => this.poke());
    // With a prefetch, a second loop may claim while the first one's claim travels (under a backlog;
    // with one process this is rare: README, Performance).
    const loops = this.prefetch > 0 ? 2 : 1;
    this.loopDone = Promise.all(Array.from({ length: loops }, () => this.loop())).then(() => undefined);
  }

  /**
   * Stops claiming; lets attempts in flight finish within the grace period, then aborts the rest
   * (recorded as interrupted and due again at once); waits for their records, then returns.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.poke();
    await this.loopDone;
    // Claimed but never started: back to the queue without spending an attempt.
    await this.release(this.ready.splice(0).map((entry) => entry.delivery.id));
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    await this.unlisten?.().catch(() => undefined);
    const graceEnds = Date.now() + this.options.shutdownGraceMs;
    while (this.inFlight > 0 && Date.now() < graceEnds) await this.sleep(20);
    this.shutdown.abort();
    // Records are written while the database answers; a lost one is recovered through its lease.
    const flushEnds = Date.now() + Math.max(this.options.shutdownGraceMs, 1_000);
    while ((this.inFlight > 0 || this.unrecorded > 0) && Date.now() < flushEnds) await this.sleep(20);
    if (this.inFlight + this.unrecorded > 0) {
      this.options.logger.warn(
        { unrecorded: this.inFlight + this.unrecorded },
        "stopped with unrecorded attempts; their leases will return them to the queue",
      );
    }
  }

  /** Something may be due: wake the loop now or as soon as it next waits. */
  poke(): void {
    this.backlog = true;
    this.wakeRequested = true;
    for (const wake of this.wakers) wake();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      // After a claim that emptied the queue, what arrives next gathers for the rest of the window.
      if (!this.lastClaimFull) await this.waitOutWindow(this.lastClaimAt);
      if (!this.running) break;
      this.startReady();
      const prefetch = this.prefetchPaused ? 0 : this.prefetch;
      const free = this.options.concurrency + prefetch - this.inFlight - this.ready.length - this.reserved;
      // Claim in batches, not one row per freed slot; backpressure while results cannot be written.
      // A second claim travels only under a backlog (the last claim came back full): in a steady
      // stream it would split the same few rows over two round trips.
      const crowded = this.claiming > 0 && !this.lastClaimFull;
      if (free < this.minClaim || crowded || this.unrecorded >= this.options.concurrency * 4) {
        await this.idle(this.ready.length > 0 ? Math.min(this.readyWaitMs, this.options.pollIntervalMs) : this.options.pollIntervalMs);
        continue;
      }
      const limit = Math.min(free, this.options.batchSize);
      const skippedHosts = this.saturatedHosts();
      let claimed: ClaimedDelivery[];
      // Cleared before the claim, so a NOTIFY that arrives during it still counts.
      this.backlog = false;
      this.lastClaimAt = performance.now();
      this.claiming++;
      this.reserved += limit;
      try {
        claimed = await claimDue(this.options.database, this.workerId, limit, this.options.leaseMarginMs, skippedHosts);
        this.dbBackoffMs = 0;
      } catch (error) {
        this.backlog = true;
        this.dbBackoffMs = Math.min(Math.max(this.dbBackoffMs * 2, 100), 5_000);
        this.options.logger.error({ err: error, retryInMs: this.dbBackoffMs }, "claim failed");
        await this.idle(this.dbBackoffMs);
        continue;
      } finally {
        this.claiming--;
        this.reserved -= limit;
      }
      this.options.onClaim?.(claimed.length);
      this.lastClaimFull = claimed.length === limit;
      const overCap = this.accept(claimed);
      this.startReady();
      // Due rows may remain: the claim was full, or left some destination's rows for a free slot of its own.
      if (this.lastClaimFull || skippedHosts.length > 0 || overCap.length > 0) this.backlog = true;
      if (overCap.length > 0) await this.release(overCap);
      if (claimed.length < limit) await this.idle(this.options.pollIntervalMs);
    }
  }

  /** Queues each claimed delivery whose destination has room to start; returns the ids of the others. */
  private accept(claimed: ClaimedDelivery[]): string[] {
    const overCap: string[] = [];
    const load = this.hostLoad();
    const claimedAt = performance.now();
    for (const delivery of claimed) {
      const host = urlAuthority(delivery.url);
      const held = load.get(host) ?? 0;
      // The cap counts deliveries waiting to start too: a slow destination never has more than its
      // cap claimed, so the rest of its queue stays pending with its attempts unspent.
      if (held >= this.options.hostConcurrency || !this.running) {
        overCap.push(delivery.id);
        continue;
      }
      load.set(host, held + 1);
      this.ready.push({ delivery, host, claimedAt });
    }
    return overCap;
  }

  /** Starts waiting deliveries into free slots, oldest first; gives back those that waited too long. */
  private startReady(): void {
    const stale: string[] = [];
    const now = performance.now();
    // Oldest first: when the head has not waited too long, nothing behind it has.
    while (this.ready.length > 0) {
      const head = this.ready[0]!;
      if (this.running && now - head.claimedAt <= this.readyWaitMs) {
        if (this.inFlight >= this.options.concurrency) break;
        this.ready.shift();
        this.begin(head);
      } else stale.push(this.ready.shift()!.delivery.id);
    }
    if (stale.length > 0) {
      // Every slot is held by slow attempts: claim only for free slots until one of them ends.
      this.prefetchPaused = true;
      this.backlog = true;
      void this.release(stale);
    }
  }

  private begin({ delivery, host }: ReadyDelivery): void {
    this.perHost.set(host, (this.perHost.get(host) ?? 0) + 1);
    this.inFlight++;
    // The slot frees as soon as the attempt ends; recording is batched behind it.
    void this.attempt(delivery)
      .then(
        (record) => this.queueRecord(record),
        (error: unknown) => {
          // Only a bug lands here; the lease returns the delivery to the queue.
          this.options.logger.error({ err: error, deliveryId: delivery.id }, "attempt crashed");
        },
      )
      .finally(() => {
        this.inFlight--;
        this.prefetchPaused = false;
        this.releaseHost(host);
        this.startReady();
        // A claim that came back short emptied the queue: until a NOTIFY says otherwise, a free slot has nothing to fetch.
        if (this.backlog) this.poke();
      });
  }

  /** Deliveries held per destination: in flight and waiting to start. */
  private hostLoad(): Map<string, number> {
    const load = new Map(this.perHost);
    for (const { host } of this.ready) load.set(host, (load.get(host) ?? 0) + 1);
    return load;
  }

  private releaseHost(host: string): void {
    const busy = (this.perHost.get(host) ?? 1) - 1;
    if (busy <= 0) this.perHost.delete(host);
    else this.perHost.set(host, busy);
  }

  private saturatedHosts(): string[] {
    return [...this.hostLoad()].filter(([, held]) => held >= this.options.hostConcurrency).map(([host]) => host);
  }

  /** Gives back claims this worker will not start, without spending their attempt. */
  private async release(deliveryIds: string[]): Promise<void> {
    try {
      await releaseClaims(this.options.database, this.workerId, deliveryIds);
    } catch (error) {
      this.options.logger.warn({ err: error, count: deliveryIds.length }, "release failed; the leases will expire");
    }
  }

  /** Waits for a poke or the timeout, whichever comes first. */
  private idle(timeoutMs: number): Promise<void> {
    if (this.wakeRequested) {
      this.wakeRequested = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        this.wakeRequested = false;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.wakers.add(done);
    });
  }

  /** Sleeps out the rest of the batch window begun at `since`. */
  private async waitOutWindow(since: number): Promise<void> {
    const remaining = since + (this.options.batchWindowMs ?? 0) - performance.now();
    if (remaining > 0) await this.sleep(remaining);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  private async attempt(delivery: ClaimedDelivery): Promise<AttemptRecord> {
    const result = await this.send(delivery, this.shutdown.signal);
    const record = this.shutdown.signal.aborted
      ? interruptedRecord(delivery, result)
      : decideAttempt(delivery, result, this.options.retryAfterCapMs);
    const level = record.outcome === "succeeded" ? "debug" : "info";
    // Checked first: on the hot path a disabled level should not even build its log object.
    if (this.options.logger.isLevelEnabled(level)) {
      this.options.logger[level](
        {
          deliveryId: delivery.id,
          attempt: record.attemptNumber,
          outcome: record.outcome,
          status: record.responseStatus,
          errorKind: record.errorKind,
          durationMs: record.durationMs,
        },
        "attempt finished",
      );
    }
    return record;
  }

  private send(delivery: ClaimedDelivery, signal: AbortSignal): Promise<AttemptResult> {
    const secrets = delivery.secrets ?? [];
    if (secrets.length === 0) return Promise.resolve(noSecretResult());
    return this.options.sender.send({
      url: delivery.url,
      body: delivery.body,
      headers: signatureHeaders({
        id: delivery.id,
        timestamp: Math.floor(Date.now() / 1000),
        body: delivery.body,
        secrets,
        attemptNumber: delivery.attempt_count,
        headerPrefix: this.options.headerPrefix,
      }),
      timeoutMs: delivery.timeout_ms,
      connectTimeoutMs: delivery.connect_timeout_ms,
      signal,
    });
  }

  private queueRecord(record: AttemptRecord): void {
    this.unrecorded++;
    this.results.push(record);
    if (!this.flushing) this.flushing = this.flush().finally(() => (this.flushing = undefined));
  }

  /** Writes every result gathered so far in one statement; results that arrive meanwhile form the next batch. */
  private async flush(): Promise<void> {
    let backoffMs = 50;
    while (this.results.length > 0) {
      // While running, results that finish close together share one write; on the way out, no waiting.
      if (this.running) await this.waitOutWindow(this.lastFlushAt);
      this.lastFlushAt = performance.now();
      const batch = this.results.splice(0, this.results.length);
      try {
        this.settled(batch, await recordAttempts(this.options.database, this.workerId, batch));
        backoffMs = 50;
      } catch (error) {
        if (isDataError(error)) {
          await this.recordOneByOne(batch);
          continue;
        }
        // The database is unreachable: keep the results and try again; the claim guard makes a late write harmless.
        this.results.unshift(...batch);
        this.options.logger.error({ err: error, pending: this.results.length, retryInMs: backoffMs }, "recording failed");
        await this.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 5_000);
      }
    }
  }

  /** One bad row must not block a batch: isolate it, log it, and let its lease bring it back. */
  private async recordOneByOne(batch: AttemptRecord[]): Promise<void> {
    for (const record of batch) {
      try {
        this.settled([record], await recordAttempts(this.options.database, this.workerId, [record]));
      } catch (error) {
        if (!isDataError(error)) {
          this.results.unshift(record);
          continue;
        }
        this.options.logger.error({ err: error, deliveryId: record.deliveryId }, "attempt could not be recorded");
        this.settled([record], []);
      }
    }
  }

  private settled(batch: AttemptRecord[], ownedIds: string[]): void {
    const owned = new Set(ownedIds);
    for (const record of batch) {
      if (!owned.has(record.deliveryId)) {
        this.options.logger.warn(
          { deliveryId: record.deliveryId, attempt: record.attemptNumber },
          "attempt result not recorded: the lease had expired and the delivery was claimed again",
        );
        continue;
      }
      this.options.onAttempt?.(record);
      if (record.deliveryStatus === "pending" && record.retryDelayMs !== null) this.wakeAt(record.retryDelayMs);
    }
    this.unrecorded -= batch.length;
  }

  /** A retry this worker scheduled is claimed on time without waiting for the next poll. */
  private wakeAt(delayMs: number): void {
    if (!this.running || delayMs >= this.options.pollIntervalMs) return;
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      this.poke();
    }, delayMs);
    this.retryTimers.add(timer);
  }
}

interface ReadyDelivery {
  delivery: ClaimedDelivery;
  host: string;
  /** performance.now() when its claim returned: its lease runs from about then. */
  claimedAt: number;
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity): the row is bad, retrying will not help. */
function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^2[23]/.test(code);
}
