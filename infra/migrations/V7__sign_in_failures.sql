-- Sign-in attempts by the name tried, so that every web process refuses a name that failed too
-- often lately (infra::auth::begin_sign_in). Each attempt is recorded before its password is
-- checked; a failed one's row stays as the failure, a refused one's is withdrawn, and a
-- successful sign-in forgets its name's. Rows older than the window go as new ones come.
-- Never edit a migration once it has landed: add a new one.

CREATE TABLE sign_in_failures (
    id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text        NOT NULL,
    at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_failures_name_at ON sign_in_failures (name, at);
-- For deleting the rows past the window without reading the whole table.
CREATE INDEX sign_in_failures_at ON sign_in_failures (at);
