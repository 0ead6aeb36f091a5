import type { ServerOptions } from "node:http";
import { relative } from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import type { Logger } from "pino";
import type { Config } from "./config.js";
import { openDatabase, type Database } from "./db/client.js";
import { checkConnection } from "./db/connection-error.js";
import { embeddedInternalToken, startEmbeddedPostgres, type EmbeddedPostgres } from "./db/embedded.js";
import { runMigrations } from "./db/migrate.js";
import type { Resolver } from "./delivery/address-policy.js";
import { HttpSender } from "./delivery/http-sender.js";
import { UrlPolicy } from "./delivery/url-policy.js";
import { createApp } from "./http/app.js";
import { processSessionSecret } from "./dashboard/routes.js";
import { httpServerOptions } from "./http/server-options.js";
import { DeadlineSweeper } from "./jobs/deadline-sweeper.js";
import { JobService } from "./jobs/job-service.js";
import { ServiceMetrics } from "./metrics.js";
import { MAX_PAYLOAD_BYTES_DEFAULT } from "./outbox/admission.js";
import { OutboxNotifier } from "./outbox/notifier.js";
import { deliveryPolicies } from "./jobs/delivery-policies.js";
import { OutboxWorker } from "./outbox/worker/worker.js";
import { startRetentionSweeper, type RetentionSweeper } from "./outbox/retention.js";
import { REPLAY_PACING, startReplayPacer, type ReplayPacer } from "./outbox/replay.js";
import { writeSqlSettings } from "./outbox/sql-settings.js";

export interface ServiceOptions {
  config: Config;
  logger: Logger;
  api: boolean;
  worker: boolean;
  migrate: boolean;
  /**
   * Refuse to start when the database does not answer (DatabaseConnectError), as the CLI does.
   * Otherwise the service starts anyway and answers 503 until it does.
   */
  requireDatabase?: boolean;
  /** Host name resolution for the webhook URL policy; tests inject one, production uses the system's. */
  resolver?: Resolver;
}

export interface RunningService {
  database: Database;
  /** The embedded server in use, when DATABASE_URL is unset. */
  embedded: EmbeddedPostgres | undefined;
  jobService: JobService;
  worker: OutboxWorker | undefined;
  metrics: ServiceMetrics;
  /** Base URL of the HTTP server, when it runs. */
  url: string | undefined;
  stop(): Promise<void>;
}

/** The embedded server when DATABASE_URL is unset (started if need be), and the URL to connect to. */
export async function databaseTarget(config: Config): Promise<{ url: string; embedded: EmbeddedPostgres | undefined }> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, embedded: undefined };
  const embedded = await startEmbeddedPostgres({ dataDir: config.EMBEDDED_DATA_DIR, port: config.EMBEDDED_PG_PORT });
  return { url: embedded.url, embedded };
}

/**
 * Applies the migrations, then writes the SQL API's settings (webhook_outbox.settings) from the
 * environment: WEBHOOK_RETRY_DELAYS, WEBHOOK_TIMEOUT_MS, WEBHOOK_CONNECT_TIMEOUT_MS,
 * WEBHOOK_ALLOW_INSECURE_URLS and WEBHOOK_ALLOWED_CIDRS.
 */
export async function migrateDatabase(database: Database, config: Config): Promise<void> {
  await runMigrations(database);
  await writeSqlSettings(database.query, {
    policy: deliveryPolicies(config).nouvel,
    allowInsecureUrls: config.WEBHOOK_ALLOW_INSECURE_URLS,
    allowedCidrs: config.WEBHOOK_ALLOWED_CIDRS,
    maxPayloadBytes: MAX_PAYLOAD_BYTES_DEFAULT,
  });
}

/** Thrown when the HTTP port cannot be bound; the message says why and what to change. */
export class ListenError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = "ListenError";
  }
}

/**
 * Wires the whole service from its configuration: database, API, worker. The HTTP server listens
 * before the worker starts: a port that cannot be bound stops the start before anything is claimed.
 */
export async function startService(options: ServiceOptions): Promise<RunningService> {
  const { config, logger } = options;
  if (config.WEBHOOK_ALLOW_INSECURE_URLS) {
    logger.warn("WEBHOOK_ALLOW_INSECURE_URLS=true: http and private addresses are allowed; never use this in production");
  }
  const { url: databaseUrl, embedded } = await databaseTarget(config);
  const database = await openDatabase({
    databaseUrl,
    // Message and code only: pg hangs the whole client object on some of these errors.
    onError: (error) =>
      logger.warn({ error: error.message, code: (error as { code?: string }).code }, "database connection error"),
  });
  // What has started so far; stop() (or a start that fails half-way) stops it in this order.
  const parts: {
    server?: ServerType;
    retention?: RetentionSweeper;
    replays?: ReplayPacer;
    sweeper?: DeadlineSweeper;
    worker?: OutboxWorker;
    sender?: HttpSender;
  } = {};
  const stop = async () => {
    const { server, retention, replays, sweeper, worker, sender } = parts;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await retention?.stop();
    await replays?.stop();
    await sweeper?.stop();
    await worker?.stop();
    await sender?.close();
    await database.close();
  };

  try {
    if (options.requireDatabase) {
      await checkConnection(database, databaseUrl, embedded ? "the embedded PostgreSQL" : "DATABASE_URL");
    }
    if (options.migrate) await migrateDatabase(database, config);
    // Development only: on the embedded server with no token set, one is made once and kept beside it.
    const internalToken = config.INTERNAL_API_TOKEN
      ? { token: config.INTERNAL_API_TOKEN, file: undefined }
      : embedded && options.api
        ? embeddedInternalToken(embedded.dataDir)
        : { token: undefined, file: undefined };
    if (embedded) announceEmbedded(embedded, config, logger, internalToken.file);
    const metrics = new ServiceMetrics(database, logger);

    const urlPolicy = new UrlPolicy({
      allowInsecure: config.WEBHOOK_ALLOW_INSECURE_URLS,
      allowedCidrs: config.WEBHOOK_ALLOWED_CIDRS,
      resolver: options.resolver,
    });
    const jobService = new JobService({
      database,
      urlPolicy,
      deliveryPolicies: deliveryPolicies(config),
      jobTimeoutMs: config.JOB_TIMEOUT,
      reportConcurrency: config.REPORT_CONCURRENCY,
      notifier: new OutboxNotifier(database, (error) =>
        // The workers' poll finds the row instead; the report itself has committed.
        logger.warn({ error: error instanceof Error ? error.message : String(error) }, "NOTIFY after enqueue failed"),
      ),
    });

    let url: string | undefined;
    if (options.api) {
      const app = createApp({
        database,
        jobService,
        logger,
        internalApiToken: internalToken.token,
        apiRateLimit: config.API_RATE_LIMIT,
        metrics,
        webhookHeaderPrefix: config.WEBHOOK_HEADER_PREFIX,
        urlPolicy,
        operationalPolicy: deliveryPolicies(config).nouvel,
        dashboard: {
          sessionSecret: config.DASHBOARD_SESSION_SECRET ?? processSessionSecret(),
          sessionTtlMs: config.DASHBOARD_SESSION_TTL,
        },
      });
      if (!config.DASHBOARD_SESSION_SECRET) {
        logger.info("DASHBOARD_SESSION_SECRET is not set: dashboard sessions use a per-process secret and end when this process restarts");
      }
      if (!internalToken.token) logger.warn("INTERNAL_API_TOKEN is not set: the /internal routes are disabled");
      const timeouts = {
        headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
        requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
        keepAliveTimeoutMs: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      };
      parts.server = await listen(app.fetch, config.PORT, config.HOST, httpServerOptions(timeouts));
      const address = parts.server.address();
      const port = typeof address === "object" && address ? address.port : config.PORT;
      url = `http://127.0.0.1:${port}`;
      logger.info({ port, url, docs: `${url}/docs` }, "API listening");
    }

    if (options.worker) {
      parts.sweeper = new DeadlineSweeper(jobService, config.JOB_SWEEP_INTERVAL_MS, logger.child({ component: "sweeper" }));
      parts.sweeper.start();
      parts.sender = new HttpSender(urlPolicy);
      parts.worker = new OutboxWorker({
        database,
        sender: parts.sender,
        logger: logger.child({ component: "worker" }),
        concurrency: config.WORKER_CONCURRENCY,
        destinationConcurrency: config.DESTINATION_CONCURRENCY,
        destinationSlowAfterMs: config.DESTINATION_SLOW_AFTER_MS,
        destinationFailureThreshold: config.DESTINATION_FAILURE_THRESHOLD,
        destinationCooldownMs: config.DESTINATION_COOLDOWN,
        destinationDisableAfterMs: config.DESTINATION_DISABLE_AFTER,
        shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
        batchSize: config.WORKER_BATCH_SIZE,
        maxInterruptions: config.WORKER_MAX_INTERRUPTIONS,
        batchWindowMs: config.WORKER_BATCH_WINDOW_MS,
        pollIntervalMs: config.WORKER_POLL_INTERVAL_MS,
        leaseMarginMs: config.LEASE_MARGIN_MS,
        retryAfterCapMs: config.WEBHOOK_RETRY_AFTER_CAP,
        headerPrefix: config.WEBHOOK_HEADER_PREFIX,
        onAttempt: metrics.recordAttempt,
        onClaim: metrics.recordClaim,
        onTransition: metrics.recordTransition,
      });
      await parts.worker.start();
      logger.info({ workerId: parts.worker.workerId, concurrency: config.WORKER_CONCURRENCY }, "worker started");
      parts.replays = startReplayPacer({
        database,
        logger: logger.child({ component: "replay" }),
        batchSize: config.REPLAY_RATE,
        intervalMs: REPLAY_PACING.intervalMs,
      });
      parts.retention = startRetentionSweeper({
        database,
        logger: logger.child({ component: "retention" }),
        retentionMs: config.DELIVERY_RETENTION,
      });
    }

    return { database, embedded, jobService, worker: parts.worker, metrics, url, stop };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

/** Listens on `port`; a port that cannot be bound is a ListenError naming it, not an unhandled 'error' event. */
function listen(
  fetch: Parameters<typeof serve>[0]["fetch"],
  port: number,
  hostname: string,
  serverOptions: ServerOptions,
): Promise<ServerType> {
  return new Promise<ServerType>((resolve, reject) => {
    const server = serve({ fetch, port, hostname, serverOptions }, () => {
      server.off("error", failed);
      resolve(server);
    });
    function failed(error: NodeJS.ErrnoException): void {
      const where = `${hostname}:${port}`;
      reject(
        new ListenError(
          error.code === "EADDRINUSE"
            ? `port ${port} is in use (${where}): stop the process that holds it, or set PORT to a free port`
            : error.code === "EACCES"
              ? `port ${port} needs privileges this process lacks (${where}): set PORT to 1024 or above`
              : `cannot listen on ${where}: ${error.message}`,
          error.code,
        ),
      );
    }
    server.once("error", failed);
  });
}

/** What a newcomer reads at start on the embedded server: where the data is and what to do next. */
function announceEmbedded(embedded: EmbeddedPostgres, config: Config, logger: Logger, tokenFile: string | undefined): void {
  const shown = (path: string) => (relative(process.cwd(), path).startsWith("..") ? path : relative(process.cwd(), path) || ".");
  const lines = [
    `embedded PostgreSQL ${embedded.version} (DATABASE_URL is unset): data in ${shown(embedded.dataDir)}, on 127.0.0.1:${embedded.port}` +
      (embedded.created ? " (made just now)" : "") +
      "; it keeps running after this process, shared by every command of this checkout",
    `  SQL:              psql "$(npm run -s outbox -- database-url)"`,
    `  a tenant:         npm run outbox -- tenant create acme   (in a second shell, while this runs)`,
    tokenFile
      ? `  internal routes:  INTERNAL_API_TOKEN is unset, so a development one was generated into ${shown(tokenFile)}; send it in the Authorization header of /internal requests`
      : `  internal routes:  ${config.INTERNAL_API_TOKEN ? "INTERNAL_API_TOKEN is set" : "disabled in this process (no API)"}`,
    config.WEBHOOK_ALLOW_INSECURE_URLS
      ? "  receivers:        http:// and private addresses allowed (WEBHOOK_ALLOW_INSECURE_URLS=true)"
      : "  receivers:        https only; for a receiver on this machine (http://127.0.0.1:…) set WEBHOOK_ALLOW_INSECURE_URLS=true",
    `  stop the server:  npm run outbox -- embedded stop`,
    "  production:       set DATABASE_URL to the server's postgres:// URL, and run `webhook-outbox migrate` once per release",
  ];
  logger.info(
    { dataDir: embedded.dataDir, port: embedded.port, postgresVersion: embedded.version, created: embedded.created },
    lines.join("\n"),
  );
}
