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
  private readonly perHost = new Map<string, number>();
  /** Aborted when the shutdown grace runs out: every attempt still in flight listens to it. */
  private readonly shutdown = new AbortController();
  private wakeRequested = false;
  /** More may be due than the last claim took: a freed slot is then worth a claim. */
  private backlog = true;
  private wake: (() => void) | undefined;
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

  constructor(private readonly options: WorkerOptions) {
    this.minClaim = Math.max(1, Math.floor(Math.min(options.batchSize, options.concurrency) / 4));
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    setMaxListeners(0, this.shutdown.signal);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.unlisten = await this.options.database.listen(OUTBOX_CHANNEL, () => this.poke());
    this.loopDone = this.loop();
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
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      // After a claim that emptied the queue, what arrives next gathers for the rest of the window.
      if (!this.lastClaimFull) await this.waitOutWindow(this.lastClaimAt);
      if (!this.running) break;
      const free = this.options.concurrency - this.inFlight;
      // Claim in batches, not one row per freed slot; backpressure while results cannot be written.
      if (free < this.minClaim || this.unrecorded >= this.options.concurrency * 4) {
        await this.idle(this.options.pollIntervalMs);
        continue;
      }
      const limit = Math.min(free, this.options.batchSize);
      const skippedHosts = this.saturatedHosts();
      let claimed: ClaimedDelivery[];
      // Cleared before the claim, so a NOTIFY that arrives during it still counts.
      this.backlog = false;
      this.lastClaimAt = performance.now();
      try {
        claimed = await claimDue(this.options.database, this.workerId, limit, this.options.leaseMarginMs, skippedHosts);
        this.dbBackoffMs = 0;
      } catch (error) {
        this.backlog = true;
        this.dbBackoffMs = Math.min(Math.max(this.dbBackoffMs * 2, 100), 5_000);
        this.options.logger.error({ err: error, retryInMs: this.dbBackoffMs }, "claim failed");
        await this.idle(this.dbBackoffMs);
        continue;
      }
      this.options.onClaim?.(claimed.length);
      this.lastClaimFull = claimed.length === limit;
      const overCap = this.startAll(claimed);
      // Due rows may remain: the claim was full, or left some destination's rows for a free slot of its own.
      if (this.lastClaimFull || skippedHosts.length > 0 || overCap.length > 0) this.backlog = true;
      if (overCap.length > 0) await this.release(overCap);
      if (claimed.length < limit) await this.idle(this.options.pollIntervalMs);
    }
  }

  /** Starts each claimed delivery whose destination has room; returns the ids of the others. */
  private startAll(claimed: ClaimedDelivery[]): string[] {
    const overCap: string[] = [];
    for (const delivery of claimed) {
      const host = urlAuthority(delivery.url);
      const busy = this.perHost.get(host) ?? 0;
      if (busy >= this.options.hostConcurrency || !this.running) {
        overCap.push(delivery.id);
        continue;
      }
      this.perHost.set(host, busy + 1);
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
          this.releaseHost(host);
          // A claim that came back short emptied the queue: until a NOTIFY says otherwise, a free slot has nothing to fetch.
          if (this.backlog) this.poke();
        });
    }
    return overCap;
  }

  private releaseHost(host: string): void {
    const busy = (this.perHost.get(host) ?? 1) - 1;
    if (busy <= 0) this.perHost.delete(host);
    else this.perHost.set(host, busy);
  }

  private saturatedHosts(): string[] {
    return [...this.perHost].filter(([, busy]) => busy >= this.options.hostConcurrency).map(([host]) => host);
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
      const timer = setTimeout(done, timeoutMs);
      this.wake = done;
      function done() {
        clearTimeout(timer);
        resolve();
      }
    }).then(() => {
      this.wake = undefined;
      this.wakeRequested = false;
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

/** SQLSTATE classes 22 (data exception) and 23 (integrity): the row is bad, retrying will not help. */
function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^2[23]/.test(code);
}
