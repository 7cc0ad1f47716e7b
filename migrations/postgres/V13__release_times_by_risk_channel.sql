-- The release-time facts gain the risk channel as a segment (the WCO's Time Release Study
-- segments by it): the strictest channel risk selection gave any current delivery of the
-- consignment (red, yellow, green), `unselected` when none was selected. Consignments accepted
-- before take it from their current deliveries' selections, as the facts compute it.
ALTER TABLE release_times ADD COLUMN risk_channel TEXT NOT NULL DEFAULT 'unselected';

UPDATE release_times SET risk_channel = COALESCE((
    SELECT CASE MAX(CASE (d.selection::json ->> 'channel') WHEN 'red' THEN 3 WHEN 'yellow' THEN 2 WHEN 'green' THEN 1 ELSE 0 END)
               WHEN 3 THEN 'red' WHEN 2 THEN 'yellow' WHEN 1 THEN 'green' END
      FROM deliveries d JOIN documents doc ON doc.id = d.document_id
     WHERE doc.ucr = release_times.ucr AND doc.superseded_by IS NULL AND doc.withdrawn_at IS NULL
       AND d.notice_id IS NULL AND d.selection IS NOT NULL
), 'unselected');
