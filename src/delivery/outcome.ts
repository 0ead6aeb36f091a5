import type { ErrorKind } from "../db/schema.js";

/** What one HTTP attempt produced, before any retry decision. */
export interface AttemptResult {
  startedAt: Date;
  finishedAt: Date;
  durationMs: number;
  responseStatus: number | null;
  responseBodyExcerpt: string | null;
  retryAfterMs?: number | undefined;
  error: { kind: ErrorKind; message: string } | null;
  /** Never sent (e.g. nothing to sign it with): it says nothing about its destination. */
  unsent?: true;
}

export interface Classification {
  disposition: "succeeded" | "retryable" | "permanent";
  errorKind: ErrorKind | null;
  errorMessage: string | null;
  retryAfterMs?: number | undefined;
}

const RETRYABLE_STATUSES = new Set([408, 429]);
const RETRYABLE_ERRORS = new Set<ErrorKind>(["timeout", "connect", "dns", "tls", "other"]);

/**
 * 2xx succeeds; network errors, timeouts, 5xx, 408 and 429 are retried; redirects, other
 * 3xx/4xx and blocked addresses fail at once.
 */
export function classifyAttempt(result: AttemptResult): Classification {
  if (result.error) {
    return {
      disposition: RETRYABLE_ERRORS.has(result.error.kind) ? "retryable" : "permanent",
      errorKind: result.error.kind,
      errorMessage: result.error.message,
    };
  }
  const status = result.responseStatus ?? 0;
  if (status >= 200 && status < 300) return { disposition: "succeeded", errorKind: null, errorMessage: null };
  if (status >= 300 && status < 400) {
    return { disposition: "permanent", errorKind: "redirect", errorMessage: `redirect ${status} not followed` };
  }
  const retryable = status >= 500 || RETRYABLE_STATUSES.has(status);
  return {
    disposition: retryable ? "retryable" : "permanent",
    errorKind: "http_status",
    errorMessage: `HTTP ${status}`,
    retryAfterMs: retryable ? result.retryAfterMs : undefined,
  };
}

/**
 * `Retry-After` as delta-seconds or an HTTP date (RFC 9110: IMF-fixdate, RFC 850 or asctime, all
 * GMT), in milliseconds from `now`; a date already past is no wait. Anything else is ignored.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = parseHttpDate(text, now);
  return date === undefined ? undefined : Math.max(0, date - now);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MONTH = `(?<month>${MONTHS.join("|")})`;
const TIME = "(?<hour>\\d{2}):(?<minute>\\d{2}):(?<second>\\d{2})";
const DAY_NAME = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const HTTP_DATES = [
  new RegExp(`^${DAY_NAME}, (?<day>\\d{2}) ${MONTH} (?<year>\\d{4}) ${TIME} GMT$`),
  new RegExp(`^(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, (?<day>\\d{2})-${MONTH}-(?<year>\\d{2}) ${TIME} GMT$`),
  new RegExp(`^${DAY_NAME} ${MONTH} (?<day>[ \\d]\\d) ${TIME} (?<year>\\d{4})$`),
];

/** An HTTP date as Unix milliseconds, or undefined when `text` is not one (or names no real moment). */
function parseHttpDate(text: string, now: number): number | undefined {
  const fields = HTTP_DATES.map((pattern) => pattern.exec(text)?.groups).find((groups) => groups !== undefined);
  if (!fields) return undefined;
  const field = (name: string) => Number(fields[name]);
  const [day, hour, minute, second] = [field("day"), field("hour"), field("minute"), field("second")] as const;
  const month = MONTHS.indexOf(fields.month ?? "");
  let year = field("year");
  if (fields.year?.length === 2) {
    // RFC 850's two-digit year: the one with those digits at most 50 years ahead and less than 50 behind.
    const thisYear = new Date(now).getUTCFullYear();
    year += thisYear - (thisYear % 100);
    if (year > thisYear + 50) year -= 100;
    else if (year <= thisYear - 50) year += 100;
  }
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  if (day < 1 || new Date(Date.UTC(year, month, day)).getUTCDate() !== day) return undefined;
  return Date.UTC(year, month, day, hour, minute, second);
}
