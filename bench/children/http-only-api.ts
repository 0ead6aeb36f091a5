/**
 * The ingest's HTTP-only ceiling: the API's own Hono stack for the two ingest routes (request id
 * and request log, body limit, JSON-only bodies, API-key check from a filled cache, the internal
 * token check, the real route handlers with their zod validation and presenters, the error handler,
 * the same node server options) answering from canned jobs instead of the database.
 * Env: API_KEY, TENANT_ID, INTERNAL_TOKEN, LOG_LEVEL. IPC out: { type: "ready", port }.
 */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { OpenAPIHono } from "@hono/zod-openapi";
import { serve, type ServerType } from "@hono/node-server";
import { loadConfig } from "../../src/config.js";
import type { Database } from "../../src/db/client.js";
import { jsonBodiesOnly, limitBody } from "../../src/http/app.js";
import { apiKeyAuth, internalAuth, type AppEnv } from "../../src/http/auth.js";
import { errorHandler } from "../../src/http/errors.js";
import { assignRequestId, logRequests } from "../../src/http/request-log.js";
import { internalRoutes } from "../../src/http/routes/internal.js";
import { jobRoutes } from "../../src/http/routes/jobs.js";
import { httpServerOptions } from "../../src/http/server-options.js";
import type { JobService, JobView, NewJob, ProjectUpdate } from "../../src/jobs/job-service.js";
import { createLogger } from "../../src/logger.js";
import { hashApiKey } from "../../src/tenants/credentials.js";
import { ApiKeyCache } from "../../src/tenants/key-cache.js";
import { exitWhenOrphaned, requiredEnv } from "../lib/post.js";

export type HttpOnlyApiMessage = { type: "ready"; port: number };

exitWhenOrphaned(3600);
const apiKey = requiredEnv("API_KEY");
const tenantId = requiredEnv("TENANT_ID");
const internalToken = requiredEnv("INTERNAL_TOKEN");
const config = loadConfig({ LOG_LEVEL: process.env.LOG_LEVEL });
const logger = createLogger(config.LOG_LEVEL, { secrets: [internalToken] });

function cannedJob(input: Pick<NewJob, "prompt" | "webhookUrl" | "projectCount">, id: string = randomUUID()): JobView {
  const now = new Date();
  return {
    id,
    tenantId,
    apiFlavor: "nouvel",
    prompt: input.prompt,
    status: "queued",
    webhookUrl: input.webhookUrl ?? null,
    createdAt: now,
    updatedAt: now,
    completedAt: null,
    deadlineAt: new Date(now.getTime() + config.JOB_TIMEOUT),
    projects: Array.from({ length: input.projectCount }, (_, index) => ({
      id: randomUUID(),
      index,
      status: "queued" as const,
      videoUrl: null,
      seed: null,
      errorCode: null,
      errorMessage: null,
    })),
  };
}

// The routes call only these two methods; the rest of JobService is never reached here.
const cannedService = {
  create: async (input: NewJob) => cannedJob(input),
  updateProject: async (jobId: string, index: number, update: ProjectUpdate) => {
    const job = cannedJob({ prompt: "canned", projectCount: 1 }, jobId);
    const now = new Date();
    return {
      ...job,
      status: update.status === "completed" ? "completed" : job.status,
      completedAt: update.status === "completed" ? now : null,
      projects: job.projects.map((project) => (project.index === index ? { ...project, status: update.status, videoUrl: update.videoUrl ?? null } : project)),
    } satisfies JobView;
  },
} as unknown as JobService; // a partial stand-in: the ceiling measures everything but the service

// The key as a create sees it after its first request: in the cache. The database is never asked.
const cache = new ApiKeyCache();
cache.set(hashApiKey(apiKey), tenantId);
const noDatabase = new Proxy({} as Database, {
  get: () => {
    throw new Error("the HTTP-only ceiling has no database");
  },
});

const app = new OpenAPIHono<AppEnv>();
app.onError(errorHandler(logger));
app.use("*", assignRequestId, logRequests(logger.child({ component: "http" })));
for (const prefix of ["/api/*", "/internal/*"]) app.use(prefix, limitBody, jsonBodiesOnly);
app.use("/api/*", apiKeyAuth(noDatabase, cache));
app.use("/internal/*", internalAuth(internalToken));
app.route("/", jobRoutes(cannedService));
app.route("/", internalRoutes(cannedService));

const server = await new Promise<ServerType>((resolve) => {
  const listening: ServerType = serve(
    {
      fetch: app.fetch,
      port: 0,
      hostname: "127.0.0.1",
      serverOptions: httpServerOptions({
        headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
        requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
        keepAliveTimeoutMs: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      }),
    },
    () => resolve(listening),
  );
});
process.send?.({ type: "ready", port: (server.address() as AddressInfo).port } satisfies HttpOnlyApiMessage);
process.on("SIGTERM", () => server.close(() => process.exit(0)));
