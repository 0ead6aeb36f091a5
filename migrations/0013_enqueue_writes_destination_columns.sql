-- webhook_deliveries.destination and destination_id, and destinations.id, are plain columns now
-- (0012): each producer writes them, derived from tenant_id and url. The SQL API derives them here.
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
  dest_authority text;
  dest_id uuid;
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
  -- The destination columns, derived as src/db/schema.ts derives them (destinationSql, destinationIdSql).
  dest_authority := lower(substring(enqueue.url from '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)'));
  dest_id := (substr(md5(enqueue.tenant_id::text || ' ' || enqueue.url), 1, 12) || '3'
                     || substr(md5(enqueue.tenant_id::text || ' ' || enqueue.url), 14, 3)
                     || translate(substr(md5(enqueue.tenant_id::text || ' ' || enqueue.url), 17, 1), '0123456789abcdef', '89ab89ab89ab89ab')
                     || substr(md5(enqueue.tenant_id::text || ' ' || enqueue.url), 18))::uuid;
  -- A conflicting key's row is read by the next statement, which sees the commit the insert waited
  -- for; it is missing only if it was deleted in between (retention): then insert again.
  FOR try_number IN 1..3 LOOP
    -- The delivery's destination (tenant, URL), which it references; nothing is written when it exists.
    INSERT INTO webhook_outbox.destinations (id, tenant_id, url)
    VALUES (dest_id, enqueue.tenant_id, enqueue.url)
    ON CONFLICT DO NOTHING;
    INSERT INTO webhook_outbox.webhook_deliveries AS d
      (tenant_id, event_type, url, payload, idempotency_key, max_attempts, retry_delays_ms, timeout_ms,
       connect_timeout_ms, next_attempt_at, destination, destination_id)
    VALUES (enqueue.tenant_id, enqueue.event_type, enqueue.url, enqueue.payload, enqueue.idempotency_key,
            cardinality(cfg.retry_delays_ms), cfg.retry_delays_ms, cfg.timeout_ms, cfg.connect_timeout_ms,
            now() + cfg.retry_delays_ms[1] * interval '1 millisecond', dest_authority, dest_id)
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
