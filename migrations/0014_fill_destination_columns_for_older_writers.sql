-- A writer that leaves the destination columns out (a process of an earlier release still running
-- while the next one rolls out, or an operator's own insert) gets them derived from tenant_id and
-- url, as src/db/schema.ts derives them (destinationSql, destinationIdSql). This release's
-- producers write them, so for their rows the WHEN clause is false and no function runs; updates
-- never fire these triggers.
CREATE OR REPLACE FUNCTION "webhook_outbox"."destination_id_of"(tenant_id uuid, url text)
RETURNS uuid
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
AS $$
  SELECT (substr(md5(tenant_id::text || ' ' || url), 1, 12) || '3'
          || substr(md5(tenant_id::text || ' ' || url), 14, 3)
          || translate(substr(md5(tenant_id::text || ' ' || url), 17, 1), '0123456789abcdef', '89ab89ab89ab89ab')
          || substr(md5(tenant_id::text || ' ' || url), 18))::uuid
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "webhook_outbox"."derive_delivery_destination"()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  NEW.destination := coalesce(NEW.destination, lower(substring(NEW.url from '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)')));
  NEW.destination_id := coalesce(NEW.destination_id, "webhook_outbox"."destination_id_of"(NEW.tenant_id, NEW.url));
  RETURN NEW;
END
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "webhook_outbox"."derive_destination_id"()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  NEW.id := "webhook_outbox"."destination_id_of"(NEW.tenant_id, NEW.url);
  RETURN NEW;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "webhook_deliveries_destination_trg"
BEFORE INSERT ON "webhook_outbox"."webhook_deliveries"
FOR EACH ROW WHEN (NEW.destination IS NULL OR NEW.destination_id IS NULL)
EXECUTE FUNCTION "webhook_outbox"."derive_delivery_destination"();
--> statement-breakpoint
CREATE TRIGGER "destinations_id_trg"
BEFORE INSERT ON "webhook_outbox"."destinations"
FOR EACH ROW WHEN (NEW.id IS NULL)
EXECUTE FUNCTION "webhook_outbox"."derive_destination_id"();
