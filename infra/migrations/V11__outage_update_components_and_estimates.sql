-- Pages in the past show each outage's components and expected end as they were then, as V10
-- does for titles: what each declaration and update set (NULL: unchanged). Rows already stored
-- take theirs from the event log.
ALTER TABLE outage_updates ADD COLUMN components text[], ADD COLUMN estimated_resolution timestamptz;
UPDATE outage_updates u
   SET components = CASE WHEN jsonb_typeof(s.said->'components') = 'array'
                         THEN ARRAY(SELECT jsonb_array_elements_text(s.said->'components')) END,
       estimated_resolution = (s.said->>'estimated_resolution')::timestamptz
  FROM (SELECT position, coalesce(payload->'Declared'->'outage', payload->'Updated'->'change') AS said
          FROM events WHERE aggregate_type = 'outage') s
 WHERE s.position = u.position;
