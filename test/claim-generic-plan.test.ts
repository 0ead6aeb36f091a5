import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryOn } from "../src/db/client.js";
import { claimDue } from "../src/outbox/sql/claim.js";
import { createSeededDatabase, type SeededDatabase } from "./support/database.js";

/*
 * The worker's claim is a prepared statement. Postgres plans its first five executions for their
 * parameters, then makes one generic plan and keeps it from then on if it judges it no dearer than
 * those; otherwise it plans every execution again. With the read's LIMIT a parameter, a generic plan
 * guessed the read at a tenth of the due rows (2,000 of these 20,000) and was never kept.
 */

let seeded: SeededDatabase;
let client: pg.Client;

beforeAll(async () => {
  seeded = await createSeededDatabase("generic-plan", "http://127.0.0.1:9/hook", 20_000);
  client = seeded.client;
  await client.query("analyze webhook_outbox.webhook_deliveries");
});

afterAll(async () => {
  await seeded?.drop();
});

describe("the prepared claim", () => {
  it("settles on its generic plan, for full batches and smaller ones alike", async () => {
    const query = queryOn(client);
    // Batches of 96 and of fewer (a worker with less room free): one statement, one plan.
    for (const limit of [96, 96, 96, 40, 96, 96, 7, 96, 96, 96, 96, 96]) {
      await client.query("begin");
      try {
        const claim = await claimDue(query, {
          workerId: "plans",
          limit,
          batchSize: 96,
          leaseMarginMs: 5_000,
          destinationConcurrency: 1_000,
          maxInterruptions: 5,
          named: true,
        });
        expect(claim.deliveries).toHaveLength(limit);
      } finally {
        await client.query("rollback");
      }
    }
    const { rows } = await client.query<{ name: string; generic_plans: string; custom_plans: string }>(
      "select name, generic_plans, custom_plans from pg_prepared_statements",
    );
    expect(rows).toEqual([{ name: "outbox_claim_96", generic_plans: "7", custom_plans: "5" }]);
  });
});
