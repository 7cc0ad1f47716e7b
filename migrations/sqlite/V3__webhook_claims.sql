-- Which gateway sends a webhook its events now: a lease, like the outbox claims, so that
-- gateways sharing a store send each event once in normal operation.
ALTER TABLE webhooks ADD COLUMN claimed_by TEXT;
ALTER TABLE webhooks ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;
