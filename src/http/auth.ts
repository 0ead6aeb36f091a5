import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { Database } from "../db/client.js";
import { apiKeyPrefix } from "../tenants/credentials.js";
import { authenticateApiKey } from "../tenants/tenant-service.js";
import { sendError } from "./errors.js";

/** Set by apiKeyAuth: the caller's tenant, and the visible prefix of the key used (the rate-limit key). */
export type AppEnv = { Variables: { tenantId: string; apiKeyPrefix: string } };

function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}

/** Customer routes: a valid, unrevoked API key; its tenant scopes every query. */
export function apiKeyAuth(database: Database): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = bearer(c.req.header("authorization"));
    if (!key) return sendError(c, 401, "UNAUTHORIZED", "missing Authorization: Bearer <api key>");
    const tenantId = await authenticateApiKey(database, key);
    if (!tenantId) return sendError(c, 401, "UNAUTHORIZED", "invalid or revoked API key");
    c.set("tenantId", tenantId);
    c.set("apiKeyPrefix", apiKeyPrefix(key));
    await next();
  };
}

/** Internal routes: the INTERNAL_API_TOKEN; with none configured the routes are closed. */
export function internalAuth(token: string | undefined): MiddlewareHandler {
  const expected = token ? createHash("sha256").update(token).digest() : undefined;
  return async (c, next) => {
    if (!expected) return sendError(c, 404, "NOT_FOUND", "internal API is disabled (INTERNAL_API_TOKEN is not set)");
    const presented = bearer(c.req.header("authorization"));
    const actual = createHash("sha256").update(presented ?? "").digest();
    if (!presented || !timingSafeEqual(actual, expected)) {
      return sendError(c, 401, "UNAUTHORIZED", "invalid internal token");
    }
    await next();
  };
}
