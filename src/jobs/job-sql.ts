import type { Query } from "../db/client.js";
import { NO_OUTBOX_ROW, outboxInsert } from "../outbox/enqueue.js";
import type { jobProjects, jobs, JobStatus, ProjectStatus } from "../db/schema.js";

/*
 * The job lifecycle's write path in raw SQL, run as named prepared statements: a report on a
 * project is the hottest write of the API, and a query builder costs more CPU than the round trips.
 */

export type JobRow = typeof jobs.$inferSelect;
export type ProjectRow = typeof jobProjects.$inferSelect;

const JOB_COLUMNS = "id, tenant_id, api_flavor, prompt, status, webhook_url, created_at, updated_at, completed_at, deadline_at";
const PROJECT_COLUMNS = "id, job_id, index, status, video_url, seed, error_code, error_message, updated_at";

interface JobRecord {
  id: string;
  tenant_id: string;
  api_flavor: JobRow["apiFlavor"];
  prompt: string;
  status: JobStatus;
  webhook_url: string | null;
  created_at: Date | string;
  updated_at: Date | string;
  completed_at: Date | string | null;
  deadline_at: Date | string;
}

interface ProjectRecord {
  id: string;
  job_id: string;
  index: number;
  status: ProjectStatus;
  video_url: string | null;
  seed: string | number | bigint | null;
  error_code: string | null;
  error_message: string | null;
  updated_at: Date | string;
}

const prefixed = (alias: string, columns: string) => columns.replace(/(^|, )/g, `$1${alias}`);

const toDate = (value: Date | string): Date => (value instanceof Date ? value : new Date(value));

function toJob(row: JobRecord): JobRow {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    apiFlavor: row.api_flavor,
    prompt: row.prompt,
    status: row.status,
    webhookUrl: row.webhook_url,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
    completedAt: row.completed_at === null ? null : toDate(row.completed_at),
    deadlineAt: toDate(row.deadline_at),
  };
}

function toProject(row: ProjectRecord): ProjectRow {
  return {
    id: row.id,
    jobId: row.job_id,
    index: row.index,
    status: row.status,
    videoUrl: row.video_url,
    seed: row.seed === null ? null : Number(row.seed),
    errorCode: row.error_code,
    errorMessage: row.error_message,
    updatedAt: toDate(row.updated_at),
  };
}

/** Locks the job row: every report on one job's projects queues behind it. */
export async function lockJob(query: Query, jobId: string): Promise<JobRow | undefined> {
  const [row] = await query<JobRecord>(`select ${JOB_COLUMNS} from jobs where id = $1 for update`, [jobId], "job_lock");
  return row && toJob(row);
}

/** Locks up to `limit` open jobs past their deadline, skipping any another transaction holds. */
export async function lockOverdueJobs(query: Query, limit: number): Promise<JobRow[]> {
  const rows = await query<JobRecord>(
    `select ${JOB_COLUMNS} from jobs
     where status in ('queued', 'processing') and deadline_at <= now()
     order by deadline_at limit $1 for update skip locked`,
    [limit],
    "job_lock_overdue",
  );
  return rows.map(toJob);
}

export async function projectsOf(query: Query, jobIds: string[]): Promise<ProjectRow[]> {
  const rows = await query<ProjectRecord>(
    `select ${PROJECT_COLUMNS} from job_projects where job_id = any($1::uuid[]) order by job_id, index`,
    [jobIds],
    "job_projects_of",
  );
  return rows.map(toProject);
}

/** A job and its projects as one statement saw them, with the job row's version and the database clock. */
export interface JobState {
  job: JobRow;
  projects: ProjectRow[];
  /** The job row's `xmin`: every write to the job or its projects rewrites the job row, so this moves. */
  version: string;
  now: Date;
}

interface JobStateRecord extends JobRecord {
  version: string;
  read_at: Date | string;
  p_id: string | null;
  p_index: number | null;
  p_status: ProjectStatus | null;
  p_video_url: string | null;
  p_seed: string | number | bigint | null;
  p_error_code: string | null;
  p_error_message: string | null;
  p_updated_at: Date | string | null;
}

/** One snapshot of a job and its projects, without a lock: the write that follows checks `version`. */
export async function readJobState(query: Query, jobId: string): Promise<JobState | undefined> {
  const rows = await query<JobStateRecord>(
    `select j.xmin::text as version, now() as read_at, ${prefixed("j.", JOB_COLUMNS)},
            p.id as p_id, p.index as p_index, p.status as p_status, p.video_url as p_video_url, p.seed as p_seed,
            p.error_code as p_error_code, p.error_message as p_error_message, p.updated_at as p_updated_at
     from jobs j left join job_projects p on p.job_id = j.id
     where j.id = $1
     order by p.index`,
    [jobId],
    "job_read_state",
  );
  const [first] = rows;
  if (!first) return undefined;
  const projects: ProjectRow[] = [];
  for (const row of rows) {
    if (row.p_id === null) continue;
    projects.push(
      toProject({
        id: row.p_id,
        job_id: row.id,
        index: row.p_index as number,
        status: row.p_status as ProjectStatus,
        video_url: row.p_video_url,
        seed: row.p_seed,
        error_code: row.p_error_code,
        error_message: row.p_error_message,
        updated_at: row.p_updated_at as Date | string,
      }),
    );
  }
  return { job: toJob(first), projects, version: first.version, now: toDate(first.read_at) };
}

export interface ReportWrite {
  jobId: string;
  /** The version `readJobState` saw; the write applies only if the job row still has it. */
  version: string;
  job: Pick<JobRow, "status" | "updatedAt" | "completedAt">;
  project: Pick<ProjectRow, "index" | "status" | "videoUrl" | "seed" | "errorCode" | "errorMessage" | "updatedAt">;
  /** `outboxValues(...)` when this write makes the job terminal and it has a webhook. */
  delivery: unknown[] | undefined;
}

// The job, the project and the outbox row in one statement. It waits on the job row's lock, and
// under READ COMMITTED re-checks `xmin` against the row as the previous holder left it: a stale
// version matches nothing, so nothing is written and the caller reads again.
const REPORT_SQL = `
with job as (
  update jobs set status = $3, updated_at = $4, completed_at = $5
  where id = $1 and xmin = $2::xid
  returning id
), project as (
  update job_projects
  set status = $7, video_url = $8, seed = $9, error_code = $10, error_message = $11, updated_at = $12
  where job_id = (select id from job) and index = $6
  returning index
), inserted as (
  ${outboxInsert(13, "exists (select from job)")}
)
select (select count(*) from job)::int as jobs, (select count(*) from project)::int as projects,
       (select count(*) from inserted)::int as enqueued`;

export type ReportWritten = "stale" | "written" | "enqueued";

/** Applies one report built from `readJobState`; "stale" when the job moved since it was read. */
export async function writeReport(query: Query, write: ReportWrite): Promise<ReportWritten> {
  const { job, project } = write;
  const [row] = await query<{ jobs: number; projects: number; enqueued: number }>(
    REPORT_SQL,
    [
      write.jobId,
      write.version,
      job.status,
      job.updatedAt,
      job.completedAt,
      project.index,
      project.status,
      project.videoUrl,
      project.seed,
      project.errorCode,
      project.errorMessage,
      project.updatedAt,
      ...(write.delivery ?? NO_OUTBOX_ROW),
    ],
    "job_write_report",
  );
  if (row?.jobs !== 1) return "stale";
  if (row.projects !== 1) throw new Error(`project ${project.index} of job ${write.jobId} vanished while its job row was locked`);
  return row.enqueued > 0 ? "enqueued" : "written";
}

/** Fails every open project of the given jobs with `code`. */
export async function failOpenProjects(query: Query, jobIds: string[], code: string, message: string): Promise<void> {
  await query(
    `update job_projects set status = 'failed', error_code = $2, error_message = $3, updated_at = now()
     where job_id = any($1::uuid[]) and status in ('queued', 'processing')`,
    [jobIds, code, message],
    "job_projects_fail_open",
  );
}

/** Sets the job's status; `terminal` stamps completed_at. */
export async function setJobStatus(query: Query, jobId: string, status: JobStatus, terminal: boolean): Promise<JobRow> {
  const [row] = await query<JobRecord>(
    `update jobs
     set status = $2, updated_at = now(), completed_at = case when $3::boolean then now() else completed_at end
     where id = $1
     returning ${JOB_COLUMNS}`,
    [jobId, status, terminal],
    "job_set_status",
  );
  if (!row) throw new Error(`job ${jobId} vanished inside its own transaction`);
  return toJob(row);
}
