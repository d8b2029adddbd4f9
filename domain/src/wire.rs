//! Wire format v1: what collectors publish on `sitrep.report.<system>` (and POST over HTTP).
//!
//! A payload is UTF-8 JSON holding one report, or a batch under `reports` whose items inherit
//! the batch's `system`, `observed_at`, `labels` and `ttl_seconds`. Decoding parses every field
//! into its domain type; each failure names the field (`reports[3].status`) and says why.
//!
//! A message-level failure (not JSON, wrong subject, no `system`) rejects the whole message. In a
//! batch, a bad item is rejected alone: the valid items still go on, and the rejection is kept.

use crate::{ComponentName, Status, SystemName};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// The largest payload accepted, in bytes (the NATS default `max_payload` too).
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// The most reports one batch may carry.
pub const MAX_REPORTS_PER_BATCH: usize = 5_000;
/// The longest `message`, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1_000;
/// The most metrics one report may carry.
pub const MAX_METRICS: usize = 200;
/// The most labels one report may carry.
pub const MAX_LABELS: usize = 50;
/// The longest metric or label name, in bytes.
pub const MAX_NAME_LEN: usize = 100;
/// The longest label value, in characters.
pub const MAX_LABEL_VALUE_CHARS: usize = 256;
/// The longest `ttl_seconds` accepted: 30 days.
pub const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;
/// How far in the future `observed_at` may be, to allow for clock skew.
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);

/// One valid status report for one component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub system: SystemName,
    pub component: ComponentName,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    pub message: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    pub labels: BTreeMap<String, String>,
    pub ttl_seconds: Option<u32>,
}

/// A rejection that names the field at fault and says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// What one message decodes into: its valid reports and the items rejected alone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    pub reports: Vec<Report>,
    pub rejected: Vec<FieldError>,
}

/// What a subject carries: `<prefix>.report.<system>`, `<prefix>.outage.<system>` or
/// `<prefix>.maintenance.<system>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Report,
    Outage,
    Maintenance,
}

impl MessageKind {
    pub const ALL: [MessageKind; 3] = [MessageKind::Report, MessageKind::Outage, MessageKind::Maintenance];

    /// The subject token after the prefix.
    pub fn token(self) -> &'static str {
        match self {
            MessageKind::Report => "report",
            MessageKind::Outage => "outage",
            MessageKind::Maintenance => "maintenance",
        }
    }
}

/// What a subject carries and the system it names.
pub fn parse_subject<'a>(prefix: &str, subject: &'a str) -> Result<(MessageKind, &'a str), FieldError> {
    let expected = || {
        format!(
            "{subject:?} is not a sitrep subject; expected {prefix}.report.<system>, {prefix}.outage.<system> \
             or {prefix}.maintenance.<system>"
        )
    };
    let rest = subject
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('.'))
        .ok_or_else(|| FieldError::new("subject", expected()))?;
    let (token, system) = rest.split_once('.').ok_or_else(|| FieldError::new("subject", expected()))?;
    let kind = MessageKind::ALL
        .into_iter()
        .find(|k| k.token() == token)
        .ok_or_else(|| FieldError::new("subject", expected()))?;
    if system.is_empty() || system.contains('.') {
        return Err(FieldError::new("subject", expected()));
    }
    Ok((kind, system))
}

/// The `system` a payload names, for checking who may send it before decoding the rest.
pub fn peek_system(payload: &[u8]) -> Result<SystemName, FieldError> {
    system_of(&parse_object(payload)?)
}

/// A payload as a JSON object: within the size limit, UTF-8, JSON, and an object.
pub(crate) fn parse_object(payload: &[u8]) -> Result<Map<String, Value>, FieldError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(FieldError::new(
            "payload",
            format!("is {} bytes; at most {MAX_PAYLOAD_BYTES} are allowed", payload.len()),
        ));
    }
    let text =
        std::str::from_utf8(payload).map_err(|e| FieldError::new("payload", format!("is not valid UTF-8 ({e})")))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| FieldError::new("payload", format!("is not valid JSON: {e}")))?;
    match value {
        Value::Object(top) => Ok(top),
        other => Err(FieldError::new("payload", format!("must be a JSON object, not {}", kind(&other)))),
    }
}

fn system_of(top: &Map<String, Value>) -> Result<SystemName, FieldError> {
    match top.get("system") {
        None | Some(Value::Null) => Err(FieldError::new("system", "is required")),
        Some(Value::String(s)) => SystemName::parse(s).map_err(|r| FieldError::new("system", r)),
        Some(other) => Err(FieldError::new("system", format!("must be a string, not {}", kind(other)))),
    }
}

/// The payload's object and its `system`, which must equal the one its subject (or URL) names.
pub(crate) fn object_for(subject_system: &str, payload: &[u8]) -> Result<(Map<String, Value>, SystemName), FieldError> {
    let top = parse_object(payload)?;
    let system = system_of(&top)?;
    if system.as_str() != subject_system {
        return Err(FieldError::new(
            "system",
            format!("{:?} does not match the subject's system {subject_system:?}", system.as_str()),
        ));
    }
    Ok((top, system))
}

/// Decodes one message. `subject_system` is the system its subject (or URL) names; the payload's
/// `system` must equal it. `received_at` stands in for a missing `observed_at` and bounds how far
/// in the future one may be.
pub fn decode(subject_system: &str, payload: &[u8], received_at: OffsetDateTime) -> Result<Decoded, FieldError> {
    let (top, system) = object_for(subject_system, payload)?;
    let batch_defaults = Defaults::parse(&top, "", received_at, &Defaults::none(received_at))?;
    match top.get("reports") {
        None | Some(Value::Null) => {
            let report = parse_item(&top, "", &system, &batch_defaults)?;
            Ok(Decoded { reports: vec![report], rejected: vec![] })
        }
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(FieldError::new("reports", "must hold at least one report"));
            }
            if items.len() > MAX_REPORTS_PER_BATCH {
                return Err(FieldError::new(
                    "reports",
                    format!("holds {} reports; at most {MAX_REPORTS_PER_BATCH} are allowed", items.len()),
                ));
            }
            let mut decoded = Decoded::default();
            for (i, item) in items.iter().enumerate() {
                let path = format!("reports[{i}].");
                let parsed = match item {
                    Value::Object(obj) => check_item_system(obj, &path, &system).and_then(|()| {
                        let defaults = Defaults::parse(obj, &path, received_at, &batch_defaults)?;
                        parse_item(obj, &path, &system, &defaults)
                    }),
                    other => Err(FieldError::new(
                        format!("reports[{i}]"),
                        format!("must be a JSON object, not {}", kind(other)),
                    )),
                };
                match parsed {
                    Ok(report) => decoded.reports.push(report),
                    Err(e) => decoded.rejected.push(e),
                }
            }
            Ok(decoded)
        }
        Some(other) => Err(FieldError::new("reports", format!("must be an array, not {}", kind(other)))),
    }
}

/// The fields a batch item inherits from the batch when it does not set them.
struct Defaults {
    observed_at: OffsetDateTime,
    labels: BTreeMap<String, String>,
    ttl_seconds: Option<u32>,
}

impl Defaults {
    fn none(received_at: OffsetDateTime) -> Self {
        Self { observed_at: received_at, labels: BTreeMap::new(), ttl_seconds: None }
    }

    fn parse(
        obj: &Map<String, Value>,
        path: &str,
        received_at: OffsetDateTime,
        outer: &Defaults,
    ) -> Result<Self, FieldError> {
        let observed_at = match present(obj, "observed_at") {
            None => outer.observed_at,
            Some(v) => parse_time(v, &format!("{path}observed_at"), received_at)?,
        };
        let mut labels = outer.labels.clone();
        if let Some(v) = present(obj, "labels") {
            labels.extend(parse_labels(v, &format!("{path}labels"))?);
            if labels.len() > MAX_LABELS {
                return Err(FieldError::new(
                    format!("{path}labels"),
                    format!("holds {} labels with the batch's; at most {MAX_LABELS} are allowed", labels.len()),
                ));
            }
        }
        let ttl_seconds = match present(obj, "ttl_seconds") {
            None => outer.ttl_seconds,
            Some(v) => Some(parse_ttl(v, &format!("{path}ttl_seconds"))?),
        };
        Ok(Self { observed_at, labels, ttl_seconds })
    }
}

fn check_item_system(obj: &Map<String, Value>, path: &str, system: &SystemName) -> Result<(), FieldError> {
    match present(obj, "system") {
        None => Ok(()),
        Some(Value::String(s)) if s == system.as_str() => Ok(()),
        Some(v) => Err(FieldError::new(
            format!("{path}system"),
            format!("{v} does not match the batch's system {:?}", system.as_str()),
        )),
    }
}

fn parse_item(
    obj: &Map<String, Value>,
    path: &str,
    system: &SystemName,
    defaults: &Defaults,
) -> Result<Report, FieldError> {
    let field = |name: &str| format!("{path}{name}");
    let component = match present(obj, "component") {
        None => return Err(FieldError::new(field("component"), "is required")),
        Some(Value::String(s)) => ComponentName::parse(s).map_err(|r| FieldError::new(field("component"), r))?,
        Some(v) => return Err(FieldError::new(field("component"), format!("must be a string, not {}", kind(v)))),
    };
    let status = match present(obj, "status") {
        None => return Err(FieldError::new(field("status"), "is required")),
        Some(Value::String(s)) => Status::parse(s).map_err(|r| FieldError::new(field("status"), r))?,
        Some(v) => return Err(FieldError::new(field("status"), format!("must be a string, not {}", kind(v)))),
    };
    let message = match present(obj, "message") {
        None => None,
        Some(Value::String(s)) => {
            no_nul(s, &field("message"))?;
            let n = s.chars().count();
            if n > MAX_MESSAGE_CHARS {
                return Err(FieldError::new(
                    field("message"),
                    format!("is {n} characters; at most {MAX_MESSAGE_CHARS} are allowed"),
                ));
            }
            Some(s.clone())
        }
        Some(v) => return Err(FieldError::new(field("message"), format!("must be a string, not {}", kind(v)))),
    };
    let metrics = match present(obj, "metrics") {
        None => BTreeMap::new(),
        Some(v) => parse_metrics(v, &field("metrics"))?,
    };
    Ok(Report {
        system: system.clone(),
        component,
        status,
        observed_at: defaults.observed_at,
        message,
        metrics,
        labels: defaults.labels.clone(),
        ttl_seconds: defaults.ttl_seconds,
    })
}

/// A field that is set and not `null`.
pub(crate) fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(crate) fn parse_time(v: &Value, field: &str, received_at: OffsetDateTime) -> Result<OffsetDateTime, FieldError> {
    let t = parse_rfc3339(v, field)?;
    if t > received_at + MAX_FUTURE_SKEW {
        return Err(FieldError::new(
            field,
            format!(
                "{v} is more than {} minutes in the future; check the collector's clock",
                MAX_FUTURE_SKEW.whole_minutes()
            ),
        ));
    }
    Ok(t)
}

/// An RFC 3339 time string, in UTC.
pub(crate) fn parse_rfc3339(v: &Value, field: &str) -> Result<OffsetDateTime, FieldError> {
    let Value::String(s) = v else {
        return Err(FieldError::new(field, format!("must be an RFC 3339 time string, not {}", kind(v))));
    };
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| {
            FieldError::new(field, format!("{s:?} is not an RFC 3339 time such as 2026-11-22T10:00:00Z ({e})"))
        })?
        .checked_to_offset(UtcOffset::UTC)
        .ok_or_else(|| FieldError::new(field, format!("{s:?} is past the year 9999 in UTC")))
}

fn parse_ttl(v: &Value, field: &str) -> Result<u32, FieldError> {
    match v.as_u64() {
        Some(n) if (1..=MAX_TTL_SECONDS).contains(&n) => Ok(n as u32),
        _ => Err(FieldError::new(
            field,
            format!("must be a whole number of seconds from 1 to {MAX_TTL_SECONDS}, not {v}"),
        )),
    }
}

fn check_name(name: &str, field: &str, what: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{what} name {name:?} must be 1 to {MAX_NAME_LEN} ASCII letters, digits, '_', '-' or '.'"),
        ))
    }
}

fn parse_metrics(v: &Value, field: &str) -> Result<BTreeMap<String, f64>, FieldError> {
    let Value::Object(map) = v else {
        return Err(FieldError::new(field, format!("must be an object of name to number, not {}", kind(v))));
    };
    if map.len() > MAX_METRICS {
        return Err(FieldError::new(field, format!("holds {} metrics; at most {MAX_METRICS} are allowed", map.len())));
    }
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let f = format!("{field}.{name}");
        check_name(name, &f, "metric")?;
        match value.as_f64() {
            Some(x) if x.is_finite() => {
                out.insert(name.clone(), x);
            }
            _ => return Err(FieldError::new(f, format!("must be a finite number, not {}", kind(value)))),
        }
    }
    Ok(out)
}

fn parse_labels(v: &Value, field: &str) -> Result<BTreeMap<String, String>, FieldError> {
    let Value::Object(map) = v else {
        return Err(FieldError::new(field, format!("must be an object of name to string, not {}", kind(v))));
    };
    if map.len() > MAX_LABELS {
        return Err(FieldError::new(field, format!("holds {} labels; at most {MAX_LABELS} are allowed", map.len())));
    }
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let f = format!("{field}.{name}");
        check_name(name, &f, "label")?;
        match value {
            Value::String(s) if s.chars().count() <= MAX_LABEL_VALUE_CHARS => {
                no_nul(s, &f)?;
                out.insert(name.clone(), s.clone());
            }
            Value::String(_) => {
                return Err(FieldError::new(f, format!("is longer than {MAX_LABEL_VALUE_CHARS} characters")))
            }
            other => return Err(FieldError::new(f, format!("must be a string, not {}", kind(other)))),
        }
    }
    Ok(out)
}

/// Postgres text cannot hold NUL, so a NUL would make the report impossible to store.
pub(crate) fn no_nul(s: &str, field: &str) -> Result<(), FieldError> {
    if s.contains('\0') {
        Err(FieldError::new(field, "contains a NUL character (\\u0000), which cannot be stored"))
    } else {
        Ok(())
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 10:05:00 UTC);

    fn one(payload: &str) -> Result<Report, FieldError> {
        let decoded = decode("derecho", payload.as_bytes(), NOW)?;
        assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        assert_eq!(decoded.reports.len(), 1);
        Ok(decoded.reports.into_iter().next().unwrap())
    }

    #[test]
    fn the_documented_single_report_decodes_with_every_field() {
        let r = one(r#"{"system": "derecho", "component": "login/derecho1", "status": "ok",
            "observed_at": "2026-11-22T10:00:00Z", "message": "41 users",
            "metrics": {"users": 41, "load_1m": 3.2}, "labels": {"kind": "login_node"},
            "ttl_seconds": 600}"#)
        .unwrap();
        assert_eq!(r.system.as_str(), "derecho");
        assert_eq!(r.component.as_str(), "login/derecho1");
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.observed_at, datetime!(2026-11-22 10:00:00 UTC));
        assert_eq!(r.message.as_deref(), Some("41 users"));
        assert_eq!(r.metrics["users"], 41.0);
        assert_eq!(r.metrics["load_1m"], 3.2);
        assert_eq!(r.labels["kind"], "login_node");
        assert_eq!(r.ttl_seconds, Some(600));
    }

    #[test]
    fn the_documented_batch_decodes_and_items_inherit_the_batch_fields() {
        let d = decode(
            "derecho",
            br#"{"system": "derecho", "observed_at": "2026-11-22T10:00:00Z", "ttl_seconds": 120,
                 "labels": {"site": "nwsc"},
                 "reports": [{"component": "queue/main", "status": "ok", "metrics": {"running_jobs": 1203}},
                             {"component": "fs/glade", "status": "degraded", "message": "OST0003 slow",
                              "labels": {"kind": "filesystem"}, "ttl_seconds": 60}]}"#,
            NOW,
        )
        .unwrap();
        assert!(d.rejected.is_empty());
        assert_eq!(d.reports.len(), 2);
        assert_eq!(d.reports[0].observed_at, datetime!(2026-11-22 10:00:00 UTC));
        assert_eq!(d.reports[0].ttl_seconds, Some(120));
        assert_eq!(d.reports[0].labels.get("site").map(String::as_str), Some("nwsc"));
        assert_eq!(d.reports[1].status, Status::Degraded);
        assert_eq!(d.reports[1].ttl_seconds, Some(60));
        assert_eq!(d.reports[1].labels.len(), 2);
    }

    #[test]
    fn missing_observed_at_means_the_receive_time_and_offsets_become_utc() {
        let r = one(r#"{"system":"derecho","component":"x","status":"ok"}"#).unwrap();
        assert_eq!(r.observed_at, NOW);
        let r = one(r#"{"system":"derecho","component":"x","status":"ok","observed_at":"2026-11-22T12:00:00+02:00"}"#)
            .unwrap();
        assert_eq!(r.observed_at, datetime!(2026-11-22 10:00:00 UTC));
        assert_eq!(r.observed_at.offset(), UtcOffset::UTC);
    }

    #[test]
    fn unknown_fields_and_nulls_are_ignored() {
        let r = one(
            r#"{"system":"derecho","component":"x","status":"failed","extra":{"a":[1]},"message":null,"metrics":null}"#,
        )
        .unwrap();
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.message, None);
        assert!(r.metrics.is_empty());
    }

    #[test]
    fn a_report_for_a_component_with_a_dot_dot_segment_is_rejected_naming_the_component() {
        let err =
            decode("derecho", br#"{"system":"derecho","component":"../../../ops","status":"ok"}"#, NOW).unwrap_err();
        assert_eq!(err.field, "component");
        assert!(err.reason.contains("segment, which would make its links point elsewhere"), "{err}");

        let batch = decode(
            "derecho",
            br#"{"system":"derecho","reports":[{"component":"fs/glade","status":"ok"},
                                               {"component":"fs/./glade","status":"ok"}]}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(batch.reports.len(), 1);
        assert_eq!(batch.rejected.len(), 1);
        assert_eq!(batch.rejected[0].field, "reports[1].component");
    }

    /// Each bad message, and the field and reason it must be rejected with.
    #[test]
    fn bad_messages_are_rejected_with_the_field_and_the_reason() {
        let cases: &[(&[u8], &str, &str)] = &[
            (b"\xff\xfe", "payload", "not valid UTF-8"),
            (b"{not json", "payload", "not valid JSON"),
            (
                br#"{"system":"derecho","component":"x","status":"ok","observed_at":"9999-12-31T23:59:59-01:00"}"#,
                "observed_at",
                "past the year 9999",
            ),
            (b"[1,2]", "payload", "must be a JSON object, not an array"),
            (br#"{"component":"x","status":"ok"}"#, "system", "is required"),
            (br#"{"system":7,"component":"x","status":"ok"}"#, "system", "must be a string, not a number"),
            (
                br#"{"system":"casper","component":"x","status":"ok"}"#,
                "system",
                "does not match the subject's system \"derecho\"",
            ),
            (br#"{"system":"der.echo","component":"x","status":"ok"}"#, "system", "contains '.'"),
            (br#"{"system":"derecho","status":"ok"}"#, "component", "is required"),
            (br#"{"system":"derecho","component":"a b","status":"ok"}"#, "component", "contains ' '"),
            (br#"{"system":"derecho","component":["x"],"status":"ok"}"#, "component", "must be a string, not an array"),
            (br#"{"system":"derecho","component":"x"}"#, "status", "is required"),
            (br#"{"system":"derecho","component":"x","status":"green"}"#, "status", "\"green\" is not a status"),
            (br#"{"system":"derecho","component":"x","status":1}"#, "status", "must be a string, not a number"),
            (
                br#"{"system":"derecho","component":"x","status":"ok","observed_at":"yesterday"}"#,
                "observed_at",
                "not an RFC 3339 time",
            ),
            (
                br#"{"system":"derecho","component":"x","status":"ok","observed_at":1700000000}"#,
                "observed_at",
                "must be an RFC 3339 time string, not a number",
            ),
            (
                br#"{"system":"derecho","component":"x","status":"ok","observed_at":"2026-11-22T11:00:00Z"}"#,
                "observed_at",
                "in the future",
            ),
            (
                br#"{"system":"derecho","component":"x","status":"ok","metrics":{"load":"high"}}"#,
                "metrics.load",
                "must be a finite number, not a string",
            ),
            (br#"{"system":"derecho","component":"x","status":"ok","metrics":[1]}"#, "metrics", "must be an object"),
            (
                br#"{"system":"derecho","component":"x","status":"ok","metrics":{"a b":1}}"#,
                "metrics.a b",
                "metric name",
            ),
            (
                br#"{"system":"derecho","component":"x","status":"ok","metrics":{"big":1e400}}"#,
                "payload",
                "not valid JSON",
            ),
            (br#"{"system":"derecho","component":"x","status":"ok","metrics":{"x":NaN}}"#, "payload", "not valid JSON"),
            (
                br#"{"system":"derecho","component":"x","status":"ok","labels":{"kind":3}}"#,
                "labels.kind",
                "must be a string, not a number",
            ),
            (br#"{"system":"derecho","component":"x","status":"ok","labels":"login"}"#, "labels", "must be an object"),
            (
                br#"{"system":"derecho","component":"x","status":"ok","ttl_seconds":0}"#,
                "ttl_seconds",
                "whole number of seconds",
            ),
            (
                br#"{"system":"derecho","component":"x","status":"ok","ttl_seconds":1.5}"#,
                "ttl_seconds",
                "whole number of seconds",
            ),
            (
                br#"{"system":"derecho","component":"x","status":"ok","ttl_seconds":"600"}"#,
                "ttl_seconds",
                "whole number of seconds",
            ),
            (
                br#"{"system":"derecho","component":"x","status":"ok","message":5}"#,
                "message",
                "must be a string, not a number",
            ),
            (br#"{"system":"derecho","component":"x","status":"ok","message":"a\u0000b"}"#, "message", "NUL character"),
            (
                br#"{"system":"derecho","component":"x","status":"ok","labels":{"k":"\u0000"}}"#,
                "labels.k",
                "NUL character",
            ),
            (br#"{"system":"derecho","reports":{}}"#, "reports", "must be an array, not an object"),
            (br#"{"system":"derecho","reports":[]}"#, "reports", "at least one report"),
        ];
        for (payload, field, reason) in cases {
            let err = decode("derecho", payload, NOW).unwrap_err();
            assert_eq!(err.field, *field, "{}: {err}", String::from_utf8_lossy(payload));
            assert!(err.reason.contains(reason), "{}: {err}", String::from_utf8_lossy(payload));
        }
    }

    #[test]
    fn limits_are_enforced_with_the_limit_named() {
        let long = format!(r#"{{"system":"derecho","component":"x","status":"ok","message":"{}"}}"#, "m".repeat(1001));
        let err = decode("derecho", long.as_bytes(), NOW).unwrap_err();
        assert_eq!((err.field.as_str(), err.reason.contains("at most 1000")), ("message", true), "{err}");

        let labels: Vec<String> = (0..10_000).map(|i| format!(r#""l{i}":"v""#)).collect();
        let many = format!(r#"{{"system":"derecho","component":"x","status":"ok","labels":{{{}}}}}"#, labels.join(","));
        let err = decode("derecho", many.as_bytes(), NOW).unwrap_err();
        assert_eq!(err.field, "labels");
        assert!(err.reason.contains("at most 50"), "{err}");

        let huge = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        let err = decode("derecho", &huge, NOW).unwrap_err();
        assert_eq!(err.field, "payload");
        assert!(err.reason.contains("at most 1048576"), "{err}");

        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(decode("derecho", deep.as_bytes(), NOW).unwrap_err().field, "payload");
    }

    #[test]
    fn a_bad_item_in_a_batch_is_rejected_alone_and_the_rest_are_kept() {
        let d = decode(
            "derecho",
            br#"{"system":"derecho","reports":[
                {"component":"a","status":"ok"},
                {"component":"b","status":"sideways"},
                7,
                {"component":"c","status":"ok","system":"casper"},
                {"component":"d","status":"failed"}]}"#,
            NOW,
        )
        .unwrap();
        let kept: Vec<&str> = d.reports.iter().map(|r| r.component.as_str()).collect();
        assert_eq!(kept, ["a", "d"]);
        let fields: Vec<&str> = d.rejected.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["reports[1].status", "reports[2]", "reports[3].system"]);
    }

    #[test]
    fn the_subject_names_the_kind_and_the_system() {
        assert_eq!(parse_subject("sitrep", "sitrep.report.derecho"), Ok((MessageKind::Report, "derecho")));
        assert_eq!(parse_subject("t1.sitrep", "t1.sitrep.report.x"), Ok((MessageKind::Report, "x")));
        assert_eq!(parse_subject("sitrep", "sitrep.outage.casper"), Ok((MessageKind::Outage, "casper")));
        assert_eq!(parse_subject("sitrep", "sitrep.maintenance.casper"), Ok((MessageKind::Maintenance, "casper")));
        for bad in
            ["sitrep.report.", "sitrep.report.a.b", "sitrep.alert.a", "other.report.a", "sitrepx.report.a", "sitrep"]
        {
            let err = parse_subject("sitrep", bad).unwrap_err();
            assert_eq!(err.field, "subject", "{bad}");
            assert!(err.reason.contains("sitrep.report.<system>"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_system_can_be_read_before_the_rest() {
        assert_eq!(peek_system(br#"{"system":"casper","status":7}"#).unwrap().as_str(), "casper");
        assert_eq!(peek_system(br#"{"status":"ok"}"#).unwrap_err().field, "system");
        assert_eq!(peek_system(b"nope").unwrap_err().field, "payload");
    }
}
