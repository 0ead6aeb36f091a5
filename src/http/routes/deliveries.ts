import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Database } from "../../db/client.js";
import { ATTEMPT_OUTCOMES, DELIVERY_STATUSES, ERROR_KINDS } from "../../db/schema.js";
import { notFound } from "../../errors.js";
import { decodeCursor, encodeCursor } from "../../jobs/cursor.js";
import type { JobService } from "../../jobs/job-service.js";
import {
  deliveriesOfJob,
  listDeliveries,
  type AttemptRow,
  type DeliveryRow,
} from "../../outbox/delivery-queries.js";
import { redeliver } from "../../outbox/redeliver.js";
import type { AppEnv } from "../auth.js";
import { validationHook } from "../errors.js";
import { errorResponses, jsonResponse } from "../openapi.js";
import { isUuid } from "../../uuid.js";
import { cursor, instant, JobIdParamSchema, text } from "../schemas.js";

const AttemptSchema = z
  .object({
    attemptNumber: z.number().int(),
    startedAt: z.string(),
    finishedAt: z.string(),
    durationMs: z.number().int(),
    responseStatus: z.number().int().nullable(),
    responseBodyExcerpt: z.string().nullable(),
    errorKind: z.enum(ERROR_KINDS).nullable(),
    errorMessage: z.string().nullable(),
    outcome: z.enum(ATTEMPT_OUTCOMES),
  })
  .openapi("DeliveryAttempt");

const DeliverySchema = z
  .object({
    deliveryId: z.string().uuid().openapi({ description: "Also the `webhook-id` header of every attempt" }),
    jobId: z
      .string()
      .uuid()
      .nullable()
      .openapi({ description: "The job whose webhook this is; null for deliveries enqueued through the library or SQL API" }),
    eventType: z.string(),
    url: z.string(),
    status: z.enum(DELIVERY_STATUSES),
    attemptCount: z.number().int(),
    maxAttempts: z.number().int(),
    retryDelaysMs: z.array(z.number().int()),
    timeoutMs: z.number().int(),
    connectTimeoutMs: z.number().int(),
    nextAttemptAt: z.string().nullable().openapi({
      description: "When the next attempt is due; null once finished, and while it waits for its destination's circuit to close",
    }),
    lastResponseStatus: z.number().int().nullable(),
    lastError: z.string().nullable(),
    createdAt: z.string(),
    finishedAt: z.string().nullable(),
    payload: z.unknown().openapi({ description: "The body sent, frozen at enqueue" }),
  })
  .openapi("Delivery");

const DeliveryWithAttemptsSchema = DeliverySchema.extend({ attempts: z.array(AttemptSchema) }).openapi(
  "DeliveryWithAttempts",
);

const DeliveryListQuerySchema = z.strictObject({
  status: z.enum(DELIVERY_STATUSES).optional(),
  since: instant().optional().openapi({ description: "Only deliveries created at or after this instant" }),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: cursor().optional(),
});

const security = [{ bearerAuth: [] }];

const jobDeliveries = createRoute({
  method: "get",
  path: "/api/v1/jobs/{jobId}/deliveries",
  operationId: "listJobDeliveries",
  tags: ["deliveries"],
  summary: "A job's webhook deliveries, each with every attempt in order",
  security,
  request: { params: JobIdParamSchema },
  responses: {
    200: jsonResponse(z.object({ data: z.array(DeliveryWithAttemptsSchema) }), "The job's deliveries"),
    ...errorResponses(401, 404, 429),
  },
});

const listRoute = createRoute({
  method: "get",
  path: "/api/v1/deliveries",
  operationId: "listDeliveries",
  tags: ["deliveries"],
  summary: "The tenant's deliveries, newest first, keyset-paginated (the polling safety net for missed webhooks)",
  security,
  request: { query: DeliveryListQuerySchema },
  responses: {
    200: jsonResponse(z.object({ data: z.array(DeliverySchema), nextCursor: z.string().nullable() }), "A page"),
    ...errorResponses(400, 401, 429),
  },
});

const redeliverRoute = createRoute({
  method: "post",
  path: "/api/v1/deliveries/{deliveryId}/redeliver",
  operationId: "redeliver",
  tags: ["deliveries"],
  summary: "Send a succeeded or failed delivery again",
  description:
    "The same delivery (same `webhook-id`) gets a fresh attempt budget under its frozen schedule; new attempts append to its history. 409 DELIVERY_IN_FLIGHT while it is pending or delivering.",
  security,
  request: { params: z.object({ deliveryId: text() }) },
  responses: {
    202: jsonResponse(DeliverySchema, "The delivery, queued again"),
    ...errorResponses(401, 404, 409, 413, 415, 429),
  },
});

export function deliveryRoutes(database: Database, jobService: JobService) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(jobDeliveries, async (c) => {
    const { jobId } = c.req.valid("param");
    if (!isUuid(jobId)) throw notFound("job");
    const tenantId = c.get("tenantId");
    await jobService.get(tenantId, jobId); // 404 unless it is this tenant's job
    const deliveries = await deliveriesOfJob(database, tenantId, jobId);
    return c.json({ data: deliveries.map((d) => ({ ...deliveryJson(d), attempts: d.attempts.map(attemptJson) })) }, 200);
  });

  app.openapi(listRoute, async (c) => {
    const query = c.req.valid("query");
    const page = await listDeliveries(database, {
      tenantId: c.get("tenantId"),
      status: query.status,
      since: query.since ? new Date(query.since) : undefined,
      limit: query.limit,
      after: query.cursor ? decodeCursor(query.cursor) : undefined,
    });
    const last = page.deliveries[page.deliveries.length - 1];
    return c.json(
      {
        data: page.deliveries.map(deliveryJson),
        nextCursor: page.hasMore && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null,
      },
      200,
    );
  });

  app.openapi(redeliverRoute, async (c) => {
    const { deliveryId } = c.req.valid("param");
    if (!isUuid(deliveryId)) throw notFound("delivery");
    const tenantId = c.get("tenantId");
    return c.json(deliveryJson(await redeliver(database, deliveryId, tenantId)), 202);
  });

  return app;
}

function deliveryJson(delivery: DeliveryRow) {
  return {
    deliveryId: delivery.id,
    jobId: delivery.jobId,
    eventType: delivery.eventType,
    url: delivery.url,
    status: delivery.status,
    attemptCount: delivery.attemptCount,
    maxAttempts: delivery.maxAttempts,
    retryDelaysMs: delivery.retryDelaysMs,
    timeoutMs: delivery.timeoutMs,
    connectTimeoutMs: delivery.connectTimeoutMs,
    // A parked delivery's next_attempt_at is 'infinity': no time is set for it.
    nextAttemptAt: delivery.nextAttemptAt && Number.isFinite(delivery.nextAttemptAt.getTime()) ? delivery.nextAttemptAt.toISOString() : null,
    lastResponseStatus: delivery.lastResponseStatus,
    lastError: delivery.lastError,
    createdAt: delivery.createdAt.toISOString(),
    finishedAt: delivery.finishedAt?.toISOString() ?? null,
    payload: delivery.payload,
  };
}

function attemptJson(attempt: AttemptRow) {
  return {
    attemptNumber: attempt.attemptNumber,
    startedAt: attempt.startedAt.toISOString(),
    finishedAt: attempt.finishedAt.toISOString(),
    durationMs: attempt.durationMs,
    responseStatus: attempt.responseStatus,
    responseBodyExcerpt: attempt.responseBodyExcerpt,
    errorKind: attempt.errorKind,
    errorMessage: attempt.errorMessage,
    outcome: attempt.outcome,
  };
}
