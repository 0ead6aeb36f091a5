import type { Database } from "../db/client.js";
import { AppError, notFound } from "../errors.js";
import type { NewDelivery } from "../outbox/enqueue.js";
import * as jobSql from "./job-sql.js";
import type { JobRow, ProjectRow } from "./job-sql.js";
import { toView, type JobView } from "./job-view.js";
import type { KnownJobStates } from "./known-job-states.js";
import { NaturalBatcher } from "./natural-batcher.js";
import { jobStatusFromProjects, isTerminalJob, isTerminalProject } from "./status.js";

/*
 * The generation backend's reports on projects: the API's hottest write. A report is one unlocked
 * read, then one statement that writes the project, the job and (on the terminal transition) its
 * webhook row, applied only if the job has not moved since the read. On a job this process has just
 * written (created it, or applied its last report), the read is skipped: the write is planned from
 * the job as written (known-job-states.ts), under the same guard. Reports that arrive while
 * the process's report statements are all busy share the next read and the next write (and so one
 * commit), one report per job each. Of concurrent reports on one job, one wins each round and the
 * others read again; after a few lost rounds a report queues behind the job's row lock instead, so
 * it cannot be starved. Either way none is lost and only one can make the job terminal.
 */

export interface ProjectUpdate {
  status: "processing" | "completed" | "failed";
  videoUrl?: string | undefined;
  seed?: number | undefined;
  error?: { code: string; message?: string | undefined } | undefined;
}

export interface AppliedReport {
  view: JobView;
  /** This report made the job terminal and wrote its webhook row: the workers need a wake-up. */
  enqueued: boolean;
}

/** Unlocked read-then-write rounds a report tries before it queues behind the job's row lock. */
const OPTIMISTIC_ROUNDS = 3;

/** Most reports one read and one write carry. */
const MAX_REPORT_BATCH = 100;

interface PendingReport {
  jobId: string;
  index: number;
  update: ProjectUpdate;
  lostRounds: number;
  /**
   * Whether its write was planned from the job as this process last wrote it (known-job-states.ts):
   * not yet tried, planned so (no read), or stale (that write changed nothing; from then on it reads).
   */
  guess: "untried" | "planned" | "stale";
  resolve: (report: AppliedReport) => void;
  reject: (error: unknown) => void;
}

/** A report's write, the answer it gives, and the job and projects as the write leaves them. */
type WritePlan = { view: JobView; write: jobSql.ReportWrite; job: JobRow; projects: ProjectRow[] };
type ReportPlan = WritePlan | { view: JobView; write?: undefined };

export interface ProjectReportsOptions {
  database: Database;
  /** Report statements in flight at once; reports arriving while all are busy share the next. */
  concurrency: number;
  /** The webhook row of a job this report makes terminal. */
  webhookOf: (job: JobRow, projects: ProjectRow[], url: string) => NewDelivery;
  /** The jobs this process has just written; a report on one of them skips its read. */
  known: KnownJobStates;
}

export class ProjectReports {
  private readonly batcher: NaturalBatcher<PendingReport>;

  constructor(private readonly options: ProjectReportsOptions) {
    this.batcher = new NaturalBatcher<PendingReport>({
      concurrency: options.concurrency,
      maxBatch: MAX_REPORT_BATCH,
      key: (report) => report.jobId,
      run: (batch, release) => this.applyBatch(batch, release),
      // applyBatch settles every report itself; this only catches a bug, so no caller hangs.
      onCrash: (error, batch) => batch.forEach((report) => report.reject(error)),
    });
  }

  /** Resolves once the report has committed (or changed nothing: a repeated terminal report). */
  apply(jobId: string, index: number, update: ProjectUpdate): Promise<AppliedReport> {
    return new Promise<AppliedReport>((resolve, reject) =>
      this.batcher.add({ jobId, index, update, lostRounds: 0, guess: "untried", resolve, reject }),
    );
  }

  /**
   * One optimistic round for a batch of reports on distinct jobs: one read (of the jobs not known
   * as just written), one write. The batcher's slot is released once the write has answered, before
   * the reports are settled.
   */
  private async applyBatch(batch: PendingReport[], release: () => void): Promise<void> {
    const planned: Array<{ report: PendingReport; plan: WritePlan }> = [];
    const unknown: PendingReport[] = [];
    for (const report of batch) {
      const plan = this.guessedPlan(report);
      if (plan) planned.push({ report, plan });
      else unknown.push(report);
    }
    if (unknown.length > 0) {
      let states: Map<string, jobSql.JobState>;
      try {
        states = await jobSql.readJobStates(
          this.options.database.query,
          unknown.map((report) => report.jobId),
        );
      } catch {
        // One bad report must not fail the others: each goes alone, and fails alone if it must.
        return this.applyEachLocked(batch);
      }
      // One statement, one now(): any state tells it.
      const [read] = states.values();
      if (read) this.options.known.clock.observe(read.now);
      for (const report of unknown) {
        try {
          const plan = this.planReport(states.get(report.jobId), report);
          if (plan.write) planned.push({ report, plan });
          else report.resolve({ view: plan.view, enqueued: false });
        } catch (error) {
          report.reject(error);
        }
      }
    }
    if (planned.length === 0) return release();
    let written: Map<string, jobSql.ReportWritten>;
    try {
      written = await jobSql.writeReports(
        this.options.database.query,
        planned.map(({ plan }) => plan.write),
      );
    } catch {
      return this.applyEachLocked(planned.map(({ report }) => report));
    }
    release();
    const outlasted: PendingReport[] = [];
    for (const { report, plan } of planned) {
      const result = written.get(report.jobId);
      if (result && result.outcome !== "stale") {
        this.remember(plan, result.version);
        report.resolve({ view: plan.view, enqueued: result.outcome === "enqueued" });
        continue;
      }
      this.options.known.forget(report.jobId);
      // A stale guess is no lost round: the report has not read the job yet.
      if (report.guess === "planned") report.guess = "stale";
      else if (++report.lostRounds >= OPTIMISTIC_ROUNDS) {
        outlasted.push(report);
        continue;
      }
      // Reads again in a later batch (its job's key is free: this batch's write has answered).
      this.batcher.add(report);
    }
    await this.applyEachLocked(outlasted);
  }

  /**
   * The write planned from the job as this process last wrote it, if it knows the job and the
   * report would write; anything else (a repeated terminal report, a conflict, an unknown project)
   * is left to a read, and so is every report after a guess of it went stale.
   */
  private guessedPlan(report: PendingReport): WritePlan | undefined {
    if (report.guess === "stale") return undefined;
    const known = this.options.known.get(report.jobId);
    if (!known) return undefined;
    try {
      const plan = this.planReport({ ...known, now: this.options.known.clock.now(known.job.updatedAt) }, report);
      if (!plan.write) return undefined;
      report.guess = "planned";
      return plan;
    } catch {
      return undefined;
    }
  }

  /** The job as this write left it, for its next report; a terminal job expects none. */
  private remember({ job, projects }: WritePlan, version: string): void {
    const { known } = this.options;
    if (isTerminalJob(job.status)) known.forget(job.id);
    else known.remember({ job, projects, version });
  }

  private async applyEachLocked(reports: PendingReport[]): Promise<void> {
    await Promise.all(reports.map((report) => this.applyLocked(report)));
  }

  /** A report alone, queued behind its job's row lock: it cannot lose a round. */
  private async applyLocked(report: PendingReport): Promise<void> {
    // Whatever the job was known as, a failed or outlasted round may have changed it.
    this.options.known.forget(report.jobId);
    try {
      const applied = await this.options.database.transaction(async (query) => {
        if (!(await jobSql.lockJob(query, report.jobId))) throw notFound("job");
        const plan = this.planReport((await jobSql.readJobStates(query, [report.jobId])).get(report.jobId), report);
        if (!plan.write) return { report: { view: plan.view, enqueued: false } };
        const result = (await jobSql.writeReports(query, [plan.write])).get(report.jobId);
        if (!result || result.outcome === "stale") throw new Error(`job ${report.jobId} changed while its row lock was held`);
        return { report: { view: plan.view, enqueued: result.outcome === "enqueued" }, written: { plan, version: result.version } };
      });
      // Committed: the job as this transaction left it is the next report's guess.
      if (applied.written) this.remember(applied.written.plan, applied.written.version);
      report.resolve(applied.report);
    } catch (error) {
      report.reject(error);
    }
  }

  /** What a report does to the job as read: nothing (a repeated terminal report), or one write. */
  private planReport(state: jobSql.JobState | undefined, { jobId, index, update }: PendingReport): ReportPlan {
    if (!state) throw notFound("job");
    const { job, projects, now } = state;
    const project = projects.find((candidate) => candidate.index === index);
    if (!project) throw notFound("project");

    if (isTerminalProject(project.status)) {
      // A repeated terminal report changes nothing.
      if (project.status === update.status) return { view: toView(job, projects) };
      throw new AppError(
        409,
        "PROJECT_ALREADY_TERMINAL",
        `project ${index} is already ${project.status} and cannot become ${update.status}`,
      );
    }

    const updated = reportedProject(project, update, now);
    const nextProjects = projects.map((candidate) => (candidate.index === index ? updated : candidate));
    const status = jobStatusFromProjects(nextProjects.map((candidate) => candidate.status));
    const becomesTerminal = isTerminalJob(status) && !isTerminalJob(job.status);
    const settled: JobRow = { ...job, status, updatedAt: now, completedAt: becomesTerminal ? now : job.completedAt };
    const delivery = becomesTerminal && settled.webhookUrl ? this.options.webhookOf(settled, nextProjects, settled.webhookUrl) : undefined;
    return {
      view: toView(settled, nextProjects),
      write: { jobId, version: state.version, job: settled, project: updated, delivery },
      job: settled,
      projects: nextProjects,
    };
  }

}

/** The project after a report; a field the report leaves out keeps its stored value. */
function reportedProject(project: ProjectRow, update: ProjectUpdate, now: Date): ProjectRow {
  const failed = update.status === "failed";
  return {
    ...project,
    status: update.status,
    videoUrl: update.videoUrl ?? project.videoUrl,
    seed: update.seed ?? project.seed,
    errorCode: failed ? (update.error?.code ?? "GENERATION_FAILED") : project.errorCode,
    errorMessage: (failed ? update.error?.message : undefined) ?? project.errorMessage,
    updatedAt: now,
  };
}

