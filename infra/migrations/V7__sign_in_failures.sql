-- Failed sign-ins by the name tried, so that every web process refuses a name that failed too
-- often lately (infra::auth::sign_in_refused_until). Rows older than the window go whenever a
-- new failure is recorded; a successful sign-in forgets its name's.
-- Never edit a migration once it has landed: add a new one.

CREATE TABLE sign_in_failures (
    name text        NOT NULL,
    at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_failures_name_at ON sign_in_failures (name, at);
