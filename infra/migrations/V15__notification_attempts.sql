-- Every attempt to deliver a notification decision, with its result: written as it happens, in
-- its own transaction, so attempts made before a crash are kept too. A side effect's record, not
-- a projection: replay leaves it alone. `alert_deliveries` keeps each alert's outcome per
-- receiver; this keeps how it came about.
CREATE TABLE notification_attempts (
    id          bigserial   PRIMARY KEY,
    decision_id uuid        NOT NULL,
    -- The decision's position in the event log.
    position    bigint      NOT NULL,
    route       text        NOT NULL,
    target      text        NOT NULL,
    -- changes, repeat or escalation.
    reason      text        NOT NULL,
    alert_ids   uuid[]      NOT NULL,
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    ok          boolean     NOT NULL,
    error       text
);
CREATE INDEX notification_attempts_alerts ON notification_attempts USING gin (alert_ids);
CREATE INDEX notification_attempts_at ON notification_attempts (at);
