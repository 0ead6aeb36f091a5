-- Names here are unqualified: runMigrations (src/db/migrate.ts) runs every migration with
-- search_path = webhook_outbox, so a fresh database gets these objects in that schema and nothing
-- in public. Databases made before 0004 ran this in public; 0004 moves what it made.
CREATE TABLE "api_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"key_hash" text NOT NULL,
	"prefix" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_keys_key_hash_uq" UNIQUE("key_hash"),
	CONSTRAINT "api_keys_prefix_uq" UNIQUE("prefix")
);
--> statement-breakpoint
CREATE TABLE "job_projects" (
	"id" uuid DEFAULT gen_random_uuid() NOT NULL,
	"job_id" uuid NOT NULL,
	"index" smallint NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"video_url" text,
	"seed" bigint,
	"error_code" text,
	"error_message" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "job_projects_pk" PRIMARY KEY("job_id","index"),
	CONSTRAINT "job_projects_id_uq" UNIQUE("id"),
	CONSTRAINT "job_projects_status_ck" CHECK ("job_projects"."status" in ('queued', 'processing', 'completed', 'failed')),
	CONSTRAINT "job_projects_index_ck" CHECK ("job_projects"."index" >= 0 and "job_projects"."index" < 20)
);
--> statement-breakpoint
CREATE TABLE "jobs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"api_flavor" text NOT NULL,
	"prompt" text NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"webhook_url" text,
	"created_at" timestamp with time zone DEFAULT date_trunc('milliseconds', now()) NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	"deadline_at" timestamp with time zone NOT NULL,
	CONSTRAINT "jobs_status_ck" CHECK ("jobs"."status" in ('queued', 'processing', 'completed', 'partial', 'failed')),
	CONSTRAINT "jobs_api_flavor_ck" CHECK ("jobs"."api_flavor" in ('nouvel', 'veo3')),
	CONSTRAINT "jobs_completed_at_ck" CHECK (("jobs"."status" in ('completed', 'partial', 'failed')) = ("jobs"."completed_at" is not null))
);
--> statement-breakpoint
CREATE TABLE "signing_secrets" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"secret" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	CONSTRAINT "signing_secrets_format_ck" CHECK ("signing_secrets"."secret" ~ '^whsec_[A-Za-z0-9+/]{43}=$')
);
--> statement-breakpoint
CREATE TABLE "tenants" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"job_id" uuid NOT NULL,
	"event_type" text NOT NULL,
	"url" text NOT NULL,
	"payload" jsonb NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempt_count" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer NOT NULL,
	"retry_delays_ms" integer[] NOT NULL,
	"timeout_ms" integer NOT NULL,
	"connect_timeout_ms" integer NOT NULL,
	"next_attempt_at" timestamp with time zone,
	"locked_by" text,
	"locked_until" timestamp with time zone,
	"last_response_status" smallint,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT date_trunc('milliseconds', now()) NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "webhook_deliveries_job_event_uq" UNIQUE("job_id","event_type"),
	CONSTRAINT "webhook_deliveries_status_ck" CHECK ("webhook_deliveries"."status" in ('pending', 'delivering', 'succeeded', 'failed')),
	CONSTRAINT "webhook_deliveries_attempts_ck" CHECK ("webhook_deliveries"."attempt_count" >= 0 and "webhook_deliveries"."attempt_count" <= "webhook_deliveries"."max_attempts"),
	CONSTRAINT "webhook_deliveries_max_attempts_ck" CHECK ("webhook_deliveries"."max_attempts" >= 1),
	CONSTRAINT "webhook_deliveries_due_ck" CHECK (("webhook_deliveries"."status" in ('pending', 'delivering')) = ("webhook_deliveries"."next_attempt_at" is not null)),
	CONSTRAINT "webhook_deliveries_lease_ck" CHECK (("webhook_deliveries"."status" = 'delivering') = ("webhook_deliveries"."locked_by" is not null and "webhook_deliveries"."locked_until" is not null))
);
--> statement-breakpoint
CREATE TABLE "webhook_delivery_attempts" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"delivery_id" uuid NOT NULL,
	"attempt_number" integer NOT NULL,
	"worker_id" text NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"finished_at" timestamp with time zone NOT NULL,
	"duration_ms" integer NOT NULL,
	"response_status" smallint,
	"response_body_excerpt" text,
	"error_kind" text,
	"error_message" text,
	"outcome" text NOT NULL,
	CONSTRAINT "webhook_delivery_attempts_number_uq" UNIQUE("delivery_id","attempt_number"),
	CONSTRAINT "webhook_delivery_attempts_outcome_ck" CHECK ("webhook_delivery_attempts"."outcome" in ('succeeded', 'retry', 'failed', 'interrupted')),
	CONSTRAINT "webhook_delivery_attempts_error_kind_ck" CHECK ("webhook_delivery_attempts"."error_kind" is null or "webhook_delivery_attempts"."error_kind" in ('timeout', 'connect', 'dns', 'tls', 'blocked_address', 'http_status', 'redirect', 'other')),
	CONSTRAINT "webhook_delivery_attempts_excerpt_ck" CHECK (octet_length("webhook_delivery_attempts"."response_body_excerpt") <= 1024)
);
--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_tenant_fk" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "job_projects" ADD CONSTRAINT "job_projects_job_fk" FOREIGN KEY ("job_id") REFERENCES "jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "jobs" ADD CONSTRAINT "jobs_tenant_fk" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "signing_secrets" ADD CONSTRAINT "signing_secrets_tenant_fk" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_tenant_fk" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_job_fk" FOREIGN KEY ("job_id") REFERENCES "jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_delivery_attempts" ADD CONSTRAINT "webhook_delivery_attempts_delivery_fk" FOREIGN KEY ("delivery_id") REFERENCES "webhook_deliveries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "api_keys_tenant_idx" ON "api_keys" USING btree ("tenant_id");--> statement-breakpoint
CREATE INDEX "jobs_tenant_created_idx" ON "jobs" USING btree ("tenant_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "jobs_open_deadline_idx" ON "jobs" USING btree ("deadline_at") WHERE "jobs"."status" in ('queued', 'processing');--> statement-breakpoint
CREATE INDEX "signing_secrets_tenant_idx" ON "signing_secrets" USING btree ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_claim_idx" ON "webhook_deliveries" USING btree ("next_attempt_at") WHERE "webhook_deliveries"."status" in ('pending', 'delivering');--> statement-breakpoint
CREATE INDEX "webhook_deliveries_tenant_created_idx" ON "webhook_deliveries" USING btree ("tenant_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "webhook_delivery_attempts_started_idx" ON "webhook_delivery_attempts" USING btree ("started_at");--> statement-breakpoint
CREATE VIEW "delivery_audit" AS (
  select d.id as delivery_id, d.tenant_id, d.job_id, j.status as job_status, j.api_flavor, d.event_type, d.url,
         d.status as delivery_status, d.attempt_count, d.max_attempts, d.next_attempt_at, d.created_at, d.finished_at,
         a.attempt_number as last_attempt_number, a.outcome as last_attempt_outcome,
         a.response_status as last_attempt_status, a.error_kind as last_attempt_error_kind,
         a.error_message as last_attempt_error, a.duration_ms as last_attempt_duration_ms,
         a.finished_at as last_attempt_at
  from webhook_deliveries d
  join jobs j on j.id = d.job_id
  left join lateral (
    select * from webhook_delivery_attempts x
    where x.delivery_id = d.id
    order by x.attempt_number desc
    limit 1
  ) a on true
);