-- The SQL API: webhook_outbox.enqueue(tenant_id, url, event_type, payload, idempotency_key) enqueues
-- a webhook in the caller's transaction (from any language, a trigger or psql) and returns its id.
-- It reads its policy and URL rule from webhook_outbox.settings: this row holds the defaults, and
-- every migrate writes it again from its configuration (src/outbox/sql-settings.ts).
INSERT INTO "webhook_outbox"."settings"
  ("id", "retry_delays_ms", "timeout_ms", "connect_timeout_ms", "allow_insecure_urls", "allowed_cidrs", "blocked_cidrs", "max_payload_bytes")
VALUES (true, '{0,10000,60000}', 10000, 10000, false, '{}',
  '{0.0.0.0/8,255.255.255.255/32,224.0.0.0/4,169.254.0.0/16,127.0.0.0/8,100.64.0.0/10,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,192.0.0.0/24,192.0.2.0/24,192.88.99.0/24,198.18.0.0/15,198.51.100.0/24,203.0.113.0/24,240.0.0.0/4,192.175.48.0/24,192.31.196.0/24,192.52.193.0/24,::/128,fe80::/10,ff00::/8,::1/128,fc00::/7,fec0::/10,100::/64,::ffff:0:0:0/96,64:ff9b::/96,64:ff9b:1::/48,2002::/16,2001::/32,2001:2::/48,2001:3::/32,2001:4:112::/48,2620:4f:8000::/48,2001:10::/28,2001:20::/28,2001:30::/28,5f00::/16,2001::/23,2001:db8::/32,3fff::/20}',
  1048576)
ON CONFLICT ("id") DO NOTHING;
--> statement-breakpoint
-- Why a webhook URL is refused, or null: what SQL can check of the URL policy (src/delivery/url-policy.ts).
-- A host name passes; the worker resolves it and vets every address before each attempt. An IP
-- literal is checked against blocked_cidrs (an IPv4-mapped or -compatible IPv6 address by the IPv4
-- address it carries); a numeric host in any notation but a.b.c.d is refused outright.
CREATE OR REPLACE FUNCTION "webhook_outbox"."url_refusal"(url text, allow_insecure boolean, allowed_cidrs inet[], blocked_cidrs cidr[])
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
  scheme text;
  authority text;
  hostname text;
  address inet;
  embedded inet;
  blocked cidr;
BEGIN
  IF url IS NULL THEN
    RETURN 'the URL is null';
  END IF;
  IF char_length(url) > 2048 THEN
    RETURN 'longer than 2048 characters';
  END IF;
  IF url ~ '[[:space:][:cntrl:]]' THEN
    RETURN 'the URL contains whitespace or a control character';
  END IF;
  scheme := lower(substring(url FROM '^([A-Za-z][A-Za-z0-9+.-]*)://'));
  IF scheme IS NULL THEN
    RETURN 'not an absolute URL';
  END IF;
  IF scheme <> 'https' AND NOT (allow_insecure AND scheme = 'http') THEN
    RETURN CASE WHEN allow_insecure THEN 'scheme must be https: or http:' ELSE 'scheme must be https:' END;
  END IF;
  authority := substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)');
  IF position('@' IN authority) > 0 THEN
    RETURN 'credentials in the URL are not allowed';
  END IF;
  IF position('#' IN url) > 0 THEN
    RETURN 'a fragment is not allowed';
  END IF;
  hostname := CASE WHEN authority LIKE '[%' THEN substring(authority FROM '^(\[[^]]*\])(:[0-9]*)?$')
                   ELSE substring(authority FROM '^([^:]*)(:[0-9]*)?$') END;
  IF hostname IS NULL THEN
    RETURN 'not a valid host and port';
  END IF;
  hostname := rtrim(lower(hostname), '.');
  IF hostname = '' THEN
    RETURN 'the URL has no host';
  END IF;
  IF allow_insecure THEN
    RETURN NULL;
  END IF;
  IF hostname = 'localhost' OR hostname LIKE '%.localhost' THEN
    RETURN hostname || ' is a loopback name';
  END IF;
  IF hostname LIKE '[%]' THEN
    BEGIN
      address := substring(hostname FROM 2 FOR char_length(hostname) - 2)::inet;
    EXCEPTION WHEN invalid_text_representation THEN
      RETURN hostname || ' is not an IPv6 address';
    END;
    IF family(address) <> 6 OR masklen(address) <> 128 THEN
      RETURN hostname || ' is not an IPv6 address';
    END IF;
  ELSIF substring(hostname FROM '([^.]*)$') ~ '^(0x[0-9a-f]*|[0-9]+)$' THEN
    -- A URL parser reads a host whose last label is a number as an IPv4 address, in any notation.
    IF hostname !~ '^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$' THEN
      RETURN hostname || ' is an IPv4 address in a notation other than a.b.c.d';
    END IF;
    address := hostname::inet;
  ELSE
    RETURN NULL;
  END IF;
  IF address <<= ANY (allowed_cidrs) THEN
    RETURN NULL;
  END IF;
  IF family(address) = 6 AND address <<= '::ffff:0:0/96'::inet THEN
    embedded := '0.0.0.0'::inet + (address - '::ffff:0:0'::inet);
  ELSIF family(address) = 6 AND address <<= '::/96'::inet AND address NOT IN ('::'::inet, '::1'::inet) THEN
    embedded := '0.0.0.0'::inet + (address - '::'::inet);
  END IF;
  IF embedded IS NOT NULL THEN
    IF embedded <<= ANY (allowed_cidrs) THEN
      RETURN NULL;
    END IF;
    address := embedded;
  END IF;
  FOREACH blocked IN ARRAY blocked_cidrs LOOP
    IF address <<= blocked THEN
      RETURN host(address) || ' is in the non-public range ' || blocked::text;
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;
--> statement-breakpoint
-- Enqueues one webhook in the caller's transaction and returns its id (its webhook-id). Raises, with
-- nothing written: null_value_not_allowed (22004) for a missing argument, invalid_parameter_value
-- (22023) for a refused URL, event type, idempotency key or payload size, foreign_key_violation
-- (23503) for an unknown tenant. The same (tenant, idempotency key) returns the delivery it already
-- names and sends nothing more. NOTIFY wakes the workers when the transaction commits.
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
