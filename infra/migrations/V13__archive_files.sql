-- What `sitrep archive` moved out of the events table: one row per archive file, recorded once
-- the file and its manifest are on disk and before its events are deleted. A run that stops
-- part-way through deleting finishes the deletes of every recorded file first.
CREATE TABLE archive_files (
    file             text        PRIMARY KEY,
    dir              text        NOT NULL,
    first_position   bigint      NOT NULL,
    last_position    bigint      NOT NULL,
    events           bigint      NOT NULL,
    sha256           text        NOT NULL,
    last_observed_at timestamptz,
    archived_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX archive_files_positions ON archive_files (first_position);
