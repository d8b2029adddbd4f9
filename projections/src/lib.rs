//! # sitrep-projections
//!
//! Read models, each kept current from the event log by the same runner. Start at [`runner`].
//!
//! - [`runner`]: the `Projection` trait and the loop that feeds a projection every event once,
//!   in order, committing its tables and its checkpoint in one transaction.
//! - [`latest_status`]: the latest state of every component (the dashboard's main read model).

pub mod latest_status;
pub mod runner;

pub use latest_status::LatestStatus;
pub use runner::{catch_up, reset, run, Projection};
