import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { JobService } from "../../jobs/job-service.js";
import { notFound } from "../../errors.js";
import type { AppEnv } from "../auth.js";
import { validationHook } from "../errors.js";
import { createWithKey, IdempotencyHeadersSchema } from "../idempotency.js";
import { jobJson } from "../presenters.js";
import { errorResponses, jsonBody, jsonResponse } from "../openapi.js";
import { isUuid } from "../../uuid.js";
import { GenerateRequestSchema, JobIdParamSchema, JobListQuerySchema, JobListSchema, JobSchema } from "../schemas.js";

const security = [{ bearerAuth: [] }];

const generate = createRoute({
  method: "post",
  path: "/api/v1/generate",
  operationId: "createJob",
  tags: ["jobs"],
  summary: "Create a generation job of one or more projects",
  security,
  request: { body: jsonBody(GenerateRequestSchema), headers: IdempotencyHeadersSchema },
  responses: {
    202: jsonResponse(JobSchema, "The job was accepted (or, for a repeated Idempotency-Key, the original answer)"),
    ...errorResponses(400, 401, 409, 413, 415, 429),
  },
});

const getJob = createRoute({
  method: "get",
  path: "/api/v1/jobs/{jobId}",
  operationId: "getJob",
  tags: ["jobs"],
  summary: "A job's status and projects",
  security,
  request: { params: JobIdParamSchema },
  responses: { 200: jsonResponse(JobSchema, "The job"), ...errorResponses(401, 404, 429) },
});

const listJobs = createRoute({
  method: "get",
  path: "/api/v1/jobs",
  operationId: "listJobs",
  tags: ["jobs"],
  summary: "The tenant's jobs, newest first, keyset-paginated",
  security,
  request: { query: JobListQuerySchema },
  responses: { 200: jsonResponse(JobListSchema, "A page of jobs"), ...errorResponses(400, 401, 429) },
});

export function jobRoutes(jobService: JobService) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(generate, async (c) => {
    const body = c.req.valid("json");
    const { view } = await createWithKey(
      c,
      jobService,
      "POST /api/v1/generate",
      body,
      {
        tenantId: c.get("tenantId"),
        apiKeyHash: c.get("apiKeyHash"),
        apiFlavor: "nouvel",
        prompt: body.prompt,
        projectCount: body.projectCount,
        webhookUrl: body.webhookUrl,
      },
      c.req.valid("header")["idempotency-key"],
    );
    return c.json(jobJson(view), 202);
  });

  app.openapi(getJob, async (c) => {
    const { jobId } = c.req.valid("param");
    if (!isUuid(jobId)) throw notFound("job");
    return c.json(jobJson(await jobService.get(c.get("tenantId"), jobId)), 200);
  });

  app.openapi(listJobs, async (c) => {
    const query = c.req.valid("query");
    const page = await jobService.list({
      tenantId: c.get("tenantId"),
      status: query.status,
      since: query.since ? new Date(query.since) : undefined,
      limit: query.limit,
      cursor: query.cursor,
    });
    return c.json({ data: page.jobs.map(jobJson), nextCursor: page.nextCursor }, 200);
  });

  return app;
}
