-- Every object of the product moves from public into webhook_outbox, its rows, indexes,
-- constraints and sequences with it. Only a database migrated before this migration has them in
-- public; on a fresh one 0000-0003 already ran in webhook_outbox (see 0000) and public is not touched.
CREATE SCHEMA IF NOT EXISTS "webhook_outbox";
--> statement-breakpoint
DO $$
BEGIN
  IF to_regclass('webhook_outbox.webhook_deliveries') IS NULL THEN
    ALTER VIEW "public"."delivery_audit" SET SCHEMA "webhook_outbox";
    ALTER TABLE "public"."api_keys" SET SCHEMA "webhook_outbox";
    ALTER TABLE "public"."api_rate_limits" SET SCHEMA "webhook_outbox";
    ALTER TABLE "public"."job_projects" SET SCHEMA "webhook_outbox";
    ALTER TABLE "public"."jobs" SET SCHEMA "webhook_outbox";
    ALTER TABLE "public"."signing_secrets" SET SCHEMA "webhook_outbox";
    ALTER TABLE "public"."tenants" SET SCHEMA "webhook_outbox";
    ALTER TABLE "public"."webhook_deliveries" SET SCHEMA "webhook_outbox";
    ALTER TABLE "public"."webhook_delivery_attempts" SET SCHEMA "webhook_outbox";
  END IF;
END $$;
--> statement-breakpoint
DROP VIEW "webhook_outbox"."delivery_audit";--> statement-breakpoint
CREATE VIEW "webhook_outbox"."delivery_audit" AS (
  select d.id as delivery_id, d.tenant_id, d.job_id, j.status as job_status, j.api_flavor, d.event_type, d.url,
         d.status as delivery_status, d.attempt_count, d.max_attempts, d.next_attempt_at, d.created_at, d.finished_at,
         a.attempt_number as last_attempt_number, a.outcome as last_attempt_outcome,
         a.response_status as last_attempt_status, a.error_kind as last_attempt_error_kind,
         a.error_message as last_attempt_error, a.duration_ms as last_attempt_duration_ms,
         a.finished_at as last_attempt_at
  from webhook_outbox.webhook_deliveries d
  join webhook_outbox.jobs j on j.id = d.job_id
  left join lateral (
    select * from webhook_outbox.webhook_delivery_attempts x
    where x.delivery_id = d.id
    order by x.attempt_number desc
    limit 1
  ) a on true
);