import type { Query } from "../db/client.js";
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

export interface ProjectChange {
  status: ProjectStatus;
  videoUrl: string | null;
  seed: number | null;
  errorCode: string | null;
  errorMessage: string | null;
}

/** Applies a report; a null field leaves the stored value as it was. */
export async function updateProject(query: Query, jobId: string, index: number, change: ProjectChange): Promise<ProjectRow | undefined> {
  const [row] = await query<ProjectRecord>(
    `update job_projects
     set status = $3, video_url = coalesce($4, video_url), seed = coalesce($5, seed),
         error_code = coalesce($6, error_code), error_message = coalesce($7, error_message), updated_at = now()
     where job_id = $1 and index = $2
     returning ${PROJECT_COLUMNS}`,
    [jobId, index, change.status, change.videoUrl, change.seed, change.errorCode, change.errorMessage],
    "job_project_update",
  );
  return row && toProject(row);
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
