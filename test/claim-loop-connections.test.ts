import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedDueDeliveries } from "../bench/lib/seed.js";
import { withSessionSettings, type Query } from "../src/db/client.js";
import { claimDue } from "../src/outbox/sql/claim.js";
import { WORKER_DEFAULTS } from "../src/outbox/worker/options.js";
import { CLAIM_LOOP_APPLICATION_NAME, openClaimLoopDatabase } from "../src/outbox/worker/connections.js";
import { createOutbox } from "../src/library/index.js";
import { createTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness } from "./support/harness.js";

describe("withSessionSettings", () => {
  it("adds each setting to the connection string's options, after the ones it has", () => {
    const config = withSessionSettings(
      { connectionString: "postgres://u:p%40ss@db.example:5433/app?options=-c%20search_path%3Dapp&sslmode=disable" },
      { plan_cache_mode: "force_generic_plan" },
    );
    const url = new URL(config.connectionString ?? "");
    expect(url.searchParams.get("options")).toBe("-c search_path=app -c plan_cache_mode=force_generic_plan");
    expect(url.searchParams.get("sslmode")).toBe("disable");
    expect(url.password).toBe("p%40ss");
    expect(config.options).toBe(url.searchParams.get("options"));
  });

  it("adds them to the config's options when there is no connection string", () => {
    expect(withSessionSettings({ host: "db", options: "-c work_mem=64MB" }, { statement_timeout: "5s" })).toEqual({
      host: "db",
      options: "-c work_mem=64MB -c statement_timeout=5s",
    });
  });

  it("escapes spaces and backslashes in values, and refuses what is not a setting name", () => {
    expect(withSessionSettings({}, { search_path: "a b\\c" }).options).toBe("-c search_path=a\\ b\\\\c");
    expect(() => withSessionSettings({}, { "x -c y": "1" })).toThrow(/not a setting name/);
  });

  it("leaves the connection as it is when there is nothing to add", () => {
    const connection = { connectionString: "postgres://db/app" };
    expect(withSessionSettings(connection, {})).toBe(connection);
  });
});

describe("the claim loop's connections", () => {
  let testDb: TestDatabase;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    const tenant = await createTenant(testDb.database, "claim-loop");
    await seedDueDeliveries(testDb.database, tenant.tenantId, "http://127.0.0.1:9/hook", 200);
  });

  afterAll(async () => {
    await testDb?.drop();
  });

  it("keep one generic plan of the claim from its first execution, and keep the URL's own options", async () => {
    const url = new URL(testDb.url);
    url.searchParams.set("options", "-c statement_timeout=43210");
    const claimLoop = openClaimLoopDatabase({ connectionString: url.toString() });
    try {
      const plans = await claimLoop.withSession(async (client) => {
        const query: Query = async <Row>(text: string, params: unknown[] = [], name?: string) =>
          (await client.query(name ? { name, text, values: params } : { text, values: params })).rows as Row[];
        for (let run = 0; run < 3; run++) {
          await claimDue(query, {
            workerId: "claim-loop-test",
            limit: 10,
            leaseMarginMs: WORKER_DEFAULTS.leaseMarginMs,
            destinationConcurrency: WORKER_DEFAULTS.destinationConcurrency,
            maxInterruptions: WORKER_DEFAULTS.maxInterruptions,
          });
        }
        return client.query<{ generic_plans: string; custom_plans: string; timeout: string; name: string }>(
          `select generic_plans, custom_plans, current_setting('statement_timeout') as timeout,
                  current_setting('application_name') as name
           from pg_prepared_statements where name = 'outbox_claim'`,
        );
      });
      expect(plans.rows).toEqual([{ generic_plans: "3", custom_plans: "0", timeout: "43210ms", name: CLAIM_LOOP_APPLICATION_NAME }]);
    } finally {
      await claimLoop.close();
    }
  });

  /** Backends of this database named as the claim loop's, and whether one of them has sent the claim. */
  async function claimLoopBackends(): Promise<{ connections: number; claimed: boolean }> {
    const [row] = await testDb.database.query<{ connections: number; claimed: boolean }>(
      `select count(*)::int as connections, coalesce(bool_or(query like '%with leased as%'), false) as claimed
       from pg_stat_activity where datname = current_database() and application_name = $1`,
      [CLAIM_LOOP_APPLICATION_NAME],
    );
    return row ?? { connections: 0, claimed: false };
  }

  /** The first reading that shows the claim (a backend's last statement: the next may be a record). */
  async function claimSeen(): Promise<{ connections: number; claimed: boolean } | undefined> {
    const backends = await claimLoopBackends();
    return backends.claimed ? backends : undefined;
  }

  it("are where the service's worker claims, and close with it", async () => {
    const harness = await startHarness(testDb, {}, { api: false });
    try {
      const seen = await eventually(claimSeen, 20_000, "a claim on the claim loop's connections");
      expect(seen.claimed).toBe(true);
      expect(seen.connections).toBeGreaterThanOrEqual(1);
      expect(seen.connections).toBeLessThanOrEqual(3);
    } finally {
      await harness.stop();
    }
    const closed = await eventually(async () => ((await claimLoopBackends()).connections === 0 ? true : undefined), 20_000, "closed");
    expect(closed).toBe(true);
  });

  it("are where a library worker claims, made from the application's pool's options", async () => {
    const pool = new pg.Pool({ connectionString: testDb.url });
    const outbox = createOutbox({ pool, allowInsecureUrls: true });
    const worker = outbox.worker();
    try {
      await worker.start();
      const seen = await eventually(claimSeen, 20_000, "a claim on the claim loop's connections");
      expect(seen.claimed).toBe(true);
    } finally {
      await worker.stop();
      await outbox.close();
      await pool.end();
    }
    const closed = await eventually(async () => ((await claimLoopBackends()).connections === 0 ? true : undefined), 20_000, "closed");
    expect(closed).toBe(true);
  });
});
