//! # sitrep-infra
//!
//! Everything that touches the outside world. Start at [`settings`] (what can be configured),
//! then [`event_store`] (how events are kept and read back in order).
//!
//! - [`settings`]: the typed `Settings`, with local defaults and `SITREP_*` overrides.
//! - [`telemetry`]: tracing set-up, in one place.
//! - [`db`]: the Postgres pool, creating the database, and migrations (`migrations/`).
//! - [`event_store`]: the `events` table: batched append, the gap-safe global reader, snapshots,
//!   and the cqrs-es `PersistedEventRepository` for per-command use.
//! - [`archive`]: archive files of old events (gzip JSON lines with a checksummed manifest).
//! - [`alerts`]: alert rules from `alerts.toml`, the evaluator's recorded events, carrying out
//!   its decisions, and alert events read back as transitions.
//! - [`auth`]: collectors' API keys, operators (Argon2id passwords, roles) and their sessions.
//! - [`provenance`]: the signed API key name HTTP ingest attaches to a message, so ingest
//!   records only keys that really sent it.
//! - [`metrics`]: the process's Prometheus metrics (ingest, HTTP, projection lag).
//! - [`quarantine`]: messages that could not be decoded or validated, kept with their reason.
//! - [`wakeup`]: LISTEN/NOTIFY, so readers wake as soon as events commit.
//! - [`bus`]: NATS JetStream: the report stream, its durable consumer, and subjects.
//! - [`leader`]: one active worker per projection or side effect across processes (advisory locks).
//! - [`leftovers`]: removing the databases and streams of stopped tests and benchmarks.
//! - [`devservices`]: local Postgres and NATS for the demo and tests when none are reachable.
//! - [`error`]: this crate's error type.

pub mod alerts;
pub mod archive;
pub mod auth;
pub mod bus;
pub mod db;
pub mod devservices;
pub mod error;
pub mod event_store;
pub mod leader;
pub mod leftovers;
pub mod metrics;
pub mod provenance;
pub mod quarantine;
pub mod settings;
pub mod telemetry;
pub mod wakeup;

pub use error::InfraError;
pub use settings::Settings;
