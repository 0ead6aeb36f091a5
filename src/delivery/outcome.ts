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

/** `Retry-After` as delta-seconds or an HTTP date, in milliseconds from `now`. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
