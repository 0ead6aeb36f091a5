import { and, desc, eq, gt, isNull, or, sql } from "drizzle-orm";
import type { Database } from "../db/client.js";
import { apiKeys, signingSecrets, tenants } from "../db/schema.js";
import { AppError } from "../errors.js";
import { apiKeyPrefix, generateApiKey, generateSigningSecret, hashApiKey, looksLikeApiKey } from "./credentials.js";
import { isUuid } from "../uuid.js";


/** A tenant named by its id or, when unambiguous, by its name. */
export async function findTenant(database: Database, ref: string): Promise<{ id: string; name: string }> {
  const rows = await database.db
    .select({ id: tenants.id, name: tenants.name })
    .from(tenants)
    .where(isUuid(ref) ? eq(tenants.id, ref) : eq(tenants.name, ref))
    .limit(2);
  const [tenant] = rows;
  if (!tenant) throw new AppError(404, "TENANT_NOT_FOUND", `no tenant with id or name "${ref}"`);
  if (rows.length > 1) throw new AppError(409, "TENANT_AMBIGUOUS", `several tenants are named "${ref}": use the tenant id`);
  return tenant;
}

export interface CreatedApiKey {
  tenantId: string;
  apiKey: string;
  prefix: string;
}

/** A further API key for the tenant; returned in clear this once only, stored as its sha256. */
export async function createApiKey(database: Database, tenantRef: string): Promise<CreatedApiKey> {
  const tenant = await findTenant(database, tenantRef);
  const key = generateApiKey();
  await database.db.insert(apiKeys).values({ tenantId: tenant.id, keyHash: key.hash, prefix: key.prefix });
  return { tenantId: tenant.id, apiKey: key.key, prefix: key.prefix };
}

export interface RevokedApiKey {
  tenantId: string;
  prefix: string;
  revokedAt: Date;
  alreadyRevoked: boolean;
}

/**
 * Revokes a key named by its visible prefix (`wo_xxxxxxxx`) or by the whole key. Revoked keys
 * get 401 from the next request on; revoking twice keeps the first revocation time.
 */
export async function revokeApiKey(database: Database, prefixOrKey: string): Promise<RevokedApiKey> {
  const byWholeKey = looksLikeApiKey(prefixOrKey) && prefixOrKey.length > apiKeyPrefix(prefixOrKey).length;
  const match = byWholeKey ? eq(apiKeys.keyHash, hashApiKey(prefixOrKey)) : eq(apiKeys.prefix, prefixOrKey);
  return database.transactionDb(async (tx) => {
    const [key] = await tx.select().from(apiKeys).where(match).for("update");
    if (!key) throw new AppError(404, "API_KEY_NOT_FOUND", `no API key ${byWholeKey ? "matches that key" : `with prefix "${prefixOrKey}"`}`);
    if (key.revokedAt) return { tenantId: key.tenantId, prefix: key.prefix, revokedAt: key.revokedAt, alreadyRevoked: true };
    const [revoked] = await tx
      .update(apiKeys)
      .set({ revokedAt: sql`now()` })
      .where(eq(apiKeys.id, key.id))
      .returning({ revokedAt: apiKeys.revokedAt });
    return { tenantId: key.tenantId, prefix: key.prefix, revokedAt: revoked?.revokedAt ?? new Date(), alreadyRevoked: false };
  });
}

export interface ApiKeySummary {
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

export async function listApiKeys(database: Database, tenantRef: string): Promise<ApiKeySummary[]> {
  const tenant = await findTenant(database, tenantRef);
  return database.db
    .select({ prefix: apiKeys.prefix, createdAt: apiKeys.createdAt, revokedAt: apiKeys.revokedAt })
    .from(apiKeys)
    .where(eq(apiKeys.tenantId, tenant.id))
    .orderBy(desc(apiKeys.createdAt));
}

export interface RotatedSecret {
  tenantId: string;
  signingSecret: string;
  /** When the secrets that were active before this rotation stop signing. */
  previousSecretsExpireAt: Date;
}

/**
 * Adds a new signing secret and lets every active older one expire after `overlapMs`. During the
 * overlap each delivery's `webhook-signature` carries one entry per active secret (the claim
 * query selects them newest first), so receivers can switch secrets without dropping a webhook.
 */
export async function rotateSigningSecret(database: Database, tenantRef: string, overlapMs: number): Promise<RotatedSecret> {
  const tenant = await findTenant(database, tenantRef);
  const signingSecret = generateSigningSecret();
  const expiresAt = sql`now() + ${overlapMs} * interval '1 millisecond'`;
  return database.transactionDb(async (tx) => {
    // Serialises concurrent rotations of one tenant.
    await tx.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, tenant.id)).for("update");
    await tx
      .update(signingSecrets)
      .set({ expiresAt })
      .where(
        and(
          eq(signingSecrets.tenantId, tenant.id),
          or(isNull(signingSecrets.expiresAt), gt(signingSecrets.expiresAt, expiresAt)),
        ),
      );
    const [inserted] = await tx
      .insert(signingSecrets)
      .values({ tenantId: tenant.id, secret: signingSecret })
      .returning({ createdAt: signingSecrets.createdAt });
    // created_at is the transaction's now(), the same instant the expiry above was computed from.
    const createdAt = inserted?.createdAt ?? new Date();
    return { tenantId: tenant.id, signingSecret, previousSecretsExpireAt: new Date(createdAt.getTime() + overlapMs) };
  });
}
