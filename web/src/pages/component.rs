//! `/systems/{system}/components/{component}`: one component's state, its charts, status
//! timeline and uptime over 24 h, 7 d or 30 d, and its last 50 reports; now or at `?at=`.

use crate::read::history::{self, PastReport, Scope, Source, Window};
use crate::read::queries::{self, ComponentState};
use crate::state::AppState;
use crate::view::chart::{self, Chart, Timeline};
use crate::view::error::{Format, WebError};
use crate::view::layout::{render, Hidden, Layout};
use crate::view::params;
use crate::view::uptime::RANGES;
use crate::view::uptime::{self, Uptime};
use crate::view::{self, Age, Badge, MetricView, Shown};
use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde::{Deserialize, Serialize};
use sitrep_projections::timeline::Segment;
use time::{Duration, OffsetDateTime};

/// Reports listed at the bottom of the page.
pub const REPORTS_SHOWN: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ComponentQuery {
    pub at: Option<String>,
    pub range: Option<String>,
}

/// The component page's view model.
#[derive(Debug, Serialize)]
pub struct ComponentPage {
    pub layout: Layout,
    pub system: String,
    /// The systems overview, at the same instant.
    pub home_url: String,
    pub system_url: String,
    pub component: String,
    /// The component's state at the instant shown; `None` if it had not reported yet.
    pub current: Option<Current>,
    pub ranges: Vec<RangeLink>,
    pub range_label: &'static str,
    pub timeline: Timeline,
    pub charts: Vec<Chart>,
    /// Where the charts' points come from, in words.
    pub resolution_note: String,
    pub uptime: Vec<UptimeCell>,
    pub how_counted: &'static str,
    pub reports: Vec<ReportRow>,
    pub reports_limit: i64,
    pub json_url: String,
    pub csv_url: String,
    pub uptime_url: String,
}

#[derive(Debug, Serialize)]
pub struct Current {
    pub badge: Badge,
    pub message: String,
    pub metrics: Vec<MetricView>,
    pub labels: Vec<Label>,
    pub age: Age,
    pub since: Age,
}

#[derive(Debug, Serialize)]
pub struct Label {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct RangeLink {
    pub label: &'static str,
    pub url: String,
    pub current: bool,
}

#[derive(Debug, Serialize)]
pub struct UptimeCell {
    pub label: &'static str,
    pub text: String,
    pub up: String,
    pub down: String,
    pub maintenance: String,
    pub not_counted: String,
}

#[derive(Debug, Serialize)]
pub struct ReportRow {
    pub age: Age,
    pub badge: Badge,
    pub message: String,
    pub metrics: Vec<MetricView>,
    pub late: bool,
}

/// Everything the page shows, read before it is laid out.
pub struct Facts {
    pub system: String,
    pub component: String,
    pub current: Option<ComponentState>,
    pub range: usize,
    /// Segments overlapping the last 30 days before the instant shown.
    pub segments: Vec<Segment>,
    /// Maintenance windows and reservations that named it in those 30 days.
    pub maintenance: Vec<sitrep_projections::sla::Span>,
    pub series: Vec<history::Series>,
    pub window: Window,
    pub reports: Vec<PastReport>,
}

pub fn component_page(state: &AppState, now: OffsetDateTime, at: Option<OffsetDateTime>, f: Facts) -> ComponentPage {
    let end = at.unwrap_or(now);
    let (range_key, range_label, _) = RANGES[f.range];
    let (from, step) = (f.window.from, f.window.step);
    let base = format!("/systems/{}/components/{}", f.system, f.component);
    let live_url = |range: &str| if range == "24h" { base.clone() } else { format!("{base}?range={range}") };
    let with = |range: &str| {
        let url = live_url(range);
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{}", params::at_suffix(at, sep))
    };
    let now_url = live_url(range_key);
    let mut charts: Vec<Chart> = f.series.iter().map(|s| chart::chart(&s.metric, &s.points, from, end, step)).collect();
    if let Some(c) = &f.current {
        for name in c.metrics.keys() {
            if !f.series.iter().any(|s| &s.metric == name) {
                charts.push(chart::chart(name, &[], from, end, step));
            }
        }
    }
    charts.sort_by(|a, b| (a.unit != "%").cmp(&(b.unit != "%")).then_with(|| a.metric.cmp(&b.metric)));
    let hidden = if range_key == "24h" { vec![] } else { vec![Hidden { name: "range", value: range_key.into() }] };
    let api_range = format!(
        "?from={}&to={}",
        view::age(from, now, false).iso.replace('+', "%2B"),
        view::age(end, now, false).iso.replace('+', "%2B")
    );
    ComponentPage {
        layout: Layout::travelling(f.component.clone(), "systems", now, at, now_url, hidden),
        home_url: format!("/{}", params::at_suffix(at, '?')),
        system_url: format!("/systems/{}{}", f.system, params::at_suffix(at, '?')),
        current: f.current.as_ref().map(|c| current(state, end, c)),
        ranges: RANGES
            .iter()
            .enumerate()
            .map(|(i, (key, label, _))| RangeLink { label, url: with(key), current: i == f.range })
            .collect(),
        range_label,
        timeline: chart::timeline(&uptime::stretches(&f.segments, from, end), from, end),
        charts,
        resolution_note: match f.window.source {
            Source::Raw => format!("Every report, in {} steps.", view::span(step)),
            Source::Rollup(r) => format!("From {}ly rollups, in {} steps.", r.as_str(), view::span(step)),
        },
        uptime: RANGES
            .iter()
            .map(|(_, label, window)| {
                let u = Uptime::within(&f.segments, &f.maintenance, end - *window, end);
                UptimeCell {
                    label,
                    text: u.text(),
                    up: view::span(Duration::seconds_f64(u.up)),
                    down: view::span(Duration::seconds_f64(u.down)),
                    maintenance: view::span(Duration::seconds_f64(u.maintenance)),
                    not_counted: view::span(Duration::seconds_f64(u.not_counted)),
                }
            })
            .collect(),
        how_counted: uptime::HOW_COUNTED,
        reports: f
            .reports
            .iter()
            .map(|r| {
                let c = &r.state;
                ReportRow {
                    age: view::age(c.observed_at, end, false),
                    badge: Shown::of(c.status, false).badge(),
                    message: c.message.clone().unwrap_or_default(),
                    metrics: view::metrics(&c.metrics),
                    late: r.late,
                }
            })
            .collect(),
        reports_limit: REPORTS_SHOWN,
        json_url: format!("/api/v1/history/{}/{}{api_range}", f.system, f.component),
        csv_url: format!("/api/v1/history/{}/{}.csv{api_range}", f.system, f.component),
        uptime_url: format!("/api/v1/uptime/{}{}", f.system, params::at_suffix(at, '?')),
        system: f.system,
        component: f.component,
    }
}

fn current(state: &AppState, end: OffsetDateTime, c: &ComponentState) -> Current {
    let ttl = c.ttl_seconds.unwrap_or(state.default_ttl_seconds);
    let stale = view::is_stale(c.observed_at, ttl, end);
    Current {
        badge: Shown::of(c.status, stale).badge(),
        message: c.message.clone().unwrap_or_default(),
        metrics: view::metrics(&c.metrics),
        labels: c
            .labels
            .iter()
            .map(|(k, v)| Label {
                name: k.clone(),
                value: v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()),
            })
            .collect(),
        age: view::age(c.observed_at, end, stale),
        since: view::age(c.status_since, end, false),
    }
}

#[tracing::instrument(skip_all, fields(system = %system, component = %component))]
pub async fn page(
    State(state): State<AppState>,
    Path((system, component)): Path<(String, String)>,
    Query(q): Query<ComponentQuery>,
) -> Result<Html<String>, WebError> {
    let now = state.now();
    let at = params::AtQuery { at: q.at.clone() }.resolve(Format::Html, now)?;
    let range = match q.range.as_deref().unwrap_or("24h") {
        "" => 0,
        r => RANGES.iter().position(|(key, _, _)| *key == r).ok_or_else(|| {
            WebError::bad_request(Format::Html, "range", format!("{r:?} is not a range; use 24h, 7d or 30d"))
        })?,
    };
    let pool = &state.pool;
    let Some(live) = queries::component(pool, &system, &component).await.map_err(WebError::page)? else {
        return Err(WebError::no_component_reports(Format::Html, &system, &component, &state.subject_prefix));
    };
    let end = at.unwrap_or(now);
    let current = match at {
        None => Some(live),
        Some(at) => {
            history::state_at(pool, Scope::Component(&system, &component), at).await.map_err(WebError::page)?.pop()
        }
    };
    let archived = history::archived_until(pool).await.map_err(WebError::page)?;
    let window = Window::new(end - RANGES[range].2, end, None, now, state.kept, archived);
    let series = history::series(pool, &system, &component, None, window).await.map_err(WebError::page)?;
    let segments = history::segments(pool, &system, Some(&component), end - RANGES[2].2, end)
        .await
        .map_err(WebError::page)?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let maintenance = crate::read::sla::maintenance(pool, &system, Some(&component), end - RANGES[2].2, end)
        .await
        .map_err(WebError::page)?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let reports =
        history::recent_reports(pool, &system, &component, end, REPORTS_SHOWN).await.map_err(WebError::page)?;
    let facts = Facts { system, component, current, range, segments, maintenance, series, window, reports };
    let mut page = component_page(&state, now, at, facts);
    // The archive's end, read once above for the chart, also decides the banner.
    page.layout = page.layout.archived(at, archived);
    render("component", &page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::home::tests::{component, state, NOW};
    use crate::view::chart::Point;
    use crate::view::templates;
    use serde_json::json;
    use sitrep_domain::Status;

    fn facts(range: usize) -> Facts {
        let current = component("derecho", "fs/glade", Status::Degraded, 30, json!({"used_pct": 93.5, "inodes": 12}));
        let at = |h: i64| NOW - Duration::hours(h);
        let point = |h: i64, v: f64| Point { t: at(h), min: v - 2.0, max: v + 2.0, avg: v, last: v, count: 12 };
        Facts {
            system: "derecho".into(),
            component: "fs/glade".into(),
            segments: vec![
                Segment {
                    status: "ok".into(),
                    started_at: at(30),
                    ended_at: Some(at(6)),
                    last_report_at: at(6),
                    ttl_seconds: 600,
                },
                Segment {
                    status: "degraded".into(),
                    started_at: at(6),
                    ended_at: None,
                    last_report_at: NOW - Duration::seconds(30),
                    ttl_seconds: 600,
                },
            ],
            maintenance: vec![],
            series: vec![history::Series {
                metric: "used_pct".into(),
                points: (1..20).map(|h| point(h, 80.0)).collect(),
            }],
            window: Window {
                from: NOW - RANGES[range].2,
                to: NOW,
                source: Source::Raw,
                step: Duration::minutes(5),
                raw_from: NOW - Duration::days(7),
            },
            reports: vec![PastReport { state: current.clone(), late: true }],
            current: Some(current),
            range,
        }
    }

    #[test]
    fn the_component_page_renders_charts_timeline_uptime_and_reports() {
        let html = templates::render("component", &component_page(&state(), NOW, None, facts(0))).unwrap();
        for needle in [
            "<svg viewBox=\"0 0 720 180\"",
            "<polyline class=\"line\"",
            "<rect class=\"seg s-degraded\"",
            "DEGRADED from 2026-11-22 04:00:00 UTC to 2026-11-22 10:00:00 UTC (6 h)",
            "No data in this window.",
            "<strong>100 %</strong>",
            "Uptime is the time reported OK or DEGRADED",
            "/api/v1/history/derecho/fs/glade.csv?from&#x3D;2026-11-21T10:00:00Z&amp;to&#x3D;2026-11-22T10:00:00Z",
            "Every report, in 5 min steps.",
            ">late</span>",
            "aria-current=\"true\">24 h</a>",
        ] {
            assert!(html.contains(needle), "lacks {needle}");
        }
        assert!(html.find("used_pct").unwrap() < html.find("inodes").unwrap(), "percentages first");
        assert!(!html.contains("<b>"), "collector text is escaped");
    }

    #[test]
    fn the_component_page_renders_in_the_past_with_nothing_reported_yet() {
        let mut f = facts(2);
        f.current = None;
        f.series.clear();
        f.segments.clear();
        f.reports.clear();
        let at = NOW - Duration::days(40);
        let html = templates::render("component", &component_page(&state(), NOW, Some(at), f)).unwrap();
        assert!(html.contains("had not reported yet at this time"));
        assert!(html.contains("No status reported in this window.") && html.contains("No reports kept for this time."));
        assert!(html.contains("<strong>no data</strong>"));
        assert!(
            html.contains("travel-banner")
                && html.contains("href=\"/systems/derecho/components/fs/glade?range&#x3D;30d\">Back to now")
        );
        assert!(html.contains("name=\"range\" value=\"30d\""), "the form keeps the window");
    }
}
