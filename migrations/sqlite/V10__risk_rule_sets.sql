-- The risk rules an operator put at run time (`PUT /v1/risk/rules`, `crate::risk`), each set
-- whole, in order: the latest is the one every gateway of the store selects with, in place of
-- the region file's `[[risk.rules]]`. `rules` is the set as JSON, in the region file's terms.
CREATE TABLE risk_rule_sets (
    version INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    changed_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    rules TEXT NOT NULL
);
