import type { JobRow, ProjectRow } from "./job-sql.js";
import type { JobSnapshot, ProjectSnapshot } from "./payloads.js";

/** A job as the API shows it: its row and its projects. */
export interface JobView extends JobSnapshot {
  tenantId: string;
  webhookUrl: string | null;
  updatedAt: Date;
  deadlineAt: Date;
  projects: ProjectSnapshot[];
}

export function toProjectSnapshot({ jobId: _jobId, updatedAt: _updatedAt, ...project }: ProjectRow): ProjectSnapshot {
  return project;
}

export function toView(job: JobRow, projects: ProjectRow[]): JobView {
  return { ...job, projects: projects.filter((project) => project.jobId === job.id).map(toProjectSnapshot) };
}
