/**
 * A latch the claim loop sleeps on: `wait` resolves at the next `wake()` (or at once when one came
 * since the last wait), else after the timeout. Resolves true when it timed out.
 */
export class Wake {
  private pending = false;
  private resolve: ((timedOut: boolean) => void) | undefined;

  wake(): void {
    const resolve = this.resolve;
    if (resolve) {
      this.resolve = undefined;
      resolve(false);
    } else this.pending = true;
  }

  wait(timeoutMs: number): Promise<boolean> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.resolve = undefined;
        resolve(true);
      }, timeoutMs);
      this.resolve = (timedOut) => {
        clearTimeout(timer);
        resolve(timedOut);
      };
    });
  }
}
