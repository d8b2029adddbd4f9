//! `sitrep rules test`: rule tests in the spirit of `promtool test rules`. A test gives input
//! reports (and maintenance windows) at offsets from a start, and which alerts should be firing
//! at given offsets; the live evaluator runs over them in memory ([`super::backtest`]), and a
//! failure says which alerts were missing and which were not expected.
//!
//! ```toml
//! rules = "alerts.toml"          # beside this file, by default
//!
//! [[test]]
//! name = "a full filesystem pages after five minutes"
//! [[test.report]]
//! at = "0m"
//! component = "derecho:fs/glade"
//! status = "ok"
//! metrics = { used_pct = 96.0 }
//! [[test.expect]]
//! at = "6m"
//! firing = ["filesystem-full derecho:fs/glade"]
//! ```

use super::backtest::Backtest;
use super::evaluator::Input;
use super::rules::{RuleError, RuleSet};
use crate::component::Reported;
use crate::maintenance::{MaintenanceEvent, Window, WindowKind};
use crate::notice::NoticeId;
use crate::wire::Report;
use crate::{ComponentName, Status, SystemName};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// The instant a test's offsets count from.
pub const START: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The rules file, relative to the test file.
    pub rules: Option<String>,
    #[serde(default)]
    pub test: Vec<TestSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    pub name: String,
    #[serde(default)]
    pub report: Vec<ReportSpec>,
    #[serde(default)]
    pub maintenance: Vec<WindowSpec>,
    #[serde(default)]
    pub expect: Vec<ExpectSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    pub at: String,
    /// `system:component`.
    pub component: String,
    pub status: String,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    pub ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// `system:component`s it covers.
    pub components: Vec<String>,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub at: String,
    /// `rule system:component` of each alert firing then (acknowledged and silenced count too).
    #[serde(default)]
    pub firing: Vec<String>,
}

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Miss {
    pub at: String,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
}

/// A test's outcome: no misses is a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub name: String,
    pub misses: Vec<Miss>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.misses.is_empty()
    }

    /// The readable account of a failure (or `ok`).
    pub fn describe(&self) -> String {
        if self.passed() {
            return format!("ok    {}", self.name);
        }
        let mut out = format!("FAIL  {}", self.name);
        for m in &self.misses {
            out.push_str(&format!("\n      at {}:", m.at));
            for a in &m.missing {
                out.push_str(&format!("\n        - expected, not firing: {a}"));
            }
            for a in &m.unexpected {
                out.push_str(&format!("\n        + firing, not expected: {a}"));
            }
        }
        out
    }
}

fn offset(raw: &str, at: &str) -> Result<Duration, RuleError> {
    let d = humantime::parse_duration(raw.trim()).map_err(|e| RuleError {
        at: at.to_owned(),
        reason: format!("{raw:?} is not an offset such as \"90s\", \"10m\" or \"1h\": {e}"),
    })?;
    Ok(Duration::try_from(d).unwrap_or(Duration::MAX))
}

fn split(raw: &str, at: &str) -> Result<(SystemName, ComponentName), RuleError> {
    let err = |reason: String| RuleError { at: at.to_owned(), reason };
    let (s, c) = raw.split_once(':').ok_or_else(|| err(format!("{raw:?} is not system:component")))?;
    Ok((SystemName::parse(s).map_err(err)?, ComponentName::parse(c).map_err(err)?))
}

/// One timed input of a test.
enum Step {
    Report(Reported),
    Expect(usize),
}

/// Parses a test file's text (its own mistakes name the test and the field).
pub fn parse(text: &str) -> Result<TestFile, RuleError> {
    toml::from_str(text).map_err(|e| RuleError { at: "tests".into(), reason: e.to_string().trim().to_owned() })
}

/// Runs one test against `rules`.
pub fn run(rules: &RuleSet, i: usize, t: &TestSpec) -> Result<Outcome, RuleError> {
    let here = |what: &str, j: usize, field: &str| format!("test[{i}] {:?} {what}[{j}] field {field:?}", t.name);
    let mut steps: Vec<(Duration, usize, Step)> = Vec::new();
    for (j, r) in t.report.iter().enumerate() {
        let at = offset(&r.at, &here("report", j, "at"))?;
        let (system, component) = split(&r.component, &here("report", j, "component"))?;
        let status =
            Status::parse(&r.status).map_err(|reason| RuleError { at: here("report", j, "status"), reason })?;
        let ttl_seconds = match &r.ttl {
            None => None,
            Some(raw) => {
                Some(u32::try_from(offset(raw, &here("report", j, "ttl"))?.whole_seconds()).unwrap_or(u32::MAX))
            }
        };
        let report = Report {
            system,
            component,
            status,
            observed_at: START + at,
            message: None,
            metrics: r.metrics.clone(),
            labels: Default::default(),
            ttl_seconds,
        };
        steps.push((at, 0, Step::Report(Reported::new(report, START + at, false))));
    }
    if t.expect.is_empty() {
        return Err(RuleError {
            at: format!("test[{i}] {:?}", t.name),
            reason: "expects nothing: give [[test.expect]] entries with an offset and what is firing then".into(),
        });
    }
    for (j, e) in t.expect.iter().enumerate() {
        let at = offset(&e.at, &here("expect", j, "at"))?;
        for f in &e.firing {
            let (rule, key) = f.split_once(' ').ok_or_else(|| RuleError {
                at: here("expect", j, "firing"),
                reason: format!("{f:?} is not \"rule system:component\""),
            })?;
            if !rules.rules.iter().any(|r| r.name == rule) {
                return Err(RuleError {
                    at: here("expect", j, "firing"),
                    reason: format!("{rule:?} is not the name of a rule in the rules under test"),
                });
            }
            split(key.trim(), &here("expect", j, "firing"))?;
        }
        // Reports at the same offset come first: an expectation sees them.
        steps.push((at, 1, Step::Expect(j)));
    }
    steps.sort_by_key(|(at, kind, _)| (*at, *kind));
    let mut b = Backtest::new(rules.clone());
    for (j, w) in t.maintenance.iter().enumerate() {
        let (from, to) =
            (offset(&w.from, &here("maintenance", j, "from"))?, offset(&w.to, &here("maintenance", j, "to"))?);
        if to <= from {
            return Err(RuleError {
                at: here("maintenance", j, "to"),
                reason: format!("{:?} is not after from", w.to),
            });
        }
        let mut by_system: BTreeMap<String, Vec<ComponentName>> = BTreeMap::new();
        for c in &w.components {
            let (s, c) = split(c, &here("maintenance", j, "components"))?;
            by_system.entry(s.to_string()).or_default().push(c);
        }
        for (system, components) in by_system {
            let event = MaintenanceEvent::Scheduled {
                system: SystemName::parse(&system).expect("checked above"),
                id: NoticeId::parse(&format!("test-{j}")).expect("a valid id"),
                window: Window {
                    kind: WindowKind::Maintenance,
                    title: "test window".into(),
                    description: None,
                    components,
                    nodes: None,
                    partition: None,
                    starts_at: START + from,
                    ends_at: START + to,
                },
                at: START,
            };
            b.feed(0, Input::Maintenance(&event));
        }
    }
    let mut misses = Vec::new();
    for (position, (at, _, step)) in steps.iter().enumerate() {
        let position = position as i64 + 1;
        match step {
            Step::Report(r) => b.feed(position, Input::Reported(r)),
            Step::Expect(j) => {
                let now = START + *at;
                b.pass_time(now);
                let firing: BTreeSet<String> = b
                    .alerts()
                    .iter()
                    .filter(|a| a.raised_at <= now && a.resolved_at.is_none_or(|r| r > now))
                    .map(|a| format!("{} {}:{}", a.rule, a.system, a.component))
                    .collect();
                let expected: BTreeSet<String> = t.expect[*j]
                    .firing
                    .iter()
                    .map(|f| {
                        let (rule, key) = f.split_once(' ').unwrap_or((f, ""));
                        format!("{rule} {}", key.trim())
                    })
                    .collect();
                if firing != expected {
                    misses.push(Miss {
                        at: t.expect[*j].at.clone(),
                        missing: expected.difference(&firing).cloned().collect(),
                        unexpected: firing.difference(&expected).cloned().collect(),
                    });
                }
            }
        }
    }
    Ok(Outcome { name: t.name.clone(), misses })
}

/// Runs every test of a file against `rules`.
pub fn run_all(rules: &RuleSet, file: &TestFile) -> Result<Vec<Outcome>, RuleError> {
    if file.test.is_empty() {
        return Err(RuleError { at: "tests".into(), reason: "there is no [[test]] in the file".into() });
    }
    file.test.iter().enumerate().map(|(i, t)| run(rules, i, t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
[[rule]]
name = "filesystem-full"
match = "*:fs/*"
kind = "threshold"
metric = "used_pct"
above = 95
clear = 90
for = "5m"
severity = "critical"
"#;

    fn outcomes(tests: &str) -> Vec<Outcome> {
        let rules = RuleSet::parse_toml(RULES, 600).unwrap();
        run_all(&rules, &parse(tests).unwrap()).unwrap()
    }

    #[test]
    fn a_correct_expectation_passes_and_a_wrong_one_fails_with_a_readable_diff() {
        let tests = r#"
[[test]]
name = "full after five minutes"
[[test.report]]
at = "0m"
component = "derecho:fs/glade"
status = "ok"
metrics = { used_pct = 97.0 }
[[test.report]]
at = "5m"
component = "derecho:fs/glade"
status = "ok"
metrics = { used_pct = 97.0 }
[[test.expect]]
at = "4m"
firing = []
[[test.expect]]
at = "5m"
firing = ["filesystem-full derecho:fs/glade"]

[[test]]
name = "wrongly expects it at once"
[[test.report]]
at = "0m"
component = "derecho:fs/glade"
status = "ok"
metrics = { used_pct = 97.0 }
[[test.expect]]
at = "1m"
firing = ["filesystem-full derecho:fs/glade"]
[[test.expect]]
at = "6m"
firing = ["filesystem-full derecho:fs/scratch"]
"#;
        let o = outcomes(tests);
        assert!(o[0].passed(), "{}", o[0].describe());
        assert!(!o[1].passed());
        assert_eq!(
            o[1].describe(),
            "FAIL  wrongly expects it at once\n      at 1m:\n        - expected, not firing: filesystem-full derecho:fs/glade\n      at 6m:\n        - expected, not firing: filesystem-full derecho:fs/scratch\n        + firing, not expected: filesystem-full derecho:fs/glade"
        );
    }

    #[test]
    fn a_maintenance_window_keeps_the_alert_but_a_test_still_sees_it_firing() {
        let tests = r#"
[[test]]
name = "in maintenance"
[[test.maintenance]]
components = ["derecho:fs/glade"]
from = "0m"
to = "1h"
[[test.report]]
at = "0m"
component = "derecho:fs/glade"
status = "ok"
metrics = { used_pct = 97.0 }
[[test.expect]]
at = "10m"
firing = ["filesystem-full derecho:fs/glade"]
"#;
        assert!(outcomes(tests)[0].passed());
    }

    #[test]
    fn mistakes_name_the_test_and_the_field() {
        let rules = RuleSet::parse_toml(RULES, 600).unwrap();
        for (text, needle) in [
            (
                "[[test]]\nname='t'\n[[test.report]]\nat='soon'\ncomponent='derecho:x'\nstatus='ok'",
                "report[0] field \"at\"",
            ),
            (
                "[[test]]\nname='t'\n[[test.report]]\nat='1m'\ncomponent='x'\nstatus='ok'",
                "report[0] field \"component\"",
            ),
            ("[[test]]\nname='t'\n[[test.report]]\nat='1m'\ncomponent='derecho:x'\nstatus='bad'", "field \"status\""),
            ("[[test]]\nname='t'\n[[test.expect]]\nat='1m'\nfiring=['onlyrule']", "expect[0] field \"firing\""),
            ("[[test]]\nname='t'\n[[test.expect]]\nat='1m'\nfiring=['nosuch derecho:x']", "not the name of a rule"),
            ("[[test]]\nname='t'", "expects nothing"),
            ("[[test]]\nname='t'\n[[test.maintenance]]\ncomponents=['derecho:x']\nfrom='1h'\nto='0m'\n[[test.expect]]\nat='1m'", "not after from"),
            ("rules = 'alerts.toml'", "no [[test]]"),
        ] {
            let err = run_all(&rules, &parse(text).unwrap()).unwrap_err();
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
        assert!(parse("[[test]]\nname='t'\nrepot=[]").unwrap_err().reason.contains("unknown field"));
    }

    #[test]
    fn the_shipped_rules_pass_their_shipped_tests() {
        let rules = RuleSet::parse_toml(include_str!("../../../alerts.toml"), 600).unwrap();
        let file = parse(include_str!("../../../alerts.test.toml")).unwrap();
        assert!(!file.test.is_empty());
        for o in run_all(&rules, &file).unwrap() {
            assert!(o.passed(), "{}", o.describe());
        }
    }
}
