//! The maintenance window aggregate: planned maintenance, or a reservation of nodes, scheduled
//! ahead, updated, or cancelled. While a window is on, the components it names show MAINTENANCE
//! over what their collectors report (the read side compares the window with the time shown).
//!
//! One aggregate per window, id `system/id`: scheduled → updated … → cancelled.

use crate::notice::{Fields, NoticeId, MAX_TEXT_CHARS, MAX_TITLE_CHARS};
use crate::wire::FieldError;
use crate::{ComponentName, SystemName};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The aggregate type maintenance events are stored under.
pub const AGGREGATE_TYPE: &str = "maintenance";

/// The most nodes a window may reserve.
pub const MAX_NODES: u64 = 1_000_000;

/// Planned work, or nodes set aside (for a class, a benchmark, a user group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    Maintenance,
    Reservation,
}

impl WindowKind {
    pub const NAMES: [&'static str; 2] = ["maintenance", "reservation"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "maintenance" => Some(Self::Maintenance),
            "reservation" => Some(Self::Reservation),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Maintenance => "maintenance",
            Self::Reservation => "reservation",
        }
    }
}

/// A window's details, as scheduled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub kind: WindowKind,
    pub title: String,
    pub description: Option<String>,
    pub components: Vec<ComponentName>,
    pub nodes: Option<u32>,
    pub partition: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
}

/// Changes to a window; the fields that are set replace the window's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowChange {
    pub title: Option<String>,
    pub description: Option<String>,
    pub components: Option<Vec<ComponentName>>,
    pub nodes: Option<u32>,
    pub partition: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MaintenanceCommand {
    Schedule {
        window: Window,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Update {
        change: WindowChange,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Cancel {
        message: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// The command a maintenance message carries (see `docs/collectors.md`).
pub(crate) fn command(f: &Fields<'_>) -> Result<MaintenanceCommand, FieldError> {
    let at = f.observed_at()?;
    let nodes = || f.count("nodes", 1..=MAX_NODES);
    Ok(match f.action(&["schedule", "update", "cancel"])? {
        "schedule" => {
            let kind = f.choice("kind", &WindowKind::NAMES, WindowKind::parse)?.ok_or_else(|| {
                FieldError::new("kind", format!("is required; expected one of {}", WindowKind::NAMES.join(", ")))
            })?;
            let required = |field: &str| FieldError::new(field, "is required");
            let window = Window {
                kind,
                title: f.required_text("title", MAX_TITLE_CHARS)?,
                description: f.text("description", MAX_TEXT_CHARS)?,
                components: f.components()?.unwrap_or_default(),
                nodes: nodes()?,
                partition: f.name("partition")?,
                starts_at: f.time("starts_at")?.ok_or_else(|| required("starts_at"))?,
                ends_at: f.time("ends_at")?.ok_or_else(|| required("ends_at"))?,
            };
            if window.ends_at <= window.starts_at {
                return Err(FieldError::new("ends_at", "must be after starts_at"));
            }
            MaintenanceCommand::Schedule { window, at }
        }
        "update" => MaintenanceCommand::Update {
            change: WindowChange {
                title: f.text("title", MAX_TITLE_CHARS)?,
                description: f.text("description", MAX_TEXT_CHARS)?,
                components: f.components()?,
                nodes: nodes()?,
                partition: f.name("partition")?,
                starts_at: f.time("starts_at")?,
                ends_at: f.time("ends_at")?,
                message: f.text("message", MAX_TEXT_CHARS)?,
            },
            at,
        },
        _ => MaintenanceCommand::Cancel { message: f.text("message", MAX_TEXT_CHARS)?, at },
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MaintenanceEvent {
    Scheduled {
        system: SystemName,
        id: NoticeId,
        window: Window,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Updated {
        system: SystemName,
        id: NoticeId,
        change: WindowChange,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Cancelled {
        system: SystemName,
        id: NoticeId,
        message: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl DomainEvent for MaintenanceEvent {
    fn event_type(&self) -> String {
        match self {
            MaintenanceEvent::Scheduled { .. } => "MaintenanceScheduled",
            MaintenanceEvent::Updated { .. } => "MaintenanceUpdated",
            MaintenanceEvent::Cancelled { .. } => "MaintenanceCancelled",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// The state the rules need: the window as it stands, until cancelled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Maintenance {
    pub window: Option<Window>,
    pub cancelled: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MaintenanceError {
    #[error("window {0} is already scheduled; send an update, or schedule a new window with another id")]
    AlreadyScheduled(String),
    #[error("window {0} was never scheduled; schedule it first")]
    NotScheduled(String),
    #[error("window {0} is cancelled; schedule a new window with another id")]
    Cancelled(String),
    #[error("ends_at must be after starts_at")]
    EndsBeforeStart,
}

pub use crate::outage::Target;

impl Aggregate for Maintenance {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = MaintenanceCommand;
    type Event = MaintenanceEvent;
    type Error = MaintenanceError;
    type Services = Target;

    async fn handle(
        &mut self,
        command: MaintenanceCommand,
        t: &Target,
        sink: &EventSink<Self>,
    ) -> Result<(), MaintenanceError> {
        let name = crate::notice::aggregate_id(&t.system, &t.id);
        let (system, id) = (t.system.clone(), t.id.clone());
        let event = match (&self.window, self.cancelled, command) {
            (None, _, MaintenanceCommand::Schedule { window, at }) => {
                if window.ends_at <= window.starts_at {
                    return Err(MaintenanceError::EndsBeforeStart);
                }
                MaintenanceEvent::Scheduled { system, id, window, at }
            }
            (Some(_), _, MaintenanceCommand::Schedule { .. }) => return Err(MaintenanceError::AlreadyScheduled(name)),
            (None, _, _) => return Err(MaintenanceError::NotScheduled(name)),
            (Some(_), true, _) => return Err(MaintenanceError::Cancelled(name)),
            (Some(w), false, MaintenanceCommand::Update { change, at }) => {
                let starts = change.starts_at.unwrap_or(w.starts_at);
                let ends = change.ends_at.unwrap_or(w.ends_at);
                if ends <= starts {
                    return Err(MaintenanceError::EndsBeforeStart);
                }
                MaintenanceEvent::Updated { system, id, change, at }
            }
            (Some(_), false, MaintenanceCommand::Cancel { message, at }) => {
                MaintenanceEvent::Cancelled { system, id, message, at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: MaintenanceEvent) {
        match event {
            MaintenanceEvent::Scheduled { window, .. } => self.window = Some(window),
            MaintenanceEvent::Updated { change, .. } => {
                if let Some(w) = &mut self.window {
                    w.apply(change);
                }
            }
            MaintenanceEvent::Cancelled { .. } => self.cancelled = true,
        }
    }
}

impl Window {
    /// The window with a change applied.
    pub fn apply(&mut self, change: WindowChange) {
        let WindowChange { title, description, components, nodes, partition, starts_at, ends_at, message: _ } = change;
        if let Some(v) = title {
            self.title = v;
        }
        if description.is_some() {
            self.description = description;
        }
        if let Some(v) = components {
            self.components = v;
        }
        if nodes.is_some() {
            self.nodes = nodes;
        }
        if partition.is_some() {
            self.partition = partition;
        }
        if let Some(v) = starts_at {
            self.starts_at = v;
        }
        if let Some(v) = ends_at {
            self.ends_at = v;
        }
    }
}

impl Maintenance {
    /// Runs one command and returns the events it decided on (already applied to `self`).
    pub async fn decide(
        &mut self,
        command: MaintenanceCommand,
        target: &Target,
    ) -> Result<Vec<MaintenanceEvent>, MaintenanceError> {
        let sink = EventSink::default();
        self.handle(command, target, &sink).await?;
        Ok(sink.collect().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;
    use time::macros::datetime;

    const START: OffsetDateTime = datetime!(2026-12-01 08:00:00 UTC);
    const END: OffsetDateTime = datetime!(2026-12-01 20:00:00 UTC);
    const AT: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

    fn target() -> Target {
        Target { system: SystemName::parse("derecho").unwrap(), id: NoticeId::parse("pm-december").unwrap() }
    }

    fn test() -> TestFramework<Maintenance> {
        TestFramework::with(target())
    }

    fn window() -> Window {
        Window {
            kind: WindowKind::Maintenance,
            title: "Quarterly maintenance".into(),
            description: None,
            components: vec![ComponentName::parse("queue/main").unwrap()],
            nodes: Some(128),
            partition: Some("cpu".into()),
            starts_at: START,
            ends_at: END,
        }
    }

    fn scheduled() -> MaintenanceEvent {
        let t = target();
        MaintenanceEvent::Scheduled { system: t.system, id: t.id, window: window(), at: AT }
    }

    fn cancelled() -> MaintenanceEvent {
        let t = target();
        MaintenanceEvent::Cancelled { system: t.system, id: t.id, message: None, at: AT }
    }

    #[test]
    fn a_window_is_scheduled_once() {
        test()
            .given_no_previous_events()
            .when(MaintenanceCommand::Schedule { window: window(), at: AT })
            .then_expect_events(vec![scheduled()]);
        test()
            .given(vec![scheduled()])
            .when(MaintenanceCommand::Schedule { window: window(), at: AT })
            .then_expect_error(MaintenanceError::AlreadyScheduled("derecho/pm-december".into()));
    }

    #[test]
    fn an_update_that_would_end_the_window_before_it_starts_is_refused() {
        let change = WindowChange { ends_at: Some(START), ..Default::default() };
        test()
            .given(vec![scheduled()])
            .when(MaintenanceCommand::Update { change, at: AT })
            .then_expect_error(MaintenanceError::EndsBeforeStart);
    }

    #[test]
    fn an_update_moves_the_window() {
        let change = WindowChange { ends_at: Some(END + time::Duration::hours(2)), ..Default::default() };
        let t = target();
        test()
            .given(vec![scheduled()])
            .when(MaintenanceCommand::Update { change: change.clone(), at: AT })
            .then_expect_events(vec![MaintenanceEvent::Updated {
                system: t.system,
                id: t.id,
                change: change.clone(),
                at: AT,
            }]);
        let mut w = window();
        w.apply(change);
        assert_eq!((w.starts_at, w.ends_at, w.nodes), (START, END + time::Duration::hours(2), Some(128)));
    }

    #[test]
    fn a_cancelled_window_takes_no_more_commands_and_an_unknown_one_none_at_all() {
        test()
            .given(vec![scheduled()])
            .when(MaintenanceCommand::Cancel { message: None, at: AT })
            .then_expect_events(vec![cancelled()]);
        test()
            .given(vec![scheduled(), cancelled()])
            .when(MaintenanceCommand::Cancel { message: None, at: AT })
            .then_expect_error(MaintenanceError::Cancelled("derecho/pm-december".into()));
        test()
            .given_no_previous_events()
            .when(MaintenanceCommand::Cancel { message: None, at: AT })
            .then_expect_error(MaintenanceError::NotScheduled("derecho/pm-december".into()));
    }
}
