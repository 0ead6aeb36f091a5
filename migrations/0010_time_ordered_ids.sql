-- Time-ordered ids (UUID version 7, RFC 9562): the first 48 bits are the Unix time in milliseconds,
-- then the version, 74 random bits and the variant. Rows created together sit together in every
-- index keyed by their id (the primary keys, a job's webhook per event type, a delivery's attempt
-- numbers): a batch of deliveries claimed or settled in due order touches a few index pages instead
-- of one page per row, as random (version 4) ids do. PostgreSQL 18 has uuidv7(); 15 does not.
CREATE OR REPLACE FUNCTION "webhook_outbox"."uuid_v7"()
RETURNS uuid
LANGUAGE sql
VOLATILE
PARALLEL SAFE
AS $$
  select encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              placing substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
              from 1 for 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;
