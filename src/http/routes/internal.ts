import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import { notFound } from "../../errors.js";
import type { JobService } from "../../jobs/job-service.js";
import { validationHook } from "../errors.js";
import { errorResponses, jsonBody, jsonResponse } from "../openapi.js";
import { isUuid } from "../../uuid.js";
import { jobJson } from "../presenters.js";
import { JobSchema, ProjectParamSchema, ProjectUpdateSchema } from "../schemas.js";

const updateProject = createRoute({
  method: "patch",
  path: "/internal/v1/jobs/{jobId}/projects/{index}",
  operationId: "reportProject",
  tags: ["internal"],
  summary: "The generation backend reports a project's progress",
  description:
    "The report that makes the job terminal enqueues its webhook in the same transaction. Repeating a terminal report is accepted and enqueues nothing.",
  security: [{ internalToken: [] }],
  request: { params: ProjectParamSchema, body: jsonBody(ProjectUpdateSchema) },
  responses: {
    200: jsonResponse(JobSchema, "The job after the update"),
    ...errorResponses(400, 401, 404, 409, 413, 415),
  },
});

export function internalRoutes(jobService: JobService) {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(updateProject, async (c) => {
    const { jobId, index } = c.req.valid("param");
    if (!isUuid(jobId)) throw notFound("job");
    const job = await jobService.updateProject(jobId, Number(index), c.req.valid("json"));
    return c.json(jobJson(job), 200);
  });
  return app;
}
