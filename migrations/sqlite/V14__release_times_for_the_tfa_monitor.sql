-- The release-time facts gain what the TFA monitor (src/indicators/tfa.rs) reads besides times:
-- each consignment's formalities (Art. 10.1 and 10.4: its documents, their amendments, the
-- agencies' queries, the submissions that answered a rejection), and how risk management treated
-- each agency's part (Art. 7.4: the channel selected and what chose it, what its inspections
-- found, whether a standing instruction decided it).
--
-- The columns are nullable, and NULL means "not computed yet": the facts already kept stay as
-- they are (their times do not change, so neither do the figures already published from them),
-- and the gateway computes the new columns at its start, in the background, for every
-- consignment whose formalities are NULL (crate::indicators::backfill). A gateway of the version
-- before, still running beside this one while several are upgraded one at a time, writes NULL
-- here too; the next start of an upgraded gateway computes them. Until then the monitor leaves
-- those consignments out of these articles, and says how many it left out.
ALTER TABLE release_times ADD COLUMN documents INTEGER;
ALTER TABLE release_times ADD COLUMN amendments INTEGER;
ALTER TABLE release_times ADD COLUMN queries INTEGER;
ALTER TABLE release_times ADD COLUMN resubmissions INTEGER;
ALTER TABLE agency_release_times ADD COLUMN selected_channel TEXT;
ALTER TABLE agency_release_times ADD COLUMN selected_by TEXT;
ALTER TABLE agency_release_times ADD COLUMN finding TEXT;
ALTER TABLE agency_release_times ADD COLUMN standing_instruction INTEGER;
