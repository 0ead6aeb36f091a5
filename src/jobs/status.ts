import { TERMINAL_JOB_STATUSES, type JobStatus, type ProjectStatus } from "../db/schema.js";

export function isTerminalJob(status: JobStatus): boolean {
  return (TERMINAL_JOB_STATUSES as readonly string[]).includes(status);
}

export function isTerminalProject(status: ProjectStatus): boolean {
  return status === "completed" || status === "failed";
}

/** completed: every project completed; failed: every project failed; partial: both; otherwise still running. */
export function jobStatusFromProjects(statuses: ProjectStatus[]): JobStatus {
  if (statuses.every(isTerminalProject)) {
    const completed = statuses.filter((status) => status === "completed").length;
    if (completed === statuses.length) return "completed";
    return completed === 0 ? "failed" : "partial";
  }
  return statuses.some((status) => status !== "queued") ? "processing" : "queued";
}
