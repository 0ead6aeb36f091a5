import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type pg from "pg";
import { pino, type Logger } from "pino";
import { databaseOnPool, openDatabase, type Database } from "../db/client.js";
import { runMigrations } from "../db/migrate.js";
import type { Resolver } from "../delivery/address-policy.js";
import { HttpSender } from "../delivery/http-sender.js";
import { UrlPolicy } from "../delivery/url-policy.js";
import {
  admitEventType,
  admitIdempotencyKey,
  admitTenantId,
  admitText,
  admitUrl,
  MAX_PAYLOAD_BYTES_DEFAULT,
  serializePayload,
} from "../outbox/admission.js";
import { enqueueOne, type Enqueued } from "../outbox/enqueue.js";
import { DeliveryNotFoundError, UnknownTenantError } from "../outbox/errors.js";
import { DELIVERY_POLICY_DEFAULTS, type DeliveryPolicy } from "../outbox/policy.js";
import { redeliver as redeliverRow } from "../outbox/redeliver.js";
import { startRetentionSweeper, type RetentionSweeper } from "../outbox/retention.js";
import { writeSqlSettings } from "../outbox/sql-settings.js";
import type { AttemptRecord } from "../outbox/sql/record.js";
import { OutboxWorker } from "../outbox/worker/worker.js";
import type { WorkerSettings } from "../outbox/worker/options.js";
import { createSigningTenant } from "../tenants/tenant-service.js";
import { isUuid } from "../uuid.js";
import { inCallersTransaction, type Transaction } from "./transaction.js";

export { OUTBOX_SCHEMA } from "../db/schema.js";
export { UrlRejectedError } from "../delivery/url-policy.js";
export type { Resolver } from "../delivery/address-policy.js";
export type { Enqueued } from "../outbox/enqueue.js";
export {
  DeliveryInFlightError,
  DeliveryNotFoundError,
  InvalidArgumentError,
  InvalidPayloadError,
  OutboxError,
  UnknownTenantError,
} from "../outbox/errors.js";
export { DELIVERY_POLICY_DEFAULTS, type DeliveryPolicy } from "../outbox/policy.js";
export type { AttemptRecord } from "../outbox/sql/record.js";
export { WORKER_DEFAULTS, type WorkerSettings } from "../outbox/worker/options.js";
export type { DrizzleLike, PgClientLike, PgPoolLike, Transaction } from "./transaction.js";

/** How an outbox connects, vets URLs and freezes its deliveries' policy. */
export interface OutboxOptions {
  /** A postgres:// URL: the outbox opens a pool of its own, which close() ends. Give this or `pool`. */
  connectionString?: string | undefined;
  /** The application's pg.Pool: the outbox runs on it and never ends it. Give this or `connectionString`. */
  pool?: pg.Pool | undefined;
  /**
   * Connections in the outbox's own pool (with `connectionString`); a worker holds one per batch
   * statement in flight, not per attempt.
   * @defaultValue 10
   */
  poolSize?: number | undefined;
  /**
   * Development and tests only: http URLs and private, loopback and link-local addresses are
   * accepted at enqueue and connected to by the worker.
   * @defaultValue false
   */
  allowInsecureUrls?: boolean | undefined;
  /**
   * CIDR ranges accepted although not public (an on-premises receiver), e.g. ["10.20.0.0/16"].
   * @defaultValue []
   */
  allowedCidrs?: readonly string[] | undefined;
  /**
   * The policy each delivery enqueued through this outbox freezes; fields left out take
   * DELIVERY_POLICY_DEFAULTS (3 attempts: at once, +10 s, +60 s; 10 s timeouts). migrate() also
   * writes it, with `allowInsecureUrls`, as the SQL API's policy (webhook_outbox.settings).
   */
  policy?: Partial<DeliveryPolicy> | undefined;
  /**
   * The largest payload accepted, in bytes of its JSON.
   * @defaultValue 1048576 (1 MiB)
   */
  maxPayloadBytes?: number | undefined;
  /**
   * Where workers log (pino).
   * @defaultValue a silent logger
   */
  logger?: Logger | undefined;
  /**
   * Host name resolution for the address checks before every attempt.
   * @defaultValue the system resolver
   */
  resolver?: Resolver | undefined;
}

export const OUTBOX_DEFAULTS = {
  poolSize: 10,
  allowInsecureUrls: false,
  allowedCidrs: [] as readonly string[],
  maxPayloadBytes: MAX_PAYLOAD_BYTES_DEFAULT,
} as const;

/** One webhook to enqueue. */
export interface EnqueueInput {
  /** The tenant whose signing secrets sign it (createTenant's `tenantId`). */
  tenantId: string;
  /** Where it is POSTed: https, a public host, at most 2048 characters, no credentials or fragment. */
  url: string;
  /** The event's name, e.g. "order.paid": 1 to 255 characters. */
  eventType: string;
  /** The body: a JSON value (plain objects, arrays, strings, finite numbers, booleans, null), frozen now. */
  payload: unknown;
  /** Enqueueing the same key again for the same tenant returns the same delivery and sends nothing more. */
  idempotencyKey?: string | undefined;
}

export interface OutboxWorkerOptions extends Partial<WorkerSettings> {
  /** @defaultValue host:pid:random */
  workerId?: string | undefined;
  /** Called once per recorded attempt. */
  onAttempt?: ((record: AttemptRecord) => void) | undefined;
  /**
   * Finished (succeeded or failed) deliveries older than this are deleted with their attempts, at
   * start and every 10 minutes, by every worker that has it (they share the work). 0 keeps them all.
   * @defaultValue 0
   */
  retentionMs?: number | undefined;
}

/** A worker: claims due deliveries, sends them signed, records every attempt. */
export interface OutboxWorkerHandle {
  readonly workerId: string;
  /** Starts claiming: LISTENs for enqueues and polls as a fallback. */
  start(): Promise<void>;
  /** Stops claiming, lets attempts in flight finish (shutdownGraceMs), records them. */
  stop(): Promise<void>;
}

export interface Outbox {
  /** Creates or updates the schema webhook_outbox (idempotent; safe from several processes at once). */
  migrate(): Promise<void>;
  /** A tenant with one signing secret, returned this once only: receivers verify webhooks with it. */
  createTenant(name: string): Promise<{ tenantId: string; signingSecret: string }>;
  /**
   * Enqueues a webhook in the caller's transaction (a pg client with an open transaction, or a
   * drizzle transaction): it is sent once that commits, never if it rolls back. A pg.Pool enqueues in
   * a transaction of its own. Throws UnknownTenantError, UrlRejectedError, InvalidPayloadError or
   * InvalidArgumentError before anything is written.
   */
  enqueue(tx: Transaction, input: EnqueueInput): Promise<Enqueued>;
  /** A worker of this outbox's database; any number may run, in any processes. */
  worker(options?: OutboxWorkerOptions): OutboxWorkerHandle;
  /**
   * Sends a succeeded or failed delivery again with a fresh attempt budget (same webhook-id).
   * Throws DeliveryNotFoundError, or DeliveryInFlightError while it is pending or delivering.
   */
  redeliver(deliveryId: string): Promise<void>;
  /** Ends the outbox's own pool (not an application's). Stop its workers first. */
  close(): Promise<void>;
}

/** The policy `options` make, every field given. */
function policyOf(options: OutboxOptions): DeliveryPolicy {
  const policy = { ...DELIVERY_POLICY_DEFAULTS, ...definedOnly(options.policy ?? {}) };
  const { retryDelaysMs, timeoutMs, connectTimeoutMs } = policy;
  const wholeMs = (value: unknown, max: number) => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= max;
  if (!Array.isArray(retryDelaysMs) || retryDelaysMs.length < 1 || retryDelaysMs.length > 50 || !retryDelaysMs.every((d) => wholeMs(d, 2_147_483_647))) {
    throw new TypeError("policy.retryDelaysMs must list 1 to 50 delays, each a whole number of milliseconds");
  }
  if (!wholeMs(timeoutMs, 300_000) || timeoutMs < 100) throw new TypeError("policy.timeoutMs must be 100 to 300000 ms");
  if (!wholeMs(connectTimeoutMs, 300_000) || connectTimeoutMs < 100) throw new TypeError("policy.connectTimeoutMs must be 100 to 300000 ms");
  return { retryDelaysMs: [...retryDelaysMs], timeoutMs, connectTimeoutMs };
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as Partial<T>;
}

/**
 * An outbox over an application's database: its tables, views and functions live in the schema
 * webhook_outbox, beside the application's own.
 */
export function createOutbox(options: OutboxOptions): Outbox {
  if (!options.connectionString === !options.pool) throw new TypeError("createOutbox needs either connectionString or pool");
  const policy = policyOf(options);
  const allowInsecureUrls = options.allowInsecureUrls ?? OUTBOX_DEFAULTS.allowInsecureUrls;
  const maxPayloadBytes = options.maxPayloadBytes ?? OUTBOX_DEFAULTS.maxPayloadBytes;
  const logger = options.logger ?? pino({ level: "silent" });
  const urlPolicy = new UrlPolicy({
    allowInsecure: allowInsecureUrls,
    allowedCidrs: options.allowedCidrs ?? OUTBOX_DEFAULTS.allowedCidrs,
    resolver: options.resolver,
  });
  const onError = (error: Error) =>
    logger.warn({ error: error.message, code: (error as { code?: string }).code }, "database connection error");

  let opened: Promise<Database> | undefined;
  const database = (): Promise<Database> => {
    opened ??= options.pool
      ? Promise.resolve(databaseOnPool(options.pool, { listenConfig: options.pool.options, onError }))
      : openDatabase({ databaseUrl: options.connectionString, poolSize: options.poolSize ?? OUTBOX_DEFAULTS.poolSize, onError });
    return opened;
  };

  return {
    async migrate() {
      const db = await database();
      await runMigrations(db);
      await writeSqlSettings(db.query, {
        policy,
        allowInsecureUrls,
        allowedCidrs: options.allowedCidrs ?? OUTBOX_DEFAULTS.allowedCidrs,
        maxPayloadBytes,
      });
    },

    async createTenant(name) {
      return createSigningTenant(await database(), admitText("name", name, 200));
    },

    async enqueue(tx, input) {
      // Every check before the first statement: a refusal leaves the caller's transaction usable.
      const tenantId = admitTenantId(input.tenantId);
      const url = admitUrl(urlPolicy, input.url);
      const eventType = admitEventType(input.eventType);
      const idempotencyKey = admitIdempotencyKey(input.idempotencyKey);
      const payloadJson = serializePayload(input.payload, maxPayloadBytes);
      const enqueued = await inCallersTransaction(tx, (query) =>
        enqueueOne(query, { tenantId, url, eventType, idempotencyKey, payloadJson, policy }),
      );
      if (!enqueued) throw new UnknownTenantError(tenantId);
      return enqueued;
    },

    worker(workerOptions = {}) {
      const sender = new HttpSender(urlPolicy);
      let worker: OutboxWorker | undefined;
      let retention: RetentionSweeper | undefined;
      const { retentionMs = 0, ...settings } = definedOnly(workerOptions);
      const workerId = workerOptions.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
      const handle: OutboxWorkerHandle = {
        workerId,
        async start() {
          if (worker) return;
          const db = await database();
          worker = new OutboxWorker({ ...settings, database: db, sender, logger, workerId });
          await worker.start();
          retention = startRetentionSweeper({ database: db, logger, retentionMs });
        },
        async stop() {
          await retention?.stop();
          await worker?.stop();
          await sender.close();
        },
      };
      return handle;
    },

    async redeliver(deliveryId) {
      if (typeof deliveryId !== "string" || !isUuid(deliveryId)) throw new DeliveryNotFoundError(String(deliveryId));
      await redeliverRow(await database(), deliveryId);
    },

    async close() {
      if (!opened) return;
      const db = await opened;
      opened = undefined;
      await db.close();
    },
  };
}

