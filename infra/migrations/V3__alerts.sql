-- Alerts: the evaluator's saved state, the alerts read model, and webhook deliveries.
-- Never edit a migration once it has landed: add a new one.

-- Readers that want one kind of event (the alert publisher, the alert projection) skip the rest.
CREATE INDEX events_type_position ON events (aggregate_type, position);

-- The alert evaluator's state, saved in the same transaction as its checkpoint
-- (projection_checkpoints row `alert_evaluator`), so a restart goes on where it stopped.
CREATE TABLE alert_evaluator_state (
    name  text  PRIMARY KEY,
    state jsonb NOT NULL
);

-- Read model: every alert, as it is now.
CREATE TABLE alerts (
    alert_id        uuid        PRIMARY KEY,
    rule            text        NOT NULL,
    kind            text        NOT NULL,
    severity        text        NOT NULL,
    system          text        NOT NULL,
    component       text        NOT NULL,
    summary         text        NOT NULL,
    state           text        NOT NULL,
    impacted_by     text,
    since           timestamptz NOT NULL,
    raised_at       timestamptz NOT NULL,
    acknowledged_by text,
    acknowledged_at timestamptz,
    silenced_until  timestamptz,
    resolved_at     timestamptz,
    resolved_reason text,
    updated_at      timestamptz NOT NULL,
    raised_position bigint      NOT NULL,
    last_position   bigint      NOT NULL
);
CREATE INDEX alerts_open ON alerts (system, component) WHERE state <> 'resolved';
CREATE INDEX alerts_raised ON alerts (raised_at DESC);

-- Read model: each alert's transitions, with the position of the event that caused each.
CREATE TABLE alert_transitions (
    position   bigint      PRIMARY KEY,
    alert_id   uuid        NOT NULL,
    transition text        NOT NULL,
    state      text        NOT NULL,
    at         timestamptz NOT NULL,
    by_whom    text,
    comment    text,
    cause      bigint      NOT NULL,
    notify     boolean     NOT NULL
);
CREATE INDEX alert_transitions_alert ON alert_transitions (alert_id, position);

-- The webhook notifier's record of what it sent where (a side effect, not a projection).
CREATE TABLE alert_deliveries (
    event_id   uuid        NOT NULL,
    route      text        NOT NULL,
    alert_id   uuid        NOT NULL,
    position   bigint      NOT NULL,
    attempts   integer     NOT NULL,
    delivered  boolean     NOT NULL,
    last_error text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, route)
);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id, position);
