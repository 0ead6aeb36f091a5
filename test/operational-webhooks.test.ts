import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  DeliveryExhaustedWebhookSchema,
  DestinationDisabledWebhookSchema,
  DestinationRecoveredWebhookSchema,
} from "../src/http/webhooks-doc.js";
import { createTenant, type CreatedTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type ApiClient, type Harness } from "./support/harness.js";
import { hang, ok, Receiver, status, type ReceivedRequest } from "./support/receiver.js";

/*
 * Operational webhooks: the tenant hears, at its own URL and signed with its own secret, about
 * deliveries that failed for good and destinations disabled or recovered, each exactly once.
 */

let testDb: TestDatabase;
let harness: Harness;
/** The customer's receiver (fails as each test says) and the tenant's operational receiver. */
let receiver: Receiver;
let operational: Receiver;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, {
    WEBHOOK_RETRY_DELAYS: [0, 0, 0],
    DESTINATION_FAILURE_THRESHOLD: 10,
    DESTINATION_COOLDOWN: 3_600_000,
  });
  receiver = await Receiver.start();
  operational = await Receiver.start();
});

afterAll(async () => {
  // The receivers first: a hanging answer ends with them instead of holding the worker's stop.
  await receiver?.close();
  await operational?.close();
  await harness?.stop();
  await testDb?.drop();
});

beforeEach(() => {
  receiver.requests.length = 0;
  operational.requests.length = 0;
  receiver.respondWith(ok);
  operational.respondWith(ok);
});

/** A tenant of its own with its operational webhook set to `url`. */
async function tenantHearingAt(url: string): Promise<{ tenant: CreatedTenant; api: ApiClient }> {
  const tenant = await createTenant(testDb.database, `ops-${Math.random().toString(36).slice(2, 8)}`);
  const api = harness.api.withKey(tenant.apiKey);
  const set = await api.request("PUT", "/api/v1/operational-webhook", { url }, tenant.apiKey);
  expect(set.status).toBe(200);
  return { tenant, api };
}

async function completedJob(api: ApiClient, url: string): Promise<string> {
  const created = await api.post("/api/v1/generate", { prompt: "ops", webhookUrl: url });
  expect(created.status).toBe(202);
  await api.finishJob(created.body.jobId, 1, "completed");
  return created.body.jobId;
}

async function deliveryOf(jobId: string, status: string): Promise<{ id: string; attempt_count: number }> {
  return eventually(async () => {
    const [row] = await testDb.database.query<{ id: string; status: string; attempt_count: number }>(
      "select id, status, attempt_count from webhook_outbox.webhook_deliveries where job_id = $1",
      [jobId],
    );
    return row?.status === status ? row : undefined;
  }, 20_000, `job ${jobId}'s delivery ${status}`);
}

interface Notice {
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

/** The operational webhooks received, each verified with the tenant's secret. */
function verified(tenant: CreatedTenant, requests: ReceivedRequest[] = operational.requests): Notice[] {
  return requests.map((request) => {
    const notice = new Webhook(tenant.signingSecret).verify(request.body, {
      "webhook-id": String(request.headers["webhook-id"]),
      "webhook-timestamp": String(request.headers["webhook-timestamp"]),
      "webhook-signature": String(request.headers["webhook-signature"]),
    }) as Notice;
    // Each body is what the OpenAPI document's webhooks section says, exactly.
    const schema = {
      "delivery.exhausted": DeliveryExhaustedWebhookSchema,
      "destination.disabled": DestinationDisabledWebhookSchema,
      "destination.recovered": DestinationRecoveredWebhookSchema,
    }[notice.type];
    expect(schema?.safeParse(notice).error).toBeUndefined();
    return notice;
  });
}

/** Every operational delivery of the tenant, settled. */
async function operationalDeliveries(tenantId: string): Promise<Array<{ event_type: string; status: string }>> {
  return testDb.database.query(
    `select event_type, status from webhook_outbox.webhook_deliveries
     where tenant_id = $1 and job_id is null order by created_at, id`,
    [tenantId],
  );
}

describe("the operational webhook's settings", () => {
  it("is set, read and removed; a bad URL or body is a 400 and changes nothing", async () => {
    const tenant = await createTenant(testDb.database, "settings");
    const api = harness.api.withKey(tenant.apiKey);
    const path = "/api/v1/operational-webhook";
    expect((await api.get(path)).status).toBe(404);
    const set = await api.request("PUT", path, { url: operational.url }, tenant.apiKey);
    expect(set.body).toMatchObject({
      url: operational.url,
      events: ["delivery.exhausted", "destination.disabled", "destination.recovered"],
    });
    expect((await api.get(path)).body.url).toBe(operational.url);

    const rejected = await api.request("PUT", path, { url: "ftp://example.com/hook" }, tenant.apiKey);
    expect(rejected.status).toBe(400);
    expect(rejected.body.error.code).toBe("WEBHOOK_URL_REJECTED");
    expect((await api.request("PUT", path, { url: operational.url, extra: 1 }, tenant.apiKey)).status).toBe(400);
    expect((await api.request("PUT", path, {}, tenant.apiKey)).status).toBe(400);
    expect((await api.get(path)).body.url).toBe(operational.url);

    expect((await api.request("DELETE", path, undefined, tenant.apiKey)).status).toBe(204);
    expect((await api.get(path)).status).toBe(404);
    expect((await api.request("DELETE", path, undefined, tenant.apiKey)).status).toBe(404);
  });
});

describe("delivery.exhausted", () => {
  it("is sent once per delivery failed for good, and once more when its redelivery fails again", async () => {
    const { tenant, api } = await tenantHearingAt(operational.url);
    receiver.respondWith(status(503, {}, "down for maintenance"));
    const url = `${receiver.url}?exhausted=1`;
    const jobId = await completedJob(api, url);
    const failed = await deliveryOf(jobId, "failed");
    expect(failed.attempt_count).toBe(3);

    await operational.waitForRequests(1);
    await eventually(async () => ((await operationalDeliveries(tenant.tenantId)).every((d) => d.status === "succeeded") ? true : undefined));
    const [notice] = verified(tenant);
    expect(notice).toMatchObject({
      type: "delivery.exhausted",
      data: {
        deliveryId: failed.id,
        eventType: "job.completed",
        url,
        jobId,
        attempts: 3,
        lastError: { kind: "http_status", message: "HTTP 503", responseStatus: 503 },
      },
    });
    expect(Date.parse(notice?.timestamp ?? "")).not.toBeNaN();

    // Redelivered and failed again: one more notice, about the same delivery.
    const redelivered = await api.post(`/api/v1/deliveries/${failed.id}/redeliver`);
    expect(redelivered.status).toBe(202);
    await eventually(async () => ((await operationalDeliveries(tenant.tenantId)).length === 2 ? true : undefined));
    await deliveryOf(jobId, "failed");
    await operational.waitForRequests(2);
    const notices = verified(tenant);
    expect(notices.map((n) => [n.type, n.data.deliveryId, n.data.attempts])).toEqual([
      ["delivery.exhausted", failed.id, 3],
      ["delivery.exhausted", failed.id, 6],
    ]);
    // Each notice is a delivery of its own, with its own webhook-id.
    expect(new Set(operational.requests.map((r) => r.headers["webhook-id"])).size).toBe(2);
    await eventually(async () => ((await operationalDeliveries(tenant.tenantId)).every((d) => d.status === "succeeded") ? true : undefined));
    expect(await operationalDeliveries(tenant.tenantId)).toEqual([
      { event_type: "delivery.exhausted", status: "succeeded" },
      { event_type: "delivery.exhausted", status: "succeeded" },
    ]);
  });

  it("is never about an operational webhook: one that fails for good sends nothing more", async () => {
    operational.respondWith(status(500));
    const { tenant, api } = await tenantHearingAt(operational.url);
    receiver.respondWith(status(400));
    await deliveryOf(await completedJob(api, `${receiver.url}?loop=1`), "failed");
    // The notice is tried on its schedule and fails; nothing is enqueued about it.
    await eventually(async () => {
      const rows = await operationalDeliveries(tenant.tenantId);
      return rows.length === 1 && rows[0]?.status === "failed" ? true : undefined;
    });
    expect(operational.requests).toHaveLength(3);
    expect(await operationalDeliveries(tenant.tenantId)).toEqual([{ event_type: "delivery.exhausted", status: "failed" }]);
  });

  it("is sent for a delivery failed by its interruptions, when the claim gives it up", async () => {
    const { tenant, api } = await tenantHearingAt(operational.url);
    receiver.respondWith(hang);
    const jobId = await completedJob(api, `${receiver.url}?interrupted=1`);
    const delivering = await deliveryOf(jobId, "delivering");
    // Its fifth lease runs out with the attempt unrecorded (as if its worker died again).
    await testDb.database.query(
      `update webhook_outbox.webhook_deliveries
       set interruptions = 4, locked_until = now() - interval '1 second', next_attempt_at = now() - interval '1 second'
       where id = $1`,
      [delivering.id],
    );
    await deliveryOf(jobId, "failed");
    await operational.waitForRequests(1);
    expect(verified(tenant)[0]).toMatchObject({
      type: "delivery.exhausted",
      data: { deliveryId: delivering.id, attempts: 1, lastError: { kind: "other", message: expect.stringMatching(/^interrupted 5 times/) } },
    });
  });

  it("is not sent to a tenant without an operational webhook", async () => {
    const tenant = await createTenant(testDb.database, "silent");
    const api = harness.api.withKey(tenant.apiKey);
    receiver.respondWith(status(400));
    await deliveryOf(await completedJob(api, `${receiver.url}?silent=1`), "failed");
    expect(await operationalDeliveries(tenant.tenantId)).toEqual([]);
  });
});

describe("destination events", () => {
  it("a 410 Gone sends destination.disabled, signed, with the exhausted delivery; enabling sends destination.recovered", async () => {
    const { tenant, api } = await tenantHearingAt(operational.url);
    receiver.respondWith(status(410));
    const url = `${receiver.url}?gone=ops`;
    const failed = await deliveryOf(await completedJob(api, url), "failed");
    await operational.waitForRequests(2);
    const notices = verified(tenant);
    const disabled = notices.find((n) => n.type === "destination.disabled");
    expect(disabled?.data).toMatchObject({ url, state: "disabled", previousState: "healthy", disabledReason: "gone", consecutiveFailures: 1 });
    const destinationId = disabled?.data.destinationId as string;
    expect(notices.find((n) => n.type === "delivery.exhausted")?.data).toMatchObject({
      deliveryId: failed.id,
      lastError: { responseStatus: 410 },
    });

    // Deliveries refused while it is disabled send no notice of their own: destination.disabled said it.
    await deliveryOf(await completedJob(api, url), "failed");
    expect(await operationalDeliveries(tenant.tenantId)).toHaveLength(2);

    receiver.respondWith(ok);
    expect((await api.post(`/api/v1/destinations/${destinationId}/enable`)).status).toBe(200);
    await operational.waitForRequests(3);
    expect(verified(tenant)[2]).toMatchObject({
      type: "destination.recovered",
      data: { destinationId, url, state: "healthy", previousState: "disabled", disabledReason: null },
    });
  });

  it("a circuit closed by its probe sends destination.recovered once", async () => {
    const { tenant, api } = await tenantHearingAt(operational.url);
    receiver.respondWith(status(500));
    const url = `${receiver.url}?recovered=probe`;
    // Three deliveries fail for good one after the other (nine failures); the fourth's first attempt
    // is the tenth failure, which opens the circuit.
    const jobIds = [];
    for (let i = 0; i < 3; i++) {
      jobIds.push(await completedJob(api, url));
      await deliveryOf(jobIds[i] ?? "", "failed");
    }
    jobIds.push(await completedJob(api, url));
    const destination = await eventually(async () => {
      const [row] = await testDb.database.query<{ id: string; state: string }>(
        "select id, state from webhook_outbox.destinations where tenant_id = $1 and url = $2",
        [tenant.tenantId, url],
      );
      return row?.state === "open" ? row : undefined;
    });
    // Opening is not an event of its own; three deliveries failed for good on the way.
    await eventually(async () => ((await operationalDeliveries(tenant.tenantId)).length === 3 ? true : undefined));
    receiver.respondWith(ok);
    await testDb.database.query("update webhook_outbox.destinations set open_until = now() where id = $1", [destination.id]);
    await deliveryOf(jobIds[3] ?? "", "succeeded");
    await eventually(async () => ((await operationalDeliveries(tenant.tenantId)).length === 4 ? true : undefined));
    await operational.waitForRequests(4);
    expect(verified(tenant).map((n) => n.type)).toEqual([
      "delivery.exhausted",
      "delivery.exhausted",
      "delivery.exhausted",
      "destination.recovered",
    ]);
    expect(verified(tenant)[3]?.data).toMatchObject({ destinationId: destination.id, previousState: "open", state: "healthy" });
  });

  it("the operational URL's own destination sends nothing about itself", async () => {
    operational.respondWith(status(410));
    const { tenant, api } = await tenantHearingAt(`${operational.url}?self=1`);
    receiver.respondWith(status(400));
    await deliveryOf(await completedJob(api, `${receiver.url}?self=1`), "failed");
    // The notice meets a 410: its destination (the operational URL) is disabled, and no one is told.
    await eventually(async () => {
      const [row] = await testDb.database.query<{ state: string }>(
        "select state from webhook_outbox.destinations where tenant_id = $1 and url = $2",
        [tenant.tenantId, `${operational.url}?self=1`],
      );
      return row?.state === "disabled" ? true : undefined;
    });
    expect(await operationalDeliveries(tenant.tenantId)).toEqual([{ event_type: "delivery.exhausted", status: "failed" }]);
  });
});
