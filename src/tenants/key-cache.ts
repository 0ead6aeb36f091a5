import { BoundedMap } from "../bounded-map.js";

/** How many keys a cache holds by default. */
export const DEFAULT_KEY_CACHE_SIZE = 10_000;

/**
 * API keys seen valid in this process: key hash → tenant id, at most `capacity` of them (the
 * least recently used goes first). Unknown and revoked keys are never put in. An entry says only
 * that the key was valid once: whoever trusts it must check the key again where it matters (the
 * create statement does, job-sql.ts).
 */
export class ApiKeyCache {
  private readonly tenants: BoundedMap<string, string>;

  constructor(capacity = DEFAULT_KEY_CACHE_SIZE) {
    this.tenants = new BoundedMap(capacity);
  }

  get(keyHash: string): string | undefined {
    return this.tenants.get(keyHash);
  }

  set(keyHash: string, tenantId: string): void {
    this.tenants.set(keyHash, tenantId);
  }

  delete(keyHash: string): void {
    this.tenants.delete(keyHash);
  }

  get size(): number {
    return this.tenants.size;
  }
}
