import { randomUUID } from "node:crypto";
import { Agent } from "undici";
import { RESPONSE_READ_CAP_BYTES } from "../../src/delivery/http-sender.js";
import { postOnce } from "../../src/delivery/post-once.js";
import { claimDue } from "../../src/outbox/sql/claim.js";
import { recordAttempts, type AttemptRecord } from "../../src/outbox/sql/record.js";
import { WORKER_DEFAULTS } from "../../src/outbox/worker/options.js";
import { createTenant } from "../../src/tenants/tenant-service.js";
import { withScratchDatabase } from "../lib/database.js";
import { newSigningSecret, signedHeaders, webhookPayload } from "../lib/payload.js";
import { postTarget } from "../lib/post.js";
import type { ReceiverProcess } from "../lib/processes.js";
import { seedDueDeliveries } from "../lib/seed.js";
import type { BenchSettings } from "../lib/settings.js";
import { perSecond } from "../lib/stats.js";

export interface CeilingResult {
  perSecond: number;
  elapsedMs: number;
  count: number;
  /** In-flight requests (HTTP) or concurrent claim-and-record loops (DB). */
  parallelism: number;
}

/** The receiver alone: N signed POSTs over one keep-alive agent (the sender's `postOnce`), no database. */
export async function runHttpCeiling(settings: BenchSettings, receiver: ReceiverProcess): Promise<CeilingResult> {
  const agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 120_000 });
  const secret = newSigningSecret();
  const body = JSON.stringify(webhookPayload());
  const parallelism = settings.httpConcurrency;
  let failed = 0;
  const postMany = async (total: number) => {
    let next = 0;
    const lane = async () => {
      while (next < total) {
        next++;
        const outcome = await postOnce(agent, {
          target: postTarget(receiver.url),
          headers: signedHeaders(randomUUID(), body, secret),
          body,
          timeoutMs: 10_000,
          readCapBytes: RESPONSE_READ_CAP_BYTES,
        });
        if (outcome.kind !== "answered" || outcome.status !== 200) failed++;
      }
    };
    await Promise.all(Array.from({ length: parallelism }, lane));
  };
  try {
    // Open the keep-alive connections outside the measurement, as a running worker has them open.
    await postMany(parallelism);
    const started = performance.now();
    await postMany(settings.n);
    const elapsedMs = performance.now() - started;
    if (failed > 0) throw new Error(`${failed} requests of the HTTP ceiling were not answered 200`);
    return { perSecond: perSecond(settings.n, elapsedMs), elapsedMs, count: settings.n, parallelism };
  } finally {
    await agent.close();
  }
}

/** The database alone: the worker's claim and record statements looped in batches, no HTTP. */
export async function runDbCeiling(settings: BenchSettings, receiverUrl: string): Promise<CeilingResult> {
  return withScratchDatabase(settings.adminUrl, "dbonly", async ({ database }) => {
    const tenant = await createTenant(database, "bench");
    await seedDueDeliveries(database, tenant.tenantId, receiverUrl, settings.n);
    let recorded = 0;
    const loop = async (workerId: string) => {
      for (;;) {
        // A ceiling: no per-destination cap (every row goes to the one receiver).
        const { deliveries: claimed } = await claimDue(database.query, {
          workerId,
          limit: settings.batchSize,
          leaseMarginMs: 5_000,
          destinationConcurrency: 1_000_000,
          maxInterruptions: WORKER_DEFAULTS.maxInterruptions,
        });
        if (claimed.length === 0) return;
        const finishedAt = new Date();
        const records: AttemptRecord[] = claimed.map((delivery) => ({
          deliveryId: delivery.id,
          attemptNumber: delivery.attempt_count,
          outcome: "succeeded",
          deliveryStatus: "succeeded",
          retryDelayMs: null,
          responseStatus: 200,
          responseBodyExcerpt: "ok",
          errorKind: null,
          errorMessage: null,
          startedAt: finishedAt,
          finishedAt,
          durationMs: 0,
          destinationResult: "success",
        }));
        const { owned } = await recordAttempts(database.query, workerId, records, {
          failureThreshold: WORKER_DEFAULTS.destinationFailureThreshold,
          cooldownMs: WORKER_DEFAULTS.destinationCooldownMs,
          disableAfterMs: WORKER_DEFAULTS.destinationDisableAfterMs,
        });
        recorded += owned.length;
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: settings.dbLoops }, (_, i) => loop(`bench-db-${i}`)));
    const elapsedMs = performance.now() - started;
    if (recorded !== settings.n) throw new Error(`DB ceiling recorded ${recorded} of ${settings.n}`);
    return { perSecond: perSecond(settings.n, elapsedMs), elapsedMs, count: settings.n, parallelism: settings.dbLoops };
  });
}
