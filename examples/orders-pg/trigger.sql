-- The same webhook from SQL alone: a trigger on the shop's orders table calls webhook_outbox.enqueue,
-- so any code path that marks an order paid (an admin's psql session, another service) sends it, in
-- the transaction that marks it.
create or replace function order_paid_webhook() returns trigger language plpgsql as $$
declare
  merchant merchants%rowtype;
begin
  select * into merchant from merchants where id = new.merchant_id;
  perform webhook_outbox.enqueue(
    tenant_id => merchant.outbox_tenant_id,
    url => merchant.webhook_url,
    event_type => 'order.paid',
    payload => jsonb_build_object('orderId', new.id, 'amountCents', new.amount_cents, 'currency', new.currency,
                                  'paidAt', new.paid_at),
    idempotency_key => 'order-' || new.id || '-paid'
  );
  return new;
end $$;

create or replace trigger orders_paid_webhook
  after update of status on orders
  for each row when (new.status = 'paid' and old.status is distinct from 'paid')
  execute function order_paid_webhook();
