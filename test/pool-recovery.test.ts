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

  it("answers 503 meanwhile, then creates jobs again without a restart", async () => {
    proxy.failQueries(/^begin$/i);
    // More failed creates than the pool has connections (10).
    const during = await Promise.all(
      Array.from({ length: 24 }, () => harness.api.post("/api/v1/generate", { prompt: "failover" })),
    );
    expect(new Set(during.map((response) => response.status))).toEqual(new Set([503]));
    expect(during[0]?.body.error.code).toBe("DATABASE_UNAVAILABLE");

    proxy.failQueries(undefined);
    const healed = await eventually(async () => {
      const created = await harness.api.post("/api/v1/generate", { prompt: "after" });
      return created.status === 202 ? created : undefined;
    }, 4_000, "a create after the fault cleared");
    expect(healed.body.status).toBe("queued");
    // Still a full pool: as many concurrent creates as it has connections all succeed.
    const burst = await Promise.all(
      Array.from({ length: 20 }, () => harness.api.post("/api/v1/generate", { prompt: "burst" })),
    );
    expect(burst.map((response) => response.status)).toEqual(Array(20).fill(202));
    expect((await fetch(`${harness.service.url}/readyz`)).status).toBe(200);
  });
});
