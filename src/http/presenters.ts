import type { JobView } from "../jobs/job-service.js";

export function jobJson(job: JobView) {
  return {
    jobId: job.id,
    status: job.status,
    prompt: job.prompt,
    webhookUrl: job.webhookUrl,
    totalProjects: job.projects.length,
    completedProjects: job.projects.filter((project) => project.status === "completed").length,
    failedProjects: job.projects.filter((project) => project.status === "failed").length,
    projects: job.projects.map((project) => ({
      projectId: project.id,
      index: project.index,
      status: project.status,
      videoUrl: project.videoUrl,
      seed: project.seed,
      error: project.errorCode ? { code: project.errorCode, message: project.errorMessage ?? project.errorCode } : null,
    })),
    createdAt: job.createdAt.toISOString(),
    updatedAt: job.updatedAt.toISOString(),
    completedAt: job.completedAt?.toISOString() ?? null,
    deadlineAt: job.deadlineAt.toISOString(),
  };
}
