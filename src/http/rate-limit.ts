import type { MiddlewareHandler } from "hono";
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRes } from "rate-limiter-flexible";
import type { Database } from "../db/client.js";
import { OUTBOX_SCHEMA } from "../db/schema.js";
import type { AppEnv } from "./auth.js";
import { sendError } from "./errors.js";

const WINDOW_SECONDS = 60;

/**
 * The store client rate-limiter-flexible's Postgres limiter expects (a pg Pool's `query`),
 * served by our Database handle so the limit works on a Postgres server and on PGlite alike.
 */
function storeClient(database: Database) {
  return {
    async query(query: { text: string; values?: unknown[]; name?: string }) {
      const rows = await database.query<Record<string, unknown>>(query.text, query.values ?? [], query.name);
      return { rows, rowCount: rows.length };
    },
  };
}

export interface RateLimitOptions {
  database: Database;
  /** Requests per minute per API key; undefined means no limit. */
  requestsPerMinute: number | undefined;
}

/**
 * API_RATE_LIMIT: a fixed one-minute window per API key, counted in the `webhook_outbox.api_rate_limits` table so
 * every API process shares it. Runs after apiKeyAuth (rejected credentials never count); only the
 * customer routes use it, so internal reports and webhook deliveries never do. Should the table
 * be unreachable, an in-process limiter of the same size stands in rather than failing requests.
 */
export function rateLimit(options: RateLimitOptions): MiddlewareHandler<AppEnv> {
  const limit = options.requestsPerMinute;
  if (limit === undefined) return (_c, next) => next();
  const limiter = new RateLimiterPostgres({
    storeClient: storeClient(options.database),
    storeType: "pool",
    schemaName: OUTBOX_SCHEMA,
    tableName: "api_rate_limits",
    tableCreated: true,
    keyPrefix: "api",
    points: limit,
    duration: WINDOW_SECONDS,
    insuranceLimiter: new RateLimiterMemory({ keyPrefix: "api", points: limit, duration: WINDOW_SECONDS }),
  });
  const policy = `${limit};w=${WINDOW_SECONDS}`;

  return async (c, next) => {
    let state: RateLimiterRes;
    try {
      state = await limiter.consume(c.get("apiKeyPrefix"));
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      const retryAfter = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      c.header("Retry-After", String(retryAfter));
      c.header("RateLimit-Policy", policy);
      c.header("RateLimit-Limit", String(limit));
      c.header("RateLimit-Remaining", "0");
      c.header("RateLimit-Reset", String(retryAfter));
      return sendError(c, 429, "RATE_LIMITED", `more than ${limit} requests in a minute with this API key; retry in ${retryAfter} s`);
    }
    await next();
    c.header("RateLimit-Policy", policy);
    c.header("RateLimit-Limit", String(limit));
    c.header("RateLimit-Remaining", String(state.remainingPoints));
    c.header("RateLimit-Reset", String(Math.max(0, Math.ceil(state.msBeforeNext / 1000))));
  };
}
