-- The shop's own tables, in its own schema (public here): webhook-outbox keeps to webhook_outbox.
create table if not exists merchants (
  id bigint generated always as identity primary key,
  name text not null,
  -- The merchant's webhook subscription: its outbox tenant and where its webhooks go.
  outbox_tenant_id uuid not null,
  webhook_url text not null
);

create table if not exists orders (
  id bigint generated always as identity primary key,
  merchant_id bigint not null references merchants (id),
  amount_cents integer not null,
  currency text not null default 'EUR',
  status text not null default 'pending' check (status in ('pending', 'paid', 'cancelled')),
  paid_at timestamptz
);
