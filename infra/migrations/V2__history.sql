-- History read models: every report, status segments, and hourly and daily rollups.
-- All of them are projections, rebuilt from the event log like latest_status.

-- Every report (late ones too), kept raw for the raw-history retention period.
CREATE TABLE history_reports (
    position    bigint      PRIMARY KEY,   -- the StatusReported event's position
    system      text        NOT NULL,
    component   text        NOT NULL,
    status      text        NOT NULL,
    message     text,
    metrics     jsonb       NOT NULL DEFAULT '{}',
    labels      jsonb       NOT NULL DEFAULT '{}',
    ttl_seconds integer,
    observed_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    late        boolean     NOT NULL
);
-- Newest-first reads order by (observed_at, position): the index holds both, so no sort.
CREATE INDEX history_reports_component_time ON history_reports (system, component, observed_at, position);
CREATE INDEX history_reports_time ON history_reports (observed_at);

-- Each component's statuses as consecutive segments of time, from its in-order reports. A gap
-- longer than the report's freshness window becomes a `stale` segment. The open segment
-- (ended_at NULL) lasts until last_report_at + ttl_seconds, then the component is stale.
-- Segments are small (one row per change) and kept for ever: uptime and time travel use them.
CREATE TABLE status_segments (
    system         text        NOT NULL,
    component      text        NOT NULL,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    status         text        NOT NULL,
    last_report_at timestamptz NOT NULL,
    ttl_seconds    integer     NOT NULL,
    PRIMARY KEY (system, component, started_at)
);
CREATE INDEX status_segments_open ON status_segments (system, component) WHERE ended_at IS NULL;

-- Per hour and per day, each metric's min, max, sum, count and last value (by observed_at).
-- `sum` is numeric so that the total does not depend on how events were batched.
CREATE TABLE metric_rollups (
    system     text        NOT NULL,
    component  text        NOT NULL,
    metric     text        NOT NULL,
    resolution text        NOT NULL CHECK (resolution IN ('hour', 'day')),
    bucket     timestamptz NOT NULL,
    min        float8      NOT NULL,
    max        float8      NOT NULL,
    sum        numeric     NOT NULL,
    count      bigint      NOT NULL,
    last       float8      NOT NULL,
    last_at    timestamptz NOT NULL,
    PRIMARY KEY (system, component, resolution, metric, bucket)
);
CREATE INDEX metric_rollups_retention ON metric_rollups (resolution, bucket);

-- Per hour and per day, the seconds each component spent in each status (closed intervals:
-- the time after a component's latest report is counted when the next report arrives).
CREATE TABLE status_rollups (
    system     text        NOT NULL,
    component  text        NOT NULL,
    resolution text        NOT NULL CHECK (resolution IN ('hour', 'day')),
    bucket     timestamptz NOT NULL,
    status     text        NOT NULL,
    seconds    numeric     NOT NULL,
    PRIMARY KEY (system, component, resolution, bucket, status)
);
CREATE INDEX status_rollups_retention ON status_rollups (resolution, bucket);
