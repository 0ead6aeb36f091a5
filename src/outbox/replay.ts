import type { Logger } from "pino";
import type { Database } from "../db/client.js";
import type { ReplayState } from "../db/schema.js";
import { OUTBOX_CHANNEL } from "./enqueue.js";
import { ReplayNotFoundError } from "./errors.js";

/*
 * Bulk replay: every delivery of a tenant that has a status (failed, or succeeded), created in a
 * window and optionally to one URL, redelivered as redeliver.ts does (a fresh budget under its
 * frozen schedule, the same webhook-id, attempts appended), paced: the workers' step takes one
 * batch of the oldest not yet visited per replay and interval, so a replay of 100,000 never floods
 * the queue ahead of live traffic. The replay row's cursor (created_at, id) only moves forward, so
 * each delivery is visited once; one that no longer has the status when its batch comes (another
 * redelivery took it) is passed over.
 */

export const REPLAY_STATUSES = ["failed", "succeeded"] as const;
export type ReplayStatus = (typeof REPLAY_STATUSES)[number];

export interface NewReplay {
  tenantId: string;
  status: ReplayStatus;
  /** Deliveries created at or after this instant… */
  since: Date;
  /** …and before this one; by default the replay's creation. */
  until?: Date | undefined;
  /** Only deliveries to this URL, exactly. */
  url?: string | undefined;
}

export interface Replay {
  id: string;
  tenantId: string;
  status: ReplayStatus;
  since: Date;
  until: Date;
  url: string | null;
  state: ReplayState;
  matched: number;
  requeued: number;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

interface ReplayRecord {
  id: string;
  tenant_id: string;
  status: ReplayStatus;
  since: Date;
  until: Date;
  url: string | null;
  state: ReplayState;
  matched: number;
  requeued: number;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
  cursor_created_at: Date;
  cursor_id: string;
}

const COLUMNS =
  "id, tenant_id, status, since, until, url, state, matched, requeued, created_at, updated_at, finished_at, cursor_created_at, cursor_id";

function toReplay(row: ReplayRecord): Replay {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    status: row.status,
    since: row.since,
    until: row.until,
    url: row.url,
    state: row.state,
    matched: row.matched,
    requeued: row.requeued,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}

/**
 * The deliveries a replay matches, as a WHERE over `d`: its parameters are the tenant ($1), the
 * window ($2, $3) and the URL ($4). A literal status, so the planner can use the partial index of
 * failed deliveries (webhook_deliveries_tenant_failed_idx).
 */
const matching = (status: ReplayStatus) => `d.tenant_id = $1 and d.status = '${status}'
    and d.created_at >= $2 and d.created_at < $3 and ($4::text is null or d.url = $4)`;

const createSql = (status: ReplayStatus) => `
insert into webhook_outbox.replays (tenant_id, status, since, until, url, matched, cursor_created_at, cursor_id)
select $1, '${status}', $2, $3, $4,
       (select count(*) from webhook_outbox.webhook_deliveries d where ${matching(status)}),
       $2, '00000000-0000-0000-0000-000000000000'
returning ${COLUMNS}`;

const CREATE_SQL = { failed: createSql("failed"), succeeded: createSql("succeeded") };

/** Starts a replay; the workers' step does the redelivering. The window must not be empty (since < until). */
export async function createReplay(database: Pick<Database, "query">, input: NewReplay): Promise<Replay> {
  const until = input.until ?? new Date();
  const [row] = await database.query<ReplayRecord>(CREATE_SQL[input.status], [
    input.tenantId,
    input.since.toISOString(),
    until.toISOString(),
    input.url ?? null,
  ]);
  if (!row) throw new Error("the replay was not written");
  return toReplay(row);
}

const countSql = (status: ReplayStatus) =>
  `select count(*)::int as matched from webhook_outbox.webhook_deliveries d where ${matching(status)}`;
const COUNT_SQL = { failed: countSql("failed"), succeeded: countSql("succeeded") };

/** How many deliveries a replay of `input` would match now. */
export async function countReplayMatches(database: Pick<Database, "query">, input: NewReplay & { until: Date }): Promise<number> {
  const [row] = await database.query<{ matched: number }>(COUNT_SQL[input.status], [
    input.tenantId,
    input.since.toISOString(),
    input.until.toISOString(),
    input.url ?? null,
  ]);
  return row?.matched ?? 0;
}

/** A replay, scoped to a tenant when one is named (the HTTP API). Throws ReplayNotFoundError. */
export async function getReplay(database: Pick<Database, "query">, replayId: string, tenantId?: string): Promise<Replay> {
  const [row] = await database.query<ReplayRecord>(
    `select ${COLUMNS} from webhook_outbox.replays where id = $1 and ($2::uuid is null or tenant_id = $2)`,
    [replayId, tenantId ?? null],
  );
  if (!row) throw new ReplayNotFoundError(replayId);
  return toReplay(row);
}

// One batch of one replay: the next `$7` matching deliveries after the cursor ($5, $6), oldest
// first, read without a lock; those still with the status are redelivered (the UPDATE re-checks
// it on a row another statement changed meanwhile), and the cursor moves to the last one read.
const stepSql = (status: ReplayStatus) => `
with visit as materialized (
  select d.id, d.created_at
  from webhook_outbox.webhook_deliveries d
  where ${matching(status)} and (d.created_at, d.id) > ($5::timestamptz, $6::uuid)
  order by d.created_at, d.id
  limit $7
),
requeued as (
  update webhook_outbox.webhook_deliveries d
  set status = 'pending', max_attempts = d.attempt_count + cardinality(d.retry_delays_ms), interruptions = 0,
      next_attempt_at = now(), finished_at = null, locked_by = null, locked_until = null
  where d.id = any(array(select id from visit)) and d.status = '${status}'
  returning d.id
),
last as (
  select created_at, id from visit order by created_at desc, id desc limit 1
),
advanced as (
  update webhook_outbox.replays r
  set requeued = r.requeued + (select count(*) from requeued),
      cursor_created_at = coalesce((select created_at from last), r.cursor_created_at),
      cursor_id = coalesce((select id from last), r.cursor_id),
      state = case when (select count(*) from visit) < $7 then 'done' else 'running' end,
      finished_at = case when (select count(*) from visit) < $7 then now() end,
      next_step_at = now() + $8 * interval '1 millisecond',
      updated_at = now()
  where r.id = $9
  returning r.id, r.state, r.requeued
)
select a.id, a.state, a.requeued, (select count(*) from requeued)::int as batch
from advanced a
left join lateral (select pg_notify('${OUTBOX_CHANNEL}', '') where exists (select from requeued)) n on true`;

const STEP_SQL = { failed: stepSql("failed"), succeeded: stepSql("succeeded") };

/** The step over failed deliveries, for tests that read its plan. */
export const STEP_SQL_FOR_PLANS = STEP_SQL.failed;

export interface ReplayStepResult {
  replayId: string;
  /** Deliveries this batch redelivered. */
  requeued: number;
  state: ReplayState;
}

/**
 * One batch of the running replay whose step is due first (SKIP LOCKED: workers that step at once
 * take different replays). Undefined when none is due. The replay's next step is `intervalMs`
 * later, whichever worker takes it.
 */
export async function replayStep(
  database: Pick<Database, "transaction">,
  options: { batchSize: number; intervalMs: number },
): Promise<ReplayStepResult | undefined> {
  return database.transaction(async (query) => {
    const [replay] = await query<ReplayRecord>(
      `select ${COLUMNS} from webhook_outbox.replays
       where state = 'running' and next_step_at <= now()
       order by next_step_at
       limit 1
       for update skip locked`,
      [],
      "replay_due",
    );
    if (!replay) return undefined;
    const [row] = await query<{ id: string; state: ReplayState; requeued: number; batch: number }>(
      STEP_SQL[replay.status],
      [
        replay.tenant_id,
        replay.since.toISOString(),
        replay.until.toISOString(),
        replay.url,
        replay.cursor_created_at.toISOString(),
        replay.cursor_id,
        options.batchSize,
        options.intervalMs,
        replay.id,
      ],
      `replay_step_${replay.status}`,
    );
    if (!row) throw new Error(`replay ${replay.id} vanished while its row was locked`);
    return { replayId: row.id, requeued: row.batch, state: row.state };
  });
}

/** How the workers pace replays; the environment's REPLAY_RATE refers to these. */
export const REPLAY_PACING = {
  /**
   * Deliveries each running replay redelivers per interval, across every worker.
   * @defaultValue 200
   */
  batchSize: 200,
  /**
   * How often a replay gets its next batch.
   * @defaultValue 1000
   */
  intervalMs: 1_000,
};

export interface ReplayPacer {
  stop(): Promise<void>;
}

/**
 * The workers' paced step: every `intervalMs`, one batch of `batchSize` for each running replay
 * that is due (several replays share the interval, one batch each). `batchSize` 0 paces nothing.
 */
export function startReplayPacer(options: {
  database: Pick<Database, "transaction">;
  logger: Logger;
  batchSize: number;
  intervalMs: number;
}): ReplayPacer {
  if (options.batchSize <= 0) return { stop: async () => undefined };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const run = async (): Promise<void> => {
    try {
      // Every replay due now gets its batch; a replay is due again only after the interval.
      for (;;) {
        if (stopped) break;
        const step = await replayStep(options.database, options);
        if (!step) break;
        if (step.state === "done") options.logger.info({ replayId: step.replayId, requeued: step.requeued }, "replay done");
      }
    } catch (error) {
      options.logger.warn({ err: error }, "replay step failed; retrying at the next interval");
    }
    if (!stopped) timer = setTimeout(() => (running = run()), options.intervalMs);
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
