-- A document's history (its first version and each amendment) is found by index, without
-- reading a payload: each document names its history, `chain`, the id of its first version
-- (an amendment's is the one of the version it amends). PostgreSQL keeps a large payload out
-- of the row (TOAST), so the table itself stays as it is.
ALTER TABLE documents ADD COLUMN chain TEXT;
WITH RECURSIVE chains (id, root, next) AS (
    SELECT id, id, superseded_by FROM documents WHERE amends IS NULL
    UNION ALL
    SELECT d.id, c.root, d.superseded_by FROM chains c JOIN documents d ON d.id = c.next
)
UPDATE documents d SET chain = c.root FROM chains c WHERE d.id = c.id;
UPDATE documents SET chain = id WHERE chain IS NULL;
ALTER TABLE documents ALTER COLUMN chain SET NOT NULL;
-- A consignment's histories, and a history's latest version, from the index alone.
CREATE INDEX documents_by_chain ON documents (ucr, chain, version, id);
