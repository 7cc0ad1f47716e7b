-- Each status event names its consignment's owner, so that a participant's events are found by
-- an index from its cursor, never by looking at everyone's.
ALTER TABLE status_outbox ADD COLUMN owner TEXT;
UPDATE status_outbox s SET owner = c.opened_by FROM consignments c WHERE c.ucr = s.ucr;
CREATE INDEX status_outbox_by_owner ON status_outbox (owner, position);
