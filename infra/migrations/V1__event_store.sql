-- The event store, quarantine, projection checkpoints and the first read model.
-- Never edit a migration once it has landed: add a new one.

-- Every event sitrep has ever recorded. `position` is the global order.
CREATE TABLE events (
    position       bigserial   PRIMARY KEY,
    event_id       uuid        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL,
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL DEFAULT '{}',
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_aggregate_sequence_key UNIQUE (aggregate_type, aggregate_id, sequence)
);

-- Gap-safe global order by a single writer at a time: every statement that inserts events first
-- takes one transaction-scoped advisory lock, before any row draws its `position`. A second
-- writer waits until the first has committed, so positions become visible in ascending order
-- and a reader that reads `position > checkpoint` never skips an event that commits late.
-- The trigger enforces it for every writer, including ones that forget to take the lock.
CREATE FUNCTION events_single_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7381620227497754624);
    RETURN NULL;
END $$;

CREATE TRIGGER events_single_writer BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_single_writer();

-- Latest state of each aggregate (cqrs-es snapshots), so a command needs one row, not a replay.
CREATE TABLE snapshots (
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL,
    snapshot_version bigint NOT NULL,
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Messages that could not be decoded or validated, kept whole with the reason.
CREATE TABLE quarantine (
    id          bigserial   PRIMARY KEY,
    source_key  text        NOT NULL UNIQUE,
    subject     text        NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}',
    payload     bytea       NOT NULL,
    reason      text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_received_at ON quarantine (received_at DESC);

-- Each projection's position in the global order.
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Read model: the latest state of every component.
CREATE TABLE latest_status (
    system        text        NOT NULL,
    component     text        NOT NULL,
    status        text        NOT NULL,
    message       text,
    metrics       jsonb       NOT NULL DEFAULT '{}',
    labels        jsonb       NOT NULL DEFAULT '{}',
    ttl_seconds   integer,
    observed_at   timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    status_since  timestamptz NOT NULL,
    last_position bigint      NOT NULL,
    PRIMARY KEY (system, component)
);
