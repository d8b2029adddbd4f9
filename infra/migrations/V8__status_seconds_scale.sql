-- The seconds in each status, kept to the microsecond with a fixed scale. `us::numeric /
-- 1000000` picks its scale from the quotient's size, and the upsert adds the step's seconds to
-- the stored ones, so the same total was stored as 3360.0000000000000000 by one batching of the
-- log and with other trailing zeros by another: equal values, different text. Every value is a
-- whole number of microseconds, so scale 6 holds each exactly, and the column now makes every
-- value, old and new, take it. This rewrites the table once (minutes for tens of millions of
-- rows, under a lock that holds up history pages meanwhile).
-- Never edit a migration once it has landed: add a new one.

ALTER TABLE status_rollups ALTER COLUMN seconds TYPE numeric(20, 6);
