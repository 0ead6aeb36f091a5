import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseRetryAfter, type AttemptResult } from "../src/delivery/outcome.js";
import { decideAttempt, destinationResultOf, interruptedRecord, noSecretResult } from "../src/outbox/attempt-record.js";
import { nextAfterFailure } from "../src/outbox/policy.js";
import type { ClaimedDelivery } from "../src/outbox/sql/claim.js";
import type { AttemptRecord } from "../src/outbox/sql/record.js";

const SCHEDULE = [0, 10_000, 60_000];
const CAP = 3_600_000;

function delivery(fields: Partial<ClaimedDelivery> = {}): ClaimedDelivery {
  return {
    id: "6f1c2a52-0000-4000-8000-000000000001",
    tenant_id: "6f1c2a52-0000-4000-8000-000000000002",
    url: "https://hooks.example.com/in",
    destination: "hooks.example.com:443",
    body: '{"event":"job.completed"}',
    attempt_count: 1,
    max_attempts: SCHEDULE.length,
    interruptions: 0,
    retry_delays_ms: SCHEDULE,
    timeout_ms: 10_000,
    connect_timeout_ms: 10_000,
    secrets: ["whsec_c2VjcmV0"],
    ...fields,
  };
}

const STARTED = new Date("2025-01-01T00:00:00.000Z");
const FINISHED = new Date("2025-01-01T00:00:00.250Z");

function answered(status: number, retryAfterMs?: number): AttemptResult {
  return {
    startedAt: STARTED,
    finishedAt: FINISHED,
    durationMs: 250,
    responseStatus: status,
    responseBodyExcerpt: `answer ${status}`,
    retryAfterMs,
    error: null,
  };
}

const failure = (attemptNumber: number, maxAttempts = 3, extra: Partial<Parameters<typeof nextAfterFailure>[0]> = {}) =>
  nextAfterFailure({ attemptNumber, maxAttempts, retryDelaysMs: SCHEDULE, retryable: true, retryAfterCapMs: CAP, ...extra });

describe("nextAfterFailure", () => {
  it("waits the delay scheduled before the next attempt, and fails after the last one", () => {
    expect(failure(1)).toEqual({ outcome: "retry", delayMs: 10_000 });
    expect(failure(2)).toEqual({ outcome: "retry", delayMs: 60_000 });
    expect(failure(3)).toEqual({ outcome: "failed" });
  });

  it("fails a schedule of one attempt at once", () => {
    expect(nextAfterFailure({ attemptNumber: 1, maxAttempts: 1, retryDelaysMs: [0], retryable: true, retryAfterCapMs: CAP })).toEqual({
      outcome: "failed",
    });
  });

  it("fails a permanent failure at once, whatever budget and Retry-After remain", () => {
    expect(failure(1, 3, { retryable: false })).toEqual({ outcome: "failed" });
    expect(failure(1, 3, { retryable: false, retryAfterMs: 5_000 })).toEqual({ outcome: "failed" });
    expect(failure(4, 6, { retryable: false })).toEqual({ outcome: "failed" });
  });

  it("keeps counting attempt numbers across redeliveries: each fresh budget starts the schedule again", () => {
    // Redelivered once (max_attempts = 3 + 3): attempts 4, 5, 6 are the schedule's 1st, 2nd and 3rd.
    expect(failure(4, 6)).toEqual({ outcome: "retry", delayMs: 10_000 });
    expect(failure(5, 6)).toEqual({ outcome: "retry", delayMs: 60_000 });
    expect(failure(6, 6)).toEqual({ outcome: "failed" });
    // Redelivered after one success on its first attempt (max_attempts = 1 + 3).
    expect(failure(2, 4)).toEqual({ outcome: "retry", delayMs: 10_000 });
    expect(failure(3, 4)).toEqual({ outcome: "retry", delayMs: 60_000 });
    expect(failure(4, 4)).toEqual({ outcome: "failed" });
  });

  it("does not count an interrupted attempt: the budget it grew by moves the schedule's start", () => {
    // Attempt 2 was interrupted, so max_attempts grew to 4: attempt 3 is the schedule's 2nd.
    expect(failure(3, 4)).toEqual({ outcome: "retry", delayMs: 60_000 });
    expect(failure(4, 4)).toEqual({ outcome: "failed" });
  });

  it("honours Retry-After beyond the scheduled delay, up to the cap", () => {
    expect(failure(1, 3, { retryAfterMs: 30_000 })).toEqual({ outcome: "retry", delayMs: 30_000 });
    expect(failure(1, 3, { retryAfterMs: CAP })).toEqual({ outcome: "retry", delayMs: CAP });
    expect(failure(1, 3, { retryAfterMs: CAP + 1 })).toEqual({ outcome: "retry", delayMs: CAP });
    expect(failure(1, 3, { retryAfterMs: Infinity })).toEqual({ outcome: "retry", delayMs: CAP });
  });

  it("never waits less than the schedule: a short Retry-After, or a cap below the schedule, changes nothing", () => {
    expect(failure(1, 3, { retryAfterMs: 0 })).toEqual({ outcome: "retry", delayMs: 10_000 });
    expect(failure(1, 3, { retryAfterMs: 9_999 })).toEqual({ outcome: "retry", delayMs: 10_000 });
    expect(failure(2, 3, { retryAfterMs: 90_000, retryAfterCapMs: 1_000 })).toEqual({ outcome: "retry", delayMs: 60_000 });
  });

  it("fails the last attempt even when the receiver asks to be tried again later", () => {
    expect(failure(3, 3, { retryAfterMs: 5_000 })).toEqual({ outcome: "failed" });
  });

  const schedule = fc.array(fc.integer({ min: 0, max: 2_147_483_647 }), { minLength: 1, maxLength: 50 });

  it("retries exactly while budget is left, waiting the schedule's next delay or the capped Retry-After", () => {
    fc.assert(
      fc.property(
        schedule,
        fc.nat({ max: 200 }),
        fc.nat({ max: 49 }),
        fc.option(fc.nat({ max: 10 * CAP }), { nil: undefined }),
        fc.nat({ max: 2 * CAP }),
        (delays, budgetStart, offset, retryAfterMs, cap) => {
          fc.pre(offset < delays.length);
          const attemptNumber = budgetStart + offset + 1;
          const maxAttempts = budgetStart + delays.length;
          const decision = nextAfterFailure({ attemptNumber, maxAttempts, retryDelaysMs: delays, retryable: true, retryAfterMs, retryAfterCapMs: cap });
          if (attemptNumber === maxAttempts) {
            expect(decision).toEqual({ outcome: "failed" });
            return;
          }
          const asked = retryAfterMs === undefined ? 0 : Math.min(retryAfterMs, cap);
          expect(decision).toEqual({ outcome: "retry", delayMs: Math.max(delays[offset + 1] as number, asked) });
          // Never past the budget's delays or the cap, and never negative.
          expect((decision as { delayMs: number }).delayMs).toBeLessThanOrEqual(Math.max(...delays, cap));
          expect((decision as { delayMs: number }).delayMs).toBeGreaterThanOrEqual(0);
        },
      ),
    );
  });

  it("never retries once the attempt number has reached the budget, nor a permanent failure", () => {
    fc.assert(
      fc.property(schedule, fc.nat({ max: 200 }), fc.nat({ max: 10 }), fc.boolean(), (delays, budgetStart, past, retryable) => {
        const maxAttempts = budgetStart + delays.length;
        expect(
          nextAfterFailure({ attemptNumber: maxAttempts + past, maxAttempts, retryDelaysMs: delays, retryable, retryAfterMs: 1, retryAfterCapMs: CAP }),
        ).toEqual({ outcome: "failed" });
        expect(
          nextAfterFailure({ attemptNumber: budgetStart + 1, maxAttempts, retryDelaysMs: delays, retryable: false, retryAfterMs: 1, retryAfterCapMs: CAP }),
        ).toEqual({ outcome: "failed" });
      }),
    );
  });
});

describe("decideAttempt", () => {
  it("settles a 2xx as succeeded, with the answer on the record", () => {
    expect(decideAttempt(delivery({ attempt_count: 2 }), answered(204), CAP)).toEqual<AttemptRecord>({
      deliveryId: delivery().id,
      attemptNumber: 2,
      outcome: "succeeded",
      deliveryStatus: "succeeded",
      retryDelayMs: null,
      responseStatus: 204,
      responseBodyExcerpt: "answer 204",
      errorKind: null,
      errorMessage: null,
      startedAt: STARTED,
      finishedAt: FINISHED,
      durationMs: 250,
      destinationResult: "success",
    });
  });

  it("keeps a retried delivery pending for the scheduled delay", () => {
    expect(decideAttempt(delivery({ attempt_count: 1 }), answered(503), CAP)).toMatchObject({
      attemptNumber: 1,
      outcome: "retry",
      deliveryStatus: "pending",
      retryDelayMs: 10_000,
      responseStatus: 503,
      errorKind: "http_status",
      errorMessage: "HTTP 503",
    });
  });

  it("fails the delivery on its last attempt", () => {
    expect(decideAttempt(delivery({ attempt_count: 3 }), answered(500), CAP)).toMatchObject({
      attemptNumber: 3,
      outcome: "failed",
      deliveryStatus: "failed",
      retryDelayMs: null,
      errorMessage: "HTTP 500",
    });
  });

  it("fails a 4xx and a redirect at once, with budget left", () => {
    expect(decideAttempt(delivery(), answered(404), CAP)).toMatchObject({ outcome: "failed", deliveryStatus: "failed", errorKind: "http_status" });
    expect(decideAttempt(delivery(), answered(302), CAP)).toMatchObject({ outcome: "failed", deliveryStatus: "failed", errorKind: "redirect" });
  });

  it("waits a 429's Retry-After, up to the cap it is given", () => {
    expect(decideAttempt(delivery(), answered(429, 120_000), CAP)).toMatchObject({ outcome: "retry", retryDelayMs: 120_000 });
    expect(decideAttempt(delivery(), answered(429, 120_000), 30_000)).toMatchObject({ outcome: "retry", retryDelayMs: 30_000 });
    expect(decideAttempt(delivery(), answered(429, 1_000), CAP)).toMatchObject({ outcome: "retry", retryDelayMs: 10_000 });
  });

  it("bounds a receiver's absurd Retry-After by the cap, from the header to the record", () => {
    for (const header of ["99999999999999999999", "9".repeat(400), "Fri, 31 Dec 9999 23:59:59 GMT"]) {
      const retryAfterMs = parseRetryAfter(header, STARTED.getTime());
      expect(decideAttempt(delivery(), answered(503, retryAfterMs), CAP).retryDelayMs, header).toBe(CAP);
    }
  });

  it("ignores a Retry-After on an answer that is not retried", () => {
    expect(decideAttempt(delivery(), answered(400, 120_000), CAP)).toMatchObject({ outcome: "failed", retryDelayMs: null });
  });

  it("retries a network failure on the schedule, keeping its kind and message", () => {
    const result: AttemptResult = { ...answered(0), responseStatus: null, responseBodyExcerpt: null, error: { kind: "connect", message: "ECONNREFUSED" } };
    expect(decideAttempt(delivery({ attempt_count: 2 }), result, CAP)).toMatchObject({
      outcome: "retry",
      deliveryStatus: "pending",
      retryDelayMs: 60_000,
      responseStatus: null,
      errorKind: "connect",
      errorMessage: "ECONNREFUSED",
    });
  });

  it("indexes a redelivered delivery's schedule from its fresh budget", () => {
    expect(decideAttempt(delivery({ attempt_count: 4, max_attempts: 6 }), answered(500), CAP)).toMatchObject({ attemptNumber: 4, retryDelayMs: 10_000 });
    expect(decideAttempt(delivery({ attempt_count: 6, max_attempts: 6 }), answered(500), CAP)).toMatchObject({ outcome: "failed" });
  });

  it("retries an attempt that could not be signed, stamped with the injected clock and never sent", () => {
    const at = new Date("2030-06-01T12:00:00.000Z");
    const result = noSecretResult(at);
    expect(result).toEqual({
      startedAt: at,
      finishedAt: at,
      durationMs: 0,
      responseStatus: null,
      responseBodyExcerpt: null,
      error: { kind: "other", message: "the tenant has no active signing secret" },
      unsent: true,
    });
    // Never sent, so it says nothing about the destination's health.
    expect(decideAttempt(delivery(), result, CAP)).toMatchObject({
      outcome: "retry",
      errorKind: "other",
      startedAt: at,
      finishedAt: at,
      destinationResult: null,
    });
  });
});

describe("interruptedRecord", () => {
  const aborted: AttemptResult = { ...answered(0), responseStatus: null, responseBodyExcerpt: null, error: { kind: "other", message: "aborted" } };

  it("makes the delivery due again at once, spending nothing", () => {
    expect(interruptedRecord(delivery({ attempt_count: 2, interruptions: 0 }), aborted, 5)).toEqual<AttemptRecord>({
      deliveryId: delivery().id,
      attemptNumber: 2,
      outcome: "interrupted",
      deliveryStatus: "pending",
      retryDelayMs: 0,
      responseStatus: null,
      responseBodyExcerpt: null,
      errorKind: "other",
      errorMessage: "aborted: the worker shut down before the receiver answered",
      startedAt: STARTED,
      finishedAt: FINISHED,
      durationMs: 250,
      destinationResult: null,
    });
  });

  it("is not a failure even on the last attempt of the budget", () => {
    expect(interruptedRecord(delivery({ attempt_count: 3, max_attempts: 3 }), aborted, 5)).toMatchObject({ deliveryStatus: "pending", retryDelayMs: 0 });
  });

  it("keeps whatever answer arrived before the abort", () => {
    expect(interruptedRecord(delivery(), answered(200), 5)).toMatchObject({ outcome: "interrupted", responseStatus: 200, responseBodyExcerpt: "answer 200" });
  });

  it("fails the delivery on its maxInterruptions-th interruption, saying why", () => {
    expect(interruptedRecord(delivery({ interruptions: 3 }), aborted, 5)).toMatchObject({ deliveryStatus: "pending" });
    expect(interruptedRecord(delivery({ interruptions: 4 }), aborted, 5)).toMatchObject({
      outcome: "interrupted",
      deliveryStatus: "failed",
      retryDelayMs: null,
      errorMessage: "interrupted 5 times: each worker that took it stopped before recording an outcome",
    });
    expect(interruptedRecord(delivery({ interruptions: 0 }), aborted, 1)).toMatchObject({ deliveryStatus: "failed", errorMessage: expect.stringContaining("interrupted 1 times") });
  });
});

/*
 * A delivery's life, with the row's arithmetic as the claim (src/outbox/sql/claim.ts) and the record
 * (src/outbox/sql/record.ts) do it and the decisions made by the functions under test:
 *   claim of a pending row:             attempt_count + 1
 *   claim of a row whose lease ran out: interruptions + 1, then either failed (the maxInterruptions-th)
 *                                       or attempt_count + 1 and max_attempts + 1 (the lost attempt is not spent)
 *   record of an interrupted attempt:   interruptions + 1, and max_attempts + 1 when it stays pending
 *   redelivery:                         max_attempts = attempt_count + schedule length (interruptions are kept)
 */
type Event = "fails" | "shutdown" | "crash";

interface Row {
  status: "pending" | "delivering" | "succeeded" | "failed";
  attempt_count: number;
  max_attempts: number;
  interruptions: number;
}

function live(events: Event[], delays: number[], maxInterruptions: number, redeliveries: number) {
  const row: Row = { status: "pending", attempt_count: 0, max_attempts: delays.length, interruptions: 0 };
  const waits: number[] = [];
  /** How each budget ended: its last failed attempt, or its maxInterruptions-th interruption. */
  const endings: Array<"spent" | "interrupted"> = [];
  let failedAttempts = 0;
  let next = 0;
  for (let budget = 0; budget <= redeliveries; budget++) {
    if (budget > 0) {
      row.status = "pending";
      row.max_attempts = row.attempt_count + delays.length;
    }
    while (row.status === "pending" || row.status === "delivering") {
      // The claim.
      if (row.status === "delivering") {
        row.interruptions += 1;
        if (row.interruptions >= maxInterruptions) {
          row.status = "failed";
          endings.push("interrupted");
          break;
        }
        row.max_attempts += 1;
      }
      row.attempt_count += 1;
      row.status = "delivering";
      expect(row.attempt_count).toBeLessThanOrEqual(row.max_attempts);
      const claimed = delivery({ ...row, retry_delays_ms: delays });
      // The attempt.
      const event = events[next++] ?? "fails";
      if (event === "crash") continue;
      const record =
        event === "shutdown"
          ? interruptedRecord(claimed, answered(0), maxInterruptions)
          : decideAttempt(claimed, answered(500), CAP);
      expect(record.attemptNumber).toBe(row.attempt_count);
      if (event === "fails") failedAttempts += 1;
      if (record.outcome === "retry") waits.push(record.retryDelayMs as number);
      // The record.
      if (record.outcome === "interrupted") {
        row.interruptions += 1;
        if (record.deliveryStatus === "pending") row.max_attempts += 1;
      }
      row.status = record.deliveryStatus;
      if (row.status === "failed") endings.push(record.outcome === "interrupted" ? "interrupted" : "spent");
    }
  }
  return { row, waits, endings, failedAttempts };
}

describe("a delivery's budget over its life", () => {
  it("spends one schedule per budget on failed attempts, whatever interruptions come between", () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 3_600_000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.constantFrom<Event>("fails", "fails", "shutdown", "crash"), { maxLength: 40 }),
        fc.integer({ min: 1, max: 6 }),
        fc.nat({ max: 2 }),
        (delays, events, maxInterruptions, redeliveries) => {
          const { row, waits, endings, failedAttempts } = live(events, delays, maxInterruptions, redeliveries);
          expect(row.status).toBe("failed");
          expect(endings).toHaveLength(redeliveries + 1);
          if (endings.every((ending) => ending === "spent")) {
            // Every budget ran its course: its failures waited the schedule's delays after the first, in order.
            expect(row.interruptions).toBeLessThan(maxInterruptions);
            expect(failedAttempts).toBe(delays.length * (redeliveries + 1));
            expect(waits).toEqual(Array.from({ length: redeliveries + 1 }, () => delays.slice(1)).flat());
          } else {
            expect(row.interruptions).toBeGreaterThanOrEqual(maxInterruptions);
            expect(failedAttempts).toBeLessThan(delays.length * (redeliveries + 1));
          }
          // A budget is never spent by more failed attempts than its schedule holds.
          expect(waits.length).toBeLessThanOrEqual((delays.length - 1) * (redeliveries + 1));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("with no interruption, tries each budget exactly as many times as its schedule is long", () => {
    const { row, waits } = live([], [0, 1_000, 2_000, 3_000], 5, 1);
    expect(row).toEqual({ status: "failed", attempt_count: 8, max_attempts: 8, interruptions: 0 });
    expect(waits).toEqual([1_000, 2_000, 3_000, 1_000, 2_000, 3_000]);
  });

  it("after a shutdown and a crash, still waits the schedule in order and grows the budget by two", () => {
    const { row, waits } = live(["fails", "shutdown", "crash", "fails", "fails"], [0, 1_000, 2_000], 5, 0);
    expect(row).toEqual({ status: "failed", attempt_count: 5, max_attempts: 5, interruptions: 2 });
    // The interrupted attempts made it due at once and spent nothing: the schedule goes on where it was.
    expect(waits).toEqual([1_000, 2_000]);
  });
});

describe("destinationResultOf: what an attempt says about its destination's health", () => {
  const failedWith = (kind: "timeout" | "connect" | "dns" | "tls" | "blocked_address" | "other"): AttemptResult => ({
    ...answered(0),
    responseStatus: null,
    responseBodyExcerpt: null,
    error: { kind, message: kind },
  });

  it("an answer counts: 2xx a success, anything else a failure, retried or not", () => {
    expect(decideAttempt(delivery(), answered(200), CAP).destinationResult).toBe("success");
    for (const status of [500, 503, 429, 408, 400, 404, 410, 301]) {
      expect(decideAttempt(delivery(), answered(status), CAP).destinationResult, String(status)).toBe("failure");
    }
    // On the last attempt too: the delivery fails, and so did the destination.
    expect(decideAttempt(delivery({ attempt_count: 3, max_attempts: 3 }), answered(500), CAP)).toMatchObject({
      outcome: "failed",
      destinationResult: "failure",
    });
  });

  it("a network error counts as a failure", () => {
    for (const kind of ["timeout", "connect", "dns", "tls", "blocked_address", "other"] as const) {
      expect(decideAttempt(delivery(), failedWith(kind), CAP).destinationResult, kind).toBe("failure");
    }
  });

  it("an interrupted attempt and one never sent say nothing", () => {
    expect(interruptedRecord(delivery(), failedWith("other"), 5).destinationResult).toBeNull();
    expect(destinationResultOf("retry", noSecretResult())).toBeNull();
    expect(destinationResultOf("interrupted", answered(200))).toBeNull();
  });
});
