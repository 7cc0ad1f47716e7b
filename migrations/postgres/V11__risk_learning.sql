-- What risk profiling learns from (`crate::risk::history`, `crate::risk::model`): each finding
-- kept with the facts of its document the model reads (parties, HS headings, route, platform,
-- value, mass; JSON), so that training reads no document; none for findings kept before.
ALTER TABLE inspections ADD COLUMN facts TEXT;

-- The models trained on the findings, each versioned with what it was trained on and how it
-- did on the held-back recent findings (`model`, JSON); one at most is live.
CREATE TABLE risk_models (
    version BIGINT PRIMARY KEY,
    trained_at BIGINT NOT NULL,
    trained_by TEXT NOT NULL,
    live BOOLEAN NOT NULL,
    model TEXT NOT NULL
);
