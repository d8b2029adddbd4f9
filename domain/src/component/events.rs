//! What happened to a component. Events carry everything the read side needs, so projections
//! are a plain `match` with no clock reads.

use crate::{ComponentName, Status, SystemName};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ComponentEvent {
    /// A collector reported on the component. Every report is kept.
    StatusReported {
        system: SystemName,
        component: ComponentName,
        status: Status,
        #[serde(with = "time::serde::rfc3339")]
        observed_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        received_at: OffsetDateTime,
        message: Option<String>,
        metrics: BTreeMap<String, f64>,
        labels: BTreeMap<String, String>,
        ttl_seconds: Option<u32>,
        /// Observed before the latest report already recorded: kept for history, but it does
        /// not change the current state.
        late: bool,
    },
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

impl ComponentEvent {
    pub const STATUS_REPORTED: &'static str = "StatusReported";
    pub const STATUS_CHANGED: &'static str = "StatusChanged";
}

impl DomainEvent for ComponentEvent {
    fn event_type(&self) -> String {
        match self {
            ComponentEvent::StatusReported { .. } => Self::STATUS_REPORTED,
            ComponentEvent::StatusChanged { .. } => Self::STATUS_CHANGED,
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
