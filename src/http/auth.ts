import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { Database } from "../db/client.js";
import { ApiKeyRejectedError } from "../errors.js";
import { apiKeyPrefix, hashApiKey, looksLikeApiKey } from "../tenants/credentials.js";
import { ApiKeyCache } from "../tenants/key-cache.js";
import { authenticateApiKey } from "../tenants/tenant-service.js";
import { sendError } from "./errors.js";

/**
 * Set by apiKeyAuth: the caller's tenant, the visible prefix of the key used (the rate-limit key)
 * and the key's sha256 (what a statement that checks the key itself is given).
 */
export type AppEnv = { Variables: { tenantId: string; apiKeyPrefix: string; apiKeyHash: string } };

/**
 * The routes whose write statement checks the key itself (they pass `apiKeyHash` to
 * JobService.create, whose statement writes nothing for a revoked key): these may take the
 * tenant from the cache, with no lookup of their own. Every other route looks the key up.
 */
const KEY_CHECKED_IN_STATEMENT = new Set(["POST /api/v1/generate", "POST /v1/veo/generate"]);

function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}

/**
 * Customer routes: a valid, unrevoked API key; its tenant scopes every query. A create takes the
 * tenant of a key seen valid before from the process's cache and costs no lookup: its own
 * statement checks the key, so a key revoked from any process is refused from the revocation's
 * commit on. Every other route (the reads, redelivery) looks the key up in api_keys each time.
 * A key found revoked or unknown leaves the cache.
 */
export function apiKeyAuth(database: Database, cache = new ApiKeyCache()): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = bearer(c.req.header("authorization"));
    if (!key) return sendError(c, 401, "UNAUTHORIZED", "missing Authorization: Bearer <api key>");
    if (!looksLikeApiKey(key)) return sendError(c, 401, "UNAUTHORIZED", "invalid or revoked API key");
    const keyHash = hashApiKey(key);
    // A Map lookup by the hash of the presented key: its timing tells nothing about stored keys.
    let tenantId = KEY_CHECKED_IN_STATEMENT.has(`${c.req.method} ${c.req.path}`) ? cache.get(keyHash) : undefined;
    if (tenantId === undefined) {
      tenantId = await authenticateApiKey(database, key);
      if (!tenantId) {
        cache.delete(keyHash);
        return sendError(c, 401, "UNAUTHORIZED", "invalid or revoked API key");
      }
      cache.set(keyHash, tenantId);
    }
    c.set("tenantId", tenantId);
    c.set("apiKeyPrefix", apiKeyPrefix(key));
    c.set("apiKeyHash", keyHash);
    await next();
    if (c.error instanceof ApiKeyRejectedError) cache.delete(keyHash);
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
