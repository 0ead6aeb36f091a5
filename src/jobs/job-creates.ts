import type { Query } from "../db/client.js";
import { ApiKeyRejectedError, IdempotencyKeyReusedError } from "../errors.js";
import * as jobSql from "./job-sql.js";
import { toView, type JobView } from "./job-view.js";
import type { KnownJobStates } from "./known-job-states.js";
import { NaturalBatcher } from "./natural-batcher.js";

/*
 * Job creation: one statement writes a job and its projects, after checking the caller's API key
 * in that same statement (job-sql.ts). Creates that arrive while the process's create statements
 * are all busy share the next statement, and so one commit. A shared statement that Postgres
 * refuses for its data wrote nothing; each of its creates then goes alone, so one bad create fails
 * by itself. Any other failure (a lost connection, a server shutting down) leaves unknown whether
 * the statement committed: its creates all fail with it, none is retried, none is written twice.
 * Each new job is remembered as inserted (known-job-states.ts), so its first report need not read it.
 *
 * A create with an Idempotency-Key already used within IDEMPOTENCY_WINDOW_MS is answered with the
 * job that key made (the same request) or refused (another request). Two creates of one key that
 * arrive together: the statement of the second fails on the key (nothing written), and the
 * create, retried alone, is answered with the first's job once that has committed.
 */

/** How long an Idempotency-Key answers with the job it made. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3_600_000;

/** What a create came to: its job, new or (for a repeated idempotency key) the one made before. */
export interface CreatedJob {
  view: JobView;
  /** True when an earlier request with the same Idempotency-Key and body made this job. */
  replayed: boolean;
}

/** Most creates one statement carries. */
const MAX_CREATE_BATCH = 100;

interface PendingCreate {
  insert: jobSql.JobInsert;
  resolve: (created: CreatedJob) => void;
  reject: (error: unknown) => void;
  /** Statements this create has failed on its idempotency key (another create of the key committing). */
  keyConflicts: number;
}

export interface JobCreatesOptions {
  query: Query;
  /** Create statements in flight at once; creates arriving while all are busy share the next. */
  concurrency: number;
  /** A new job's deadline, from its creation. */
  jobTimeoutMs: number;
  /** Where each new job is remembered as written, so its first report need not read it. */
  known: KnownJobStates;
}

export class JobCreates {
  private readonly batcher: NaturalBatcher<PendingCreate>;

  constructor(private readonly options: JobCreatesOptions) {
    this.batcher = new NaturalBatcher<PendingCreate>({
      concurrency: options.concurrency,
      maxBatch: MAX_CREATE_BATCH,
      run: (batch, release) => this.insertBatch(batch, release),
      // insertBatch settles every create itself; this only catches a bug, so no caller hangs.
      onCrash: (error, batch) => batch.forEach((create) => create.reject(error)),
    });
  }

  /**
   * Resolves once the job has committed (or with the job its idempotency key made before); rejects
   * with ApiKeyRejectedError when its API key was refused, IdempotencyKeyReusedError when its
   * idempotency key was used with another request.
   */
  create(insert: jobSql.JobInsert): Promise<CreatedJob> {
    return new Promise<CreatedJob>((resolve, reject) => this.batcher.add({ insert, resolve, reject, keyConflicts: 0 }));
  }

  /** `release` frees the batcher's slot once the statement has answered, before the creates are settled. */
  private async insertBatch(batch: PendingCreate[], release?: () => void): Promise<void> {
    let inserted: jobSql.InsertedJob[];
    try {
      inserted = await jobSql.insertJobs(
        this.options.query,
        batch.map((create) => create.insert),
        this.options.jobTimeoutMs,
        IDEMPOTENCY_WINDOW_MS,
      );
    } catch (error) {
      const [alone] = batch;
      // Another create of the same key committed first: alone, this one now finds its row.
      if (alone && batch.length === 1 && isKeyConflict(error) && alone.keyConflicts++ < 3) return this.insertBatch(batch);
      if (batch.length === 1 || !refusedForItsData(error)) return batch.forEach((create) => create.reject(error));
      await Promise.all(batch.map((create) => this.insertBatch([create])));
      return;
    }
    release?.();
    const { known } = this.options;
    // Every job of the statement has its transaction's now() as created_at.
    const first = inserted.find((result) => result.kind === "created");
    if (first?.kind === "created") known.clock.observe(first.job.createdAt);
    batch.forEach((create, at) => {
      const result = inserted[at];
      if (result?.kind === "created") {
        known.remember({ job: result.job, projects: result.projects, version: result.version });
        create.resolve({ view: toView(result.job, result.projects), replayed: false });
      } else if (result?.kind === "answered" && result.requestHash === create.insert.requestHash) {
        create.resolve({ view: toView(result.job, result.projects), replayed: true });
      } else if (result?.kind === "answered") create.reject(new IdempotencyKeyReusedError());
      else create.reject(new ApiKeyRejectedError());
    });
  }
}

/** The statement failed because another create of the same idempotency key wrote its row first. */
function isKeyConflict(error: unknown): boolean {
  const fields = error as { code?: unknown; constraint?: unknown } | null;
  return fields?.code === "23505" && fields.constraint === "idempotency_keys_pk";
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
