//! `/alerts/rules/backtest` (operators): candidate rules run over the stored log, as
//! `sitrep rules backtest` does, from a form prefilled with the rules file in force. The result
//! is the same report, with a timeline per component of the alerts the candidate would have
//! raised beside those the rules in force raised. Nothing is written or published.

use crate::guard::auth::Viewer;
use crate::state::AppState;
use crate::view::chart::{self, Timeline};
use crate::view::error::{Format, WebError};
use crate::view::layout::{render, Layout};
use crate::view::{self, uptime::Stretch};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse};
use axum::Form;
use serde::{Deserialize, Serialize};
use sitrep_domain::alert::RuleSet;
use sitrep_infra::auth::Role;
use sitrep_projections::backtest::BacktestReport;
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// The longest range the page backtests (the command has no limit).
pub const MOST_DAYS: i64 = 31;
/// Components shown with a timeline, those with most would-be alerts first.
const TIMELINES: usize = 50;

#[derive(Debug, Serialize)]
pub struct ComponentTimeline {
    pub component: String,
    pub would: Timeline,
    pub actual: Timeline,
}

#[derive(Debug, Serialize)]
pub struct BacktestPage {
    pub layout: Layout,
    pub rules: String,
    pub from: String,
    pub to: String,
    pub error: Option<String>,
    pub report: Option<BacktestReport>,
    pub counts: Counts,
    pub timelines: Vec<ComponentTimeline>,
    pub more_components: usize,
    pub most_days: i64,
}

/// How many of each the report has.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub alerts: usize,
    pub actual: usize,
    pub new: usize,
    pub gone: usize,
    pub earlier: usize,
    pub later: usize,
}

#[derive(Debug, Deserialize)]
pub struct BacktestForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub rules: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

fn input(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    t.format(&fmt).unwrap_or_default()
}

fn parse_input(raw: &str, field: &str) -> Result<OffsetDateTime, String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    if let Ok(t) = OffsetDateTime::parse(raw.trim(), &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    PrimitiveDateTime::parse(raw.trim(), &fmt)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|_| format!("{field}: {raw:?} is not a time such as 2026-11-30T00:00 (UTC)"))
}

fn page(state: &AppState, rules: String, from: OffsetDateTime, to: OffsetDateTime) -> BacktestPage {
    BacktestPage {
        layout: Layout::still("Backtest rules", "alerts", state.now()),
        rules,
        from: input(from),
        to: input(to),
        error: None,
        report: None,
        counts: Counts::default(),
        timelines: vec![],
        more_components: 0,
        most_days: MOST_DAYS,
    }
}

/// `GET /alerts/rules/backtest`: the form, with the rules file this process read and the last week.
pub async fn form(State(state): State<AppState>, viewer: Viewer) -> Result<Html<String>, WebError> {
    viewer.require(Role::Operator, Format::Html)?;
    let now = state.now();
    render("alert_backtest", &page(&state, state.rules_text.to_string(), now - Duration::days(7), now))
}

/// One row of the timeline: the alerts of one component as stretches, coloured by severity.
fn row(
    spans: &[(OffsetDateTime, Option<OffsetDateTime>, &str, String)],
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Timeline {
    let stretches: Vec<Stretch> = spans
        .iter()
        .map(|(a, b, severity, _)| Stretch {
            status: match *severity {
                "critical" => "failed",
                "warning" => "degraded",
                _ => "unknown",
            }
            .into(),
            from: (*a).max(from),
            to: b.unwrap_or(to).min(to),
        })
        .collect();
    let mut t = chart::timeline(&stretches, from, to);
    for (part, (a, b, _, what)) in t.parts.iter_mut().zip(spans) {
        let until = b.map_or("still firing".to_owned(), |b| format!("to {}", view::utc_text(b)));
        part.title = format!("{what} from {} {until}", view::utc_text(*a));
    }
    t
}

/// `POST /alerts/rules/backtest`: runs the candidate rules and shows what they would have done.
pub async fn run(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<BacktestForm>,
) -> Result<axum::response::Response, WebError> {
    viewer.check_form(&headers, &f.csrf, Role::Operator)?;
    let now = state.now();
    let mut p = page(&state, f.rules.clone(), now - Duration::days(7), now);
    p.from = f.from.clone();
    p.to = f.to.clone();
    let range = parse_input(&f.from, "from").and_then(|from| parse_input(&f.to, "to").map(|to| (from, to)));
    let checked = range.and_then(|(from, to)| {
        if from >= to {
            return Err("from must be before to".to_owned());
        }
        if to - from > Duration::days(MOST_DAYS) {
            return Err(format!("the page backtests at most {MOST_DAYS} days; `sitrep rules backtest` has no limit"));
        }
        let rules = RuleSet::parse_toml(&f.rules, state.default_ttl_seconds.into()).map_err(|e| e.to_string())?;
        Ok((rules, from, to))
    });
    let (rules, from, to) = match checked {
        Ok(ok) => ok,
        Err(e) => {
            p.error = Some(e);
            let html = render("alert_backtest", &p)?;
            return Ok((axum::http::StatusCode::BAD_REQUEST, html).into_response());
        }
    };
    let report = sitrep_projections::backtest::run(&state.pool, rules, from, to).await.map_err(WebError::page)?;
    // A timeline per component: would-be alerts above, the rules in force's below.
    let mut by_component: BTreeMap<String, (Vec<_>, Vec<_>)> = BTreeMap::new();
    for a in &report.alerts {
        let what = format!("would raise {} ({})", a.rule, a.severity);
        by_component.entry(format!("{}:{}", a.system, a.component)).or_default().0.push((
            a.raised_at,
            a.resolved_at,
            a.severity.as_str(),
            what,
        ));
    }
    for a in &report.actual {
        let what = format!("raised {} ({})", a.rule, a.severity);
        by_component.entry(format!("{}:{}", a.system, a.component)).or_default().1.push((
            a.raised_at,
            a.resolved_at,
            a.severity.as_str(),
            what,
        ));
    }
    let mut rows: Vec<(String, (Vec<_>, Vec<_>))> = by_component.into_iter().collect();
    rows.sort_by(|a, b| (b.1 .0.len() + b.1 .1.len()).cmp(&(a.1 .0.len() + a.1 .1.len())).then(a.0.cmp(&b.0)));
    p.more_components = rows.len().saturating_sub(TIMELINES);
    p.timelines = rows
        .into_iter()
        .take(TIMELINES)
        .map(|(component, (would, actual))| ComponentTimeline {
            component,
            would: row(&would, from, to),
            actual: row(&actual, from, to),
        })
        .collect();
    let d = &report.difference;
    p.counts = Counts {
        alerts: report.alerts.len(),
        actual: report.actual.len(),
        new: d.new.len(),
        gone: d.gone.len(),
        earlier: d.earlier.len(),
        later: d.later.len(),
    };
    p.report = Some(report);
    Ok(render("alert_backtest", &p)?.into_response())
}
