//! # sitrep-projections
//!
//! Read models, each kept current from the event log by the same runner. Start at [`runner`].
//!
//! - [`runner`]: the `Projection` trait and the loop that feeds a projection every event once,
//!   in order, committing its tables and its checkpoint in one transaction.
//! - [`latest_status`]: the latest state of every component (the dashboard's main read model).
//! - [`history`]: every report, status segments, hourly and daily rollups, and their retention.
//!   [`exact`] adds metric values as Postgres sums `numeric`, so history can fold them first.
//! - [`alerts`]: the alert evaluator (a process manager run like a projection) and the alerts
//!   read model.
//! - [`outages`]: outages with their timelines, and maintenance windows.
//! - [`backtest`]: candidate alert rules run over a stretch of the log in memory (reads only).
//! - [`feed`]: one read of the log shared by rebuilds that apply every event.
//! - [`rebuild`]: a read model rebuilt beside the live one in shadow tables, swapped in or
//!   compared (`sitrep replay`, `sitrep verify`).
//! - [`timeline`]: the pure time arithmetic behind history (segments, stale gaps, buckets).
//! - [`sla`]: availability under a stated policy, from segments, maintenance and outages (pure).

pub mod alerts;
pub mod backtest;
pub mod exact;
pub mod feed;
pub mod history;
pub mod latest_status;
pub mod outages;
pub mod rebuild;
pub mod runner;
pub mod sla;
pub mod timeline;

pub use alerts::{AlertEvaluator, Alerts};
pub use history::{History, Retention};
pub use latest_status::LatestStatus;
pub use outages::Outages;
pub use runner::{catch_up, lock_checkpoint, move_checkpoint, reset, run, Projection};
