-- A document's life after acceptance: amendments (each version a document of its own, the
-- earlier one superseded), withdrawal, and notices to agencies that are not documents (a
-- withdrawal, a trader's answer to a query), sent through the outbox as deliveries.
ALTER TABLE documents ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE documents ADD COLUMN amends TEXT;
ALTER TABLE documents ADD COLUMN superseded_by TEXT;
ALTER TABLE documents ADD COLUMN withdrawn_at INTEGER;
CREATE TABLE notices (
    id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(id),
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX notices_by_document ON notices(document_id);
-- A notice has one delivery per agency, next to its document's: `UNIQUE (document_id, agency)`
-- becomes two partial unique indexes. SQLite cannot drop a constraint, so the table is built
-- again (the gateway runs this migration with foreign keys off, as SQLite's procedure for
-- changing a table asks; ids, and so positions, are kept).
CREATE TABLE deliveries_v5 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL REFERENCES documents(id),
    agency TEXT NOT NULL,
    topic TEXT NOT NULL,
    rule TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    dispatched_at INTEGER,
    first_answer_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    failed_at INTEGER,
    notice_id TEXT REFERENCES notices(id)
);
INSERT INTO deliveries_v5 (id, document_id, agency, topic, rule, status, created_at, dispatched_at, first_answer_at,
                           attempts, next_attempt_at, last_error, failed_at)
    SELECT id, document_id, agency, topic, rule, status, created_at, dispatched_at, first_answer_at,
           attempts, next_attempt_at, last_error, failed_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v5 RENAME TO deliveries;
CREATE UNIQUE INDEX deliveries_of_documents ON deliveries(document_id, agency) WHERE notice_id IS NULL;
CREATE UNIQUE INDEX deliveries_of_notices ON deliveries(notice_id, agency) WHERE notice_id IS NOT NULL;
CREATE INDEX deliveries_waiting ON deliveries(id) WHERE dispatched_at IS NULL AND failed_at IS NULL;
CREATE INDEX deliveries_failed ON deliveries(id) WHERE failed_at IS NOT NULL;
CREATE INDEX deliveries_by_agency ON deliveries(agency, id);
