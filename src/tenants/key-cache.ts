/** How many keys a cache holds by default. */
export const DEFAULT_KEY_CACHE_SIZE = 10_000;

/**
 * API keys seen valid in this process: key hash → tenant id, at most `capacity` of them (the
 * least recently used goes first). Unknown and revoked keys are never put in. An entry says only
 * that the key was valid once: whoever trusts it must check the key again where it matters (the
 * create statement does, job-sql.ts).
 */
export class ApiKeyCache {
  private readonly tenants = new Map<string, string>();

  constructor(private readonly capacity = DEFAULT_KEY_CACHE_SIZE) {}

  get(keyHash: string): string | undefined {
    const tenantId = this.tenants.get(keyHash);
    if (tenantId !== undefined) {
      // A Map keeps insertion order: re-inserting makes this key the most recently used.
      this.tenants.delete(keyHash);
      this.tenants.set(keyHash, tenantId);
    }
    return tenantId;
  }

  set(keyHash: string, tenantId: string): void {
    this.tenants.delete(keyHash);
    this.tenants.set(keyHash, tenantId);
    if (this.tenants.size > this.capacity) {
      const oldest = this.tenants.keys().next();
      if (!oldest.done) this.tenants.delete(oldest.value);
    }
  }

  delete(keyHash: string): void {
    this.tenants.delete(keyHash);
  }

  get size(): number {
    return this.tenants.size;
  }
}
