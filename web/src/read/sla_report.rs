//! The monthly SLA report: availability per system, per public group and, on request, per
//! component, under the policy in `status.toml` (`[sla]`), with maintenance excluded. Computed
//! from segments, maintenance windows and outages each time it is asked for, so a changed policy
//! gives new figures for any past month. One [`Report`] is rendered as HTML, CSV, JSON and PDF
//! (`pages::report`, `pages::report::pdf`, `sitrep report sla`), so every form shows the same
//! figures.

use crate::read::public::PublicConfig;
use anyhow::Context;
use deadpool_postgres::Pool;
use serde::Serialize;
use sitrep_projections::sla::{self, Budget, Figures, Summary};
use time::{Date, Duration, Month, OffsetDateTime};

/// How many of the longest incidents each system lists.
pub const LONGEST_SHOWN: usize = 5;

/// A calendar month, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportMonth {
    pub first: Date,
}

impl ReportMonth {
    /// `2026-11`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bad = || format!("{raw:?} is not a month such as 2026-11");
        let (y, m) = raw.trim().split_once('-').ok_or_else(bad)?;
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u8 = m.parse().map_err(|_| bad())?;
        let month = Month::try_from(month).map_err(|_| bad())?;
        let first = Date::from_calendar_date(year, month, 1).map_err(|_| bad())?;
        Ok(Self { first })
    }

    /// The month holding `t`.
    pub fn of(t: OffsetDateTime) -> Self {
        Self { first: t.date().replace_day(1).expect("day 1 exists") }
    }

    pub fn previous(self) -> Self {
        Self::of((self.first.midnight().assume_utc()) - Duration::days(1))
    }

    pub fn start(self) -> OffsetDateTime {
        self.first.midnight().assume_utc()
    }

    pub fn end(self) -> OffsetDateTime {
        let next = self.first.month().next();
        let year = if next == Month::January { self.first.year() + 1 } else { self.first.year() };
        Date::from_calendar_date(year, next, 1).expect("day 1 exists").midnight().assume_utc()
    }

    /// The month, if it has begun by `now`.
    pub fn begun(self, now: OffsetDateTime) -> Result<Self, String> {
        if self.start() > now {
            Err(format!("{} has not begun yet", self.label()))
        } else {
            Ok(self)
        }
    }

    pub fn label(self) -> String {
        format!("{}-{:02}", self.first.year(), u8::from(self.first.month()))
    }
}

/// One line of figures: a system, a group or a component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Percent, to three decimals; null when no time was counted.
    pub availability_pct: Option<f64>,
    pub down_minutes: f64,
    pub degraded_minutes: f64,
    pub maintenance_minutes: f64,
    pub unknown_minutes: f64,
    pub incidents: usize,
    pub mttr_minutes: Option<f64>,
    pub mtbf_minutes: Option<f64>,
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

impl Row {
    fn of(s: &Summary) -> Self {
        Row {
            availability_pct: s.availability_pct.map(|p| round(p, 3)),
            down_minutes: round(s.down_minutes, 1),
            degraded_minutes: round(s.degraded_minutes, 1),
            maintenance_minutes: round(s.maintenance_minutes, 1),
            unknown_minutes: round(s.unknown_minutes, 1),
            incidents: s.incidents,
            mttr_minutes: s.mttr_minutes.map(|v| round(v, 1)),
            mtbf_minutes: s.mtbf_minutes.map(|v| round(v, 1)),
        }
    }

    /// `99.512 %`, or `no data`.
    pub fn availability_text(&self) -> String {
        self.availability_pct.map_or_else(|| "no data".to_owned(), |p| format!("{p:.3} %"))
    }
}

/// The error budget against an objective, rounded like the rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetRow {
    pub target_pct: f64,
    pub allowed_minutes: f64,
    pub used_minutes: f64,
    pub left_minutes: f64,
    pub used_pct: f64,
    pub met: bool,
}

impl BudgetRow {
    fn of(b: &Budget, availability: Option<f64>) -> Self {
        BudgetRow {
            target_pct: b.target_pct,
            allowed_minutes: round(b.allowed_minutes, 1),
            used_minutes: round(b.used_minutes, 1),
            left_minutes: round(b.left_minutes, 1),
            used_pct: round(b.used_pct, 1),
            met: availability.is_none_or(|a| a >= b.target_pct),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group: String,
    #[serde(flatten)]
    pub row: Row,
    pub budget: BudgetRow,
    pub availability_text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentReport {
    pub component: String,
    #[serde(flatten)]
    pub row: Row,
    pub availability_text: String,
}

/// One of the longest incidents, with where its evidence is.
#[derive(Debug, Clone, Serialize)]
pub struct Longest {
    pub component: String,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub minutes: f64,
    /// failed, outage, stale or degraded.
    pub cause: String,
    /// Where it is shown to have begun: the declared outage's page for an outage, else the
    /// report that began it in the event log (`/events/{position}`), if found.
    pub evidence: Option<String>,
    /// The component page at that moment.
    pub at_url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Day {
    pub date: String,
    pub availability_pct: Option<f64>,
    /// `ok` at or above the system's objective, `degraded` below it down to 90 %, `failed`
    /// below that, `unknown` with nothing counted: the colour of the day in the chart.
    pub band: &'static str,
}

fn band(availability: Option<f64>, target: f64) -> &'static str {
    match availability {
        None => "unknown",
        Some(a) if a >= target => "ok",
        Some(a) if a >= 90.0 => "degraded",
        Some(_) => "failed",
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SystemReport {
    pub system: String,
    #[serde(flatten)]
    pub row: Row,
    pub availability_text: String,
    pub budget: BudgetRow,
    pub groups: Vec<GroupReport>,
    /// Every component when asked for, else empty.
    pub components: Vec<ComponentReport>,
    pub longest: Vec<Longest>,
    pub daily: Vec<Day>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    pub version: String,
    pub degraded_as_down: f64,
    pub stale_as_down: bool,
    pub outage_severities: Vec<String>,
    pub maintenance: &'static str,
    /// The policy in words.
    pub text: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub month: String,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// The month's end, or the time the report was made while the month is not over.
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub policy: PolicyView,
    pub systems: Vec<SystemReport>,
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct Request {
    pub month: ReportMonth,
    pub system: Option<String>,
    pub components: bool,
}

/// The systems with any status time in `[from, to)`.
pub async fn systems(pool: &Pool, from: OffsetDateTime, to: OffsetDateTime) -> anyhow::Result<Vec<String>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT DISTINCT system FROM status_segments
             WHERE started_at < $2 AND (ended_at IS NULL OR ended_at > $1) ORDER BY system",
            &[&from, &to],
        )
        .await
        .context("reading status_segments")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The position of the report that began an incident: the component's latest report observed
/// at or before its start.
async fn evidence(pool: &Pool, system: &str, component: &str, at: OffsetDateTime) -> anyhow::Result<Option<i64>> {
    let (Ok(s), Ok(c)) =
        (sitrep_domain::SystemName::parse(system), sitrep_domain::ComponentName::parse_stored(component))
    else {
        return Ok(None);
    };
    let id = sitrep_domain::component_aggregate_id(&s, &c);
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(
            "SELECT position FROM events WHERE aggregate_id = $1 AND observed_at <= $2
             ORDER BY observed_at DESC, position DESC LIMIT 1",
            &[&id, &at],
        )
        .await
        .context("reading the event log")?;
    Ok(row.map(|r| r.get(0)))
}

/// Computes the report. `now` ends a month that is not over yet.
pub async fn build(pool: &Pool, config: &PublicConfig, req: &Request, now: OffsetDateTime) -> anyhow::Result<Report> {
    let from = req.month.start();
    // A month not over yet is counted up to now, to the second.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let to = req.month.end().min(now);
    let policy = &config.policy;
    // Only systems with status time in the month: an unknown name gives none, not zeros.
    let mut names = if to > from { systems(pool, from, to).await? } else { vec![] };
    if let Some(s) = &req.system {
        names.retain(|n| n == s);
    }
    let mut systems = Vec::new();
    for system in names {
        let facts = crate::read::sla::system_facts(pool, &system, from, to).await?;
        let mut components: Vec<&String> = facts.segments.keys().collect();
        components.sort();
        let figures: Vec<(&String, Figures)> =
            components.iter().map(|c| (*c, sla::component(&facts.input(c), policy, from, to))).collect();
        let summary = Summary::of(figures.iter().map(|(_, f)| f));
        let row = Row::of(&summary);
        let budget = BudgetRow::of(&Budget::of(config.target, &summary), summary.availability_pct);
        let groups = config
            .groups_of(&system)
            .map(|g| {
                let s = Summary::of(figures.iter().filter(|(c, _)| g.includes(&system, c)).map(|(_, f)| f));
                let row = Row::of(&s);
                GroupReport {
                    group: g.name.clone(),
                    availability_text: row.availability_text(),
                    budget: BudgetRow::of(&Budget::of(config.target_of(Some(g)), &s), s.availability_pct),
                    row,
                }
            })
            .collect();
        let mut incidents: Vec<(&String, &sla::Incident)> =
            figures.iter().flat_map(|(c, f)| f.incidents.iter().map(move |i| (*c, i))).collect();
        incidents.sort_by(|a, b| b.1.seconds().total_cmp(&a.1.seconds()).then(a.1.from.cmp(&b.1.from)));
        let mut longest = Vec::new();
        for (c, i) in incidents.into_iter().take(LONGEST_SHOWN) {
            // An outage's incident: the outage's own page; any other: the report that began it.
            let evidence = match &i.outage {
                Some(id) => Some(format!("/systems/{system}/outages/{id}")),
                None => evidence(pool, &system, c, i.from).await?.map(|p| format!("/events/{p}")),
            };
            longest.push(Longest {
                component: c.clone(),
                from: i.from,
                to: i.to,
                minutes: round(i.seconds() / 60.0, 1),
                cause: i.cause.clone(),
                evidence,
                at_url: format!(
                    "/systems/{system}/components/{c}?at={}",
                    crate::view::age(i.from, i.from, false).iso.replace('+', "%2B")
                ),
            });
        }
        let mut daily = Vec::new();
        let mut day = from;
        while day < to {
            let end = (day + Duration::DAY).min(to);
            let s = Summary::of(
                components.iter().map(|c| sla::component(&facts.input(c), policy, day, end)).collect::<Vec<_>>().iter(),
            );
            let availability_pct = s.availability_pct.map(|p| round(p, 3));
            daily.push(Day {
                date: day.date().to_string(),
                availability_pct,
                band: band(availability_pct, config.target),
            });
            day = end;
        }
        systems.push(SystemReport {
            availability_text: row.availability_text(),
            row,
            budget,
            groups,
            components: if req.components {
                figures
                    .iter()
                    .map(|(c, f)| {
                        let row = Row::of(&Summary::of([f]));
                        ComponentReport { component: (*c).clone(), availability_text: row.availability_text(), row }
                    })
                    .collect()
            } else {
                vec![]
            },
            longest,
            daily,
            system,
        });
    }
    Ok(Report {
        month: req.month.label(),
        from,
        to,
        policy: PolicyView {
            version: policy.version.clone(),
            degraded_as_down: policy.degraded_as_down,
            stale_as_down: policy.stale_as_down,
            outage_severities: policy.outage_severities.clone(),
            maintenance: "excluded",
            text: policy.describe(),
        },
        systems,
    })
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The report as CSV: one line per system, group and (when asked for) component.
pub fn csv(report: &Report) -> String {
    let mut out = String::from(
        "month,policy_version,system,group,component,availability_pct,down_minutes,degraded_minutes,\
         maintenance_minutes,unknown_minutes,incidents,mttr_minutes,mtbf_minutes,target_pct,budget_left_minutes\n",
    );
    let field = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut line = |system: &str, group: &str, component: &str, r: &Row, budget: Option<&BudgetRow>| {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            report.month,
            field(&report.policy.version),
            field(system),
            field(group),
            field(component),
            opt(r.availability_pct),
            r.down_minutes,
            r.degraded_minutes,
            r.maintenance_minutes,
            r.unknown_minutes,
            r.incidents,
            opt(r.mttr_minutes),
            opt(r.mtbf_minutes),
            budget.map(|b| b.target_pct.to_string()).unwrap_or_default(),
            budget.map(|b| b.left_minutes.to_string()).unwrap_or_default(),
        ));
    };
    for s in &report.systems {
        line(&s.system, "", "", &s.row, Some(&s.budget));
        for g in &s.groups {
            line(&s.system, &g.group, "", &g.row, Some(&g.budget));
        }
        for c in &s.components {
            line(&s.system, "", &c.component, &c.row, None);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_bound_their_days() {
        let m = ReportMonth::parse("2026-11").unwrap();
        assert_eq!(
            (m.start().to_string(), m.end().to_string()),
            ("2026-11-01 0:00:00.0 +00:00:00".to_owned(), "2026-12-01 0:00:00.0 +00:00:00".to_owned())
        );
        assert_eq!(ReportMonth::parse("2026-12").unwrap().end().year(), 2027);
        assert_eq!(ReportMonth::parse("2026-01").unwrap().previous().label(), "2025-12");
        for bad in ["2026-13", "2026", "november", "2026-1x"] {
            assert!(ReportMonth::parse(bad).unwrap_err().contains("not a month"), "{bad}");
        }
    }
}
