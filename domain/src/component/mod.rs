//! The component aggregate: one per `system:component`. It keeps every report as an event and
//! notices when the status changes.
//!
//! - [`commands`]: the one command, `ReportStatus`.
//! - [`events`]: what happened, `StatusReported` and `StatusChanged`.
//! - [`aggregate`]: the rules (`handle`) and the state they need (`apply`).

pub mod aggregate;
pub mod commands;
pub mod events;

/// The aggregate type of components in the event store.
pub const AGGREGATE_TYPE: &str = "component";

pub use aggregate::{Component, ComponentError};
pub use commands::ComponentCommand;
pub use events::{ComponentEvent, Reported};
