-- The relay's question "is an earlier delivery of this consignment and topic held back?" walks
-- a consignment's documents to their deliveries: every delivery of a document, notices' too,
-- found by index (the unique indexes on (document_id, agency) hold only one kind each).
CREATE INDEX deliveries_by_document ON deliveries (document_id);
