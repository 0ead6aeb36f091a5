import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { FakeDns } from "./support/fake-dns.js";
import { INTERNAL_TOKEN, startHarness, type Harness } from "./support/harness.js";

/*
 * Generated requests against every route of a running service (real HTTP, real Postgres), with the
 * production URL policy and an in-process DNS. After each request: never a 5xx (the database is
 * up throughout), a refused request changed no row, and the rows keep their invariants.
 */

let testDb: TestDatabase;
let harness: Harness;
/** Jobs and deliveries that exist, so generated paths and reports hit real rows as often as not. */
const jobIds: string[] = [];
const deliveryIds: string[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase();
  const dns = new FakeDns({ "hooks.example.com": ["93.184.216.34"], "internal.example.com": ["10.0.0.7"] });
  // The worker is off: the rows change only through the requests under test.
  harness = await startHarness(testDb, { WEBHOOK_ALLOW_INSECURE_URLS: false }, { worker: false, resolver: dns.resolve });
  for (const projectCount of [1, 2, 3]) {
    const created = await harness.api.post("/api/v1/generate", {
      prompt: "seed job",
      projectCount,
      webhookUrl: "https://hooks.example.com/seed",
    });
    jobIds.push(created.body.jobId);
  }
  await harness.api.finishJob(jobIds[0] ?? "", 1, "completed");
  await refreshDeliveries();
});

afterAll(async () => {
  await harness?.stop();
  await testDb?.drop();
});

async function refreshDeliveries(): Promise<void> {
  const rows = await testDb.database.query<{ id: string }>("select id from webhook_outbox.webhook_deliveries order by created_at");
  deliveryIds.splice(0, deliveryIds.length, ...rows.map((row) => row.id));
}

// ---------- text --------------------------------------------------------------------------------

/** Single UTF-16 code units, so unpaired surrogates come up (fast-check's "binary" unit never makes them). */
const codeUnit = fc.nat(0xffff).map((unit) => String.fromCharCode(unit));
const nasty = fc.constantFrom(
  "\u0000",
  "\uD83D",
  "\uDE00",
  "a\uD83Db",
  "\uDE00\uD83D",
  "\u{1F4A5}",
  "\uFFFF",
  "\uFEFF",
  "%00",
  "' or 1=1 --",
  "\\",
  '"',
  "null",
  "",
  " ",
  "\t\r\n",
  "..",
  "1e309",
  "-1",
  "9007199254740993",
);
const hostileText = fc.oneof(
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: codeUnit, maxLength: 12 }) },
  { weight: 3, arbitrary: nasty },
  { weight: 3, arbitrary: fc.tuple(fc.string({ maxLength: 8 }), nasty, fc.string({ maxLength: 8 })).map((parts) => parts.join("")) },
);
/** Any JSON value, hostile strings included. */
const anyJson = fc.oneof(
  { depthSize: "small" },
  hostileText,
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, true, 0, -1, 1.5, 1e308, Number.MAX_SAFE_INTEGER),
);
/** Mostly plausible values of a field, sometimes anything. */
const field = <T>(plausible: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: plausible }, { weight: 1, arbitrary: anyJson });

// ---------- URLs ---------------------------------------------------------------------------------

/** Percent-encodes every byte of the text's UTF-8 (an unpaired surrogate becomes U+FFFD, as on the wire). */
function percentEncoded(text: string): string {
  let encoded = "";
  for (const byte of Buffer.from(text, "utf8")) {
    const char = String.fromCharCode(byte);
    encoded += /[A-Za-z0-9._~-]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return encoded;
}

/** A path segment or query value as it goes on the wire: encoded text, or raw sequences that do not decode. */
const wireText = fc.oneof(
  { weight: 4, arbitrary: hostileText.map(percentEncoded) },
  { weight: 1, arbitrary: fc.constantFrom("%ED%A0%BD", "%C0%80", "%FF", "%", "%zz", "%2F", "..", "%252e", ";x=1") },
);

type Ref = { kind: "known"; pick: number } | { kind: "text"; value: string };
const ref: fc.Arbitrary<Ref> = fc.oneof(
  { weight: 3, arbitrary: fc.nat().map((pick) => ({ kind: "known" as const, pick })) },
  { weight: 1, arbitrary: fc.uuid().map((value) => ({ kind: "text" as const, value })) },
  { weight: 2, arbitrary: wireText.map((value) => ({ kind: "text" as const, value })) },
);
/** A known id, counted from the newest (fast-check favours small numbers), or the generated text. */
const resolve = (reference: Ref, known: string[]): string =>
  reference.kind === "known" ? (known[known.length - 1 - (reference.pick % Math.max(known.length, 1))] ?? "none") : reference.value;

const instantText = fc.oneof(
  fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
  fc.date({ noInvalidDate: true, min: new Date("0001-01-01"), max: new Date("9999-12-31") }).map((date) => date.toISOString()),
  fc.constantFrom("0000-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "2024-02-30T00:00:00Z", "yesterday"),
);
const cursorText = fc.oneof(
  fc.tuple(instantText, fc.oneof(fc.uuid(), hostileText)).map(([iso, id]) => Buffer.from(`${iso}|${id}`).toString("base64url")),
  hostileText,
);
const queryPair = fc.oneof(
  fc.tuple(fc.constant("status"), fc.oneof(fc.constantFrom("queued", "completed", "failed", "pending", "succeeded"), hostileText)),
  fc.tuple(fc.constant("since"), fc.oneof(instantText, hostileText)),
  fc.tuple(fc.constant("limit"), fc.oneof(fc.integer({ min: -5, max: 150 }).map(String), hostileText)),
  fc.tuple(fc.constant("cursor"), cursorText),
  fc.tuple(hostileText, hostileText),
);
const queryString = fc
  .tuple(fc.array(queryPair, { maxLength: 4 }), fc.option(wireText))
  .map(([pairs, raw]) =>
    [...pairs.map(([key, value]) => `${percentEncoded(key)}=${percentEncoded(value)}`), ...(raw === null ? [] : [`cursor=${raw}`])].join("&"),
  );

// ---------- headers ------------------------------------------------------------------------------

/** Header values fetch can send: bytes 0x20-0xFF but DEL, no CR, LF or NUL. */
const headerValue = fc.string({
  unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff })).map((code) => String.fromCharCode(code)),
  maxLength: 40,
});
const extraHeaders = fc.dictionary(
  fc.oneof(
    fc.constantFrom("x-request-id", "content-type", "accept", "idempotency-key", "x-forwarded-for", "content-encoding", "accept-encoding"),
    fc.stringMatching(/^x-[a-z0-9-]{1,12}$/),
  ),
  headerValue,
  { maxKeys: 3 },
);
type Credential = "api" | "internal" | "bad" | "none";
const credential = (usual: Credential) =>
  fc.oneof({ weight: 8, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: fc.constantFrom<Credential>("api", "internal", "bad", "none") });

// ---------- requests -----------------------------------------------------------------------------

type Body = { json: unknown } | { raw: Uint8Array } | undefined;
interface Generated {
  method: string;
  path: (known: { jobs: string[]; deliveries: string[] }) => string;
  credential: Credential;
  headers: Record<string, string>;
  body: Body;
  /** What a 2xx must have created: a job of this many projects. */
  creates?: number;
}

const jsonBody = (object: fc.Arbitrary<unknown>): fc.Arbitrary<Body> =>
  fc.oneof(
    { weight: 8, arbitrary: object.map((json) => ({ json })) },
    { weight: 1, arbitrary: anyJson.map((json) => ({ json })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((raw) => ({ raw })) },
  );

const webhookUrl = fc.oneof(
  { weight: 4, arbitrary: fc.constant("https://hooks.example.com/in") },
  fc.constantFrom("https://hooks.example.com/in", "https://internal.example.com/in", "https://unknown.example.com/x", "http://hooks.example.com/in", "https://10.0.0.1/in", "https://[::1]/in"),
  hostileText.map((text) => `https://hooks.example.com/${text}`),
  hostileText.map((text) => `https://hooks.example.com/in?token=${text}`),
  hostileText,
);
const prompt = fc.oneof(
  { weight: 4, arbitrary: fc.constant("a cat on a skateboard") },
  { weight: 2, arbitrary: hostileText },
  { weight: 1, arbitrary: fc.constant("p".repeat(4001)) },
);
/** Now and then a key the schema does not know. */
const withExtra = (object: fc.Arbitrary<Record<string, unknown>>) =>
  fc
    .tuple(object, fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.tuple(hostileText, anyJson) }))
    .map(([fields, extra]) => (extra === null ? fields : { ...fields, [extra[0]]: extra[1] }));

/** A request a customer would send, its text now and then hostile. */
const plausibleGenerate = fc
  .record(
    {
      prompt,
      projectCount: fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) }),
      webhookUrl: fc.oneof({ weight: 3, arbitrary: fc.constant("https://hooks.example.com/in") }, { weight: 1, arbitrary: webhookUrl }),
    },
    { requiredKeys: ["prompt", "webhookUrl"] },
  )
  .map((json): Body => ({ json }));

const generate = fc
  .record({
    body: fc.oneof(
      { weight: 2, arbitrary: plausibleGenerate },
      {
        weight: 1,
        arbitrary: jsonBody(
          withExtra(
        fc.record(
          { prompt: field(prompt), projectCount: field(fc.integer({ min: -1, max: 22 })), webhookUrl: field(webhookUrl) },
          { requiredKeys: ["prompt"] },
        ),
          ),
        ),
      },
    ),
    credential: credential("api"),
    headers: extraHeaders,
  })
  .map(({ body, credential, headers }): Generated => {
    const requested = body && "json" in body ? (body.json as { projectCount?: unknown } | null)?.projectCount : undefined;
    return {
      method: "POST",
      path: () => "/api/v1/generate",
      credential,
      headers,
      body,
      creates: requested === undefined ? 1 : typeof requested === "number" ? requested : undefined,
    };
  });

const veoGenerate = fc
  .record({
    body: jsonBody(
      withExtra(
        fc.record(
          { prompt: field(prompt), callback_url: field(webhookUrl), seed: field(fc.integer({ min: -1, max: 2 ** 33 })) },
          { requiredKeys: ["prompt"] },
        ),
      ),
    ),
    credential: credential("api"),
    headers: extraHeaders,
  })
  .map(({ body, credential, headers }): Generated => ({ method: "POST", path: () => "/v1/veo/generate", credential, headers, body, creates: 1 }));

const videoUrl = fc.oneof(fc.constant("https://cdn.example.com/v.mp4"), hostileText.map((text) => `https://cdn.example.com/${text}`));

const report = fc
  .record({
    job: ref,
    // Most jobs have one project: index 0 most often, so reports finish jobs.
    index: fc.oneof(
      { weight: 5, arbitrary: fc.constant("0") },
      { weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }).map(String) },
      { weight: 1, arbitrary: wireText },
    ),
    body: fc.oneof(
      // A report the backend would send, its text now and then hostile.
      {
        weight: 3,
        arbitrary: fc
          .oneof(
            fc.record({ status: fc.constant("processing") }),
            fc.record({ status: fc.constant("completed"), videoUrl: fc.oneof({ weight: 4, arbitrary: fc.constant("https://cdn.example.com/v.mp4") }, { weight: 1, arbitrary: videoUrl }) }),
            fc.record(
              { status: fc.constant("failed"), error: fc.record({ code: fc.oneof({ weight: 4, arbitrary: fc.constant("UNSAFE_CONTENT") }, { weight: 1, arbitrary: hostileText }), message: hostileText }, { requiredKeys: ["code"] }) },
              { requiredKeys: ["status"] },
            ),
          )
          .map((json): Body => ({ json })),
      },
      // Any mix of plausible and implausible fields.
      {
        weight: 2,
        arbitrary: jsonBody(
          withExtra(
            fc.record(
              {
                status: field(fc.constantFrom("processing", "completed", "failed", "queued")),
                videoUrl: field(videoUrl),
                seed: field(fc.integer({ min: -1, max: 2 ** 40 })),
                error: field(fc.record({ code: field(fc.oneof(fc.constant("UNSAFE_CONTENT"), hostileText)), message: field(hostileText) }, { requiredKeys: [] })),
              },
              { requiredKeys: ["status"] },
            ),
          ),
        ),
      },
    ),
    credential: credential("internal"),
    headers: extraHeaders,
  })
  .map(({ job, index, body, credential, headers }): Generated => ({
    method: "PATCH",
    path: (known) => `/internal/v1/jobs/${resolve(job, known.jobs)}/projects/${index}`,
    credential,
    headers,
    body,
  }));

const read = (template: (id: string) => string, pool: "jobs" | "deliveries", method = "GET") =>
  fc
    .record({ id: ref, query: fc.option(queryString), credential: credential("api"), headers: extraHeaders })
    .map(({ id, query, credential, headers }): Generated => ({
      method,
      path: (known) => `${template(resolve(id, known[pool]))}${query === null ? "" : `?${query}`}`,
      credential,
      headers,
      body: undefined,
    }));

/** A list query a client would send, its values now and then out of range. */
const plausibleQuery = fc
  .record(
    {
      status: fc.constantFrom("queued", "completed", "failed", "pending", "succeeded"),
      since: instantText,
      limit: fc.integer({ min: 1, max: 100 }).map(String),
      cursor: cursorText,
    },
    { requiredKeys: [] },
  )
  .map((query) =>
    Object.entries(query)
      .map(([key, value]) => `${key}=${percentEncoded(value)}`)
      .join("&"),
  );

const list = (path: string) =>
  fc
    .record({
      query: fc.oneof({ weight: 2, arbitrary: plausibleQuery }, { weight: 1, arbitrary: queryString }),
      credential: credential("api"),
      headers: extraHeaders,
    })
    .map(({ query, credential, headers }): Generated => ({ method: "GET", path: () => `${path}?${query}`, credential, headers, body: undefined }));

const operations = fc
  .record({
    path: fc.constantFrom("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"),
    query: fc.option(queryString),
    credential: fc.constantFrom<Credential>("none", "bad", "api"),
    headers: extraHeaders,
  })
  .map(({ path, query, credential, headers }): Generated => ({
    method: "GET",
    path: () => `${path}${query === null ? "" : `?${query}`}`,
    credential,
    headers,
    body: undefined,
  }));

const anywhere = fc
  .record({
    method: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"),
    segments: fc.array(fc.oneof(fc.constantFrom("api", "v1", "internal", "jobs", "projects", "deliveries", "veo"), wireText), { maxLength: 5 }),
    body: fc.option(jsonBody(anyJson), { nil: undefined }),
    credential: fc.constantFrom<Credential>("api", "internal", "bad", "none"),
    headers: extraHeaders,
  })
  .map(({ method, segments, body, credential, headers }): Generated => ({
    method,
    path: () => `/${segments.join("/")}`,
    credential,
    headers,
    body: method === "GET" || method === "HEAD" ? undefined : body,
  }));

const anyRequest = fc.oneof(
  { weight: 3, arbitrary: generate },
  { weight: 2, arbitrary: veoGenerate },
  { weight: 6, arbitrary: report },
  { weight: 1, arbitrary: read((id) => `/api/v1/jobs/${id}`, "jobs") },
  { weight: 1, arbitrary: read((id) => `/api/v1/jobs/${id}/deliveries`, "jobs") },
  { weight: 1, arbitrary: read((id) => `/v1/veo/generations/${id}`, "jobs") },
  { weight: 1, arbitrary: read((id) => `/api/v1/deliveries/${id}/redeliver`, "deliveries", "POST") },
  { weight: 2, arbitrary: list("/api/v1/jobs") },
  { weight: 2, arbitrary: list("/api/v1/deliveries") },
  { weight: 1, arbitrary: operations },
  { weight: 1, arbitrary: anywhere },
);

// ---------- the checks ---------------------------------------------------------------------------

/** Every row a request could write, in one text: equal before and after = nothing was written. */
async function digest(): Promise<string> {
  const rows = await testDb.database.query<{ digest: string }>(`
    select md5(coalesce(string_agg(row, E'\\n' order by row), '')) as digest from (
      select j::text as row from webhook_outbox.jobs j
      union all select p::text from webhook_outbox.job_projects p
      union all select d::text from webhook_outbox.webhook_deliveries d
      union all select a::text from webhook_outbox.webhook_delivery_attempts a
    ) everything`);
  return rows[0]?.digest ?? "";
}

/** The rows' invariants, each as a count of rows that break it. */
async function broken(): Promise<Record<string, number>> {
  const [row] = await testDb.database.query<Record<string, number>>(`
    select
      (select count(*)::int from webhook_outbox.jobs j where not exists (select 1 from webhook_outbox.job_projects p where p.job_id = j.id)) as "job without projects",
      (select count(*)::int from (select job_id from webhook_outbox.job_projects group by job_id having max(index) + 1 <> count(*)) gaps)
        as "projects not numbered 0..n-1",
      (select count(*)::int from webhook_outbox.jobs j where (j.status in ('completed', 'partial', 'failed')) <> not exists (
        select 1 from webhook_outbox.job_projects p where p.job_id = j.id and p.status not in ('completed', 'failed'))) as "job status disagrees with its projects",
      (select count(*)::int from webhook_outbox.jobs j where j.status in ('completed', 'partial', 'failed') and j.webhook_url is not null
        and not exists (select 1 from webhook_outbox.webhook_deliveries d where d.job_id = j.id)) as "terminal job without its delivery",
      (select count(*)::int from webhook_outbox.jobs j where j.status in ('queued', 'processing')
        and exists (select 1 from webhook_outbox.webhook_deliveries d where d.job_id = j.id)) as "open job with a delivery",
      (select count(*)::int from (select job_id from webhook_outbox.webhook_deliveries where job_id is not null group by job_id, event_type having count(*) > 1) twice)
        as "two deliveries of one event"`);
  return row ?? {};
}

const CLEAN = {
  "job without projects": 0,
  "projects not numbered 0..n-1": 0,
  "job status disagrees with its projects": 0,
  "terminal job without its delivery": 0,
  "open job with a delivery": 0,
  "two deliveries of one event": 0,
};

async function send(request: Generated): Promise<{ status: number; text: string; path: string; type: string }> {
  const path = request.path({ jobs: jobIds, deliveries: deliveryIds });
  const token = { api: harness.tenant.apiKey, internal: INTERNAL_TOKEN, bad: "wo_notakey", none: undefined }[request.credential];
  const headers: Record<string, string> = { ...request.headers };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  let body: string | Uint8Array | undefined;
  if (request.body && "json" in request.body) {
    body = JSON.stringify(request.body.json) ?? "null";
    headers["content-type"] ??= "application/json";
  } else if (request.body) {
    body = request.body.raw;
    headers["content-type"] ??= "application/json";
  }
  const response = await fetch(`${harness.service.url}${path}`, { method: request.method, headers, body });
  return { status: response.status, text: await response.text(), path, type: response.headers.get("content-type") ?? "" };
}

describe("every route, given generated requests", () => {
  it("never answers 5xx, writes nothing when it refuses, and keeps every row whole", async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(anyRequest, async (request) => {
        const before = await digest();
        const response = await send(request);
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        const what = `${request.method} ${response.path} → ${response.status} ${response.text.slice(0, 300)}`;

        expect(response.status, what).toBeLessThan(500);
        if (response.status >= 400) {
          expect(await digest(), `${what}: a refused request wrote`).toBe(before);
          if (response.type.includes("json") && request.method !== "HEAD") {
            const error = (JSON.parse(response.text) as { error?: { code?: unknown; message?: unknown } }).error;
            expect(typeof error?.code === "string" && typeof error.message === "string", `${what}: error shape`).toBe(true);
          }
        } else if (request.creates !== undefined && response.status === 202) {
          const body = JSON.parse(response.text) as { jobId?: string; generation_id?: string };
          const id = body.jobId ?? body.generation_id ?? "";
          jobIds.push(id);
          const [projects] = await testDb.database.query<{ n: number }>("select count(*)::int as n from webhook_outbox.job_projects where job_id = $1", [id]);
          expect(projects?.n, `${what}: projects of the new job`).toBe(request.creates);
        }
        if (request.method === "PATCH" && response.status === 200) await refreshDeliveries();
        expect(await broken(), what).toEqual(CLEAN);
      }),
      { numRuns: 700, seed: seedFromEnvironment() },
    );
    // The run reached the routes' insides, not only their refusals.
    expect(statuses.get(200) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(20);
    expect(statuses.get(202) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(10);
    expect(statuses.get(400) ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(50);
    const [terminal] = await testDb.database.query<{ n: number }>(
      "select count(*)::int as n from webhook_outbox.jobs where status in ('completed', 'partial', 'failed') and webhook_url is not null",
    );
    expect(terminal?.n, "terminal jobs with a webhook URL").toBeGreaterThan(5);
  });
});

/**
 * One fixed seed, so every run sends the same requests (a test that passes sometimes is a bug);
 * PROPERTY_SEED=<n> explores other inputs, and replays the seed fast-check prints on a failure.
 */
function seedFromEnvironment(): number {
  const seed = Number(process.env.PROPERTY_SEED);
  return Number.isInteger(seed) && process.env.PROPERTY_SEED !== "" ? seed : 20_240_917;
}
