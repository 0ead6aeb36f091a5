ALTER TABLE "webhook_outbox"."destinations" ALTER COLUMN "id" DROP EXPRESSION;--> statement-breakpoint
ALTER TABLE "webhook_outbox"."webhook_deliveries" ALTER COLUMN "destination" DROP EXPRESSION;--> statement-breakpoint
ALTER TABLE "webhook_outbox"."webhook_deliveries" ALTER COLUMN "destination_id" DROP EXPRESSION;