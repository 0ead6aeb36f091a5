import { resolve } from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import type { Logger } from "pino";
import type { Config } from "./config.js";
import { openDatabase, probeNotifications, type Database } from "./db/client.js";
import { runMigrations } from "./db/migrate.js";
import type { Resolver } from "./delivery/address-policy.js";
import { HttpSender } from "./delivery/http-sender.js";
import { UrlPolicy } from "./delivery/url-policy.js";
import { createApp } from "./http/app.js";
import { DeadlineSweeper } from "./jobs/deadline-sweeper.js";
import { JobService } from "./jobs/job-service.js";
import { ServiceMetrics } from "./metrics.js";
import { OutboxNotifier } from "./outbox/notifier.js";
import { deliveryPolicies } from "./outbox/policy.js";
import { OutboxWorker } from "./outbox/worker/worker.js";
import { startRetentionSweeper, type RetentionSweeper } from "./outbox/retention.js";

export interface ServiceOptions {
  config: Config;
  logger: Logger;
  api: boolean;
  worker: boolean;
  migrate: boolean;
  /** Host name resolution for the webhook URL policy; tests inject one, production uses the system's. */
  resolver?: Resolver;
}

export interface RunningService {
  database: Database;
  jobService: JobService;
  worker: OutboxWorker | undefined;
  metrics: ServiceMetrics;
  /** Base URL of the HTTP server, when it runs. */
  url: string | undefined;
  stop(): Promise<void>;
}

/** Wires the whole service from its configuration: database, API, worker. */
export async function startService(options: ServiceOptions): Promise<RunningService> {
  const { config, logger } = options;
  if (config.WEBHOOK_ALLOW_INSECURE_URLS) {
    logger.warn("WEBHOOK_ALLOW_INSECURE_URLS=true: http and private addresses are allowed; never use this in production");
  }
  const database = await openDatabase({
    databaseUrl: config.DATABASE_URL,
    pgliteDir: config.PGLITE_DIR,
    // Message and code only: pg hangs the whole client object on some of these errors.
    onError: (error) =>
      logger.warn({ error: error.message, code: (error as { code?: string }).code }, "database connection error"),
  });
  if (options.migrate) await runMigrations(database);
  if (database.kind === "pglite") await announceEmbedded(database, config, logger);
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

  let sender: HttpSender | undefined;
  let worker: OutboxWorker | undefined;
  let retention: RetentionSweeper | undefined;
  let sweeper: DeadlineSweeper | undefined;
  if (options.worker) {
    sweeper = new DeadlineSweeper(jobService, config.JOB_SWEEP_INTERVAL_MS, logger.child({ component: "sweeper" }));
    sweeper.start();
    sender = new HttpSender(urlPolicy);
    worker = new OutboxWorker({
      database,
      sender,
      logger: logger.child({ component: "worker" }),
      concurrency: config.WORKER_CONCURRENCY,
      destinationConcurrency: config.DESTINATION_CONCURRENCY,
      shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
      batchSize: config.WORKER_BATCH_SIZE,
      batchWindowMs: config.WORKER_BATCH_WINDOW_MS,
      maxInterruptions: config.WORKER_MAX_INTERRUPTIONS,
      pollIntervalMs: config.WORKER_POLL_INTERVAL_MS,
      leaseMarginMs: config.LEASE_MARGIN_MS,
      retryAfterCapMs: config.WEBHOOK_RETRY_AFTER_CAP,
      headerPrefix: config.WEBHOOK_HEADER_PREFIX,
      onAttempt: metrics.recordAttempt,
      onClaim: metrics.recordClaim,
    });
    await worker.start();
    logger.info({ workerId: worker.workerId, concurrency: config.WORKER_CONCURRENCY }, "worker started");
    retention = startRetentionSweeper({
      database,
      logger: logger.child({ component: "retention" }),
      retentionMs: config.DELIVERY_RETENTION,
    });
  }

  let server: ServerType | undefined;
  let url: string | undefined;
  if (options.api) {
    const app = createApp({
      database,
      jobService,
      logger,
      internalApiToken: config.INTERNAL_API_TOKEN,
      apiRateLimit: config.API_RATE_LIMIT,
      metrics,
      webhookHeaderPrefix: config.WEBHOOK_HEADER_PREFIX,
    });
    if (!config.INTERNAL_API_TOKEN) logger.warn("INTERNAL_API_TOKEN is not set: the /internal routes are disabled");
    server = await new Promise<ServerType>((resolve) => {
      const started = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, () => resolve(started));
    });
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : config.PORT;
    url = `http://127.0.0.1:${port}`;
    logger.info({ port, url, docs: `${url}/docs` }, "API listening");
  }

  return {
    database,
    jobService,
    worker,
    metrics,
    url,
    async stop() {
      if (server) {
        const closing = server;
        await new Promise<void>((resolve) => closing.close(() => resolve()));
      }
      await retention?.stop();
      await sweeper?.stop();
      await worker?.stop();
      await sender?.close();
      await database.close();
    },
  };
}

/**
 * PGlite is one connection inside this process: no second process may open its directory, so this
 * process runs the only worker. Says so, and whether NOTIFY wakes the worker or polling alone does.
 */
async function announceEmbedded(database: Database, config: Config, logger: Logger): Promise<void> {
  const notifications = await probeNotifications(database);
  logger.warn(
    {
      dataDir: resolve(config.PGLITE_DIR),
      listenNotify: notifications,
      pollIntervalMs: config.WORKER_POLL_INTERVAL_MS,
    },
    `embedded PGlite database in ${resolve(config.PGLITE_DIR)} (DATABASE_URL is unset). Degraded mode: one connection, ` +
      "so this process runs the only worker and no other process (CLI included) may open that directory while it runs; " +
      (notifications
        ? "LISTEN/NOTIFY works in-process, polling is the fallback. "
        : `LISTEN/NOTIFY does not work here: the worker polls every ${config.WORKER_POLL_INTERVAL_MS} ms. `) +
      "For production set DATABASE_URL=postgres://user:password@host:5432/dbname and run `webhook-outbox migrate`.",
  );
}
