-- The PostgreSQL store's schema: the embedded store's tables, with ownership and idempotency
-- enforced by constraints, since several gateways may write at once.

-- A consignment is its opener's: every document of it is the opener's (the foreign key on
-- documents (ucr, sender) below), whichever gateway wrote it.
CREATE TABLE consignments (
    ucr TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    released_at BIGINT,
    opened_by TEXT NOT NULL,
    UNIQUE (ucr, opened_by)
);
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    ucr TEXT NOT NULL,
    document_type TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    schema_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    destination TEXT NOT NULL,
    sender TEXT NOT NULL,
    payload TEXT NOT NULL,
    submitted_at BIGINT NOT NULL,
    idempotency_key TEXT,
    body_sha256 TEXT NOT NULL,
    FOREIGN KEY (ucr, sender) REFERENCES consignments (ucr, opened_by)
);
CREATE UNIQUE INDEX documents_by_idempotency_key ON documents (sender, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX documents_by_identity ON documents (sender, ucr, document_type);
CREATE INDEX documents_by_ucr_sender ON documents (ucr, sender);
CREATE TABLE receipts (
    document_id TEXT PRIMARY KEY REFERENCES documents (id),
    receipt TEXT NOT NULL
);
CREATE TABLE deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents (id),
    agency TEXT NOT NULL,
    topic TEXT NOT NULL,
    rule TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    dispatched_at BIGINT,
    first_answer_at BIGINT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    failed_at BIGINT,
    UNIQUE (document_id, agency)
);
CREATE INDEX deliveries_waiting ON deliveries (id) WHERE dispatched_at IS NULL AND failed_at IS NULL;
CREATE INDEX deliveries_failed ON deliveries (id) WHERE failed_at IS NOT NULL;
CREATE INDEX deliveries_by_agency ON deliveries (agency, id);
CREATE TABLE delivery_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id),
    status TEXT NOT NULL,
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX delivery_events_by_delivery ON delivery_events (delivery_id);
CREATE TABLE status_outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ucr TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX status_outbox_pending ON status_outbox (id) WHERE published_at IS NULL;
CREATE INDEX status_outbox_by_ucr ON status_outbox (ucr, id);
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    participant TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    cursor BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX webhooks_by_participant ON webhooks (participant);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    participant TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
