-- A document's life after acceptance: amendments (each version a document of its own, the
-- earlier one superseded), withdrawal, and notices to agencies that are not documents (a
-- withdrawal, a trader's answer to a query), sent through the outbox as deliveries.
ALTER TABLE documents ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE documents ADD COLUMN amends TEXT;
ALTER TABLE documents ADD COLUMN superseded_by TEXT;
ALTER TABLE documents ADD COLUMN withdrawn_at BIGINT;
CREATE TABLE notices (
    id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents (id),
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notices_by_document ON notices (document_id);
-- A notice has one delivery per agency, next to its document's.
ALTER TABLE deliveries ADD COLUMN notice_id TEXT REFERENCES notices (id);
ALTER TABLE deliveries DROP CONSTRAINT deliveries_document_id_agency_key;
CREATE UNIQUE INDEX deliveries_of_documents ON deliveries (document_id, agency) WHERE notice_id IS NULL;
CREATE UNIQUE INDEX deliveries_of_notices ON deliveries (notice_id, agency) WHERE notice_id IS NOT NULL;
