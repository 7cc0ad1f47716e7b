-- Release-time indicators (after the WCO Time Release Study): each document's segment facts, and
-- each consignment's and each of its agencies' intervals, kept up to date in the transaction
-- of every change that moves them (`crate::indicators`).
ALTER TABLE documents ADD COLUMN transport_mode TEXT;
ALTER TABLE documents ADD COLUMN hs_chapter TEXT;
ALTER TABLE documents ADD COLUMN border_post TEXT;
CREATE TABLE release_times (
    ucr TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    lodged_at INTEGER NOT NULL,
    arrived_at INTEGER,
    released_at INTEGER,
    decided_at INTEGER,
    outcome TEXT NOT NULL,
    document_type TEXT NOT NULL,
    origin TEXT NOT NULL,
    destination TEXT NOT NULL,
    transport_mode TEXT,
    hs_chapter TEXT,
    border_post TEXT,
    channel TEXT NOT NULL,
    hold_ms INTEGER NOT NULL,
    query_trader_ms INTEGER NOT NULL,
    query_agency_ms INTEGER NOT NULL
);
CREATE INDEX release_times_by_lodgement ON release_times(lodged_at);
CREATE INDEX release_times_by_owner ON release_times(owner, lodged_at);
CREATE TABLE agency_release_times (
    ucr TEXT NOT NULL,
    agency TEXT NOT NULL,
    lodged_at INTEGER NOT NULL,
    routed_at INTEGER NOT NULL,
    first_answer_at INTEGER,
    decided_at INTEGER,
    decision TEXT,
    hold_ms INTEGER NOT NULL,
    query_trader_ms INTEGER NOT NULL,
    query_agency_ms INTEGER NOT NULL,
    PRIMARY KEY (ucr, agency)
);
CREATE INDEX agency_release_times_by_lodgement ON agency_release_times(lodged_at);
CREATE INDEX agency_release_times_by_agency ON agency_release_times(agency, lodged_at);
-- Each change of a consignment's facts, in commit order: a gateway's in-memory index of the
-- facts (`crate::indicators::index`) follows it from its last position. On this store the
-- position is the id.
CREATE TABLE release_time_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ucr TEXT NOT NULL
);
