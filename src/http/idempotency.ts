import { createHash } from "node:crypto";
import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { CreatedJob, JobService, NewJob } from "../jobs/job-service.js";

/**
 * The `Idempotency-Key` request header of the create routes: visible ASCII and spaces, 1 to 255
 * characters (anything else is a 400 naming the header).
 */
export const IdempotencyHeadersSchema = z.object({
  "idempotency-key": z
    .string()
    .regex(/^[ -~]{1,255}$/, "must be 1 to 255 visible ASCII characters or spaces")
    .optional()
    .openapi({
      description:
        "Makes the create safe to retry: the same key with the same body within 24 h answers with the original response (same status and body, the same job, no second job) and `Idempotent-Replayed: true`; the same key with another body is 409 IDEMPOTENCY_KEY_REUSED.",
      example: "order-7431-video",
    }),
});

/** Creates the job, at most once per Idempotency-Key when the request carries one; marks a replayed answer. */
export async function createWithKey(
  c: Context,
  jobService: JobService,
  route: string,
  body: unknown,
  input: NewJob,
  key: string | undefined,
): Promise<CreatedJob> {
  if (key === undefined) return { view: await jobService.create(input), replayed: false };
  // The route and the body as validated: the same JSON sent with other spacing or key order is the same request.
  const requestHash = createHash("sha256").update(`${route}\n${JSON.stringify(body)}`).digest("hex");
  const created = await jobService.createOnce(input, { key, requestHash });
  if (created.replayed) c.header("Idempotent-Replayed", "true");
  return created;
}
