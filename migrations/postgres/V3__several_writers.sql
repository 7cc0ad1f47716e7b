-- Several gateways write at once, with no lock for all of them (they take turns only per
-- consignment or idempotency key):
--
-- 1. The audit log holds one hash chain per gateway (`chain`, named after the instance), each
--    chain's first record anchoring the heads of the others (`crate::audit`). Records written
--    before, under one lock for all, form the chain `gateway`.
ALTER TABLE audit_log ADD COLUMN chain TEXT NOT NULL DEFAULT 'gateway';
ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey;
ALTER TABLE audit_log ADD PRIMARY KEY (chain, seq);
ALTER TABLE audit_log ALTER COLUMN chain DROP DEFAULT;

-- 2. Cursors (agency streams, consignment events, webhooks) follow `position`, given after
--    commit in commit order by one sequencer at a time (`postgres.rs`), since identity values
--    are taken in one order and committed in another. A row has none until it is sequenced,
--    and no cursor reads it before. Rows written before, under one lock for all, were committed
--    in id order: their position is their id.
ALTER TABLE deliveries ADD COLUMN position BIGINT UNIQUE;
UPDATE deliveries SET position = id;
CREATE INDEX deliveries_unsequenced ON deliveries (id) WHERE position IS NULL;
CREATE INDEX deliveries_by_agency_position ON deliveries (agency, position);
ALTER TABLE status_outbox ADD COLUMN position BIGINT UNIQUE;
UPDATE status_outbox SET position = id;
CREATE INDEX status_outbox_unsequenced ON status_outbox (id) WHERE position IS NULL;

-- 3. A participant's webhooks each hold one of its numbered slots: the limit is a constraint,
--    also between gateways registering at once.
ALTER TABLE webhooks ADD COLUMN slot INTEGER;
UPDATE webhooks w SET slot = r.n
  FROM (SELECT id, row_number() OVER (PARTITION BY participant ORDER BY created_at, id) AS n FROM webhooks) r
 WHERE r.id = w.id;
ALTER TABLE webhooks ALTER COLUMN slot SET NOT NULL;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_one_per_slot UNIQUE (participant, slot);

-- 4. Which gateway sends a webhook its events now: a lease, like the outbox claims, so that
--    each event is sent once in normal operation.
ALTER TABLE webhooks ADD COLUMN claimed_by TEXT;
ALTER TABLE webhooks ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;
