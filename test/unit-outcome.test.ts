import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ERROR_KINDS, type ErrorKind } from "../src/db/schema.js";
import { classifyAttempt, parseRetryAfter, type AttemptResult } from "../src/delivery/outcome.js";

const STARTED = new Date("2025-01-01T00:00:00.000Z");

function answered(status: number, retryAfterMs?: number): AttemptResult {
  return {
    startedAt: STARTED,
    finishedAt: new Date(STARTED.getTime() + 12),
    durationMs: 12,
    responseStatus: status,
    responseBodyExcerpt: "body",
    retryAfterMs,
    error: null,
  };
}

function failed(kind: ErrorKind, message = `${kind} went wrong`): AttemptResult {
  return {
    startedAt: STARTED,
    finishedAt: STARTED,
    durationMs: 0,
    responseStatus: null,
    responseBodyExcerpt: null,
    error: { kind, message },
  };
}

describe("classifyAttempt: HTTP statuses", () => {
  it.each([200, 201, 202, 204, 206, 299])("%d succeeds, with no error", (status) => {
    expect(classifyAttempt(answered(status, 5_000))).toEqual({ disposition: "succeeded", errorKind: null, errorMessage: null });
  });

  it.each([300, 301, 302, 303, 304, 307, 308, 399])("%d is a redirect: never followed, failed at once", (status) => {
    expect(classifyAttempt(answered(status, 5_000))).toEqual({
      disposition: "permanent",
      errorKind: "redirect",
      errorMessage: `redirect ${status} not followed`,
    });
  });

  it.each([408, 429, 500, 502, 503, 504, 599])("%d is retried, and keeps the receiver's Retry-After", (status) => {
    expect(classifyAttempt(answered(status, 5_000))).toEqual({
      disposition: "retryable",
      errorKind: "http_status",
      errorMessage: `HTTP ${status}`,
      retryAfterMs: 5_000,
    });
    expect(classifyAttempt(answered(status)).retryAfterMs).toBeUndefined();
  });

  it.each([400, 401, 403, 404, 405, 409, 410, 413, 422, 428, 431, 451, 499])(
    "%d fails at once, and its Retry-After is ignored",
    (status) => {
      expect(classifyAttempt(answered(status, 5_000))).toEqual({
        disposition: "permanent",
        errorKind: "http_status",
        errorMessage: `HTTP ${status}`,
        retryAfterMs: undefined,
      });
    },
  );

  it.each([100, 101, 103, 199])("an informational %d as the final answer fails at once", (status) => {
    expect(classifyAttempt(answered(status))).toMatchObject({ disposition: "permanent", errorKind: "http_status" });
  });

  it("is total over 100..599: each status has exactly one disposition, and the error fields agree with it", () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 599 }), fc.option(fc.nat({ max: 86_400_000 }), { nil: undefined }), (status, retryAfterMs) => {
        const classification = classifyAttempt(answered(status, retryAfterMs));
        const expected =
          status >= 200 && status < 300
            ? "succeeded"
            : status >= 500 || status === 408 || status === 429
              ? "retryable"
              : "permanent";
        expect(classification.disposition).toBe(expected);
        expect(classification.errorKind === null).toBe(expected === "succeeded");
        expect(classification.errorMessage === null).toBe(expected === "succeeded");
        expect(classification.errorKind === "redirect").toBe(status >= 300 && status < 400);
        expect(classification.retryAfterMs).toBe(expected === "retryable" ? retryAfterMs : undefined);
      }),
      { numRuns: 1_000 },
    );
    // And every one of the 500, not only a sample.
    const counts = { succeeded: 0, retryable: 0, permanent: 0 };
    for (let status = 100; status <= 599; status++) counts[classifyAttempt(answered(status)).disposition]++;
    expect(counts).toEqual({ succeeded: 100, retryable: 102, permanent: 298 });
  });
});

describe("classifyAttempt: attempts that got no answer", () => {
  it.each(["timeout", "connect", "dns", "tls", "other"] as const)("%s is retried, with its kind and message", (kind) => {
    expect(classifyAttempt(failed(kind, "what happened"))).toEqual({
      disposition: "retryable",
      errorKind: kind,
      errorMessage: "what happened",
    });
  });

  it("a blocked address fails at once: trying again would connect nowhere else", () => {
    expect(classifyAttempt(failed("blocked_address", "10.0.0.1 is a private address"))).toEqual({
      disposition: "permanent",
      errorKind: "blocked_address",
      errorMessage: "10.0.0.1 is a private address",
    });
  });

  it("classifies every error kind, retrying exactly the network failures", () => {
    const retried = ERROR_KINDS.filter((kind) => classifyAttempt(failed(kind)).disposition === "retryable");
    expect(retried).toEqual(["timeout", "connect", "dns", "tls", "other"]);
    for (const kind of ERROR_KINDS) {
      expect(["retryable", "permanent"]).toContain(classifyAttempt(failed(kind)).disposition);
    }
  });

  it("an error wins over a status, and drops any Retry-After", () => {
    const result = { ...answered(200, 5_000), error: { kind: "timeout" as const, message: "body not read in time" } };
    expect(classifyAttempt(result)).toEqual({ disposition: "retryable", errorKind: "timeout", errorMessage: "body not read in time" });
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2025-01-01T00:00:00.000Z");

  it.each([
    ["0", 0],
    ["1", 1_000],
    ["120", 120_000],
    ["007", 7_000],
    ["  30\t", 30_000],
    ["86400", 86_400_000],
  ])("reads delta-seconds %j as %d ms", (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });

  it("reads a huge delta-seconds as a huge delay, which the cap then bounds", () => {
    expect(parseRetryAfter("99999999999999999999", now)).toBe(1e23);
    expect(parseRetryAfter("9".repeat(400), now)).toBeGreaterThan(Number.MAX_SAFE_INTEGER);
  });

  it.each([
    ["Wed, 01 Jan 2025 00:01:00 GMT", 60_000],
    ["Wed, 01 Jan 2025 01:00:00 GMT", 3_600_000],
    ["Thu, 02 Jan 2025 00:00:00 GMT", 86_400_000],
    ["  Wed, 01 Jan 2025 00:00:30 GMT ", 30_000],
    ["Wednesday, 01-Jan-25 00:01:00 GMT", 60_000],
    ["Wed Jan  1 00:01:00 2025", 60_000],
    ["Fri Jan 31 00:00:00 2025", 30 * 86_400_000],
  ])("reads the HTTP date %j in the future as %d ms from now", (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });

  it.each(["Tue, 31 Dec 2024 23:59:00 GMT", "Wed, 01 Jan 2025 00:00:00 GMT", "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT"])(
    "reads the HTTP date %j, not in the future, as no wait",
    (value) => {
      expect(parseRetryAfter(value, now)).toBe(0);
    },
  );

  it("measures an HTTP date from the injected now, not from the wall clock", () => {
    const value = "Sun, 06 Nov 1994 08:49:37 GMT";
    const then = Date.UTC(1994, 10, 6, 8, 49, 37);
    expect(parseRetryAfter(value, then - 90_000)).toBe(90_000);
    expect(parseRetryAfter(value, then - 1)).toBe(1);
    expect(parseRetryAfter(value, then + 1)).toBe(0);
  });

  it("reads a two-digit RFC 850 year as the most recent such year not more than 50 years ahead", () => {
    expect(parseRetryAfter("Thursday, 01-Jan-70 00:00:00 GMT", Date.UTC(2025, 0, 1))).toBe(Date.UTC(2070, 0, 1) - Date.UTC(2025, 0, 1));
    expect(parseRetryAfter("Friday, 01-Jan-99 00:00:00 GMT", Date.UTC(2025, 0, 1))).toBe(0);
    expect(parseRetryAfter("Saturday, 01-Jan-00 00:00:00 GMT", Date.UTC(1990, 0, 1))).toBe(Date.UTC(2000, 0, 1) - Date.UTC(1990, 0, 1));
  });

  it.each<[string | undefined, string]>([
    [undefined, "absent"],
    ["", "empty"],
    ["   ", "blank"],
    ["-5", "negative"],
    ["-0", "a signed zero"],
    ["+5", "a sign"],
    ["1.5", "fractional seconds"],
    ["1e3", "exponent notation"],
    ["0x10", "hexadecimal"],
    ["5 s", "a unit"],
    ["10s", "a unit"],
    ["soon", "a word"],
    ["garbage 12", "a word and a number"],
    ["soon 5", "a word and a number"],
    ["Retry 2030", "a word and a year"],
    ["2025-01-01T00:01:00Z", "ISO 8601, not an HTTP date"],
    ["Wed, 01 Jan 2025 00:01:00", "an IMF date without GMT"],
    ["Wed, 01 Jan 2025 00:01:00 PST", "an IMF date in another zone"],
    ["Wed, 32 Jan 2025 00:01:00 GMT", "a day past the month's end"],
    ["Sat, 29 Feb 2025 00:01:00 GMT", "29 February in a common year"],
    ["Wed, 01 Jan 2025 24:00:00 GMT", "hour 24"],
    ["Wed, 01 Foo 2025 00:01:00 GMT", "no such month"],
    ["Wed Jan  1 00:01:00 2025 extra", "trailing text"],
    ["120, 60", "a list"],
  ])("ignores %j (%s)", (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });

  it("reads an asctime date as GMT whatever the process's time zone", () => {
    const zone = process.env.TZ;
    try {
      for (const tz of ["America/New_York", "Asia/Kolkata", "UTC"]) {
        process.env.TZ = tz;
        expect(parseRetryAfter("Wed Jan  1 00:01:00 2025", now), tz).toBe(60_000);
      }
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it("answers any text with undefined or a delay of at least 0, and any delta-seconds exactly", () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 0, max: 4_102_444_800_000 }), (value, at) => {
        const ms = parseRetryAfter(value, at);
        if (ms !== undefined) expect(ms).toBeGreaterThanOrEqual(0);
      }),
    );
    fc.assert(
      fc.property(fc.nat({ max: 10_000_000 }), fc.constantFrom("", " ", "\t"), (seconds, pad) => {
        expect(parseRetryAfter(`${pad}${seconds}${pad}`, now)).toBe(seconds * 1000);
      }),
    );
  });

  it("reads back any future second as its IMF-fixdate, RFC 850 and asctime forms alike", () => {
    const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const pad = (n: number) => String(n).padStart(2, "0");
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 * 365 * 86_400 }), (secondsAhead) => {
        const at = new Date(now + secondsAhead * 1000);
        const day = DAYS[at.getUTCDay()] as string;
        const month = MONTHS[at.getUTCMonth()] as string;
        const time = `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())}`;
        const year = at.getUTCFullYear();
        const imf = `${day.slice(0, 3)}, ${pad(at.getUTCDate())} ${month} ${year} ${time} GMT`;
        const rfc850 = `${day}, ${pad(at.getUTCDate())}-${month}-${String(year).slice(2)} ${time} GMT`;
        const asctime = `${day.slice(0, 3)} ${month} ${String(at.getUTCDate()).padStart(2, " ")} ${time} ${year}`;
        for (const value of [imf, rfc850, asctime]) expect(parseRetryAfter(value, now), value).toBe(secondsAhead * 1000);
      }),
    );
  });
});
