import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { ServiceMetrics } from "../../metrics.js";

const metricsRoute = createRoute({
  method: "get",
  path: "/metrics",
  operationId: "getMetrics",
  security: [],
  summary: "Prometheus metrics: deliveries and attempts by outcome, attempt latency, queue depth, oldest due age",
  tags: ["operations"],
  responses: {
    200: {
      description: "Prometheus text exposition format",
      content: { "text/plain": { schema: z.string() } },
    },
  },
});

export function metricsRoutes(metrics: ServiceMetrics) {
  const app = new OpenAPIHono();
  app.openapi(metricsRoute, async (c) => {
    return c.text(await metrics.render(), 200, { "content-type": metrics.contentType });
  });
  return app;
}
