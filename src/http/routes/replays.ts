import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Database } from "../../db/client.js";
import { REPLAY_STATES } from "../../db/schema.js";
import { ReplayNotFoundError } from "../../outbox/errors.js";
import { createReplay, getReplay, REPLAY_STATUSES, type Replay } from "../../outbox/replay.js";
import { isUuid } from "../../uuid.js";
import type { AppEnv } from "../auth.js";
import { validationHook } from "../errors.js";
import { errorResponses, jsonBody, jsonResponse } from "../openapi.js";
import { instant, text, webhookUrl } from "../schemas.js";

const ReplayRequestSchema = z
  .strictObject({
    status: z.enum(REPLAY_STATUSES).openapi({ description: "The deliveries to send again: those that failed (or succeeded)" }),
    since: instant().openapi({ description: "Deliveries created at or after this instant" }),
    until: instant().optional().openapi({ description: "…and before this one; by default, now" }),
    url: webhookUrl.optional().openapi({ description: "Only deliveries to this URL, exactly" }),
  })
  .refine((body) => body.until === undefined || Date.parse(body.since) < Date.parse(body.until), {
    message: "must be later than since",
    path: ["until"],
  })
  .openapi("ReplayRequest");

const ReplayAcceptedSchema = z
  .object({
    replayId: z.string().uuid(),
    matched: z.number().int().openapi({ description: "The deliveries that match now; each is redelivered once" }),
    state: z.enum(REPLAY_STATES),
  })
  .openapi("ReplayAccepted");

const ReplaySchema = z
  .object({
    replayId: z.string().uuid(),
    status: z.enum(REPLAY_STATUSES),
    since: z.string(),
    until: z.string(),
    url: z.string().nullable(),
    state: z.enum(REPLAY_STATES).openapi({ description: "running while batches remain; done once every match was visited" }),
    matched: z.number().int().openapi({ description: "The deliveries that matched when the replay was created" }),
    requeued: z.number().int().openapi({
      description:
        "Redelivered so far; below matched when it is done if some were redelivered by other means before their batch came",
    }),
    createdAt: z.string(),
    finishedAt: z.string().nullable(),
  })
  .openapi("Replay");

const security = [{ bearerAuth: [] }];

const replayRoute = createRoute({
  method: "post",
  path: "/api/v1/deliveries/replay",
  operationId: "replayDeliveries",
  tags: ["deliveries"],
  summary: "Redeliver every delivery that failed (or succeeded) in a window, paced",
  description:
    "Every match is redelivered once, as POST …/redeliver does (the same webhook-id, a fresh attempt budget, attempts appended), oldest first and REPLAY_RATE a second, so live deliveries keep flowing. There is no cap on the number of matches. Follow it with GET /api/v1/replays/{replayId}.",
  security,
  request: { body: jsonBody(ReplayRequestSchema) },
  responses: {
    202: jsonResponse(ReplayAcceptedSchema, "The replay was started"),
    ...errorResponses(400, 401, 413, 415, 429),
  },
});

const getRoute = createRoute({
  method: "get",
  path: "/api/v1/replays/{replayId}",
  operationId: "getReplay",
  tags: ["deliveries"],
  summary: "A replay's progress",
  security,
  request: { params: z.object({ replayId: text() }) },
  responses: { 200: jsonResponse(ReplaySchema, "The replay"), ...errorResponses(401, 404, 429) },
});

export function replayRoutes(database: Database) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(replayRoute, async (c) => {
    const body = c.req.valid("json");
    const replay = await createReplay(database, {
      tenantId: c.get("tenantId"),
      status: body.status,
      since: new Date(body.since),
      until: body.until === undefined ? undefined : new Date(body.until),
      url: body.url,
    });
    return c.json({ replayId: replay.id, matched: replay.matched, state: replay.state }, 202);
  });

  app.openapi(getRoute, async (c) => {
    const { replayId } = c.req.valid("param");
    if (!isUuid(replayId)) throw new ReplayNotFoundError(replayId);
    return c.json(replayJson(await getReplay(database, replayId, c.get("tenantId"))), 200);
  });

  return app;
}

export function replayJson(replay: Replay) {
  return {
    replayId: replay.id,
    status: replay.status,
    since: replay.since.toISOString(),
    until: replay.until.toISOString(),
    url: replay.url,
    state: replay.state,
    matched: replay.matched,
    requeued: replay.requeued,
    createdAt: replay.createdAt.toISOString(),
    finishedAt: replay.finishedAt?.toISOString() ?? null,
  };
}
