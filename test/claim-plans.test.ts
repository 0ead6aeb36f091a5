import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryOn } from "../src/db/client.js";
import { claimDue, claimSql } from "../src/outbox/sql/claim.js";
import { RECORD_SQL } from "../src/outbox/sql/record.js";
import { RELEASE_SQL } from "../src/outbox/sql/release.js";
import { createSeededDatabase, type SeededDatabase } from "./support/database.js";

/*
 * The record and the release are prepared once per connection. After five executions Postgres
 * may switch a prepared statement to its generic plan, which cannot see the parameters (a LIMIT $2
 * is guessed at a tenth of the table) and is kept until the table is analyzed again. So the
 * generic plan must be safe too: it reaches webhook_deliveries through an index, never a
 * sequential scan, whatever the table's size. The worker names the claim only while the table's
 * statistics are current (test/claim-statistics.test.ts); its generic plans are checked as the
 * other statements'.
 */

let seeded: SeededDatabase;
let client: pg.Client;

beforeAll(async () => {
  // Enough rows that a plan joining by a guessed row count prefers to hash the whole table.
  seeded = await createSeededDatabase("plans", "http://127.0.0.1:9/hook", 5_000);
  client = seeded.client;
});

afterAll(async () => {
  await seeded?.drop();
});

const STATEMENTS = {
  claim: { sql: claimSql(96), types: "text, int, int, int, int, uuid[], int, int, text[]", args: "'w', 96, 5000, 64, 5, '{}', 1000, 256, '{}'" },
  record: {
    sql: RECORD_SQL,
    types:
      "text, uuid[], int[], text[], text[], int[], int[], text[], text[], text[], timestamptz[], timestamptz[], int[], text[], int, int, int",
    args: `'w', '{${"0".repeat(8)}-0000-0000-0000-${"0".repeat(12)}}', '{1}', '{succeeded}', '{succeeded}', '{null}',
           '{200}', '{ok}', '{null}', '{null}', '{2026-01-01}', '{2026-01-01}', '{1}', '{success}', 10, 30000, 259200000`,
  },
  release: { sql: RELEASE_SQL, types: "text, uuid[]", args: `'w', '{${"0".repeat(8)}-0000-0000-0000-${"0".repeat(12)}}'` },
};

async function plan(name: keyof typeof STATEMENTS, mode: "force_generic_plan" | "force_custom_plan"): Promise<string> {
  const statement = STATEMENTS[name];
  await client.query(`set plan_cache_mode = ${mode}`);
  await client.query(`prepare ${name}_plan(${statement.types}) as ${statement.sql}`);
  try {
    const result = await client.query<Record<string, string>>(`explain execute ${name}_plan(${statement.args})`);
    return result.rows.map((row) => row["QUERY PLAN"]).join("\n");
  } finally {
    await client.query(`deallocate ${name}_plan`);
  }
}

describe("the claim loop's statements", () => {
  for (const name of Object.keys(STATEMENTS) as Array<keyof typeof STATEMENTS>) {
    for (const mode of ["force_generic_plan", "force_custom_plan"] as const) {
      it(`${name}: the ${mode === "force_generic_plan" ? "generic" : "custom"} plan reaches deliveries by index`, async () => {
        const text = await plan(name, mode);
        expect(text).not.toMatch(/Seq Scan on webhook_deliveries/);
        expect(text).toMatch(/Index Scan (using|on) webhook_deliveries_(pkey|claim_idx)/);
      });
    }
  }

  it("claim: kept as a prepared statement only when named, and reports the rows its statistics describe", async () => {
    const query = queryOn(client);
    const claimTen = async (named: boolean) => {
      await client.query("begin");
      try {
        return await claimDue(query, { workerId: "plans", limit: 10, leaseMarginMs: 5_000, destinationConcurrency: 64, maxInterruptions: 5, named });
      } finally {
        await client.query("rollback");
      }
    };
    const prepared = async () =>
      (await client.query<{ name: string }>("select name from pg_prepared_statements where statement like '%webhook_deliveries%'")).rows.map(
        (row) => row.name,
      );
    for (let run = 0; run < 8; run++) expect((await claimTen(false)).deliveries).toHaveLength(10);
    expect(await prepared()).toEqual([]);

    const claim = await claimTen(true);
    expect(claim.deliveries).toHaveLength(10);
    expect(await prepared()).toEqual(["outbox_claim_10"]);
    const [table] = (
      await client.query<{ reltuples: number }>(
        "select reltuples::float8 as reltuples from pg_class where oid = 'webhook_outbox.webhook_deliveries'::regclass",
      )
    ).rows;
    expect(claim.table.rows).toBe(table!.reltuples);
    expect(claim.table.rows).toBeGreaterThanOrEqual(5_000);
    expect(claim.table.liveRows).toBeGreaterThanOrEqual(5_000);
  });

  for (const mode of ["force_generic_plan", "force_custom_plan"] as const) {
    it(`claim: the ${mode === "force_generic_plan" ? "generic" : "custom"} plan updates each claimed row through its own primary-key lookup`, async () => {
      await client.query("analyze webhook_outbox.webhook_deliveries");
      const text = await plan("claim", mode);
      expect(text).toMatch(/Index Cond: \(id = a\.id\)/);
      expect(text).not.toMatch(/Join Filter: \(\w+\.id = a\.id\)/);
    });
  }

  it("claim: the due rows come from the partial claim index", async () => {
    expect(await plan("claim", "force_generic_plan")).toContain("Index Scan using webhook_deliveries_claim_idx");
  });

  it("claim: with a destination open and most of its rows parked, the probe comes from the parked index and nothing is scanned whole", async () => {
    // Many healthy destinations beside it, as in production: the open one is found by its index.
    await client.query(
      `insert into webhook_outbox.destinations (tenant_id, url)
       select tenant_id, 'http://127.0.0.1:9/other/' || g from webhook_outbox.destinations, generate_series(1, 2000) g`,
    );
    await client.query(
      `update webhook_outbox.destinations set state = 'open', open_until = now() - interval '1 second',
              consecutive_failures = 10, first_failure_at = now()
       where url = 'http://127.0.0.1:9/hook'`,
    );
    await client.query(
      `update webhook_outbox.webhook_deliveries set next_attempt_at = 'infinity'
       where id in (select id from webhook_outbox.webhook_deliveries order by id limit 4000)`,
    );
    await client.query("analyze webhook_outbox.webhook_deliveries");
    await client.query("analyze webhook_outbox.destinations");
    try {
      for (const mode of ["force_generic_plan", "force_custom_plan"] as const) {
        const text = await plan("claim", mode);
        expect(text).not.toMatch(/Seq Scan on webhook_deliveries/);
        expect(text).toContain("webhook_deliveries_parked_idx");
        expect(text).toContain("webhook_deliveries_claim_idx");
        expect(text).toMatch(/Index Scan using destinations_unhealthy_idx|Bitmap Index Scan on destinations_unhealthy_idx/);
      }
    } finally {
      await client.query("delete from webhook_outbox.destinations where url like 'http://127.0.0.1:9/other/%'");
      await client.query(
        `update webhook_outbox.destinations set state = 'healthy', open_until = null, consecutive_failures = 0, first_failure_at = null`,
      );
      await client.query(
        `update webhook_outbox.webhook_deliveries set next_attempt_at = now() where next_attempt_at = 'infinity'`,
      );
    }
  });
});
