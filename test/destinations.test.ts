import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import type { ApiClient} from "./support/harness.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { runCli } from "./support/cli.js";
import { attemptsOf, deliveriesOf } from "./support/queries.js";
import { ok, Receiver, status } from "./support/receiver.js";

/*
 * A destination's circuit, end to end: a real worker, real receivers, the state read from SQL at
 * well-defined points (the circuit open, deliveries parked), never after a sleep.
 */

let testDb: TestDatabase;
/** Threshold 10, a cool-down of an hour: the test ends the cool-down itself. */
let harness: Harness;
let receiver: Receiver;

/** 20 attempts, no delay between them: one delivery alone can fail ten times in a row. */
const MANY_ATTEMPTS = Array<number>(20).fill(0);

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, {
    WEBHOOK_RETRY_DELAYS: MANY_ATTEMPTS,
    DESTINATION_FAILURE_THRESHOLD: 10,
    DESTINATION_COOLDOWN: 3_600_000,
  });
  receiver = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await receiver?.close();
  await testDb?.drop();
});

beforeEach(() => {
  receiver.requests.length = 0;
});

interface DestinationState {
  id: string;
  state: string;
  consecutive_failures: number;
  first_failure_at: Date | null;
  last_success_at: Date | null;
  last_failure_at: Date | null;
  open_until: Date | null;
  disabled_at: Date | null;
  disabled_reason: string | null;
}

async function destinationOf(url: string, tenantId = harness.tenant.tenantId): Promise<DestinationState | undefined> {
  const [row] = await testDb.database.query<DestinationState>("select * from webhook_outbox.destinations where tenant_id = $1 and url = $2", [
    tenantId,
    url,
  ]);
  return row;
}

async function eventsOf(destinationId: string): Promise<Array<[string, string, string]>> {
  const rows = await testDb.database.query<{ from_state: string; to_state: string; reason: string }>(
    "select from_state, to_state, reason from webhook_outbox.destination_events where destination_id = $1 order by id",
    [destinationId],
  );
  return rows.map((row) => [row.from_state, row.to_state, row.reason]);
}

async function completedJob(url: string, api: ApiClient = harness.api): Promise<string> {
  const created = await api.post("/api/v1/generate", { prompt: "circuit", webhookUrl: url });
  expect(created.status).toBe(202);
  await api.finishJob(created.body.jobId, 1, "completed");
  return created.body.jobId;
}

async function deliveryOf(jobId: string) {
  const [delivery] = await deliveriesOf(testDb.database, jobId);
  if (!delivery) throw new Error(`job ${jobId} has no delivery`);
  return delivery;
}

/** The delivery once it waits, parked, for its destination's circuit. */
async function parked(jobId: string) {
  return eventually(async () => {
    const [row] = await testDb.database.query<{ status: string; parked: boolean; attempt_count: number }>(
      "select status, next_attempt_at = 'infinity' as parked, attempt_count from webhook_outbox.webhook_deliveries where job_id = $1",
      [jobId],
    );
    return row?.status === "pending" && row.parked ? row : undefined;
  }, 20_000, `job ${jobId}'s delivery parked`);
}

async function finished(jobId: string, status: string) {
  return eventually(async () => {
    const delivery = await deliveryOf(jobId);
    return delivery.status === status ? delivery : undefined;
  }, 20_000, `job ${jobId}'s delivery ${status}`);
}

describe("the circuit of a destination", () => {
  it("opens after ten consecutive failures, spends no attempt while open, and one probe after the cool-down closes it", async () => {
    receiver.respondWith(status(500, {}, "down"));
    const url = `${receiver.url}?circuit=probe`;
    const first = await completedJob(url);

    // Ten failed attempts in a row: the circuit opens, and the delivery waits with ten attempts spent.
    const opened = await eventually(async () => {
      const destination = await destinationOf(url);
      return destination?.state === "open" ? destination : undefined;
    });
    expect(opened.consecutive_failures).toBe(10);
    expect(opened.open_until?.getTime()).toBeGreaterThan(Date.now() + 3_500_000);
    expect(await parked(first)).toMatchObject({ attempt_count: 10 });
    expect((await attemptsOf(testDb.database, (await deliveryOf(first)).id)).map((a) => a.outcome)).toEqual(
      Array(10).fill("retry"),
    );

    // Deliveries enqueued while it is open wait too, without an attempt.
    const later = [await completedJob(url), await completedJob(url)];
    for (const jobId of later) expect(await parked(jobId)).toMatchObject({ attempt_count: 0 });
    expect(receiver.requests).toHaveLength(10);

    const listed = await harness.api.get("/api/v1/destinations");
    expect(listed.status).toBe(200);
    const shown = listed.body.data.find((d: { url: string }) => d.url === url);
    expect(shown).toMatchObject({ destinationId: opened.id, state: "open", consecutiveFailures: 10, disabledReason: null });
    expect(shown.lastFailureAt).not.toBeNull();
    // A parked delivery has no time set for its next attempt.
    const deliveries = await harness.api.get(`/api/v1/jobs/${later[0]}/deliveries`);
    expect(deliveries.body.data[0]).toMatchObject({ status: "pending", nextAttemptAt: null });

    // The cool-down ends (set here, rather than waited for): one probe goes; it succeeds and closes the circuit.
    receiver.respondWith(ok);
    await testDb.database.query("update webhook_outbox.destinations set open_until = now() where id = $1", [opened.id]);
    for (const jobId of [first, ...later]) await finished(jobId, "succeeded");
    const closed = await destinationOf(url);
    expect(closed).toMatchObject({ state: "healthy", consecutive_failures: 0, first_failure_at: null, open_until: null });
    expect(closed?.last_success_at).not.toBeNull();
    expect(receiver.requests).toHaveLength(13);

    // Exactly one attempt went while the circuit was open: the others started after the probe was recorded.
    const [closedAt] = await testDb.database.query<{ at: Date }>(
      "select at from webhook_outbox.destination_events where destination_id = $1 and to_state = 'healthy'",
      [opened.id],
    );
    const after = await testDb.database.query<{ started_at: Date }>(
      `select a.started_at from webhook_outbox.webhook_delivery_attempts a join webhook_outbox.webhook_deliveries d on d.id = a.delivery_id
       where d.destination_id = $1 and a.outcome = 'succeeded' order by a.started_at`,
      [opened.id],
    );
    expect(after).toHaveLength(3);
    expect(after.filter((a) => a.started_at.getTime() < (closedAt?.at.getTime() ?? 0))).toHaveLength(1);
    expect(await eventsOf(opened.id)).toEqual([
      ["healthy", "open", "failures"],
      ["open", "healthy", "success"],
    ]);
  });

  it("enable lets the waiting deliveries go at once, without waiting out the cool-down", async () => {
    receiver.respondWith(status(500));
    const url = `${receiver.url}?circuit=enable`;
    const first = await completedJob(url);
    await parked(first);
    const waiting = await completedJob(url);
    await parked(waiting);
    const destination = await destinationOf(url);
    expect(destination?.state).toBe("open");

    receiver.respondWith(ok);
    const enabled = await harness.api.post(`/api/v1/destinations/${destination?.id}/enable`);
    expect(enabled.status).toBe(200);
    expect(enabled.body).toMatchObject({ destinationId: destination?.id, state: "healthy", consecutiveFailures: 0, released: 2 });
    await finished(first, "succeeded");
    await finished(waiting, "succeeded");
    // Ten failures, then one attempt each: no probe was needed.
    expect(receiver.requests).toHaveLength(12);
    expect(await eventsOf(destination?.id ?? "")).toEqual([
      ["healthy", "open", "failures"],
      ["open", "healthy", "enabled"],
    ]);
  });

  it("answers 404 for another tenant's destination, and for an id that is not one", async () => {
    const url = `${receiver.url}?circuit=mine`;
    await finished(await completedJob(url), "succeeded");
    const destination = await destinationOf(url);
    const other = await createTenant(testDb.database, "other-tenant");
    const stranger = harness.api.withKey(other.apiKey);
    expect((await stranger.post(`/api/v1/destinations/${destination?.id}/enable`)).status).toBe(404);
    expect((await stranger.get("/api/v1/destinations")).body.data).toEqual([]);
    const notOne = await harness.api.post("/api/v1/destinations/not-a-uuid/enable");
    expect(notOne.status).toBe(404);
    expect(notOne.body.error.code).toBe("DESTINATION_NOT_FOUND");
  });

  it("lists destinations newest first, a page at a time, and by state", async () => {
    const tenant = await createTenant(testDb.database, "lister");
    const api = harness.api.withKey(tenant.apiKey);
    const urls = [1, 2, 3].map((n) => `${receiver.url}?list=${n}`);
    for (const url of urls) await finished(await completedJob(url, api), "succeeded");
    const first = await api.get("/api/v1/destinations?limit=2");
    expect(first.body.data.map((d: { url: string }) => d.url)).toEqual([urls[2], urls[1]]);
    const second = await api.get(`/api/v1/destinations?limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body).toMatchObject({ data: [{ url: urls[0], state: "healthy" }], nextCursor: null });
    expect((await api.get("/api/v1/destinations?state=open")).body.data).toEqual([]);
    expect((await api.get("/api/v1/destinations?state=sideways")).status).toBe(400);
  });
});

describe("disabling", () => {
  it("a 410 Gone disables the destination at once: its next deliveries fail unsent, until it is enabled", async () => {
    receiver.respondWith(status(410, {}, "gone"));
    const url = `${receiver.url}?gone=1`;
    const gone = await completedJob(url);
    const failed = await finished(gone, "failed");
    expect(failed.attempt_count).toBe(1);
    const destination = await destinationOf(url);
    expect(destination).toMatchObject({ state: "disabled", disabled_reason: "gone", consecutive_failures: 1 });
    expect(destination?.disabled_at).not.toBeNull();

    // Deliveries to it now fail without a request, each recorded as one failed attempt.
    const refused = await completedJob(url);
    const refusedDelivery = await finished(refused, "failed");
    expect(refusedDelivery.last_error).toMatch(/destination is disabled \(it answered 410 Gone\)/);
    const attempts = await attemptsOf(testDb.database, refusedDelivery.id);
    expect(attempts.map((a) => [a.attempt_number, a.outcome, a.error_kind, a.response_status])).toEqual([
      [1, "failed", "destination_disabled", null],
    ]);
    expect(receiver.requests).toHaveLength(1);

    // Enabled again, it is delivered to as before.
    receiver.respondWith(ok);
    const enabled = await harness.api.post(`/api/v1/destinations/${destination?.id}/enable`);
    expect(enabled.body).toMatchObject({ state: "healthy", disabledReason: null, disabledAt: null });
    await finished(await completedJob(url), "succeeded");
    expect(receiver.requests).toHaveLength(2);
    expect(await eventsOf(destination?.id ?? "")).toEqual([
      ["healthy", "disabled", "gone"],
      ["disabled", "healthy", "enabled"],
    ]);
  });

  it("a destination failing continuously for DESTINATION_DISABLE_AFTER is disabled, and its waiting deliveries fail", async () => {
    receiver.respondWith(status(500));
    const url = `${receiver.url}?failing=1`;
    const jobId = await completedJob(url);
    await parked(jobId);
    const waiting = await completedJob(url);
    await parked(waiting);
    const destination = await destinationOf(url);
    // The run of failures began three days ago (moved back here, rather than waited for); the next failure disables it.
    await testDb.database.query(
      "update webhook_outbox.destinations set first_failure_at = now() - interval '3 days', open_until = now() where id = $1",
      [destination?.id],
    );
    await finished(jobId, "failed");
    await finished(waiting, "failed");
    expect(await destinationOf(url)).toMatchObject({ state: "disabled", disabled_reason: "failing", open_until: null });
    const waited = await attemptsOf(testDb.database, (await deliveryOf(waiting)).id);
    expect(waited.map((a) => [a.outcome, a.error_kind])).toEqual([["failed", "destination_disabled"]]);
    // Ten failures and the probe that failed: nothing else was sent.
    expect(receiver.requests).toHaveLength(11);
    expect(await eventsOf(destination?.id ?? "")).toEqual([
      ["healthy", "open", "failures"],
      ["open", "disabled", "failing"],
    ]);
  });
});

describe("the operator's CLI", () => {
  it("lists destinations across tenants and enables one", async () => {
    receiver.respondWith(status(410));
    const url = `${receiver.url}?cli=1`;
    await finished(await completedJob(url), "failed");
    const destination = await destinationOf(url);
    const env = { DATABASE_URL: testDb.url };
    const listed = await runCli(["destination", "list", "--state", "disabled", "--json"], env);
    expect(listed.code).toBe(0);
    const rows = listed.stdout.trim().split("\n").map((line) => JSON.parse(line));
    expect(rows).toContainEqual(expect.objectContaining({ destinationId: destination?.id, state: "disabled", disabledReason: "gone" }));
    const byTenant = await runCli(["destination", "list", "--tenant", harness.tenant.tenantId], env);
    expect(byTenant.stdout).toContain(`${destination?.id}  disabled`);

    const enabled = await runCli(["destination", "enable", destination?.id ?? ""], env);
    expect(enabled.code).toBe(0);
    expect(enabled.stdout).toContain("is healthy (was disabled)");
    expect((await destinationOf(url))?.state).toBe("healthy");
    expect((await runCli(["destination", "enable", "nope"], env)).code).toBe(2);
  });
});

describe("a short cool-down", () => {
  it("a failed probe opens it for another cool-down: probes are a cool-down apart, never two at once", async () => {
    const coolDownMs = 250;
    // A database of its own: every worker of a database applies the same rules.
    const ownDb = await createTestDatabase();
    const quick = await startHarness(ownDb, {
      WEBHOOK_RETRY_DELAYS: MANY_ATTEMPTS,
      DESTINATION_FAILURE_THRESHOLD: 3,
      DESTINATION_COOLDOWN: coolDownMs,
    });
    const destinationIn = async (url: string) =>
      (await ownDb.database.query<DestinationState>("select * from webhook_outbox.destinations where url = $1", [url]))[0];
    const eventsIn = async (id: string) =>
      (
        await ownDb.database.query<{ from_state: string; to_state: string; reason: string }>(
          "select from_state, to_state, reason from webhook_outbox.destination_events where destination_id = $1 order by id",
          [id],
        )
      ).map((row) => [row.from_state, row.to_state, row.reason]);
    const deliveryIn = async (jobId: string) => (await deliveriesOf(ownDb.database, jobId))[0];
    try {
      receiver.respondWith(status(503));
      const url = `${receiver.url}?circuit=reopen`;
      const jobId = await completedJob(url, quick.api);
      // Three failures open it; two failed probes follow, each after a cool-down. The wait is on
      // recorded attempts: attempt_count counts an attempt when it is claimed, so the fifth could
      // still be in flight (and meet the 200 below) when attempt_count reads 5.
      const started = await eventually(async () => {
        const row = await deliveryIn(jobId);
        return row && (await attemptsOf(ownDb.database, row.id)).length >= 5 ? row : undefined;
      });
      receiver.respondWith(ok);
      expect((await attemptsOf(ownDb.database, started.id)).slice(0, 5).map((a) => a.response_status)).toEqual([503, 503, 503, 503, 503]);
      const delivery = await eventually(async () => {
        const row = await deliveryIn(jobId);
        return row?.status === "succeeded" ? row : undefined;
      });
      const attempts = await attemptsOf(ownDb.database, delivery.id);
      expect(attempts.length).toBeGreaterThanOrEqual(6);
      // From the third attempt on (the circuit open), each attempt starts a cool-down after the previous one ended.
      for (let n = 3; n < attempts.length; n++) {
        const gap = (attempts[n]?.started_at.getTime() ?? 0) - (attempts[n - 1]?.finished_at.getTime() ?? 0);
        expect(gap).toBeGreaterThanOrEqual(coolDownMs - 5);
      }
      const destination = await destinationIn(url);
      expect(destination).toMatchObject({ state: "healthy", consecutive_failures: 0 });
      expect(await eventsIn(destination?.id ?? "")).toEqual([
        ["healthy", "open", "failures"],
        ["open", "healthy", "success"],
      ]);
    } finally {
      await quick.stop();
      await ownDb.drop();
    }
  });
});
