import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { Database, Unlisten } from "../db/client.js";
import type { HttpSender } from "../delivery/http-sender.js";
import { classifyAttempt, type AttemptResult } from "../delivery/outcome.js";
import { signatureHeaders } from "../delivery/signing.js";
import { claimDue, recordAttempts, type AttemptRecord, type ClaimedDelivery } from "./claim-sql.js";
import { OUTBOX_CHANNEL } from "./enqueue.js";
import { nextAfterFailure } from "./policy.js";

export interface WorkerOptions {
  database: Database;
  sender: HttpSender;
  logger: Logger;
  workerId?: string;
  /** Attempts in flight at once in this process. */
  concurrency: number;
  /** Most deliveries claimed per round trip. */
  batchSize: number;
  /** Fallback when no NOTIFY arrives (and the only wake-up on a database without LISTEN). */
  pollIntervalMs: number;
  /** Added to each delivery's request timeout to form its lease. */
  leaseMarginMs: number;
  retryAfterCapMs: number;
  headerPrefix: string;
  /** Called once per recorded attempt; metrics hang here. */
  onAttempt?: (record: AttemptRecord) => void;
}

/**
 * The claim loop: claim due deliveries into free slots, send each once, record results in batches.
 * Any number of these may run against one database; FOR UPDATE SKIP LOCKED keeps them apart.
 */
export class OutboxWorker {
  readonly workerId: string;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private wakeRequested = false;
  private wake: (() => void) | undefined;
  private unlisten: Unlisten | undefined;
  private readonly results: AttemptRecord[] = [];
  private flushing: Promise<void> | undefined;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private dbBackoffMs = 0;

  constructor(private readonly options: WorkerOptions) {
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.unlisten = await this.options.database.listen(OUTBOX_CHANNEL, () => this.poke());
    this.loopDone = this.loop();
  }

  /** Stops claiming, waits for attempts in flight and their records, then returns. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.poke();
    await this.loopDone;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    await this.unlisten?.();
    while (this.inFlight > 0 || this.results.length > 0 || this.flushing) {
      await (this.flushing ?? this.idle(50));
    }
  }

  /** Something may be due: wake the loop now or as soon as it next waits. */
  poke(): void {
    this.wakeRequested = true;
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const free = this.options.concurrency - this.inFlight;
      if (free <= 0) {
        await this.idle(this.options.pollIntervalMs);
        continue;
      }
      const limit = Math.min(free, this.options.batchSize);
      let claimed: ClaimedDelivery[];
      try {
        claimed = await claimDue(this.options.database, this.workerId, limit, this.options.leaseMarginMs);
        this.dbBackoffMs = 0;
      } catch (error) {
        this.dbBackoffMs = Math.min(Math.max(this.dbBackoffMs * 2, 100), 5_000);
        this.options.logger.error({ err: error, retryInMs: this.dbBackoffMs }, "claim failed");
        await this.idle(this.dbBackoffMs);
        continue;
      }
      for (const delivery of claimed) this.startAttempt(delivery);
      if (claimed.length < limit) await this.idle(this.options.pollIntervalMs);
    }
  }

  /** Waits for a poke, a freed slot or the timeout, whichever comes first. */
  private idle(timeoutMs: number): Promise<void> {
    if (this.wakeRequested) {
      this.wakeRequested = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const wake = done;
      this.wake = wake;
      function done() {
        clearTimeout(timer);
        resolve();
      }
    }).then(() => {
      this.wake = undefined;
      this.wakeRequested = false;
    });
  }

  private startAttempt(delivery: ClaimedDelivery): void {
    this.inFlight++;
    void this.attempt(delivery)
      .then((record) => this.queueRecord(record))
      .catch((error: unknown) => {
        // Only a bug lands here; the lease returns the delivery to the queue.
        this.options.logger.error({ err: error, deliveryId: delivery.id }, "attempt crashed");
        this.inFlight--;
      });
  }

  private async attempt(delivery: ClaimedDelivery): Promise<AttemptRecord> {
    const secrets = delivery.secrets ?? [];
    const result: AttemptResult =
      secrets.length === 0
        ? noSecretResult()
        : await this.options.sender.send({
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
          });
    const classification = classifyAttempt(result);
    const decision =
      classification.disposition === "succeeded"
        ? ({ outcome: "succeeded" } as const)
        : nextAfterFailure({
            attemptNumber: delivery.attempt_count,
            maxAttempts: delivery.max_attempts,
            retryDelaysMs: delivery.retry_delays_ms,
            retryable: classification.disposition === "retryable",
            retryAfterMs: classification.retryAfterMs,
            retryAfterCapMs: this.options.retryAfterCapMs,
          });
    const record: AttemptRecord = {
      deliveryId: delivery.id,
      attemptNumber: delivery.attempt_count,
      outcome: decision.outcome,
      retryDelayMs: decision.outcome === "retry" ? decision.delayMs : null,
      responseStatus: result.responseStatus,
      responseBodyExcerpt: result.responseBodyExcerpt,
      errorKind: classification.errorKind,
      errorMessage: classification.errorMessage,
      startedAt: result.startedAt,
      finishedAt: result.finishedAt,
      durationMs: result.durationMs,
    };
    this.options.logger[decision.outcome === "succeeded" ? "debug" : "info"](
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
    return record;
  }

  private queueRecord(record: AttemptRecord): void {
    this.results.push(record);
    if (!this.flushing) this.flushing = this.flush().finally(() => (this.flushing = undefined));
  }

  /** Writes every result gathered so far in one statement; results that arrive meanwhile form the next batch. */
  private async flush(): Promise<void> {
    let backoffMs = 50;
    while (this.results.length > 0) {
      const batch = this.results.splice(0, this.results.length);
      try {
        const owned = new Set(await recordAttempts(this.options.database, this.workerId, batch));
        for (const record of batch) {
          if (!owned.has(record.deliveryId)) {
            this.options.logger.warn(
              { deliveryId: record.deliveryId, attempt: record.attemptNumber },
              "attempt result not recorded: the lease had expired and the delivery was claimed again",
            );
          } else {
            this.options.onAttempt?.(record);
            if (record.outcome === "retry" && record.retryDelayMs !== null) this.wakeAt(record.retryDelayMs);
          }
        }
        this.inFlight -= batch.length;
        this.poke();
        backoffMs = 50;
      } catch (error) {
        // The database is unreachable: keep the results and try again; the claim guard makes a late write harmless.
        this.results.unshift(...batch);
        this.options.logger.error({ err: error, pending: this.results.length, retryInMs: backoffMs }, "recording failed");
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 5_000);
      }
    }
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

function noSecretResult(): AttemptResult {
  const now = new Date();
  return {
    startedAt: now,
    finishedAt: now,
    durationMs: 0,
    responseStatus: null,
    responseBodyExcerpt: null,
    error: { kind: "other", message: "the tenant has no active signing secret" },
  };
}
