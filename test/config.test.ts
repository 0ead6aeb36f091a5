import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, configSchema, loadConfig } from "../src/config.js";
import { spawnCli } from "./support/processes.js";

/** The rows of the README's "## Configuration" table: variable → default as written ("unset" = none, "empty" = ""). */
function readmeConfigTable(): Map<string, string> {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.split(/^## Configuration\s*$/m)[1]?.split(/^## /m)[0] ?? "";
  const rows = new Map<string, string>();
  for (const line of section.split("\n")) {
    const match = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*([^|]*?)\s*\|/.exec(line);
    if (match?.[1] && match[2] !== undefined) rows.set(match[1], match[2].replace(/^`|`$/g, ""));
  }
  return rows;
}

describe("the README configuration table", () => {
  const table = readmeConfigTable();
  const defaults = configSchema.parse({});

  it("lists every variable of configSchema, and nothing else", () => {
    expect([...table.keys()].sort()).toEqual(Object.keys(configSchema.shape).sort());
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

describe("configuration errors", () => {
  it("names every bad variable with the value it got", () => {
    const env = { PORT: "http", WEBHOOK_RETRY_DELAYS: "0,soon", DATABASE_URL: "", LOG_LEVEL: "loud" };
    let error: unknown;
    try {
      loadConfig(env);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/^PORT: .*\(got "http"\)$/);
    expect(problems.find((problem) => problem.startsWith("WEBHOOK_RETRY_DELAYS:"))).toContain('"0,soon"');
    expect(problems.find((problem) => problem.startsWith("LOG_LEVEL:"))).toContain('"loud"');
  });

  it("stops the start with exit code 1 and one line naming the bad variable", async () => {
    const child = spawnCli(["serve"], { PORT: "not-a-port", LOG_LEVEL: "silent" });
    expect(await child.exited).toBe(1);
    expect(child.output).toHaveLength(1);
    expect(child.output[0]).toMatch(/^configuration error: PORT: .+ \(got "not-a-port"\)$/);
  });
});
