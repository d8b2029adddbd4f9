//! Alerts: rules operators write, the alert aggregate's lifecycle, and the evaluator that
//! turns the event log into alert commands.
//!
//! - [`rules`]: `alerts.toml` parsed into a checked [`RuleSet`]; [`rule_tests`]: tests of rules
//!   over synthetic reports (`sitrep rules test`).
//! - [`evaluator`]: the process manager; a pure function of the log.
//! - [`aggregate`]: raised → acknowledged / silenced → resolved (cqrs-es).
//! - [`backtest`]: what candidate rules would have done over a stretch of the log, in memory.
//! - [`message`]: a transition as subscribers and webhooks get it.
//! - [`notify`]: which transitions go to which receiver, grouped how and when (the decisions
//!   recorded in the log).
//! - [`receivers`]: `[[receiver]]`s (Slack, Teams, PagerDuty, …) and the request each takes.
//! - [`summary`]: the words of an alert, filled in from its rule's template.

/// The aggregate type alert events are stored under.
pub const AGGREGATE_TYPE: &str = "alert";

/// A time as RFC 3339, for the words of alerts and their errors.
fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub mod aggregate;
pub mod backtest;
pub mod commands;
pub mod evaluator;
pub mod events;
pub mod message;
pub mod notify;
pub mod receivers;
pub mod rule_tests;
pub mod rules;
pub mod summary;

pub use aggregate::{Alert, AlertError, AlertState};
pub use commands::AlertCommand;
pub use evaluator::{Decision, Evaluator, Input, Tracked};
pub use events::{AlertEvent, AlertInfo, EvaluatorEvent};
pub use message::{AlertMessage, Transition};
pub use rules::{Condition, RuleError, RuleSet, Severity};
