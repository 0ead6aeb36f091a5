import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryOn } from "../src/db/client.js";
import { claimDue } from "../src/outbox/sql/claim.js";
import { createSeededDatabase, type SeededDatabase } from "./support/database.js";

/*
 * A claim reads two batches' worth of due rows: a destination with less room than its share of
 * them leaves the rest of the batch to the other destinations' rows among them.
 */

const NARROW = "http://127.0.0.1:9/narrow";
const WIDE = "http://127.0.0.2:9/wide";

let seeded: SeededDatabase;
let client: pg.Client;

beforeAll(async () => {
  seeded = await createSeededDatabase("room", [NARROW, WIDE], 200);
  client = seeded.client;
  // The two destinations' rows alternate in due order: narrow, wide, narrow, wide, …
  await client.query(
    `update webhook_outbox.webhook_deliveries d
     set next_attempt_at = now() - interval '1 hour' + (2 * o.n + (d.url = $1)::int) * interval '1 millisecond'
     from (select id, row_number() over (partition by url order by id) as n from webhook_outbox.webhook_deliveries) o
     where o.id = d.id`,
    [WIDE],
  );
  await client.query("analyze webhook_outbox.webhook_deliveries");
});

afterAll(async () => {
  await seeded?.drop();
});

describe("a claim beside a destination with little room", () => {
  it("fills its batch from the other destination's rows", async () => {
    await client.query("begin");
    try {
      const claim = await claimDue(queryOn(client), {
        workerId: "room",
        limit: 16,
        batchSize: 16,
        leaseMarginMs: 5_000,
        // The narrow destination is slow (2 slots); the wide one fast (up to 100).
        destinationConcurrency: 2,
        slowAfterMs: 1_000,
        fastDestinationConcurrency: 100,
        fastDestinations: ["127.0.0.2:9"],
        maxInterruptions: 5,
      });
      const per = (destination: string) => claim.deliveries.filter((delivery) => delivery.destination === destination).length;
      // 32 rows read, 16 of each: 2 of the narrow one's (its room), 14 of the wide one's. Reading one
      // batch's worth would have found only 8 of the wide one's.
      expect({ narrow: per("127.0.0.1:9"), wide: per("127.0.0.2:9"), total: claim.deliveries.length }).toEqual({
        narrow: 2,
        wide: 14,
        total: 16,
      });
      expect(claim.capped).toEqual(["127.0.0.1:9"]);
    } finally {
      await client.query("rollback");
    }
  });
});
