import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { INTERNAL_TOKEN, startHarness, type Harness } from "./support/harness.js";

let testDb: TestDatabase;
let harness: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, {}, { worker: false });
});

afterAll(async () => {
  await harness?.stop();
  await testDb?.drop();
});

const KIB = 1024;

async function raw(path: string, init: RequestInit & { token?: string } = {}) {
  const { token, ...rest } = init;
  const response = await fetch(`${harness.service.url}${path}`, {
    ...rest,
    headers: { authorization: `Bearer ${token ?? harness.tenant.apiKey}`, ...(rest.headers as Record<string, string>) },
  });
  const text = await response.text();
  let body: { error?: { code?: string; message?: string } } | undefined;
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    body = undefined;
  }
  return { status: response.status, body, text };
}

const json = { "content-type": "application/json" };

async function jobCount(): Promise<number> {
  const rows = await testDb.database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.jobs");
  return rows[0]?.n ?? -1;
}

async function deliveryCount(jobId: string): Promise<number> {
  const rows = await testDb.database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.webhook_deliveries where job_id = $1", [jobId]);
  return rows[0]?.n ?? -1;
}

describe("request bodies", () => {
  it("refuses a body over 64 KiB with 413, declared or streamed", async () => {
    const big = JSON.stringify({ prompt: "x".repeat(65 * KIB) });
    const declared = await raw("/api/v1/generate", { method: "POST", headers: json, body: big });
    expect(declared.status).toBe(413);
    expect(declared.body?.error?.code).toBe("PAYLOAD_TOO_LARGE");

    const chunks = [new TextEncoder().encode(big)];
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const chunk = chunks.shift();
        if (chunk) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const streamed = await raw("/api/v1/generate", {
      method: "POST",
      headers: json,
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(streamed.body?.error?.code).toBe("PAYLOAD_TOO_LARGE");

    const internal = await raw("/internal/v1/jobs/00000000-0000-4000-8000-000000000000/projects/0", {
      method: "PATCH",
      headers: json,
      body: big,
      token: INTERNAL_TOKEN,
    });
    expect(internal.status).toBe(413);
  });

  it("refuses anything but application/json with 415", async () => {
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"]) {
      const response = await raw("/api/v1/generate", { method: "POST", headers: { "content-type": type }, body: '{"prompt":"x"}' });
      expect(response.status, type).toBe(415);
      expect(response.body?.error?.code).toBe("UNSUPPORTED_MEDIA_TYPE");
    }
    const missing = await raw("/api/v1/generate", { method: "POST", body: new Uint8Array(Buffer.from('{"prompt":"x"}')) });
    expect(missing.status).toBe(415);
    const charset = await raw("/api/v1/generate", {
      method: "POST",
      headers: { "content-type": "Application/JSON; charset=utf-8" },
      body: '{"prompt":"with charset"}',
    });
    expect(charset.status).toBe(202);
  });

  it("answers malformed JSON with 400 INVALID_JSON", async () => {
    for (const body of ["{", '{"prompt":', "not json", '{"prompt":"x"}}', "\u0000", "[1,2", "{'prompt':'x'}"]) {
      const response = await raw("/api/v1/generate", { method: "POST", headers: json, body });
      expect(response.status, body).toBe(400);
      expect(response.body?.error?.code, body).toBe("INVALID_JSON");
    }
    const internal = await raw("/internal/v1/jobs/00000000-0000-4000-8000-000000000000/projects/0", {
      method: "PATCH",
      headers: json,
      body: "{",
      token: INTERNAL_TOKEN,
    });
    expect(internal.body?.error?.code).toBe("INVALID_JSON");
  });

  it("answers a valid JSON body of the wrong shape with 400 VALIDATION_FAILED", async () => {
    const bodies: unknown[] = [
      null,
      [],
      "a string",
      42,
      {},
      { prompt: "" },
      { prompt: "   " },
      { prompt: "x".repeat(4001) },
      { prompt: 42 },
      { prompt: "ok", projectCount: 0 },
      { prompt: "ok", projectCount: 21 },
      { prompt: "ok", projectCount: 1.5 },
      { prompt: "ok", projectCount: "3" },
      { prompt: "ok", projectCount: -1 },
      { prompt: "ok", webhookUrl: 7 },
      { prompt: "ok", unknownField: true },
      { prompt: "ok", __proto__: { admin: true }, constructor: { prototype: { admin: true } } },
      { prompt: "ok", tenantId: "00000000-0000-4000-8000-000000000000" },
    ];
    const texts = [...bodies.map((body) => JSON.stringify(body)), '{"prompt":"ok","projectCount":1e309}', '{"prompt":"ok","prompt":""}'];
    for (const text of texts) {
      const response = await raw("/api/v1/generate", { method: "POST", headers: json, body: text });
      expect(response.status, text.slice(0, 80)).toBe(400);
      expect(response.body?.error?.code, text.slice(0, 80)).toBe("VALIDATION_FAILED");
    }
    const deep = "[".repeat(30_000) + "]".repeat(30_000);
    const nested = await raw("/api/v1/generate", { method: "POST", headers: json, body: deep });
    expect([400, 413]).toContain(nested.status);
    expect(await jobCount()).toBe(1); // only the charset request above made a job
  });

  it("names the unknown field", async () => {
    const response = await raw("/api/v1/generate", { method: "POST", headers: json, body: '{"prompt":"ok","isAdmin":true}' });
    expect(response.body?.error?.message).toContain("isAdmin");
  });

  it("accepts the bounds themselves", async () => {
    const atMax = await harness.api.post("/api/v1/generate", { prompt: "p".repeat(4000), projectCount: 20 });
    expect(atMax.status).toBe(202);
    expect(atMax.body.projects).toHaveLength(20);
  });
});

describe("ids and queries", () => {
  it("answers a malformed or unknown job id with 404, never 500", async () => {
    for (const id of ["not-a-uuid", "1", "00000000-0000-4000-8000-000000000000", "%", "..%2f..%2fetc", "' or 1=1 --", "a".repeat(500)]) {
      const response = await harness.api.get(`/api/v1/jobs/${encodeURIComponent(id)}`);
      expect(response.status, id).toBe(404);
      expect(response.body.error.code, id).toMatch(/NOT_FOUND$/);
    }
  });

  it("answers internal reports on malformed ids and indexes with 404 or 400, never 500", async () => {
    const job = await harness.api.post("/api/v1/generate", { prompt: "for reports" });
    const cases: Array<[string, number]> = [
      ["/internal/v1/jobs/not-a-uuid/projects/0", 404],
      [`/internal/v1/jobs/${job.body.jobId}/projects/99`, 404],
      [`/internal/v1/jobs/${job.body.jobId}/projects/-1`, 400],
      [`/internal/v1/jobs/${job.body.jobId}/projects/abc`, 400],
      [`/internal/v1/jobs/${job.body.jobId}/projects/1e3`, 400],
    ];
    for (const [path, expected] of cases) {
      const response = await harness.api.internalPatch(path, { status: "processing" });
      expect(response.status, path).toBe(expected);
      expect(response.body.error.code, path).toBeTypeOf("string");
    }
    const unknownField = await harness.api.internalPatch(`/internal/v1/jobs/${job.body.jobId}/projects/0`, {
      status: "processing",
      tenantId: "x",
    });
    expect(unknownField.status).toBe(400);
    const badStatus = await harness.api.internalPatch(`/internal/v1/jobs/${job.body.jobId}/projects/0`, { status: "queued" });
    expect(badStatus.status).toBe(400);
  });

  it("bounds the list query", async () => {
    for (const query of ["limit=0", "limit=101", "limit=abc", "status=bogus", "since=yesterday", "cursor=%%%", "cursor=" + "a".repeat(300), "extra=1"]) {
      const response = await harness.api.get(`/api/v1/jobs?${query}`);
      expect(response.status, query).toBe(400);
      expect(response.body.error.code, query).toMatch(/^(VALIDATION_FAILED|INVALID_CURSOR)$/);
    }
  });
});

describe("text Postgres cannot store", () => {
  it("refuses NUL characters with 400 instead of failing the insert", async () => {
    const job = await harness.api.post("/api/v1/generate", { prompt: "for NUL reports" });
    const cases: Array<[string, string, unknown, string]> = [
      ["POST", "/api/v1/generate", { prompt: "a\u0000b" }, harness.tenant.apiKey],
      ["POST", "/api/v1/generate", { prompt: "ok", webhookUrl: "http://127.0.0.1:9/a\u0000b" }, harness.tenant.apiKey],
      ["PATCH", `/internal/v1/jobs/${job.body.jobId}/projects/0`, { status: "failed", error: { code: "X\u0000", message: "m" } }, INTERNAL_TOKEN],
      ["PATCH", `/internal/v1/jobs/${job.body.jobId}/projects/0`, { status: "failed", error: { code: "X", message: "m\u0000" } }, INTERNAL_TOKEN],
      ["PATCH", `/internal/v1/jobs/${job.body.jobId}/projects/0`, { status: "completed", videoUrl: "https://cdn.example.com/a\u0000.mp4" }, INTERNAL_TOKEN],
    ];
    for (const [method, path, body, token] of cases) {
      const response = await harness.api.request(method, path, body, token);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.code).toBe("VALIDATION_FAILED");
    }
    expect((await harness.api.get(`/api/v1/jobs/${job.body.jobId}`)).body.status).toBe("queued");
  });
});

describe("text Postgres cannot store, in every field of every route", () => {
  const lone = "\uD83D"; // the first half of an emoji's surrogate pair, alone
  const trailing = "\uDE00";

  async function expectRefused(method: string, path: string, body: unknown, token: string, field: string): Promise<void> {
    const response = await harness.api.request(method, path, body, token);
    const what = `${method} ${path} ${JSON.stringify(body)}`;
    expect(response.status, what).toBe(400);
    expect(response.body.error.code, what).toBe("VALIDATION_FAILED");
    expect(response.body.error.message, what).toContain(field);
  }

  it("refuses an unpaired surrogate in a terminal report with 400, and the job stays reportable", async () => {
    const job = await harness.api.post("/api/v1/generate", { prompt: "for surrogate reports", webhookUrl: "https://hooks.example.com/a" });
    const path = `/internal/v1/jobs/${job.body.jobId}/projects/0`;
    await expectRefused("PATCH", path, { status: "failed", error: { code: "X", message: `bad ${lone}` } }, INTERNAL_TOKEN, "error.message");
    await expectRefused("PATCH", path, { status: "failed", error: { code: `X${trailing}`, message: "m" } }, INTERNAL_TOKEN, "error.code");
    await expectRefused("PATCH", path, { status: "completed", videoUrl: `https://cdn.example.com/${lone}.mp4` }, INTERNAL_TOKEN, "videoUrl");
    const unchanged = await harness.api.get(`/api/v1/jobs/${job.body.jobId}`);
    expect(unchanged.body.status).toBe("queued");
    expect(await deliveryCount(job.body.jobId)).toBe(0);

    // A well-formed pair is ordinary text, and the retry of the report goes through.
    const retried = await harness.api.internalPatch(path, { status: "failed", error: { code: "X", message: "ok \uD83D\uDE00" } });
    expect(retried.status).toBe(200);
    expect(retried.body.status).toBe("failed");
    expect(retried.body.projects[0].error.message).toBe("ok \u{1F600}");
    expect(await deliveryCount(job.body.jobId)).toBe(1);
  });

  it("refuses NUL and unpaired surrogates in the Veo3 request as /api/v1/generate does", async () => {
    const before = await jobCount();
    for (const bad of ["\u0000", lone, trailing]) {
      await expectRefused("POST", "/v1/veo/generate", { prompt: `a${bad}b` }, harness.tenant.apiKey, "prompt");
      await expectRefused("POST", "/v1/veo/generate", { prompt: "ok", callback_url: `https://h.example.com/${bad}` }, harness.tenant.apiKey, "callback_url");
      await expectRefused("POST", "/api/v1/generate", { prompt: `a${bad}b` }, harness.tenant.apiKey, "prompt");
      await expectRefused("POST", "/api/v1/generate", { prompt: "ok", webhookUrl: `https://h.example.com/${bad}` }, harness.tenant.apiKey, "webhookUrl");
    }
    expect(await jobCount()).toBe(before);
  });

  it("refuses NUL in path parameters and query strings, naming the field", async () => {
    const id = "00000000-0000-4000-8000-000000000000";
    for (const path of [`/api/v1/jobs/a%00b`, `/api/v1/jobs/a%00b/deliveries`, `/v1/veo/generations/%00`]) {
      const response = await harness.api.get(path);
      expect(response.status, path).toBe(400);
      expect(response.body.error.code, path).toBe("VALIDATION_FAILED");
    }
    await expectRefused("POST", "/api/v1/deliveries/%00/redeliver", undefined, harness.tenant.apiKey, "deliveryId");
    await expectRefused("PATCH", `/internal/v1/jobs/${id}%00/projects/0`, { status: "processing" }, INTERNAL_TOKEN, "jobId");
    for (const path of ["/api/v1/jobs?cursor=a%00b", "/api/v1/deliveries?cursor=a%00b"]) {
      const response = await harness.api.get(path);
      expect(response.status, path).toBe(400);
      expect(response.body.error.message, path).toContain("cursor");
    }
  });
});

describe("instants Postgres cannot store", () => {
  const uuid = "00000000-0000-4000-8000-000000000000";
  const cursorOf = (text: string) => Buffer.from(text).toString("base64url");

  it("answers a cursor whose date is out of range with 400 INVALID_CURSOR on both lists", async () => {
    const cursors = [
      `+275760-09-13T00:00:00.000Z|${uuid}`,
      `-000001-01-01T00:00:00.000Z|${uuid}`,
      `+010000-01-01T00:00:00.000Z|${uuid}`,
      `0000-12-31T23:59:59.999Z|${uuid}`,
      `275760|${uuid}`,
      `March 7, 2020|${uuid}`,
      `2020-01-01T00:00:00.000Z|${uuid}|extra`,
    ];
    for (const path of ["/api/v1/jobs", "/api/v1/deliveries"]) {
      for (const text of cursors) {
        const response = await harness.api.get(`${path}?cursor=${cursorOf(text)}`);
        expect(response.status, `${path} ${text}`).toBe(400);
        expect(response.body.error.code, `${path} ${text}`).toBe("INVALID_CURSOR");
      }
      // The bounds themselves are fine.
      for (const text of [`0001-01-01T00:00:00.000Z|${uuid}`, `9999-12-31T23:59:59.999Z|${uuid}`]) {
        const response = await harness.api.get(`${path}?cursor=${cursorOf(text)}`);
        expect(response.status, `${path} ${text}`).toBe(200);
      }
    }
  });

  it("answers a since out of range with 400 VALIDATION_FAILED naming since", async () => {
    for (const path of ["/api/v1/jobs", "/api/v1/deliveries"]) {
      for (const since of ["0000-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "+275760-09-13T00:00:00.000Z"]) {
        const response = await harness.api.get(`${path}?since=${encodeURIComponent(since)}`);
        expect(response.status, `${path} ${since}`).toBe(400);
        expect(response.body.error.code, `${path} ${since}`).toBe("VALIDATION_FAILED");
        expect(response.body.error.message, `${path} ${since}`).toContain("since");
      }
      for (const since of ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "9999-12-31T23:00:00-00:59"]) {
        const response = await harness.api.get(`${path}?since=${encodeURIComponent(since)}`);
        expect(response.status, `${path} ${since}`).toBe(200);
      }
    }
  });
});

describe("the OpenAPI document", () => {
  it("still renders with the hardened schemas", async () => {
    const response = await fetch(`${harness.service.url}/openapi.json`);
    expect(response.status).toBe(200);
    const document = (await response.json()) as { paths: Record<string, unknown> };
    expect(document.paths["/api/v1/generate"]).toBeDefined();
  });
});
