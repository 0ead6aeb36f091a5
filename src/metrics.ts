import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "pino";
import type { Database } from "./db/client.js";
import { DESTINATION_STATES } from "./db/schema.js";
import type { AttemptRecord, DestinationTransition } from "./outbox/sql/record.js";

const QUEUE_STATUSES = ["pending", "delivering"] as const;

/**
 * The service's Prometheus metrics, in a registry of its own (several services may share a process
 * in tests). Counters and histograms are fed by this process's worker; the queue gauges are read
 * from SQL at scrape time, so any API process reports the whole queue.
 */
export class ServiceMetrics {
  readonly registry = new Registry();

  readonly attempts = new Counter({
    name: "webhook_outbox_attempts_total",
    help: "Delivery attempts recorded by this process, by outcome (succeeded, retry, failed)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly deliveries = new Counter({
    name: "webhook_outbox_deliveries_total",
    help: "Deliveries finished by this process, by final outcome (succeeded, failed)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly attemptDuration = new Histogram({
    name: "webhook_outbox_attempt_duration_seconds",
    help: "Duration of one delivery attempt (request sent to response read), by outcome",
    labelNames: ["outcome"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly claimBatchSize = new Histogram({
    name: "webhook_outbox_claim_batch_size",
    help: "Deliveries returned by one claim query of this process's worker (0 = an idle poll)",
    buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000],
    registers: [this.registry],
  });

  readonly destinationTransitions = new Counter({
    name: "webhook_outbox_destination_transitions_total",
    help: "Changes of a destination's circuit recorded by this process's worker, by state left and state entered",
    labelNames: ["from", "to"] as const,
    registers: [this.registry],
  });

  constructor(database: Database, logger: Logger) {
    collectDefaultMetrics({ register: this.registry });
    const scrapeFailed = (error: unknown) => logger.warn({ err: error }, "metrics: queue query failed");

    new Gauge({
      name: "webhook_outbox_queue_depth",
      help: "Deliveries waiting or in flight, by status (read from the database at scrape time)",
      labelNames: ["status"] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        try {
          const rows = await database.query<{ status: string; count: number }>(
            `select status, count(*)::int as count from webhook_outbox.webhook_deliveries
             where status in ('pending', 'delivering') group by status`,
          );
          for (const status of QUEUE_STATUSES) {
            this.set({ status }, rows.find((row) => row.status === status)?.count ?? 0);
          }
        } catch (error) {
          scrapeFailed(error);
        }
      },
    });

    new Gauge({
      name: "webhook_outbox_destinations",
      help: "Destinations (tenants' webhook URLs) by circuit state: healthy, open, disabled (read from the database at scrape time)",
      labelNames: ["state"] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        try {
          const rows = await database.query<{ state: string; count: number }>(
            `select state, count(*)::int as count from webhook_outbox.destinations group by state`,
          );
          for (const state of DESTINATION_STATES) {
            this.set({ state }, rows.find((row) => row.state === state)?.count ?? 0);
          }
        } catch (error) {
          scrapeFailed(error);
        }
      },
    });

    new Gauge({
      name: "webhook_outbox_replay_deliveries",
      help: "Deliveries of the replays still running: matched when they were created, and requeued so far (read at scrape time)",
      labelNames: ["kind"] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        try {
          const [row] = await database.query<{ replays: number; matched: number; requeued: number }>(
            `select count(*)::int as replays, coalesce(sum(matched), 0)::int as matched, coalesce(sum(requeued), 0)::int as requeued
             from webhook_outbox.replays where state = 'running'`,
          );
          this.set({ kind: "matched" }, row?.matched ?? 0);
          this.set({ kind: "requeued" }, row?.requeued ?? 0);
        } catch (error) {
          scrapeFailed(error);
        }
      },
    });

    new Gauge({
      name: "webhook_outbox_oldest_due_age_seconds",
      help: "How long the oldest due delivery has been waiting to be claimed; 0 when none is due",
      registers: [this.registry],
      async collect() {
        this.reset();
        try {
          const [row] = await database.query<{ age: number }>(
            `select coalesce(extract(epoch from now() - min(next_attempt_at)), 0)::float8 as age
             from webhook_outbox.webhook_deliveries where status in ('pending', 'delivering') and next_attempt_at <= now()`,
          );
          this.set(row?.age ?? 0);
        } catch (error) {
          scrapeFailed(error);
        }
      },
    });
  }

  /** The worker's `onTransition` hook. */
  readonly recordTransition = (transition: DestinationTransition): void => {
    this.destinationTransitions.inc({ from: transition.from, to: transition.to });
  };

  /** The worker's `onAttempt` hook. */
  readonly recordAttempt = (record: AttemptRecord): void => {
    this.attempts.inc({ outcome: record.outcome });
    this.attemptDuration.observe({ outcome: record.outcome }, record.durationMs / 1000);
    if (record.deliveryStatus !== "pending") this.deliveries.inc({ outcome: record.deliveryStatus });
  };

  /** The worker's `onClaim` hook. */
  readonly recordClaim = (claimed: number): void => {
    this.claimBatchSize.observe(claimed);
  };

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
