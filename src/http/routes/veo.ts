import { randomInt } from "node:crypto";
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { AppError, notFound } from "../../errors.js";
import type { JobService } from "../../jobs/job-service.js";
import { veoGeneration } from "../../jobs/payloads.js";
import type { AppEnv } from "../auth.js";
import { validationHook } from "../errors.js";
import { createWithKey, IdempotencyHeadersSchema } from "../idempotency.js";
import { errorResponses, jsonBody, jsonResponse } from "../openapi.js";
import { isUuid } from "../../uuid.js";
import { prompt, text, webhookUrl } from "../schemas.js";

/** Seeds are chosen from this range when the caller gives none, as the Veo3 provider does. */
const SEED_RANGE = 2 ** 32;

const VeoGenerateRequestSchema = z
  .strictObject({
    prompt,
    callback_url: webhookUrl.optional(),
    seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .openapi("VeoGenerateRequest");

const VeoAcceptedSchema = z
  .object({ generation_id: z.string().uuid(), status: z.literal("pending") })
  .openapi("VeoAccepted");

const VeoGenerationSchema = z
  .object({
    generation_id: z.string().uuid(),
    status: z.enum(["pending", "processing", "completed", "failed"]),
    prompt: z.string(),
    video_url: z.string().nullable(),
    created_at: z.string().openapi({ example: "2025-12-06T21:43:03.374000" }),
    completed_at: z.string().nullable(),
    seed: z.number().int().nullable(),
    error: z.object({ message: z.string().openapi({ example: "UNSAFE_CONTENT" }), details: z.object({}) }).nullable(),
  })
  .openapi("VeoGeneration");

const security = [{ bearerAuth: [] }];

const generate = createRoute({
  method: "post",
  path: "/v1/veo/generate",
  operationId: "createVeoGeneration",
  tags: ["veo3"],
  summary: "Veo3 surface: create a generation of one video",
  description:
    "When it is done, `callback_url` receives the VeoGeneration body (status `completed` or `failed`) under the Veo3 retry policy.",
  security,
  request: { body: jsonBody(VeoGenerateRequestSchema), headers: IdempotencyHeadersSchema },
  responses: {
    202: jsonResponse(VeoAcceptedSchema, "The generation was accepted (or, for a repeated Idempotency-Key, the original answer)"),
    ...errorResponses(400, 401, 409, 413, 415, 429),
  },
});

const getGeneration = createRoute({
  method: "get",
  path: "/v1/veo/generations/{generation_id}",
  operationId: "getVeoGeneration",
  tags: ["veo3"],
  summary: "Veo3 surface: a generation's status (the same body its webhook carries)",
  security,
  request: { params: z.object({ generation_id: text() }) },
  responses: { 200: jsonResponse(VeoGenerationSchema, "The generation"), ...errorResponses(401, 404, 429) },
});

export function veoRoutes(jobService: JobService) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(generate, async (c) => {
    const body = c.req.valid("json");
    const { view } = await createWithKey(
      c,
      jobService,
      "POST /v1/veo/generate",
      body,
      {
        tenantId: c.get("tenantId"),
        apiKeyHash: c.get("apiKeyHash"),
        apiFlavor: "veo3",
        prompt: body.prompt,
        projectCount: 1,
        webhookUrl: body.callback_url,
        seed: body.seed ?? randomInt(SEED_RANGE),
      },
      c.req.valid("header")["idempotency-key"],
    );
    return c.json({ generation_id: view.id, status: "pending" as const }, 202);
  });

  app.openapi(getGeneration, async (c) => {
    const { generation_id: id } = c.req.valid("param");
    if (!isUuid(id)) throw notFound("generation");
    const job = await jobService.get(c.get("tenantId"), id).catch((error: unknown) => {
      throw error instanceof AppError && error.code === "JOB_NOT_FOUND" ? notFound("generation") : error;
    });
    if (job.apiFlavor !== "veo3") throw notFound("generation");
    return c.json(veoGeneration(job, job.projects), 200);
  });

  return app;
}
