//! What happened to a component. Events carry everything the read side needs, so projections
//! are a plain `match` with no clock reads.

use crate::wire::Report;
use crate::{ComponentName, Status, SystemName};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ComponentEvent {
    /// A collector reported on the component. Every report is kept.
    StatusReported(Reported),
    /// The component's status differs from the one reported before (`from` is `None` for the
    /// first report ever).
    StatusChanged {
        system: SystemName,
        component: ComponentName,
        from: Option<Status>,
        to: Status,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// A report as recorded. (Serialized as `{"StatusReported": {fields}}`, the same JSON as a
/// struct variant.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reported {
    pub system: SystemName,
    pub component: ComponentName,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub message: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    pub labels: BTreeMap<String, String>,
    pub ttl_seconds: Option<u32>,
    /// Observed before the latest report already recorded: kept for history, but it does
    /// not change the current state.
    pub late: bool,
}

impl Reported {
    /// The record of a collector's report, received at `received_at`.
    pub fn new(report: Report, received_at: OffsetDateTime, late: bool) -> Self {
        Self {
            system: report.system,
            component: report.component,
            status: report.status,
            observed_at: report.observed_at,
            received_at,
            message: report.message,
            metrics: report.metrics,
            labels: report.labels,
            ttl_seconds: report.ttl_seconds,
            late,
        }
    }
}

impl ComponentEvent {
    pub const STATUS_REPORTED: &'static str = "StatusReported";
    pub const STATUS_CHANGED: &'static str = "StatusChanged";
}

impl DomainEvent for ComponentEvent {
    fn event_type(&self) -> String {
        match self {
            ComponentEvent::StatusReported(_) => Self::STATUS_REPORTED,
            ComponentEvent::StatusChanged { .. } => Self::STATUS_CHANGED,
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
