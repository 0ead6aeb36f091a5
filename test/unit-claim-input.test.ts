import { describe, expect, it } from "vitest";
import type { Query } from "../src/db/client.js";
import { claimDue, claimSql } from "../src/outbox/sql/claim.js";

/** A Query that records what would be sent and answers nothing. */
function recording(sent: string[]): Query {
  return async <Row>(text: string): Promise<Row[]> => {
    sent.push(text);
    return [];
  };
}

const input = { workerId: "unit", leaseMarginMs: 5_000, destinationConcurrency: 64, maxInterruptions: 5 };

describe("the claim's limit and batch size", () => {
  it("refuses a limit outside 1 to the batch size, and a batch size that is no positive integer, before anything is sent", async () => {
    const sent: string[] = [];
    await expect(claimDue(recording(sent), { ...input, limit: 97, batchSize: 96 })).rejects.toThrow(RangeError);
    await expect(claimDue(recording(sent), { ...input, limit: 0 })).rejects.toThrow(RangeError);
    await expect(claimDue(recording(sent), { ...input, limit: 2.5, batchSize: 96 })).rejects.toThrow(RangeError);
    expect(() => claimSql(0)).toThrow(RangeError);
    expect(() => claimSql(1.5)).toThrow(RangeError);
    expect(sent).toEqual([]);
  });

  it("sends one text per batch size, whatever the limit, reading two batches' worth", async () => {
    const sent: string[] = [];
    await claimDue(recording(sent), { ...input, limit: 96, batchSize: 96 });
    await claimDue(recording(sent), { ...input, limit: 7, batchSize: 96 });
    await claimDue(recording(sent), { ...input, limit: 10 });
    expect(sent[0]).toBe(sent[1]);
    expect(sent[0]).toBe(claimSql(96));
    expect(sent[0]).toContain("limit 192");
    expect(sent[2]).toBe(claimSql(10));
    expect(sent[2]).toContain("limit 20");
  });
});
