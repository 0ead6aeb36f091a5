import { and, eq, isNull } from "drizzle-orm";
import type { Database } from "../db/client.js";
import { apiKeys, signingSecrets, tenants } from "../db/schema.js";
import { apiKeyPrefix, generateApiKey, generateSigningSecret, hashApiKey, hashesMatch, looksLikeApiKey } from "./credentials.js";

export interface CreatedTenant {
  tenantId: string;
  apiKey: string;
  signingSecret: string;
}

/** Creates a tenant with one API key and one signing secret, returned in clear this once only. */
export async function createTenant(database: Database, name: string): Promise<CreatedTenant> {
  const apiKey = generateApiKey();
  const signingSecret = generateSigningSecret();
  const tenantId = await database.transactionDb(async (tx) => {
    const [tenant] = await tx.insert(tenants).values({ name }).returning({ id: tenants.id });
    if (!tenant) throw new Error("tenant insert returned no row");
    await tx.insert(apiKeys).values({ tenantId: tenant.id, keyHash: apiKey.hash, prefix: apiKey.prefix });
    await tx.insert(signingSecrets).values({ tenantId: tenant.id, secret: signingSecret });
    return tenant.id;
  });
  return { tenantId, apiKey: apiKey.key, signingSecret };
}

/**
 * Creates a tenant with one signing secret and no API key (the library's tenants send webhooks and
 * need no HTTP API; `tenant create-key` adds a key later). The secret is returned in clear this once only.
 */
export async function createSigningTenant(database: Database, name: string): Promise<{ tenantId: string; signingSecret: string }> {
  const signingSecret = generateSigningSecret();
  const tenantId = await database.transactionDb(async (tx) => {
    const [tenant] = await tx.insert(tenants).values({ name }).returning({ id: tenants.id });
    if (!tenant) throw new Error("tenant insert returned no row");
    await tx.insert(signingSecrets).values({ tenantId: tenant.id, secret: signingSecret });
    return tenant.id;
  });
  return { tenantId, signingSecret };
}

/** The tenant a bearer key belongs to, or undefined for an unknown or revoked key. */
export async function authenticateApiKey(database: Database, presented: string): Promise<string | undefined> {
  if (!looksLikeApiKey(presented)) return undefined;
  const [row] = await database.db
    .select({ tenantId: apiKeys.tenantId, keyHash: apiKeys.keyHash })
    .from(apiKeys)
    .where(and(eq(apiKeys.prefix, apiKeyPrefix(presented)), isNull(apiKeys.revokedAt)))
    .limit(1);
  if (!row) return undefined;
  return hashesMatch(hashApiKey(presented), row.keyHash) ? row.tenantId : undefined;
}
