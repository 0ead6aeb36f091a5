import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Database } from "../../db/client.js";
import { UrlRejectedError, type UrlPolicy } from "../../delivery/url-policy.js";
import { AppError } from "../../errors.js";
import {
  deleteOperationalWebhook,
  getOperationalWebhook,
  OPERATIONAL_EVENT_TYPES,
  setOperationalWebhook,
  type OperationalWebhook,
} from "../../outbox/operational-webhooks.js";
import type { DeliveryPolicy } from "../../outbox/policy.js";
import type { AppEnv } from "../auth.js";
import { validationHook } from "../errors.js";
import { errorResponses, jsonBody, jsonResponse } from "../openapi.js";
import { webhookUrl } from "../schemas.js";

const OperationalWebhookRequestSchema = z.strictObject({ url: webhookUrl }).openapi("OperationalWebhookRequest");

const OperationalWebhookSchema = z
  .object({
    url: z.string(),
    events: z.array(z.enum(OPERATIONAL_EVENT_TYPES)).openapi({ description: "The events sent to it" }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("OperationalWebhook");

const security = [{ bearerAuth: [] }];
const tags = ["operational webhooks"];

const putRoute = createRoute({
  method: "put",
  path: "/api/v1/operational-webhook",
  operationId: "setOperationalWebhook",
  tags,
  summary: "Set where the tenant hears about its own deliveries (delivery.exhausted, destination.disabled, destination.recovered)",
  description:
    "The URL is vetted like a job's webhookUrl. Its webhooks are signed with the tenant's secret and delivered, retried and recorded like every webhook, under the retry policy of `/api/v1/generate` webhooks as configured now. They are never about themselves: a failed operational webhook sends none, and the operational URL's own destination sends none.",
  security,
  request: { body: jsonBody(OperationalWebhookRequestSchema) },
  responses: {
    200: jsonResponse(OperationalWebhookSchema, "The operational webhook, as set"),
    ...errorResponses(400, 401, 413, 415, 429),
  },
});

const getRoute = createRoute({
  method: "get",
  path: "/api/v1/operational-webhook",
  operationId: "getOperationalWebhook",
  tags,
  summary: "Where the tenant's operational webhooks go",
  security,
  responses: { 200: jsonResponse(OperationalWebhookSchema, "The operational webhook"), ...errorResponses(401, 404, 429) },
});

const deleteRoute = createRoute({
  method: "delete",
  path: "/api/v1/operational-webhook",
  operationId: "deleteOperationalWebhook",
  tags,
  summary: "Stop the tenant's operational webhooks (those already enqueued are still delivered)",
  security,
  responses: { 204: { description: "Removed" }, ...errorResponses(401, 404, 429) },
});

export function operationalWebhookRoutes(database: Database, urlPolicy: UrlPolicy, policy: DeliveryPolicy) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  const missing = () => new AppError(404, "OPERATIONAL_WEBHOOK_NOT_FOUND", "no operational webhook is set");

  app.openapi(putRoute, async (c) => {
    const { url } = c.req.valid("json");
    try {
      await urlPolicy.check(url);
    } catch (error) {
      if (error instanceof UrlRejectedError) throw new AppError(400, "WEBHOOK_URL_REJECTED", error.message);
      throw error;
    }
    return c.json(operationalWebhookJson(await setOperationalWebhook(database, c.get("tenantId"), url, policy)), 200);
  });

  app.openapi(getRoute, async (c) => {
    const webhook = await getOperationalWebhook(database, c.get("tenantId"));
    if (!webhook) throw missing();
    return c.json(operationalWebhookJson(webhook), 200);
  });

  app.openapi(deleteRoute, async (c) => {
    if (!(await deleteOperationalWebhook(database, c.get("tenantId")))) throw missing();
    return c.body(null, 204);
  });

  return app;
}

function operationalWebhookJson(webhook: OperationalWebhook) {
  return {
    url: webhook.url,
    events: [...OPERATIONAL_EVENT_TYPES],
    createdAt: webhook.createdAt.toISOString(),
    updatedAt: webhook.updatedAt.toISOString(),
  };
}
