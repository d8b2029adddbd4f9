//! What happens to an alert, and what the evaluator records for itself. Events carry what the
//! read side and the notifiers need, with every time taken from the log.

use super::rules::{RuleSet, Severity};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// Who and what an alert is about, fixed when it is raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInfo {
    pub alert_id: Uuid,
    pub rule: String,
    /// The rule's kind: status, threshold, stale or flapping.
    pub kind: String,
    pub severity: Severity,
    pub system: String,
    pub component: String,
    pub summary: String,
    /// When the condition began (the `for` duration counts from here).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// `system:component` of a failed parent this alert gives way to: recorded, not notified.
    pub impacted_by: Option<String>,
    /// `system/id` of the maintenance window (or reservation) the component was inside when the
    /// alert was raised: it notifies nobody until the window is over (`MaintenanceEnded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
    /// The component's labels in the report that raised it, for routing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlertEvent {
    /// The rule fired. `cause` is the position of the event that made it fire.
    Raised {
        info: AlertInfo,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        cause: i64,
    },
    /// An operator has taken it on.
    Acknowledged {
        by: String,
        comment: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// An operator muted it until `until`. Its resolution is still notified.
    Silenced {
        by: String,
        comment: String,
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The silence ran out while the alert still fired.
    SilenceExpired {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        cause: i64,
    },
    /// The maintenance window it was raised in is over (ended, cancelled, or no longer names
    /// its component) while it still fires: from here on it notifies like any other alert.
    MaintenanceEnded {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        cause: i64,
    },
    /// The condition cleared (or its rule was removed). A later firing is a new alert.
    Resolved {
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        cause: i64,
    },
}

impl AlertEvent {
    /// The word subscribers see for this transition.
    pub fn transition(&self) -> &'static str {
        match self {
            AlertEvent::Raised { .. } => "firing",
            AlertEvent::Acknowledged { .. } => "acknowledged",
            AlertEvent::Silenced { .. } => "silenced",
            AlertEvent::SilenceExpired { .. } => "unsilenced",
            AlertEvent::MaintenanceEnded { .. } => "maintenance_ended",
            AlertEvent::Resolved { .. } => "resolved",
        }
    }

    pub fn at(&self) -> OffsetDateTime {
        match self {
            AlertEvent::Raised { at, .. }
            | AlertEvent::Acknowledged { at, .. }
            | AlertEvent::Silenced { at, .. }
            | AlertEvent::SilenceExpired { at, .. }
            | AlertEvent::MaintenanceEnded { at, .. }
            | AlertEvent::Resolved { at, .. } => *at,
        }
    }
}

impl DomainEvent for AlertEvent {
    fn event_type(&self) -> String {
        match self {
            AlertEvent::Raised { .. } => "AlertRaised",
            AlertEvent::Acknowledged { .. } => "AlertAcknowledged",
            AlertEvent::Silenced { .. } => "AlertSilenced",
            AlertEvent::SilenceExpired { .. } => "AlertSilenceExpired",
            AlertEvent::MaintenanceEnded { .. } => "AlertMaintenanceEnded",
            AlertEvent::Resolved { .. } => "AlertResolved",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// What the evaluator records so that its decisions depend on the log alone: the rules in
/// force, and the passing of time when nothing else happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EvaluatorEvent {
    /// These rules are in force from here on (recorded at start-up when the file changed).
    RulesLoaded { rules: RuleSet, source: String },
    /// Time passed: a `for` duration, a freshness window or a silence may have run out.
    Ticked {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl EvaluatorEvent {
    pub const AGGREGATE_TYPE: &'static str = "alert_evaluator";
    /// The one stream the evaluator records to.
    pub const AGGREGATE_ID: &'static str = "evaluator";
}

impl DomainEvent for EvaluatorEvent {
    fn event_type(&self) -> String {
        match self {
            EvaluatorEvent::RulesLoaded { .. } => "AlertRulesLoaded",
            EvaluatorEvent::Ticked { .. } => "AlertClockTicked",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
