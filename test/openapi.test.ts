import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../src/http/app.js";
import { createLogger } from "../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { INTERNAL_TOKEN, startHarness, type Harness } from "./support/harness.js";

interface Operation {
  security?: Array<Record<string, string[]>>;
  requestBody?: unknown;
  parameters?: Array<{ in: string; name: string }>;
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
}
type OpenApiDocument = { openapi: string; paths: Record<string, Record<string, Operation>> };

/** Served beside the API but not part of it. */
const DOCUMENTATION_ROUTES = new Set(["GET /openapi.json", "GET /docs"]);

let testDb: TestDatabase;
let harness: Harness;
let document: OpenApiDocument;
let operations: Array<{ method: string; path: string; operation: Operation }>;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb, {}, { worker: false });
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
    });
    const served = new Set(
      app.routes
        .filter((route) => route.method !== "ALL")
        .map((route) => `${route.method} ${route.path.replace(/:(\w+)/g, "{$1}")}`)
        .filter((route) => !DOCUMENTATION_ROUTES.has(route)),
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
      if (operation.security) expected.push("401");
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
      if (operation.security) {
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

  it("is browsable at /docs", async () => {
    const response = await fetch(`${harness.service.url}/docs`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/html");
    const html = await response.text();
    expect(html).toContain("SwaggerUIBundle");
    expect(html).toContain("/openapi.json");
  });
});
