//! What operators (and their tools) say about a system besides status reports: outages
//! (`<prefix>.outage.<system>`) and maintenance windows or reservations
//! (`<prefix>.maintenance.<system>`). Both are messages with an `action` on an entity named by
//! `id`; this module decodes the envelope and the fields they share, and [`decode`] turns a
//! message into the command for its aggregate.

use crate::maintenance::MaintenanceCommand;
use crate::outage::OutageCommand;
use crate::wire::{self, kind, no_nul, present, FieldError, MessageKind};
use crate::{ComponentName, SystemName};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use time::OffsetDateTime;

/// The longest `title`, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The longest `description` or `message`, in characters.
pub const MAX_TEXT_CHARS: usize = 5_000;
/// The most components one outage or window may name.
pub const MAX_COMPONENTS: usize = 500;
/// The longest id, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// The id a publisher gives an outage or a window, unique within its system: 1-64 ASCII
/// letters, digits, `.`, `_`, `-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NoticeId(String);

impl NoticeId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > MAX_ID_LEN {
            return Err(format!("is {} bytes long; at most {MAX_ID_LEN} are allowed", raw.len()));
        }
        if !raw.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(format!("{raw:?} must start with a letter or digit"));
        }
        if let Some(bad) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c))) {
            return Err(format!("{raw:?} contains {bad:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NoticeId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<NoticeId> for String {
    fn from(id: NoticeId) -> String {
        id.0
    }
}

impl fmt::Display for NoticeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The aggregate id of an outage or a window: `system/id`.
pub fn aggregate_id(system: &SystemName, id: &NoticeId) -> String {
    format!("{}/{}", system.as_str(), id.as_str())
}

/// A decoded outage or maintenance message: the aggregate it is for and the command.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Outage { system: SystemName, id: NoticeId, command: OutageCommand },
    Maintenance { system: SystemName, id: NoticeId, command: MaintenanceCommand },
}

impl Notice {
    /// The aggregate type and id the command goes to.
    pub fn target(&self) -> (&'static str, String) {
        match self {
            Notice::Outage { system, id, .. } => (crate::outage::AGGREGATE_TYPE, aggregate_id(system, id)),
            Notice::Maintenance { system, id, .. } => (crate::maintenance::AGGREGATE_TYPE, aggregate_id(system, id)),
        }
    }
}

/// The state of the outage or window a notice is for, folded from its stored events; it decides
/// the notice's command. What ingest and the HTTP check share.
#[derive(Debug, Clone)]
pub enum NoticeState {
    Outage(crate::outage::Outage),
    Maintenance(crate::maintenance::Maintenance),
}

/// An event a notice's command decided on, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
}

impl NoticeState {
    /// The state before any event of the aggregate the notice is for.
    pub fn empty(notice: &Notice) -> Self {
        match notice {
            Notice::Outage { .. } => Self::Outage(Default::default()),
            Notice::Maintenance { .. } => Self::Maintenance(Default::default()),
        }
    }

    /// Applies one stored event of this aggregate.
    pub fn apply_stored(&mut self, payload: Value) -> Result<(), serde_json::Error> {
        use cqrs_es::Aggregate;
        match self {
            Self::Outage(s) => s.apply(serde_json::from_value(payload)?),
            Self::Maintenance(s) => s.apply(serde_json::from_value(payload)?),
        }
        Ok(())
    }

    /// Runs the notice's command; the events come back applied to `self`. An `Err` is the
    /// aggregate's reason for refusing.
    pub async fn decide(&mut self, notice: &Notice) -> Result<Vec<Decided>, String> {
        use cqrs_es::DomainEvent;
        fn decided(e: impl DomainEvent) -> Result<Decided, String> {
            Ok(Decided {
                event_type: e.event_type(),
                event_version: e.event_version(),
                payload: serde_json::to_value(&e).map_err(|e| e.to_string())?,
            })
        }
        match (self, notice) {
            (Self::Outage(s), Notice::Outage { system, id, command }) => {
                let target = crate::outage::Target { system: system.clone(), id: id.clone() };
                let events = s.decide(command.clone(), &target).await.map_err(|e| e.to_string())?;
                events.into_iter().map(decided).collect()
            }
            (Self::Maintenance(s), Notice::Maintenance { system, id, command }) => {
                let target = crate::outage::Target { system: system.clone(), id: id.clone() };
                let events = s.decide(command.clone(), &target).await.map_err(|e| e.to_string())?;
                events.into_iter().map(decided).collect()
            }
            _ => Err("an outage's state was given a maintenance command, or the reverse".into()),
        }
    }
}

/// Decodes an outage or maintenance message (`kind` must be one of those). `subject_system` is
/// the system its subject (or the caller's key) names; `received_at` stands in for missing times.
pub fn decode(
    kind: MessageKind,
    subject_system: &str,
    payload: &[u8],
    received_at: OffsetDateTime,
) -> Result<Notice, FieldError> {
    let (obj, system) = wire::object_for(subject_system, payload)?;
    let id = match present(&obj, "id") {
        None => return Err(FieldError::new("id", "is required")),
        Some(Value::String(s)) => NoticeId::parse(s).map_err(|r| FieldError::new("id", r))?,
        Some(v) => return Err(FieldError::new("id", format!("must be a string, not {}", wire::kind(v)))),
    };
    let fields = Fields { obj: &obj, received_at };
    match kind {
        MessageKind::Outage => Ok(Notice::Outage { system, id, command: crate::outage::command(&fields)? }),
        MessageKind::Maintenance => {
            Ok(Notice::Maintenance { system, id, command: crate::maintenance::command(&fields)? })
        }
        MessageKind::Report => Err(FieldError::new("subject", "carries reports, not outages or maintenance")),
    }
}

/// The fields of one message, read with errors that name them.
pub(crate) struct Fields<'a> {
    pub obj: &'a Map<String, Value>,
    pub received_at: OffsetDateTime,
}

impl Fields<'_> {
    /// `action`, which must be one of `allowed`.
    pub fn action(&self, allowed: &[&'static str]) -> Result<&'static str, FieldError> {
        let expected = || format!("expected one of {}", allowed.join(", "));
        match present(self.obj, "action") {
            None => Err(FieldError::new("action", format!("is required; {}", expected()))),
            Some(Value::String(s)) => allowed
                .iter()
                .find(|a| *a == s)
                .copied()
                .ok_or_else(|| FieldError::new("action", format!("{s:?} is not an action; {}", expected()))),
            Some(v) => Err(FieldError::new("action", format!("must be a string, not {}", kind(v)))),
        }
    }

    /// A text field of at most `max` characters (and at least one, when present).
    pub fn text(&self, field: &str, max: usize) -> Result<Option<String>, FieldError> {
        match present(self.obj, field) {
            None => Ok(None),
            Some(Value::String(s)) => {
                no_nul(s, field)?;
                let n = s.chars().count();
                if n == 0 {
                    return Err(FieldError::new(field, "must not be empty"));
                }
                if n > max {
                    return Err(FieldError::new(field, format!("is {n} characters; at most {max} are allowed")));
                }
                Ok(Some(s.clone()))
            }
            Some(v) => Err(FieldError::new(field, format!("must be a string, not {}", kind(v)))),
        }
    }

    /// A text field that must be there.
    pub fn required_text(&self, field: &str, max: usize) -> Result<String, FieldError> {
        self.text(field, max)?.ok_or_else(|| FieldError::new(field, "is required"))
    }

    /// One of `allowed`, parsed by `parse`.
    pub fn choice<T>(
        &self,
        field: &str,
        allowed: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, FieldError> {
        match present(self.obj, field) {
            None => Ok(None),
            Some(Value::String(s)) => parse(s).map(Some).ok_or_else(|| {
                FieldError::new(field, format!("{s:?} is not allowed; expected one of {}", allowed.join(", ")))
            }),
            Some(v) => Err(FieldError::new(field, format!("must be a string, not {}", kind(v)))),
        }
    }

    /// A time, which may be any distance in the future.
    pub fn time(&self, field: &str) -> Result<Option<OffsetDateTime>, FieldError> {
        present(self.obj, field).map(|v| wire::parse_rfc3339(v, field)).transpose()
    }

    /// A time that says when something was seen or began, so at most a few minutes ahead.
    pub fn past_time(&self, field: &str) -> Result<Option<OffsetDateTime>, FieldError> {
        present(self.obj, field).map(|v| wire::parse_time(v, field, self.received_at)).transpose()
    }

    /// When the message was said: `observed_at`, else when it was received.
    pub fn observed_at(&self) -> Result<OffsetDateTime, FieldError> {
        Ok(self.past_time("observed_at")?.unwrap_or(self.received_at))
    }

    /// A list of component names.
    pub fn components(&self) -> Result<Option<Vec<ComponentName>>, FieldError> {
        let Some(v) = present(self.obj, "components") else { return Ok(None) };
        let Value::Array(items) = v else {
            return Err(FieldError::new("components", format!("must be an array of component names, not {}", kind(v))));
        };
        if items.len() > MAX_COMPONENTS {
            return Err(FieldError::new(
                "components",
                format!("holds {} components; at most {MAX_COMPONENTS} are allowed", items.len()),
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let field = format!("components[{i}]");
            match item {
                Value::String(s) => out.push(ComponentName::parse(s).map_err(|r| FieldError::new(&field, r))?),
                v => return Err(FieldError::new(field, format!("must be a string, not {}", kind(v)))),
            }
        }
        Ok(Some(out))
    }

    /// A whole number in `range`.
    pub fn count(&self, field: &str, range: std::ops::RangeInclusive<u64>) -> Result<Option<u32>, FieldError> {
        match present(self.obj, field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if range.contains(&n) => Ok(Some(n as u32)),
                _ => Err(FieldError::new(
                    field,
                    format!("must be a whole number from {} to {}, not {v}", range.start(), range.end()),
                )),
            },
        }
    }

    /// A name such as a partition: like an id.
    pub fn name(&self, field: &str) -> Result<Option<String>, FieldError> {
        match present(self.obj, field) {
            None => Ok(None),
            Some(Value::String(s)) => NoticeId::parse(s).map(|n| Some(n.0)).map_err(|r| FieldError::new(field, r)),
            Some(v) => Err(FieldError::new(field, format!("must be a string, not {}", kind(v)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_outage_naming_a_component_with_a_dot_dot_segment_is_rejected_naming_that_component() {
        let payload = br#"{"system":"derecho","id":"glade-slow","action":"declare","severity":"minor",
            "title":"GLADE slow","components":["fs/glade","fs/../../ops"]}"#;
        let err = decode(MessageKind::Outage, "derecho", payload, datetime!(2026-11-22 10:00 UTC)).unwrap_err();
        assert_eq!(err.field, "components[1]");
        assert!(err.reason.contains("\"..\" segment"), "{err}");
    }
}
