import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, configSchema, loadConfig } from "../src/config.js";
import { spawnCli } from "./support/processes.js";

/**
 * The rows of docs/configuration.md's tables: variable → default as written ("unset" = none, "empty" = "").
 * Every row is kept, so a variable listed twice shows up as a duplicate.
 */
function documentedConfigRows(): Array<[string, string]> {
  const page = readFileSync(new URL("../docs/configuration.md", import.meta.url), "utf8");
  const rows: Array<[string, string]> = [];
  for (const line of page.split("\n")) {
    const match = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*([^|]*?)\s*\|/.exec(line);
    if (match?.[1] && match[2] !== undefined) rows.push([match[1], match[2].replace(/^`|`$/g, "")]);
  }
  return rows;
}

describe("the configuration reference (docs/configuration.md)", () => {
  const rows = documentedConfigRows();
  const table = new Map(rows);
  const defaults = configSchema.parse({});

  it("lists every variable of configSchema once, and nothing else", () => {
    expect(rows.map(([name]) => name).sort()).toEqual(Object.keys(configSchema.shape).sort());
  });

  it("gives each variable the default the schema applies", () => {
    for (const [name, written] of table) {
      const key = name as keyof typeof defaults;
      if (written === "unset") {
        expect(defaults[key], `${name} has no default`).toBeUndefined();
      } else {
        // The written default, parsed as if it were set, must equal what an unset variable becomes.
        const value = written === "empty" ? "" : written;
        expect(configSchema.parse({ [name]: value })[key], `${name} defaults to ${written}`).toEqual(defaults[key]);
      }
    }
  });
});

/** The ConfigError that loadConfig throws for `env`; fails the test when it throws none or another. */
function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(Object.keys(env))}`);
}

describe("configuration errors", () => {
  it("names every bad variable with the value it got", () => {
    const problems = configError({ PORT: "http", WEBHOOK_RETRY_DELAYS: "0,soon", DATABASE_URL: "", LOG_LEVEL: "loud" }).problems;
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/^PORT: .*\(got "http"\)$/);
    expect(problems.find((problem) => problem.startsWith("WEBHOOK_RETRY_DELAYS:"))).toContain('"0,soon"');
    expect(problems.find((problem) => problem.startsWith("LOG_LEVEL:"))).toContain('"loud"');
  });

  it("refuses a short hand-set secret without showing it, and takes one of 32 characters", () => {
    for (const name of ["INTERNAL_API_TOKEN", "DASHBOARD_SESSION_SECRET"] as const) {
      const short = "s3cr3t-".repeat(5).slice(0, 31);
      const error = configError({ [name]: short });
      expect(error.problems).toEqual([`${name}: must be at least 32 characters (e.g. openssl rand -hex 32) (got hidden)`]);
      expect(error.message).not.toContain(short);
      expect(loadConfig({ [name]: `${short}x` })[name]).toBe(`${short}x`);
      expect(loadConfig({ [name]: "" })[name]).toBeUndefined();
    }
  });

  it("stops the start with exit code 1 and one line naming the bad variable", async () => {
    const child = spawnCli(["serve"], { PORT: "not-a-port", LOG_LEVEL: "silent" });
    expect(await child.exited).toBe(1);
    expect(child.output).toHaveLength(1);
    expect(child.output[0]).toMatch(/^configuration error: PORT: .+ \(got "not-a-port"\)$/);
  });
});

describe("delays the outbox stores", () => {
  it("refuses a Retry-After cap longer than a retry delay column holds", () => {
    expect(() => loadConfig({ WEBHOOK_RETRY_AFTER_CAP: "30d" })).toThrow(/WEBHOOK_RETRY_AFTER_CAP: must be at most 2147483647ms/);
    expect(loadConfig({ WEBHOOK_RETRY_AFTER_CAP: "24d" }).WEBHOOK_RETRY_AFTER_CAP).toBe(24 * 86_400_000);
  });
});
