import type { Logger } from "pino";
import type { Database } from "../db/client.js";

export const PRUNE_BATCH_SIZE = 500;
export const PRUNE_INTERVAL_MS = 10 * 60_000;

/*
 * One small batch: finished deliveries older than the cutoff, oldest first, through
 * webhook_deliveries_finished_idx. Their attempts go with them (ON DELETE CASCADE, through the
 * (delivery_id, attempt_number) index). SKIP LOCKED keeps concurrent pruners and a redelivery that
 * holds the row apart; the status test in DELETE re-checks a row a redelivery reopened meanwhile.
 * Pending and delivering rows are never touched, however old.
 */
const PRUNE_SQL = `
with doomed as (
  select id from webhook_outbox.webhook_deliveries
  where status in ('succeeded', 'failed') and finished_at < now() - $1 * interval '1 millisecond'
  order by finished_at
  limit $2
  for update skip locked
)
delete from webhook_outbox.webhook_deliveries d
using doomed
where d.id = doomed.id and d.status in ('succeeded', 'failed')
returning d.id`;

export interface PruneOptions {
  retentionMs: number;
  batchSize?: number;
  /** Most batches in one run, so one run never holds the database for long. */
  maxBatches?: number;
  /** Checked between batches: a stopping process does not start another one. */
  stopping?: () => boolean;
}

/** Deletes finished deliveries (and their attempts) older than the retention, batch by batch; returns how many. */
export async function pruneFinishedDeliveries(database: Database, options: PruneOptions): Promise<number> {
  const batchSize = options.batchSize ?? PRUNE_BATCH_SIZE;
  const maxBatches = options.maxBatches ?? 1_000;
  let pruned = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const rows = await database.query<{ id: string }>(PRUNE_SQL, [options.retentionMs, batchSize], "outbox_prune");
    pruned += rows.length;
    if (rows.length < batchSize || options.stopping?.()) break;
  }
  return pruned;
}

// Destination history and finished replays older than the cutoff, a batch of each.
const PRUNE_HISTORY_SQL = `
with events as (
  delete from webhook_outbox.destination_events
  where id = any(array(select id from webhook_outbox.destination_events
                       where at < now() - $1 * interval '1 millisecond' order by at limit $2))
  returning id
), replays as (
  delete from webhook_outbox.replays
  where id = any(array(select id from webhook_outbox.replays
                       where state = 'done' and finished_at < now() - $1 * interval '1 millisecond' limit $2))
  returning id
)
select (select count(*) from events)::int + (select count(*) from replays)::int as pruned`;

/** Deletes destination_events rows and finished replays older than the retention, batch by batch; returns how many. */
export async function pruneHistory(database: Pick<Database, "query">, options: PruneOptions): Promise<number> {
  const batchSize = options.batchSize ?? PRUNE_BATCH_SIZE;
  const maxBatches = options.maxBatches ?? 1_000;
  let pruned = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const [row] = await database.query<{ pruned: number }>(PRUNE_HISTORY_SQL, [options.retentionMs, batchSize], "outbox_prune_history");
    pruned += row?.pruned ?? 0;
    if ((row?.pruned ?? 0) < batchSize || options.stopping?.()) break;
  }
  return pruned;
}

export interface RetentionSweeper {
  stop(): Promise<void>;
}

/**
 * Prunes once at start, then every `intervalMs`. Runs in every worker process; SKIP LOCKED lets
 * them share the work. A retention of 0 disables pruning.
 */
export function startRetentionSweeper(options: {
  database: Database;
  logger: Logger;
  retentionMs: number;
  intervalMs?: number;
}): RetentionSweeper {
  if (options.retentionMs <= 0) return { stop: async () => undefined };
  const intervalMs = options.intervalMs ?? PRUNE_INTERVAL_MS;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const run = async (): Promise<void> => {
    try {
      const pruned = await pruneFinishedDeliveries(options.database, {
        retentionMs: options.retentionMs,
        stopping: () => stopped,
      });
      if (pruned > 0) options.logger.info({ pruned, retentionMs: options.retentionMs }, "pruned finished deliveries");
      const history = await pruneHistory(options.database, { retentionMs: options.retentionMs, stopping: () => stopped });
      if (history > 0) options.logger.info({ pruned: history }, "pruned destination history and finished replays");
    } catch (error) {
      options.logger.warn({ err: error }, "pruning finished deliveries failed; retrying at the next interval");
    }
    if (!stopped) timer = setTimeout(() => (running = run()), intervalMs);
  };
  running = run();

  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
