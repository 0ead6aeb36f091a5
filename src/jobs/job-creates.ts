import type { Query } from "../db/client.js";
import { ApiKeyRejectedError } from "../errors.js";
import * as jobSql from "./job-sql.js";
import { toView, type JobView } from "./job-view.js";
import { NaturalBatcher } from "./natural-batcher.js";

/*
 * Job creation: one statement writes a job and its projects, after checking the caller's API key
 * in that same statement (job-sql.ts). Creates that arrive while the process's create statements
 * are all busy share the next statement, and so one commit. A shared statement that Postgres
 * refuses for its data wrote nothing; each of its creates then goes alone, so one bad create fails
 * by itself. Any other failure (a lost connection, a server shutting down) leaves unknown whether
 * the statement committed: its creates all fail with it, none is retried, none is written twice.
 */

/** Most creates one statement carries. */
const MAX_CREATE_BATCH = 100;

interface PendingCreate {
  insert: jobSql.JobInsert;
  resolve: (view: JobView) => void;
  reject: (error: unknown) => void;
}

export interface JobCreatesOptions {
  query: Query;
  /** Create statements in flight at once; creates arriving while all are busy share the next. */
  concurrency: number;
  /** A new job's deadline, from its creation. */
  jobTimeoutMs: number;
}

export class JobCreates {
  private readonly batcher: NaturalBatcher<PendingCreate>;

  constructor(private readonly options: JobCreatesOptions) {
    this.batcher = new NaturalBatcher<PendingCreate>({
      concurrency: options.concurrency,
      maxBatch: MAX_CREATE_BATCH,
      run: (batch) => this.insertBatch(batch),
      // insertBatch settles every create itself; this only catches a bug, so no caller hangs.
      onCrash: (error, batch) => batch.forEach((create) => create.reject(error)),
    });
  }

  /** Resolves once the job has committed; rejects with ApiKeyRejectedError when its key was refused. */
  create(insert: jobSql.JobInsert): Promise<JobView> {
    return new Promise<JobView>((resolve, reject) => this.batcher.add({ insert, resolve, reject }));
  }

  private async insertBatch(batch: PendingCreate[]): Promise<void> {
    let inserted: jobSql.InsertedJob[];
    try {
      inserted = await jobSql.insertJobs(
        this.options.query,
        batch.map((create) => create.insert),
        this.options.jobTimeoutMs,
      );
    } catch (error) {
      if (batch.length === 1 || !refusedForItsData(error)) return batch.forEach((create) => create.reject(error));
      await Promise.all(batch.map((create) => this.insertBatch([create])));
      return;
    }
    batch.forEach((create, at) => {
      const job = inserted[at];
      if (job) create.resolve(toView(job.job, job.projects));
      else create.reject(new ApiKeyRejectedError());
    });
  }
}

/**
 * Postgres refused the statement for a value in it (SQLSTATE class 22, data exception, or 23,
 * integrity constraint violation): it ran, failed and wrote nothing, and the same values alone
 * would fail the same way.
 */
function refusedForItsData(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^2[23][0-9A-Z]{3}$/.test(code);
}
