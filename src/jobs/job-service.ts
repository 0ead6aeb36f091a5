import { and, asc, desc, eq, gte, inArray, lt, lte, or, sql } from "drizzle-orm";
import type { Database, Tx } from "../db/client.js";
import { jobProjects, jobs, type ApiFlavor, type JobStatus, type ProjectStatus } from "../db/schema.js";
import { UrlRejectedError, type UrlPolicy } from "../delivery/url-policy.js";
import { AppError, notFound } from "../errors.js";
import { enqueueDelivery } from "../outbox/enqueue.js";
import type { DeliveryPolicy } from "../outbox/policy.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { JOB_COMPLETED_EVENT, buildWebhookPayload, type JobSnapshot, type ProjectSnapshot } from "./payloads.js";
import { jobStatusFromProjects, isTerminalJob, isTerminalProject } from "./status.js";

export interface JobServiceOptions {
  database: Database;
  urlPolicy: UrlPolicy;
  deliveryPolicies: Record<ApiFlavor, DeliveryPolicy>;
  jobTimeoutMs: number;
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

type JobRow = typeof jobs.$inferSelect;

export const TIMEOUT_CODE = "TIMEOUT";
type ProjectRow = typeof jobProjects.$inferSelect;

/** The job lifecycle. Every transition that makes a job terminal writes its webhook row in the same transaction. */
export class JobService {
  constructor(private readonly options: JobServiceOptions) {}

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
    return toView(job, await this.projectsOf(db, [job.id]));
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
    const projects = await this.projectsOf(
      db,
      page.map((job) => job.id),
    );
    const last = page[page.length - 1];
    return {
      jobs: page.map((job) => toView(job, projects)),
      nextCursor: rows.length > query.limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null,
    };
  }

  /**
   * Applies the generation backend's report on one project. The job row is locked first, so
   * concurrent reports on one job's projects serialise: none is lost and only one of them can
   * be the transition that makes the job terminal and enqueues its webhook.
   */
  async updateProject(jobId: string, index: number, update: ProjectUpdate): Promise<JobView> {
    const { db } = this.options.database;
    return db.transaction(async (tx) => {
      const [job] = await tx.select().from(jobs).where(eq(jobs.id, jobId)).for("update");
      if (!job) throw notFound("job");
      const projects = await this.projectsOf(tx, [jobId]);
      const project = projects.find((candidate) => candidate.index === index);
      if (!project) throw notFound("project");

      if (isTerminalProject(project.status)) {
        if (project.status === update.status) return toView(job, projects); // a repeated terminal report
        throw new AppError(
          409,
          "PROJECT_ALREADY_TERMINAL",
          `project ${index} is already ${project.status} and cannot become ${update.status}`,
        );
      }

      const [updated] = await tx
        .update(jobProjects)
        .set(projectChanges(update))
        .where(and(eq(jobProjects.jobId, jobId), eq(jobProjects.index, index)))
        .returning();
      if (!updated) throw new Error("project update returned no row");
      const nextProjects = projects.map((candidate) => (candidate.index === index ? updated : candidate));
      return this.settleJob(tx, job, nextProjects);
    });
  }

  /**
   * Fails jobs past their deadline: open projects get TIMEOUT and each job settles (failed or
   * partial) with its webhook, all in one transaction. SKIP LOCKED lets several sweepers run at
   * once; a job another sweeper or a project report holds is simply left for the next sweep.
   */
  async failOverdue(limit = 100): Promise<number> {
    const { db } = this.options.database;
    return db.transaction(async (tx) => {
      const overdue = await tx
        .select()
        .from(jobs)
        .where(and(inArray(jobs.status, ["queued", "processing"]), lte(jobs.deadlineAt, sql`now()`)))
        .orderBy(asc(jobs.deadlineAt))
        .limit(limit)
        .for("update", { skipLocked: true });
      if (overdue.length === 0) return 0;
      const ids = overdue.map((job) => job.id);
      await tx
        .update(jobProjects)
        .set({
          status: "failed",
          errorCode: TIMEOUT_CODE,
          errorMessage: `generation did not finish within ${Math.round(this.options.jobTimeoutMs / 1000)} s`,
          updatedAt: sql`now()`,
        })
        .where(and(inArray(jobProjects.jobId, ids), inArray(jobProjects.status, ["queued", "processing"])));
      const projects = await this.projectsOf(tx, ids);
      for (const job of overdue) {
        await this.settleJob(
          tx,
          job,
          projects.filter((project) => project.jobId === job.id),
        );
      }
      return overdue.length;
    });
  }

  /** Recomputes the job's status from its projects; on the terminal transition, enqueues the webhook. */
  private async settleJob(tx: Tx, job: JobRow, projects: ProjectRow[]): Promise<JobView> {
    const status = jobStatusFromProjects(projects.map((project) => project.status));
    const becomesTerminal = isTerminalJob(status) && !isTerminalJob(job.status);
    const [settled] = await tx
      .update(jobs)
      .set({
        status,
        updatedAt: sql`now()`,
        ...(becomesTerminal ? { completedAt: sql`now()` } : {}),
      })
      .where(eq(jobs.id, job.id))
      .returning();
    if (!settled) throw new Error("job update returned no row");
    if (becomesTerminal && settled.webhookUrl) {
      await enqueueDelivery(tx, {
        tenantId: settled.tenantId,
        jobId: settled.id,
        eventType: JOB_COMPLETED_EVENT,
        url: settled.webhookUrl,
        payload: buildWebhookPayload(settled, projects.map(toProjectSnapshot)),
        policy: this.options.deliveryPolicies[settled.apiFlavor],
      });
    }
    return toView(settled, projects);
  }

  private async vetWebhookUrl(url: string): Promise<void> {
    try {
      await this.options.urlPolicy.check(url);
    } catch (error) {
      if (error instanceof UrlRejectedError) throw new AppError(400, "WEBHOOK_URL_REJECTED", error.message);
      throw error;
    }
  }

  private async projectsOf(db: Tx | Database["db"], jobIds: string[]): Promise<ProjectRow[]> {
    if (jobIds.length === 0) return [];
    return db
      .select()
      .from(jobProjects)
      .where(inArray(jobProjects.jobId, jobIds))
      .orderBy(asc(jobProjects.jobId), asc(jobProjects.index));
  }
}

function projectChanges(update: ProjectUpdate): Partial<typeof jobProjects.$inferInsert> {
  const changes: Partial<typeof jobProjects.$inferInsert> = {
    status: update.status satisfies ProjectStatus,
    updatedAt: sql`now()` as unknown as Date,
  };
  if (update.videoUrl !== undefined) changes.videoUrl = update.videoUrl;
  if (update.seed !== undefined) changes.seed = update.seed;
  if (update.status === "failed") {
    changes.errorCode = update.error?.code ?? "GENERATION_FAILED";
    changes.errorMessage = update.error?.message ?? null;
  }
  return changes;
}

function toProjectSnapshot(project: ProjectRow): ProjectSnapshot {
  return {
    id: project.id,
    index: project.index,
    status: project.status,
    videoUrl: project.videoUrl,
    seed: project.seed,
    errorCode: project.errorCode,
    errorMessage: project.errorMessage,
  };
}

function toView(job: JobRow, projects: ProjectRow[]): JobView {
  return {
    id: job.id,
    tenantId: job.tenantId,
    apiFlavor: job.apiFlavor,
    prompt: job.prompt,
    status: job.status,
    webhookUrl: job.webhookUrl,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    completedAt: job.completedAt,
    deadlineAt: job.deadlineAt,
    projects: projects.filter((project) => project.jobId === job.id).map(toProjectSnapshot),
  };
}
