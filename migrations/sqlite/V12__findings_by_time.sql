-- Findings read in time order: training walks them all (`crate::risk::learning`), a platform's
-- report of its sellers reads a period's (`GET /v1/risk/sellers`).
CREATE INDEX inspections_by_time ON inspections (at, delivery_id);
