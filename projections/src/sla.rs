//! Availability under a stated policy: pure arithmetic over a component's status segments, the
//! maintenance windows that cover it and the declared outages that name it. No I/O and no clock:
//! the caller passes the window, so a past month, "now" and a changed policy are the same code,
//! and the figures of any month can be computed again from the log.
//!
//! For one component over `[from, to)`, every instant is exactly one of:
//! - **maintenance**: inside a maintenance window or reservation that names the component (from
//!   its start to its end, or to its cancellation). Excluded: it counts neither way;
//! - **down**: reported `failed`; or inside a declared outage of a severity the policy counts;
//!   or `stale` when the policy says so; or `degraded` when the policy counts it as down (a
//!   fraction of it, when the policy says so);
//! - **up**: reported `ok`, or `degraded` when the policy counts it as up;
//! - **unknown**: `stale` (unless counted as down), `unknown`, `starting`, `stopped`, or before
//!   the component's first report. Counted neither way.
//!
//! Availability is up ÷ (up + down). A group of components (a system, a status page group) has
//! the mean of its components' minutes, so its availability is the share of component time that
//! was up: a group of 100 nodes with one node down for 100 minutes has 1 minute down.

use crate::timeline::{Segment, STALE};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A stretch of time in one status, inside a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stretch {
    pub status: String,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

/// The stretches of `segments` (one component's, oldest first) inside `[from, to)`. An open
/// segment is fresh until its last report's window runs out, and stale after that.
pub fn stretches(segments: &[Segment], from: OffsetDateTime, to: OffsetDateTime) -> Vec<Stretch> {
    let mut out = Vec::new();
    let mut push = |status: &str, a: OffsetDateTime, b: OffsetDateTime| {
        let (a, b) = (a.max(from), b.min(to));
        if a < b {
            out.push(Stretch { status: status.to_owned(), from: a, to: b });
        }
    };
    for s in segments {
        match s.ended_at {
            Some(end) => push(&s.status, s.started_at, end),
            None => {
                push(&s.status, s.started_at, s.fresh_until());
                push(STALE, s.fresh_until().max(s.started_at), to);
            }
        }
    }
    out
}

/// How time counts. Every report prints it; change `version` when you change the policy, so
/// that two reports say whether they counted alike.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub version: String,
    /// The share of DEGRADED time that counts as down: 0 (up, the default), 1 (down), or between.
    pub degraded_as_down: f64,
    /// Whether STALE time (no fresh report) counts as down. By default it counts neither way.
    pub stale_as_down: bool,
    /// Declared outages of these severities count as down for the components they name (all of
    /// their system's when they name none), whatever the reports said. By default none do.
    pub outage_severities: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self { version: "1".into(), degraded_as_down: 0.0, stale_as_down: false, outage_severities: vec![] }
    }
}

/// The `[sla]` table as written (`status.toml`; docs/status-page.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub version: Option<String>,
    /// `"up"`, `"down"`, or the share counted as down, such as 0.5.
    pub degraded: Option<DegradedSpec>,
    /// `"ignore"` or `"down"`.
    pub stale: Option<String>,
    /// Outage severities that count as down: any of minor, major, critical.
    pub outages: Option<Vec<String>>,
    /// The availability objective of systems without one of their own, in percent.
    pub target: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DegradedSpec {
    Word(String),
    Share(f64),
}

impl Policy {
    /// The policy a `[sla]` table states; errors name the key.
    pub fn from_spec(spec: &PolicySpec) -> Result<Self, String> {
        let mut p = Policy::default();
        if let Some(v) = &spec.version {
            if v.trim().is_empty() || v.len() > 64 {
                return Err("sla.version: give 1 to 64 characters, such as \"2026-12\"".into());
            }
            p.version = v.clone();
        }
        p.degraded_as_down = match &spec.degraded {
            None => 0.0,
            Some(DegradedSpec::Word(w)) if w == "up" => 0.0,
            Some(DegradedSpec::Word(w)) if w == "down" => 1.0,
            Some(DegradedSpec::Share(s)) if (0.0..=1.0).contains(s) => *s,
            Some(DegradedSpec::Word(w)) => {
                return Err(format!("sla.degraded: {w:?} is not \"up\", \"down\" or a share between 0 and 1"))
            }
            Some(DegradedSpec::Share(s)) => {
                return Err(format!("sla.degraded: {s} is not a share between 0 and 1 (0.5 counts half as down)"))
            }
        };
        p.stale_as_down = match spec.stale.as_deref() {
            None | Some("ignore") => false,
            Some("down") => true,
            Some(other) => return Err(format!("sla.stale: {other:?} is not \"ignore\" or \"down\"")),
        };
        for s in spec.outages.iter().flatten() {
            if !["minor", "major", "critical"].contains(&s.as_str()) {
                return Err(format!("sla.outages: {s:?} is not an outage severity (minor, major, critical)"));
            }
        }
        p.outage_severities = spec.outages.clone().unwrap_or_default();
        if let Some(t) = spec.target {
            check_target("sla.target", t)?;
        }
        Ok(p)
    }

    /// The policy in words, as every report prints it.
    pub fn describe(&self) -> Vec<String> {
        let degraded = match self.degraded_as_down {
            0.0 => "DEGRADED counts as up.".to_owned(),
            1.0 => "DEGRADED counts as down.".to_owned(),
            d => format!("DEGRADED counts {} % as down.", (d * 100.0 * 100.0).round() / 100.0),
        };
        let stale = if self.stale_as_down {
            "STALE (no fresh report) counts as down."
        } else {
            "STALE (no fresh report) counts neither way."
        };
        let outages = if self.outage_severities.is_empty() {
            "Declared outages count only through what the reports said.".to_owned()
        } else {
            format!(
                "Declared outages of severity {} count as down for the components they name, whatever the reports said.",
                self.outage_severities.join(", ")
            )
        };
        vec![
            format!("Policy version {}.", self.version),
            "OK counts as up; FAILED counts as down.".into(),
            degraded,
            stale.to_owned(),
            "UNKNOWN, STARTING and STOPPED time, and time before a component's first report, counts neither way."
                .into(),
            outages,
            "Time inside maintenance windows and reservations that name the component is excluded.".into(),
        ]
    }

    fn counts(&self, outage_severity: &str) -> bool {
        self.outage_severities.iter().any(|s| s == outage_severity)
    }
}

/// An objective in percent, such as 99.5.
pub fn check_target(key: &str, t: f64) -> Result<(), String> {
    if t > 0.0 && t < 100.0 {
        Ok(())
    } else {
        Err(format!("{key}: {t} is not a percentage above 0 and below 100, such as 99.5"))
    }
}

/// A span of time `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

/// A declared outage as the report needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// The outage's id within its system.
    pub id: String,
    pub severity: String,
    pub span: Span,
}

/// What one component's figures are computed from.
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    pub segments: &'a [Segment],
    /// Maintenance windows and reservations that name the component.
    pub maintenance: Vec<Span>,
    /// Declared outages that name the component (or name none, for the whole system).
    pub outages: Vec<Outage>,
}

/// A stretch counted as down, with why it began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// failed, outage, stale or degraded.
    pub cause: String,
    /// The id of the declared outage that began it, when the cause is `outage`.
    pub outage: Option<String>,
}

impl Incident {
    pub fn seconds(&self) -> f64 {
        (self.to - self.from).as_seconds_f64()
    }
}

/// One component's seconds over a window. `up + down + maintenance + unknown` is the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub up: f64,
    pub down: f64,
    /// Time reported DEGRADED outside maintenance, however the policy counts it.
    pub degraded: f64,
    pub maintenance: f64,
    pub unknown: f64,
    pub incidents: Vec<Incident>,
}

impl Figures {
    /// Percent up of the counted time, or `None` when no time was counted.
    pub fn availability(&self) -> Option<f64> {
        availability(self.up, self.down)
    }
}

/// Percent up of the counted time (`up + down`), or `None` when no time was counted.
pub fn availability(up: f64, down: f64) -> Option<f64> {
    let counted = up + down;
    (counted > 0.0).then(|| (100.0 * up / counted).clamp(0.0, 100.0))
}

/// One component's figures over `[from, to)` under `policy`.
pub fn component(input: &Input<'_>, policy: &Policy, from: OffsetDateTime, to: OffsetDateTime) -> Figures {
    let mut f = Figures::default();
    if from >= to {
        return f;
    }
    let stretches = stretches(input.segments, from, to);
    let counted: Vec<&Outage> = input.outages.iter().filter(|o| policy.counts(&o.severity)).collect();
    let outages: Vec<Span> = counted.iter().map(|o| o.span).collect();
    // Every instant where something may change: the elementary spans between them are uniform.
    let mut cuts = vec![from, to];
    for s in &stretches {
        cuts.extend([s.from, s.to]);
    }
    for s in input.maintenance.iter().chain(&outages) {
        cuts.extend([s.from, s.to]);
    }
    cuts.retain(|t| *t >= from && *t <= to);
    cuts.sort_unstable();
    cuts.dedup();
    let inside = |spans: &[Span], t: OffsetDateTime| spans.iter().any(|s| s.from <= t && t < s.to);
    let mut next = 0;
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let secs = (b - a).as_seconds_f64();
        while next < stretches.len() && stretches[next].to <= a {
            next += 1;
        }
        let status = stretches.get(next).filter(|s| s.from <= a).map(|s| s.status.as_str());
        // (share counted as down, share counted as up, why it is down)
        let mut outage = None;
        let (down, up, cause) = if inside(&input.maintenance, a) {
            f.maintenance += secs;
            continue;
        } else if let Some(o) = counted.iter().find(|o| o.span.from <= a && a < o.span.to) {
            outage = Some(o.id.clone());
            (1.0, 0.0, "outage")
        } else {
            match status {
                Some("ok") => (0.0, 1.0, ""),
                Some("failed") => (1.0, 0.0, "failed"),
                Some("degraded") => {
                    f.degraded += secs;
                    (policy.degraded_as_down, 1.0 - policy.degraded_as_down, "degraded")
                }
                Some(STALE) if policy.stale_as_down => (1.0, 0.0, "stale"),
                _ => (0.0, 0.0, ""),
            }
        };
        f.down += down * secs;
        f.up += up * secs;
        if down == 0.0 && up == 0.0 {
            f.unknown += secs;
        }
        if down >= 1.0 {
            match f.incidents.last_mut() {
                Some(last) if last.to == a => last.to = b,
                _ => f.incidents.push(Incident { from: a, to: b, cause: cause.to_owned(), outage }),
            }
        }
    }
    f
}

/// A group's figures: the mean of its components' minutes, and its incidents (the times when
/// at least one of them was down, merged).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub components: usize,
    pub availability_pct: Option<f64>,
    pub up_minutes: f64,
    pub down_minutes: f64,
    pub degraded_minutes: f64,
    pub maintenance_minutes: f64,
    pub unknown_minutes: f64,
    pub incidents: usize,
    /// Mean time to repair: the mean length of the incidents.
    pub mttr_minutes: Option<f64>,
    /// Mean time between failures: up time per incident.
    pub mtbf_minutes: Option<f64>,
}

impl Summary {
    pub fn of<'a>(figures: impl IntoIterator<Item = &'a Figures>) -> Self {
        let mut s = Summary::default();
        let mut spans: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::new();
        for f in figures {
            s.components += 1;
            s.up_minutes += f.up / 60.0;
            s.down_minutes += f.down / 60.0;
            s.degraded_minutes += f.degraded / 60.0;
            s.maintenance_minutes += f.maintenance / 60.0;
            s.unknown_minutes += f.unknown / 60.0;
            spans.extend(f.incidents.iter().map(|i| (i.from, i.to)));
        }
        if s.components == 0 {
            return s;
        }
        let n = s.components as f64;
        for m in [
            &mut s.up_minutes,
            &mut s.down_minutes,
            &mut s.degraded_minutes,
            &mut s.maintenance_minutes,
            &mut s.unknown_minutes,
        ] {
            *m /= n;
        }
        s.availability_pct = availability(s.up_minutes, s.down_minutes);
        spans.sort_unstable();
        let mut merged: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::new();
        for (a, b) in spans {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        s.incidents = merged.len();
        if !merged.is_empty() {
            let total: f64 = merged.iter().map(|(a, b)| (*b - *a).as_seconds_f64() / 60.0).sum();
            s.mttr_minutes = Some(total / merged.len() as f64);
            s.mtbf_minutes = Some(s.up_minutes / merged.len() as f64);
        }
        s
    }
}

/// Against an objective: the down time it allows over the counted time, and how much of it
/// was used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budget {
    pub target_pct: f64,
    pub allowed_minutes: f64,
    pub used_minutes: f64,
    pub left_minutes: f64,
    pub used_pct: f64,
}

impl Budget {
    pub fn of(target_pct: f64, s: &Summary) -> Self {
        let counted = s.up_minutes + s.down_minutes;
        let allowed = counted * (100.0 - target_pct) / 100.0;
        let used = s.down_minutes;
        let used_pct = if allowed > 0.0 {
            100.0 * used / allowed
        } else if used > 0.0 {
            100.0
        } else {
            0.0
        };
        Budget { target_pct, allowed_minutes: allowed, used_minutes: used, left_minutes: allowed - used, used_pct }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    const T0: OffsetDateTime = datetime!(2026-11-01 00:00 UTC);

    fn m(minutes: i64) -> OffsetDateTime {
        T0 + Duration::minutes(minutes)
    }

    fn seg(status: &str, from: i64, to: Option<i64>, last: i64, ttl: i32) -> Segment {
        Segment {
            status: status.into(),
            started_at: m(from),
            ended_at: to.map(m),
            last_report_at: m(last),
            ttl_seconds: ttl,
        }
    }

    fn span(from: i64, to: i64) -> Span {
        Span { from: m(from), to: m(to) }
    }

    fn minutes(f: &Figures) -> (f64, f64, f64, f64, f64) {
        (f.up / 60.0, f.down / 60.0, f.degraded / 60.0, f.maintenance / 60.0, f.unknown / 60.0)
    }

    /// 0–10 nothing yet; 10–40 ok; 40–60 failed; 60–80 degraded; 80–100 ok, then stale from 110
    /// (ttl 10 min after the last report at 100); a window 30–50 over the failure.
    fn day() -> Vec<Segment> {
        vec![
            seg("ok", 10, Some(40), 40, 600),
            seg("failed", 40, Some(60), 60, 600),
            seg("degraded", 60, Some(80), 80, 600),
            seg("ok", 80, None, 100, 600),
        ]
    }

    #[test]
    fn given_the_default_policy_then_maintenance_is_excluded_degraded_is_up_and_stale_is_neither() {
        let segments = day();
        let input = Input { segments: &segments, maintenance: vec![span(30, 50)], outages: vec![] };
        let f = component(&input, &Policy::default(), m(0), m(120));
        // up: ok 10–30, degraded 60–80, ok 80–110; down: failed 50–60 (40–50 is in the window);
        // unknown: 0–10 before the first report, and stale 110–120.
        assert_eq!(minutes(&f), (20.0 + 20.0 + 30.0, 10.0, 20.0, 20.0, 10.0 + 10.0));
        assert_eq!(f.up + f.down + f.maintenance + f.unknown, 120.0 * 60.0, "every instant counted once");
        assert_eq!(f.incidents, [Incident { from: m(50), to: m(60), cause: "failed".into(), outage: None }]);
        assert_eq!(format!("{:.3}", f.availability().unwrap()), "87.500");
    }

    #[test]
    fn given_a_stricter_policy_then_the_same_log_gives_the_figures_again_differently() {
        let segments = day();
        let input = Input {
            segments: &segments,
            maintenance: vec![span(30, 50)],
            outages: vec![
                Outage { id: "sched".into(), severity: "major".into(), span: span(85, 90) },
                Outage { id: "slow".into(), severity: "minor".into(), span: span(90, 95) },
            ],
        };
        let policy = Policy {
            version: "2".into(),
            degraded_as_down: 0.5,
            stale_as_down: true,
            outage_severities: vec!["major".into()],
        };
        let f = component(&input, &policy, m(0), m(120));
        // down: failed 50–60 (10), half of degraded 60–80 (10), the major outage 85–90 (5),
        // stale 110–120 (10); up: ok 10–30 (20), half degraded (10), ok 80–85 and 90–110 (25).
        assert_eq!(minutes(&f), (55.0, 35.0, 20.0, 20.0, 10.0));
        let causes: Vec<(&str, i64)> =
            f.incidents.iter().map(|i| (i.cause.as_str(), (i.to - i.from).whole_minutes())).collect();
        assert_eq!(causes, [("failed", 10), ("outage", 5), ("stale", 10)]);
        assert_eq!(f.incidents[1].outage.as_deref(), Some("sched"), "an outage's incident names it");
        assert!(policy.describe().iter().any(|l| l == "DEGRADED counts 50 % as down."));
    }

    #[test]
    fn a_group_has_the_mean_of_its_components_minutes_and_its_merged_incidents() {
        let down = [seg("failed", 0, Some(100), 100, 600), seg("ok", 100, None, 200, 6000)];
        let up = [seg("ok", 0, None, 200, 6000)];
        let mut figures =
            vec![component(&Input { segments: &down, ..Input::default() }, &Policy::default(), m(0), m(200))];
        for _ in 0..99 {
            figures.push(component(&Input { segments: &up, ..Input::default() }, &Policy::default(), m(0), m(200)));
        }
        let s = Summary::of(&figures);
        assert_eq!((s.components, s.down_minutes, s.incidents), (100, 1.0, 1));
        assert_eq!(format!("{:.1}", s.availability_pct.unwrap()), "99.5");
        assert_eq!(s.mttr_minutes, Some(100.0));
        let b = Budget::of(99.0, &s);
        assert_eq!((b.allowed_minutes, b.used_minutes, b.left_minutes, b.used_pct), (2.0, 1.0, 1.0, 50.0));
    }

    #[test]
    fn nothing_counted_is_no_availability_not_zero() {
        let f = component(&Input::default(), &Policy::default(), m(0), m(60));
        assert_eq!((f.availability(), f.unknown), (None, 3600.0));
        assert_eq!(Summary::of(&[]).availability_pct, None);
    }

    #[test]
    fn a_policy_is_read_from_its_table_and_mistakes_name_the_key() {
        let spec: PolicySpec =
            toml::from_str("version = \"2026-12\"\ndegraded = 0.25\nstale = \"down\"\noutages = [\"critical\"]")
                .unwrap();
        let p = Policy::from_spec(&spec).unwrap();
        assert_eq!((p.degraded_as_down, p.stale_as_down, p.outage_severities.len()), (0.25, true, 1));
        for (text, key) in [
            ("degraded = \"sometimes\"", "sla.degraded"),
            ("degraded = 2.0", "sla.degraded"),
            ("stale = \"up\"", "sla.stale"),
            ("outages = [\"huge\"]", "sla.outages"),
            ("target = 100.0", "sla.target"),
        ] {
            let spec: PolicySpec = toml::from_str(text).unwrap();
            let err = Policy::from_spec(&spec).unwrap_err();
            assert!(err.starts_with(key), "{text}: {err}");
        }
        assert!(toml::from_str::<PolicySpec>("stael = \"down\"").is_err(), "unknown keys are refused");
    }
}
