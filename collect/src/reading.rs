//! What a source produces, and the helpers every parser shares.

use serde_json::{json, Map, Value};
use sitrep_domain::status::Status;
use std::collections::BTreeMap;

/// One component's observation in one round: it becomes one report of the round's batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The component path, for example `queue/workq` (already made a valid name by [`component`]).
    pub component: String,
    pub status: Status,
    /// What was seen, in words; empty for none.
    pub message: String,
    pub metrics: BTreeMap<String, f64>,
    pub labels: BTreeMap<String, String>,
}

impl Reading {
    /// An `ok` reading of the component `<kind>/<name>`, with `name` made valid.
    pub fn new(kind: &str, name: &str) -> Self {
        Self {
            component: component(kind, name),
            status: Status::Ok,
            message: String::new(),
            metrics: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }

    /// An `unknown` reading whose message says what could not be read.
    pub fn unknown(kind: &str, name: &str, why: impl Into<String>) -> Self {
        Self::new(kind, name).status(Status::Unknown, why)
    }

    pub fn status(mut self, status: Status, message: impl Into<String>) -> Self {
        self.status = status;
        self.message = message.into();
        self
    }

    pub fn metric(mut self, name: &str, value: f64) -> Self {
        if value.is_finite() {
            self.metrics.insert(name.to_owned(), value);
        }
        self
    }

    pub fn label(mut self, name: &str, value: impl Into<String>) -> Self {
        let value: String = value.into();
        if !value.is_empty() {
            self.labels.insert(name.to_owned(), value.chars().take(256).collect());
        }
        self
    }

    /// The metric's value, or 0 when it was not set.
    pub fn get(&self, metric: &str) -> f64 {
        self.metrics.get(metric).copied().unwrap_or(0.0)
    }

    /// This reading as one item of a wire format v1 batch (no `system`, no time).
    pub fn to_wire(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("component".into(), json!(self.component));
        obj.insert("status".into(), json!(self.status.as_str()));
        if !self.message.is_empty() {
            let message: String = self.message.chars().take(sitrep_domain::wire::MAX_MESSAGE_CHARS).collect();
            obj.insert("message".into(), json!(message));
        }
        if !self.metrics.is_empty() {
            obj.insert("metrics".into(), json!(self.metrics));
        }
        if !self.labels.is_empty() {
            obj.insert("labels".into(), json!(self.labels));
        }
        Value::Object(obj)
    }
}

/// A valid component path `<kind>/<name>`: characters the wire format does not allow in a name
/// become `-`, an empty name becomes `unnamed`, and a name `.` or `..` (a segment the wire
/// format refuses, since its links would point elsewhere) becomes `-` or `--`.
pub fn component(kind: &str, name: &str) -> String {
    let clean: String =
        name.trim().chars().map(|c| if c.is_ascii_alphanumeric() || "-_.@+".contains(c) { c } else { '-' }).collect();
    let clean = match clean.as_str() {
        "" => "unnamed".to_owned(),
        "." | ".." => clean.replace('.', "-"),
        _ => clean,
    };
    let path = if kind.is_empty() { clean } else { format!("{kind}/{clean}") };
    path.chars().take(sitrep_domain::names::MAX_COMPONENT_LEN).collect()
}

/// A number however a scheduler wrote it: a JSON number, a numeric string (`"64"`), or Slurm's
/// `{"set": true, "infinite": false, "number": 64}` (None when unset or infinite).
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok().filter(|x: &f64| x.is_finite()),
        Value::Object(o) => {
            if o.get("set").and_then(Value::as_bool) == Some(false)
                || o.get("infinite").and_then(Value::as_bool) == Some(true)
            {
                None
            } else {
                o.get("number").and_then(number)
            }
        }
        _ => None,
    }
}

/// A share in percent, 0 when the whole is 0.
pub fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        (part / whole * 1000.0).round() / 10.0
    } else {
        0.0
    }
}

/// Why a command's output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

/// Parses JSON output, saying where it broke and quoting the start of what was printed when it
/// is not JSON at all (a plugin's error message, for example).
pub fn parse_json(text: &str) -> Result<Value, ParseError> {
    serde_json::from_str(text).map_err(|e| {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            ParseError::new("printed nothing")
        } else if !trimmed.starts_with(['{', '[']) {
            ParseError::new(format!("printed no JSON: {:?}", first_line(trimmed)))
        } else {
            ParseError::new(format!("printed invalid JSON: {e}"))
        }
    })
}

/// The first line of a text, cut to 200 characters.
pub fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_however_the_scheduler_wrote_them() {
        assert_eq!(number(&json!(64)), Some(64.0));
        assert_eq!(number(&json!("64")), Some(64.0));
        assert_eq!(number(&json!({"set": true, "infinite": false, "number": 8})), Some(8.0));
        assert_eq!(number(&json!({"set": false, "infinite": false, "number": 0})), None);
        assert_eq!(number(&json!({"set": true, "infinite": true, "number": 0})), None);
        assert_eq!(number(&json!("lots")), None);
        assert_eq!(number(&json!(null)), None);
    }

    #[test]
    fn names_with_characters_the_wire_format_refuses_are_made_valid() {
        assert_eq!(component("queue", "workq"), "queue/workq");
        assert_eq!(component("fs", "/glade/scratch"), "fs/-glade-scratch");
        assert_eq!(component("partition", "gpu:a100 x"), "partition/gpu-a100-x");
        assert_eq!(component("queue", " "), "queue/unnamed");
        assert_eq!(component("fs", ".."), "fs/--");
        assert_eq!(component("", "."), "-");
        assert_eq!(component("fs", "..."), "fs/...");
        assert!(sitrep_domain::names::ComponentName::parse(&component("fs", "..")).is_ok());
        let name = format!("queue/{}", "q".repeat(300));
        assert!(sitrep_domain::names::ComponentName::parse(&component("queue", &"q".repeat(300))).is_ok(), "{name}");
    }

    #[test]
    fn output_that_is_not_json_is_quoted_in_the_error() {
        let e = parse_json("squeue: error: No serializer\nmore").unwrap_err();
        assert_eq!(e.0, r#"printed no JSON: "squeue: error: No serializer""#);
        assert!(parse_json("{\"a\": ").unwrap_err().0.starts_with("printed invalid JSON: EOF"));
        assert_eq!(parse_json("  ").unwrap_err().0, "printed nothing");
    }
}
