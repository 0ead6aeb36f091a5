import { and, desc, eq, gte, lt, or, sql } from "drizzle-orm";
import type { Database, Query } from "../db/client.js";
import { jobProjects, jobs, type ApiFlavor, type JobStatus } from "../db/schema.js";
import { UrlRejectedError, type UrlPolicy } from "../delivery/url-policy.js";
import { AppError, notFound } from "../errors.js";
import { enqueueDelivery, type NewDelivery } from "../outbox/enqueue.js";
import { OutboxNotifier } from "../outbox/notifier.js";
import type { DeliveryPolicy } from "../outbox/policy.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import * as jobSql from "./job-sql.js";
import { NaturalBatcher } from "./natural-batcher.js";
import type { JobRow, ProjectRow } from "./job-sql.js";
import { JOB_COMPLETED_EVENT, buildWebhookPayload, type JobSnapshot, type ProjectSnapshot } from "./payloads.js";
import { jobStatusFromProjects, isTerminalJob, isTerminalProject } from "./status.js";

export interface JobServiceOptions {
  database: Database;
  urlPolicy: UrlPolicy;
  deliveryPolicies: Record<ApiFlavor, DeliveryPolicy>;
  jobTimeoutMs: number;
  /** Wakes the workers after a commit that enqueued; by default one of its own that reports no errors. */
  notifier?: OutboxNotifier;
  /** Report statements in flight at once; reports arriving while all are busy share the next. Default 2. */
  reportConcurrency?: number;
}

export interface NewJob {
  tenantId: string;
  apiFlavor: ApiFlavor;
  prompt: string;
  projectCount: number;
  webhookUrl?: string | undefined;
  seed?: number | undefined;
}

export interface ProjectUpdate {
  status: "processing" | "completed" | "failed";
  videoUrl?: string | undefined;
  seed?: number | undefined;
  error?: { code: string; message?: string | undefined } | undefined;
}

export interface JobView extends JobSnapshot {
  tenantId: string;
  webhookUrl: string | null;
  updatedAt: Date;
  deadlineAt: Date;
  projects: ProjectSnapshot[];
}

export interface JobListQuery {
  tenantId: string;
  status?: JobStatus | undefined;
  since?: Date | undefined;
  limit: number;
  cursor?: string | undefined;
}

export const TIMEOUT_CODE = "TIMEOUT";

interface AppliedReport {
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
  resolve: (report: AppliedReport) => void;
  reject: (error: unknown) => void;
}

type WritePlan = { view: JobView; write: jobSql.ReportWrite };
type ReportPlan = WritePlan | { view: JobView; write?: undefined };

/** The job lifecycle. Every transition that makes a job terminal writes its webhook row in the same transaction. */
export class JobService {
  private readonly notifier: OutboxNotifier;

  private readonly reports: NaturalBatcher<PendingReport>;

  constructor(private readonly options: JobServiceOptions) {
    this.notifier = options.notifier ?? new OutboxNotifier(options.database);
    this.reports = new NaturalBatcher<PendingReport>({
      concurrency: options.reportConcurrency ?? 2,
      maxBatch: MAX_REPORT_BATCH,
      key: (report) => report.jobId,
      run: (batch) => this.applyReports(batch),
      // applyReports settles every report itself; this only catches a bug, so no caller hangs.
      onCrash: (error, batch) => batch.forEach((report) => report.reject(error)),
    });
  }

  async create(input: NewJob): Promise<JobView> {
    if (input.webhookUrl !== undefined) await this.vetWebhookUrl(input.webhookUrl);
    const { db } = this.options.database;
    return db.transaction(async (tx) => {
      const [job] = await tx
        .insert(jobs)
        .values({
          tenantId: input.tenantId,
          apiFlavor: input.apiFlavor,
          prompt: input.prompt,
          webhookUrl: input.webhookUrl ?? null,
          deadlineAt: sql`now() + ${this.options.jobTimeoutMs} * interval '1 millisecond'`,
        })
        .returning();
      if (!job) throw new Error("job insert returned no row");
      const projects = await tx
        .insert(jobProjects)
        .values(
          Array.from({ length: input.projectCount }, (_, index) => ({
            jobId: job.id,
            index,
            seed: input.seed ?? null,
          })),
        )
        .returning();
      return toView(job, projects);
    });
  }

  async get(tenantId: string, jobId: string): Promise<JobView> {
    const { db } = this.options.database;
    const [job] = await db
      .select()
      .from(jobs)
      .where(and(eq(jobs.id, jobId), eq(jobs.tenantId, tenantId)));
    if (!job) throw notFound("job");
    return toView(job, await jobSql.projectsOf(this.query, [job.id]));
  }

  async list(query: JobListQuery): Promise<{ jobs: JobView[]; nextCursor: string | null }> {
    const { db } = this.options.database;
    const conditions = [eq(jobs.tenantId, query.tenantId)];
    if (query.status) conditions.push(eq(jobs.status, query.status));
    if (query.since) conditions.push(gte(jobs.createdAt, query.since));
    if (query.cursor) {
      const after = decodeCursor(query.cursor);
      const olderThanCursor = or(
        lt(jobs.createdAt, after.createdAt),
        and(eq(jobs.createdAt, after.createdAt), lt(jobs.id, after.id)),
      );
      if (olderThanCursor) conditions.push(olderThanCursor);
    }
    const rows = await db
      .select()
      .from(jobs)
      .where(and(...conditions))
      .orderBy(desc(jobs.createdAt), desc(jobs.id))
      .limit(query.limit + 1);
    const page = rows.slice(0, query.limit);
    const projects = await jobSql.projectsOf(
      this.query,
      page.map((job) => job.id),
    );
    const last = page[page.length - 1];
    return {
      jobs: page.map((job) => toView(job, projects)),
      nextCursor: rows.length > query.limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null,
    };
  }

  /**
   * Applies the generation backend's report on one project. A report is one unlocked read, then one
   * statement that writes the project, the job and (on the terminal transition) its webhook row,
   * applied only if the job has not moved since the read. Reports that arrive while the process's
   * report statements are all busy share the next read and the next write (and so one commit), one
   * report per job each. Of concurrent reports on one job, one wins each round and the others read
   * again; after a few lost rounds a report queues behind the job's row lock instead, so it cannot
   * be starved. Either way none is lost and only one can make the job terminal.
   */
  async updateProject(jobId: string, index: number, update: ProjectUpdate): Promise<JobView> {
    const report = await new Promise<AppliedReport>((resolve, reject) =>
      this.reports.add({ jobId, index, update, lostRounds: 0, resolve, reject }),
    );
    // The report has committed; the wake-up need not hold up its answer.
    if (report.enqueued) void this.notifier.notify();
    return report.view;
  }

  /** One optimistic round for a batch of reports on distinct jobs: one read, one write. */
  private async applyReports(batch: PendingReport[]): Promise<void> {
    let states: Map<string, jobSql.JobState>;
    try {
      states = await jobSql.readJobStates(
        this.query,
        batch.map((report) => report.jobId),
      );
    } catch {
      // One bad report must not fail the others: each goes alone, and fails alone if it must.
      return this.applyEachLocked(batch);
    }
    const planned: Array<{ report: PendingReport; plan: WritePlan }> = [];
    for (const report of batch) {
      try {
        const plan = this.planReport(states.get(report.jobId), report);
        if (plan.write) planned.push({ report, plan });
        else report.resolve({ view: plan.view, enqueued: false });
      } catch (error) {
        report.reject(error);
      }
    }
    if (planned.length === 0) return;
    let written: Map<string, jobSql.ReportWritten>;
    try {
      written = await jobSql.writeReports(
        this.query,
        planned.map(({ plan }) => plan.write),
      );
    } catch {
      return this.applyEachLocked(planned.map(({ report }) => report));
    }
    const outlasted: PendingReport[] = [];
    for (const { report, plan } of planned) {
      const outcome = written.get(report.jobId);
      if (outcome === "written" || outcome === "enqueued") {
        report.resolve({ view: plan.view, enqueued: outcome === "enqueued" });
      } else if (++report.lostRounds < OPTIMISTIC_ROUNDS) {
        // Waits for this batch to end (its job is still in it), then reads again.
        this.reports.add(report);
      } else outlasted.push(report);
    }
    await this.applyEachLocked(outlasted);
  }

  private async applyEachLocked(reports: PendingReport[]): Promise<void> {
    await Promise.all(reports.map((report) => this.applyLocked(report)));
  }

  /** A report alone, queued behind its job's row lock: it cannot lose a round. */
  private async applyLocked(report: PendingReport): Promise<void> {
    try {
      const applied = await this.options.database.transaction(async (query): Promise<AppliedReport> => {
        if (!(await jobSql.lockJob(query, report.jobId))) throw notFound("job");
        const plan = this.planReport((await jobSql.readJobStates(query, [report.jobId])).get(report.jobId), report);
        if (!plan.write) return { view: plan.view, enqueued: false };
        const outcome = (await jobSql.writeReports(query, [plan.write])).get(report.jobId);
        if (outcome !== "written" && outcome !== "enqueued") throw new Error(`job ${report.jobId} changed while its row lock was held`);
        return { view: plan.view, enqueued: outcome === "enqueued" };
      });
      report.resolve(applied);
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
    const delivery = becomesTerminal && settled.webhookUrl ? this.webhookOf(settled, nextProjects, settled.webhookUrl) : undefined;
    return {
      view: toView(settled, nextProjects),
      write: { jobId, version: state.version, job: settled, project: updated, delivery },
    };
  }

  /**
   * Fails jobs past their deadline: open projects get TIMEOUT and each job settles (failed or
   * partial) with its webhook, all in one transaction. SKIP LOCKED lets several sweepers run at
   * once; a job another sweeper or a project report holds is simply left for the next sweep.
   */
  async failOverdue(limit = 100): Promise<number> {
    const swept = await this.options.database.transaction(async (query) => {
      const overdue = await jobSql.lockOverdueJobs(query, limit);
      if (overdue.length === 0) return { jobs: 0, enqueued: false };
      const ids = overdue.map((job) => job.id);
      const seconds = Math.round(this.options.jobTimeoutMs / 1000);
      await jobSql.failOpenProjects(query, ids, TIMEOUT_CODE, `generation did not finish within ${seconds} s`);
      const projects = await jobSql.projectsOf(query, ids);
      let enqueued = false;
      for (const job of overdue) {
        const settled = await this.settleJob(
          query,
          job,
          projects.filter((project) => project.jobId === job.id),
        );
        enqueued ||= settled.enqueued;
      }
      return { jobs: overdue.length, enqueued };
    });
    if (swept.enqueued) void this.notifier.notify();
    return swept.jobs;
  }

  /** Recomputes the job's status from its projects; on the terminal transition, enqueues the webhook. */
  private async settleJob(query: Query, job: JobRow, projects: ProjectRow[]): Promise<{ enqueued: boolean }> {
    const status = jobStatusFromProjects(projects.map((project) => project.status));
    const becomesTerminal = isTerminalJob(status) && !isTerminalJob(job.status);
    const settled = await jobSql.setJobStatus(query, job.id, status, becomesTerminal);
    if (!becomesTerminal || !settled.webhookUrl) return { enqueued: false };
    return { enqueued: (await enqueueDelivery(query, this.webhookOf(settled, projects, settled.webhookUrl))) !== undefined };
  }

  /** The `job.completed` delivery of a job that has just become terminal, with its surface's policy. */
  private webhookOf(job: JobRow, projects: ProjectRow[], url: string): NewDelivery {
    return {
      tenantId: job.tenantId,
      jobId: job.id,
      eventType: JOB_COMPLETED_EVENT,
      url,
      payload: buildWebhookPayload(job, projects.map(toProjectSnapshot)),
      policy: this.options.deliveryPolicies[job.apiFlavor],
    };
  }

  private async vetWebhookUrl(url: string): Promise<void> {
    try {
      await this.options.urlPolicy.check(url);
    } catch (error) {
      if (error instanceof UrlRejectedError) throw new AppError(400, "WEBHOOK_URL_REJECTED", error.message);
      throw error;
    }
  }

  /** Raw SQL outside a transaction, for the read paths that share the write path's statements. */
  private readonly query: Query = (text, params, name) => this.options.database.query(text, params, name);

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

function toProjectSnapshot({ jobId: _jobId, updatedAt: _updatedAt, ...project }: ProjectRow): ProjectSnapshot {
  return project;
}

function toView(job: JobRow, projects: ProjectRow[]): JobView {
  return { ...job, projects: projects.filter((project) => project.jobId === job.id).map(toProjectSnapshot) };
}
