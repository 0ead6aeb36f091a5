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
  return job.apiFlavor === "veo3" ? veoPayload(job, projects) : nouvelPayload(job, projects);
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

function veoPayload(job: JobSnapshot, projects: ProjectSnapshot[]): Record<string, unknown> {
  const project = projects[0];
  const failed = job.status !== "completed";
  return {
    generation_id: job.id,
    status: failed ? "failed" : "completed",
    prompt: job.prompt,
    video_url: failed ? null : (project?.videoUrl ?? null),
    created_at: veoTimestamp(job.createdAt),
    completed_at: job.completedAt ? veoTimestamp(job.completedAt) : null,
    seed: project?.seed ?? null,
    error: failed ? { message: project?.errorCode ?? "GENERATION_FAILED", details: {} } : null,
  };
}

/** The Veo3 documents write UTC timestamps as `2025-12-06T21:43:03.374000`: microseconds, no zone. */
export function veoTimestamp(date: Date): string {
  return `${date.toISOString().slice(0, 23)}000`;
}
