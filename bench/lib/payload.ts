import { randomUUID } from "node:crypto";
import { signatureHeaders } from "../../src/delivery/signing.js";
import { buildWebhookPayload } from "../../src/jobs/payloads.js";
import { generateSigningSecret } from "../../src/tenants/credentials.js";

/** The header prefix the service uses by default; baselines sign with it too. */
export const HEADER_PREFIX = "X-Webhook-";

/**
 * The webhook body every scenario sends: the service's own `job.completed` payload for a job of
 * two finished projects (about 600 bytes of JSON).
 */
export function webhookPayload(jobId: string = randomUUID()): Record<string, unknown> {
  const createdAt = new Date("2026-01-01T00:00:00.000Z");
  return buildWebhookPayload(
    { id: jobId, apiFlavor: "nouvel", prompt: "bench", status: "completed", createdAt, completedAt: new Date(createdAt.getTime() + 42_000) },
    [0, 1].map((index) => ({
      id: randomUUID(),
      index,
      status: "completed" as const,
      videoUrl: `https://cdn.example.com/videos/${jobId}/${index}.mp4`,
      seed: 424242,
      errorCode: null,
      errorMessage: null,
    })),
  );
}

export const newSigningSecret = (): string => generateSigningSecret();

/** The same headers the worker sends: content type plus both signature schemes. */
export function signedHeaders(id: string, body: string, secret: string, attemptNumber = 1): Record<string, string> {
  return {
    "content-type": "application/json",
    ...signatureHeaders({
      id,
      timestamp: Math.floor(Date.now() / 1000),
      body,
      secrets: [secret],
      attemptNumber,
      headerPrefix: HEADER_PREFIX,
    }),
  };
}
