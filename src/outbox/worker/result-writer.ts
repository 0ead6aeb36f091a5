import type { Logger } from "pino";
import type { Query } from "../../db/client.js";
import { recordAttempts, type AttemptRecord, type DestinationRules, type Recorded } from "../sql/record.js";

/**
 * Writes finished attempts in batches: results that finish close together share one statement
 * (a batch window after the previous write, unless a backlog waits on them); while the database is unreachable they wait in
 * memory and the write is retried; a batch with a bad row is written one by one.
 */
export class ResultWriter {
  private readonly queue: AttemptRecord[] = [];
  /** Deliveries whose results are handed in and not yet written (queued or in the statement travelling now). */
  private readonly unwritten = new Set<string>();
  private flushing: Promise<void> | undefined;
  private lastFlushAt = -Infinity;
  /** Once stopping, a write goes at once: no window. */
  private draining = false;

  constructor(
    private readonly options: {
      query: Query;
      workerId: string;
      logger: Logger;
      rules: DestinationRules;
      /**
       * How long after the previous write the next may start: results that finish close together
       * share it. 0 while a backlog waits on the room these writes free.
       */
      windowMs: () => number;
      /** Each written record, with whether this worker still owned its delivery. */
      onWritten: (record: AttemptRecord, owned: boolean) => void;
      /** What each write did to destinations' circuits. */
      onRecorded?: (recorded: Recorded) => void;
    },
  ) {}

  get pending(): number {
    return this.unwritten.size;
  }

  /** The deliveries whose ended attempts are not yet written. */
  pendingIds(): string[] {
    return [...this.unwritten];
  }

  push(record: AttemptRecord): void {
    this.unwritten.add(record.deliveryId);
    this.queue.push(record);
    this.flushing ??= this.flush().finally(() => (this.flushing = undefined));
  }

  /** Writes what is left without waiting out windows; resolves when all is written or at `deadline` (ms epoch). */
  async drain(deadline: number): Promise<void> {
    this.draining = true;
    while (this.unwritten.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  private async flush(): Promise<void> {
    let backoffMs = 50;
    while (this.queue.length > 0) {
      const remaining = this.draining ? 0 : this.lastFlushAt + this.options.windowMs() - performance.now();
      if (remaining > 0) await sleep(remaining);
      this.lastFlushAt = performance.now();
      const batch = this.queue.splice(0, this.queue.length);
      try {
        this.written(batch, await this.record(batch));
        backoffMs = 50;
      } catch (error) {
        if (isDataError(error)) {
          await this.writeOneByOne(batch);
          continue;
        }
        // The database is unreachable: keep the results and try again; the claim guard makes a late write harmless.
        this.queue.unshift(...batch);
        this.options.logger.error({ err: error, pending: this.queue.length, retryInMs: backoffMs }, "recording failed");
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 5_000);
      }
    }
  }

  /** One bad row must not block a batch: isolate it, log it, and let its lease bring it back. */
  private async writeOneByOne(batch: AttemptRecord[]): Promise<void> {
    for (const record of batch) {
      try {
        this.written([record], await this.record([record]));
      } catch (error) {
        if (!isDataError(error)) {
          this.queue.unshift(record);
          continue;
        }
        this.options.logger.error({ err: error, deliveryId: record.deliveryId }, "attempt could not be recorded");
        this.written([record], { owned: [], transitions: [] });
      }
    }
  }

  private async record(batch: AttemptRecord[]): Promise<Recorded> {
    const recorded = await recordAttempts(this.options.query, this.options.workerId, batch, this.options.rules);
    this.options.onRecorded?.(recorded);
    return recorded;
  }

  private written(batch: AttemptRecord[], recorded: Recorded): void {
    const owned = new Set(recorded.owned);
    for (const record of batch) {
      this.unwritten.delete(record.deliveryId);
      this.options.onWritten(record, owned.has(record.deliveryId));
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** SQLSTATE classes 22 (data exception) and 23 (integrity): the row is bad, retrying will not help. */
function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^2[23]/.test(code);
}
