import { z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Env } from "hono";

/**
 * The webhooks the service sends, for the OpenAPI document's `webhooks` section: both bodies
 * (src/jobs/payloads.ts) and every header the sender sets (src/delivery/signing.ts, http-sender.ts).
 * The schemas are strict so that a test can hold real deliveries against them.
 */

const isoInstant = z.string().datetime({ offset: true });

export const JobCompletedWebhookSchema = z
  .strictObject({
    event: z.literal("job.completed").openapi({ description: "Always `job.completed`: it covers every terminal status" }),
    jobId: z.string().uuid().openapi({ description: "The job's id; use it to deduplicate" }),
    status: z.enum(["completed", "partial", "failed"]).openapi({
      description: "`completed`: every project completed; `failed`: every project failed; `partial`: some of each",
    }),
    totalProjects: z.number().int().min(1),
    completedProjects: z.number().int().min(0),
    failedProjects: z.number().int().min(0),
    projects: z.array(
      z.strictObject({
        projectId: z.string().uuid(),
        index: z.number().int().min(0),
        status: z.enum(["completed", "failed"]),
        videoUrl: z.string().nullable().openapi({ description: "Set when the project completed" }),
        error: z
          .strictObject({
            code: z.string().openapi({ example: "UNSAFE_CONTENT" }),
            message: z.string(),
          })
          .nullable()
          .openapi({ description: "Set when the project failed; `TIMEOUT` when the job passed its deadline" }),
      }),
    ),
    createdAt: isoInstant,
    completedAt: isoInstant.nullable(),
  })
  .openapi("JobCompletedWebhook", {
    description: "The body sent to a job's `webhookUrl` (jobs created with `POST /api/v1/generate`) once the job is terminal.",
    example: {
      event: "job.completed",
      jobId: "6f1c2a34-8d0e-4b5f-9a7c-1e2d3f4a5b6c",
      status: "partial",
      totalProjects: 2,
      completedProjects: 1,
      failedProjects: 1,
      projects: [
        {
          projectId: "0b9e7c1d-2a3f-4e5d-8c6b-7a8f9e0d1c2b",
          index: 0,
          status: "completed",
          videoUrl: "https://cdn.example.com/videos/0.mp4",
          error: null,
        },
        {
          projectId: "1c0f8d2e-3b4a-4f6e-9d7c-8b9a0f1e2d3c",
          index: 1,
          status: "failed",
          videoUrl: null,
          error: { code: "UNSAFE_CONTENT", message: "blocked by the safety filter" },
        },
      ],
      createdAt: "2025-12-06T21:43:03.374Z",
      completedAt: "2025-12-06T21:44:06.143Z",
    },
  });

/** The Veo3 documents' timestamp form: UTC, microseconds, no zone suffix. */
const veoTimestamp = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/)
  .openapi({ description: "UTC, microseconds, no zone suffix", example: "2025-12-06T21:43:03.374000" });

export const VeoGenerationWebhookSchema = z
  .strictObject({
    generation_id: z.string().uuid(),
    status: z.enum(["completed", "failed"]),
    prompt: z.string(),
    video_url: z.string().nullable().openapi({ description: "Set when `status` is `completed`; otherwise null" }),
    created_at: veoTimestamp,
    completed_at: veoTimestamp,
    seed: z.number().int().nullable(),
    error: z
      .strictObject({
        message: z.string().openapi({
          description: "The code the generation backend reported (e.g. `UNSAFE_CONTENT`), or `TIMEOUT` past the deadline",
          example: "UNSAFE_CONTENT",
        }),
        details: z.strictObject({}),
      })
      .nullable()
      .openapi({ description: "Null when `status` is `completed`" }),
  })
  .openapi("VeoGenerationWebhook", {
    description: "The body sent to a generation's `callback_url` (generations created with `POST /v1/veo/generate`) once it is done.",
    example: {
      generation_id: "ffd473d5-5bef-4e14-bf22-8d559be3c19f",
      status: "failed",
      prompt: "A cat playing with a ball in a sunny room",
      video_url: null,
      created_at: "2025-12-06T21:43:03.374000",
      completed_at: "2025-12-06T21:44:06.143000",
      seed: 319790131,
      error: { message: "UNSAFE_CONTENT", details: {} },
    },
  });

const postgresInstant = z.string().datetime({ offset: true }).openapi({ example: "2025-12-06T21:43:03.374211+00:00" });

export const DeliveryExhaustedWebhookSchema = z
  .strictObject({
    type: z.literal("delivery.exhausted"),
    timestamp: postgresInstant,
    data: z.strictObject({
      deliveryId: z.string().uuid().openapi({ description: "The delivery that failed for good (its webhook-id)" }),
      eventType: z.string(),
      url: z.string(),
      jobId: z.string().uuid().nullable(),
      attempts: z.number().int().min(1).openapi({ description: "Its attempt count, across redeliveries" }),
      lastError: z.strictObject({
        kind: z.string().nullable().openapi({ description: "The error_kind of its last attempt" }),
        message: z.string().nullable(),
        responseStatus: z.number().int().nullable(),
      }),
    }),
  })
  .openapi("DeliveryExhaustedWebhook", {
    description: "Sent to the tenant's operational webhook when one of its deliveries failed for good.",
  });

const destinationData = (state: "disabled" | "healthy") =>
  z.strictObject({
    destinationId: z.string().uuid(),
    url: z.string(),
    state: z.literal(state),
    previousState: z.enum(["healthy", "open", "disabled"]),
    disabledReason: (state === "disabled" ? z.enum(["gone", "failing"]) : z.null()).openapi({
      description: "gone: it answered 410 Gone; failing: it failed continuously for DESTINATION_DISABLE_AFTER",
    }),
    disabledAt: state === "disabled" ? postgresInstant : z.null(),
    consecutiveFailures: z.number().int().min(0),
    firstFailureAt: postgresInstant.nullable(),
    lastFailureAt: postgresInstant.nullable(),
  });

export const DestinationDisabledWebhookSchema = z
  .strictObject({ type: z.literal("destination.disabled"), timestamp: postgresInstant, data: destinationData("disabled") })
  .openapi("DestinationDisabledWebhook", {
    description: "Sent to the tenant's operational webhook when one of its destinations is disabled: its deliveries fail unsent until it is enabled.",
  });

export const DestinationRecoveredWebhookSchema = z
  .strictObject({ type: z.literal("destination.recovered"), timestamp: postgresInstant, data: destinationData("healthy") })
  .openapi("DestinationRecoveredWebhook", {
    description: "Sent to the tenant's operational webhook when one of its destinations is healthy again, after being open or disabled.",
  });

/** What the sender puts in `user-agent`. */
export const WEBHOOK_USER_AGENT_EXAMPLE = "webhook-outbox/0.1";

/** The headers of every webhook request; `prefix` is WEBHOOK_HEADER_PREFIX. */
export function webhookHeaders(prefix: string) {
  return z.object({
    [`${prefix}Signature`]: z
      .string()
      .regex(/^sha256=[0-9a-f]{64}$/)
      .openapi({
        description:
          "`sha256=` and the hex HMAC-SHA256 of the raw body, keyed with the base64-decoded part of the tenant's newest `whsec_` secret. The prefix is WEBHOOK_HEADER_PREFIX.",
        example: "sha256=5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592",
      }),
    [`${prefix}Attempt`]: z
      .string()
      .regex(/^[1-9]\d*$/)
      .openapi({ description: "The attempt number, from 1; it keeps counting across redeliveries", example: "1" }),
    "webhook-id": z.string().uuid().openapi({
      description: "Standard Webhooks: the delivery id, the same on every attempt and redelivery (deduplicate on it)",
      example: "3b1f6f0e-4c2d-4e8a-9b7c-5d6e7f8a9b0c",
    }),
    "webhook-timestamp": z
      .string()
      .regex(/^\d+$/)
      .openapi({ description: "Standard Webhooks: Unix seconds when this attempt was signed", example: "1765057446" }),
    "webhook-signature": z
      .string()
      .regex(/^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$/)
      .openapi({
        description:
          "Standard Webhooks: `v1,` and the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, one space-separated entry per active secret (newest first; two during a rotation)",
        example: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
      }),
    "user-agent": z.string().openapi({ description: "The sender", example: WEBHOOK_USER_AGENT_EXAMPLE }),
  });
}

const DELIVERY_RULES =
  "Sent as `POST` with `Content-Type: application/json`; the bytes sent are the bytes signed, so verify the raw body before parsing it. " +
  "A 2xx answer ends the delivery. Network errors, timeouts, 5xx, 408 and 429 are retried on the delivery's schedule (`Retry-After` honoured up to WEBHOOK_RETRY_AFTER_CAP); " +
  "redirects are not followed and any other 3xx or 4xx fails the delivery at once. Every attempt is recorded and listed by `GET /api/v1/jobs/{jobId}/deliveries`.";

const receiverResponses = {
  "2XX": { description: "Received: the delivery succeeded. The body is ignored (1 KiB of it is kept in the attempt row)." },
  "4XX": { description: "Refused: the delivery fails at once, except 408 and 429, which are retried." },
  "5XX": { description: "The receiver failed: retried until the delivery's attempts are spent." },
};

/** Adds the webhooks (both job surfaces' and the operational ones) to the app's OpenAPI document. */
export function registerWebhooks<E extends Env>(app: OpenAPIHono<E>, headerPrefix: string): void {
  const headers = webhookHeaders(headerPrefix);
  app.openAPIRegistry.registerWebhook({
    method: "post",
    path: "jobCompleted",
    operationId: "jobCompletedWebhook",
    tags: ["webhooks"],
    summary: "A job created with POST /api/v1/generate reached a terminal status",
    description: `Sent to the job's \`webhookUrl\` under WEBHOOK_RETRY_DELAYS (default 3 attempts: at once, +10 s, +60 s) and WEBHOOK_TIMEOUT_MS. ${DELIVERY_RULES}`,
    security: [],
    request: { headers, body: { required: true, content: { "application/json": { schema: JobCompletedWebhookSchema } } } },
    responses: receiverResponses,
  });
  app.openAPIRegistry.registerWebhook({
    method: "post",
    path: "veoGeneration",
    operationId: "veoGenerationWebhook",
    tags: ["webhooks"],
    summary: "A generation created with POST /v1/veo/generate completed or failed",
    description: `Sent to the generation's \`callback_url\` under VEO_WEBHOOK_RETRY_DELAYS (default 5 attempts, 30 s apart) and VEO_WEBHOOK_TIMEOUT_MS. ${DELIVERY_RULES}`,
    security: [],
    request: { headers, body: { required: true, content: { "application/json": { schema: VeoGenerationWebhookSchema } } } },
    responses: receiverResponses,
  });
  const operational = [
    ["deliveryExhausted", "A delivery of the tenant failed for good", DeliveryExhaustedWebhookSchema],
    ["destinationDisabled", "A destination of the tenant was disabled", DestinationDisabledWebhookSchema],
    ["destinationRecovered", "A destination of the tenant is healthy again", DestinationRecoveredWebhookSchema],
  ] as const;
  for (const [name, summary, schema] of operational) {
    app.openAPIRegistry.registerWebhook({
      method: "post",
      path: name,
      operationId: `${name}Webhook`,
      tags: ["webhooks"],
      summary,
      description: `An operational webhook: sent to the URL the tenant set with PUT /api/v1/operational-webhook, signed with its secret, under the retry policy frozen there. Never sent about an operational webhook itself, nor about the operational URL's own destination. ${DELIVERY_RULES}`,
      security: [],
      request: { headers, body: { required: true, content: { "application/json": { schema } } } },
      responses: receiverResponses,
    });
  }
}
