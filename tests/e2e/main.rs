//! End-to-end tests of sitrep against the real Postgres and the real NATS. Each test gets its
//! own database, stream, consumer and subject prefix (see `helpers::spawn_app`), so tests never
//! see each other's data nor a running `sitrep`. Set `TEST_LOG=1` to see the application's logs.

mod alerts;
mod archive;
mod backtest;
mod bad_input;
mod browser;
mod collectors;
mod event_store;
mod fuzz;
mod health;
mod helpers;
mod history;
mod hpc_collectors;
mod limits;
mod ops;
mod pipeline;
mod projections;
mod replay;
mod security;
mod sla;
mod status;
mod storage;
