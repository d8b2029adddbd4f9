-- Pages in the past show each outage's title as it was then: the title each declaration and
-- update set (NULL: unchanged). Rows already stored take theirs from the event log.
ALTER TABLE outage_updates ADD COLUMN title text;
UPDATE outage_updates u
   SET title = coalesce(e.payload->'Declared'->'outage'->>'title', e.payload->'Updated'->'change'->>'title')
  FROM events e
 WHERE e.position = u.position AND e.aggregate_type = 'outage';
