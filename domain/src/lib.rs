//! # sitrep-domain
//!
//! The language of sitrep, with no I/O. Start at [`wire`] to see what collectors send, then at
//! [`component`] to see what becomes of it.
//!
//! - [`names`]: `SystemName` and `ComponentName`, parsed at the edge with field-naming errors.
//! - [`status`]: the statuses a collector may report.
//! - [`wire`]: wire format v1 (one report or a batch), decoded and validated into [`wire::Report`]s.
//! - [`component`]: the component aggregate (cqrs-es): the `ReportStatus` command and the
//!   `StatusReported` / `StatusChanged` events.
//! - [`notice`]: outage and maintenance messages (`<prefix>.outage.<system>`,
//!   `<prefix>.maintenance.<system>`) decoded into commands for:
//! - [`outage`]: the outage aggregate (declared → updated → resolved);
//! - [`maintenance`]: the maintenance window aggregate (scheduled → updated → cancelled).
//! - [`alert`]: alert rules, the alert aggregate, and the evaluator (a pure process manager).

pub mod alert;
pub mod component;
pub mod maintenance;
pub mod names;
pub mod notice;
pub mod outage;
pub mod status;
pub mod wire;

pub use names::{component_aggregate_id, ComponentName, SystemName};
pub use status::Status;
