import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  check,
  cidr,
  inet,
  foreignKey,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  smallint,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
  varchar,
} from "drizzle-orm/pg-core";

export const JOB_STATUSES = ["queued", "processing", "completed", "partial", "failed"] as const;
export const TERMINAL_JOB_STATUSES = ["completed", "partial", "failed"] as const;
export const PROJECT_STATUSES = ["queued", "processing", "completed", "failed"] as const;
export const DELIVERY_STATUSES = ["pending", "delivering", "succeeded", "failed"] as const;
export const ATTEMPT_OUTCOMES = ["succeeded", "retry", "failed", "interrupted"] as const;
export const ERROR_KINDS = [
  "timeout",
  "connect",
  "dns",
  "tls",
  "blocked_address",
  "http_status",
  "redirect",
  "other",
  // Not sent: the destination is disabled (src/outbox/sql/claim.ts fails its due deliveries).
  "destination_disabled",
] as const;
export const API_FLAVORS = ["nouvel", "veo3"] as const;
/** A destination's circuit: healthy (closed), open (its deliveries wait, one probe per cool-down), disabled. */
export const DESTINATION_STATES = ["healthy", "open", "disabled"] as const;
/** Why a destination was disabled: it answered 410 Gone, or it kept failing for DESTINATION_DISABLE_AFTER. */
export const DISABLED_REASONS = ["gone", "failing"] as const;

export type JobStatus = (typeof JOB_STATUSES)[number];
export type ProjectStatus = (typeof PROJECT_STATUSES)[number];
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];
export type ErrorKind = (typeof ERROR_KINDS)[number];
export type ApiFlavor = (typeof API_FLAVORS)[number];
export type DestinationState = (typeof DESTINATION_STATES)[number];
export type DisabledReason = (typeof DISABLED_REASONS)[number];

/** scheme://AUTHORITY/…: the part of a URL that names its destination. The same pattern runs in SQL and in JS. */
export const URL_AUTHORITY_PATTERN = "^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)";

/** The longest event type a delivery may have, in characters. */
export const MAX_EVENT_TYPE_LENGTH = 255;
/** The longest idempotency key, in characters. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/**
 * The host:port of a URL (its authority), lower-cased: webhook_deliveries.destination, what the
 * per-destination cap counts. SQL over the column or expression `url`.
 */
export function destinationSql(url: string): string {
  return `lower(substring(${url} from '${URL_AUTHORITY_PATTERN}'))`;
}

/**
 * A destination's id, derived from (tenant_id, url): a name-based UUID (version 3, the MD5 of
 * "tenant_id url"). Every producer of a delivery gets its destination_id without a lookup, and
 * the destinations primary key is the unique (tenant_id, url) without an index on URLs up to
 * 2048 characters (a btree entry holds at most 2704 bytes).
 *
 * The producers write destinations.id, webhook_deliveries.destination and destination_id with
 * these expressions (src/outbox/enqueue.ts; the SQL API's function, migrations/0013); an insert
 * that leaves them out gets them derived by a BEFORE INSERT trigger (migrations/0014). They are not
 * generated columns: Postgres 15 parses a table's generation expressions again for every statement
 * that inserts into or updates it, even where none is computed, and the claim and the record
 * statements update webhook_deliveries many times a second.
 */
export function destinationIdSql(tenantId: string, url: string): string {
  const hex = `md5(${tenantId}::text || ' ' || ${url})`;
  return (
    `(substr(${hex}, 1, 12) || '3' || substr(${hex}, 14, 3) || ` +
    `translate(substr(${hex}, 17, 1), '0123456789abcdef', '89ab89ab89ab89ab') || substr(${hex}, 18))::uuid`
  );
}

const inList = (values: readonly string[]) => sql.raw(values.map((value) => `'${value}'`).join(", "));
const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
// Keyset cursors carry JS Dates (milliseconds), so paginated creation times are stored at that precision.
const nowMs = sql`date_trunc('milliseconds', now())`;

/**
 * Every table, view and function of the product lives in this schema, so the outbox can share an
 * application's database (and its `public` schema) without a name colliding. Raw SQL names it.
 */
export const OUTBOX_SCHEMA = "webhook_outbox";
export const outboxSchema = pgSchema(OUTBOX_SCHEMA);

/**
 * The id of a job or a delivery: time-ordered (UUID version 7, migrations/0010_time_ordered_ids.sql),
 * so the rows the hot path claims and settles together share index pages.
 */
const TIME_ORDERED_ID = sql`webhook_outbox.uuid_v7()`;

export const tenants = outboxSchema.table("tenants", {
  id: uuid("id").primaryKey().defaultRandom(),
  name: text("name").notNull(),
  createdAt: tstz("created_at").notNull().defaultNow(),
});

export const apiKeys = outboxSchema.table(
  "api_keys",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull(),
    // sha256 of the whole key; the key itself is shown once and never stored.
    keyHash: text("key_hash").notNull(),
    prefix: text("prefix").notNull(),
    createdAt: tstz("created_at").notNull().defaultNow(),
    revokedAt: tstz("revoked_at"),
  },
  (t) => [
    foreignKey({ name: "api_keys_tenant_fk", columns: [t.tenantId], foreignColumns: [tenants.id] }).onDelete("cascade"),
    unique("api_keys_key_hash_uq").on(t.keyHash),
    unique("api_keys_prefix_uq").on(t.prefix),
    index("api_keys_tenant_idx").on(t.tenantId),
  ],
);

export const signingSecrets = outboxSchema.table(
  "signing_secrets",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull(),
    secret: text("secret").notNull(),
    createdAt: tstz("created_at").notNull().defaultNow(),
    expiresAt: tstz("expires_at"),
  },
  (t) => [
    foreignKey({ name: "signing_secrets_tenant_fk", columns: [t.tenantId], foreignColumns: [tenants.id] }).onDelete(
      "cascade",
    ),
    check("signing_secrets_format_ck", sql`${t.secret} ~ '^whsec_[A-Za-z0-9+/]{43}=$'`),
    index("signing_secrets_tenant_idx").on(t.tenantId, t.createdAt),
  ],
);

export const jobs = outboxSchema.table(
  "jobs",
  {
    id: uuid("id").primaryKey().default(TIME_ORDERED_ID),
    tenantId: uuid("tenant_id").notNull(),
    apiFlavor: text("api_flavor").$type<ApiFlavor>().notNull(),
    prompt: text("prompt").notNull(),
    status: text("status").$type<JobStatus>().notNull().default("queued"),
    webhookUrl: text("webhook_url"),
    createdAt: tstz("created_at").notNull().default(nowMs),
    updatedAt: tstz("updated_at").notNull().defaultNow(),
    completedAt: tstz("completed_at"),
    deadlineAt: tstz("deadline_at").notNull(),
  },
  (t) => [
    foreignKey({ name: "jobs_tenant_fk", columns: [t.tenantId], foreignColumns: [tenants.id] }).onDelete("cascade"),
    check("jobs_status_ck", sql`${t.status} in (${inList(JOB_STATUSES)})`),
    check("jobs_api_flavor_ck", sql`${t.apiFlavor} in (${inList(API_FLAVORS)})`),
    check(
      "jobs_completed_at_ck",
      sql`(${t.status} in (${inList(TERMINAL_JOB_STATUSES)})) = (${t.completedAt} is not null)`,
    ),
    // GET /api/v1/jobs: newest first per tenant, keyset-paginated on (created_at, id).
    index("jobs_tenant_created_idx").on(t.tenantId, t.createdAt.desc(), t.id.desc()),
    // The deadline sweeper only ever looks at open jobs.
    index("jobs_open_deadline_idx").on(t.deadlineAt).where(sql`${t.status} in ('queued', 'processing')`),
  ],
);

export const jobProjects = outboxSchema.table(
  "job_projects",
  {
    id: uuid("id").notNull().defaultRandom(),
    jobId: uuid("job_id").notNull(),
    index: smallint("index").notNull(),
    status: text("status").$type<ProjectStatus>().notNull().default("queued"),
    videoUrl: text("video_url"),
    seed: bigint("seed", { mode: "number" }),
    errorCode: text("error_code"),
    errorMessage: text("error_message"),
    updatedAt: tstz("updated_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: "job_projects_pk", columns: [t.jobId, t.index] }),
    unique("job_projects_id_uq").on(t.id),
    foreignKey({ name: "job_projects_job_fk", columns: [t.jobId], foreignColumns: [jobs.id] }).onDelete("cascade"),
    check("job_projects_status_ck", sql`${t.status} in (${inList(PROJECT_STATUSES)})`),
    check("job_projects_index_ck", sql`${t.index} >= 0 and ${t.index} < 20`),
  ],
);

/**
 * An `Idempotency-Key` a create request carried: the job it made and that job as first answered,
 * written in the create's statement. The same key and body within 24 h answers with it again.
 */
export const idempotencyKeys = outboxSchema.table(
  "idempotency_keys",
  {
    tenantId: uuid("tenant_id").notNull(),
    key: text("key").notNull(),
    /** sha256 of the route and the request body: another body with the same key is refused. */
    requestHash: text("request_hash").notNull(),
    jobId: uuid("job_id").notNull(),
    /** The job and its projects as the create's statement wrote them: the answer given again. */
    response: jsonb("response").notNull(),
    createdAt: tstz("created_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: "idempotency_keys_pk", columns: [t.tenantId, t.key] }),
    foreignKey({ name: "idempotency_keys_tenant_fk", columns: [t.tenantId], foreignColumns: [tenants.id] }).onDelete(
      "cascade",
    ),
    foreignKey({ name: "idempotency_keys_job_fk", columns: [t.jobId], foreignColumns: [jobs.id] }).onDelete("cascade"),
    check("idempotency_keys_key_ck", sql`${t.key} ~ '^[ -~]{1,255}$'`),
    // Pruning: keys past their 24 h, oldest first.
    index("idempotency_keys_created_idx").on(t.createdAt),
  ],
);

/**
 * A tenant's webhook URL and its health, shared by every worker. The record statement
 * (src/outbox/sql/record.ts) moves it between states; the claim (src/outbox/sql/claim.ts) holds an
 * open one's deliveries back and lets one probe through per cool-down.
 */
export const destinations = outboxSchema.table(
  "destinations",
  {
    /** destinationIdSql(tenant_id, url), written by the producer that first names the destination. */
    id: uuid("id").primaryKey(),
    tenantId: uuid("tenant_id").notNull(),
    url: text("url").notNull(),
    state: text("state").$type<DestinationState>().notNull().default("healthy"),
    /** Failed attempts since the last success. */
    consecutiveFailures: integer("consecutive_failures").notNull().default(0),
    /** When the first failed attempt of the current run of failures ended; null while it succeeds. */
    firstFailureAt: tstz("first_failure_at"),
    lastSuccessAt: tstz("last_success_at"),
    lastFailureAt: tstz("last_failure_at"),
    /** While open: the end of the cool-down (or of the probe's lease while a probe is in flight). */
    openUntil: tstz("open_until"),
    disabledAt: tstz("disabled_at"),
    disabledReason: text("disabled_reason").$type<DisabledReason>(),
    createdAt: tstz("created_at").notNull().default(nowMs),
    updatedAt: tstz("updated_at").notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ name: "destinations_tenant_fk", columns: [t.tenantId], foreignColumns: [tenants.id] }).onDelete("cascade"),
    check("destinations_state_ck", sql`${t.state} in (${inList(DESTINATION_STATES)})`),
    check(
      "destinations_disabled_reason_ck",
      sql`${t.disabledReason} is null or ${t.disabledReason} in (${inList(DISABLED_REASONS)})`,
    ),
    check(
      "destinations_disabled_ck",
      sql`(${t.state} = 'disabled') = (${t.disabledAt} is not null and ${t.disabledReason} is not null)`,
    ),
    check("destinations_open_ck", sql`(${t.state} = 'open') = (${t.openUntil} is not null)`),
    check(
      "destinations_failures_ck",
      sql`${t.consecutiveFailures} >= 0 and (${t.consecutiveFailures} > 0) = (${t.firstFailureAt} is not null)`,
    ),
    // GET /api/v1/destinations: per tenant, newest first, keyset-paginated on (created_at, id).
    index("destinations_tenant_created_idx").on(t.tenantId, t.createdAt.desc(), t.id.desc()),
    // The claim's set of destinations it holds back or probes: open and disabled ones only (a handful).
    index("destinations_unhealthy_idx")
      .on(t.openUntil)
      .where(sql`${t.state} <> 'healthy'`),
  ],
);

/** Every change of a destination's state, with why: the history behind its current state. */
export const destinationEvents = outboxSchema.table(
  "destination_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    destinationId: uuid("destination_id").notNull(),
    tenantId: uuid("tenant_id").notNull(),
    fromState: text("from_state").$type<DestinationState>().notNull(),
    toState: text("to_state").$type<DestinationState>().notNull(),
    /** failures (the threshold was reached), probe_failed, gone, failing, success, enabled. */
    reason: text("reason").notNull(),
    consecutiveFailures: integer("consecutive_failures").notNull(),
    at: tstz("at").notNull().defaultNow(),
  },
  (t) => [
    foreignKey({
      name: "destination_events_destination_fk",
      columns: [t.destinationId],
      foreignColumns: [destinations.id],
    }).onDelete("cascade"),
    check("destination_events_from_state_ck", sql`${t.fromState} in (${inList(DESTINATION_STATES)})`),
    check("destination_events_to_state_ck", sql`${t.toState} in (${inList(DESTINATION_STATES)})`),
    index("destination_events_destination_idx").on(t.destinationId, t.at),
    // Retention prunes the history by age.
    index("destination_events_at_idx").on(t.at),
  ],
);

/**
 * Where a tenant hears about its own deliveries (delivery.exhausted, destination.disabled,
 * destination.recovered), with the policy those deliveries freeze. One per tenant.
 */
export const operationalWebhooks = outboxSchema.table(
  "operational_webhooks",
  {
    tenantId: uuid("tenant_id").primaryKey(),
    url: text("url").notNull(),
    retryDelaysMs: integer("retry_delays_ms").array().notNull(),
    timeoutMs: integer("timeout_ms").notNull(),
    connectTimeoutMs: integer("connect_timeout_ms").notNull(),
    createdAt: tstz("created_at").notNull().defaultNow(),
    updatedAt: tstz("updated_at").notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ name: "operational_webhooks_tenant_fk", columns: [t.tenantId], foreignColumns: [tenants.id] }).onDelete(
      "cascade",
    ),
    check("operational_webhooks_retry_delays_ck", sql`cardinality(${t.retryDelaysMs}) >= 1`),
  ],
);

export const REPLAY_STATES = ["running", "done"] as const;
export type ReplayState = (typeof REPLAY_STATES)[number];

/**
 * A bulk redelivery: every delivery of a tenant with `status`, created in [since, until) (and to
 * `url`, when set), redelivered in batches oldest first by the workers' paced step, each once: the
 * cursor (created_at, id) of the last delivery visited only moves forward.
 */
export const replays = outboxSchema.table(
  "replays",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull(),
    status: text("status").$type<"failed" | "succeeded">().notNull(),
    since: tstz("since").notNull(),
    until: tstz("until").notNull(),
    url: text("url"),
    state: text("state").$type<ReplayState>().notNull().default("running"),
    /** The deliveries that matched when the replay was created. */
    matched: integer("matched").notNull(),
    /** Deliveries redelivered so far. */
    requeued: integer("requeued").notNull().default(0),
    // The last delivery visited, (since, the nil uuid) before the first batch.
    cursorCreatedAt: tstz("cursor_created_at").notNull(),
    cursorId: uuid("cursor_id").notNull(),
    /** The next batch is taken at this time or after. */
    nextStepAt: tstz("next_step_at").notNull().defaultNow(),
    createdAt: tstz("created_at").notNull().defaultNow(),
    updatedAt: tstz("updated_at").notNull().defaultNow(),
    finishedAt: tstz("finished_at"),
  },
  (t) => [
    foreignKey({ name: "replays_tenant_fk", columns: [t.tenantId], foreignColumns: [tenants.id] }).onDelete("cascade"),
    check("replays_status_ck", sql`${t.status} in ('failed', 'succeeded')`),
    check("replays_state_ck", sql`${t.state} in (${inList(REPLAY_STATES)})`),
    check("replays_window_ck", sql`${t.since} < ${t.until}`),
    check("replays_done_ck", sql`(${t.state} = 'done') = (${t.finishedAt} is not null)`),
    // The paced step: running replays, the one due first.
    index("replays_running_idx")
      .on(t.nextStepAt)
      .where(sql`${t.state} = 'running'`),
  ],
);

export const webhookDeliveries = outboxSchema.table(
  "webhook_deliveries",
  {
    id: uuid("id").primaryKey().default(TIME_ORDERED_ID),
    tenantId: uuid("tenant_id").notNull(),
    /**
     * What produced the delivery, when the job API did: at most one delivery per (job, event type).
     * Null for deliveries enqueued through the library or the SQL API.
     */
    jobId: uuid("job_id"),
    eventType: text("event_type").notNull(),
    /** The enqueuer's key: one delivery per (tenant, key), however often it is enqueued. */
    idempotencyKey: text("idempotency_key"),
    url: text("url").notNull(),
    payload: jsonb("payload").notNull(),
    status: text("status").$type<DeliveryStatus>().notNull().default("pending"),
    attemptCount: integer("attempt_count").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull(),
    // The policy in force at enqueue, frozen so later configuration never rewrites history.
    retryDelaysMs: integer("retry_delays_ms").array().notNull(),
    timeoutMs: integer("timeout_ms").notNull(),
    connectTimeoutMs: integer("connect_timeout_ms").notNull(),
    // While delivering, next_attempt_at equals locked_until: an expired lease is simply due again.
    nextAttemptAt: tstz("next_attempt_at"),
    lockedBy: text("locked_by"),
    lockedUntil: tstz("locked_until"),
    lastResponseStatus: smallint("last_response_status"),
    lastError: text("last_error"),
    createdAt: tstz("created_at").notNull().default(nowMs),
    finishedAt: tstz("finished_at"),
    // host:port of the URL (its authority), lower-cased: what the per-destination cap counts. Written
    // by every producer from url (destinationSql); url never changes.
    destination: text("destination").notNull(),
    // Leases that ran out with the attempt unrecorded (its worker died). They spend no attempt of the
    // budget; past MAX_INTERRUPTIONS the delivery fails, so a payload that crashes workers still ends.
    interruptions: integer("interruptions").notNull().default(0),
    // The destination (tenant_id, url) whose health this delivery shares, written by every producer
    // (destinationIdSql).
    destinationId: uuid("destination_id").notNull(),
  },
  (t) => [
    foreignKey({ name: "webhook_deliveries_tenant_fk", columns: [t.tenantId], foreignColumns: [tenants.id] }).onDelete(
      "cascade",
    ),
    // A job's deliveries (and their attempts) go when the job is deleted.
    foreignKey({ name: "webhook_deliveries_job_fk", columns: [t.jobId], foreignColumns: [jobs.id] }).onDelete("cascade"),
    foreignKey({
      name: "webhook_deliveries_destination_fk",
      columns: [t.destinationId],
      foreignColumns: [destinations.id],
    }),
    // NULLS DISTINCT: deliveries without a job never collide.
    unique("webhook_deliveries_job_event_uq").on(t.jobId, t.eventType),
    // Keyed deliveries only (the job API's carry no key): ON CONFLICT names it with its predicate.
    uniqueIndex("webhook_deliveries_idempotency_uq")
      .on(t.tenantId, t.idempotencyKey)
      .where(sql`${t.idempotencyKey} is not null`),
    check(
      "webhook_deliveries_event_type_ck",
      sql`char_length(${t.eventType}) between 1 and ${sql.raw(String(MAX_EVENT_TYPE_LENGTH))}`,
    ),
    check(
      "webhook_deliveries_idempotency_key_ck",
      sql`char_length(${t.idempotencyKey}) between 1 and ${sql.raw(String(MAX_IDEMPOTENCY_KEY_LENGTH))}`,
    ),
    check("webhook_deliveries_status_ck", sql`${t.status} in (${inList(DELIVERY_STATUSES)})`),
    check("webhook_deliveries_attempts_ck", sql`${t.attemptCount} >= 0 and ${t.attemptCount} <= ${t.maxAttempts}`),
    check("webhook_deliveries_max_attempts_ck", sql`${t.maxAttempts} >= 1`),
    check(
      "webhook_deliveries_due_ck",
      sql`(${t.status} in ('pending', 'delivering')) = (${t.nextAttemptAt} is not null)`,
    ),
    check(
      "webhook_deliveries_lease_ck",
      sql`(${t.status} = 'delivering') = (${t.lockedBy} is not null and ${t.lockedUntil} is not null)`,
    ),
    // The claim query: due work only, in due order. Finished rows never enter this index.
    index("webhook_deliveries_claim_idx")
      .on(t.nextAttemptAt)
      .where(sql`${t.status} in ('pending', 'delivering')`),
    // The claim's count of attempts in flight per destination: leased rows only (a few hundred). The
    // lease test in its predicate keeps statements that find delivering rows by id on the primary key.
    index("webhook_deliveries_in_flight_idx")
      .on(t.destination, t.lockedUntil)
      .where(sql`${t.status} = 'delivering' and ${t.lockedUntil} is not null`),
    // Parked deliveries (pending, next_attempt_at 'infinity': their destination's circuit is open), per
    // destination, oldest first: the claim's probe, and what goes at once when the destination closes
    // or is enabled. Empty while every destination is healthy, so the hot path never touches it.
    index("webhook_deliveries_parked_idx")
      .on(t.destinationId, t.createdAt)
      .where(sql`${t.status} = 'pending' and ${t.nextAttemptAt} = 'infinity'`),
    index("webhook_deliveries_tenant_created_idx").on(t.tenantId, t.createdAt.desc(), t.id.desc()),
    // The dashboard: the operator's list of every tenant's deliveries, newest first.
    index("webhook_deliveries_created_idx").on(t.createdAt.desc(), t.id.desc()),
    // The dashboard: one destination's deliveries, newest first, and its attempts' statistics.
    index("webhook_deliveries_destination_created_idx").on(t.destinationId, t.createdAt.desc(), t.id.desc()),
    // GET /api/v1/deliveries?status=failed (the polling safety net). Partial, so the claim loop's
    // updates of open rows never touch it; other statuses are served by ..._tenant_created_idx.
    index("webhook_deliveries_tenant_failed_idx")
      .on(t.tenantId, t.createdAt.desc(), t.id.desc())
      .where(sql`${t.status} = 'failed'`),
    // Audit "failed in the last hour" and retention's "finished before the cutoff": finished rows only.
    index("webhook_deliveries_finished_idx")
      .on(t.status, t.finishedAt)
      .where(sql`${t.finishedAt} is not null`),
  ],
);

export const webhookDeliveryAttempts = outboxSchema.table(
  "webhook_delivery_attempts",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    deliveryId: uuid("delivery_id").notNull(),
    attemptNumber: integer("attempt_number").notNull(),
    workerId: text("worker_id").notNull(),
    startedAt: tstz("started_at").notNull(),
    finishedAt: tstz("finished_at").notNull(),
    durationMs: integer("duration_ms").notNull(),
    responseStatus: smallint("response_status"),
    responseBodyExcerpt: text("response_body_excerpt"),
    errorKind: text("error_kind").$type<ErrorKind>(),
    errorMessage: text("error_message"),
    outcome: text("outcome").$type<AttemptOutcome>().notNull(),
  },
  (t) => [
    foreignKey({
      name: "webhook_delivery_attempts_delivery_fk",
      columns: [t.deliveryId],
      foreignColumns: [webhookDeliveries.id],
    }).onDelete("cascade"),
    unique("webhook_delivery_attempts_number_uq").on(t.deliveryId, t.attemptNumber),
    check("webhook_delivery_attempts_outcome_ck", sql`${t.outcome} in (${inList(ATTEMPT_OUTCOMES)})`),
    check(
      "webhook_delivery_attempts_error_kind_ck",
      sql`${t.errorKind} is null or ${t.errorKind} in (${inList(ERROR_KINDS)})`,
    ),
    check("webhook_delivery_attempts_excerpt_ck", sql`octet_length(${t.responseBodyExcerpt}) <= 1024`),
    index("webhook_delivery_attempts_started_idx").on(t.startedAt),
  ],
);

/**
 * The SQL API's settings (webhook_outbox.enqueue reads them): one row, written by every migrate from
 * the environment (the CLI, the service) or from createOutbox's options (the library).
 */
export const settings = outboxSchema.table(
  "settings",
  {
    id: boolean("id").primaryKey().default(true),
    /** The policy a delivery enqueued through SQL freezes. */
    retryDelaysMs: integer("retry_delays_ms").array().notNull(),
    timeoutMs: integer("timeout_ms").notNull(),
    connectTimeoutMs: integer("connect_timeout_ms").notNull(),
    /** http URLs and non-public IP literals accepted (development and tests only). */
    allowInsecureUrls: boolean("allow_insecure_urls").notNull(),
    /** Non-public ranges accepted all the same (WEBHOOK_ALLOWED_CIDRS), as inet: host bits may be set. */
    allowedCidrs: inet("allowed_cidrs").array().notNull(),
    /** The ranges an IP-literal host must not be in: every range that is not public unicast. */
    blockedCidrs: cidr("blocked_cidrs").array().notNull(),
    maxPayloadBytes: integer("max_payload_bytes").notNull(),
    updatedAt: tstz("updated_at").notNull().defaultNow(),
  },
  (t) => [
    check("settings_one_row_ck", sql`${t.id}`),
    check("settings_retry_delays_ck", sql`cardinality(${t.retryDelaysMs}) between 1 and 50`),
  ],
);

/**
 * rate-limiter-flexible's Postgres store (src/http/rate-limit.ts): one row per API key and window.
 * The library writes it positionally, so the column order is part of its contract. `expire` is
 * epoch milliseconds.
 */
export const apiRateLimits = outboxSchema.table("api_rate_limits", {
  key: varchar("key", { length: 255 }).primaryKey(),
  points: integer("points").notNull().default(0),
  expire: bigint("expire", { mode: "number" }),
});

/**
 * One row per delivery with its latest attempt and its job (null job columns for deliveries of the
 * library and SQL API): the starting point for ad-hoc audit SQL.
 */
export const deliveryAudit = outboxSchema.view("delivery_audit", {
  deliveryId: uuid("delivery_id"),
  tenantId: uuid("tenant_id"),
  jobId: uuid("job_id"),
  jobStatus: text("job_status"),
  apiFlavor: text("api_flavor"),
  eventType: text("event_type"),
  idempotencyKey: text("idempotency_key"),
  url: text("url"),
  deliveryStatus: text("delivery_status"),
  attemptCount: integer("attempt_count"),
  maxAttempts: integer("max_attempts"),
  nextAttemptAt: tstz("next_attempt_at"),
  createdAt: tstz("created_at"),
  finishedAt: tstz("finished_at"),
  lastAttemptNumber: integer("last_attempt_number"),
  lastAttemptOutcome: text("last_attempt_outcome"),
  lastAttemptStatus: smallint("last_attempt_status"),
  lastAttemptErrorKind: text("last_attempt_error_kind"),
  lastAttemptError: text("last_attempt_error"),
  lastAttemptDurationMs: integer("last_attempt_duration_ms"),
  lastAttemptAt: tstz("last_attempt_at"),
}).as(sql`
  select d.id as delivery_id, d.tenant_id, d.job_id, j.status as job_status, j.api_flavor, d.event_type,
         d.idempotency_key, d.url,
         d.status as delivery_status, d.attempt_count, d.max_attempts, d.next_attempt_at, d.created_at, d.finished_at,
         a.attempt_number as last_attempt_number, a.outcome as last_attempt_outcome,
         a.response_status as last_attempt_status, a.error_kind as last_attempt_error_kind,
         a.error_message as last_attempt_error, a.duration_ms as last_attempt_duration_ms,
         a.finished_at as last_attempt_at
  from webhook_outbox.webhook_deliveries d
  left join webhook_outbox.jobs j on j.id = d.job_id
  left join lateral (
    select * from webhook_outbox.webhook_delivery_attempts x
    where x.delivery_id = d.id
    order by x.attempt_number desc
    limit 1
  ) a on true
`);
