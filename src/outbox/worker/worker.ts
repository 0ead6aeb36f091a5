import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { Unlisten } from "../../db/client.js";
import type { AttemptResult } from "../../delivery/outcome.js";
import { signatureHeaders } from "../../delivery/signing.js";
import { decideAttempt, interruptedRecord, noSecretResult } from "../attempt-record.js";
import { OUTBOX_CHANNEL } from "../enqueue.js";
import { analyzeDeliveries } from "../sql/analyze.js";
import { claimDue, type Claim, type ClaimedDelivery } from "../sql/claim.js";
import type { AttemptRecord } from "../sql/record.js";
import { releaseClaims } from "../sql/release.js";
import { AnsweringDestinations } from "./answering.js";
import { CappedRoom } from "./capped-room.js";
import { Dispatcher } from "./dispatcher.js";
import { WORKER_DEFAULTS, type WorkerOptions, type WorkerSettings } from "./options.js";
import { ResultWriter } from "./result-writer.js";
import { TableStatistics } from "./table-statistics.js";
import { Wake } from "./wake.js";

export { WORKER_DEFAULTS, type WorkerOptions, type WorkerSettings } from "./options.js";

/**
 * The worker's life: created → running → stopping → stopped. While running, the claim loop takes due
 * deliveries into free slots (the dispatcher), each attempt is sent once, and the result writer
 * records results in batches. Any number of workers may run against one database; FOR UPDATE SKIP
 * LOCKED keeps them apart, and the per-destination cap is counted in SQL over all of them.
 */
type State = "created" | "running" | "stopping" | "stopped";

export class OutboxWorker {
  readonly workerId: string;
  readonly settings: WorkerSettings;
  private state: State = "created";
  private readonly dispatcher: Dispatcher;
  private readonly writer: ResultWriter;
  private readonly wake = new Wake();
  /**
   * Something may be due: a NOTIFY came, the last claim came back full, a retry of ours came due, a
   * capped destination got room, or the poll interval passed. Cleared as a claim starts.
   */
  private due = true;
  /** Destinations the last claim left at their cap: their attempts that end make room. */
  private readonly capped = new CappedRoom();
  /** Destinations that answer quickly: only these may hold more than `destinationConcurrency`. */
  private readonly answering: AnsweringDestinations;
  /** Whether the planner's picture of webhook_deliveries is current: the claim is named only then. */
  private readonly statistics = new TableStatistics();
  private analyzing: Promise<void> = Promise.resolve();
  private lastClaimAt = -Infinity;
  private lastClaimFull = false;
  private loopDone: Promise<void> = Promise.resolve();
  private unlisten: Unlisten | undefined;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  /** The smallest claim worth a round trip while attempts are in flight: a quarter of a batch. */
  private readonly minClaim: number;

  constructor(private readonly options: WorkerOptions) {
    const defined = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
    this.settings = { ...WORKER_DEFAULTS, ...(defined as Partial<WorkerSettings>) };
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.answering = new AnsweringDestinations(this.settings.destinationSlowAfterMs);
    this.minClaim = Math.max(1, Math.floor(Math.min(this.settings.batchSize, this.settings.concurrency) / 4));
    this.dispatcher = new Dispatcher({
      concurrency: this.settings.concurrency,
      attempt: (delivery, signal) => this.attempt(delivery, signal),
      // A free slot may be what the loop waits for; enough ended attempts to capped destinations
      // are room worth a claim.
      onFree: (destination) => {
        if (this.capped.ended(destination)) this.due = true;
        this.wake.wake();
      },
    });
    this.writer = new ResultWriter({
      query: options.database.query,
      workerId: this.workerId,
      logger: options.logger,
      windowMs: () => (this.inBacklog() ? 0 : this.settings.batchWindowMs),
      rules: {
        failureThreshold: this.settings.destinationFailureThreshold,
        cooldownMs: this.settings.destinationCooldownMs,
        disableAfterMs: this.settings.destinationDisableAfterMs,
      },
      onWritten: (record, owned) => this.written(record, owned),
      onRecorded: (recorded) => {
        for (const transition of recorded.transitions) {
          this.logger.info(transition, "destination state changed");
          this.options.onTransition?.(transition);
        }
      },
    });
  }

  private get logger(): Logger {
    return this.options.logger;
  }

  async start(): Promise<void> {
    if (this.state !== "created") return;
    this.state = "running";
    this.unlisten = await this.options.database.listen(OUTBOX_CHANNEL, () => this.poke());
    this.loopDone = this.loop();
  }

  /**
   * Stops claiming; lets attempts in flight finish within the grace period, then cuts the rest short
   * (recorded as interrupted, due again at once, their attempt unspent); waits for their records.
   */
  async stop(): Promise<void> {
    if (this.state !== "running") return;
    this.state = "stopping";
    this.wake.wake();
    await this.loopDone;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    await this.unlisten?.().catch(() => undefined);
    await this.dispatcher.idle(this.settings.shutdownGraceMs);
    this.dispatcher.abort();
    // Records are written while the database answers; a lost one is recovered through its lease.
    await this.dispatcher.idle(1_000);
    await this.writer.drain(Date.now() + Math.max(this.settings.shutdownGraceMs, 1_000));
    // An ANALYZE of ours (a sample of the table, seconds at most) ends before the pool does.
    await this.analyzing;
    const unrecorded = this.dispatcher.busy + this.writer.pending;
    if (unrecorded > 0) {
      this.logger.warn({ unrecorded }, "stopped with unrecorded attempts; their leases will return them to the queue");
    }
    this.state = "stopped";
  }

  /** Something may be due: claim now, or as soon as a slot is free. */
  poke(): void {
    this.due = true;
    this.wake.wake();
  }

  private async loop(): Promise<void> {
    let dbBackoffMs = 0;
    while (this.state === "running") {
      // Backpressure: no more claims while results cannot be written.
      const congested = this.writer.pending >= this.settings.concurrency * 4;
      if (!this.due || this.dispatcher.free < this.minClaim || congested) {
        // The poll: rows that came due by time, a lost NOTIFY, another worker's expired lease.
        if (await this.wake.wait(this.settings.pollIntervalMs)) this.due = true;
        continue;
      }
      // The window gathers work that trickles in; a backlog is claimed as fast as room frees.
      const window = this.inBacklog() ? 0 : this.lastClaimAt + this.settings.batchWindowMs - performance.now();
      if (window > 0) await sleep(window);
      if (this.state !== "running") break;

      const limit = Math.min(this.dispatcher.free, this.settings.batchSize);
      this.due = false;
      this.lastClaimAt = performance.now();
      let claim: Claim;
      try {
        claim = await claimDue(this.options.database.query, {
          workerId: this.workerId,
          limit,
          batchSize: this.settings.batchSize,
          leaseMarginMs: this.settings.leaseMarginMs,
          destinationConcurrency: this.settings.destinationConcurrency,
          slowAfterMs: this.settings.destinationSlowAfterMs,
          fastDestinationConcurrency: Math.max(this.settings.destinationConcurrency, Math.floor(this.settings.concurrency / 2)),
          fastDestinations: this.answering.list(),
          maxInterruptions: this.settings.maxInterruptions,
          ended: this.writer.pendingIds(),
          named: this.statistics.named,
        });
        dbBackoffMs = 0;
      } catch (error) {
        this.due = true;
        dbBackoffMs = Math.min(Math.max(dbBackoffMs * 2, 100), 5_000);
        this.logger.error({ err: error, retryInMs: dbBackoffMs }, "claim failed");
        await this.wake.wait(dbBackoffMs);
        continue;
      }
      if (this.statistics.observe(claim.table)) this.analyze(claim.table);
      const claimed = claim.deliveries;
      this.options.onClaim?.(claimed.length);
      if (this.state !== "running") {
        // Stopped while the claim travelled: back to the queue, attempts unspent.
        await this.release(claimed.map((delivery) => delivery.id));
        break;
      }
      for (const delivery of claimed) this.dispatcher.start(delivery);
      this.capped.reset(claim.capped, (destinations) => this.dispatcher.heldBy(destinations), this.minClaim, this.settings.destinationConcurrency);
      // A full claim leaves more behind.
      this.lastClaimFull = claimed.length === limit;
      if (this.lastClaimFull) this.due = true;
    }
  }

  /** More is due than the last claim could take: it came back full, or left a destination at its cap. */
  private inBacklog(): boolean {
    return this.lastClaimFull || this.capped.any;
  }

  /** New statistics for the table, beside the claim loop (which claims unnamed meanwhile). */
  private analyze(table: Claim["table"]): void {
    this.logger.info(table, "analyzing webhook_deliveries: it holds more than twice the rows its statistics describe");
    this.analyzing = analyzeDeliveries(this.options.database.query)
      .catch((error: unknown) => this.logger.warn({ err: error }, "analyze of webhook_deliveries failed; autovacuum will do it"))
      .finally(() => this.statistics.analyzeEnded());
  }

  private async release(deliveryIds: string[]): Promise<void> {
    try {
      await releaseClaims(this.options.database.query, this.workerId, deliveryIds);
    } catch (error) {
      this.logger.warn({ err: error, count: deliveryIds.length }, "release failed; the leases will expire");
    }
  }

  private async attempt(delivery: ClaimedDelivery, signal: AbortSignal): Promise<void> {
    let record: AttemptRecord;
    try {
      const result = await this.send(delivery, signal);
      this.answering.ended(delivery.destination, result.responseStatus !== null, result.durationMs);
      record = signal.aborted
        ? interruptedRecord(delivery, result, this.settings.maxInterruptions)
        : decideAttempt(delivery, result, this.settings.retryAfterCapMs);
    } catch (error) {
      // Only a bug lands here; the lease returns the delivery to the queue.
      this.logger.error({ err: error, deliveryId: delivery.id }, "attempt crashed");
      return;
    }
    const level = record.outcome === "succeeded" ? "debug" : "info";
    // Checked first: on the hot path a disabled level should not even build its log object.
    if (this.logger.isLevelEnabled(level)) {
      this.logger[level](
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
    this.writer.push(record);
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
        headerPrefix: this.settings.headerPrefix,
      }),
      timeoutMs: delivery.timeout_ms,
      connectTimeoutMs: delivery.connect_timeout_ms,
      signal,
    });
  }

  private written(record: AttemptRecord, owned: boolean): void {
    if (!owned) {
      this.logger.warn(
        { deliveryId: record.deliveryId, attempt: record.attemptNumber },
        "attempt result not recorded: the lease had expired and the delivery was claimed again",
      );
      return;
    }
    this.options.onAttempt?.(record);
    if (record.deliveryStatus === "pending" && record.retryDelayMs !== null) this.wakeAt(record.retryDelayMs);
  }

  /** A retry this worker scheduled is claimed on time without waiting for the next poll. */
  private wakeAt(delayMs: number): void {
    if (this.state !== "running" || delayMs >= this.settings.pollIntervalMs) return;
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      this.poke();
    }, delayMs);
    this.retryTimers.add(timer);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
