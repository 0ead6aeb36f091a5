DROP VIEW "webhook_outbox"."delivery_audit";--> statement-breakpoint
ALTER TABLE "webhook_outbox"."webhook_deliveries" ALTER COLUMN "job_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "webhook_outbox"."webhook_deliveries" ADD COLUMN "idempotency_key" text;--> statement-breakpoint
CREATE UNIQUE INDEX "webhook_deliveries_idempotency_uq" ON "webhook_outbox"."webhook_deliveries" USING btree ("tenant_id","idempotency_key") WHERE "webhook_outbox"."webhook_deliveries"."idempotency_key" is not null;--> statement-breakpoint
ALTER TABLE "webhook_outbox"."webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_event_type_ck" CHECK (char_length("webhook_outbox"."webhook_deliveries"."event_type") between 1 and 255);--> statement-breakpoint
ALTER TABLE "webhook_outbox"."webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_idempotency_key_ck" CHECK (char_length("webhook_outbox"."webhook_deliveries"."idempotency_key") between 1 and 255);--> statement-breakpoint
CREATE VIEW "webhook_outbox"."delivery_audit" AS (
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
);