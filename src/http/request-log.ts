import type { MiddlewareHandler } from "hono";
import { requestId } from "hono/request-id";
import type { Logger } from "pino";

/** Probes and scrapes arrive every few seconds; their lines are debug so they do not drown the rest. */
const QUIET_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

/** `X-Request-Id` in (when it is a sane token) or a new uuid, echoed on the response. */
export const assignRequestId = requestId();

/**
 * One pino line per request, carrying its request id. Its fields are this middleware's own
 * primitives, none named like a credential, so the line skips the logger's redaction by field name
 * (about 12 µs a line, the costliest step of a request's log): a credential in the path is still
 * scrubbed by shape and by value where the line is written (src/logger.ts).
 */
export function logRequests(logger: Logger): MiddlewareHandler {
  const lines = logger.child({}, { redact: { paths: [] } });
  return async (c, next) => {
    const started = performance.now();
    await next();
    const level = QUIET_PATHS.has(c.req.path) ? "debug" : c.res.status >= 500 ? "error" : "info";
    lines[level](
      {
        requestId: c.get("requestId") as string | undefined,
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        durationMs: Math.round(performance.now() - started),
      },
      "request",
    );
  };
}
