-- A delivery's risk selection (`crate::risk::Selection` as JSON: channel, score, source,
-- reasons), decided when its document was accepted; the agency's to read. None before.
ALTER TABLE deliveries ADD COLUMN selection TEXT;

-- What an agency's inspection found, as its answer said (`inspection` in an acknowledgment):
-- one per delivery, the latest answer's. The findings risk profiling learns from.
CREATE TABLE inspections (
    delivery_id BIGINT PRIMARY KEY REFERENCES deliveries (id),
    at BIGINT NOT NULL,
    performed BOOLEAN NOT NULL,
    finding TEXT,
    revenue DOUBLE PRECISION,
    code TEXT
);
