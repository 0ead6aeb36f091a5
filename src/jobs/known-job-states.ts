import { BoundedMap } from "../bounded-map.js";
import type { JobState } from "./job-sql.js";

/*
 * The jobs this process has just written, as it wrote them: a create knows its job and projects
 * exactly (the insert returns them with the job row's version), and so does a report it applied.
 * The next report on such a job plans its write from here instead of reading the job first: one
 * round trip instead of two. Nothing here is trusted beyond a guess: the write applies only if the
 * job row still has the remembered version, as after a read. Another process, the deadline sweeper
 * or a locked report that moved the job makes the guess stale; that write then changes nothing, the
 * state is forgotten and the report reads the job as any other. A report the guess would not write
 * (a repeated terminal report, an unknown project, a conflict) is decided on a read, never on it.
 */

/** A job as this process last wrote it: its row, its projects and the job row's version. */
export type KnownJob = Omit<JobState, "now">;

/** The database's clock as this process last saw it, for the instants a report stamps without a read. */
export class DatabaseClock {
  /** Database time minus local time, from the last statement that returned the database's now(). */
  private offsetMs = 0;

  /** @param localNow the local clock; injected by tests. */
  constructor(private readonly localNow: () => number = Date.now) {}

  /**
   * A statement that has just answered saw the database's now() as `databaseNow` (its
   * transaction's start, so at most one round trip earlier).
   */
  observe(databaseNow: Date): void {
    this.offsetMs = databaseNow.getTime() - this.localNow();
  }

  /**
   * The database's now() as it would be read at this instant, never before `floor` (the job's last
   * write): a job's timestamps never go back, whatever the two clocks do in between.
   */
  now(floor: Date): Date {
    return new Date(Math.max(this.localNow() + this.offsetMs, floor.getTime()));
  }
}

/** The jobs this process has just written, at most `capacity` (the least recently written goes first). */
export class KnownJobStates {
  private readonly states: BoundedMap<string, KnownJob>;

  /**
   * @param capacity the most jobs remembered; 0 remembers none.
   * @param clock the database's clock, for the instants of a report planned from here.
   */
  constructor(
    capacity: number,
    readonly clock: DatabaseClock = new DatabaseClock(),
  ) {
    this.states = new BoundedMap(capacity);
  }

  /** The job as this process last wrote it (a guess: see above). */
  get(jobId: string): KnownJob | undefined {
    return this.states.get(jobId);
  }

  /** Remembers a job as just written. */
  remember(state: KnownJob): void {
    this.states.set(state.job.id, state);
  }

  forget(jobId: string): void {
    this.states.delete(jobId);
  }
}
