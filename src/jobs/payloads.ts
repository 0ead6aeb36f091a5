import type { ApiFlavor, JobStatus, ProjectStatus } from "../db/schema.js";

export interface JobSnapshot {
  id: string;
  apiFlavor: ApiFlavor;
  prompt: string;
  status: JobStatus;
  createdAt: Date;
  completedAt: Date | null;
}

export interface ProjectSnapshot {
  id: string;
  index: number;
  status: ProjectStatus;
  videoUrl: string | null;
  seed: number | null;
  errorCode: string | null;
  errorMessage: string | null;
}

export const JOB_COMPLETED_EVENT = "job.completed";

/** The webhook body of a terminal job, in the wire contract of the surface that created it. */
export function buildWebhookPayload(job: JobSnapshot, projects: ProjectSnapshot[]): Record<string, unknown> {
  return job.apiFlavor === "veo3" ? veoGeneration(job, projects) : nouvelPayload(job, projects);
}

function nouvelPayload(job: JobSnapshot, projects: ProjectSnapshot[]): Record<string, unknown> {
  return {
    event: JOB_COMPLETED_EVENT,
    jobId: job.id,
    status: job.status,
    totalProjects: projects.length,
    completedProjects: projects.filter((project) => project.status === "completed").length,
    failedProjects: projects.filter((project) => project.status === "failed").length,
    projects: projects.map((project) => ({
      projectId: project.id,
      index: project.index,
      status: project.status,
      videoUrl: project.videoUrl,
      error: project.errorCode ? { code: project.errorCode, message: project.errorMessage ?? project.errorCode } : null,
    })),
    createdAt: job.createdAt.toISOString(),
    completedAt: job.completedAt?.toISOString() ?? null,
  };
}

/** A Veo3 generation's status as its surface reports it: `pending` until the backend picks it up. */
export type VeoStatus = "pending" | "processing" | "completed" | "failed";

function veoStatus(status: JobStatus): VeoStatus {
  if (status === "queued") return "pending";
  if (status === "processing") return "processing";
  return status === "completed" ? "completed" : "failed";
}

/**
 * A Veo3 generation in the seed document's shape: the webhook body once terminal, and the
 * status endpoint's body at any time. A generation is one project, so `partial` cannot occur.
 */
export function veoGeneration(job: JobSnapshot, projects: ProjectSnapshot[]) {
  const project = projects[0];
  const status = veoStatus(job.status);
  return {
    generation_id: job.id,
    status,
    prompt: job.prompt,
    video_url: status === "completed" ? (project?.videoUrl ?? null) : null,
    created_at: veoTimestamp(job.createdAt),
    completed_at: job.completedAt ? veoTimestamp(job.completedAt) : null,
    seed: project?.seed ?? null,
    error: status === "failed" ? { message: project?.errorCode ?? "GENERATION_FAILED", details: {} } : null,
  };
}

/** The Veo3 documents write UTC timestamps as `2025-12-06T21:43:03.374000`: microseconds, no zone. */
export function veoTimestamp(date: Date): string {
  return `${date.toISOString().slice(0, 23)}000`;
}
