/**
 * The destinations the last claim left at their cap, and when room for them is worth a claim: once
 * `wanted` of their attempts have ended (the smallest claim worth a round trip, at most half the cap
 * and what this worker holds). Room opens as an attempt ends: the claim no longer counts it, though
 * its record may still be on its way.
 */
export class CappedRoom {
  private destinations = new Set<string>();
  private wanted = 1;
  private freed = 0;

  /** After a claim: the destinations it reported at their cap, and how many attempts to them this worker holds. */
  reset(destinations: string[], held: (destinations: Iterable<string>) => number, minClaim: number, cap: number): void {
    this.destinations = new Set(destinations);
    this.freed = 0;
    this.wanted = Math.max(1, Math.min(minClaim, Math.floor(cap / 2), held(this.destinations)));
  }

  /** Whether any destination waits for room. */
  get any(): boolean {
    return this.destinations.size > 0;
  }

  /** An attempt to `destination` ended; true when the room freed is now worth a claim. */
  ended(destination: string): boolean {
    return this.destinations.has(destination) && ++this.freed >= this.wanted;
  }
}
