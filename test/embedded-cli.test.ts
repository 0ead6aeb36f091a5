import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnCli } from "./support/processes.js";

// PGlite starts in seconds, more on a busy machine: generous per-test limits, no timing asserted.
const SLOW = { timeout: 120_000 };

// A newcomer's commands as real processes, with no DATABASE_URL anywhere in their environment.
let dataDir: string;
let env: Record<string, string>;

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), "wo-embedded-cli-"));
  env = { PGLITE_DIR: join(dataDir, "pglite"), HOST: "127.0.0.1", PORT: "0", INTERNAL_API_TOKEN: "t" };
});

afterAll(() => {
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe("the CLI on the embedded database", () => {
  it("creates a tenant on a directory that does not exist yet (made and migrated on the spot)", SLOW, async () => {
    const child = spawnCli(["tenant", "create", "acme", "--json"], env);
    expect(await child.exited).toBe(0);
    const created = JSON.parse(child.output.at(-1) ?? "{}");
    expect(created.apiKey).toMatch(/^wo_/);
    expect(created.signingSecret).toMatch(/^whsec_/);
  });

  it("serves with an explicit degrade notice, refuses a second process on the same directory, and stops cleanly", SLOW, async () => {
    const server = spawnCli(["serve"], env);
    try {
      const notice = JSON.parse(await server.waitForLog(/embedded PGlite database/, 60_000));
      expect(notice).toMatchObject({ level: 40, dataDir: join(dataDir, "pglite"), listenNotify: true });
      expect(notice.msg).toContain("this process runs the only worker");
      await server.waitForLog(/API listening/);

      const second = spawnCli(["tenant", "create", "intruder"], env);
      expect(await second.exited).toBe(1);
      expect(second.output.join("\n")).toMatch(/is open in process \d+: PGlite allows one process at a time/);
    } finally {
      server.child.kill("SIGTERM");
    }
    expect(await server.exited).toBe(0);
  });

  it("refuses api-only and worker-only processes, which could never share the directory", SLOW, async () => {
    for (const command of ["api", "worker"]) {
      const child = spawnCli([command], env);
      expect(await child.exited).toBe(2);
      expect(child.output.join("\n")).toContain(`"${command}" needs DATABASE_URL`);
    }
  });
});
