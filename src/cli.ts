#!/usr/bin/env node
import { ConfigError, loadConfig, type Config } from "./config.js";
import { openDatabase, type Database } from "./db/client.js";
import { checkConnection, DatabaseConnectError } from "./db/connection-error.js";
import { embeddedInternalToken, embeddedPostgresStatus, EmbeddedPostgresError, stopEmbeddedPostgres } from "./db/embedded.js";
import { createLogger } from "./logger.js";
import { databaseTarget, ListenError, migrateDatabase, startService, type ServiceOptions } from "./service.js";
import { AppError } from "./errors.js";
import { OutboxError } from "./outbox/errors.js";
import { redeliver } from "./outbox/redeliver.js";
import { DESTINATION_STATES, type DestinationState } from "./db/schema.js";
import { destinationJson } from "./http/routes/destinations.js";
import { enableDestination, listDestinations } from "./outbox/destinations.js";
import { countReplayMatches, createReplay, getReplay, REPLAY_STATUSES, type ReplayStatus } from "./outbox/replay.js";
import { replayJson } from "./http/routes/replays.js";
import { isStorableInstant } from "./jobs/cursor.js";
import { createApiKey, findTenant, listApiKeys, revokeApiKey, rotateSigningSecret } from "./tenants/key-lifecycle.js";
import { createTenant } from "./tenants/tenant-service.js";
import { isUuid } from "./uuid.js";

const USAGE = `usage: webhook-outbox <command>

  migrate                      apply database migrations
  serve [--no-migrate]         migrate, then run the HTTP API and a delivery worker
  api                          run the HTTP API only
  worker                       run a delivery worker only
  tenant create <name> [--json]  create a tenant; prints its API key and signing secret once
  tenant create-key <tenant> [--json]
                               add an API key to a tenant (id or name); prints the key once
  tenant revoke-key <prefix|key>
                               revoke an API key; it gets 401 from then on
  tenant list-keys <tenant>    the tenant's key prefixes, with creation and revocation times
  tenant rotate-secret <tenant> [--json]
                               new signing secret; the old ones keep signing for SECRET_ROTATION_OVERLAP
  redeliver <deliveryId>       send a succeeded or failed delivery again (same webhook-id, fresh attempts)
  replay --status failed|succeeded --since <instant> [--until <instant>] [--url <url>] [--tenant <id|name>]
                               redeliver every match once, paced (REPLAY_RATE a second); every tenant's by default
  replay show <replayId>       a replay's progress
  destination list [--tenant <id|name>] [--state healthy|open|disabled] [--json]
                               destinations (webhook URLs) with their circuit state, every tenant's by default
  destination enable <destinationId>
                               healthy again, counters reset; its waiting deliveries go at once
  database-url                 print the connection string in use (for psql "$(…)"); starts the embedded server if need be
  embedded status|stop         the embedded PostgreSQL of this checkout (used when DATABASE_URL is unset)

With DATABASE_URL unset, every command uses one embedded PostgreSQL server in EMBEDDED_DATA_DIR,
started by the first command that needs it and left running; its database is migrated on every use.
`;

const TENANT_USAGE = `usage: webhook-outbox tenant create <name> [--json]
       webhook-outbox tenant create-key <tenant> [--json]
       webhook-outbox tenant revoke-key <prefix|key>
       webhook-outbox tenant list-keys <tenant>
       webhook-outbox tenant rotate-secret <tenant> [--json]
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
        await migrateDatabase(database, config);
        process.stdout.write("migrations applied\n");
      });
    case "serve":
    case "api":
    case "worker":
      return runUntilSignal({
        config,
        api: command !== "worker",
        worker: command !== "api",
        // Nobody else migrates the embedded server's database.
        migrate: !config.DATABASE_URL || (command === "serve" && !rest.includes("--no-migrate")),
        requireDatabase: true,
      });
    case "database-url":
      return withDatabase(config, async (_database, url) => {
        process.stdout.write(`${url}\n`);
      });
    case "embedded":
      return embeddedCommand(config, rest);
    case "tenant":
      return tenantCommand(config, rest);
    case "redeliver":
      return redeliverCommand(config, rest);
    case "destination":
      return destinationCommand(config, rest);
    case "replay":
      return replayCommand(config, rest);
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

async function tenantCommand(config: Config, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const json = rest.includes("--json");
  const argument = rest.filter((arg) => arg !== "--json").join(" ").trim();
  if (!sub || !argument) {
    process.stderr.write(TENANT_USAGE);
    return 2;
  }
  const print = (line: string) => process.stdout.write(`${line}\n`);
  switch (sub) {
    case "create":
      return withDatabase(config, async (database) => {
        const tenant = await createTenant(database, argument);
        if (json) print(JSON.stringify(tenant));
        else
          print(
            `tenant ${tenant.tenantId} (${argument})\n` +
              `API key:        ${tenant.apiKey}\n` +
              `signing secret: ${tenant.signingSecret}\n` +
              `Both are shown this once only; store them now.`,
          );
      });
    case "create-key":
      return withDatabase(config, async (database) => {
        const key = await createApiKey(database, argument);
        if (json) print(JSON.stringify(key));
        else print(`API key for tenant ${key.tenantId}: ${key.apiKey}\nShown this once only; revoke it with: tenant revoke-key ${key.prefix}`);
      });
    case "revoke-key":
      return withDatabase(config, async (database) => {
        const revoked = await revokeApiKey(database, argument);
        if (json) print(JSON.stringify(revoked));
        else
          print(
            `API key ${revoked.prefix}… of tenant ${revoked.tenantId} ${revoked.alreadyRevoked ? "was already" : "is now"} revoked (${revoked.revokedAt.toISOString()})`,
          );
      });
    case "list-keys":
      return withDatabase(config, async (database) => {
        const keys = await listApiKeys(database, argument);
        if (json) print(JSON.stringify(keys));
        else for (const key of keys) print(`${key.prefix}…  created ${key.createdAt.toISOString()}  ${key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : "active"}`);
      });
    case "rotate-secret":
      return withDatabase(config, async (database) => {
        const rotated = await rotateSigningSecret(database, argument, config.SECRET_ROTATION_OVERLAP);
        if (json) print(JSON.stringify(rotated));
        else
          print(
            `new signing secret for tenant ${rotated.tenantId}: ${rotated.signingSecret}\n` +
              `The previous secret keeps signing until ${rotated.previousSecretsExpireAt.toISOString()} ` +
              `(SECRET_ROTATION_OVERLAP); webhooks carry both signatures until then.\n` +
              `Shown this once only; store it now.`,
          );
      });
    default:
      process.stderr.write(TENANT_USAGE);
      return 2;
  }
}


/** Operator redelivery: any tenant's delivery; a running worker picks it up through NOTIFY. */
async function redeliverCommand(config: Config, args: string[]): Promise<number> {
  const [deliveryId, ...extra] = args;
  if (!deliveryId || extra.length > 0 || !isUuid(deliveryId)) {
    process.stderr.write(`usage: webhook-outbox redeliver <deliveryId>   (the delivery's uuid, its webhook-id)\n`);
    return 2;
  }
  let code = 0;
  await withDatabase(config, async (database) => {
    try {
      const delivery = await redeliver(database, deliveryId);
      process.stdout.write(
        `delivery ${delivery.id} queued again: attempts ${delivery.attemptCount + 1}..${delivery.maxAttempts}\n`,
      );
    } catch (error) {
      if (!(error instanceof OutboxError)) throw error;
      process.stderr.write(`${error.code}: ${error.message}\n`);
      code = 1;
    }
  });
  return code;
}

const DESTINATION_USAGE = `usage: webhook-outbox destination list [--tenant <id|name>] [--state healthy|open|disabled] [--json]
       webhook-outbox destination enable <destinationId>
`;

/** Operator view of destinations across tenants, and enabling one. */
async function destinationCommand(config: Config, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const print = (line: string) => process.stdout.write(`${line}\n`);
  if (sub === "list") {
    const options = parseOptions(rest, ["--tenant", "--state"], ["--json"]);
    const state = options.values["--state"];
    if (!options.ok || (state !== undefined && !(DESTINATION_STATES as readonly string[]).includes(state))) {
      process.stderr.write(DESTINATION_USAGE);
      return 2;
    }
    return withDatabase(config, async (database) => {
      const tenantRef = options.values["--tenant"];
      const tenantId = tenantRef === undefined ? undefined : (await findTenant(database, tenantRef)).id;
      const page = await listDestinations(database, { tenantId, state: state as DestinationState | undefined, limit: 1_000 });
      if (options.flags.has("--json")) {
        for (const destination of page.destinations) print(JSON.stringify({ tenantId: destination.tenantId, ...destinationJson(destination) }));
        return;
      }
      for (const d of page.destinations) {
        const detail =
          d.state === "disabled"
            ? `disabled ${d.disabledAt?.toISOString()} (${d.disabledReason})`
            : d.state === "open"
              ? `open until ${d.openUntil?.toISOString()}`
              : "healthy";
        print(`${d.id}  ${detail}  failures ${d.consecutiveFailures}  tenant ${d.tenantId}  ${d.url}`);
      }
      if (page.hasMore) print("(the first 1000; narrow with --tenant or --state)");
    });
  }
  if (sub === "enable" && rest.length === 1 && isUuid(rest[0] ?? "")) {
    return withDatabase(config, async (database) => {
      const enabled = await enableDestination(database, rest[0] ?? "");
      print(
        `destination ${enabled.destination.id} (${enabled.destination.url}) is healthy (was ${enabled.previousState}); ` +
          `${enabled.released} waiting deliveries released`,
      );
    });
  }
  process.stderr.write(DESTINATION_USAGE);
  return 2;
}

const REPLAY_USAGE = `usage: webhook-outbox replay --status failed|succeeded --since <instant> [--until <instant>] [--url <url>] [--tenant <id|name>]
       webhook-outbox replay show <replayId>
`;

/** Operator replay: one replay per tenant with matches (or the one named); the workers do the redelivering. */
async function replayCommand(config: Config, args: string[]): Promise<number> {
  const print = (line: string) => process.stdout.write(`${line}\n`);
  if (args[0] === "show") {
    const replayId = args[1] ?? "";
    if (args.length !== 2 || !isUuid(replayId)) {
      process.stderr.write(REPLAY_USAGE);
      return 2;
    }
    return withDatabase(config, async (database) => {
      print(JSON.stringify(replayJson(await getReplay(database, replayId))));
    });
  }
  const options = parseOptions(args, ["--status", "--since", "--until", "--url", "--tenant"], []);
  const { values } = options;
  const status = values["--status"] as ReplayStatus | undefined;
  const since = new Date(values["--since"] ?? "");
  const until = values["--until"] === undefined ? undefined : new Date(values["--until"]);
  if (
    !options.ok ||
    status === undefined ||
    !REPLAY_STATUSES.includes(status) ||
    !isStorableInstant(since) ||
    (until !== undefined && (!isStorableInstant(until) || until <= since))
  ) {
    process.stderr.write(REPLAY_USAGE);
    return 2;
  }
  return withDatabase(config, async (database) => {
    const tenantRef = values["--tenant"];
    const tenantIds =
      tenantRef === undefined
        ? (await database.query<{ id: string }>("select id from webhook_outbox.tenants order by created_at")).map((t) => t.id)
        : [(await findTenant(database, tenantRef)).id];
    // One end of the window for every tenant's replay.
    const end = until ?? new Date();
    let replays = 0;
    for (const tenantId of tenantIds) {
      const input = { tenantId, status, since, until: end, url: values["--url"] };
      // Across tenants, those with nothing to replay get no replay.
      if (tenantRef === undefined && (await countReplayMatches(database, input)) === 0) continue;
      const replay = await createReplay(database, input);
      replays++;
      print(`replay ${replay.id}  tenant ${tenantId}  matched ${replay.matched}`);
    }
    if (replays === 0) print("no delivery matches");
  });
}

/** `--name value` options and bare flags; anything else makes `ok` false. */
function parseOptions(
  args: string[],
  names: string[],
  flagNames: string[],
): { ok: boolean; values: Record<string, string | undefined>; flags: Set<string> } {
  const values: Record<string, string | undefined> = {};
  const flags = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (flagNames.includes(arg)) flags.add(arg);
    else if (names.includes(arg) && args[i + 1] !== undefined && values[arg] === undefined) values[arg] = args[++i];
    else return { ok: false, values, flags };
  }
  return { ok: true, values, flags };
}

async function embeddedCommand(config: Config, args: string[]): Promise<number> {
  const [sub, ...extra] = args;
  const status = embeddedPostgresStatus(config.EMBEDDED_DATA_DIR);
  if (sub === "status" && extra.length === 0) {
    process.stdout.write(
      status.running
        ? `running: pid ${status.running.pid}, 127.0.0.1:${status.running.port}, data in ${status.dataDir}\n`
        : `not running${status.initialised ? "" : " (not made yet: the first command that needs it makes it)"}; data in ${status.dataDir}\n`,
    );
    return 0;
  }
  if (sub === "stop" && extra.length === 0) {
    const stopped = await stopEmbeddedPostgres(config.EMBEDDED_DATA_DIR);
    process.stdout.write(stopped ? `stopped the embedded PostgreSQL in ${status.dataDir}\n` : `not running (${status.dataDir})\n`);
    return 0;
  }
  process.stderr.write("usage: webhook-outbox embedded status|stop\n");
  return 2;
}

/** Runs `work` on the configured database, or the embedded one (started and migrated first). */
async function withDatabase(config: Config, work: (database: Database, url: string) => Promise<void>): Promise<number> {
  const { url, embedded } = await databaseTarget(config);
  const database = await openDatabase({ databaseUrl: url });
  try {
    await checkConnection(database, url, embedded ? "the embedded PostgreSQL" : "DATABASE_URL");
    // The embedded server needs no setup: a first `tenant create` makes and migrates it.
    if (embedded) await migrateDatabase(database, config);
    await work(database, url);
    return 0;
  } finally {
    await database.close();
  }
}

async function runUntilSignal(options: Omit<ServiceOptions, "logger">): Promise<number> {
  const { config } = options;
  // The embedded server's development token (startService reads the same file) is a secret too.
  const developmentToken =
    options.api && !config.DATABASE_URL && !config.INTERNAL_API_TOKEN ? embeddedInternalToken(config.EMBEDDED_DATA_DIR).token : undefined;
  const logger = createLogger(config.LOG_LEVEL, { secrets: [config.INTERNAL_API_TOKEN, developmentToken, config.DASHBOARD_SESSION_SECRET] });
  // Listening for the signal before the start: a SIGTERM that arrives while the service starts (it
  // logs "API listening" before startService returns) still means a clean stop, never a kill.
  const signalled = new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  const service = await startService({ ...options, logger });
  await signalled;
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
    // One line that says what to do: a database that does not answer, a port taken, no embedded server.
    else if (error instanceof DatabaseConnectError || error instanceof ListenError || error instanceof EmbeddedPostgresError)
      process.stderr.write(`${error.message}\n`);
    else if (error instanceof AppError || error instanceof OutboxError) process.stderr.write(`${error.code}: ${error.message}\n`);
    else process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
