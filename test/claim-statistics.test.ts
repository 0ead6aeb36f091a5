import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedDueDeliveries } from "../bench/lib/seed.js";
import { openDatabase, type Database, type Query } from "../src/db/client.js";
import { HttpSender } from "../src/delivery/http-sender.js";
import { UrlPolicy } from "../src/delivery/url-policy.js";
import { ANALYZE_SQL } from "../src/outbox/sql/analyze.js";
import { claimSql } from "../src/outbox/sql/claim.js";
import { WORKER_DEFAULTS } from "../src/outbox/worker/options.js";
import { OutboxWorker } from "../src/outbox/worker/worker.js";
import { createTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually } from "./support/harness.js";
import { Receiver } from "./support/receiver.js";

/*
 * The claim goes as a named statement (its plan kept per connection) only while
 * webhook_deliveries' statistics describe the table; once it holds twice the rows they describe
 * the worker claims unnamed and runs ANALYZE. Autovacuum is off for the table here, so only the
 * worker's ANALYZE can bring the statistics up to date.
 */

let testDb: TestDatabase;
let receiver: Receiver;
let sender: HttpSender;
let worker: OutboxWorker | undefined;
/** A role that may read and write the outbox's tables but neither owns them nor may maintain them. */
let guestRole: string | undefined;
let guestDatabase: Database | undefined;
/** The statement name of each claim the worker sent, in order (undefined: unnamed). */
const claimNames: Array<string | undefined> = [];
/** The worker's claim: its text, and its name, which carries the batch size. */
const CLAIM_TEXT = claimSql(WORKER_DEFAULTS.batchSize);
const CLAIM_NAME = `outbox_claim_${WORKER_DEFAULTS.batchSize}`;

/** The rows the table's statistics describe. */
const analyzedRows = async () =>
  (
    await testDb.database.query<{ rows: number }>(
      "select reltuples::float8 as rows from pg_class where oid = 'webhook_outbox.webhook_deliveries'::regclass",
    )
  )[0]!.rows;

/** `count` more due deliveries like the seeded one, written without touching the statistics. */
async function grow(count: number): Promise<void> {
  await testDb.database.query(
    `insert into webhook_outbox.webhook_deliveries
       (tenant_id, event_type, url, payload, max_attempts, retry_delays_ms, timeout_ms, connect_timeout_ms, next_attempt_at)
     select d.tenant_id, d.event_type, d.url, d.payload, d.max_attempts, d.retry_delays_ms, d.timeout_ms, d.connect_timeout_ms, now()
     from (select * from webhook_outbox.webhook_deliveries limit 1) d, generate_series(1, $1::int)`,
    [count],
  );
}

/** The live rows the statistics system counts for the table, as the claim reads them. */
const liveRows = async () =>
  (
    await testDb.database.query<{ live: number }>(
      "select pg_stat_get_live_tuples('webhook_outbox.webhook_deliveries'::regclass)::float8 as live",
    )
  )[0]!.live;

/**
 * `grow(count)`, then waits until the statistics system counts those rows. A backend reports what
 * it inserted when it next goes idle, but no sooner than a second after its last report (up to
 * 10 s later): a worker started before that would see the table as it was.
 */
async function growCounted(count: number): Promise<void> {
  const before = await liveRows();
  await grow(count);
  await eventually(async () => ((await liveRows()) >= before + count ? true : undefined), 20_000, `${count} more live rows counted`);
}

const succeeded = async () =>
  (await testDb.database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.webhook_deliveries where status = 'succeeded'"))[0]!.n;

/** A worker on `database` whose claims' statement names (undefined: unnamed) and ANALYZEs are noted. */
function workerOn(database: Database, names: Array<string | undefined>, analyzes: string[] = []): OutboxWorker {
  const query: Query = (text, params, name) => {
    if (text === CLAIM_TEXT) names.push(name);
    if (text === ANALYZE_SQL) analyzes.push(text);
    return database.query(text, params, name);
  };
  return new OutboxWorker({
    database: { query, listen: database.listen },
    sender,
    logger: pino({ level: "silent" }),
    pollIntervalMs: 50,
  });
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  receiver = await Receiver.start();
  sender = new HttpSender(new UrlPolicy({ allowInsecure: true }));
  const tenant = await createTenant(testDb.database, "statistics");
  // One delivery, analyzed: statistics of a one-page table.
  await seedDueDeliveries(testDb.database, tenant.tenantId, receiver.url, 1);
  await testDb.database.query("alter table webhook_outbox.webhook_deliveries set (autovacuum_enabled = false)");
});

afterAll(async () => {
  await worker?.stop();
  await guestDatabase?.close();
  if (guestRole) {
    await testDb.database.query(`drop owned by ${guestRole}`);
    await testDb.database.query(`drop role ${guestRole}`);
  }
  await sender?.close();
  await receiver?.close();
  await testDb?.drop();
});

describe("the claim and the table's statistics", () => {
  it("claims unnamed and analyzes the table once it outgrows its statistics, then claims named", async () => {
    expect(await analyzedRows()).toBe(1);
    await growCounted(3_000);

    worker = workerOn(testDb.database, claimNames);
    await worker.start();

    await eventually(async () => ((await succeeded()) === 3_001 ? true : undefined), 30_000, "every delivery sent");
    // An estimate: attempts recorded while ANALYZE reads the table may count a row twice or not at all.
    await eventually(async () => ((await analyzedRows()) >= 2_000 ? true : undefined), 20_000, "statistics taken by the worker");
    // The first claim, before any had reported the table's size, and those while it was stale: unnamed.
    expect(claimNames[0]).toBeUndefined();
    await eventually(async () => (claimNames.includes(CLAIM_NAME) ? true : undefined), 20_000, "a named claim");
  });

  it("goes back to unnamed claims, and analyzes again, when the table doubles once more", async () => {
    expect(claimNames.at(-1)).toBe(CLAIM_NAME);
    const mark = claimNames.length;
    await grow(7_000);

    await eventually(async () => ((await succeeded()) === 3_001 + 7_000 ? true : undefined), 60_000, "every delivery sent");
    await eventually(async () => ((await analyzedRows()) >= 8_000 ? true : undefined), 20_000, "statistics taken again");
    const unnamed = claimNames.indexOf(undefined, mark);
    expect(unnamed).toBeGreaterThanOrEqual(mark);
    await eventually(async () => (claimNames.indexOf(CLAIM_NAME, unnamed) > unnamed ? true : undefined), 20_000, "named claims again");
  });

  it("under a role that does not own the table, keeps delivering with unnamed claims, and asks for an ANALYZE only once per doubling", async () => {
    await worker?.stop();
    worker = undefined;
    guestRole = `wo_guest_${testDb.name.slice(-8)}`;
    await testDb.database.query(`create role ${guestRole} login password '${guestRole}'`);
    await testDb.database.query(`grant usage on schema webhook_outbox to ${guestRole}`);
    // Not ALL: on Postgres 17 that includes MAINTAIN, which allows ANALYZE.
    await testDb.database.query(`grant select, insert, update, delete on all tables in schema webhook_outbox to ${guestRole}`);
    await testDb.database.query(`grant all on all sequences in schema webhook_outbox to ${guestRole}`);
    const url = new URL(testDb.url);
    url.username = guestRole;
    url.password = guestRole;
    guestDatabase = await openDatabase({ databaseUrl: url.toString(), poolSize: 4 });

    const rowsBefore = await analyzedRows();
    const [{ n: existing }] = (await testDb.database.query<{ n: number }>(
      "select count(*)::int as n from webhook_outbox.webhook_deliveries",
    )) as [{ n: number }];
    await growCounted(2 * existing + 1_000);
    const names: Array<string | undefined> = [];
    const analyzes: string[] = [];
    worker = workerOn(guestDatabase, names, analyzes);
    await worker.start();
    const total = 3 * existing + 1_000;
    await eventually(async () => ((await succeeded()) === total ? true : undefined), 60_000, "every delivery sent");
    const seen = names.length;
    await eventually(async () => (names.length >= seen + 5 ? true : undefined), 20_000, "more claims");

    // Postgres refused the ANALYZE with a warning: the statistics are as they were, every claim unnamed.
    expect(await analyzedRows()).toBe(rowsBefore);
    expect(analyzes).toHaveLength(1);
    expect(names.filter((name) => name !== undefined)).toEqual([]);
  });
});
