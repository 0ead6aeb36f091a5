/**
 * Batching without a timer. Up to `concurrency` batches run at once; an item that arrives while
 * they are all running waits, and the waiting items leave together as one batch when a slot frees.
 * So a lone item runs at once, and under load each round trip carries everything that queued
 * behind the one before it. Items with the same key never share a batch, nor run while another
 * item with that key is running: they wait for it. Without `key`, no two items conflict.
 *
 * `run` may call `release` once its round trip is over and before it settles the items: the slot
 * and the batch's keys are free from then on, so the next batch is on the wire while this one's
 * callers are answered. A batch that never calls it holds its slot until `run` settles.
 */
/**
 * Batches of creates, and of reports, in flight at once per process unless configured: with one,
 * everything that queued behind it leaves as one statement as soon as it answers, which measured
 * faster than two (smaller statements, more commits; docs/benchmarks.md).
 */
export const STATEMENT_CONCURRENCY = 1;

export class NaturalBatcher<T> {
  private waiting: T[] = [];
  private readonly runningKeys = new Set<string>();
  private running = 0;

  constructor(
    private readonly options: {
      concurrency: number;
      maxBatch: number;
      key?: (item: T) => string;
      /** Must settle every item itself; a rejection here is a bug and is passed to `onCrash`. */
      run: (batch: T[], release: () => void) => Promise<void>;
      onCrash: (error: unknown, batch: T[]) => void;
    },
  ) {}

  add(item: T): void {
    this.waiting.push(item);
    this.dispatch();
  }

  private dispatch(): void {
    while (this.running < this.options.concurrency && this.waiting.length > 0) {
      const { batch, keys } = this.takeBatch();
      if (batch.length === 0) return;
      this.running++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.running--;
        for (const key of keys) this.runningKeys.delete(key);
        this.dispatch();
      };
      void this.options
        .run(batch, release)
        .catch((error: unknown) => this.options.onCrash(error, batch))
        .finally(release);
    }
  }

  /** The oldest waiting items whose keys are free, one per key, up to `maxBatch`; their keys are running from here on. */
  private takeBatch(): { batch: T[]; keys: string[] } {
    const keyOf = this.options.key;
    if (!keyOf) return { batch: this.waiting.splice(0, this.options.maxBatch), keys: [] };
    const batch: T[] = [];
    const keys: string[] = [];
    const left: T[] = [];
    for (const item of this.waiting) {
      const key = keyOf(item);
      if (batch.length < this.options.maxBatch && !this.runningKeys.has(key)) {
        this.runningKeys.add(key);
        keys.push(key);
        batch.push(item);
      } else left.push(item);
    }
    this.waiting = left;
    return { batch, keys };
  }
}
