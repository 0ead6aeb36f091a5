import { Hono } from "hono";
import type { Database } from "../../db/client.js";

export function healthRoutes(database: Database) {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    try {
      await database.query("select 1");
      return c.json({ status: "ready" });
    } catch {
      return c.json({ status: "unavailable", error: { code: "DATABASE_UNAVAILABLE", message: "database unreachable" } }, 503);
    }
  });
  return app;
}
