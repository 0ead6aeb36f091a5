CREATE TABLE "webhook_outbox"."destination_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"destination_id" uuid NOT NULL,
	"tenant_id" uuid NOT NULL,
	"from_state" text NOT NULL,
	"to_state" text NOT NULL,
	"reason" text NOT NULL,
	"consecutive_failures" integer NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "destination_events_from_state_ck" CHECK ("webhook_outbox"."destination_events"."from_state" in ('healthy', 'open', 'disabled')),
	CONSTRAINT "destination_events_to_state_ck" CHECK ("webhook_outbox"."destination_events"."to_state" in ('healthy', 'open', 'disabled'))
);
--> statement-breakpoint
CREATE TABLE "webhook_outbox"."destinations" (
	"id" uuid PRIMARY KEY GENERATED ALWAYS AS ((substr(md5(tenant_id::text || ' ' || url), 1, 12) || '3' || substr(md5(tenant_id::text || ' ' || url), 14, 3) || translate(substr(md5(tenant_id::text || ' ' || url), 17, 1), '0123456789abcdef', '89ab89ab89ab89ab') || substr(md5(tenant_id::text || ' ' || url), 18))::uuid) STORED NOT NULL,
	"tenant_id" uuid NOT NULL,
	"url" text NOT NULL,
	"state" text DEFAULT 'healthy' NOT NULL,
	"consecutive_failures" integer DEFAULT 0 NOT NULL,
	"first_failure_at" timestamp with time zone,
	"last_success_at" timestamp with time zone,
	"last_failure_at" timestamp with time zone,
	"open_until" timestamp with time zone,
	"disabled_at" timestamp with time zone,
	"disabled_reason" text,
	"created_at" timestamp with time zone DEFAULT date_trunc('milliseconds', now()) NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "destinations_state_ck" CHECK ("webhook_outbox"."destinations"."state" in ('healthy', 'open', 'disabled')),
	CONSTRAINT "destinations_disabled_reason_ck" CHECK ("webhook_outbox"."destinations"."disabled_reason" is null or "webhook_outbox"."destinations"."disabled_reason" in ('gone', 'failing')),
	CONSTRAINT "destinations_disabled_ck" CHECK (("webhook_outbox"."destinations"."state" = 'disabled') = ("webhook_outbox"."destinations"."disabled_at" is not null and "webhook_outbox"."destinations"."disabled_reason" is not null)),
	CONSTRAINT "destinations_open_ck" CHECK (("webhook_outbox"."destinations"."state" = 'open') = ("webhook_outbox"."destinations"."open_until" is not null)),
	CONSTRAINT "destinations_failures_ck" CHECK ("webhook_outbox"."destinations"."consecutive_failures" >= 0 and ("webhook_outbox"."destinations"."consecutive_failures" > 0) = ("webhook_outbox"."destinations"."first_failure_at" is not null))
);
--> statement-breakpoint
CREATE TABLE "webhook_outbox"."idempotency_keys" (
	"tenant_id" uuid NOT NULL,
	"key" text NOT NULL,
	"request_hash" text NOT NULL,
	"job_id" uuid NOT NULL,
	"response" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "idempotency_keys_pk" PRIMARY KEY("tenant_id","key"),
	CONSTRAINT "idempotency_keys_key_ck" CHECK ("webhook_outbox"."idempotency_keys"."key" ~ '^[ -~]{1,255}$')
);
--> statement-breakpoint
CREATE TABLE "webhook_outbox"."operational_webhooks" (
	"tenant_id" uuid PRIMARY KEY NOT NULL,
	"url" text NOT NULL,
	"retry_delays_ms" integer[] NOT NULL,
	"timeout_ms" integer NOT NULL,
	"connect_timeout_ms" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "operational_webhooks_retry_delays_ck" CHECK (cardinality("webhook_outbox"."operational_webhooks"."retry_delays_ms") >= 1)
);
--> statement-breakpoint
CREATE TABLE "webhook_outbox"."replays" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"status" text NOT NULL,
	"since" timestamp with time zone NOT NULL,
	"until" timestamp with time zone NOT NULL,
	"url" text,
	"state" text DEFAULT 'running' NOT NULL,
	"matched" integer NOT NULL,
	"requeued" integer DEFAULT 0 NOT NULL,
	"cursor_created_at" timestamp with time zone NOT NULL,
	"cursor_id" uuid NOT NULL,
	"next_step_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "replays_status_ck" CHECK ("webhook_outbox"."replays"."status" in ('failed', 'succeeded')),
	CONSTRAINT "replays_state_ck" CHECK ("webhook_outbox"."replays"."state" in ('running', 'done')),
	CONSTRAINT "replays_window_ck" CHECK ("webhook_outbox"."replays"."since" < "webhook_outbox"."replays"."until"),
	CONSTRAINT "replays_done_ck" CHECK (("webhook_outbox"."replays"."state" = 'done') = ("webhook_outbox"."replays"."finished_at" is not null))
);
--> statement-breakpoint
ALTER TABLE "webhook_outbox"."webhook_delivery_attempts" DROP CONSTRAINT "webhook_delivery_attempts_error_kind_ck";--> statement-breakpoint
ALTER TABLE "webhook_outbox"."webhook_deliveries" ADD COLUMN "destination_id" uuid GENERATED ALWAYS AS ((substr(md5(tenant_id::text || ' ' || url), 1, 12) || '3' || substr(md5(tenant_id::text || ' ' || url), 14, 3) || translate(substr(md5(tenant_id::text || ' ' || url), 17, 1), '0123456789abcdef', '89ab89ab89ab89ab') || substr(md5(tenant_id::text || ' ' || url), 18))::uuid) STORED NOT NULL;--> statement-breakpoint
ALTER TABLE "webhook_outbox"."destination_events" ADD CONSTRAINT "destination_events_destination_fk" FOREIGN KEY ("destination_id") REFERENCES "webhook_outbox"."destinations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_outbox"."destinations" ADD CONSTRAINT "destinations_tenant_fk" FOREIGN KEY ("tenant_id") REFERENCES "webhook_outbox"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_outbox"."idempotency_keys" ADD CONSTRAINT "idempotency_keys_tenant_fk" FOREIGN KEY ("tenant_id") REFERENCES "webhook_outbox"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_outbox"."idempotency_keys" ADD CONSTRAINT "idempotency_keys_job_fk" FOREIGN KEY ("job_id") REFERENCES "webhook_outbox"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_outbox"."operational_webhooks" ADD CONSTRAINT "operational_webhooks_tenant_fk" FOREIGN KEY ("tenant_id") REFERENCES "webhook_outbox"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_outbox"."replays" ADD CONSTRAINT "replays_tenant_fk" FOREIGN KEY ("tenant_id") REFERENCES "webhook_outbox"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "destination_events_destination_idx" ON "webhook_outbox"."destination_events" USING btree ("destination_id","at");--> statement-breakpoint
CREATE INDEX "destination_events_at_idx" ON "webhook_outbox"."destination_events" USING btree ("at");--> statement-breakpoint
CREATE INDEX "destinations_tenant_created_idx" ON "webhook_outbox"."destinations" USING btree ("tenant_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "destinations_unhealthy_idx" ON "webhook_outbox"."destinations" USING btree ("open_until") WHERE "webhook_outbox"."destinations"."state" <> 'healthy';--> statement-breakpoint
CREATE INDEX "idempotency_keys_created_idx" ON "webhook_outbox"."idempotency_keys" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "replays_running_idx" ON "webhook_outbox"."replays" USING btree ("next_step_at") WHERE "webhook_outbox"."replays"."state" = 'running';--> statement-breakpoint
-- Every existing delivery's destination, before deliveries reference them.
INSERT INTO "webhook_outbox"."destinations" ("tenant_id", "url") SELECT DISTINCT "tenant_id", "url" FROM "webhook_outbox"."webhook_deliveries" ON CONFLICT DO NOTHING;--> statement-breakpoint
ALTER TABLE "webhook_outbox"."webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_destination_fk" FOREIGN KEY ("destination_id") REFERENCES "webhook_outbox"."destinations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "webhook_deliveries_parked_idx" ON "webhook_outbox"."webhook_deliveries" USING btree ("destination_id","created_at") WHERE "webhook_outbox"."webhook_deliveries"."status" = 'pending' and "webhook_outbox"."webhook_deliveries"."next_attempt_at" = 'infinity';--> statement-breakpoint
ALTER TABLE "webhook_outbox"."webhook_delivery_attempts" ADD CONSTRAINT "webhook_delivery_attempts_error_kind_ck" CHECK ("webhook_outbox"."webhook_delivery_attempts"."error_kind" is null or "webhook_outbox"."webhook_delivery_attempts"."error_kind" in ('timeout', 'connect', 'dns', 'tls', 'blocked_address', 'http_status', 'redirect', 'other', 'destination_disabled'));--> statement-breakpoint
-- The SQL API writes the destination of each delivery it enqueues (as src/outbox/enqueue.ts does).
CREATE OR REPLACE FUNCTION "webhook_outbox"."enqueue"(
  tenant_id uuid,
  url text,
  event_type text,
  payload jsonb,
  idempotency_key text DEFAULT NULL
)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
AS $$
#variable_conflict use_column
DECLARE
  cfg webhook_outbox.settings%ROWTYPE;
  refusal text;
  payload_bytes int;
  delivery_id uuid;
BEGIN
  IF enqueue.tenant_id IS NULL OR enqueue.url IS NULL OR enqueue.event_type IS NULL OR enqueue.payload IS NULL THEN
    RAISE EXCEPTION 'webhook_outbox.enqueue: tenant_id, url, event_type and payload must not be null'
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT * INTO cfg FROM webhook_outbox.settings s WHERE s.id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'webhook_outbox.enqueue: webhook_outbox.settings has no row; run the migrations'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  refusal := webhook_outbox.url_refusal(enqueue.url, cfg.allow_insecure_urls, cfg.allowed_cidrs, cfg.blocked_cidrs);
  IF refusal IS NOT NULL THEN
    RAISE EXCEPTION 'webhook_outbox.enqueue: webhook URL rejected: %', refusal
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'https, a public host, at most 2048 characters, no credentials or fragment; '
                   'webhook_outbox.settings.allow_insecure_urls admits http and private addresses (development only)';
  END IF;
  IF char_length(enqueue.event_type) NOT BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION 'webhook_outbox.enqueue: event_type must be 1 to 255 characters'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF enqueue.idempotency_key IS NOT NULL AND char_length(enqueue.idempotency_key) NOT BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION 'webhook_outbox.enqueue: idempotency_key must be 1 to 255 characters, or null'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  payload_bytes := octet_length(enqueue.payload::text);
  IF payload_bytes > cfg.max_payload_bytes THEN
    RAISE EXCEPTION 'webhook_outbox.enqueue: the payload is % bytes as JSON, more than the % allowed', payload_bytes, cfg.max_payload_bytes
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- FOR KEY SHARE: the tenant cannot be deleted before this transaction ends.
  PERFORM FROM webhook_outbox.tenants t WHERE t.id = enqueue.tenant_id FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'webhook_outbox.enqueue: no tenant has the id %', enqueue.tenant_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  -- A conflicting key's row is read by the next statement, which sees the commit the insert waited
  -- for; it is missing only if it was deleted in between (retention): then insert again.
  FOR try_number IN 1..3 LOOP
    -- The delivery's destination (tenant, URL), which it references; nothing is written when it exists.
    INSERT INTO webhook_outbox.destinations (tenant_id, url) VALUES (enqueue.tenant_id, enqueue.url)
    ON CONFLICT DO NOTHING;
    INSERT INTO webhook_outbox.webhook_deliveries AS d
      (tenant_id, event_type, url, payload, idempotency_key, max_attempts, retry_delays_ms, timeout_ms,
       connect_timeout_ms, next_attempt_at)
    VALUES (enqueue.tenant_id, enqueue.event_type, enqueue.url, enqueue.payload, enqueue.idempotency_key,
            cardinality(cfg.retry_delays_ms), cfg.retry_delays_ms, cfg.timeout_ms, cfg.connect_timeout_ms,
            now() + cfg.retry_delays_ms[1] * interval '1 millisecond')
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING d.id INTO delivery_id;
    IF delivery_id IS NOT NULL THEN
      PERFORM pg_notify('webhook_outbox', '');
      RETURN delivery_id;
    END IF;
    SELECT d.id INTO delivery_id FROM webhook_outbox.webhook_deliveries d
    WHERE d.tenant_id = enqueue.tenant_id AND d.idempotency_key = enqueue.idempotency_key;
    IF delivery_id IS NOT NULL THEN
      RETURN delivery_id;
    END IF;
  END LOOP;
  RAISE EXCEPTION 'webhook_outbox.enqueue: the delivery of idempotency key % kept vanishing', enqueue.idempotency_key;
END
$$;
