import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeApiKey } from "../src/tenants/key-lifecycle.js";
import { createTenant } from "../src/tenants/tenant-service.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, INTERNAL_TOKEN, startHarness, type Harness } from "./support/harness.js";
import { finishedDelivery } from "./support/queries.js";
import { Receiver, status } from "./support/receiver.js";

let testDb: TestDatabase;
let harness: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, { WEBHOOK_RETRY_DELAYS: [0], DASHBOARD_SESSION_SECRET: "x".repeat(32) });
});

afterAll(async () => {
  await harness?.stop();
  await testDb?.drop();
});

const base = () => harness.service.url ?? "";

/** A cookie jar of one client: name → value, from Set-Cookie headers. */
class Client {
  readonly cookies = new Map<string, string>();

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0) headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const response = await fetch(`${base()}${path}`, { ...init, headers, redirect: "manual" });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const [name, ...value] = (pair ?? "").split("=");
      if (!name) continue;
      if (/max-age=0/i.test(line) || value.join("=") === "") this.cookies.delete(name);
      else this.cookies.set(name, value.join("="));
    }
    return response;
  }

  post(path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    return this.request(path, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      body: new URLSearchParams(form).toString(),
    });
  }

  async csrfOf(path: string): Promise<string> {
    const html = await (await this.request(path)).text();
    const match = /name="csrf" value="([^"]+)"/.exec(html);
    if (!match?.[1]) throw new Error(`no CSRF token on ${path}`);
    return match[1];
  }

  async signIn(credential: string): Promise<Response> {
    const csrf = await this.csrfOf("/dashboard/sign-in");
    return this.post("/dashboard/sign-in", { csrf, credential });
  }
}

describe("dashboard over plain HTTP", () => {
  it("sets a HttpOnly, SameSite=Strict, Path=/dashboard session cookie with an expiry; Secure only over https", async () => {
    const client = new Client();
    const response = await client.signIn(harness.tenant.apiKey);
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/dashboard");
    const cookie = response.headers.getSetCookie().find((line) => line.startsWith("wo_session="));
    expect(cookie).toBeDefined();
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
    expect(cookie).toMatch(/; Path=\/dashboard/);
    expect(cookie).toMatch(/; Max-Age=28800/);
    expect(cookie).toMatch(/; Expires=/);
    expect(cookie).not.toMatch(/Secure/);
    // The cookie never holds the key.
    expect(decodeURIComponent(cookie ?? "")).not.toContain(harness.tenant.apiKey);
    expect(Buffer.from((cookie ?? "").split("=")[1]?.split(".")[0] ?? "", "base64url").toString()).not.toContain(harness.tenant.apiKey);

    const behindTls = new Client();
    const csrf = await behindTls.csrfOf("/dashboard/sign-in");
    const secure = await behindTls.post("/dashboard/sign-in", { csrf, credential: harness.tenant.apiKey }, { "x-forwarded-proto": "https" });
    expect(secure.headers.getSetCookie().find((line) => line.startsWith("wo_session="))).toMatch(/; Secure/);
  });

  it("sends a strict CSP and links only assets of its own, which it serves", async () => {
    const client = new Client();
    await client.signIn(INTERNAL_TOKEN);
    for (const path of ["/dashboard/sign-in", "/dashboard", "/dashboard/deliveries", "/dashboard/destinations"]) {
      const response = await client.request(path);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("content-security-policy")).toMatch(/default-src 'self'/);
      expect(response.headers.get("content-security-policy")).toMatch(/script-src 'self'/);
      expect(response.headers.get("content-security-policy")).toMatch(/frame-ancestors 'none'/);
      const html = await response.text();
      // No inline script or style: every <script> has a src, no style attribute or element.
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(html).not.toMatch(/<style|\sstyle="/);
      const urls = [...html.matchAll(/\s(?:src|href|action)="([^"]+)"/g)].map((m) => m[1] ?? "");
      expect(urls.length).toBeGreaterThan(0);
      for (const url of urls) expect(url, `${path}: ${url}`).toMatch(/^(\/dashboard|#)/);
      for (const asset of urls.filter((url) => url.startsWith("/dashboard/assets/"))) {
        expect((await client.request(asset)).status, asset).toBe(200);
      }
    }
  });

  it("redirects to sign-in without a session, and refuses a forged one", async () => {
    const anonymous = new Client();
    const response = await anonymous.request("/dashboard/deliveries");
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toMatch(/^\/dashboard\/sign-in/);
    anonymous.cookies.set("wo_session", `${Buffer.from(JSON.stringify({ kind: "operator", tokenHash: "00", sid: "a", exp: 9e15 })).toString("base64url")}.forged`);
    expect((await anonymous.request("/dashboard")).status).toBe(303);
  });

  it("refuses a bad credential with 401 and a sign-in without the CSRF token with 403", async () => {
    const client = new Client();
    expect((await client.signIn("wo_notarealkeyatallnotarealkey")).status).toBe(401);
    expect((await client.signIn("not-the-token")).status).toBe(401);
    await client.request("/dashboard/sign-in");
    const noToken = await client.post("/dashboard/sign-in", { credential: harness.tenant.apiKey });
    expect(noToken.status).toBe(403);
    expect(noToken.headers.getSetCookie().some((line) => line.startsWith("wo_session="))).toBe(false);
  });

  it("refuses a redeliver without (or with another session's) CSRF token: 403 and the delivery untouched", async () => {
    const receiver = await Receiver.start(status(500));
    try {
      const created = await harness.api.post("/api/v1/generate", { prompt: "csrf", webhookUrl: receiver.url });
      await harness.api.finishJob(created.body.jobId, 1, "completed");
      const delivery = await eventually(() => finishedDelivery(testDb.database, created.body.jobId, "failed"));
      const client = new Client();
      await client.signIn(harness.tenant.apiKey);
      const other = new Client();
      await other.signIn(harness.tenant.apiKey);
      const otherCsrf = await other.csrfOf("/dashboard/deliveries");

      expect((await client.post(`/dashboard/deliveries/${delivery.id}/redeliver`, {})).status).toBe(403);
      expect((await client.post(`/dashboard/deliveries/${delivery.id}/redeliver`, { csrf: otherCsrf })).status).toBe(403);
      expect((await finishedDelivery(testDb.database, created.body.jobId, "failed"))?.attempt_count).toBe(1);

      const csrf = await client.csrfOf(`/dashboard/deliveries/${delivery.id}`);
      const accepted = await client.post(`/dashboard/deliveries/${delivery.id}/redeliver`, { csrf });
      expect(accepted.status).toBe(303);
      expect(accepted.headers.get("location")).toBe(`/dashboard/deliveries/${delivery.id}?notice=redelivered`);
    } finally {
      await receiver.close();
    }
  });

  it("ends a session at sign-out, and a revoked key's session on its next request", async () => {
    const client = new Client();
    await client.signIn(harness.tenant.apiKey);
    const stolen = client.cookies.get("wo_session");
    const csrf = await client.csrfOf("/dashboard");
    expect((await client.post("/dashboard/sign-out", { csrf })).status).toBe(303);
    expect(client.cookies.has("wo_session")).toBe(false);
    expect((await client.request("/dashboard")).status).toBe(303);

    const tenant = await createTenant(testDb.database, "revoked");
    const revoked = new Client();
    expect((await revoked.signIn(tenant.apiKey)).status).toBe(303);
    expect((await revoked.request("/dashboard/deliveries")).status).toBe(200);
    await revokeApiKey(testDb.database, tenant.apiKey.slice(0, 11));
    const refused = await revoked.request("/dashboard/deliveries");
    expect(refused.status).toBe(303);
    expect(refused.headers.get("location")).toBe("/dashboard/sign-in?reason=revoked");
    expect(stolen).toBeDefined();
  });

  it("answers a bad filter or cursor with a 400 page, never a 500", async () => {
    const client = new Client();
    await client.signIn(harness.tenant.apiKey);
    for (const query of ["status=nope", "job=not-a-uuid", "since=yesterday", "cursor=garbage"]) {
      const response = await client.request(`/dashboard/deliveries?${query}`);
      expect(response.status, query).toBe(400);
      expect(response.headers.get("content-type")).toMatch(/text\/html/);
    }
  });
});
