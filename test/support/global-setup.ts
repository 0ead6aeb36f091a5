import { readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { EmbeddedPostgresError, startEmbeddedPostgres, stopEmbeddedPostgres } from "../../src/db/embedded.js";
import { freePort } from "./ports.js";

declare module "vitest" {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
  }
}

type Teardown = () => Promise<void>;

/**
 * One PostgreSQL server for the run, the first of: DATABASE_URL when set (a local server); a
 * throwaway testcontainers PostgreSQL when a container runtime answers; else the embedded server
 * (src/db/embedded.ts) in a directory of this run's own, stopped and removed after it. Each test
 * file then creates its own database on it (test/support/database.ts).
 */
export default async function setup(project: TestProject): Promise<Teardown | undefined> {
  const url = process.env.DATABASE_URL;
  if (url) {
    project.provide("adminDatabaseUrl", url);
    return undefined;
  }
  if (await containerRuntimeAnswers()) {
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
    const container = await new PostgreSqlContainer("postgres:15-alpine").start();
    project.provide("adminDatabaseUrl", container.getConnectionUri());
    return async () => {
      await container.stop();
    };
  }
  const server = await startTestServer();
  project.provide("adminDatabaseUrl", server.url);
  return server.stop;
}

/** Whether testcontainers finds a Docker-compatible runtime, within a few seconds. */
async function containerRuntimeAnswers(): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const { getContainerRuntimeClient } = await import("testcontainers");
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), 5_000);
    });
    return await Promise.race([getContainerRuntimeClient().then(() => true), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

const PREFIX = "webhook-outbox-test-pg-";

/**
 * The embedded server in a fresh directory under the system's temp directory, on a free port, with
 * durability off (its data is thrown away). Several runs at once each get their own.
 */
async function startTestServer(): Promise<{ url: string; stop: Teardown }> {
  await removeAbandonedServers();
  for (let attempt = 1; ; attempt++) {
    const dataDir = join(tmpdir(), `${PREFIX}${process.pid}-${attempt}`);
    try {
      const server = await startEmbeddedPostgres({
        dataDir,
        port: await freePort(),
        settings: { fsync: "off", synchronous_commit: "off", full_page_writes: "off", max_connections: 200 },
      });
      return {
        url: server.url,
        stop: async () => {
          await stopEmbeddedPostgres(dataDir);
          rmSync(dataDir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      // The free port was taken between the probe and the start: another one.
      const portTaken = error instanceof EmbeddedPostgresError && /is taken by another server/.test(error.message);
      rmSync(dataDir, { recursive: true, force: true });
      if (!portTaken || attempt === 3) {
        throw new Error(
          `no PostgreSQL for the tests: DATABASE_URL is unset, no container runtime answered, and the embedded server did not start: ${
            (error as Error).message
          }`,
          { cause: error },
        );
      }
    }
  }
}

/** Servers of runs that were killed before their teardown: stopped, and their directories removed. */
async function removeAbandonedServers(): Promise<void> {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(PREFIX)) continue;
    const pid = Number(entry.slice(PREFIX.length).split("-")[0]);
    if (!Number.isInteger(pid) || pid <= 0 || isAlive(pid)) continue;
    const dataDir = join(tmpdir(), entry);
    await stopEmbeddedPostgres(dataDir).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
