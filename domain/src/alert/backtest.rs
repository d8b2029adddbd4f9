//! What candidate rules would have done: the live [`Evaluator`], fed a stretch of the log in
//! memory, its decisions applied to would-be alerts instead of the alert aggregate. Nothing is
//! written or published.
//!
//! - The candidate's rules, dependencies and routes are the rule set; `RulesLoaded` events in
//!   the log are passed over.
//! - Time passes as the live alert clock makes it pass: whenever the evaluator is due, a tick at
//!   that instant, before the next event (the clock ticks the log recorded were the rules in
//!   force's, so they are passed over too).
//! - Maintenance windows and declared outages are taken from the log as they were.
//! - Operators' acknowledgements and silences belong to real alerts, so they do not apply.
//! - The evaluator is told of a would-be alert's resolution and end of maintenance, as the live
//!   one is through the log.
//!
//! [`compare`] sets the would-be alerts beside those the rules in force raised.

use super::evaluator::{Evaluator, Input};
use super::events::{AlertEvent, EvaluatorEvent};
use super::rules::RuleSet;
use super::AlertCommand;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;
use uuid::Uuid;

/// An alert the candidate rules would have raised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WouldBe {
    pub rule: String,
    pub system: String,
    pub component: String,
    pub severity: String,
    /// When its condition began (its `for` counts from here).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
    /// `None` while it would still fire at the end of the range.
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    /// The position of the report that made it fire; `None` when time passing did (its `for`
    /// ran out, or its component went quiet).
    pub raised_by: Option<i64>,
    /// Likewise for its resolution.
    pub resolved_by: Option<i64>,
    /// A failed parent (`system:component`) or `outage system/id` it would give way to: it
    /// would notify no one.
    pub impacted_by: Option<String>,
    pub summary: String,
    /// Raised inside this maintenance window (`system/id`): it would have notified no one then.
    pub maintenance: Option<String>,
    #[serde(skip)]
    pub alert_id: Uuid,
}

/// The candidate evaluator and the alerts it has raised so far.
#[derive(Debug)]
pub struct Backtest {
    evaluator: Evaluator,
    alerts: Vec<WouldBe>,
    by_id: HashMap<Uuid, usize>,
    /// Positions given to the ticks it makes up, below zero so that no event of the log has one.
    ticks: i64,
}

impl Backtest {
    /// A backtest of `rules`, before any event.
    pub fn new(rules: RuleSet) -> Self {
        let mut evaluator = Evaluator::default();
        let loaded = EvaluatorEvent::RulesLoaded { rules, source: "backtest".into() };
        let decided = evaluator.handle(0, Input::Evaluator(&loaded));
        debug_assert!(decided.is_empty(), "no component is known yet");
        Self { evaluator, alerts: vec![], by_id: HashMap::new(), ticks: 0 }
    }

    /// Feeds one event of the log at `position`. Reports and maintenance windows count; the
    /// rest is passed over (see the module's notes).
    pub fn feed(&mut self, position: i64, input: Input<'_>) {
        match input {
            // Time passes up to the report, its instant included: a `for` that runs out just as
            // the report arrives has run out before the report changes anything.
            Input::Reported(r) => self.pass_time(r.received_at),
            Input::Maintenance(_) | Input::Outage(_) => {}
            Input::Evaluator(_) | Input::Alert(..) => return,
        }
        let decided = self.evaluator.handle(position, input);
        self.apply(decided, position);
    }

    /// Ticks as the live clock would, at each instant the evaluator is due, up to `until`
    /// (inclusive).
    pub fn pass_time(&mut self, until: OffsetDateTime) {
        while let Some(due) = self.evaluator.due().filter(|d| *d <= until) {
            let tick = EvaluatorEvent::Ticked { at: due };
            self.ticks -= 1;
            let position = self.ticks;
            let decided = self.evaluator.handle(position, Input::Evaluator(&tick));
            self.apply(decided, position);
            if self.evaluator.due().is_some_and(|next| next <= due) {
                break; // nothing more that time alone decides before the next event
            }
        }
    }

    /// The would-be alerts so far.
    pub fn alerts(&self) -> &[WouldBe] {
        &self.alerts
    }

    /// The would-be alerts, after time has passed up to `to`.
    pub fn finish(mut self, to: OffsetDateTime) -> Vec<WouldBe> {
        self.pass_time(to);
        self.alerts
    }

    fn apply(&mut self, decided: Vec<super::Decision>, position: i64) {
        for d in decided {
            match d.command {
                AlertCommand::Raise { info, at, cause } => {
                    self.by_id.insert(d.alert_id, self.alerts.len());
                    self.alerts.push(WouldBe {
                        rule: info.rule,
                        system: info.system,
                        component: info.component,
                        severity: info.severity.as_str().to_owned(),
                        since: info.since,
                        raised_at: at,
                        resolved_at: None,
                        raised_by: (cause > 0).then_some(cause),
                        resolved_by: None,
                        impacted_by: info.impacted_by,
                        summary: info.summary,
                        maintenance: info.maintenance,
                        alert_id: d.alert_id,
                    });
                }
                AlertCommand::Resolve { reason, at, cause } => {
                    if let Some(a) = self.by_id.get(&d.alert_id).map(|i| &mut self.alerts[*i]) {
                        a.resolved_at = Some(at);
                        a.resolved_by = (cause > 0).then_some(cause);
                    }
                    let resolved = AlertEvent::Resolved { reason, at, cause };
                    let more = self.evaluator.handle(position, Input::Alert(d.alert_id, &resolved));
                    self.apply(more, position);
                }
                AlertCommand::EndMaintenance { at, cause } => {
                    let ended = AlertEvent::MaintenanceEnded { at, cause };
                    let more = self.evaluator.handle(position, Input::Alert(d.alert_id, &ended));
                    self.apply(more, position);
                }
                // No silences or acknowledgements in a backtest.
                AlertCommand::ExpireSilence { .. }
                | AlertCommand::Acknowledge { .. }
                | AlertCommand::Silence { .. } => {}
            }
        }
    }
}

/// An alert the rules in force raised, as the alerts read model has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Actual {
    pub rule: String,
    pub system: String,
    pub component: String,
    pub severity: String,
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
}

/// A would-be alert beside the one the rules in force raised for the same rule and component
/// over the same time, and how much earlier (negative) or later it would have fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moved {
    pub rule: String,
    pub system: String,
    pub component: String,
    #[serde(with = "time::serde::rfc3339")]
    pub actual_raised_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub would_raise_at: OffsetDateTime,
    /// Negative when earlier.
    pub seconds: f64,
}

/// How the candidate differs from the rules in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Difference {
    /// Would be raised, and were not.
    pub new: Vec<WouldBe>,
    /// Were raised, and would not be.
    pub gone: Vec<Actual>,
    pub earlier: Vec<Moved>,
    pub later: Vec<Moved>,
    /// Would be raised at the same instant as they were.
    pub same: usize,
}

fn end(resolved: Option<OffsetDateTime>, to: OffsetDateTime) -> OffsetDateTime {
    resolved.unwrap_or(to).min(to)
}

/// Pairs would-be and actual alerts of the same rule and component whose firing overlaps,
/// in time order; what is left over is new or gone.
pub fn compare(would: &[WouldBe], actual: &[Actual], to: OffsetDateTime) -> Difference {
    let mut d = Difference::default();
    let mut taken = vec![false; actual.len()];
    let mut order: Vec<&WouldBe> = would.iter().collect();
    order.sort_by_key(|w| w.raised_at);
    for w in order {
        let w_end = end(w.resolved_at, to).max(w.raised_at + time::Duration::SECOND);
        let found = actual.iter().enumerate().find(|(i, a)| {
            !taken[*i]
                && a.rule == w.rule
                && a.system == w.system
                && a.component == w.component
                && a.raised_at < w_end
                && w.raised_at < end(a.resolved_at, to).max(a.raised_at + time::Duration::SECOND)
        });
        match found {
            None => d.new.push(w.clone()),
            Some((i, a)) => {
                taken[i] = true;
                // Within a second is the same time: the live clock ticks a little after an
                // instant falls due, where the backtest ticks on it.
                let micros = |t: OffsetDateTime| t.unix_timestamp_nanos() / 1_000;
                let by = micros(w.raised_at) - micros(a.raised_at);
                let by = if by.abs() < 1_000_000 { 0 } else { by };
                let moved = Moved {
                    rule: w.rule.clone(),
                    system: w.system.clone(),
                    component: w.component.clone(),
                    actual_raised_at: a.raised_at,
                    would_raise_at: w.raised_at,
                    seconds: by as f64 / 1e6,
                };
                if by == 0 {
                    d.same += 1;
                } else if by < 0 {
                    d.earlier.push(moved);
                } else {
                    d.later.push(moved);
                }
            }
        }
    }
    d.gone = actual.iter().zip(taken).filter(|(_, t)| !t).map(|(a, _)| a.clone()).collect();
    d
}

/// One rule's would-be alerts in sum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleTotals {
    pub rule: String,
    pub alerts: usize,
    /// Time firing within the range, all alerts together.
    pub firing_seconds: i64,
    pub longest_seconds: i64,
    /// The component it would raise most alerts for, and how many.
    pub flappiest: Option<(String, usize)>,
}

/// Totals per rule, by rule name.
pub fn totals(would: &[WouldBe], from: OffsetDateTime, to: OffsetDateTime) -> Vec<RuleTotals> {
    let mut by_rule: BTreeMap<&str, Vec<&WouldBe>> = BTreeMap::new();
    for w in would {
        by_rule.entry(&w.rule).or_default().push(w);
    }
    by_rule
        .into_iter()
        .map(|(rule, alerts)| {
            let lengths: Vec<i64> = alerts
                .iter()
                .map(|w| (end(w.resolved_at, to) - w.raised_at.max(from)).whole_seconds().max(0))
                .collect();
            let mut per_component: BTreeMap<String, usize> = BTreeMap::new();
            for w in &alerts {
                *per_component.entry(format!("{}:{}", w.system, w.component)).or_default() += 1;
            }
            let flappiest = per_component.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
            RuleTotals {
                rule: rule.to_owned(),
                alerts: alerts.len(),
                firing_seconds: lengths.iter().sum(),
                longest_seconds: lengths.iter().copied().max().unwrap_or(0),
                flappiest,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::Reported;
    use crate::wire::Report;
    use crate::{ComponentName, Status, SystemName};
    use time::macros::datetime;
    use time::Duration;

    const T0: OffsetDateTime = datetime!(2026-11-30 00:00 UTC);

    fn at(minutes: i64) -> OffsetDateTime {
        T0 + Duration::minutes(minutes)
    }

    fn report(component: &str, used: f64, minute: i64) -> Reported {
        let r = Report {
            system: SystemName::parse("derecho").unwrap(),
            component: ComponentName::parse(component).unwrap(),
            status: Status::Ok,
            observed_at: at(minute),
            message: None,
            metrics: [("used_pct".to_owned(), used)].into(),
            labels: Default::default(),
            ttl_seconds: Some(3600),
        };
        Reported::new(r, at(minute), false)
    }

    fn rules(above: u32) -> RuleSet {
        let text = format!(
            "[[rule]]\nname='full'\nkind='threshold'\nmetric='used_pct'\nabove={above}\nclear={}\nfor='5m'",
            above - 5
        );
        RuleSet::parse_toml(&text, 600).unwrap()
    }

    /// A filesystem filling to 95 %, emptying, and filling to 88 % again, a report a minute.
    fn run(above: u32) -> Vec<WouldBe> {
        let mut b = Backtest::new(rules(above));
        let levels: Vec<f64> = (0..60)
            .map(|m| {
                if m < 20 {
                    70.0 + m as f64
                } else if m < 30 {
                    60.0
                } else {
                    80.0 + (m - 30) as f64 / 4.0
                }
            })
            .collect();
        for (m, used) in levels.iter().enumerate() {
            let r = report("fs/glade", *used, m as i64);
            b.feed(m as i64 + 1, Input::Reported(&r));
        }
        b.finish(at(60))
    }

    #[test]
    fn given_two_thresholds_then_the_would_be_alerts_are_exact() {
        // above 85: 86 % at minute 16, but at 20 it drops to 60, before the 5 minutes are up;
        // the second filling passes 85 at minute 51 (80 + 21/4 = 85.25) and holds: raised at
        // 56, still firing at the end.
        let high = run(85);
        assert_eq!(high.len(), 1, "{high:?}");
        assert_eq!((high[0].raised_at, high[0].resolved_at), (at(56), None));
        // above 80: from minute 11 (81 %), raised at 16, cleared at 20 (60 % ≤ 75); again
        // from minute 31 (80.25 %), raised at 36.
        let low = run(80);
        let times: Vec<(OffsetDateTime, Option<OffsetDateTime>)> =
            low.iter().map(|w| (w.raised_at, w.resolved_at)).collect();
        assert_eq!(times, [(at(16), Some(at(20))), (at(36), None)]);
        assert_eq!(low[0].raised_by, None, "its `for` ran out: time passing raised it");
        assert_eq!(low[0].since, at(11), "the condition began with the report at minute 11");
        assert_eq!(low[0].resolved_by, Some(21), "and the one at minute 20 cleared it");
        let t = totals(&low, T0, at(60));
        assert_eq!((t[0].alerts, t[0].firing_seconds, t[0].longest_seconds), (2, 4 * 60 + 24 * 60, 24 * 60));
    }

    #[test]
    fn compared_with_the_rules_in_force_it_names_new_gone_earlier_and_later() {
        let low = run(80);
        let actual = vec![
            Actual {
                rule: "full".into(),
                system: "derecho".into(),
                component: "fs/glade".into(),
                severity: "warning".into(),
                raised_at: at(18),
                resolved_at: Some(at(20)),
            },
            Actual {
                rule: "full".into(),
                system: "derecho".into(),
                component: "fs/home".into(),
                severity: "warning".into(),
                raised_at: at(5),
                resolved_at: Some(at(9)),
            },
        ];
        let d = compare(&low, &actual, at(60));
        assert_eq!(d.earlier.len(), 1);
        assert_eq!(d.earlier[0].seconds, -120.0);
        assert_eq!(d.new.len(), 1, "the second filling");
        assert_eq!(d.new[0].raised_at, at(36));
        assert_eq!(d.gone.len(), 1);
        assert_eq!(d.gone[0].component, "fs/home");
    }
}
