import { setMaxListeners } from "node:events";
import type { ClaimedDelivery } from "../sql/claim.js";

/**
 * The slots: at most `concurrency` attempts in flight, each started the moment its claim returns
 * (nothing waits in memory, so a worker that dies holds only attempts that were really under way).
 */
export class Dispatcher {
  private inFlight = 0;
  /** Attempts in flight per destination. */
  private readonly perDestination = new Map<string, number>();
  private readonly shutdown = new AbortController();
  private readonly drained = new Set<() => void>();

  constructor(
    private readonly options: {
      concurrency: number;
      /** One attempt; resolves when it has ended (its record handed on). Aborted by `abort()`. */
      attempt: (delivery: ClaimedDelivery, signal: AbortSignal) => Promise<void>;
      /** A slot freed: the attempt to `destination` ended. */
      onFree: (destination: string) => void;
    },
  ) {
    setMaxListeners(0, this.shutdown.signal);
  }

  get free(): number {
    return this.options.concurrency - this.inFlight;
  }

  get busy(): number {
    return this.inFlight;
  }

  /** Attempts in flight to these destinations. */
  heldBy(destinations: Iterable<string>): number {
    let held = 0;
    for (const destination of destinations) held += this.perDestination.get(destination) ?? 0;
    return held;
  }

  start(delivery: ClaimedDelivery): void {
    const { destination } = delivery;
    this.inFlight++;
    this.perDestination.set(destination, (this.perDestination.get(destination) ?? 0) + 1);
    void this.options.attempt(delivery, this.shutdown.signal).finally(() => {
      this.inFlight--;
      const left = (this.perDestination.get(destination) ?? 1) - 1;
      if (left > 0) this.perDestination.set(destination, left);
      else this.perDestination.delete(destination);
      if (this.inFlight === 0) for (const done of this.drained) done();
      this.options.onFree(destination);
    });
  }

  /** Resolves when nothing is in flight, or after `timeoutMs`. */
  idle(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.drained.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.drained.add(done);
    });
  }

  /** Cuts every attempt in flight short (they end as interrupted). */
  abort(): void {
    this.shutdown.abort();
  }
}
