import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Logger } from "pino";
import type { Database } from "../db/client.js";
import type { JobService } from "../jobs/job-service.js";
import { ServiceMetrics } from "../metrics.js";
import { apiKeyAuth, internalAuth, type AppEnv } from "./auth.js";
import { docsRoutes } from "./docs-page.js";
import { errorHandler, sendError } from "./errors.js";
import { rateLimit } from "./rate-limit.js";
import { deliveryRoutes } from "./routes/deliveries.js";
import { destinationRoutes } from "./routes/destinations.js";
import { operationalWebhookRoutes } from "./routes/operational-webhook.js";
import { replayRoutes } from "./routes/replays.js";
import { UrlPolicy } from "../delivery/url-policy.js";
import { DELIVERY_POLICY_DEFAULTS, type DeliveryPolicy } from "../outbox/policy.js";
import { healthRoutes } from "./routes/health.js";
import { internalRoutes } from "./routes/internal.js";
import { jobRoutes } from "./routes/jobs.js";
import { metricsRoutes } from "./routes/metrics.js";
import { assignRequestId, logRequests } from "./request-log.js";
import { veoRoutes } from "./routes/veo.js";
import { registerWebhooks } from "./webhooks-doc.js";
import { dashboardRoutes } from "../dashboard/routes.js";

export interface AppDependencies {
  database: Database;
  jobService: JobService;
  logger: Logger;
  internalApiToken: string | undefined;
  /** API_RATE_LIMIT: requests per minute per API key; undefined = no limit. */
  apiRateLimit?: number | undefined;
  /** The worker's metrics when it runs in this process; otherwise the queue gauges alone. */
  metrics?: ServiceMetrics;
  /** WEBHOOK_HEADER_PREFIX: the OpenAPI document names the signature and attempt headers with it. */
  webhookHeaderPrefix: string;
  /**
   * Vets the URLs the API stores beside jobs' (the operational webhook's).
   * @defaultValue the production policy: https and public addresses only
   */
  urlPolicy?: UrlPolicy;
  /**
   * The policy operational webhooks freeze when their URL is set.
   * @defaultValue DELIVERY_POLICY_DEFAULTS
   */
  operationalPolicy?: DeliveryPolicy;
  /** The /dashboard pages; without it they are not served. */
  dashboard?: { sessionSecret: string; sessionTtlMs: number };
}

export const MAX_BODY_BYTES = 64 * 1024;

/** Bodies are JSON and small: 415 for any other type, 413 past 64 KiB. */
export const jsonBodiesOnly: MiddlewareHandler = async (c, next) => {
  if (c.req.method === "GET" || c.req.method === "HEAD" || c.req.method === "DELETE") return next();
  if (!hasBody(c.req.raw)) return next(); // e.g. POST …/redeliver, which takes no body
  const type = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    return sendError(c, 415, "UNSUPPORTED_MEDIA_TYPE", "send the body as Content-Type: application/json");
  }
  return next();
};

function hasBody(request: Request): boolean {
  const length = request.headers.get("content-length");
  return request.headers.has("transfer-encoding") || (length !== null && length !== "0");
}

const tooLarge = (c: Context) => sendError(c, 413, "PAYLOAD_TOO_LARGE", `the body is larger than ${MAX_BODY_BYTES} bytes`);

const limitStreamedBody = bodyLimit({ maxSize: MAX_BODY_BYTES, onError: tooLarge });

/**
 * 413 past 64 KiB. A declared Content-Length is judged from the header alone, so the route reads
 * the body once, straight from the socket; only a streamed (chunked) body is counted as it is read.
 */
export const limitBody: MiddlewareHandler = async (c, next) => {
  if (c.req.method === "GET" || c.req.method === "HEAD") return next();
  const length = c.req.header("content-length");
  if (length === undefined || c.req.header("transfer-encoding") !== undefined) return limitStreamedBody(c, next);
  return Number.parseInt(length, 10) > MAX_BODY_BYTES ? tooLarge(c) : next();
};

export function createApp(deps: AppDependencies) {
  const app = new OpenAPIHono<AppEnv>();
  app.onError(errorHandler(deps.logger));
  app.notFound((c) => sendError(c, 404, "NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`));
  app.use("*", assignRequestId, logRequests(deps.logger.child({ component: "http" })));

  for (const prefix of ["/api/*", "/v1/*", "/internal/*"]) app.use(prefix, limitBody, jsonBodiesOnly);
  app.use("/dashboard/*", limitBody);
  const limitRate = rateLimit({ database: deps.database, requestsPerMinute: deps.apiRateLimit });
  // One instance, so both surfaces share its cache of keys seen valid.
  const authenticate = apiKeyAuth(deps.database);
  app.use("/api/*", authenticate, limitRate);
  app.use("/v1/*", authenticate, limitRate);
  app.use("/internal/*", internalAuth(deps.internalApiToken));

  app.route("/", healthRoutes(deps.database));
  app.route("/", metricsRoutes(deps.metrics ?? new ServiceMetrics(deps.database, deps.logger)));
  app.route("/", jobRoutes(deps.jobService));
  app.route("/", internalRoutes(deps.jobService));
  app.route("/", veoRoutes(deps.jobService));
  app.route("/", deliveryRoutes(deps.database, deps.jobService));
  app.route("/", replayRoutes(deps.database));
  app.route("/", destinationRoutes(deps.database));
  app.route(
    "/",
    operationalWebhookRoutes(
      deps.database,
      deps.urlPolicy ?? new UrlPolicy({ allowInsecure: false }),
      deps.operationalPolicy ?? DELIVERY_POLICY_DEFAULTS,
    ),
  );

  if (deps.dashboard) {
    app.route(
      "/dashboard",
      dashboardRoutes({
        database: deps.database,
        internalApiToken: deps.internalApiToken,
        sessionSecret: deps.dashboard.sessionSecret,
        sessionTtlMs: deps.dashboard.sessionTtlMs,
        webhookHeaderPrefix: deps.webhookHeaderPrefix,
      }),
    );
  }

  registerWebhooks(app, deps.webhookHeaderPrefix);
  registerDocumentRoute(app);
  app.doc31("/openapi.json", OPENAPI_DOCUMENT);
  app.route("/", docsRoutes());
  return app;
}

const OPENAPI_DOCUMENT = {
  openapi: "3.1.0",
  info: {
    title: "webhook-outbox",
    version: "0.1.0",
    description:
      "A Postgres transactional outbox for signed, retried, audited webhooks. Jobs created here send a webhook when they reach a terminal status; `webhooks` describes both bodies and their headers.",
  },
  // Relative: the service that serves the document (a local `npm start` serves it at http://localhost:3000).
  servers: [{ url: "/", description: "The service that serves this document" }],
  tags: [
    { name: "jobs", description: "Jobs of one or more projects; their completion sends the `jobCompleted` webhook" },
    { name: "veo3", description: "The Veo3-style surface: one-video generations and the `veoGeneration` webhook" },
    { name: "deliveries", description: "Every webhook delivery and its attempts; redelivery, one or in bulk" },
    {
      name: "destinations",
      description: "Each webhook URL's health: its circuit opens on repeated failures and it is disabled when it stays dead or answers 410 Gone",
    },
    {
      name: "operational webhooks",
      description: "Where a tenant hears about its own deliveries: delivery.exhausted, destination.disabled, destination.recovered",
    },
    { name: "internal", description: "The generation backend's progress reports (Bearer INTERNAL_API_TOKEN)" },
    { name: "operations", description: "Health, readiness, metrics and this document (no credentials)" },
    { name: "webhooks", description: "What the service POSTs to receivers" },
  ],
};

function registerDocumentRoute(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    description: "A tenant's API key (`wo_…`), from `webhook-outbox tenant create` or `tenant create-key`",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "internalToken", {
    type: "http",
    scheme: "bearer",
    description: "INTERNAL_API_TOKEN; with none configured the /internal routes answer 404",
  });
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/openapi.json",
    operationId: "getOpenApiDocument",
    tags: ["operations"],
    summary: "This OpenAPI 3.1 document (browsable at /docs)",
    security: [],
    responses: {
      200: {
        description: "The OpenAPI document",
        content: { "application/json": { schema: z.record(z.string(), z.unknown()) } },
      },
    },
  });
}
