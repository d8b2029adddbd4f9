-- Collectors' API keys, operators and their sessions, and the outages and maintenance read model.

-- HTTP ingest keys. Only a SHA-256 of each key is kept; the key is shown once, when created.
CREATE TABLE api_keys (
    name         text PRIMARY KEY,
    -- The systems the key may publish for.
    systems      text[] NOT NULL,
    key_hash     text NOT NULL UNIQUE,
    -- The key's first characters, so an operator can tell keys apart in `sitrep keys list`.
    key_prefix   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- Operators who sign in to the dashboard (besides those in SITREP_USERS_FILE). Argon2id hashes.
CREATE TABLE users (
    name          text PRIMARY KEY,
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Signed-in browsers. Only a SHA-256 of the cookie's token is kept. `csrf` is the token every
-- form of the session must carry.
CREATE TABLE sessions (
    token_hash text PRIMARY KEY,
    user_name  text NOT NULL,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);

-- Read model (projection `outages`): outages, their timelines, and maintenance windows.
CREATE TABLE outages (
    system               text NOT NULL,
    id                   text NOT NULL,
    severity             text NOT NULL,
    title                text NOT NULL,
    description          text,
    components           text[] NOT NULL,
    started_at           timestamptz NOT NULL,
    estimated_resolution timestamptz,
    resolved_at          timestamptz,
    declared_position    bigint NOT NULL,
    updated_position     bigint NOT NULL,
    PRIMARY KEY (system, id)
);
CREATE INDEX outages_active ON outages (system) WHERE resolved_at IS NULL;

CREATE TABLE outage_updates (
    position bigint PRIMARY KEY,
    system   text NOT NULL,
    id       text NOT NULL,
    at       timestamptz NOT NULL,
    -- declared, updated or resolved
    kind     text NOT NULL,
    severity text,
    message  text,
    by       text
);
CREATE INDEX outage_updates_outage ON outage_updates (system, id, position);

CREATE TABLE maintenance_windows (
    system             text NOT NULL,
    id                 text NOT NULL,
    -- maintenance or reservation
    kind               text NOT NULL,
    title              text NOT NULL,
    description        text,
    components         text[] NOT NULL,
    nodes              integer,
    partition          text,
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    cancelled_at       timestamptz,
    message            text,
    scheduled_position bigint NOT NULL,
    updated_position   bigint NOT NULL,
    PRIMARY KEY (system, id)
);
CREATE INDEX maintenance_windows_ends ON maintenance_windows (ends_at) WHERE cancelled_at IS NULL;
