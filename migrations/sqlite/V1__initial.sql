-- The embedded store's schema as wave 1 left it. Every statement is idempotent (IF NOT EXISTS),
-- so a store written before versioned migrations existed takes this version in place.
CREATE TABLE IF NOT EXISTS consignments (
    ucr TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    released_at INTEGER
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    ucr TEXT NOT NULL REFERENCES consignments(ucr),
    document_type TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    schema_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    destination TEXT NOT NULL,
    sender TEXT NOT NULL,
    payload TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    idempotency_key TEXT,
    body_sha256 TEXT NOT NULL,
    receipt TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_by_ucr ON documents(ucr);
CREATE UNIQUE INDEX IF NOT EXISTS documents_by_idempotency_key ON documents(sender, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_by_identity ON documents(sender, ucr, document_type);
-- A document's first receipt, answered again to a resend. Apart from the document, so the
-- document row (with its payload) is written once, not written and then updated. Stores of
-- earlier versions keep it in documents.receipt.
CREATE TABLE IF NOT EXISTS receipts (
    document_id TEXT PRIMARY KEY,
    receipt TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
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
    UNIQUE (document_id, agency)
);
CREATE TABLE IF NOT EXISTS delivery_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
    status TEXT NOT NULL,
    at INTEGER NOT NULL,
    source TEXT NOT NULL,
    reason TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_events_by_delivery ON delivery_events(delivery_id);
CREATE TABLE IF NOT EXISTS status_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ucr TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    published_at INTEGER
);
CREATE INDEX IF NOT EXISTS status_outbox_pending ON status_outbox(id) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhooks_by_participant ON webhooks(participant);
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    participant TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
DROP INDEX IF EXISTS deliveries_outbox;
CREATE INDEX IF NOT EXISTS deliveries_waiting ON deliveries(id) WHERE dispatched_at IS NULL AND failed_at IS NULL;
CREATE INDEX IF NOT EXISTS deliveries_failed ON deliveries(id) WHERE failed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_by_agency ON deliveries(agency, id);
CREATE INDEX IF NOT EXISTS documents_by_ucr_sender ON documents(ucr, sender);
