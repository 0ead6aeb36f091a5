CREATE TABLE "webhook_outbox"."settings" (
	"id" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"retry_delays_ms" integer[] NOT NULL,
	"timeout_ms" integer NOT NULL,
	"connect_timeout_ms" integer NOT NULL,
	"allow_insecure_urls" boolean NOT NULL,
	"allowed_cidrs" "inet"[] NOT NULL,
	"blocked_cidrs" "cidr"[] NOT NULL,
	"max_payload_bytes" integer NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "settings_one_row_ck" CHECK ("webhook_outbox"."settings"."id"),
	CONSTRAINT "settings_retry_delays_ck" CHECK (cardinality("webhook_outbox"."settings"."retry_delays_ms") between 1 and 50)
);
