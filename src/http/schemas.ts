import { z } from "@hono/zod-openapi";
import { JOB_STATUSES, PROJECT_STATUSES } from "../db/schema.js";
import { MAX_URL_LENGTH } from "../delivery/url-policy.js";

export const MAX_PROMPT_LENGTH = 4000;
export const MAX_PROJECTS = 20;

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "VALIDATION_FAILED" }),
      message: z.string(),
    }),
  })
  .openapi("Error");

/** Postgres text cannot hold NUL: refusing it here keeps a hostile body a 400, not a failed insert. */
const storable = (schema: z.ZodString) =>
  schema.refine((value) => !value.includes("\u0000"), { message: "must not contain NUL characters" });

const prompt = storable(z.string().trim().min(1).max(MAX_PROMPT_LENGTH));
const webhookUrl = storable(z.string().max(MAX_URL_LENGTH));

export const GenerateRequestSchema = z
  .strictObject({
    prompt,
    projectCount: z.number().int().min(1).max(MAX_PROJECTS).default(1),
    webhookUrl: webhookUrl.optional(),
  })
  .openapi("GenerateRequest");

export const ProjectSchema = z
  .object({
    projectId: z.string().uuid(),
    index: z.number().int(),
    status: z.enum(PROJECT_STATUSES),
    videoUrl: z.string().nullable(),
    seed: z.number().int().nullable(),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
  })
  .openapi("Project");

export const JobSchema = z
  .object({
    jobId: z.string().uuid(),
    status: z.enum(JOB_STATUSES),
    prompt: z.string(),
    webhookUrl: z.string().nullable(),
    totalProjects: z.number().int(),
    completedProjects: z.number().int(),
    failedProjects: z.number().int(),
    projects: z.array(ProjectSchema),
    createdAt: z.string(),
    updatedAt: z.string(),
    completedAt: z.string().nullable(),
    deadlineAt: z.string(),
  })
  .openapi("Job");

export const JobListSchema = z
  .object({ data: z.array(JobSchema), nextCursor: z.string().nullable() })
  .openapi("JobList");

export const JobListQuerySchema = z.strictObject({
  status: z.enum(JOB_STATUSES).optional(),
  since: z.string().datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
});

export const JobIdParamSchema = z.object({ jobId: z.string() });

export const ProjectParamSchema = z.object({
  jobId: z.string(),
  index: z.string().regex(/^\d{1,2}$/, "must be a project index"),
});

export const ProjectUpdateSchema = z
  .strictObject({
    status: z.enum(["processing", "completed", "failed"]),
    videoUrl: storable(z.string().url().max(MAX_URL_LENGTH)).optional(),
    seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    error: z
      .strictObject({ code: storable(z.string().min(1).max(100)), message: storable(z.string().max(1000)).optional() })
      .optional(),
  })
  .refine((update) => update.status !== "completed" || update.videoUrl !== undefined, {
    message: "a completed project needs videoUrl",
    path: ["videoUrl"],
  })
  .openapi("ProjectUpdate");
