-- Each status event names its consignment's owner (its submitter), so that a participant's
-- events are found by an index from its cursor, never by looking at everyone's.
ALTER TABLE status_outbox ADD COLUMN owner TEXT;
UPDATE status_outbox SET owner = (SELECT d.sender FROM documents d WHERE d.ucr = status_outbox.ucr LIMIT 1);
CREATE INDEX IF NOT EXISTS status_outbox_by_owner ON status_outbox(owner, id);
