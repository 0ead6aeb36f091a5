import type { Query } from "../db/client.js";
import { StatementParams } from "../db/statement-params.js";
import { deliveriesInsert, deliveryValues, type NewDelivery } from "../outbox/enqueue.js";
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
  created_at: Date;
  updated_at: Date;
  completed_at: Date | null;
  deadline_at: Date;
}

interface ProjectRecord {
  id: string;
  job_id: string;
  index: number;
  status: ProjectStatus;
  video_url: string | null;
  /** bigint: pg returns int8 as text. */
  seed: string | null;
  error_code: string | null;
  error_message: string | null;
  updated_at: Date;
}

const prefixed = (alias: string, columns: string) => columns.replace(/(^|, )/g, `$1${alias}`);

function toJob(row: JobRecord): JobRow {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    apiFlavor: row.api_flavor,
    prompt: row.prompt,
    status: row.status,
    webhookUrl: row.webhook_url,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    completedAt: row.completed_at,
    deadlineAt: row.deadline_at,
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
    updatedAt: row.updated_at,
  };
}

/** Locks the job row: every report on one job's projects queues behind it. */
export async function lockJob(query: Query, jobId: string): Promise<JobRow | undefined> {
  const [row] = await query<JobRecord>(`select ${JOB_COLUMNS} from webhook_outbox.jobs where id = $1 for update`, [jobId], "job_lock");
  return row && toJob(row);
}

/** Locks up to `limit` open jobs past their deadline, skipping any another transaction holds. */
export async function lockOverdueJobs(query: Query, limit: number): Promise<JobRow[]> {
  const rows = await query<JobRecord>(
    `select ${JOB_COLUMNS} from webhook_outbox.jobs
     where status in ('queued', 'processing') and deadline_at <= now()
     order by deadline_at limit $1 for update skip locked`,
    [limit],
    "job_lock_overdue",
  );
  return rows.map(toJob);
}

export async function projectsOf(query: Query, jobIds: string[]): Promise<ProjectRow[]> {
  const rows = await query<ProjectRecord>(
    `select ${PROJECT_COLUMNS} from webhook_outbox.job_projects where job_id = any($1::uuid[]) order by job_id, index`,
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

/** A project's columns, prefixed `p_`, on a row that joins jobs to their projects (null where a job has none). */
interface JoinedProjectColumns {
  p_id: string | null;
  p_index: number | null;
  p_status: ProjectStatus | null;
  p_video_url: string | null;
  p_seed: string | null;
  p_error_code: string | null;
  p_error_message: string | null;
  p_updated_at: Date | null;
}

/** The project of a joined row whose `p_id` is set. */
function joinedProject(jobId: string, row: JoinedProjectColumns): ProjectRow {
  return toProject({
    id: row.p_id as string,
    job_id: jobId,
    index: row.p_index as number,
    status: row.p_status as ProjectStatus,
    video_url: row.p_video_url,
    seed: row.p_seed,
    error_code: row.p_error_code,
    error_message: row.p_error_message,
    updated_at: row.p_updated_at as Date,
  });
}

interface JobStateRecord extends JobRecord, JoinedProjectColumns {
  version: string;
  read_at: Date;
}

/**
 * One snapshot of several jobs and their projects, without a lock: each write that follows checks
 * `version`. The ids are read through a scalar sub-select, as the create's arrays are: with the
 * array's length visible, a report alone (one id) was planned for one row, the generic plan (ten,
 * Postgres's guess) looked ten times dearer, and every read was planned again.
 */
export async function readJobStates(query: Query, jobIds: string[]): Promise<Map<string, JobState>> {
  const rows = await query<JobStateRecord>(
    `select j.xmin::text as version, now() as read_at, ${prefixed("j.", JOB_COLUMNS)},
            p.id as p_id, p.index as p_index, p.status as p_status, p.video_url as p_video_url, p.seed as p_seed,
            p.error_code as p_error_code, p.error_message as p_error_message, p.updated_at as p_updated_at
     from webhook_outbox.jobs j left join webhook_outbox.job_projects p on p.job_id = j.id
     where j.id = any((select $1::uuid[])::uuid[])
     order by j.id, p.index`,
    [jobIds],
    "job_read_states",
  );
  const states = new Map<string, JobState>();
  for (const row of rows) {
    let state = states.get(row.id);
    if (!state) {
      state = { job: toJob(row), projects: [], version: row.version, now: row.read_at };
      states.set(row.id, state);
    }
    if (row.p_id === null) continue;
    state.projects.push(joinedProject(row.id, row));
  }
  return states;
}

export interface ReportWrite {
  jobId: string;
  /** The version `readJobStates` saw; the write applies only if the job row still has it. */
  version: string;
  job: Pick<JobRow, "status" | "updatedAt" | "completedAt">;
  project: Pick<ProjectRow, "index" | "status" | "videoUrl" | "seed" | "errorCode" | "errorMessage" | "updatedAt">;
  /** The webhook row, when this write makes the job terminal and it has a webhook. */
  delivery: NewDelivery | undefined;
}

// Each job, its project and its outbox row, for many reports in one statement (one commit). The
// job rows are locked in id order first, so two such statements on overlapping jobs cannot
// deadlock. Under READ COMMITTED the lock returns each row as its previous holder left it, so a
// stale version (or a project gone since the read) matches nothing: that report writes nothing and
// its caller reads again.
const REPORTS_PARAMS = new StatementParams();
const $r = (name: string) => REPORTS_PARAMS.ref(name);
const REPORTS_SQL = `
with report as (
  select *
  from unnest(${$r("job_id")}::uuid[], ${$r("version")}::xid[], ${$r("status")}::text[], ${$r("updated_at")}::timestamptz[],
              ${$r("completed_at")}::timestamptz[], ${$r("index")}::int[], ${$r("project_status")}::text[],
              ${$r("video_url")}::text[], ${$r("seed")}::bigint[], ${$r("error_code")}::text[], ${$r("error_message")}::text[],
              ${$r("project_updated_at")}::timestamptz[])
    as r(job_id, version, status, updated_at, completed_at, index, project_status, video_url, seed, error_code,
         error_message, project_updated_at)
), locked as materialized (
  select id, xmin from webhook_outbox.jobs where id = any(${$r("job_id")}::uuid[]) order by id for update
), job as (
  update webhook_outbox.jobs j set status = r.status, updated_at = r.updated_at, completed_at = r.completed_at
  from report r join locked l on l.id = r.job_id and l.xmin = r.version
  -- A project deleted since the read writes nothing of its report: no job settles without its project.
  where j.id = r.job_id and exists (select from webhook_outbox.job_projects p where p.job_id = r.job_id and p.index = r.index)
  returning j.id, j.xmin::text as version
), project as (
  update webhook_outbox.job_projects p
  set status = r.project_status, video_url = r.video_url, seed = r.seed, error_code = r.error_code,
      error_message = r.error_message, updated_at = r.project_updated_at
  from report r join job on job.id = r.job_id
  where p.job_id = r.job_id and p.index = r.index
  returning p.job_id
), ${deliveriesInsert(REPORTS_PARAMS, "o.job_id in (select id from job)")}
select r.job_id as id,
       -- Null: the job had moved (nothing of its report written).
       (select job.version from job where job.id = r.job_id) as version,
       exists (select from project where project.job_id = r.job_id) as project_written,
       exists (select from inserted where inserted.job_id = r.job_id) as enqueued
from report r`;

/** Per job: "stale" when it moved since it was read (nothing of the report written), else what was written and the job row's new version. */
export type ReportWritten = { outcome: "stale" } | { outcome: "written" | "enqueued"; version: string };

/** Applies reports built from `readJobStates`, one per job, in one statement. */
export async function writeReports(query: Query, writes: ReportWrite[]): Promise<Map<string, ReportWritten>> {
  const column = <T>(pick: (write: ReportWrite) => T) => writes.map(pick);
  const deliveries = writes.flatMap((write) => (write.delivery ? [write.delivery] : []));
  const rows = await query<{ id: string; version: string | null; project_written: boolean; enqueued: boolean }>(
    REPORTS_SQL,
    REPORTS_PARAMS.values({
      job_id: column((w) => w.jobId),
      version: column((w) => w.version),
      status: column((w) => w.job.status),
      updated_at: column((w) => w.job.updatedAt.toISOString()),
      completed_at: column((w) => w.job.completedAt?.toISOString() ?? null),
      index: column((w) => w.project.index),
      project_status: column((w) => w.project.status),
      video_url: column((w) => w.project.videoUrl),
      seed: column((w) => w.project.seed),
      error_code: column((w) => w.project.errorCode),
      error_message: column((w) => w.project.errorMessage),
      project_updated_at: column((w) => w.project.updatedAt.toISOString()),
      ...deliveryValues(deliveries),
    }),
    "job_write_reports",
  );
  const outcomes = new Map<string, ReportWritten>();
  for (const row of rows) {
    if (row.version === null) {
      outcomes.set(row.id, { outcome: "stale" });
      continue;
    }
    if (!row.project_written) throw new Error(`a reported project of job ${row.id} vanished while its job row was locked`);
    outcomes.set(row.id, { outcome: row.enqueued ? "enqueued" : "written", version: row.version });
  }
  return outcomes;
}

/** Fails every open project of the given jobs with `code`. */
export async function failOpenProjects(query: Query, jobIds: string[], code: string, message: string): Promise<void> {
  await query(
    `update webhook_outbox.job_projects set status = 'failed', error_code = $2, error_message = $3, updated_at = now()
     where job_id = any($1::uuid[]) and status in ('queued', 'processing')`,
    [jobIds, code, message],
    "job_projects_fail_open",
  );
}

/** Sets the job's status; `terminal` stamps completed_at. */
export async function setJobStatus(query: Query, jobId: string, status: JobStatus, terminal: boolean): Promise<JobRow> {
  const [row] = await query<JobRecord>(
    `update webhook_outbox.jobs
     set status = $2, updated_at = now(), completed_at = case when $3::boolean then now() else completed_at end
     where id = $1
     returning ${JOB_COLUMNS}`,
    [jobId, status, terminal],
    "job_set_status",
  );
  if (!row) throw new Error(`job ${jobId} vanished inside its own transaction`);
  return toJob(row);
}

export interface JobInsert {
  tenantId: string;
  /** sha256 of the API key the request presented; null: a trusted caller, no key to check. */
  apiKeyHash: string | null;
  apiFlavor: JobRow["apiFlavor"];
  prompt: string;
  webhookUrl: string | null;
  projectCount: number;
  seed: number | null;
  /** The request's Idempotency-Key, if it carried one, and the sha256 of its route and body. */
  idempotencyKey: string | null;
  requestHash: string | null;
}

// Many jobs and their projects in one statement (one commit). Each job is written only if the key
// its request presented still belongs to its tenant and is unrevoked. FOR SHARE makes that check
// hold until the commit: a revocation (an UPDATE of the key row) that comes later waits for this
// statement's commit, and one that committed first leaves the re-checked row revoked, so that job
// is refused. No job is ever written with a key after the commit of its revocation.
// Each array is read through a scalar sub-select, which hides its length from the planner: the
// plan then costs the same whatever the batch, and Postgres keeps one generic plan rather than
// planning every execution (planning this statement cost more than inserting ten jobs with it).
//
// Idempotency keys, in the same statement: a create whose (tenant, key) has a row younger than
// $10 ms writes nothing and returns that row (its request hash and the job it made, as written);
// otherwise its job's row is written beside the job (an expired one of the same key is deleted
// first). Two creates of one key that run at once both find none: the second one's insert waits
// for the first's commit on the primary key and then fails the statement (unique violation,
// nothing written), and the create, retried alone, finds the first's row.
const INSERT_JOBS_SQL = `
with input as (
  select *
  from unnest((select $1::uuid[]), (select $2::text[]), (select $3::text[]), (select $4::text[]), (select $5::text[]),
              (select $6::int[]), (select $7::bigint[]), (select $9::text[]), (select $11::text[]))
    with ordinality as i(tenant_id, key_hash, api_flavor, prompt, webhook_url, project_count, seed, idempotency_key,
                         request_hash, ord)
), key as materialized (
  select key_hash, tenant_id from webhook_outbox.api_keys
  where key_hash = any((select $2::text[])::text[]) and revoked_at is null
  for share
), checked as materialized (
  select i.*, (i.key_hash is null
               or exists (select from key k where k.key_hash = i.key_hash and k.tenant_id = i.tenant_id)) as allowed
  from input i
), prior as materialized (
  select k.tenant_id, k.key, k.request_hash, k.response
  from webhook_outbox.idempotency_keys k
  join checked c on c.tenant_id = k.tenant_id and c.idempotency_key = k.key
  where c.allowed and k.created_at > now() - $10::float8 * interval '1 millisecond'
), admitted as materialized (
  select webhook_outbox.uuid_v7() as id, c.*
  from checked c
  where c.allowed
    and not exists (select from prior p where p.tenant_id = c.tenant_id and p.key = c.idempotency_key)
), expired as (
  delete from webhook_outbox.idempotency_keys k
  using admitted a
  where k.tenant_id = a.tenant_id and k.key = a.idempotency_key
    and k.created_at <= now() - $10::float8 * interval '1 millisecond'
  returning k.key
), job as (
  insert into webhook_outbox.jobs (id, tenant_id, api_flavor, prompt, webhook_url, deadline_at)
  select id, tenant_id, api_flavor, prompt, webhook_url, now() + $8::float8 * interval '1 millisecond'
  from admitted
  order by ord
  returning xmin::text as version, ${JOB_COLUMNS}
), project as (
  insert into webhook_outbox.job_projects (job_id, index, seed)
  select a.id, g.index, a.seed
  from job j join admitted a on a.id = j.id cross join lateral generate_series(0, a.project_count - 1) as g(index)
  order by a.ord, g.index
  returning ${PROJECT_COLUMNS}
), keyed as (
  -- After the expired row of the key is gone (this reads "expired", so the delete runs first).
  insert into webhook_outbox.idempotency_keys (tenant_id, key, request_hash, job_id, response)
  select a.tenant_id, a.idempotency_key, a.request_hash, j.id,
         jsonb_build_object('job', to_jsonb(j),
                            'projects', (select coalesce(jsonb_agg(to_jsonb(p) order by p.index), '[]')
                                         from project p where p.job_id = j.id))
  from job j join admitted a on a.id = j.id
  where a.idempotency_key is not null and (select count(*) from expired) >= 0
)
select i.ord, i.allowed, pr.request_hash as prior_hash, pr.response as prior_response, j.version, ${prefixed("j.", JOB_COLUMNS)},
       p.id as p_id, p.index as p_index, p.status as p_status, p.video_url as p_video_url, p.seed as p_seed,
       p.error_code as p_error_code, p.error_message as p_error_message, p.updated_at as p_updated_at
from checked i
left join prior pr on pr.tenant_id = i.tenant_id and pr.key = i.idempotency_key
left join admitted a on a.ord = i.ord
left join job j on j.id = a.id
left join project p on p.job_id = j.id
order by i.ord, p.index`;

/** One project of an inserted job, or one refused or answered-before job: then `id` and every other column is null. */
type InsertedJobRecord = Omit<JobStateRecord, "id" | "version" | "read_at"> & {
  ord: string;
  id: string | null;
  version: string | null;
  allowed: boolean;
  prior_hash: string | null;
  prior_response: { job: JobRecordJson; projects: ProjectRecordJson[] } | null;
};

/** A job or project row as to_jsonb renders it: timestamps as text, the seed as a number. */
type JobRecordJson = Omit<JobRecord, "created_at" | "updated_at" | "completed_at" | "deadline_at"> &
  Record<"created_at" | "updated_at" | "deadline_at", string> & { completed_at: string | null };
type ProjectRecordJson = Omit<ProjectRecord, "updated_at" | "seed"> & { updated_at: string; seed: number | null };

/**
 * What became of each create: its job as inserted with its projects; refused (its API key, and
 * nothing of it was written); or answered before (its idempotency key names a job made within the
 * window: the request hash it was made with, and that job as first written).
 */
export type InsertedJob =
  | { kind: "created"; job: JobRow; projects: ProjectRow[]; version: string }
  | { kind: "refused" }
  | { kind: "answered"; requestHash: string; job: JobRow; projects: ProjectRow[] };

function fromJson(stored: { job: JobRecordJson; projects: ProjectRecordJson[] }): { job: JobRow; projects: ProjectRow[] } {
  const date = (text: string) => new Date(text);
  const job = stored.job;
  return {
    job: toJob({
      ...job,
      created_at: date(job.created_at),
      updated_at: date(job.updated_at),
      completed_at: job.completed_at === null ? null : date(job.completed_at),
      deadline_at: date(job.deadline_at),
    }),
    projects: stored.projects.map((project) =>
      toProject({ ...project, seed: project.seed === null ? null : String(project.seed), updated_at: date(project.updated_at) }),
    ),
  };
}

/**
 * Inserts jobs (each with its `projectCount` queued projects, deadline `timeoutMs` from now) in one
 * statement: the results in the order of `inserts`. A create with an idempotency key used within
 * `idempotencyWindowMs` writes nothing and is answered from that key.
 */
export async function insertJobs(
  query: Query,
  inserts: JobInsert[],
  timeoutMs: number,
  idempotencyWindowMs: number,
): Promise<InsertedJob[]> {
  const column = <T>(pick: (insert: JobInsert) => T) => inserts.map(pick);
  const rows = await query<InsertedJobRecord>(
    INSERT_JOBS_SQL,
    [
      column((i) => i.tenantId),
      column((i) => i.apiKeyHash),
      column((i) => i.apiFlavor),
      column((i) => i.prompt),
      column((i) => i.webhookUrl),
      column((i) => i.projectCount),
      column((i) => i.seed),
      timeoutMs,
      column((i) => i.idempotencyKey),
      idempotencyWindowMs,
      column((i) => i.requestHash),
    ],
    "job_insert",
  );
  const results: InsertedJob[] = inserts.map(() => ({ kind: "refused" }));
  for (const row of rows) {
    const at = Number(row.ord) - 1;
    if (row.prior_response !== null && row.prior_hash !== null) {
      results[at] = { kind: "answered", requestHash: row.prior_hash, ...fromJson(row.prior_response) };
      continue;
    }
    if (row.id === null) continue;
    let created = results[at];
    if (created?.kind !== "created") {
      // The job CTE returns the version with the id: both are set on an inserted job's rows.
      created = { kind: "created", job: toJob({ ...row, id: row.id }), projects: [], version: row.version as string };
      results[at] = created;
    }
    if (row.p_id === null) continue;
    created.projects.push(joinedProject(row.id, row));
  }
  return results;
}
