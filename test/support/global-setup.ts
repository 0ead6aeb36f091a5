import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
  }
}

/**
 * One Postgres server for the run: DATABASE_URL when set (CI, and this machine's local server),
 * otherwise a throwaway testcontainers PostgreSQL. Each test file then creates its own database on it.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const url = process.env.DATABASE_URL;
  if (url) {
    project.provide("adminDatabaseUrl", url);
    return undefined;
  }
  const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
  const container = await new PostgreSqlContainer("postgres:15-alpine").start();
  project.provide("adminDatabaseUrl", container.getConnectionUri());
  return async () => {
    await container.stop();
  };
}
