import { OpenAPIHono } from "@hono/zod-openapi";
import { swaggerUI } from "@hono/swagger-ui";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Logger } from "pino";
import type { Database } from "../db/client.js";
import type { JobService } from "../jobs/job-service.js";
import { ServiceMetrics } from "../metrics.js";
import { apiKeyAuth, internalAuth, type AppEnv } from "./auth.js";
import { errorHandler, sendError } from "./errors.js";
import { rateLimit } from "./rate-limit.js";
import { deliveryRoutes } from "./routes/deliveries.js";
import { healthRoutes } from "./routes/health.js";
import { internalRoutes } from "./routes/internal.js";
import { jobRoutes } from "./routes/jobs.js";
import { metricsRoutes } from "./routes/metrics.js";
import { assignRequestId, logRequests } from "./request-log.js";
import { veoRoutes } from "./routes/veo.js";

export interface AppDependencies {
  database: Database;
  jobService: JobService;
  logger: Logger;
  internalApiToken: string | undefined;
  /** API_RATE_LIMIT: requests per minute per API key; undefined = no limit. */
  apiRateLimit?: number | undefined;
  /** The worker's metrics when it runs in this process; otherwise the queue gauges alone. */
  metrics?: ServiceMetrics;
}

export const MAX_BODY_BYTES = 64 * 1024;

/** Bodies are JSON and small: 415 for any other type, 413 past 64 KiB. */
const jsonBodiesOnly: MiddlewareHandler = async (c, next) => {
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

const limitBody = bodyLimit({
  maxSize: MAX_BODY_BYTES,
  onError: (c) => sendError(c, 413, "PAYLOAD_TOO_LARGE", `the body is larger than ${MAX_BODY_BYTES} bytes`),
});

export function createApp(deps: AppDependencies) {
  const app = new OpenAPIHono<AppEnv>();
  app.onError(errorHandler(deps.logger));
  app.notFound((c) => sendError(c, 404, "NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`));
  app.use("*", assignRequestId, logRequests(deps.logger.child({ component: "http" })));

  for (const prefix of ["/api/*", "/v1/*", "/internal/*"]) app.use(prefix, limitBody, jsonBodiesOnly);
  const limitRate = rateLimit({ database: deps.database, requestsPerMinute: deps.apiRateLimit });
  app.use("/api/*", apiKeyAuth(deps.database), limitRate);
  app.use("/v1/*", apiKeyAuth(deps.database), limitRate);
  app.use("/internal/*", internalAuth(deps.internalApiToken));

  app.route("/", healthRoutes(deps.database));
  app.route("/", metricsRoutes(deps.metrics ?? new ServiceMetrics(deps.database, deps.logger)));
  app.route("/", jobRoutes(deps.jobService));
  app.route("/", internalRoutes(deps.jobService));
  app.route("/", veoRoutes(deps.jobService));
  app.route("/", deliveryRoutes(deps.database, deps.jobService));

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", { type: "http", scheme: "bearer" });
  app.openAPIRegistry.registerComponent("securitySchemes", "internalToken", { type: "http", scheme: "bearer" });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: { title: "webhook-outbox", version: "0.1.0", description: "Jobs, and the webhooks their completion sends." },
  });
  app.get("/docs", swaggerUI({ url: "/openapi.json", title: "webhook-outbox API" }));
  return app;
}
