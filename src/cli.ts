#!/usr/bin/env node
import { ConfigError, loadConfig, type Config } from "./config.js";
import { DataDirInUseError, openDatabase } from "./db/client.js";
import { runMigrations } from "./db/migrate.js";
import { createLogger } from "./logger.js";
import { startService, type ServiceOptions } from "./service.js";
import { createTenant } from "./tenants/tenant-service.js";

const USAGE = `usage: webhook-outbox <command>

  migrate                      apply database migrations
  serve [--no-migrate]         migrate, then run the HTTP API and a delivery worker
  api                          run the HTTP API only
  worker                       run a delivery worker only
  tenant create <name> [--json]  create a tenant; prints its API key and signing secret once
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help") {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  const config = loadConfig();
  switch (command) {
    case "migrate":
      return withDatabase(config, async (database) => {
        await runMigrations(database);
        process.stdout.write("migrations applied\n");
      });
    case "serve":
      return runUntilSignal({ config, api: true, worker: true, migrate: !rest.includes("--no-migrate") });
    case "api":
    case "worker":
      if (!config.DATABASE_URL) {
        process.stderr.write(
          `"${command}" needs DATABASE_URL: the embedded database serves one process, so run \`serve\` (API and worker together) instead\n`,
        );
        return 2;
      }
      return runUntilSignal({ config, api: command === "api", worker: command === "worker", migrate: false });
    case "tenant":
      return tenantCommand(config, rest);
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

async function tenantCommand(config: Config, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const json = rest.includes("--json");
  const name = rest.filter((arg) => arg !== "--json").join(" ").trim();
  if (sub !== "create" || !name) {
    process.stderr.write(`usage: webhook-outbox tenant create <name> [--json]\n`);
    return 2;
  }
  return withDatabase(config, async (database) => {
    const tenant = await createTenant(database, name);
    if (json) {
      process.stdout.write(`${JSON.stringify(tenant)}\n`);
    } else {
      process.stdout.write(
        `tenant ${tenant.tenantId} (${name})\n` +
          `API key:        ${tenant.apiKey}\n` +
          `signing secret: ${tenant.signingSecret}\n` +
          `Both are shown this once only; store them now.\n`,
      );
    }
  });
}

async function withDatabase(
  config: Config,
  work: (database: Awaited<ReturnType<typeof openDatabase>>) => Promise<void>,
): Promise<number> {
  const database = await openDatabase({ databaseUrl: config.DATABASE_URL, pgliteDir: config.PGLITE_DIR });
  try {
    // The embedded database needs no setup: a first `tenant create` makes and migrates it.
    if (database.kind === "pglite") await runMigrations(database);
    await work(database);
    return 0;
  } finally {
    await database.close();
  }
}

async function runUntilSignal(options: Omit<ServiceOptions, "logger">): Promise<number> {
  const logger = createLogger(options.config.LOG_LEVEL);
  const service = await startService({ ...options, logger });
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  logger.info("shutting down: no new claims; finishing attempts in flight");
  await service.stop();
  logger.info("stopped");
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    // One line per bad variable, naming it; no stack: nothing is wrong with the code.
    if (error instanceof ConfigError) process.stderr.write(error.problems.map((problem) => `configuration error: ${problem}\n`).join(""));
    else if (error instanceof DataDirInUseError) process.stderr.write(`${error.message}\n`);
    else process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
