import { createHash, createHmac } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApiKey } from "../src/tenants/key-lifecycle.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { runCli } from "./support/cli.js";
import { eventually, INTERNAL_TOKEN, startHarness, type Harness } from "./support/harness.js";
import { finishedDelivery } from "./support/queries.js";
import { Receiver, type ReceivedRequest } from "./support/receiver.js";

// Each CLI call starts a process that compiles TypeScript: seconds, not milliseconds, on a busy machine.
vi.setConfig({ testTimeout: 120_000 });

let testDb: TestDatabase;
let harness: Harness;
let receiver: Receiver;
const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { DATABASE_URL: testDb.url, ...env });

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb);
  receiver = await Receiver.start();
});

afterAll(async () => {
  await harness?.stop();
  await receiver?.close();
  await testDb?.drop();
});

describe("API keys", () => {
  it("tenant create-key adds a working key that is stored only as a hash with a visible prefix", async () => {
    const created = await cli(["tenant", "create-key", harness.tenant.tenantId, "--json"]);
    expect(created.code, created.stderr).toBe(0);
    const { apiKey, prefix, tenantId } = JSON.parse(created.stdout) as { apiKey: string; prefix: string; tenantId: string };
    expect(tenantId).toBe(harness.tenant.tenantId);
    expect(apiKey.startsWith(prefix)).toBe(true);

    const job = await harness.api.post("/api/v1/generate", { prompt: "made with the first key" });
    const seen = await harness.api.withKey(apiKey).get(`/api/v1/jobs/${job.body.jobId}`);
    expect(seen.status).toBe(200);

    const rows = await testDb.database.query<Record<string, unknown>>("select * from webhook_outbox.api_keys where prefix = $1", [prefix]);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.key_hash).toBe(createHash("sha256").update(apiKey).digest("hex"));
    expect(JSON.stringify(rows)).not.toContain(apiKey);
  });

  it("tenant revoke-key makes that key 401 at once and leaves the tenant's other keys working", async () => {
    const created = await createApiKey(testDb.database, harness.tenant.tenantId);
    const doomed = harness.api.withKey(created.apiKey);
    expect((await doomed.get("/api/v1/jobs")).status).toBe(200);

    const revoked = await cli(["tenant", "revoke-key", created.prefix]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain("is now revoked");

    const refused = await doomed.get("/api/v1/jobs");
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe("UNAUTHORIZED");
    expect((await doomed.post("/api/v1/generate", { prompt: "after revocation" })).status).toBe(401);
    expect((await harness.api.get("/api/v1/jobs")).status).toBe(200);

    const again = await cli(["tenant", "revoke-key", created.prefix]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("was already revoked");
  });

  it("revokes by the whole key too, and reports an unknown key", async () => {
    const created = await createApiKey(testDb.database, harness.tenant.tenantId);
    expect((await cli(["tenant", "revoke-key", created.apiKey])).code).toBe(0);
    expect((await harness.api.withKey(created.apiKey).get("/api/v1/jobs")).status).toBe(401);

    const unknown = await cli(["tenant", "revoke-key", "wo_nosuchkey"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("API_KEY_NOT_FOUND");
  });

  it("refuses a key whose prefix is right but whose secret part is not", async () => {
    const key = harness.tenant.apiKey;
    const forged = `${key.slice(0, -4)}${key.endsWith("AAAA") ? "BBBB" : "AAAA"}`;
    expect((await harness.api.withKey(forged).get("/api/v1/jobs")).status).toBe(401);
    expect((await harness.api.withKey(harness.tenant.signingSecret).get("/api/v1/jobs")).status).toBe(401);
    expect((await harness.api.request("GET", "/api/v1/jobs", undefined, "")).status).toBe(401);
  });
});

describe("internal routes", () => {
  it("are closed when INTERNAL_API_TOKEN is unset, whatever token is sent", async () => {
    const closed = await startHarness(testDb, { INTERNAL_API_TOKEN: undefined }, { worker: false });
    try {
      const job = await closed.api.post("/api/v1/generate", { prompt: "internal closed" });
      for (const token of ["", "undefined", INTERNAL_TOKEN, closed.tenant.apiKey]) {
        const response = await closed.api.request(
          "PATCH",
          `/internal/v1/jobs/${job.body.jobId}/projects/0`,
          { status: "processing" },
          token,
        );
        expect(response.status, token).toBe(404);
      }
      expect((await closed.api.get(`/api/v1/jobs/${job.body.jobId}`)).body.status).toBe("queued");
    } finally {
      await closed.stop();
    }
  });

  it("refuse a wrong token and a customer API key", async () => {
    const job = await harness.api.post("/api/v1/generate", { prompt: "internal guarded" });
    const path = `/internal/v1/jobs/${job.body.jobId}/projects/0`;
    expect((await harness.api.request("PATCH", path, { status: "processing" }, "wrong")).status).toBe(401);
    expect((await harness.api.request("PATCH", path, { status: "processing" }, harness.tenant.apiKey)).status).toBe(401);
  });
});

function verifies(secret: string, request: ReceivedRequest): boolean {
  try {
    new Webhook(secret).verify(request.body, {
      "webhook-id": String(request.headers["webhook-id"]),
      "webhook-timestamp": String(request.headers["webhook-timestamp"]),
      "webhook-signature": String(request.headers["webhook-signature"]),
    });
    return true;
  } catch {
    return false;
  }
}

async function deliverOne(): Promise<ReceivedRequest> {
  const before = receiver.requests.length;
  const job = await harness.api.post("/api/v1/generate", { prompt: "signed", webhookUrl: receiver.url });
  await harness.api.finishJob(job.body.jobId, 1, "completed");
  await eventually(() => finishedDelivery(testDb.database, job.body.jobId, "succeeded"));
  const [request] = (await receiver.waitForRequests(before + 1)).slice(before);
  if (!request) throw new Error("no webhook received");
  return request;
}

const hexSignature = (secret: string, body: string) =>
  `sha256=${createHmac("sha256", Buffer.from(secret.slice("whsec_".length), "base64")).update(body).digest("hex")}`;

describe("signing-secret rotation", () => {
  it("signs with both secrets during the overlap, and with the newest only once it ends", async () => {
    const oldSecret = harness.tenant.signingSecret;
    const rotated = await cli(["tenant", "rotate-secret", harness.tenant.tenantId, "--json"]);
    expect(rotated.code, rotated.stderr).toBe(0);
    const { signingSecret: newSecret, previousSecretsExpireAt } = JSON.parse(rotated.stdout) as {
      signingSecret: string;
      previousSecretsExpireAt: string;
    };
    expect(newSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);

    // The default SECRET_ROTATION_OVERLAP is 24 hours, recorded on the old secret's row.
    const rows = await testDb.database.query<{ secret: string; overlap_s: number | null; new_expiry: string | null }>(
      `select secret, extract(epoch from expires_at - (select created_at from webhook_outbox.signing_secrets where secret = $2))::float8 as overlap_s,
              expires_at as new_expiry
       from webhook_outbox.signing_secrets where tenant_id = $1`,
      [harness.tenant.tenantId, newSecret],
    );
    expect(rows.find((row) => row.secret === oldSecret)?.overlap_s).toBe(24 * 3600);
    expect(rows.find((row) => row.secret === newSecret)?.new_expiry).toBeNull();
    expect(new Date(previousSecretsExpireAt).getTime()).toBeGreaterThan(Date.now() + 23 * 3600_000);

    const during = await deliverOne();
    expect(String(during.headers["webhook-signature"]).split(" ")).toHaveLength(2);
    expect(verifies(oldSecret, during)).toBe(true);
    expect(verifies(newSecret, during)).toBe(true);
    expect(during.headers["x-webhook-signature"]).toBe(hexSignature(newSecret, during.body));

    // A rotation with no overlap retires every earlier secret at once.
    const immediate = await cli(["tenant", "rotate-secret", harness.tenant.tenantId, "--json"], { SECRET_ROTATION_OVERLAP: "0" });
    expect(immediate.code, immediate.stderr).toBe(0);
    const newest = (JSON.parse(immediate.stdout) as { signingSecret: string }).signingSecret;

    const after = await deliverOne();
    expect(String(after.headers["webhook-signature"]).split(" ")).toHaveLength(1);
    expect(verifies(newest, after)).toBe(true);
    expect(verifies(newSecret, after)).toBe(false);
    expect(verifies(oldSecret, after)).toBe(false);
    expect(after.headers["x-webhook-signature"]).toBe(hexSignature(newest, after.body));
  });

  it("names the tenant by name as well as by id, and refuses an unknown one", async () => {
    const [tenant] = await testDb.database.query<{ name: string }>("select name from webhook_outbox.tenants where id = $1", [harness.tenant.tenantId]);
    const named = await cli(["tenant", "list-keys", tenant?.name ?? "?"]);
    expect(named.code).toBe(0);
    expect(named.stdout).toContain(harness.tenant.apiKey.slice(0, 11));
    expect(named.stdout).not.toContain(harness.tenant.apiKey);
    const unknown = await cli(["tenant", "rotate-secret", "no-such-tenant"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("TENANT_NOT_FOUND");
  });
});
