import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Database } from "../../db/client.js";
import { DESTINATION_STATES, DISABLED_REASONS } from "../../db/schema.js";
import { notFound } from "../../errors.js";
import { decodeCursor, encodeCursor } from "../../jobs/cursor.js";
import { enableDestination, listDestinations, type DestinationRow } from "../../outbox/destinations.js";
import { isUuid } from "../../uuid.js";
import type { AppEnv } from "../auth.js";
import { validationHook } from "../errors.js";
import { errorResponses, jsonResponse } from "../openapi.js";
import { cursor, text } from "../schemas.js";

const DestinationSchema = z
  .object({
    destinationId: z.string().uuid().openapi({ description: "Derived from (tenant, url): the same URL is always the same destination" }),
    url: z.string(),
    state: z.enum(DESTINATION_STATES).openapi({
      description:
        "healthy: delivered as usual. open: after DESTINATION_FAILURE_THRESHOLD consecutive failed attempts its deliveries wait, spending no attempt, and one probe goes per DESTINATION_COOLDOWN; the probe's success closes it. disabled: after DESTINATION_DISABLE_AFTER of continuous failure, or at once on 410 Gone; its due deliveries fail with error_kind destination_disabled until it is enabled.",
    }),
    consecutiveFailures: z.number().int(),
    firstFailureAt: z.string().nullable().openapi({ description: "When the current run of failures began (its first failed attempt ended)" }),
    lastSuccessAt: z.string().nullable(),
    lastFailureAt: z.string().nullable(),
    openUntil: z.string().nullable().openapi({ description: "While open: when the next probe may go" }),
    disabledAt: z.string().nullable(),
    disabledReason: z.enum(DISABLED_REASONS).nullable().openapi({
      description: "gone: it answered 410 Gone. failing: its attempts failed continuously for DESTINATION_DISABLE_AFTER",
    }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Destination");

const DestinationListQuerySchema = z.strictObject({
  state: z.enum(DESTINATION_STATES).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: cursor().optional(),
});

const security = [{ bearerAuth: [] }];

const listRoute = createRoute({
  method: "get",
  path: "/api/v1/destinations",
  operationId: "listDestinations",
  tags: ["destinations"],
  summary: "The tenant's destinations (webhook URLs) with their health, newest first, keyset-paginated",
  security,
  request: { query: DestinationListQuerySchema },
  responses: {
    200: jsonResponse(z.object({ data: z.array(DestinationSchema), nextCursor: z.string().nullable() }), "A page"),
    ...errorResponses(400, 401, 429),
  },
});

const enableRoute = createRoute({
  method: "post",
  path: "/api/v1/destinations/{destinationId}/enable",
  operationId: "enableDestination",
  tags: ["destinations"],
  summary: "Enable a destination: healthy, counters reset, its waiting deliveries sent at once",
  description:
    "Closes an open circuit or re-enables a disabled destination. Deliveries that waited while it was open go at once; deliveries that failed while it was disabled stay failed (replay them with POST /api/v1/deliveries/replay).",
  security,
  request: { params: z.object({ destinationId: text() }) },
  responses: {
    200: jsonResponse(
      DestinationSchema.extend({
        released: z.number().int().openapi({ description: "Waiting deliveries made due at once" }),
      }).openapi("EnabledDestination"),
      "The destination, enabled",
    ),
    ...errorResponses(401, 404, 413, 415, 429),
  },
});

export function destinationRoutes(database: Database) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(listRoute, async (c) => {
    const query = c.req.valid("query");
    const page = await listDestinations(database, {
      tenantId: c.get("tenantId"),
      state: query.state,
      limit: query.limit,
      after: query.cursor ? decodeCursor(query.cursor) : undefined,
    });
    const last = page.destinations[page.destinations.length - 1];
    return c.json(
      {
        data: page.destinations.map(destinationJson),
        nextCursor: page.hasMore && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null,
      },
      200,
    );
  });

  app.openapi(enableRoute, async (c) => {
    const { destinationId } = c.req.valid("param");
    if (!isUuid(destinationId)) throw notFound("destination");
    const enabled = await enableDestination(database, destinationId, c.get("tenantId"));
    return c.json({ ...destinationJson(enabled.destination), released: enabled.released }, 200);
  });

  return app;
}

export function destinationJson(destination: DestinationRow) {
  const iso = (date: Date | null) => date?.toISOString() ?? null;
  return {
    destinationId: destination.id,
    url: destination.url,
    state: destination.state,
    consecutiveFailures: destination.consecutiveFailures,
    firstFailureAt: iso(destination.firstFailureAt),
    lastSuccessAt: iso(destination.lastSuccessAt),
    lastFailureAt: iso(destination.lastFailureAt),
    openUntil: iso(destination.openUntil),
    disabledAt: iso(destination.disabledAt),
    disabledReason: destination.disabledReason,
    createdAt: destination.createdAt.toISOString(),
    updatedAt: destination.updatedAt.toISOString(),
  };
}
