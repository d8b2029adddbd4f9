//! # sitrep-projections
//!
//! Read models, each kept current from the event log by the same runner. Start at [`runner`].
//!
//! - [`runner`]: the `Projection` trait and the loop that feeds a projection every event once,
//!   in order, committing its tables and its checkpoint in one transaction.
//! - [`latest_status`]: the latest state of every component (the dashboard's main read model).
//! - [`history`]: every report, status segments, hourly and daily rollups, and their retention.
//! - [`timeline`]: the pure time arithmetic behind history (segments, stale gaps, buckets).

pub mod history;
pub mod latest_status;
pub mod runner;
pub mod timeline;

pub use history::{History, Retention};
pub use latest_status::LatestStatus;
pub use runner::{catch_up, reset, run, Projection};
