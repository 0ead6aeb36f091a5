import type { Logger } from "pino";
import type { JobService } from "./job-service.js";

const BATCH = 100;

/**
 * Runs JobService.failOverdue on an interval; a full batch is followed at once by another. Each
 * sweep also prunes a batch of idempotency keys past their window.
 */
export class DeadlineSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly jobService: JobService,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.sweep().finally(() => (this.running = undefined));
    }, delayMs);
  }

  private async sweep(): Promise<void> {
    let swept = 0;
    try {
      swept = await this.jobService.failOverdue(BATCH);
      if (swept > 0) this.logger.info({ jobs: swept }, "failed overdue jobs with TIMEOUT");
      const pruned = await this.jobService.pruneIdempotencyKeys();
      if (pruned > 0) this.logger.info({ keys: pruned }, "pruned expired idempotency keys");
    } catch (error) {
      this.logger.error({ err: error }, "deadline sweep failed");
    }
    this.schedule(swept === BATCH ? 0 : this.intervalMs);
  }
}
