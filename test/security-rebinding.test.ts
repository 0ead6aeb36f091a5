import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { FakeDns, startSecureService, type SecureService } from "./support/fake-dns.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";
import { attemptsOf, deliveriesOf, finishedDelivery } from "./support/queries.js";
import { TcpListener } from "./support/tcp-listener.js";

/*
 * How these tests prove the send-time check without leaving the machine:
 * the service runs with the production policy (WEBHOOK_ALLOW_INSECURE_URLS=false, https only) and
 * an injected resolver. The webhook host's port is a local TCP listener that counts connections.
 * A refused address must show up as a `blocked_address` attempt with zero connections; an admitted
 * one (WEBHOOK_ALLOWED_CIDRS=127.0.0.1/32) must reach the listener, which proves the socket goes to
 * exactly the address the send-time lookup vetted (the .test names exist nowhere else).
 */

let testDb: TestDatabase;
let listener: TcpListener;
const running: Array<{ stop(): Promise<void> }> = [];

beforeAll(async () => {
  testDb = await createTestDatabase();
  listener = await TcpListener.start();
});

afterEach(async () => {
  for (const service of running.splice(0)) await service.stop();
});

afterAll(async () => {
  await listener?.close();
  await testDb?.drop();
});

async function createAndComplete(client: SecureService | Harness, webhookUrl: string): Promise<string> {
  const created = await client.api.post("/api/v1/generate", { prompt: "rebinding", webhookUrl });
  expect(created.status, JSON.stringify(created.body)).toBe(202);
  await client.api.finishJob(created.body.jobId, 1, "completed");
  return created.body.jobId;
}

describe("DNS rebinding", () => {
  it("refuses at send time a name that was public at creation and is private now, opening no connection", async () => {
    let calls = 0;
    const dns = new FakeDns({ "rebind.test": () => (++calls === 1 ? ["93.184.216.34"] : ["127.0.0.1"]) });
    const secure = await startSecureService(testDb, dns);
    running.push(secure);
    const before = listener.connections;

    const jobId = await createAndComplete(secure, `https://rebind.test:${listener.port}/hook`);
    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "failed"));

    const attempts = await attemptsOf(testDb.database, delivery.id);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ outcome: "failed", error_kind: "blocked_address", response_status: null });
    expect(attempts[0]?.error_message).toContain("rebind.test resolves to 127.0.0.1, a loopback address");
    expect(delivery.attempt_count).toBe(1);
    expect(listener.connections).toBe(before);
    expect(calls).toBe(2);
  });

  it("refuses a name whose answers mix a public and a private address", async () => {
    let calls = 0;
    const dns = new FakeDns({
      "mixed.test": () => (++calls === 1 ? ["93.184.216.34"] : ["93.184.216.34", "127.0.0.1"]),
    });
    const secure = await startSecureService(testDb, dns);
    running.push(secure);
    const before = listener.connections;

    const jobId = await createAndComplete(secure, `https://mixed.test:${listener.port}/hook`);
    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "failed"));
    const [attempt] = await attemptsOf(testDb.database, delivery.id);
    expect(attempt?.error_kind).toBe("blocked_address");
    expect(listener.connections).toBe(before);
  });

  it("connects to the address vetted at send time and resolves nothing again before connecting", async () => {
    // Answers 127.0.0.1 (admitted by WEBHOOK_ALLOWED_CIDRS) twice, then 127.0.0.2 (not admitted).
    // A sender that checked with one lookup and connected with another would never reach the listener.
    let calls = 0;
    const dns = new FakeDns({ "pinned.test": () => (++calls <= 2 ? ["127.0.0.1"] : ["127.0.0.2"]) });
    const secure = await startSecureService(testDb, dns, {
      WEBHOOK_ALLOWED_CIDRS: ["127.0.0.1/32"],
      WEBHOOK_RETRY_DELAYS: [0],
    });
    running.push(secure);
    const before = listener.connections;

    const jobId = await createAndComplete(secure, `https://pinned.test:${listener.port}/hook`);
    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "failed"));
    const [attempt] = await attemptsOf(testDb.database, delivery.id);

    expect(listener.connections).toBe(before + 1);
    // The listener drops the socket mid-handshake: a connection-level failure, not a policy refusal.
    expect(["connect", "tls"]).toContain(attempt?.error_kind);
    expect(calls).toBe(2);
  });

  it("checks an IP-literal host again at send time, where no lookup happens", async () => {
    // The row was written while insecure URLs were allowed; the worker now runs the production policy.
    const lenientApi = await startHarness(testDb, {}, { worker: false });
    running.push(lenientApi);
    const strictWorker = await startSecureService(testDb, new FakeDns(), {}, { api: false, tenant: lenientApi.tenant });
    running.push(strictWorker);
    const before = listener.connections;

    const jobId = await createAndComplete(lenientApi, `https://127.0.0.1:${listener.port}/hook`);
    const delivery = await eventually(() => finishedDelivery(testDb.database, jobId, "failed"));
    const [attempt] = await attemptsOf(testDb.database, delivery.id);
    expect(attempt).toMatchObject({ error_kind: "blocked_address", outcome: "failed" });
    expect(attempt?.error_message).toContain("127.0.0.1 is a loopback address");
    expect(listener.connections).toBe(before);
    expect((await deliveriesOf(testDb.database, jobId))[0]?.last_error).toContain("loopback");
  });
});
