-- The event log is the raw history. A report's observed time becomes a column of its event
-- (filled on append, here for the events already stored), with an index by component and time:
-- the last reports of a component, raw charts, the history API and time travel read the log
-- through it. The copy of every report that the history projection kept is dropped; rollups and
-- segments stay.
ALTER TABLE events ADD COLUMN observed_at timestamptz;
UPDATE events SET observed_at = (payload->'StatusReported'->>'observed_at')::timestamptz
 WHERE aggregate_type = 'component' AND event_type = 'StatusReported';
CREATE INDEX events_reports_by_time ON events (aggregate_id, observed_at, position) WHERE observed_at IS NOT NULL;
DROP TABLE history_reports;
