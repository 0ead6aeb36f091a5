import type { BenchSettings } from "./settings.js";

/*
 * Every drain (ours and the baselines') first completes BENCH_WARMUP jobs unmeasured; the N
 * measured jobs are written at the same time but come due only later, at a fixed moment. Nothing
 * updates them to release them: an UPDATE of 20,000 rows would leave a dead entry per job in every
 * index of each system's table and slow down whatever drains next.
 */

/** When the measured jobs come due: after seeding, process start and warm-up, with room to spare. */
export function measuredJobsDueAt(settings: BenchSettings): Date {
  return new Date(Date.now() + 10_000 + (settings.warmup + settings.n) / 5);
}

/** Sleeps until the measured jobs are due; fails if the warm-up ran past that moment. */
export async function waitUntilDue(dueAt: Date): Promise<void> {
  const left = dueAt.getTime() - Date.now();
  if (left < 0) throw new Error(`the warm-up ran ${-left} ms past the moment the measured jobs came due; lower BENCH_WARMUP`);
  await new Promise((resolve) => setTimeout(resolve, left));
}
