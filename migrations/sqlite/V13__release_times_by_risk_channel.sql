-- The release-time facts gain the risk channel as a segment (the WCO's Time Release Study
-- segments by it): the strictest channel risk selection gave any current delivery of the
-- consignment (red, yellow, green), `unselected` when none was selected (and for consignments
-- accepted before).
ALTER TABLE release_times ADD COLUMN risk_channel TEXT NOT NULL DEFAULT 'unselected';
