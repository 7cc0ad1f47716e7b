-- A document's history (its first version and each amendment) is found by index, and no rule
-- that reads a document's facts reads its payload.
--
-- Each document names its history: `chain`, the id of its first version (an amendment's is the
-- one of the version it amends). SQLite reads a row's columns in order, and a column stored
-- after a large payload is reached only through every overflow page of that payload: the table
-- is built again with the payload (and the receipt kept by stores of earlier versions) last, so
-- the facts of a document are read from its first page. The gateway runs this migration with
-- foreign keys off, as SQLite's procedure for changing a table asks; ids are kept.
CREATE TABLE documents_v7 (
    id TEXT PRIMARY KEY,
    ucr TEXT NOT NULL REFERENCES consignments(ucr),
    chain TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    document_type TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    schema_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    destination TEXT NOT NULL,
    sender TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    idempotency_key TEXT,
    body_sha256 TEXT NOT NULL,
    amends TEXT,
    superseded_by TEXT,
    withdrawn_at INTEGER,
    transport_mode TEXT,
    hs_chapter TEXT,
    border_post TEXT,
    payload TEXT NOT NULL,
    receipt TEXT NOT NULL DEFAULT ''
);
-- Each history from its first version, following `superseded_by` (by primary key).
WITH RECURSIVE chains(id, root, next) AS (
    SELECT id, id, superseded_by FROM documents WHERE amends IS NULL
    UNION ALL
    SELECT d.id, c.root, d.superseded_by FROM chains c JOIN documents d ON d.id = c.next
)
INSERT INTO documents_v7 (id, ucr, chain, version, document_type, schema_version, schema_id, origin, destination, sender,
                          submitted_at, idempotency_key, body_sha256, amends, superseded_by, withdrawn_at,
                          transport_mode, hs_chapter, border_post, payload, receipt)
    SELECT d.id, d.ucr, COALESCE(c.root, d.id), d.version, d.document_type, d.schema_version, d.schema_id, d.origin,
           d.destination, d.sender, d.submitted_at, d.idempotency_key, d.body_sha256, d.amends, d.superseded_by,
           d.withdrawn_at, d.transport_mode, d.hs_chapter, d.border_post, d.payload, d.receipt
    FROM documents d LEFT JOIN chains c ON c.id = d.id;
DROP TABLE documents;
ALTER TABLE documents_v7 RENAME TO documents;
-- A consignment's histories, and a history's latest version, from the index alone.
CREATE INDEX documents_by_chain ON documents(ucr, chain, version, id);
CREATE UNIQUE INDEX documents_by_idempotency_key ON documents(sender, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX documents_by_identity ON documents(sender, ucr, document_type);
CREATE INDEX documents_by_ucr_sender ON documents(ucr, sender);
