//! Alerts: rules operators write, the alert aggregate's lifecycle, and the evaluator that
//! turns the event log into alert commands.
//!
//! - [`rules`]: `alerts.toml` parsed into a checked [`RuleSet`].
//! - [`evaluator`]: the process manager; a pure function of the log.
//! - [`aggregate`]: raised → acknowledged / silenced → resolved (cqrs-es).
//! - [`summary`]: the words of an alert, filled in from its rule's template.

pub mod aggregate;
pub mod commands;
pub mod evaluator;
pub mod events;
pub mod rules;
pub mod summary;

pub use aggregate::{Alert, AlertError, AlertState};
pub use commands::AlertCommand;
pub use evaluator::{Decision, Evaluator, Input};
pub use events::{AlertEvent, AlertInfo, EvaluatorEvent};
pub use rules::{Condition, RuleError, RuleSet, Severity};
