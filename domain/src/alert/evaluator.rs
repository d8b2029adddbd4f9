//! The alert evaluator: a process manager that reads the event log and decides which alert
//! commands to send back to the command side.
//!
//! Its decisions are a pure function of the events it is fed, in order: reports, the rules in
//! force (`RulesLoaded`), recorded clock ticks (`Ticked`), alert events (for silences), and
//! maintenance windows (an alert raised inside one notifies nobody until it is over).
//! It never reads a clock. "Now" is the latest time the log has told it (a report's
//! `received_at`, a tick's `at`, an operator action's `at`). Alert ids and command ids are
//! derived from the position of the event that caused them, so running it again over the same
//! log gives the same commands with the same ids, and a store that already holds them can skip
//! them.

use super::commands::AlertCommand;
use super::events::{AlertEvent, AlertInfo, EvaluatorEvent};
use super::rfc3339;
use super::rules::{Condition, Direction, Rule, RuleSet};
use super::summary::{self, Facts};
use crate::component::Reported;
use crate::maintenance::{MaintenanceEvent, Window};
use crate::outage::{OutageEvent, OutageSeverity};
use crate::Status;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const ALERT_NAMESPACE: Uuid = Uuid::from_u128(0x5e1f_72e9_9c4a_4b8e_a1d2_6f03_a1e7_0001);
const COMMAND_NAMESPACE: Uuid = Uuid::from_u128(0x5e1f_72e9_9c4a_4b8e_a1d2_6f03_a1e7_0002);

/// How long after a maintenance window ends its components still count as in maintenance for
/// alerts: collectors and services coming back need a few minutes, and a trouble that clears by
/// then is the maintenance's own, not something to page about.
pub const MAINTENANCE_GRACE: Duration = Duration::minutes(5);

/// One command for one alert, with an id that is the same every time the same log is evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub command_id: Uuid,
    pub alert_id: Uuid,
    pub command: AlertCommand,
}

impl Decision {
    /// A decision on `alert_id`, with a command id derived from the position of the event that
    /// caused it, the verb, and what it is about (`of`): the same every time the log is evaluated.
    fn new(position: i64, verb: &str, of: &dyn std::fmt::Display, alert_id: Uuid, command: AlertCommand) -> Self {
        let command_id = Uuid::new_v5(&COMMAND_NAMESPACE, format!("{position}|{verb}|{of}").as_bytes());
        Self { command_id, alert_id, command }
    }
}

/// An event from the log, as the evaluator reads it.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Reported(&'a Reported),
    Evaluator(&'a EvaluatorEvent),
    Alert(Uuid, &'a AlertEvent),
    Maintenance(&'a MaintenanceEvent),
    Outage(&'a OutageEvent),
}

/// A maintenance window (or reservation) as it stands, and the system it is for.
#[derive(Debug, Clone, PartialEq)]
struct Span {
    system: String,
    window: Window,
}

impl Span {
    /// Whether it quiets the alerts of `system:component` at `at`: from its start (when the
    /// dashboard shows the component as MAINTENANCE) to [`MAINTENANCE_GRACE`] after its end.
    fn covers(&self, system: &str, component: &str, at: OffsetDateTime) -> bool {
        let w = &self.window;
        self.system == system
            && w.starts_at <= at
            && at < self.quiet_until()
            && w.components.iter().any(|c| c.as_str() == component)
    }

    fn quiet_until(&self) -> OffsetDateTime {
        self.window.ends_at + MAINTENANCE_GRACE
    }
}

/// What the evaluator knows of a component. Saved one row per component (see
/// [`Evaluator::core`]), so a step writes only the components it touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    status: Status,
    observed_at: OffsetDateTime,
    ttl_seconds: Option<u32>,
    metrics: BTreeMap<String, f64>,
    /// When its status changed, within the longest flapping window.
    changes: Vec<OffsetDateTime>,
    /// The latest report's labels, which alerts carry for routing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

/// One matching rule and what it needs of the component being evaluated.
struct Check {
    rule: String,
    condition: Condition,
    /// The threshold's metric, if the report has it.
    value: Option<f64>,
    /// Status changes within the flapping window: how many, and the first.
    recent: Option<(usize, OffsetDateTime)>,
}

/// The evaluator's whole state; it is saved with its checkpoint, so a restart goes on exactly
/// where it stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluator {
    now: Option<OffsetDateTime>,
    rules: RuleSet,
    /// By `system:component` ([`Evaluator::component_key`]). Saved apart from the rest (see
    /// [`Evaluator::core`]); a saved state from before that still holds them and loads.
    #[serde(default)]
    components: BTreeMap<String, Tracked>,
    /// Alerts it raised and has not resolved, by `rule|system:component`.
    open: BTreeMap<String, Uuid>,
    /// Conditions that hold but whose `for` has not run out, by `rule|system:component`.
    pending: BTreeMap<String, OffsetDateTime>,
    /// Silenced alerts and when their silence ends.
    silences: BTreeMap<Uuid, OffsetDateTime>,
    /// Open alerts raised inside a maintenance window: the window's `system/id` (the first that
    /// covered it, for the record) and the alert's `system:component`. Any window that covers
    /// the component keeps the alert quiet.
    #[serde(default)]
    in_maintenance: BTreeMap<Uuid, (String, String)>,
    /// Declared outages of severity major or critical in force, by `system/id`, with their
    /// system: an alert raised in that system while one is gives way to it (the system is the
    /// parent of its components).
    #[serde(default)]
    outages: BTreeMap<String, String>,
    /// Maintenance windows, by `system/id`. Not saved: a restore reads them again from the log
    /// ([`Evaluator::note_window`]), since they are few.
    #[serde(skip)]
    windows: BTreeMap<String, Span>,
    /// The earliest time at which the passing of time alone could lead to a decision.
    due: Option<OffsetDateTime>,
}

fn slot(rule: &str, key: &str) -> String {
    format!("{rule}|{key}")
}

fn split_slot(slot: &str) -> (&str, &str) {
    slot.split_once('|').unwrap_or((slot, ""))
}

fn secs(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1_000_000_000))
}

fn earliest(a: Option<OffsetDateTime>, b: OffsetDateTime) -> Option<OffsetDateTime> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// The evaluator's state without its components, for saving: the components are saved one by
/// one, and only those a step touched. It deserialises as an [`Evaluator`] with no components,
/// to which [`Evaluator::restore_component`] adds them back.
#[derive(Debug, Serialize)]
pub struct Core<'a> {
    now: &'a Option<OffsetDateTime>,
    rules: &'a RuleSet,
    open: &'a BTreeMap<String, Uuid>,
    pending: &'a BTreeMap<String, OffsetDateTime>,
    silences: &'a BTreeMap<Uuid, OffsetDateTime>,
    in_maintenance: &'a BTreeMap<Uuid, (String, String)>,
    outages: &'a BTreeMap<String, String>,
    due: &'a Option<OffsetDateTime>,
}

impl Evaluator {
    /// The key a component's state is kept under.
    pub fn component_key(system: &str, component: &str) -> String {
        format!("{system}:{component}")
    }

    /// The key of the component a report changes, if it changes one (late reports do not).
    pub fn touched_by(r: &Reported) -> Option<String> {
        (!r.late).then(|| Self::component_key(r.system.as_str(), r.component.as_str()))
    }

    /// Everything but the components (see [`Core`]).
    pub fn core(&self) -> Core<'_> {
        Core {
            now: &self.now,
            rules: &self.rules,
            open: &self.open,
            pending: &self.pending,
            silences: &self.silences,
            in_maintenance: &self.in_maintenance,
            outages: &self.outages,
            due: &self.due,
        }
    }

    /// A component's state.
    pub fn component(&self, key: &str) -> Option<&Tracked> {
        self.components.get(key)
    }

    /// Every component's state, by key.
    pub fn components(&self) -> impl Iterator<Item = (&String, &Tracked)> {
        self.components.iter()
    }

    /// Puts back a component's saved state.
    pub fn restore_component(&mut self, key: String, tracked: Tracked) {
        self.components.insert(key, tracked);
    }

    /// The rules in force.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Takes in a maintenance event without deciding anything: how a restore puts back the
    /// windows, which are not saved with the rest.
    pub fn note_window(&mut self, event: &MaintenanceEvent) {
        match event {
            MaintenanceEvent::Scheduled { system, id, window, .. } => {
                let span = Span { system: system.to_string(), window: window.clone() };
                self.windows.insert(format!("{system}/{id}"), span);
            }
            MaintenanceEvent::Updated { system, id, change, .. } => {
                if let Some(span) = self.windows.get_mut(&format!("{system}/{id}")) {
                    span.window.apply(change.clone());
                }
            }
            // From its cancellation on, a window covers nobody.
            MaintenanceEvent::Cancelled { system, id, at, .. } => {
                if let Some(span) = self.windows.get_mut(&format!("{system}/{id}")) {
                    span.window.ends_at = span.window.ends_at.min(*at);
                }
            }
        }
    }

    /// Takes in a declared outage: major and critical ones in force make their system the
    /// parent of its components' new alerts.
    pub fn note_outage(&mut self, event: &OutageEvent) {
        let grave = |s: OutageSeverity| matches!(s, OutageSeverity::Major | OutageSeverity::Critical);
        match event {
            OutageEvent::Declared { system, id, outage, .. } if grave(outage.severity) => {
                self.outages.insert(format!("{system}/{id}"), system.to_string());
            }
            OutageEvent::Declared { .. } => {}
            OutageEvent::Updated { system, id, change, .. } => match change.severity {
                Some(s) if grave(s) => {
                    self.outages.insert(format!("{system}/{id}"), system.to_string());
                }
                Some(_) => {
                    self.outages.remove(&format!("{system}/{id}"));
                }
                None => {}
            },
            OutageEvent::Resolved { system, id, .. } => {
                self.outages.remove(&format!("{system}/{id}"));
            }
        }
    }

    /// The latest time the log has told it.
    pub fn now(&self) -> Option<OffsetDateTime> {
        self.now
    }

    /// When a recorded tick could next lead to a decision (`None`: nothing waits on time).
    pub fn due(&self) -> Option<OffsetDateTime> {
        self.due
    }

    /// Feeds one event, at `position` in the log; returns the commands it leads to.
    pub fn handle(&mut self, position: i64, input: Input<'_>) -> Vec<Decision> {
        let mut out = Vec::new();
        match input {
            Input::Reported(r) => {
                self.advance(r.received_at);
                if let Some(key) = Self::touched_by(r) {
                    self.track(&key, r);
                    self.evaluate(&key, position, &mut out);
                }
            }
            Input::Evaluator(EvaluatorEvent::Ticked { at }) => self.advance(*at),
            Input::Evaluator(EvaluatorEvent::RulesLoaded { rules, .. }) => self.load(rules.clone(), position, &mut out),
            Input::Alert(alert_id, event) => {
                self.advance(event.at());
                match event {
                    AlertEvent::Silenced { until, .. } => {
                        self.silences.insert(alert_id, *until);
                        self.due = earliest(self.due, *until);
                    }
                    AlertEvent::SilenceExpired { .. } => {
                        self.silences.remove(&alert_id);
                    }
                    AlertEvent::MaintenanceEnded { .. } => {
                        self.in_maintenance.remove(&alert_id);
                    }
                    AlertEvent::Resolved { .. } => {
                        self.silences.remove(&alert_id);
                        self.in_maintenance.remove(&alert_id);
                        self.open.retain(|_, id| *id != alert_id);
                    }
                    AlertEvent::Raised { .. } | AlertEvent::Acknowledged { .. } => {}
                }
            }
            // An outage's own time is the sender's clock too: it only says what is in force.
            Input::Outage(event) => self.note_outage(event),
            // A window's own time is not the log's "now" (it is the sender's clock), but a
            // change to it may end the maintenance of alerts raised in it.
            Input::Maintenance(event) => {
                self.note_window(event);
                if let Some(now) = self.now {
                    self.end_maintenance(now, position, &mut out);
                }
            }
        }
        if let (Some(now), Some(due)) = (self.now, self.due) {
            if now >= due {
                self.sweep(now, position, &mut out);
            }
        }
        out
    }

    fn advance(&mut self, at: OffsetDateTime) {
        self.now = Some(self.now.map_or(at, |now| now.max(at)));
    }

    fn longest_flapping_window(&self) -> Option<Duration> {
        self.rules
            .rules
            .iter()
            .filter_map(|r| match r.condition {
                Condition::Flapping { within_seconds, .. } => Some(secs(within_seconds)),
                _ => None,
            })
            .max()
    }

    fn track(&mut self, key: &str, r: &Reported) {
        let window = self.longest_flapping_window();
        let now = self.now.unwrap_or(r.received_at);
        let entry = self.components.entry(key.to_owned()).or_insert_with(|| Tracked {
            status: r.status,
            observed_at: r.observed_at,
            ttl_seconds: r.ttl_seconds,
            metrics: BTreeMap::new(),
            changes: Vec::new(),
            labels: BTreeMap::new(),
        });
        if entry.status != r.status {
            entry.changes.push(r.observed_at);
        }
        match window {
            Some(w) => entry.changes.retain(|t| *t >= now - w),
            None => entry.changes.clear(),
        }
        entry.status = r.status;
        entry.observed_at = r.observed_at;
        entry.ttl_seconds = r.ttl_seconds;
        entry.metrics.clone_from(&r.metrics);
        if entry.labels != r.labels {
            entry.labels.clone_from(&r.labels);
        }
    }

    /// Checks every rule that matches `key` against its latest report.
    fn evaluate(&mut self, key: &str, position: i64, out: &mut Vec<Decision>) {
        let Some(c) = self.components.get(key) else { return };
        let (status, observed_at, ttl_seconds) = (c.status, c.observed_at, c.ttl_seconds);
        let now = self.now.unwrap_or(observed_at);
        // What each matching rule needs of the component, read once here (this runs for every
        // report), so neither the component nor the rules have to be cloned.
        let checks: Vec<Check> = self
            .rules
            .rules
            .iter()
            .filter(|r| r.matches.matches(key))
            .map(|r| {
                let value = match &r.condition {
                    Condition::Threshold { metric, .. } => c.metrics.get(metric).copied(),
                    _ => None,
                };
                let recent = match &r.condition {
                    Condition::Flapping { within_seconds, .. } => {
                        let mut within = c.changes.iter().filter(|t| **t >= now - secs(*within_seconds));
                        within.next().map(|first| (1 + within.count(), *first))
                    }
                    _ => None,
                };
                Check { rule: r.name.clone(), condition: r.condition.clone(), value, recent }
            })
            .collect();
        for Check { rule, condition, value, recent } in checks {
            let slot = slot(&rule, key);
            match &condition {
                Condition::Status { statuses, for_seconds } => {
                    if statuses.contains(&status) {
                        self.hold(slot, observed_at.min(now), *for_seconds);
                    } else {
                        self.pending.remove(&slot);
                        self.resolve(&slot, format!("status is now {}", status.as_str()), position, out);
                    }
                }
                Condition::Threshold { metric, direction, trigger, clear, for_seconds } => {
                    let Some(v) = value else { continue };
                    let (breach, cleared) = match direction {
                        Direction::Above => (v > *trigger, v <= *clear),
                        Direction::Below => (v < *trigger, v >= *clear),
                    };
                    if breach {
                        self.hold(slot, observed_at.min(now), *for_seconds);
                    } else {
                        self.pending.remove(&slot);
                        if cleared {
                            self.resolve(&slot, format!("{metric} is {v}, back past {clear}"), position, out);
                        }
                    }
                }
                Condition::Stale { default_ttl_seconds } => {
                    // Only a fresh report ends a silence: one that is already past its window
                    // (a slow collector clock, or rules loaded again) leaves the alert open.
                    let ttl = ttl_seconds.map_or(*default_ttl_seconds, u64::from);
                    let stale_from = observed_at + secs(ttl) + Duration::SECOND;
                    if now < stale_from {
                        self.resolve(&slot, "reported again".into(), position, out);
                        self.due = earliest(self.due, stale_from);
                    }
                }
                Condition::Flapping { changes, within_seconds } => {
                    let Some((count, since)) = recent else { continue };
                    if count >= *changes as usize && !self.open.contains_key(&slot) {
                        self.raise(&slot, since, position, out);
                        self.due = earliest(self.due, since + secs(*within_seconds) + Duration::SECOND);
                    }
                }
            }
        }
    }

    /// The condition in `slot` holds since `since`: fire once `for_seconds` have passed.
    fn hold(&mut self, slot: String, since: OffsetDateTime, for_seconds: u64) {
        if self.open.contains_key(&slot) {
            return;
        }
        let since = *self.pending.entry(slot).or_insert(since);
        self.due = earliest(self.due, since + secs(for_seconds));
    }

    fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.rules.iter().find(|r| r.name == name)
    }

    fn raise(&mut self, slot: &str, since: OffsetDateTime, position: i64, out: &mut Vec<Decision>) {
        let (rule_name, key) = split_slot(slot);
        let (Some(rule), Some(c), Some(now)) = (self.rule(rule_name), self.components.get(key), self.now) else {
            return;
        };
        let (system, component) = key.split_once(':').unwrap_or((key, ""));
        let metric = match &rule.condition {
            Condition::Threshold { metric, .. } => metric.as_str(),
            _ => "",
        };
        let facts = Facts {
            system,
            component,
            rule: &rule.name,
            severity: rule.severity.as_str(),
            status: c.status.as_str(),
            metric,
            // Two decimals at most: 91.3, not 91.30000000000001.
            value: c.metrics.get(metric).map(|v| ((v * 100.0).round() / 100.0).to_string()).unwrap_or_default(),
            last_report: rfc3339(c.observed_at),
        };
        // A failed parent, else a grave outage declared for the whole system or this part.
        let impacted_by = self
            .rules
            .parent_of(key)
            .filter(|parent| self.components.get(*parent).is_some_and(|p| p.status == Status::Failed))
            .map(str::to_owned)
            .or_else(|| {
                self.outages.iter().find(|(_, s)| s.as_str() == system).map(|(name, _)| format!("outage {name}"))
            });
        let alert_id = Uuid::new_v5(&ALERT_NAMESPACE, format!("{slot}|{position}").as_bytes());
        let maintenance = self
            .windows
            .iter()
            .find(|(_, span)| span.covers(system, component, now))
            .map(|(name, span)| (name.clone(), span.quiet_until()));
        let info = AlertInfo {
            alert_id,
            rule: rule.name.clone(),
            kind: rule.condition.kind().to_owned(),
            severity: rule.severity,
            system: system.to_owned(),
            component: component.to_owned(),
            summary: summary::render(&rule.summary, &facts),
            since,
            impacted_by,
            maintenance: maintenance.as_ref().map(|(name, _)| name.clone()),
            labels: c.labels.clone(),
        };
        out.push(Decision::new(
            position,
            "raise",
            &slot,
            alert_id,
            AlertCommand::Raise { info, at: now, cause: position },
        ));
        self.open.insert(slot.to_owned(), alert_id);
        if let Some((name, ends_at)) = maintenance {
            self.in_maintenance.insert(alert_id, (name, key.to_owned()));
            self.due = earliest(self.due, ends_at);
        }
    }

    fn resolve(&mut self, slot: &str, reason: String, position: i64, out: &mut Vec<Decision>) {
        let (Some(alert_id), Some(now)) = (self.open.remove(slot), self.now) else { return };
        self.silences.remove(&alert_id);
        self.in_maintenance.remove(&alert_id);
        out.push(Decision::new(
            position,
            "resolve",
            &slot,
            alert_id,
            AlertCommand::Resolve { reason, at: now, cause: position },
        ));
    }

    /// New rules: alerts of rules that are gone (or no longer match) resolve, and every
    /// component is checked against the new set.
    fn load(&mut self, rules: RuleSet, position: i64, out: &mut Vec<Decision>) {
        self.rules = rules;
        let gone: Vec<String> = self
            .open
            .keys()
            .filter(|slot| {
                let (rule, key) = split_slot(slot);
                self.rule(rule).is_none_or(|r| !r.matches.matches(key))
            })
            .cloned()
            .collect();
        for slot in gone {
            self.resolve(&slot, "its rule was removed or changed".into(), position, out);
        }
        let rules = &self.rules;
        self.pending.retain(|slot, _| {
            let (rule, key) = split_slot(slot);
            rules.rules.iter().any(|r| r.name == rule && r.matches.matches(key))
        });
        let keys: Vec<String> = self.components.keys().cloned().collect();
        for key in keys {
            self.evaluate(&key, position, out);
        }
        self.due = self.now;
    }

    /// Everything that the passing of time decides: `for` durations run out, collectors go
    /// quiet, flapping settles, silences end. Then works out when to look again.
    fn sweep(&mut self, now: OffsetDateTime, position: i64, out: &mut Vec<Decision>) {
        let ready: Vec<(String, OffsetDateTime)> = self
            .pending
            .iter()
            .filter(|(slot, since)| {
                let for_seconds = match self.rule(split_slot(slot).0).map(|r| &r.condition) {
                    Some(Condition::Status { for_seconds, .. } | Condition::Threshold { for_seconds, .. }) => {
                        *for_seconds
                    }
                    _ => 0,
                };
                **since + secs(for_seconds) <= now
            })
            .map(|(slot, since)| (slot.clone(), *since))
            .collect();
        for (slot, since) in ready {
            self.pending.remove(&slot);
            self.raise(&slot, since, position, out);
        }

        let mut due: Option<OffsetDateTime> = self
            .pending
            .iter()
            .filter_map(|(slot, since)| match self.rule(split_slot(slot).0).map(|r| &r.condition) {
                Some(Condition::Status { for_seconds, .. } | Condition::Threshold { for_seconds, .. }) => {
                    Some(*since + secs(*for_seconds))
                }
                _ => None,
            })
            .min();

        let mut quiet = Vec::new();
        let mut settled = Vec::new();
        for rule in &self.rules.rules {
            for (key, c) in &self.components {
                if !rule.matches.matches(key) {
                    continue;
                }
                let slot = slot(&rule.name, key);
                match rule.condition {
                    Condition::Stale { default_ttl_seconds } => {
                        let ttl = c.ttl_seconds.map_or(default_ttl_seconds, u64::from);
                        // Stale once the age is past the window, as on the dashboard.
                        let stale_from = c.observed_at + secs(ttl) + Duration::SECOND;
                        if self.open.contains_key(&slot) {
                            continue;
                        }
                        if now >= stale_from {
                            quiet.push((slot, c.observed_at + secs(ttl)));
                        } else {
                            due = earliest(due, stale_from);
                        }
                    }
                    Condition::Flapping { changes, within_seconds } if self.open.contains_key(&slot) => {
                        let window = secs(within_seconds);
                        let recent: Vec<&OffsetDateTime> = c.changes.iter().filter(|t| **t >= now - window).collect();
                        if recent.len() < changes as usize {
                            settled.push(slot);
                        } else if let Some(oldest) = recent.first() {
                            due = earliest(due, **oldest + window + Duration::SECOND);
                        }
                    }
                    _ => {}
                }
            }
        }
        for (slot, since) in quiet {
            self.raise(&slot, since, position, out);
        }
        for slot in settled {
            self.resolve(&slot, "no longer flapping".into(), position, out);
        }

        let expired: Vec<Uuid> = self.silences.iter().filter(|(_, until)| **until <= now).map(|(id, _)| *id).collect();
        for alert_id in expired {
            self.silences.remove(&alert_id);
            out.push(Decision::new(
                position,
                "expire",
                &alert_id,
                alert_id,
                AlertCommand::ExpireSilence { at: now, cause: position },
            ));
        }
        for until in self.silences.values() {
            due = earliest(due, *until);
        }
        self.due = due;
        self.end_maintenance(now, position, out);
    }

    /// Ends the maintenance of alerts whose component no window covers at `now` any more (the
    /// windows are over, cancelled, moved, or no longer name it), and sees that the passing of
    /// time will end the others'.
    fn end_maintenance(&mut self, now: OffsetDateTime, position: i64, out: &mut Vec<Decision>) {
        let mut over = Vec::new();
        for (alert_id, (_, key)) in &self.in_maintenance {
            let (system, component) = key.split_once(':').unwrap_or((key, ""));
            let covering = self.windows.values().filter(|span| span.covers(system, component, now));
            match covering.map(Span::quiet_until).min() {
                Some(until) => self.due = earliest(self.due, until),
                None => over.push(*alert_id),
            }
        }
        for alert_id in over {
            self.in_maintenance.remove(&alert_id);
            out.push(Decision::new(
                position,
                "maintenance",
                &alert_id,
                alert_id,
                AlertCommand::EndMaintenance { at: now, cause: position },
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Report;
    use crate::{ComponentName, SystemName};
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

    fn at(minutes: i64) -> OffsetDateTime {
        T0 + Duration::minutes(minutes)
    }

    /// An evaluator fed from a little log, with positions counted for it.
    struct Given {
        evaluator: Evaluator,
        position: i64,
    }

    fn given(rules: &str) -> Given {
        let mut g = Given { evaluator: Evaluator::default(), position: 0 };
        let rules = RuleSet::parse_toml(rules, 600).unwrap();
        let decided = g.feed_evaluator(EvaluatorEvent::RulesLoaded { rules, source: "test".into() });
        assert!(decided.is_empty());
        g
    }

    fn reported(component: &str, status: Status, observed: OffsetDateTime, metrics: &[(&str, f64)]) -> Reported {
        let report = Report {
            system: SystemName::parse("derecho").unwrap(),
            component: ComponentName::parse(component).unwrap(),
            status,
            observed_at: observed,
            message: None,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            labels: BTreeMap::new(),
            ttl_seconds: Some(60),
        };
        Reported::new(report, observed, false)
    }

    impl Given {
        fn next(&mut self) -> i64 {
            self.position += 1;
            self.position
        }
        fn feed_evaluator(&mut self, e: EvaluatorEvent) -> Vec<Decision> {
            let p = self.next();
            self.evaluator.handle(p, Input::Evaluator(&e))
        }
        fn report(&mut self, component: &str, status: Status, minute: i64) -> Vec<Decision> {
            self.report_metrics(component, status, minute, &[])
        }
        fn report_metrics(&mut self, component: &str, status: Status, minute: i64, m: &[(&str, f64)]) -> Vec<Decision> {
            let r = reported(component, status, at(minute), m);
            let p = self.next();
            self.evaluator.handle(p, Input::Reported(&r))
        }
        fn tick(&mut self, t: OffsetDateTime) -> Vec<Decision> {
            self.feed_evaluator(EvaluatorEvent::Ticked { at: t })
        }
        fn alert(&mut self, id: Uuid, e: AlertEvent) -> Vec<Decision> {
            let p = self.next();
            self.evaluator.handle(p, Input::Alert(id, &e))
        }
        fn window(&mut self, e: &MaintenanceEvent) -> Vec<Decision> {
            let p = self.next();
            self.evaluator.handle(p, Input::Maintenance(e))
        }
    }

    const DOWN: &str = "[[rule]]\nname='down'\nkind='status'\nstatus='failed'";

    /// Window `pm` of derecho over `components`, from minute 0 to `ends`.
    fn scheduled(components: &[&str], ends: i64) -> MaintenanceEvent {
        scheduled_as("pm", components, 0, ends)
    }

    /// Window `id` of derecho over `components`, from minute `starts` to `ends`.
    fn scheduled_as(id: &str, components: &[&str], starts: i64, ends: i64) -> MaintenanceEvent {
        MaintenanceEvent::Scheduled {
            system: SystemName::parse("derecho").unwrap(),
            id: crate::notice::NoticeId::parse(id).unwrap(),
            window: Window {
                kind: crate::maintenance::WindowKind::Maintenance,
                title: "Quarterly maintenance".into(),
                description: None,
                components: components.iter().map(|c| ComponentName::parse(c).unwrap()).collect(),
                nodes: None,
                partition: None,
                starts_at: at(starts),
                ends_at: at(ends),
            },
            at: at(-60),
        }
    }

    fn maintenance_of(d: &[Decision]) -> Vec<Option<&str>> {
        d.iter()
            .filter_map(|d| match &d.command {
                AlertCommand::Raise { info, .. } => Some(info.maintenance.as_deref()),
                _ => None,
            })
            .collect()
    }

    fn maintenance_ended(d: &[Decision]) -> Vec<Uuid> {
        d.iter().filter(|d| matches!(d.command, AlertCommand::EndMaintenance { .. })).map(|d| d.alert_id).collect()
    }

    fn raised(d: &[Decision]) -> Vec<(&str, &str, Option<&str>)> {
        d.iter()
            .filter_map(|d| match &d.command {
                AlertCommand::Raise { info, .. } => {
                    Some((info.rule.as_str(), info.component.as_str(), info.impacted_by.as_deref()))
                }
                _ => None,
            })
            .collect()
    }

    fn resolved(d: &[Decision]) -> Vec<&str> {
        d.iter()
            .filter_map(|d| match &d.command {
                AlertCommand::Resolve { reason, .. } => Some(reason.as_str()),
                _ => None,
            })
            .collect()
    }

    const FS_FAILED: &str = "[[rule]]\nname='fs-failed'\nmatch='derecho:fs/*'\nkind='status'\nstatus='failed'\nfor='5m'\nseverity='critical'";

    #[test]
    fn a_for_duration_that_is_not_yet_met_raises_nothing() {
        let mut g = given(FS_FAILED);
        assert!(g.report("fs/glade", Status::Failed, 0).is_empty());
        assert!(g.tick(at(4)).is_empty(), "4 minutes of a 5 minute `for`");
        assert_eq!(g.evaluator.due(), Some(at(5)));
        let d = g.tick(at(5));
        assert_eq!(raised(&d), [("fs-failed", "fs/glade", None)]);
        let AlertCommand::Raise { info, at: raised_at, cause } = &d[0].command else { unreachable!() };
        assert_eq!((info.since, *raised_at, *cause), (at(0), at(5), 4), "caused by the tick at position 4");
        assert_eq!(info.summary, "derecho fs/glade is failed");
        assert!(g.tick(at(6)).is_empty(), "it fires once");
    }

    #[test]
    fn an_alert_carries_the_labels_of_its_components_latest_report() {
        let mut g = given(DOWN);
        let mut r = reported("fs/glade", Status::Ok, at(0), &[]);
        r.labels.insert("kind".into(), "filesystem".into());
        let p = g.next();
        g.evaluator.handle(p, Input::Reported(&r));
        r.status = Status::Failed;
        r.labels.insert("team".into(), "storage".into());
        let p = g.next();
        let d = g.evaluator.handle(p, Input::Reported(&r));
        let AlertCommand::Raise { info, .. } = &d[0].command else { panic!("no alert raised: {d:?}") };
        let labels: Vec<(&str, &str)> = info.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, [("kind", "filesystem"), ("team", "storage")]);
    }

    fn outage(id: &str, severity: crate::outage::OutageSeverity) -> OutageEvent {
        OutageEvent::Declared {
            system: SystemName::parse("derecho").unwrap(),
            id: crate::notice::NoticeId::parse(id).unwrap(),
            outage: crate::outage::Declaration {
                severity,
                title: "Scheduler down".into(),
                description: None,
                components: vec![],
                started_at: at(0),
                estimated_resolution: None,
            },
            at: at(0),
        }
    }

    #[test]
    fn given_a_major_outage_of_its_system_then_a_new_alert_is_impacted_by_it_and_after_it_is_not() {
        use crate::outage::OutageSeverity;
        let mut g = given(DOWN);
        let p = g.next();
        g.evaluator.handle(p, Input::Outage(&outage("minor", OutageSeverity::Minor)));
        assert_eq!(
            raised(&g.report("login/a", Status::Failed, 1)),
            [("down", "login/a", None)],
            "a minor outage is no parent"
        );
        let p = g.next();
        g.evaluator.handle(p, Input::Outage(&outage("sched", OutageSeverity::Major)));
        assert_eq!(
            raised(&g.report("queue/main", Status::Failed, 2)),
            [("down", "queue/main", Some("outage derecho/sched"))]
        );
        let resolved = OutageEvent::Resolved {
            system: SystemName::parse("derecho").unwrap(),
            id: crate::notice::NoticeId::parse("sched").unwrap(),
            message: None,
            at: at(3),
        };
        let p = g.next();
        g.evaluator.handle(p, Input::Outage(&resolved));
        assert_eq!(raised(&g.report("fs/glade", Status::Failed, 4)), [("down", "fs/glade", None)]);
    }

    #[test]
    fn recovering_before_the_for_duration_raises_nothing() {
        let mut g = given(FS_FAILED);
        g.report("fs/glade", Status::Failed, 0);
        assert!(g.report("fs/glade", Status::Ok, 3).is_empty());
        assert!(g.tick(at(10)).is_empty());
        assert!(g.report("fs/glade", Status::Failed, 11).is_empty(), "the for duration starts again");
        assert!(g.tick(at(15)).is_empty());
        assert_eq!(raised(&g.tick(at(16))).len(), 1);
    }

    #[test]
    fn a_threshold_with_hysteresis_does_not_chatter() {
        let mut g = given("[[rule]]\nname='full'\nkind='threshold'\nmetric='used_pct'\nabove=90\nclear=85");
        let first = g.report_metrics("fs/glade", Status::Ok, 0, &[("used_pct", 91.0)]);
        assert_eq!(raised(&first).len(), 1);
        assert!(
            g.report_metrics("fs/glade", Status::Ok, 1, &[("used_pct", 88.0)]).is_empty(),
            "between clear and trigger"
        );
        assert!(g.report_metrics("fs/glade", Status::Ok, 2, &[("used_pct", 92.0)]).is_empty(), "still the same alert");
        assert!(g.report("fs/glade", Status::Ok, 3).is_empty(), "a report without the metric changes nothing");
        let cleared = g.report_metrics("fs/glade", Status::Ok, 4, &[("used_pct", 85.0)]);
        assert_eq!(resolved(&cleared), ["used_pct is 85, back past 85"]);
        assert!(g.report_metrics("fs/glade", Status::Ok, 5, &[("used_pct", 89.0)]).is_empty());
        let again = g.report_metrics("fs/glade", Status::Ok, 6, &[("used_pct", 95.5)]);
        assert_eq!(raised(&again).len(), 1);
        assert_ne!(again[0].alert_id, first[0].alert_id, "a new firing is a new alert");
    }

    #[test]
    fn a_quiet_collector_is_stale_not_failed() {
        let mut g = given(&format!("{FS_FAILED}\n[[rule]]\nname='silent'\nkind='stale'"));
        g.report("fs/glade", Status::Ok, 0);
        assert!(g.tick(at(1)).is_empty(), "60 s old is still fresh");
        let d = g.tick(at(1) + Duration::SECOND);
        assert_eq!(raised(&d), [("silent", "fs/glade", None)]);
        let AlertCommand::Raise { info, .. } = &d[0].command else { unreachable!() };
        assert_eq!((info.kind.as_str(), info.since), ("stale", at(1)));
        assert!(info.summary.contains("has not reported since 2026-11-22T10:00:00Z"), "{}", info.summary);

        let back = g.report("fs/glade", Status::Failed, 3);
        assert_eq!(resolved(&back), ["reported again"]);
        assert!(raised(&back).is_empty(), "failed, but not for 5 minutes yet");
    }

    #[test]
    fn a_report_already_past_its_window_keeps_the_stale_alert_open() {
        let mut g = given("[[rule]]\nname='silent'\nkind='stale'");
        g.report("fs/glade", Status::Ok, 0);
        assert_eq!(raised(&g.tick(at(2))).len(), 1);
        // Observed two minutes ago with a 60 s window: stale on arrival.
        let r = reported("fs/glade", Status::Ok, at(1), &[]);
        let late_clock = Reported { received_at: at(3), ..r };
        let p = g.next();
        assert!(g.evaluator.handle(p, Input::Reported(&late_clock)).is_empty(), "no resolve and raise again");
        assert!(g.report("fs/glade", Status::Ok, 3).iter().any(|d| matches!(d.command, AlertCommand::Resolve { .. })));
    }

    #[test]
    fn loading_rules_again_leaves_open_alerts_alone() {
        let rules = format!("{FS_FAILED}\n[[rule]]\nname='silent'\nkind='stale'");
        let mut g = given(&rules);
        g.report("fs/glade", Status::Failed, 0);
        assert_eq!(raised(&g.tick(at(5))).len(), 2, "failed for 5 minutes, and silent");
        let mut more = RuleSet::parse_toml(&rules, 600).unwrap();
        more.routes = RuleSet::parse_toml("[[route]]\nname='r'\nurl='http://x/'", 600).unwrap().routes;
        let d = g.feed_evaluator(EvaluatorEvent::RulesLoaded { rules: more, source: "test".into() });
        assert!(d.is_empty(), "{d:#?}");
    }

    #[test]
    fn flapping_raises_one_alert_instead_of_many() {
        let mut g = given("[[rule]]\nname='flap'\nkind='flapping'\nchanges=4\nwithin='30m'");
        let mut all = Vec::new();
        for (i, s) in
            [Status::Ok, Status::Failed, Status::Ok, Status::Failed, Status::Ok, Status::Failed].iter().enumerate()
        {
            all.extend(g.report("login/derecho1", *s, i as i64));
        }
        assert_eq!(raised(&all), [("flap", "login/derecho1", None)]);
        assert!(g.tick(at(30)).is_empty(), "the changes at minutes 2 to 5 still count");
        assert_eq!(resolved(&g.tick(at(33))), ["no longer flapping"]);
    }

    #[test]
    fn a_silence_that_expires_is_lifted_by_the_evaluator() {
        let mut g = given("[[rule]]\nname='down'\nkind='status'\nstatus='failed'");
        let id = g.report("fs/glade", Status::Failed, 0)[0].alert_id;
        let by = || "ana".to_string();
        assert!(g
            .alert(id, AlertEvent::Silenced { by: by(), comment: String::new(), until: at(10), at: at(1) })
            .is_empty());
        assert!(g.tick(at(9)).is_empty());
        let d = g.tick(at(10));
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].alert_id, &d[0].command),
            (id, &AlertCommand::ExpireSilence { at: at(10), cause: g.position })
        );
        assert!(g.tick(at(11)).is_empty(), "expired once");
    }

    #[test]
    fn an_acknowledged_alert_resolves_when_its_component_recovers() {
        let mut g = given("[[rule]]\nname='down'\nkind='status'\nstatus='failed'");
        let id = g.report("fs/glade", Status::Failed, 0)[0].alert_id;
        g.alert(id, AlertEvent::Acknowledged { by: "ana".into(), comment: "on it".into(), at: at(1) });
        let d = g.report("fs/glade", Status::Ok, 2);
        assert_eq!((d.len(), d[0].alert_id), (1, id));
        assert_eq!(resolved(&d), ["status is now ok"]);
    }

    #[test]
    fn a_component_whose_parent_failed_is_impacted_instead() {
        let mut g = given(
            "[[rule]]\nname='down'\nkind='status'\nstatus='failed'\n[[dependency]]\nmatch='derecho:compute/*'\nparent='derecho:fs/glade'",
        );
        assert_eq!(raised(&g.report("fs/glade", Status::Failed, 0)), [("down", "fs/glade", None)]);
        assert_eq!(
            raised(&g.report("compute/main", Status::Failed, 1)),
            [("down", "compute/main", Some("derecho:fs/glade"))]
        );
        assert_eq!(
            raised(&g.report("compute/gpu", Status::Failed, 1)),
            [("down", "compute/gpu", Some("derecho:fs/glade"))]
        );
    }

    #[test]
    fn removing_a_rule_resolves_its_alerts() {
        let mut g = given("[[rule]]\nname='down'\nkind='status'\nstatus='failed'");
        g.report("fs/glade", Status::Failed, 0);
        let rules = RuleSet::parse_toml("", 600).unwrap();
        let d = g.feed_evaluator(EvaluatorEvent::RulesLoaded { rules, source: "test".into() });
        assert_eq!(resolved(&d), ["its rule was removed or changed"]);
    }

    #[test]
    fn the_same_log_gives_the_same_decisions_even_across_a_saved_state() {
        let run = |save_at: usize| {
            let mut g = given(&format!("{FS_FAILED}\n[[rule]]\nname='silent'\nkind='stale'"));
            let mut all = Vec::new();
            for (i, (s, minute)) in
                [(Status::Failed, 0), (Status::Failed, 2), (Status::Ok, 9), (Status::Failed, 10)].iter().enumerate()
            {
                if i == save_at {
                    let json = serde_json::to_value(&g.evaluator).unwrap();
                    g.evaluator = serde_json::from_value(json).unwrap();
                }
                all.extend(g.report("fs/glade", *s, *minute));
                all.extend(g.tick(at(*minute + 6)));
            }
            all
        };
        let once = run(usize::MAX);
        // fs-failed at 6 and 16; silent at 6 and 15. The reports observed at 2 and 10 arrive
        // when the clock already says 8 and 15: stale on arrival, so they end no silence.
        assert_eq!(raised(&once).len(), 4, "{once:#?}");
        for save_at in 0..4 {
            assert_eq!(run(save_at), once);
        }
    }

    #[test]
    fn an_alert_raised_inside_a_maintenance_window_names_it_and_ends_with_it() {
        let mut g = given(DOWN);
        assert!(g.window(&scheduled(&["fs/glade"], 30)).is_empty());
        let d = g.report("fs/glade", Status::Failed, 1);
        assert_eq!(maintenance_of(&d), [Some("derecho/pm")]);
        let id = d[0].alert_id;
        assert_eq!(g.evaluator.due(), Some(at(35)), "the window's end and its grace decide next");
        assert!(g.tick(at(34)).is_empty(), "within the grace after the window");
        let ended = g.tick(at(35));
        assert_eq!(maintenance_ended(&ended), [id]);
        let AlertCommand::EndMaintenance { at: when, .. } = ended[0].command else { unreachable!() };
        assert_eq!(when, at(35));
        assert!(g.tick(at(36)).is_empty(), "it ends once");
    }

    #[test]
    fn overlapping_windows_keep_an_alert_quiet_until_the_last_is_over() {
        let mut g = given(DOWN);
        g.window(&scheduled_as("pm", &["fs/glade"], 0, 30));
        g.window(&scheduled_as("pm-overrun", &["fs/glade"], 30, 60));
        let d = g.report("fs/glade", Status::Failed, 1);
        assert_eq!(maintenance_of(&d), [Some("derecho/pm")]);
        assert!(g.tick(at(35)).is_empty(), "the overrun window covers it");
        assert_eq!(maintenance_ended(&g.tick(at(65))), [d[0].alert_id]);
    }

    #[test]
    fn components_the_window_does_not_name_and_times_outside_it_alert_as_usual() {
        let mut g = given(DOWN);
        g.window(&scheduled(&["fs/glade", "fs/home"], 30));
        assert_eq!(maintenance_of(&g.report("login/a", Status::Failed, 1)), [None]);
        assert_eq!(maintenance_of(&g.report("fs/home", Status::Failed, 32)), [Some("derecho/pm")], "in the grace");
        g.tick(at(36));
        assert_eq!(maintenance_of(&g.report("fs/glade", Status::Failed, 36)), [None], "after the grace");
    }

    #[test]
    fn cancelling_or_changing_the_window_ends_the_maintenance_of_its_alerts() {
        let target = || (SystemName::parse("derecho").unwrap(), crate::notice::NoticeId::parse("pm").unwrap());
        let mut g = given(DOWN);
        g.window(&scheduled(&["fs/glade", "login/a"], 30));
        let glade = g.report("fs/glade", Status::Failed, 1)[0].alert_id;
        let login = g.report("login/a", Status::Failed, 1)[0].alert_id;
        let (system, id) = target();
        let change = crate::maintenance::WindowChange {
            components: Some(vec![ComponentName::parse("fs/glade").unwrap()]),
            ..Default::default()
        };
        let d = g.window(&MaintenanceEvent::Updated { system, id, change, at: at(2) });
        assert_eq!(maintenance_ended(&d), [login], "no longer named");
        let (system, id) = target();
        let d = g.window(&MaintenanceEvent::Cancelled { system, id, message: None, at: at(1) });
        assert!(d.is_empty(), "cancelled, with the grace after it");
        assert_eq!(maintenance_ended(&g.tick(at(6))), [glade]);
    }

    #[test]
    fn an_alert_resolved_inside_its_window_has_no_maintenance_to_end() {
        let mut g = given(DOWN);
        g.window(&scheduled(&["fs/glade"], 30));
        g.report("fs/glade", Status::Failed, 1);
        assert_eq!(resolved(&g.report("fs/glade", Status::Ok, 2)).len(), 1);
        assert!(g.tick(at(35)).is_empty());
    }

    #[test]
    fn windows_noted_again_after_a_saved_state_give_the_same_decisions() {
        let run = |save: bool| {
            let mut g = given(DOWN);
            let window = scheduled(&["fs/glade"], 30);
            g.window(&window);
            let mut all = g.report("fs/glade", Status::Failed, 1);
            if save {
                let json = serde_json::to_value(&g.evaluator).unwrap();
                assert!(json.get("windows").is_none(), "windows are read again from the log, not saved");
                g.evaluator = serde_json::from_value(json).unwrap();
                g.evaluator.note_window(&window);
            }
            all.extend(g.report("login/a", Status::Failed, 2));
            all.extend(g.tick(at(35)));
            all
        };
        let once = run(false);
        assert_eq!(maintenance_ended(&once).len(), 1, "{once:#?}");
        assert_eq!(run(true), once);
    }
}
