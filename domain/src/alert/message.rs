//! One alert transition as the world outside sees it: the JSON published on
//! `sitrep.alert.<severity>.<system>` and posted to webhooks (documented in docs/alerts.md).

use super::aggregate::Alert;
use super::events::AlertEvent;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// An alert event with the alert as it was just before and just after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub position: i64,
    pub event_id: Uuid,
    pub alert_id: Uuid,
    pub event: AlertEvent,
    pub before: Alert,
    pub after: Alert,
}

/// Wire format of an alert transition, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    pub version: u32,
    pub alert_id: Uuid,
    /// Also the `Nats-Msg-Id`: each transition has exactly one.
    pub event_id: Uuid,
    /// Position of the transition in sitrep's event log.
    pub position: i64,
    /// firing, acknowledged, silenced, unsilenced, maintenance_ended or resolved.
    pub transition: String,
    /// The alert's state after it: firing, acknowledged, silenced or resolved.
    pub state: String,
    pub severity: String,
    pub rule: String,
    pub kind: String,
    pub system: String,
    pub component: String,
    pub summary: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub by: Option<String>,
    pub comment: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub silenced_until: Option<OffsetDateTime>,
    pub reason: Option<String>,
    pub impacted_by: Option<String>,
    /// `system/id` of the maintenance window the alert was raised in, if it was.
    #[serde(default)]
    pub maintenance: Option<String>,
    /// The component's labels in the report that raised the alert (`{}` when it had none).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Whether people should hear of it: false while silenced (except resolution), for alerts
    /// that give way to a failed parent, and for alerts raised in maintenance until it is over.
    pub notify: bool,
}

impl Transition {
    /// Whether this transition should reach people.
    pub fn notify(&self) -> bool {
        self.before.notifies(&self.event)
    }

    /// The message for the bus and webhooks (`None` for an alert that was never raised).
    pub fn message(&self) -> Option<AlertMessage> {
        let info = self.after.info.as_ref()?;
        let (by, comment, reason) = match &self.event {
            AlertEvent::Acknowledged { by, comment, .. } | AlertEvent::Silenced { by, comment, .. } => {
                (Some(by.clone()), Some(comment.clone()), None)
            }
            AlertEvent::Resolved { reason, .. } => (None, None, Some(reason.clone())),
            _ => (None, None, None),
        };
        Some(AlertMessage {
            version: 1,
            alert_id: self.alert_id,
            event_id: self.event_id,
            position: self.position,
            transition: self.event.transition().to_owned(),
            state: self.after.state.as_str().to_owned(),
            severity: info.severity.as_str().to_owned(),
            rule: info.rule.clone(),
            kind: info.kind.clone(),
            system: info.system.clone(),
            component: info.component.clone(),
            summary: info.summary.clone(),
            since: info.since,
            at: self.event.at(),
            by,
            comment,
            silenced_until: self.after.silenced_until,
            reason,
            impacted_by: info.impacted_by.clone(),
            maintenance: info.maintenance.clone(),
            labels: info.labels.clone(),
            notify: self.notify(),
        })
    }
}
