//! Alert rules: what operators write in `alerts.toml`, parsed and checked at the edge into a
//! [`RuleSet`] whose every error names the rule and the field.
//!
//! ```toml
//! [[rule]]
//! name = "filesystem-failed"
//! match = "*:fs/*"            # system:component glob, default "*"
//! kind = "status"
//! status = ["failed"]
//! for = "2m"
//! severity = "critical"       # info, warning (default) or critical
//! summary = "{{system}} {{component}} is {{status}}"
//!
//! [[rule]]
//! name = "filesystem-full"
//! kind = "threshold"
//! metric = "used_pct"
//! above = 90                  # or `below`
//! clear = 85                  # resolves at or below this (default: the trigger value)
//! for = "10m"
//!
//! [[rule]]
//! name = "collector-silent"
//! kind = "stale"
//! ttl = "15m"                 # for reports without ttl_seconds (default SITREP_DEFAULT_TTL_SECONDS)
//!
//! [[rule]]
//! name = "flapping"
//! kind = "flapping"
//! changes = 4
//! within = "30m"
//!
//! [[dependency]]
//! match = "derecho:compute/*"
//! parent = "derecho:fs/glade"
//!
//! [[route]]
//! name = "ops-webhook"
//! url = "http://127.0.0.1:9000/hook"
//! severity = ["critical"]     # default: every severity
//! match = "derecho:*"
//! ```

use crate::Status;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How loud an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Critical, Severity::Warning, Severity::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| format!("{raw:?} is not a severity; expected info, warning or critical"))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way a threshold points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Fires when the value is above the trigger; clears at or below `clear`.
    Above,
    /// Fires when the value is below the trigger; clears at or above `clear`.
    Below,
}

/// What makes a rule fire. Durations are whole seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Condition {
    /// The status is one of `statuses` for at least `for_seconds`.
    Status { statuses: Vec<Status>, for_seconds: u64 },
    /// The metric is past `trigger` for at least `for_seconds`; resolves once past `clear` the
    /// other way (hysteresis, so the alert does not chatter around one value).
    Threshold { metric: String, direction: Direction, trigger: f64, clear: f64, for_seconds: u64 },
    /// No report within the component's `ttl_seconds`, or `default_ttl_seconds` when its
    /// reports carry none. The collector went quiet; that does not mean the part failed.
    Stale { default_ttl_seconds: u64 },
    /// `changes` or more status changes within `within_seconds`: one alert instead of many.
    Flapping { changes: u32, within_seconds: u64 },
}

impl Condition {
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Status { .. } => "status",
            Condition::Threshold { .. } => "threshold",
            Condition::Stale { .. } => "stale",
            Condition::Flapping { .. } => "flapping",
        }
    }

    /// One line for the rules page: what the rule watches.
    pub fn describe(&self) -> String {
        let dur = |s: u64| humantime::format_duration(std::time::Duration::from_secs(s)).to_string();
        match self {
            Condition::Status { statuses, for_seconds } => {
                let list: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
                format!("status is {} for {}", list.join(" or "), dur(*for_seconds))
            }
            Condition::Threshold { metric, direction, trigger, clear, for_seconds } => {
                let (op, back) = match direction {
                    Direction::Above => (">", "≤"),
                    Direction::Below => ("<", "≥"),
                };
                format!("{metric} {op} {trigger} for {}; clears at {back} {clear}", dur(*for_seconds))
            }
            Condition::Stale { default_ttl_seconds } => {
                format!("no report within ttl_seconds (default {})", dur(*default_ttl_seconds))
            }
            Condition::Flapping { changes, within_seconds } => {
                format!("{changes} or more status changes within {}", dur(*within_seconds))
            }
        }
    }
}

/// A `system:component` glob such as `derecho:fs/*` (`*` also crosses `/`), or a glob of a
/// label's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Matcher {
    raw: String,
    #[serde(skip)]
    pattern: glob::Pattern,
}

impl Matcher {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let pattern = glob::Pattern::new(raw).map_err(|e| format!("{raw:?} is not a glob: {e}"))?;
        Ok(Self { raw: raw.to_owned(), pattern })
    }

    /// Whether `key` (`system:component`) matches.
    pub fn matches(&self, key: &str) -> bool {
        self.pattern.matches(key)
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl TryFrom<String> for Matcher {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<Matcher> for String {
    fn from(m: Matcher) -> String {
        m.raw
    }
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub matches: Matcher,
    pub severity: Severity,
    /// A Handlebars template over `system`, `component`, `status`, `rule`, `metric`, `value`.
    pub summary: String,
    pub condition: Condition,
}

/// A component whose alerts give way to its parent's failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    pub matches: Matcher,
    /// `system:component` of the parent.
    pub parent: String,
}

/// Where the webhook notifier sends transitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub name: String,
    /// A webhook URL written on the route itself (the form from before receivers); empty when
    /// the route names receivers.
    pub url: String,
    pub severities: Vec<Severity>,
    pub matches: Matcher,
    /// The `[[receiver]]`s it notifies, by name (their endpoints and secrets are not recorded).
    #[serde(default)]
    pub receivers: Vec<String>,
    /// What its groups are made by: any of `system`, `rule`, `severity` (alert/notify.rs).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// How long a group's first message waits for more (0 for a route's own `url`).
    #[serde(default)]
    pub group_wait_secs: u64,
    /// How long later changes of a group wait after its last message.
    #[serde(default)]
    pub group_interval_secs: u64,
    /// Resend a group with alerts still firing and not acknowledged this long after its last
    /// message; none when unset.
    #[serde(default)]
    pub repeat_interval_secs: Option<u64>,
    /// A critical alert not acknowledged this long after it was raised goes to `escalate_to`.
    #[serde(default)]
    pub escalate_after_secs: Option<u64>,
    #[serde(default)]
    pub escalate_to: Option<String>,
    /// Only alerts of these rules (all when empty).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Whether the routes after it are still tried when it matches. (Rule sets recorded before
    /// there was a choice notified every matching route, and keep doing so.)
    #[serde(default = "every_route", rename = "continue")]
    pub continue_: bool,
    /// Only alerts whose component's labels match: each named label present, its value
    /// matching the glob.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Matcher>,
}

fn every_route() -> bool {
    true
}

impl Route {
    pub fn wants(&self, severity: Severity, key: &str) -> bool {
        self.severities.contains(&severity) && self.matches.matches(key)
    }

    /// Whether the route takes this alert: its severity, `system:component`, rule and labels.
    pub fn takes(&self, m: &super::message::AlertMessage) -> bool {
        Severity::parse(&m.severity).is_ok_and(|s| self.wants(s, &format!("{}:{}", m.system, m.component)))
            && (self.rules.is_empty() || self.rules.contains(&m.rule))
            && self.labels.iter().all(|(k, glob)| m.labels.get(k).is_some_and(|v| glob.matches(v)))
    }
}

/// Every rule, dependency and route, checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub dependencies: Vec<Dependency>,
    pub routes: Vec<Route>,
}

/// A mistake in `alerts.toml`, naming where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{at}: {reason}")]
pub struct RuleError {
    /// Such as `rule[2] "filesystem-full" field "clear"`.
    pub at: String,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    dependency: Vec<DependencySpec>,
    #[serde(default)]
    route: Vec<RouteSpec>,
    /// Checked by `receivers::parse`; only their names are kept in the rule set.
    #[serde(default, rename = "receiver")]
    _receivers: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    kind: String,
    #[serde(rename = "match")]
    matches: Option<String>,
    severity: Option<String>,
    summary: Option<String>,
    #[serde(rename = "for")]
    for_: Option<String>,
    status: Option<StringOrList>,
    metric: Option<String>,
    above: Option<f64>,
    below: Option<f64>,
    clear: Option<f64>,
    ttl: Option<String>,
    changes: Option<u32>,
    within: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DependencySpec {
    #[serde(rename = "match")]
    matches: String,
    parent: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    name: Option<String>,
    url: Option<String>,
    receivers: Option<Vec<String>>,
    group_by: Option<Vec<String>>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    repeat_interval: Option<String>,
    escalate_after: Option<String>,
    escalate_to: Option<String>,
    rule: Option<StringOrList>,
    #[serde(rename = "continue", default)]
    continue_: bool,
    severity: Option<Vec<String>>,
    #[serde(rename = "match")]
    matches: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

fn seconds(raw: &str) -> Result<u64, String> {
    humantime::parse_duration(raw)
        .map(|d| d.as_secs())
        .map_err(|e| format!("{raw:?} is not a duration such as \"90s\", \"10m\" or \"1h\": {e}"))
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl RuleSet {
    /// Parses and checks the text of `alerts.toml`. `default_ttl_seconds` is what a stale rule
    /// without `ttl` uses.
    pub fn parse_toml(text: &str, default_ttl_seconds: u64) -> Result<Self, RuleError> {
        let spec: FileSpec =
            toml::from_str(text).map_err(|e| RuleError { at: "alerts.toml".into(), reason: e.to_string() })?;
        let mut set = RuleSet::default();
        for (i, r) in spec.rule.into_iter().enumerate() {
            let rule = Self::rule(i, r, default_ttl_seconds)?;
            if set.rules.iter().any(|other| other.name == rule.name) {
                return Err(RuleError {
                    at: format!("rule[{i}] {:?} field \"name\"", rule.name),
                    reason: "another rule already has this name".into(),
                });
            }
            set.rules.push(rule);
        }
        for (i, d) in spec.dependency.into_iter().enumerate() {
            let at = |field: &str| format!("dependency[{i}] field {field:?}");
            let matches = Matcher::parse(&d.matches).map_err(|reason| RuleError { at: at("match"), reason })?;
            if d.parent.split_once(':').is_none_or(|(s, c)| s.is_empty() || c.is_empty()) {
                return Err(RuleError { at: at("parent"), reason: format!("{:?} is not system:component", d.parent) });
            }
            set.dependencies.push(Dependency { matches, parent: d.parent });
        }
        let receivers = super::receivers::parse(text)?;
        let receivers_known: Vec<String> = receivers.iter().map(|r| r.name.clone()).collect();
        for (i, mut r) in spec.route.into_iter().enumerate() {
            // A route without a name is named by its place: route-1, route-2, …
            let name = r.name.take().unwrap_or_else(|| format!("route-{}", i + 1));
            let at = |field: &str| format!("route[{i}] {name:?} field {field:?}");
            if !valid_name(&name) {
                return Err(RuleError { at: at("name"), reason: "use 1 to 64 of a-z, 0-9, - and _".into() });
            }
            if set.routes.iter().any(|other| other.name == name) {
                return Err(RuleError { at: at("name"), reason: "another route already has this name".into() });
            }
            let (url, receivers) = match (&r.url, &r.receivers) {
                (Some(url), None) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(RuleError {
                            at: at("url"),
                            reason: format!("{url:?} is not an http:// or https:// URL"),
                        });
                    }
                    (url.clone(), vec![])
                }
                (None, Some(names)) if !names.is_empty() => {
                    for n in names {
                        if !receivers.iter().any(|rc| &rc.name == n) {
                            return Err(RuleError {
                                at: at("receivers"),
                                reason: format!("{n:?} is not the name of a [[receiver]]"),
                            });
                        }
                    }
                    (String::new(), names.clone())
                }
                _ => {
                    return Err(RuleError {
                        at: at("receivers"),
                        reason: "name the receivers to notify (receivers = [\"ops-chat\"]), or give a webhook url"
                            .into(),
                    })
                }
            };
            let severities = match &r.severity {
                None => Severity::ALL.to_vec(),
                Some(list) => list
                    .iter()
                    .map(|s| Severity::parse(s))
                    .collect::<Result<_, _>>()
                    .map_err(|reason| RuleError { at: at("severity"), reason })?,
            };
            let matches = Matcher::parse(r.matches.as_deref().unwrap_or("*"))
                .map_err(|reason| RuleError { at: at("match"), reason })?;
            let duration = |field: &str, raw: &Option<String>| {
                raw.as_deref().map(seconds).transpose().map_err(|reason| RuleError { at: at(field), reason })
            };
            let own_url = receivers.is_empty();
            let named_rules: Vec<&String> = match &r.rule {
                None => vec![],
                Some(StringOrList::One(one)) => vec![one],
                Some(StringOrList::Many(many)) => many.iter().collect(),
            };
            for name in named_rules {
                if !set.rules.iter().any(|rule| &rule.name == name) {
                    return Err(RuleError {
                        at: at("rule"),
                        reason: format!("{name:?} is not the name of a [[rule]]"),
                    });
                }
            }
            let group_by = match &r.group_by {
                Some(list) => {
                    for g in list {
                        if !["system", "rule", "severity"].contains(&g.as_str()) {
                            return Err(RuleError {
                                at: at("group_by"),
                                reason: format!("{g:?} is not one of system, rule, severity"),
                            });
                        }
                    }
                    list.clone()
                }
                None if own_url => vec![],
                None => vec!["system".into()],
            };
            let group_wait_secs = duration("group_wait", &r.group_wait)?.unwrap_or(if own_url { 0 } else { 30 });
            let group_interval_secs =
                duration("group_interval", &r.group_interval)?.unwrap_or(if own_url { 0 } else { 300 });
            let repeat_interval_secs = duration("repeat_interval", &r.repeat_interval)?;
            if repeat_interval_secs == Some(0) {
                return Err(RuleError { at: at("repeat_interval"), reason: "must be longer than 0s".into() });
            }
            let escalate_after_secs = duration("escalate_after", &r.escalate_after)?;
            match (&escalate_after_secs, &r.escalate_to) {
                (Some(_), Some(to)) if !receivers_known.iter().any(|n| n == to) => {
                    return Err(RuleError {
                        at: at("escalate_to"),
                        reason: format!("{to:?} is not the name of a [[receiver]]"),
                    });
                }
                (Some(_), None) => {
                    return Err(RuleError {
                        at: at("escalate_to"),
                        reason: "escalate_after needs escalate_to, the receiver to escalate to".into(),
                    });
                }
                (None, Some(_)) => {
                    return Err(RuleError {
                        at: at("escalate_after"),
                        reason: "escalate_to needs escalate_after, how long to wait".into(),
                    });
                }
                _ => {}
            }
            let labels = r
                .labels
                .iter()
                .flatten()
                .map(|(k, v)| Ok((k.clone(), Matcher::parse(v)?)))
                .collect::<Result<BTreeMap<_, _>, String>>()
                .map_err(|reason| RuleError { at: at("labels"), reason })?;
            set.routes.push(Route {
                name,
                url,
                severities,
                matches,
                receivers,
                group_by,
                group_wait_secs,
                group_interval_secs,
                repeat_interval_secs,
                escalate_after_secs,
                escalate_to: r.escalate_to.clone(),
                rules: match &r.rule {
                    None => vec![],
                    Some(StringOrList::One(one)) => vec![one.clone()],
                    Some(StringOrList::Many(many)) => many.clone(),
                },
                continue_: r.continue_,
                labels,
            });
        }
        Ok(set)
    }

    fn rule(i: usize, r: RuleSpec, default_ttl_seconds: u64) -> Result<Rule, RuleError> {
        let name = r.name.clone();
        let at = |field: &str| format!("rule[{i}] {name:?} field {field:?}");
        let err = |field: &str, reason: String| RuleError { at: at(field), reason };
        if !valid_name(&r.name) {
            return Err(err("name", "use 1 to 64 of a-z, 0-9, - and _".into()));
        }
        let matches = Matcher::parse(r.matches.as_deref().unwrap_or("*")).map_err(|e| err("match", e))?;
        let severity = Severity::parse(r.severity.as_deref().unwrap_or("warning")).map_err(|e| err("severity", e))?;
        let for_seconds = r.for_.as_deref().map(seconds).transpose().map_err(|e| err("for", e))?.unwrap_or(0);
        // Fields that belong to other kinds are mistakes, not silently ignored.
        let allowed: &[&str] = match r.kind.as_str() {
            "status" => &["status", "for"],
            "threshold" => &["metric", "above", "below", "clear", "for"],
            "stale" => &["ttl"],
            "flapping" => &["changes", "within"],
            other => {
                return Err(err(
                    "kind",
                    format!("{other:?} is not a rule kind; expected status, threshold, stale or flapping"),
                ))
            }
        };
        let given = [
            ("status", r.status.is_some()),
            ("for", r.for_.is_some()),
            ("metric", r.metric.is_some()),
            ("above", r.above.is_some()),
            ("below", r.below.is_some()),
            ("clear", r.clear.is_some()),
            ("ttl", r.ttl.is_some()),
            ("changes", r.changes.is_some()),
            ("within", r.within.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            return Err(err(field, format!("does not apply to a {} rule", r.kind)));
        }
        let condition = match r.kind.as_str() {
            "status" => {
                let raw = match r.status {
                    None => {
                        return Err(err("status", "is required: the statuses that fire, such as [\"failed\"]".into()))
                    }
                    Some(StringOrList::One(s)) => vec![s],
                    Some(StringOrList::Many(v)) => v,
                };
                if raw.is_empty() {
                    return Err(err("status", "lists no status".into()));
                }
                let statuses =
                    raw.iter().map(|s| Status::parse(s)).collect::<Result<_, _>>().map_err(|e| err("status", e))?;
                Condition::Status { statuses, for_seconds }
            }
            "threshold" => {
                let metric = r.metric.ok_or_else(|| err("metric", "is required: the metric to watch".into()))?;
                let (direction, trigger) = match (r.above, r.below) {
                    (Some(v), None) => (Direction::Above, v),
                    (None, Some(v)) => (Direction::Below, v),
                    _ => return Err(err("above", "give exactly one of `above` or `below`".into())),
                };
                let clear = r.clear.unwrap_or(trigger);
                let wrong_side = match direction {
                    Direction::Above => clear > trigger,
                    Direction::Below => clear < trigger,
                };
                if wrong_side || !trigger.is_finite() || !clear.is_finite() {
                    let side =
                        if direction == Direction::Above { "at or below `above`" } else { "at or above `below`" };
                    return Err(err("clear", format!("{clear} must be a number {side} ({trigger})")));
                }
                Condition::Threshold { metric, direction, trigger, clear, for_seconds }
            }
            "stale" => {
                let ttl = r.ttl.as_deref().map(seconds).transpose().map_err(|e| err("ttl", e))?;
                Condition::Stale { default_ttl_seconds: ttl.unwrap_or(default_ttl_seconds) }
            }
            _ => {
                let changes = r
                    .changes
                    .ok_or_else(|| err("changes", "is required: how many changes count as flapping".into()))?;
                if changes < 2 {
                    return Err(err("changes", format!("{changes} is too few; flapping needs at least 2")));
                }
                let within = r.within.as_deref().ok_or_else(|| err("within", "is required, such as \"30m\"".into()))?;
                let within_seconds = seconds(within).map_err(|e| err("within", e))?;
                if within_seconds == 0 {
                    return Err(err("within", "must be longer than zero".into()));
                }
                Condition::Flapping { changes, within_seconds }
            }
        };
        let summary = r.summary.unwrap_or_else(|| default_summary(&condition).to_owned());
        crate::alert::summary::check(&summary).map_err(|e| err("summary", e))?;
        Ok(Rule { name: r.name, matches, severity, summary, condition })
    }

    /// The parent whose failure a component's alerts give way to, if one is configured.
    pub fn parent_of(&self, key: &str) -> Option<&str> {
        self.dependencies.iter().find(|d| d.matches.matches(key) && d.parent != key).map(|d| d.parent.as_str())
    }
}

fn default_summary(condition: &Condition) -> &'static str {
    match condition {
        Condition::Status { .. } => "{{system}} {{component}} is {{status}}",
        Condition::Threshold { .. } => "{{system}} {{component}} {{metric}} is {{value}}",
        Condition::Stale { .. } => "{{system}} {{component}} has not reported since {{last_report}}",
        Condition::Flapping { .. } => "{{system}} {{component}} is flapping (now {{status}})",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuleSet, RuleError> {
        RuleSet::parse_toml(text, 600)
    }

    #[test]
    fn every_kind_parses_with_defaults() {
        let set = parse(
            r#"
            [[rule]]
            name = "fs-failed"
            match = "*:fs/*"
            kind = "status"
            status = "failed"
            for = "2m"
            severity = "critical"

            [[rule]]
            name = "fs-full"
            kind = "threshold"
            metric = "used_pct"
            above = 90
            clear = 85

            [[rule]]
            name = "silent"
            kind = "stale"

            [[rule]]
            name = "flap"
            kind = "flapping"
            changes = 4
            within = "30m"

            [[dependency]]
            match = "derecho:compute/*"
            parent = "derecho:fs/glade"

            [[route]]
            name = "ops"
            url = "http://127.0.0.1:9/hook"
            severity = ["critical"]
            "#,
        )
        .unwrap();
        assert_eq!(set.rules.len(), 4);
        assert_eq!(set.rules[0].condition, Condition::Status { statuses: vec![Status::Failed], for_seconds: 120 });
        assert_eq!(set.rules[1].severity, Severity::Warning);
        assert_eq!(
            set.rules[1].condition,
            Condition::Threshold {
                metric: "used_pct".into(),
                direction: Direction::Above,
                trigger: 90.0,
                clear: 85.0,
                for_seconds: 0
            }
        );
        assert_eq!(set.rules[2].condition, Condition::Stale { default_ttl_seconds: 600 });
        assert!(set.rules[0].matches.matches("derecho:fs/glade/ost/1"));
        assert!(!set.rules[0].matches.matches("derecho:login/derecho1"));
        assert_eq!(set.parent_of("derecho:compute/main"), Some("derecho:fs/glade"));
        assert_eq!(set.parent_of("casper:compute/main"), None);
        assert!(set.routes[0].wants(Severity::Critical, "casper:x"));
        assert!(!set.routes[0].wants(Severity::Warning, "casper:x"));
    }

    #[test]
    fn the_shipped_alerts_toml_is_valid() {
        let set = parse(include_str!("../../../alerts.toml")).unwrap();
        assert_eq!(set.rules.len(), 6);
        assert_eq!(set.parent_of("derecho:nodes/cpu"), Some("derecho:fs/glade"));
    }

    #[test]
    fn the_minimal_receivers_and_a_route_without_a_name_parse() {
        let set = parse(
            r#"
[[receiver]]
name = "ops-chat"
kind = "slack"
url = "https://hooks.slack.com/services/T000/B000/XXXX"

[[receiver]]
name = "oncall"
kind = "pagerduty"
routing_key_env = "PD_ROUTING_KEY"

[[receiver]]
name = "ops-mail"
kind = "email"
smtp_host = "mail.example.org"
smtp_port = 587
tls = "starttls"
from = "sitrep@example.org"
to = ["hpc-ops@example.org"]

[[route]]
receivers = ["ops-chat"]
severity = ["warning", "critical"]
group_by = ["system"]
group_wait = "30s"

[[route]]
receivers = ["oncall", "ops-mail"]
"#,
        )
        .unwrap();
        let names: Vec<&str> = set.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["route-1", "route-2"]);
        assert_eq!(set.routes[0].group_wait_secs, 30);
    }

    #[test]
    fn an_empty_file_is_no_rules() {
        assert_eq!(parse("").unwrap(), RuleSet::default());
    }

    #[test]
    fn mistakes_name_the_rule_and_the_field() {
        let cases = [
            ("[[rule]]\nname='a'\nkind='status'\nstatus='broken'", "rule[0] \"a\" field \"status\"", "not a status"),
            ("[[rule]]\nname='a'\nkind='status'", "field \"status\"", "is required"),
            ("[[rule]]\nname='a'\nkind='threshold'\nmetric='m'\nabove=90\nclear=95", "field \"clear\"", "at or below"),
            ("[[rule]]\nname='a'\nkind='threshold'\nmetric='m'", "field \"above\"", "exactly one"),
            ("[[rule]]\nname='a'\nkind='status'\nstatus='failed'\nfor='soon'", "field \"for\"", "not a duration"),
            ("[[rule]]\nname='a'\nkind='status'\nstatus='failed'\nmetric='m'", "field \"metric\"", "does not apply"),
            ("[[rule]]\nname='a'\nkind='sometimes'", "field \"kind\"", "not a rule kind"),
            ("[[rule]]\nname='A b'\nkind='stale'", "field \"name\"", "a-z"),
            (
                "[[rule]]\nname='a'\nkind='stale'\n[[rule]]\nname='a'\nkind='stale'",
                "rule[1] \"a\" field \"name\"",
                "already",
            ),
            ("[[rule]]\nname='a'\nkind='flapping'\nchanges=1\nwithin='1m'", "field \"changes\"", "too few"),
            ("[[rule]]\nname='a'\nkind='stale'\nseverity='loud'", "field \"severity\"", "not a severity"),
            ("[[rule]]\nname='a'\nkind='stale'\nsummary='{{#if}'", "field \"summary\"", "template"),
            ("[[rule]]\nname='a'\nkind='stale'\nmatch='[x'", "field \"match\"", "not a glob"),
            ("[[route]]\nname='r'\nurl='ftp://x'", "route[0] \"r\" field \"url\"", "http"),
            (
                "[[route]]\nname='r'\nurl='http://x'\n[[route]]\nname='r'\nurl='http://y'",
                "route[1] \"r\" field \"name\"",
                "already",
            ),
            (
                "[[route]]\nname='r'\nurl='http://x'\nlabels={kind='[x'}",
                "route[0] \"r\" field \"labels\"",
                "not a glob",
            ),
            ("[[dependency]]\nmatch='*'\nparent='nocolon'", "dependency[0] field \"parent\"", "system:component"),
            ("[[rules]]\nname='a'", "alerts.toml", "unknown field `rules`"),
        ];
        for (text, at, reason) in cases {
            let e = parse(text).expect_err(text);
            assert!(e.at.contains(at), "{text}: {e} should be at {at}");
            assert!(e.reason.contains(reason), "{text}: {e} should say {reason}");
        }
    }
}
