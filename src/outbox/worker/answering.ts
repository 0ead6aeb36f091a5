/**
 * The destinations this worker has seen answer quickly: an HTTP answer (any status) within
 * `slowAfterMs`, at most `slowAfterMs` ago. Only these may hold more than the slow cap: a destination
 * starts at the slow cap and earns the fast one by answering, so one that never answers (it hangs, or
 * drops every connection) never holds more than the slow cap, even in its first second.
 */
export class AnsweringDestinations {
  /** Destination → when it last answered within `slowAfterMs`. */
  private readonly answeredAt = new Map<string, number>();

  constructor(
    private readonly slowAfterMs: number,
    /** Milliseconds on a monotonic clock. @defaultValue performance.now */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** An attempt to `destination` ended: with an HTTP answer (`answered`) after `durationMs`. */
  ended(destination: string, answered: boolean, durationMs: number): void {
    if (answered && durationMs < this.slowAfterMs) this.answeredAt.set(destination, this.now());
  }

  /** The destinations that answered quickly within the last `slowAfterMs`; older ones are forgotten. */
  list(): string[] {
    const since = this.now() - this.slowAfterMs;
    const fast: string[] = [];
    for (const [destination, at] of this.answeredAt) {
      if (at >= since) fast.push(destination);
      else this.answeredAt.delete(destination);
    }
    return fast;
  }
}
