import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { embeddedPostgresStatus, startEmbeddedPostgres, stopEmbeddedPostgres } from "../src/db/embedded.js";
import { freePort } from "./support/ports.js";

// The embedded server's own rules, in this process: what it leaves behind after a crash or a
// reboot must not keep it from starting again.
const SLOW = { timeout: 120_000 };

let root: string;
let dataDir: string;
let port: number;

async function selectOne(url: string): Promise<unknown> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query("select 1 as one")).rows;
  } finally {
    await client.end();
  }
}

/** A pid no process has: one that has just exited. */
const deadPid = () => spawnSync(process.execPath, ["-e", ""]).pid;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "wo-embedded-server-"));
  // As root the server runs as the postgres OS user, which must reach the directory (mkdtemp makes it 0700).
  chmodSync(root, 0o755);
  dataDir = join(root, "postgres");
  port = await freePort();
});

afterAll(async () => {
  if (!root) return;
  await stopEmbeddedPostgres(dataDir);
  rmSync(root, { recursive: true, force: true });
});

describe("the embedded server", () => {
  it("is made on first start, found running on the next, and its URL answers", SLOW, async () => {
    const first = await startEmbeddedPostgres({ dataDir, port });
    expect(first).toMatchObject({ created: true, started: true, port, dataDir });
    const again = await startEmbeddedPostgres({ dataDir, port });
    expect(again).toMatchObject({ created: false, started: false, url: first.url });
    expect(await selectOne(first.url)).toEqual([{ one: 1 }]);
    // Only the cluster is left: no staging directory, no password input, no start lock.
    expect(readdirSync(dataDir).sort()).toEqual(["pgdata", "server.log"]);
  });

  it("starts even when a dead process's start lock was left behind", SLOW, async () => {
    expect(await stopEmbeddedPostgres(dataDir)).toBe(true);
    writeFileSync(join(dataDir, "start.lock"), String(deadPid()));
    const server = await startEmbeddedPostgres({ dataDir, port });
    expect(server).toMatchObject({ created: false, started: true });
    expect(existsSync(join(dataDir, "start.lock"))).toBe(false);
  });

  it("starts after a reboot whose postmaster.pid names a pid now used by another program", SLOW, async () => {
    expect(await stopEmbeddedPostgres(dataDir)).toBe(true);
    // This test process stands in for the unrelated program that got the pid.
    const stale = [process.pid, join(dataDir, "pgdata"), 0, port, "", "127.0.0.1", "0 0", "ready", ""];
    writeFileSync(join(dataDir, "pgdata", "postmaster.pid"), stale.join("\n"));
    const server = await startEmbeddedPostgres({ dataDir, port });
    expect(server.started).toBe(true);
    expect(await selectOne(server.url)).toEqual([{ one: 1 }]);
    expect(Number(readFileSync(join(dataDir, "pgdata", "postmaster.pid"), "utf8").split("\n")[0])).toBe(
      embeddedPostgresStatus(dataDir).running?.pid,
    );
  });

  it("refuses, in one line, a port other than the one its running server uses", SLOW, async () => {
    const other = await freePort();
    await expect(startEmbeddedPostgres({ dataDir, port: other })).rejects.toThrow(
      `the embedded PostgreSQL in ${dataDir} runs on port ${port}, not EMBEDDED_PG_PORT=${other}: set EMBEDDED_PG_PORT=${port}, or stop it first (npm run outbox -- embedded stop)`,
    );
  });
});
