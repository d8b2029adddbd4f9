-- Secrets sitrep keeps for itself, made once by whichever process starts first. `provenance`
-- signs the API key name that HTTP ingest attaches to a message, so ingest can tell it from a
-- header that a NATS publisher set itself (infra/src/provenance.rs).
CREATE TABLE sitrep_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
