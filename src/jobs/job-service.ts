import { and, eq, gte, lt, or } from "drizzle-orm";
import { newestFirst } from "../db/newest-first.js";
import type { Database, Query } from "../db/client.js";
import { jobs, type ApiFlavor, type JobStatus } from "../db/schema.js";
import { UrlRejectedError, type UrlPolicy } from "../delivery/url-policy.js";
import { AppError, notFound } from "../errors.js";
import { enqueueDelivery, type NewDelivery } from "../outbox/enqueue.js";
import { OutboxNotifier } from "../outbox/notifier.js";
import type { DeliveryPolicy } from "../outbox/policy.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { IDEMPOTENCY_WINDOW_MS, JobCreates, type CreatedJob } from "./job-creates.js";
import { STATEMENT_CONCURRENCY } from "./natural-batcher.js";
import * as jobSql from "./job-sql.js";
import type { JobRow, ProjectRow } from "./job-sql.js";
import { toProjectSnapshot, toView, type JobView } from "./job-view.js";
import { KnownJobStates } from "./known-job-states.js";
import { JOB_COMPLETED_EVENT, buildWebhookPayload } from "./payloads.js";
import { ProjectReports, type ProjectUpdate } from "./project-reports.js";
import { jobStatusFromProjects, isTerminalJob } from "./status.js";

export type { JobView } from "./job-view.js";
export type { CreatedJob } from "./job-creates.js";
export type { ProjectUpdate } from "./project-reports.js";

export interface JobServiceOptions {
  database: Database;
  urlPolicy: UrlPolicy;
  deliveryPolicies: Record<ApiFlavor, DeliveryPolicy>;
  jobTimeoutMs: number;
  /** Wakes the workers after a commit that enqueued; by default one of its own that reports no errors. */
  notifier?: OutboxNotifier;
  /**
   * Report statements in flight at once; reports arriving while all are busy share the next.
   * @defaultValue STATEMENT_CONCURRENCY (1)
   */
  reportConcurrency?: number;
  /**
   * Create statements in flight at once; creates arriving while all are busy share the next.
   * @defaultValue STATEMENT_CONCURRENCY (1)
   */
  createConcurrency?: number;
  /**
   * Jobs remembered as this process last wrote them, so that a report on one skips its read
   * (known-job-states.ts); 0 remembers none. About 1 KB each.
   * @defaultValue 10000
   */
  knownJobs?: number;
}

export interface NewJob {
  tenantId: string;
  apiFlavor: ApiFlavor;
  prompt: string;
  projectCount: number;
  webhookUrl?: string | undefined;
  seed?: number | undefined;
  /**
   * sha256 of the API key the request presented. The job is written only if that key belongs to
   * `tenantId` and is unrevoked when the create's statement runs; otherwise nothing is written and
   * `create` rejects with ApiKeyRejectedError. Left out by trusted callers (no key to check).
   */
  apiKeyHash?: string | undefined;
}

export interface JobListQuery {
  tenantId: string;
  status?: JobStatus | undefined;
  since?: Date | undefined;
  limit: number;
  cursor?: string | undefined;
}

export const TIMEOUT_CODE = "TIMEOUT";

/** The job lifecycle. Every transition that makes a job terminal writes its webhook row in the same transaction. */
export class JobService {
  private readonly notifier: OutboxNotifier;

  private readonly reports: ProjectReports;

  private readonly creates: JobCreates;

  constructor(private readonly options: JobServiceOptions) {
    this.notifier = options.notifier ?? new OutboxNotifier(options.database);
    const known = new KnownJobStates(options.knownJobs ?? 10_000);
    this.creates = new JobCreates({
      query: options.database.query,
      concurrency: options.createConcurrency ?? STATEMENT_CONCURRENCY,
      jobTimeoutMs: options.jobTimeoutMs,
      known,
    });
    this.reports = new ProjectReports({
      database: options.database,
      concurrency: options.reportConcurrency ?? STATEMENT_CONCURRENCY,
      webhookOf: (job, projects, url) => this.webhookOf(job, projects, url),
      known,
    });
  }

  /** One statement (`job-creates.ts`), shared with the creates that queue behind the busy ones. */
  async create(input: NewJob): Promise<JobView> {
    return (await this.submit(input, null)).view;
  }

  /**
   * A create made at most once per (tenant, Idempotency-Key) within 24 h: the same key with the
   * same request (`requestHash`: its route and body) is answered with the job it made then, written
   * in that create's statement, so concurrent duplicates make one job; another request with the key
   * is IdempotencyKeyReusedError.
   */
  async createOnce(input: NewJob, idempotency: { key: string; requestHash: string }): Promise<CreatedJob> {
    return this.submit(input, idempotency);
  }

  private async submit(input: NewJob, idempotency: { key: string; requestHash: string } | null): Promise<CreatedJob> {
    if (input.webhookUrl !== undefined) await this.vetWebhookUrl(input.webhookUrl);
    return this.creates.create({
      tenantId: input.tenantId,
      apiKeyHash: input.apiKeyHash ?? null,
      apiFlavor: input.apiFlavor,
      prompt: input.prompt,
      webhookUrl: input.webhookUrl ?? null,
      projectCount: input.projectCount,
      seed: input.seed ?? null,
      idempotencyKey: idempotency?.key ?? null,
      requestHash: idempotency?.requestHash ?? null,
    });
  }

  /** Deletes up to `limit` idempotency keys past their window, oldest first; returns how many. */
  async pruneIdempotencyKeys(limit = 500): Promise<number> {
    const rows = await this.options.database.query<{ key: string }>(
      `delete from webhook_outbox.idempotency_keys k
       using (select tenant_id, key from webhook_outbox.idempotency_keys
              where created_at <= now() - $1::float8 * interval '1 millisecond'
              order by created_at limit $2 for update skip locked) doomed
       where k.tenant_id = doomed.tenant_id and k.key = doomed.key
       returning k.key`,
      [IDEMPOTENCY_WINDOW_MS, limit],
      "idempotency_keys_prune",
    );
    return rows.length;
  }

  async get(tenantId: string, jobId: string): Promise<JobView> {
    const { db } = this.options.database;
    const [job] = await db
      .select()
      .from(jobs)
      .where(and(eq(jobs.id, jobId), eq(jobs.tenantId, tenantId)));
    if (!job) throw notFound("job");
    return toView(job, await jobSql.projectsOf(this.options.database.query, [job.id]));
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
      .orderBy(newestFirst(jobs.createdAt), newestFirst(jobs.id))
      .limit(query.limit + 1);
    const page = rows.slice(0, query.limit);
    const projects = await jobSql.projectsOf(
      this.options.database.query,
      page.map((job) => job.id),
    );
    const last = page[page.length - 1];
    return {
      jobs: page.map((job) => toView(job, projects)),
      nextCursor: rows.length > query.limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null,
    };
  }

  /** Applies the generation backend's report on one project (`project-reports.ts`); wakes the workers when it enqueued. */
  async updateProject(jobId: string, index: number, update: ProjectUpdate): Promise<JobView> {
    const report = await this.reports.apply(jobId, index, update);
    // The report has committed; the wake-up need not hold up its answer.
    if (report.enqueued) void this.notifier.notify();
    return report.view;
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
}
