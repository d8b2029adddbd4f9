//! The outage aggregate: an operator (or a tool) declares that part of a system is down,
//! keeps a timeline of updates, and resolves it. Operators often know before collectors do, so a
//! declared outage colours its system even while every report still says ok.
//!
//! One aggregate per outage, id `system/id`: declared → updated … → resolved.

use crate::notice::{Fields, NoticeId, MAX_TEXT_CHARS, MAX_TITLE_CHARS};
use crate::wire::FieldError;
use crate::{ComponentName, SystemName};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The aggregate type outage events are stored under.
pub const AGGREGATE_TYPE: &str = "outage";

/// How bad an outage is: `minor` (reduced service), `major` (a service is down), `critical`
/// (the system is unusable). Ordered worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutageSeverity {
    Critical,
    Major,
    Minor,
}

impl OutageSeverity {
    pub const NAMES: [&'static str; 3] = ["minor", "major", "critical"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minor" => Some(Self::Minor),
            "major" => Some(Self::Major),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minor => "minor",
            Self::Major => "major",
            Self::Critical => "critical",
        }
    }
}

/// An outage as declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Declaration {
    pub severity: OutageSeverity,
    pub title: String,
    pub description: Option<String>,
    pub components: Vec<ComponentName>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub estimated_resolution: Option<OffsetDateTime>,
}

/// A timeline entry: `message`, and the fields that are set replace the outage's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutageChange {
    pub message: String,
    pub severity: Option<OutageSeverity>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub components: Option<Vec<ComponentName>>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub estimated_resolution: Option<OffsetDateTime>,
}

/// What can be said about an outage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OutageCommand {
    Declare {
        outage: Declaration,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Update {
        change: OutageChange,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Resolve {
        message: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// The command an outage message carries (see `docs/collectors.md`).
pub(crate) fn command(f: &Fields<'_>) -> Result<OutageCommand, FieldError> {
    let severity = || f.choice("severity", &OutageSeverity::NAMES, OutageSeverity::parse);
    let at = f.observed_at()?;
    Ok(match f.action(&["declare", "update", "resolve"])? {
        "declare" => {
            let outage = Declaration {
                severity: severity()?.ok_or_else(|| {
                    FieldError::new(
                        "severity",
                        format!("is required; expected one of {}", OutageSeverity::NAMES.join(", ")),
                    )
                })?,
                title: f.required_text("title", MAX_TITLE_CHARS)?,
                description: f.text("description", MAX_TEXT_CHARS)?,
                components: f.components()?.unwrap_or_default(),
                started_at: f.past_time("started_at")?.unwrap_or(at),
                estimated_resolution: f.time("estimated_resolution")?,
            };
            if outage.ends_before_start() {
                return Err(FieldError::new("estimated_resolution", "must not be before started_at"));
            }
            OutageCommand::Declare { outage, at }
        }
        "update" => OutageCommand::Update {
            change: OutageChange {
                message: f.required_text("message", MAX_TEXT_CHARS)?,
                severity: severity()?,
                title: f.text("title", MAX_TITLE_CHARS)?,
                description: f.text("description", MAX_TEXT_CHARS)?,
                components: f.components()?,
                estimated_resolution: f.time("estimated_resolution")?,
            },
            at,
        },
        _ => OutageCommand::Resolve { message: f.text("message", MAX_TEXT_CHARS)?, at },
    })
}

impl Declaration {
    fn ends_before_start(&self) -> bool {
        self.estimated_resolution.is_some_and(|end| end < self.started_at)
    }
}

/// What happened to an outage. Each event names its outage, so the read side needs nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OutageEvent {
    Declared {
        system: SystemName,
        id: NoticeId,
        outage: Declaration,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Updated {
        system: SystemName,
        id: NoticeId,
        change: OutageChange,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Resolved {
        system: SystemName,
        id: NoticeId,
        message: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl DomainEvent for OutageEvent {
    fn event_type(&self) -> String {
        match self {
            OutageEvent::Declared { .. } => "OutageDeclared",
            OutageEvent::Updated { .. } => "OutageUpdated",
            OutageEvent::Resolved { .. } => "OutageResolved",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// Where an outage is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    #[default]
    Undeclared,
    Active,
    Resolved,
}

/// The state the rules need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    pub identity: Option<(SystemName, NoticeId)>,
    pub phase: Phase,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OutageError {
    #[error("outage {0} is already declared; send an update, or declare a new outage with another id")]
    AlreadyDeclared(String),
    #[error("outage {0} was never declared; declare it first")]
    NotDeclared(String),
    #[error("outage {0} is resolved; declare a new outage with another id")]
    Resolved(String),
    #[error("the outage cannot be estimated to end before it started")]
    EndsBeforeStart,
}

/// The aggregate's services: which outage a command is for (its id is not in the command).
pub struct Target {
    pub system: SystemName,
    pub id: NoticeId,
}

impl Aggregate for Outage {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = OutageCommand;
    type Event = OutageEvent;
    type Error = OutageError;
    type Services = Target;

    async fn handle(&mut self, command: OutageCommand, t: &Target, sink: &EventSink<Self>) -> Result<(), OutageError> {
        let name = crate::notice::aggregate_id(&t.system, &t.id);
        let (system, id) = (t.system.clone(), t.id.clone());
        let event = match (self.phase, command) {
            (Phase::Undeclared, OutageCommand::Declare { outage, at }) => {
                if outage.ends_before_start() {
                    return Err(OutageError::EndsBeforeStart);
                }
                OutageEvent::Declared { system, id, outage, at }
            }
            (_, OutageCommand::Declare { .. }) => return Err(OutageError::AlreadyDeclared(name)),
            (Phase::Undeclared, _) => return Err(OutageError::NotDeclared(name)),
            (Phase::Resolved, _) => return Err(OutageError::Resolved(name)),
            (Phase::Active, OutageCommand::Update { change, at }) => OutageEvent::Updated { system, id, change, at },
            (Phase::Active, OutageCommand::Resolve { message, at }) => {
                OutageEvent::Resolved { system, id, message, at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: OutageEvent) {
        match event {
            OutageEvent::Declared { system, id, .. } => {
                self.identity = Some((system, id));
                self.phase = Phase::Active;
            }
            OutageEvent::Updated { .. } => {}
            OutageEvent::Resolved { .. } => self.phase = Phase::Resolved,
        }
    }
}

impl Outage {
    /// Runs one command and returns the events it decided on (already applied to `self`).
    pub async fn decide(&mut self, command: OutageCommand, target: &Target) -> Result<Vec<OutageEvent>, OutageError> {
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

    const T0: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);
    const T1: OffsetDateTime = datetime!(2026-11-22 11:00:00 UTC);

    fn target() -> Target {
        Target { system: SystemName::parse("derecho").unwrap(), id: NoticeId::parse("glade-1").unwrap() }
    }

    fn test() -> TestFramework<Outage> {
        TestFramework::with(target())
    }

    fn declaration(started_at: OffsetDateTime, estimated_resolution: OffsetDateTime) -> Declaration {
        Declaration {
            severity: OutageSeverity::Major,
            title: "Glade unavailable".into(),
            description: None,
            components: vec![ComponentName::parse("fs/glade").unwrap()],
            started_at,
            estimated_resolution: Some(estimated_resolution),
        }
    }

    fn declare() -> OutageCommand {
        OutageCommand::Declare { outage: declaration(T0, T1), at: T0 }
    }

    fn declared() -> OutageEvent {
        let t = target();
        OutageEvent::Declared { system: t.system, id: t.id, outage: declaration(T0, T1), at: T0 }
    }

    fn change(message: &str) -> OutageChange {
        OutageChange {
            message: message.into(),
            severity: Some(OutageSeverity::Critical),
            title: None,
            description: None,
            components: None,
            estimated_resolution: None,
        }
    }

    fn update(message: &str) -> OutageCommand {
        OutageCommand::Update { change: change(message), at: T1 }
    }

    fn resolve() -> OutageCommand {
        OutageCommand::Resolve { message: Some("restored".into()), at: T1 }
    }

    fn resolved() -> OutageEvent {
        let t = target();
        OutageEvent::Resolved { system: t.system, id: t.id, message: Some("restored".into()), at: T1 }
    }

    #[test]
    fn a_new_outage_is_declared() {
        test().given_no_previous_events().when(declare()).then_expect_events(vec![declared()]);
    }

    #[test]
    fn an_outage_cannot_be_declared_twice() {
        test()
            .given(vec![declared()])
            .when(declare())
            .then_expect_error(OutageError::AlreadyDeclared("derecho/glade-1".into()));
    }

    #[test]
    fn an_update_adds_to_the_timeline_of_an_active_outage() {
        let t = target();
        test().given(vec![declared()]).when(update("vendor on site")).then_expect_events(vec![OutageEvent::Updated {
            system: t.system,
            id: t.id,
            change: change("vendor on site"),
            at: T1,
        }]);
    }

    #[test]
    fn an_undeclared_outage_can_be_neither_updated_nor_resolved() {
        test()
            .given_no_previous_events()
            .when(update("x"))
            .then_expect_error(OutageError::NotDeclared("derecho/glade-1".into()));
        test()
            .given_no_previous_events()
            .when(resolve())
            .then_expect_error(OutageError::NotDeclared("derecho/glade-1".into()));
    }

    #[test]
    fn an_active_outage_is_resolved_once() {
        test().given(vec![declared()]).when(resolve()).then_expect_events(vec![resolved()]);
        test()
            .given(vec![declared(), resolved()])
            .when(resolve())
            .then_expect_error(OutageError::Resolved("derecho/glade-1".into()));
        test()
            .given(vec![declared(), resolved()])
            .when(update("x"))
            .then_expect_error(OutageError::Resolved("derecho/glade-1".into()));
    }

    #[test]
    fn an_estimate_before_the_start_is_refused() {
        let cmd = OutageCommand::Declare { outage: declaration(T1, T0), at: T1 };
        test().given_no_previous_events().when(cmd).then_expect_error(OutageError::EndsBeforeStart);
    }
}
