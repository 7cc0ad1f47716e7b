-- Which gateway publishes a consignment's records now: one claim per UCR, with a lease, so that
-- gateways sharing a store publish each record once and in order, and a dead gateway's
-- consignments are taken over when its leases run out.
CREATE TABLE IF NOT EXISTS outbox_claims (
    ucr TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    until BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_claims_by_instance ON outbox_claims (instance);
