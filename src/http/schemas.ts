import { z } from "@hono/zod-openapi";
import { JOB_STATUSES, PROJECT_STATUSES } from "../db/schema.js";
import { MAX_URL_LENGTH } from "../delivery/url-policy.js";
import { isStorableInstant } from "../jobs/cursor.js";

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

/** A UTF-16 surrogate without its pair (with the `u` flag a well-formed pair is one code point, not Cs). */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Text Postgres can store: text refuses NUL, and jsonb (webhook payloads quote request text)
 * refuses NUL and unpaired surrogates. Every text field of every request (bodies, query strings,
 * path parameters) goes through `storable`, so such text is a 400 naming the field, never a
 * failed insert.
 */
export function isStorableText(value: string): boolean {
  return !value.includes("\u0000") && !LONE_SURROGATE.test(value);
}

export const storable = <T extends z.ZodString>(schema: T) =>
  schema.refine(isStorableText, { message: "must not contain NUL characters or unpaired UTF-16 surrogates" });

/** Any text field of a request. */
export const text = () => storable(z.string());

/** An ISO 8601 instant with an offset, within what a timestamptz column stores (UTC years 0001 to 9999). */
export const instant = () =>
  z
    .string()
    .datetime({ offset: true })
    .refine((value) => isStorableInstant(new Date(value)), { message: "must fall within the years 0001 to 9999 (UTC)" });

/** A page cursor as the API returned it; its content is checked where it is decoded (INVALID_CURSOR). */
export const cursor = () => storable(z.string().max(200));

export const prompt = storable(z.string().trim().min(1).max(MAX_PROMPT_LENGTH));
export const webhookUrl = storable(z.string().max(MAX_URL_LENGTH));

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
  since: instant().optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: cursor().optional(),
});

export const JobIdParamSchema = z.object({ jobId: text() });

export const ProjectParamSchema = z.object({
  jobId: text(),
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
