import type { Resolver } from "../../src/delivery/address-policy.js";
import type { Config } from "../../src/config.js";
import type { CreatedTenant } from "../../src/tenants/tenant-service.js";
import type { TestDatabase } from "./database.js";
import { startHarness, type Harness } from "./harness.js";

type Answer = string[] | (() => string[]);

/**
 * An in-process DNS: names map to fixed answers (or a function, for answers that change between
 * calls); unknown names fail like NXDOMAIN. Every query is recorded. Nothing leaves the machine.
 */
export class FakeDns {
  readonly queries: string[] = [];
  private readonly answers = new Map<string, Answer>();

  constructor(entries: Record<string, Answer> = {}) {
    for (const [name, answer] of Object.entries(entries)) this.answers.set(name, answer);
  }

  set(name: string, answer: Answer): void {
    this.answers.set(name, answer);
  }

  readonly resolve: Resolver = async (hostname) => {
    this.queries.push(hostname);
    const answer = this.answers.get(hostname.replace(/\.$/, "").toLowerCase());
    if (answer === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return typeof answer === "function" ? answer() : answer;
  };
}

export type SecureService = Harness;

/**
 * A service with the production URL policy (https only, public addresses only, unless the
 * overrides say otherwise) and the fake DNS injected through startService's `resolver` option.
 */
export async function startSecureService(
  testDb: TestDatabase,
  dns: FakeDns,
  overrides: Partial<Config> = {},
  parts: { api?: boolean; worker?: boolean; tenant?: CreatedTenant } = {},
): Promise<SecureService> {
  return startHarness(testDb, { WEBHOOK_ALLOW_INSECURE_URLS: false, ...overrides }, { ...parts, resolver: dns.resolve });
}
