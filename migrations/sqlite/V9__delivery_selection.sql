-- A delivery's risk selection (`crate::risk::Selection` as JSON: channel, score, source,
-- reasons), decided when its document was accepted; the agency's to read. None before.
ALTER TABLE deliveries ADD COLUMN selection TEXT;
