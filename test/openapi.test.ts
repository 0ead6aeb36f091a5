import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createConfig, lintFromString } from "@redocly/openapi-core";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../src/http/app.js";
import { JobCompletedWebhookSchema, VeoGenerationWebhookSchema, WEBHOOK_USER_AGENT_EXAMPLE } from "../src/http/webhooks-doc.js";
import { createLogger } from "../src/logger.js";
import { CHROMIUM } from "./support/chromium.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { INTERNAL_TOKEN, startHarness, type Harness } from "./support/harness.js";
import { Receiver, type ReceivedRequest } from "./support/receiver.js";

interface Parameter {
  in: string;
  name: string;
  required?: boolean;
  schema?: { pattern?: string; example?: string };
}
interface Operation {
  operationId?: string;
  tags?: string[];
  security?: Array<Record<string, string[]>>;
  requestBody?: { content: Record<string, unknown> };
  parameters?: Parameter[];
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
}
type OpenApiDocument = {
  openapi: string;
  servers?: Array<{ url: string }>;
  tags?: Array<{ name: string; description?: string }>;
  paths: Record<string, Record<string, Operation>>;
  webhooks?: Record<string, Record<string, Operation>>;
};

/** The Swagger UI page and its assets: served beside the API, not part of it. */
const isDocumentationPage = (route: string) => route === "GET /docs" || route.startsWith("GET /docs/");
const PUBLIC_ROUTES = ["GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json"];

let testDb: TestDatabase;
let harness: Harness;
let document: OpenApiDocument;
let operations: Array<{ method: string; path: string; operation: Operation }>;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb);
  const response = await fetch(`${harness.service.url}/openapi.json`);
  expect(response.status).toBe(200);
  document = (await response.json()) as OpenApiDocument;
  operations = Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({ method: method.toUpperCase(), path, operation })),
  );
});

afterAll(async () => {
  await harness?.stop();
  await testDb?.drop();
});

function concretePath(path: string): string {
  return path.replace(/\{(\w+)\}/g, (_match, name: string) => (name === "index" ? "0" : randomUUID()));
}

async function call(method: string, path: string, init: { token?: string; contentType?: string; body?: string } = {}) {
  const headers: Record<string, string> = {};
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.contentType) headers["content-type"] = init.contentType;
  const response = await fetch(`${harness.service.url}${path}`, { method, headers, body: init.body });
  return { status: response.status, body: await response.text() };
}

function tokenFor(operation: Operation): string | undefined {
  const scheme = Object.keys(operation.security?.[0] ?? {})[0];
  if (scheme === "bearerAuth") return harness.tenant.apiKey;
  if (scheme === "internalToken") return INTERNAL_TOKEN;
  return undefined;
}

describe("the OpenAPI document", () => {
  it("is OpenAPI 3.1 and documents every route the app serves", () => {
    expect(document.openapi).toBe("3.1.0");
    const app = createApp({
      database: testDb.database,
      jobService: harness.service.jobService,
      logger: createLogger("silent"),
      internalApiToken: INTERNAL_TOKEN,
      webhookHeaderPrefix: harness.config.WEBHOOK_HEADER_PREFIX,
    });
    const served = new Set(
      app.routes
        .filter((route) => route.method !== "ALL")
        .map((route) => `${route.method} ${route.path.replace(/:(\w+)/g, "{$1}")}`)
        .filter((route) => !isDocumentationPage(route)),
    );
    const documented = new Set(operations.map(({ method, path }) => `${method} ${path}`));
    expect(served.size).toBeGreaterThan(5);
    expect([...served].filter((route) => !documented.has(route))).toEqual([]);
    expect([...documented].filter((route) => !served.has(route))).toEqual([]);
  });

  it("gives every operation a success response and the error responses its shape implies, each with the error schema", () => {
    for (const { method, path, operation } of operations) {
      const statuses = Object.keys(operation.responses);
      const where = `${method} ${path}`;
      expect(statuses.some((status) => status.startsWith("2")), where).toBe(true);
      const expected: string[] = [];
      if (operation.security?.length) expected.push("401");
      if (operation.requestBody) expected.push("400", "413", "415");
      if (operation.parameters?.some((parameter) => parameter.in === "path")) expected.push("404");
      if (operation.parameters?.some((parameter) => parameter.in === "query")) expected.push("400");
      for (const status of expected) expect(statuses, `${where} documents ${status}`).toContain(status);
      for (const status of statuses.filter((candidate) => Number(candidate) >= 400)) {
        const schema = operation.responses[status]?.content?.["application/json"]?.schema;
        expect(schema?.$ref, `${where} ${status} uses the Error schema`).toBe("#/components/schemas/Error");
      }
    }
  });

  it("documents the statuses the routes really answer with when called wrongly", async () => {
    const problems: string[] = [];
    /** Every error a route answers must be documented; `mustFail` probes must also be refused. */
    const check = (method: string, path: string, operation: Operation, what: string, status: number, mustFail: boolean) => {
      if (status >= 400 && !(String(status) in operation.responses)) problems.push(`${method} ${path}: ${what} answered ${status}, not documented`);
      if (status >= 500) problems.push(`${method} ${path}: ${what} answered ${status}`);
      if (mustFail && status < 400) problems.push(`${method} ${path}: ${what} answered ${status}, expected an error`);
    };
    for (const { method, path, operation } of operations) {
      const url = concretePath(path);
      const token = tokenFor(operation);
      const json = { token, contentType: "application/json" };
      if (operation.security?.length) {
        const response = await call(method, url, operation.requestBody ? { contentType: "application/json", body: "{}" } : {});
        check(method, path, operation, "no credentials", response.status, true);
      }
      if (operation.requestBody) {
        check(method, path, operation, "text/plain body", (await call(method, url, { token, contentType: "text/plain", body: "x" })).status, true);
        check(method, path, operation, "malformed JSON", (await call(method, url, { ...json, body: "{" })).status, true);
        check(method, path, operation, "oversized body", (await call(method, url, { ...json, body: `"${"x".repeat(70_000)}"` })).status, true);
        check(method, path, operation, "wrong fields", (await call(method, url, { ...json, body: '{"unknown":1}' })).status, false);
      } else if (operation.parameters?.some((parameter) => parameter.in === "path")) {
        check(method, path, operation, "unknown id", (await call(method, url, { token })).status, false);
      }
      if (operation.parameters?.some((parameter) => parameter.in === "query")) {
        check(method, path, operation, "bad query", (await call(method, `${url}?limit=-5`, { token })).status, false);
      }
    }
    expect(problems).toEqual([]);
  });

  it("gives every operation a unique operationId and a tag the document defines", () => {
    const defined = new Set(document.tags?.map((tag) => tag.name));
    const webhookOperations = Object.values(document.webhooks ?? {}).flatMap((methods) => Object.values(methods));
    const all = [...operations.map(({ operation }) => operation), ...webhookOperations];
    const ids = all.map((operation) => operation.operationId);
    expect(ids.every((id) => typeof id === "string" && id.length > 0), JSON.stringify(ids)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const operation of all) {
      expect(operation.tags?.length, operation.operationId).toBeGreaterThan(0);
      for (const tag of operation.tags ?? []) expect(defined, `${operation.operationId}: tag ${tag}`).toContain(tag);
    }
    expect(document.tags?.every((tag) => tag.description)).toBe(true);
  });

  it("names its server, and declares the public routes public (security: [])", () => {
    expect(document.servers?.length).toBeGreaterThan(0);
    for (const { method, path, operation } of operations) {
      const route = `${method} ${path}`;
      expect(operation.security, `${route} declares its security`).toBeDefined();
      if (PUBLIC_ROUTES.includes(route)) expect(operation.security, route).toEqual([]);
      else expect(operation.security?.length, route).toBeGreaterThan(0);
    }
    expect(operations.map(({ method, path }) => `${method} ${path}`)).toEqual(expect.arrayContaining(PUBLIC_ROUTES));
  });

  it("passes Redocly's recommended ruleset with no errors", async () => {
    const source = await (await fetch(`${harness.service.url}/openapi.json`)).text();
    const config = await createConfig({ extends: ["recommended"] });
    const problems = await lintFromString({ source, absoluteRef: `${harness.service.url}/openapi.json`, config });
    const show = (problem: (typeof problems)[number]) =>
      `${problem.ruleId} ${problem.location[0]?.pointer ?? ""}: ${problem.message}`;
    expect(problems.filter((problem) => problem.severity === "error").map(show)).toEqual([]);
    // The warnings left are not defects: the project states no licence, and the health, metrics
    // and document routes never answer a 4xx (they have no input and need no credentials).
    const accepted = new Set([
      "info-license #/info",
      ...PUBLIC_ROUTES.map((route) => {
        const [method = "", path = ""] = route.split(" ");
        return `operation-4xx-response #/paths/${path.replaceAll("/", "~1")}/${method.toLowerCase()}/responses`;
      }),
    ]);
    const warnings = problems.filter((problem) => problem.severity === "warn");
    expect(warnings.map(show).filter((text) => !accepted.has(text.split(":")[0] ?? ""))).toEqual([]);
  });
});

describe("the webhooks section", () => {
  let receiver: Receiver;
  let nouvel: ReceivedRequest;
  let veo: ReceivedRequest;

  beforeAll(async () => {
    receiver = await Receiver.start();
    const job = await harness.api.post("/api/v1/generate", { prompt: "two clips", projectCount: 2, webhookUrl: receiver.url });
    expect(job.status).toBe(202);
    const jobId = job.body.jobId as string;
    await harness.api.internalPatch(`/internal/v1/jobs/${jobId}/projects/0`, { status: "completed", videoUrl: "https://cdn.example.com/a.mp4" });
    await harness.api.internalPatch(`/internal/v1/jobs/${jobId}/projects/1`, { status: "failed", error: { code: "UNSAFE_CONTENT", message: "blocked" } });
    const generation = await harness.api.post("/v1/veo/generate", { prompt: "a sunset", callback_url: receiver.url });
    expect(generation.status).toBe(202);
    const generationId = generation.body.generation_id as string;
    await harness.api.internalPatch(`/internal/v1/jobs/${generationId}/projects/0`, { status: "completed", videoUrl: "https://cdn.example.com/b.mp4" });
    const requests = await receiver.waitForRequests(2);
    const byBody = (key: string) => requests.find((request) => key in (JSON.parse(request.body) as object));
    nouvel = byBody("jobId") as ReceivedRequest;
    veo = byBody("generation_id") as ReceivedRequest;
    expect(nouvel).toBeDefined();
    expect(veo).toBeDefined();
  });

  afterAll(async () => {
    await receiver?.close();
  });

  const webhook = (name: string): Operation => {
    const operation = document.webhooks?.[name]?.post;
    expect(operation, `webhooks.${name}.post`).toBeDefined();
    return operation as Operation;
  };

  it("describes both bodies: real deliveries parse under the documented, strict schemas", () => {
    expect(JobCompletedWebhookSchema.safeParse(JSON.parse(nouvel.body)).error).toBeUndefined();
    expect(VeoGenerationWebhookSchema.safeParse(JSON.parse(veo.body)).error).toBeUndefined();
    expect(JSON.parse(nouvel.body)).toMatchObject({ status: "partial", completedProjects: 1, failedProjects: 1 });
    const bodySchema = (name: string) =>
      (webhook(name).requestBody?.content["application/json"] as { schema?: { $ref?: string } } | undefined)?.schema?.$ref;
    expect(bodySchema("jobCompleted")).toBe("#/components/schemas/JobCompletedWebhook");
    expect(bodySchema("veoGeneration")).toBe("#/components/schemas/VeoGenerationWebhook");
  });

  it("documents every header the sender sets, each matching its documented pattern", () => {
    /** Set by HTTP itself, not by the sender. */
    const transport = new Set(["host", "connection", "content-length", "transfer-encoding", "keep-alive"]);
    for (const [name, request] of [["jobCompleted", nouvel], ["veoGeneration", veo]] as const) {
      const operation = webhook(name);
      const documented = new Map(
        (operation.parameters ?? []).filter((parameter) => parameter.in === "header").map((parameter) => [parameter.name.toLowerCase(), parameter]),
      );
      const sent = Object.keys(request.headers).filter((header) => !transport.has(header));
      expect(sent).toContain("x-webhook-signature");
      for (const header of sent) {
        const value = String(request.headers[header]);
        if (header === "content-type") {
          expect(Object.keys(operation.requestBody?.content ?? {}), name).toContain(value.split(";")[0]);
          continue;
        }
        const parameter = documented.get(header);
        expect(parameter, `${name}: ${header} is documented`).toBeDefined();
        if (parameter?.schema?.pattern) expect(value, `${name}: ${header}`).toMatch(new RegExp(parameter.schema.pattern));
      }
      for (const [header, parameter] of documented) {
        if (parameter.required) expect(sent, `${name}: documented ${header} is sent`).toContain(header);
      }
      expect(request.headers["user-agent"]).toBe(WEBHOOK_USER_AGENT_EXAMPLE);
    }
  });
});

describe("/docs", () => {
  const get = (path: string) => fetch(`${harness.service.url}${path}`);

  it("serves Swagger UI for /openapi.json from this process, every asset it references answering 200", async () => {
    const response = await get("/docs");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/html");
    const html = await response.text();
    const references = [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((match) => match[1] ?? "");
    expect(references.length).toBeGreaterThanOrEqual(3);
    const assets = [...references];
    for (const reference of references) {
      expect(reference, "a path on this service").toMatch(/^\/(?!\/)/);
      const asset = await get(reference);
      expect(asset.status, reference).toBe(200);
      const text = reference.endsWith(".js") || reference.endsWith(".css") ? await asset.text() : "";
      const map = /[#@] sourceMappingURL=([^\s*]+)/.exec(text)?.[1];
      if (map) assets.push(new URL(map, `${harness.service.url}${reference}`).pathname);
    }
    for (const path of assets.slice(references.length)) expect((await get(path)).status, path).toBe(200);
    const init = await (await get("/docs/init.js")).text();
    expect(references).toContain("/docs/init.js");
    expect(init).toContain('url: "/openapi.json"');
    // The validator badge would send the document to an outside service.
    expect(init).toContain("validatorUrl: null");
    for (const text of [html, init]) expect(text).not.toMatch(/https?:|\/\/[a-z]/i);
  });

  it("serves the swagger-ui-dist files the lockfile pins, byte for byte", async () => {
    const directory = createRequire(import.meta.url).resolve("swagger-ui-dist/package.json").replace(/package\.json$/, "");
    for (const name of ["swagger-ui-bundle.js", "swagger-ui.css"]) {
      const served = Buffer.from(await (await get(`/docs/${name}`)).arrayBuffer());
      expect(served.equals(readFileSync(`${directory}${name}`)), name).toBe(true);
    }
  });

  it.skipIf(!CHROMIUM)(
    `renders every operation in a real browser that can reach nothing but the service${CHROMIUM ? "" : " (skipped: no Chromium on this machine)"}`,
    async () => {
      // Every other host fails to resolve: the page must need nothing from the network. What the page
      // requests is read from the page itself, not from a net log, which also holds the browser's own
      // background traffic (component updates, time sync), none of it the page's.
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
      });
      try {
        const page = await browser.newPage();
        const requested = new Set<string>();
        page.on("request", (request) => requested.add(request.url()));
        await page.goto(`${harness.service.url}/docs`, { waitUntil: "networkidle" });
        const webhookIds = Object.values(document.webhooks ?? {}).flatMap((methods) => Object.values(methods).map((operation) => operation.operationId));
        const ids = [...operations.map(({ operation }) => operation.operationId), ...webhookIds];
        // Swagger UI renders after its scripts ran: wait (bounded) until no operation is missing from the page.
        const missing = async () => {
          const dom = await page.content();
          return ids.filter((id) => !dom.includes(id ?? ""));
        };
        await expect.poll(missing, { timeout: 30_000 }).toEqual([]);
        expect(requested).toContain(`${harness.service.url}/openapi.json`);
        expect([...requested].filter((url) => !url.startsWith(`${harness.service.url}/`))).toEqual([]);
      } finally {
        await browser.close();
      }
    },
    90_000,
  );

  it("tells the browser to load nothing from elsewhere, and serves no other file", async () => {
    for (const path of ["/docs", "/docs/init.js", "/docs/swagger-ui-bundle.js"]) {
      const policy = (await get(path)).headers.get("content-security-policy") ?? "";
      expect(policy, path).toContain("default-src 'self'");
      expect(policy, path).toContain("connect-src 'self'");
      expect(policy, path).not.toMatch(/https?:|\*/);
    }
    for (const path of ["/docs/package.json", "/docs/index.html", "/docs/..%2Fpackage.json", "/docs/swagger-initializer.js"]) {
      const response = await get(path);
      expect(response.status, path).toBe(404);
      expect(await response.json()).toMatchObject({ error: { code: "NOT_FOUND" } });
    }
  });
});
