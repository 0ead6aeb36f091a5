import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type Database } from "../src/db/client.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { TcpProxy } from "../bench/lib/tcp-proxy.js";

// A connection cut at BEGIN or COMMIT (a failover, a proxy restart) must never cost the pool a
// connection: every path that takes one gives it back, and the pool refills by itself.

let testDb: TestDatabase;
let proxy: TcpProxy;

beforeAll(async () => {
  testDb = await createTestDatabase();
  proxy = await TcpProxy.start(testDb.url);
});

afterAll(async () => {
  await proxy?.close();
  await testDb?.drop();
});

describe("Database transactions whose connection is cut", () => {
  let database: Database;

  beforeAll(async () => {
    database = await openDatabase({ databaseUrl: proxy.rewrite(testDb.url), poolSize: 2 });
  });

  afterAll(async () => {
    proxy.failQueries(undefined);
    await database?.close();
  });

  for (const [statement, pattern] of [
    ["BEGIN", /^begin$/i],
    ["COMMIT", /^commit$/i],
  ] as const) {
    it(`gives the connection back when ${statement} fails, for raw and drizzle transactions alike`, async () => {
      proxy.failQueries(pattern);
      // Three times the pool's size: a single leaked connection per failure would exhaust it.
      for (let round = 0; round < 6; round++) {
        await expect(database.transaction((query) => query("select 1"))).rejects.toThrow();
        await expect(database.transactionDb((tx) => tx.execute("select 1"))).rejects.toThrow();
      }
      proxy.failQueries(undefined);
      const started = Date.now();
      const [row] = await database.transaction((query) => query<{ one: number }>("select 1 as one"));
      expect(row?.one).toBe(1);
      const rows = await database.transactionDb((tx) => tx.execute("select 2 as two"));
      expect((rows as unknown as { rows: unknown[] }).rows[0]).toEqual({ two: 2 });
      // A drained pool would only answer after its 5 s connection timeout, and then with an error.
      expect(Date.now() - started).toBeLessThan(4_000);
    });
  }
});

describe("the service after every BEGIN failed for a while", () => {
  let harness: Harness;

  beforeAll(async () => {
    harness = await startHarness({ ...testDb, url: proxy.rewrite(testDb.url) }, {}, { worker: false });
  });

  afterAll(async () => {
    proxy.failQueries(undefined);
    await harness?.stop();
  });

  /** A finished delivery of this tenant, ready to be redelivered (a transaction of its own). */
  async function finishedDelivery(): Promise<string> {
    const created = await harness.api.post("/api/v1/generate", { prompt: "failover", webhookUrl: "http://127.0.0.1:9/hook" });
    await harness.api.finishJob(created.body.jobId, 1, "completed");
    const [row] = await testDb.database.query<{ id: string }>(
      `update webhook_outbox.webhook_deliveries set status = 'failed', next_attempt_at = null, finished_at = now()
       where job_id = $1 returning id`,
      [created.body.jobId],
    );
    return row?.id ?? "";
  }

  it("answers 503 meanwhile, then serves transactions again without a restart", async () => {
    const deliveryId = await finishedDelivery();
    proxy.failQueries(/^begin$/i);
    // More failed transactions than the pool has connections (10).
    const during = await Promise.all(
      Array.from({ length: 24 }, () => harness.api.post(`/api/v1/deliveries/${deliveryId}/redeliver`)),
    );
    expect(new Set(during.map((response) => response.status))).toEqual(new Set([503]));
    expect(during[0]?.body.error.code).toBe("DATABASE_UNAVAILABLE");

    proxy.failQueries(undefined);
    const healed = await eventually(async () => {
      const response = await harness.api.post(`/api/v1/deliveries/${deliveryId}/redeliver`);
      return response.status === 503 ? undefined : response;
    }, 4_000, "a redelivery after the fault cleared");
    expect(healed.status).toBe(202);
    // Still a full pool: as many concurrent transactions as it has connections all go through.
    const others = await Promise.all(Array.from({ length: 12 }, () => finishedDelivery()));
    const burst = await Promise.all(others.map((id) => harness.api.post(`/api/v1/deliveries/${id}/redeliver`)));
    expect(burst.map((response) => response.status)).toEqual(Array(12).fill(202));
    expect((await fetch(`${harness.service.url}/readyz`)).status).toBe(200);
  });
});
