import { configWith, type Config } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { startService, type RunningService } from "../../src/service.js";
import type { Resolver } from "../../src/delivery/address-policy.js";
import { createTenant, type CreatedTenant } from "../../src/tenants/tenant-service.js";
import type { TestDatabase } from "./database.js";

export const INTERNAL_TOKEN = "internal-test-token-0123456789abcdef";

/**
 * Test defaults: local receivers allowed, quick polling, no logs. Receivers that fail on purpose
 * never open their circuit (test/destinations.test.ts sets the threshold it tests).
 */
export function testConfig(databaseUrl: string, overrides: Partial<Config> = {}): Config {
  return configWith({
    DATABASE_URL: databaseUrl,
    PORT: 0,
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    INTERNAL_API_TOKEN: INTERNAL_TOKEN,
    WEBHOOK_ALLOW_INSECURE_URLS: true,
    WORKER_POLL_INTERVAL_MS: 50,
    DESTINATION_FAILURE_THRESHOLD: 1_000_000,
    ...overrides,
  });
}

export interface Harness {
  service: RunningService;
  config: Config;
  tenant: CreatedTenant;
  api: ApiClient;
  stop(): Promise<void>;
}

export async function startHarness(
  testDb: TestDatabase,
  overrides: Partial<Config> = {},
  parts: { api?: boolean; worker?: boolean; tenant?: CreatedTenant; resolver?: Resolver } = {},
): Promise<Harness> {
  const config = testConfig(testDb.url, overrides);
  const service = await startService({
    config,
    logger: createLogger(config.LOG_LEVEL, { secrets: [config.INTERNAL_API_TOKEN] }),
    api: parts.api ?? true,
    worker: parts.worker ?? true,
    migrate: false,
    resolver: parts.resolver,
  });
  const tenant = parts.tenant ?? (await createTenant(testDb.database, `tenant-${Math.random().toString(36).slice(2, 8)}`));
  return { service, tenant, config, api: new ApiClient(service.url ?? "", tenant.apiKey), stop: () => service.stop() };
}

export interface ApiResponse<T = any> { // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read JSON bodies freely
  status: number;
  headers: Headers;
  body: T;
}

/** A thin fetch wrapper for the service's HTTP API. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    readonly apiKey: string,
  ) {}

  withKey(apiKey: string): ApiClient {
    return new ApiClient(this.baseUrl, apiKey);
  }

  get(path: string): Promise<ApiResponse> {
    return this.request("GET", path, undefined, this.apiKey);
  }

  post(path: string, body?: unknown): Promise<ApiResponse> {
    return this.request("POST", path, body, this.apiKey);
  }

  internalPatch(path: string, body: unknown): Promise<ApiResponse> {
    return this.request("PATCH", path, body, INTERNAL_TOKEN);
  }

  /** Marks every project of a job with one terminal status. */
  async finishJob(jobId: string, projectCount: number, status: "completed" | "failed"): Promise<void> {
    for (let index = 0; index < projectCount; index++) {
      const body =
        status === "completed"
          ? { status, videoUrl: `https://cdn.example.com/${jobId}/${index}.mp4` }
          : { status, error: { code: "UNSAFE_CONTENT", message: "blocked by the safety filter" } };
      const response = await this.internalPatch(`/internal/v1/jobs/${jobId}/projects/${index}`, body);
      if (response.status !== 200) throw new Error(`finishJob: ${response.status} ${JSON.stringify(response.body)}`);
    }
  }

  async request(method: string, path: string, body: unknown, token: string, headers: Record<string, string> = {}): Promise<ApiResponse> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, headers: response.headers, body: parsed };
  }
}

/** Polls until `check` returns a value other than undefined; fails after a generous timeout. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 20_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
