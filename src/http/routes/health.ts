import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Database } from "../../db/client.js";
import { migrationStatus } from "../../db/migration-status.js";
import { errorBody } from "../errors.js";
import { jsonResponse } from "../openapi.js";
import { ErrorSchema } from "../schemas.js";

const HealthSchema = z.object({ status: z.literal("ok") }).openapi("Health");
const ReadySchema = z.object({ status: z.literal("ready"), migration: z.string().nullable() }).openapi("Ready");

const healthz = createRoute({
  method: "get",
  path: "/healthz",
  operationId: "getHealth",
  security: [],
  summary: "Liveness: the process is up (no dependency is checked)",
  tags: ["operations"],
  responses: { 200: jsonResponse(HealthSchema, "The process is up") },
});

const readyz = createRoute({
  method: "get",
  path: "/readyz",
  operationId: "getReadiness",
  security: [],
  summary: "Readiness: the database answers and has every migration this build ships",
  description: "503 DATABASE_UNAVAILABLE when the database does not answer; 503 MIGRATIONS_PENDING before `webhook-outbox migrate`.",
  tags: ["operations"],
  responses: {
    200: jsonResponse(ReadySchema, "Ready to serve"),
    503: jsonResponse(ErrorSchema, "Not ready (DATABASE_UNAVAILABLE, MIGRATIONS_PENDING)"),
  },
});

export function healthRoutes(database: Database) {
  const app = new OpenAPIHono();
  app.openapi(healthz, (c) => c.json({ status: "ok" as const }, 200));
  app.openapi(readyz, async (c) => {
    let status;
    try {
      status = await migrationStatus(database);
    } catch {
      return c.json(errorBody("DATABASE_UNAVAILABLE", "the database does not answer"), 503);
    }
    if (!status.current) {
      return c.json(
        errorBody("MIGRATIONS_PENDING", `the database lacks migration ${status.expected}: run \`webhook-outbox migrate\``),
        503,
      );
    }
    return c.json({ status: "ready" as const, migration: status.expected }, 200);
  });
  return app;
}
