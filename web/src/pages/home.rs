//! The HTML pages. Each page has one view-model struct, built here and rendered by the template
//! of the same name; templates hold no logic beyond loops and conditionals.

use crate::read::alerts::Firing;
use crate::read::history;
use crate::read::history::Scope;
use crate::read::notices::{Notices, OutageView, WindowView};
use crate::read::queries::{self, ComponentState};
use crate::state::AppState;
use crate::view::chart;
use crate::view::error::{Format, WebError};
use crate::view::layout::{render, Layout};
use crate::view::params;
use crate::view::params::AtQuery;
use crate::view::templates::{self, LivePage};
use crate::view::{self, Age, Badge, MetricView, Shown};
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Html;
use bytes::Bytes;
use serde::Serialize;
use sitrep_infra::quarantine;
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;

/// Problems listed on a system tile before "and N more".
const TILE_PROBLEMS: usize = 5;

/// A status and how many components have it.
#[derive(Debug, Serialize)]
pub struct Count {
    pub badge: Badge,
    pub count: usize,
}

/// A component as a page sees it: its state plus what the clock says about its age.
pub(crate) struct Seen<'a> {
    pub state: &'a ComponentState,
    pub shown: Shown,
}

pub(crate) fn seen<'a>(
    state: &AppState,
    now: OffsetDateTime,
    components: &'a [ComponentState],
    notices: &Notices,
) -> Vec<Seen<'a>> {
    let mut out: Vec<Seen> = components
        .iter()
        .map(|c| {
            let ttl = c.ttl_seconds.unwrap_or(state.default_ttl_seconds);
            let shown = if notices.in_maintenance(&c.system, &c.component, now) {
                Shown::Maintenance
            } else {
                Shown::of(c.status, view::is_stale(c.observed_at, ttl, now))
            };
            Seen { state: c, shown }
        })
        .collect();
    out.sort_by(|a, b| a.shown.cmp(&b.shown).then_with(|| a.state.component.cmp(&b.state.component)));
    out
}

fn counts<'a>(items: impl Iterator<Item = &'a Seen<'a>>) -> Vec<Count> {
    let mut n: BTreeMap<Shown, usize> = BTreeMap::new();
    for s in items {
        *n.entry(s.shown).or_default() += 1;
    }
    n.into_iter().map(|(shown, count)| Count { badge: shown.badge(), count }).collect()
}

fn worst<'a>(items: impl Iterator<Item = &'a Seen<'a>>) -> Shown {
    items.map(|s| s.shown).min().unwrap_or(Shown::Unknown)
}

// ---------------------------------------------------------------------------------------- home

/// `/`: every system as a tile, worst first.
#[derive(Debug, Serialize)]
pub struct HomePage {
    pub layout: Layout,
    /// Open alerts, all systems.
    pub open_alerts: usize,
    pub systems: Vec<SystemTile>,
    pub totals: Vec<Count>,
    pub component_count: usize,
    /// Example subject for the empty state.
    pub subject_example: String,
}

impl LivePage for HomePage {
    const PAGE: &'static str = "home";
    const LIVE: &'static str = "home_live";
    const FRAME: &'static [&'static str] = &["layout"];
}

#[derive(Debug, Serialize)]
pub struct SystemTile {
    pub name: String,
    pub url: String,
    pub worst: Badge,
    pub counts: Vec<Count>,
    pub component_count: usize,
    pub last_report: Age,
    pub problems: Vec<Problem>,
    pub more_problems: usize,
    /// The system's open alerts, worst first (at most a few; `more_alerts` counts the rest).
    pub alerts: Vec<Firing>,
    pub more_alerts: usize,
    /// The worst outage in force, which sets the tile's badge.
    pub outage: Option<TileOutage>,
}

#[derive(Debug, Serialize)]
pub struct TileOutage {
    pub title: String,
    pub url: String,
}

/// A component that is not OK, named on its system's tile.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub component: String,
    pub badge: Badge,
    pub message: String,
}

/// The home page at `now`, or as it was at `at` (then `components` are the states at `at`).
pub fn home_page(
    state: &AppState,
    now: OffsetDateTime,
    at: Option<OffsetDateTime>,
    components: &[ComponentState],
    open: &TileAlerts,
    notices: &Notices,
) -> HomePage {
    let clock = at.unwrap_or(now);
    let all = seen(state, clock, components, notices);
    let mut by_system: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    for s in &all {
        by_system.entry(s.state.system.as_str()).or_default().push(s);
    }
    let mut tiles: Vec<((u8, Shown), SystemTile)> = by_system
        .into_iter()
        .map(|(name, items)| {
            let worst = worst(items.iter().copied());
            let outage = notices.outage_of(name);
            // An outage outranks what collectors say: critical and major first, minor with degraded.
            let rank = match outage.map(|o| o.severity.as_str()) {
                Some("critical") => 0,
                Some("major") => 1,
                Some(_) if worst > Shown::Degraded => 2,
                _ => 3,
            };
            let newest = items.iter().map(|s| s.state.observed_at).max().unwrap_or(clock);
            let all_stale = items.iter().all(|s| s.shown == Shown::Stale);
            let problems: Vec<&&Seen> =
                items.iter().filter(|s| s.shown != Shown::Ok && s.shown != Shown::Stopped).collect();
            let mut alerts: Vec<Firing> =
                open.worst.iter().filter(|((s, _), _)| s == name).flat_map(|(_, a)| a.iter().cloned()).collect();
            alerts.sort_by_key(|a| (a.impacted, crate::read::alerts::severity_rank(a.severity)));
            alerts.truncate(TILE_PROBLEMS);
            let more_alerts = open.open.get(name).map_or(0, |n| n.saturating_sub(alerts.len()));
            let tile = SystemTile {
                alerts,
                more_alerts,
                name: name.to_owned(),
                url: format!("/systems/{name}{}", params::at_suffix(at, '?')),
                worst: outage
                    .and_then(|o| sitrep_domain::outage::OutageSeverity::parse(&o.severity))
                    .map(view::outage_badge)
                    .unwrap_or_else(|| worst.badge()),
                outage: outage.map(|o| TileOutage {
                    title: o.title.clone(),
                    url: format!("/systems/{}/outages/{}", o.system, o.id),
                }),
                counts: counts(items.iter().copied()),
                component_count: items.len(),
                last_report: view::age(newest, clock, all_stale),
                more_problems: problems.len().saturating_sub(TILE_PROBLEMS),
                problems: problems
                    .iter()
                    .take(TILE_PROBLEMS)
                    .map(|s| Problem {
                        component: s.state.component.clone(),
                        badge: s.shown.badge(),
                        message: s.state.message.clone().unwrap_or_default(),
                    })
                    .collect(),
            };
            ((rank, worst), tile)
        })
        .collect();
    tiles.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    HomePage {
        layout: Layout::travelling("Systems", "systems", now, at, "/".into(), vec![]).live("/live?page=home".into()),
        open_alerts: open.open.values().sum(),
        totals: counts(all.iter()),
        component_count: all.len(),
        systems: tiles.into_iter().map(|(_, t)| t).collect(),
        subject_example: format!("{}.report.<system>", state.subject_prefix),
    }
}

/// The home page's view model at `now`, or at `at`.
pub async fn home_view(
    state: &AppState,
    now: OffsetDateTime,
    at: Option<OffsetDateTime>,
) -> Result<HomePage, WebError> {
    let components = match at {
        None => queries::all_components(&state.pool).await,
        Some(at) => history::state_at(&state.pool, Scope::All, at).await,
    }
    .map_err(WebError::page)?;
    let open = match at {
        // A page of the past shows no alerts (they are not read back in time).
        Some(_) => TileAlerts::default(),
        None => crate::read::alerts::worst_open_by_system(&state.pool, TILE_PROBLEMS as i64)
            .await
            .map(|(worst, open)| TileAlerts { worst, open })
            .map_err(WebError::page)?,
    };
    let notices = Notices::at(state, at, None).await.map_err(WebError::page)?;
    let mut page = home_page(state, now, at, &components, &open, &notices);
    page.layout = page.layout.archived(at, archived_until(state, at).await?);
    Ok(page)
}

#[tracing::instrument(skip_all)]
pub async fn home(State(state): State<AppState>, Query(q): Query<AtQuery>) -> Result<Html<Bytes>, WebError> {
    let at = q.resolve(Format::Html, state.now())?;
    let make = render_home(state.clone(), at);
    match at {
        None => crate::view::pagecache::page(&state, "home".into(), make).await,
        Some(_) => make.await.map(|Html(html)| Html(Bytes::from(html))),
    }
}

/// The home page, rendered with the outage banner (owning what it needs, so that the page cache
/// can render it again in the background).
async fn render_home(state: AppState, at: Option<OffsetDateTime>) -> Result<Html<String>, WebError> {
    let now = state.now();
    crate::guard::auth::with_outage_banners(&state, async { render_aside(home_view(&state, now, at).await?).await })
        .await
}

// -------------------------------------------------------------------------------------- system

/// `/systems/{system}`: the system's components, grouped by kind, worst first.
#[derive(Debug, Serialize)]
pub struct SystemPage {
    pub layout: Layout,
    pub system: String,
    /// The systems overview, at the same instant.
    pub home_url: String,
    pub worst: Badge,
    pub counts: Vec<Count>,
    pub component_count: usize,
    pub groups: Vec<Group>,
    pub api_url: String,
    /// Outages in force, worst first.
    pub outages: Vec<OutageView>,
    /// Maintenance windows and reservations on or coming, soonest first.
    pub windows: Vec<WindowView>,
}

impl LivePage for SystemPage {
    const PAGE: &'static str = "system";
    const LIVE: &'static str = "system_live";
    const FRAME: &'static [&'static str] = &["layout", "system", "home_url"];
}

/// Components of one kind: the `kind` label, else the path prefix (`login/`, `queue/`, `fs/`).
#[derive(Debug, Serialize)]
pub struct Group {
    pub name: String,
    pub worst: Badge,
    pub counts: Vec<Count>,
    pub rows: Vec<ComponentRow>,
}

#[derive(Debug, Serialize)]
pub struct ComponentRow {
    pub name: String,
    pub url: String,
    pub badge: Badge,
    pub message: String,
    pub metrics: Vec<MetricView>,
    pub age: Age,
    pub since: Age,
    /// Its open alerts.
    pub alerts: Vec<Firing>,
}

fn kind_of(c: &ComponentState) -> String {
    match c.labels.get("kind").and_then(|v| v.as_str()) {
        Some(kind) if !kind.is_empty() => kind.to_owned(),
        _ => c.component.split_once('/').map(|(head, _)| head).unwrap_or("other").to_owned(),
    }
}

/// Metrics that get a 24-hour sparkline on the system page.
pub const HEADLINE_METRICS: [&str; 4] = ["utilisation_pct", "utilization_pct", "pending_jobs", "used_pct"];

/// Hourly averages per `(component, metric)`, for sparklines.
pub type Sparks = HashMap<(String, String), Vec<(OffsetDateTime, f64)>>;

/// The system page at `now`, or as it was at `at`.
// Each read model's data comes in separately, so template tests can give any mix of them.
#[allow(clippy::too_many_arguments)]
pub fn system_page(
    state: &AppState,
    now: OffsetDateTime,
    at: Option<OffsetDateTime>,
    system: &str,
    components: &[ComponentState],
    sparks: &Sparks,
    open: &OpenAlerts,
    notices: &Notices,
) -> SystemPage {
    let clock = at.unwrap_or(now);
    let all = seen(state, clock, components, notices);
    let mut by_kind: BTreeMap<String, Vec<&Seen>> = BTreeMap::new();
    for s in &all {
        by_kind.entry(kind_of(s.state)).or_default().push(s);
    }
    let mut groups: Vec<(Shown, Group)> = by_kind
        .into_iter()
        .map(|(name, items)| {
            let worst = worst(items.iter().copied());
            let rows = items
                .iter()
                .map(|s| {
                    let mut metrics = view::metrics(&s.state.metrics);
                    for m in &mut metrics {
                        let key = (s.state.component.clone(), m.name.clone());
                        if let Some(values) = sparks.get(&key) {
                            m.spark = chart::sparkline(&m.name, values, clock - SPARK_WINDOW, clock);
                        }
                    }
                    ComponentRow {
                        name: s.state.component.clone(),
                        url: format!(
                            "/systems/{system}/components/{}{}",
                            s.state.component,
                            params::at_suffix(at, '?')
                        ),
                        badge: s.shown.badge(),
                        message: s.state.message.clone().unwrap_or_default(),
                        metrics,
                        age: view::age(s.state.observed_at, clock, s.shown == Shown::Stale),
                        since: view::age(s.state.status_since, clock, false),
                        alerts: open.get(&(system.to_owned(), s.state.component.clone())).cloned().unwrap_or_default(),
                    }
                })
                .collect();
            (worst, Group { name, worst: worst.badge(), counts: counts(items.iter().copied()), rows })
        })
        .collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    SystemPage {
        layout: Layout::travelling(system, "systems", now, at, format!("/systems/{system}"), vec![])
            .live(format!("/live?page=system&system={system}")),
        system: system.to_owned(),
        home_url: format!("/{}", params::at_suffix(at, '?')),
        worst: notices
            .outage_of(system)
            .and_then(|o| sitrep_domain::outage::OutageSeverity::parse(&o.severity))
            .map(view::outage_badge)
            .unwrap_or_else(|| worst(all.iter()).badge()),
        counts: counts(all.iter()),
        component_count: all.len(),
        groups: groups.into_iter().map(|(_, g)| g).collect(),
        outages: notices.outages.iter().filter(|o| o.system == system).map(|o| OutageView::of(o, clock)).collect(),
        windows: notices.windows.iter().filter(|w| w.system == system).map(|w| WindowView::of(w, clock)).collect(),
        api_url: format!("/api/v1/status/{system}{}", params::at_suffix(at, '?')),
    }
}

/// The system page's view model at `now`, or at `at`.
pub async fn system_view(
    state: &AppState,
    now: OffsetDateTime,
    at: Option<OffsetDateTime>,
    system: &str,
) -> Result<SystemPage, WebError> {
    let live = queries::system_components(&state.pool, system).await.map_err(WebError::page)?;
    if live.is_empty() {
        return Err(WebError::no_reports(Format::Html, system, &state.subject_prefix));
    }
    let components = match at {
        None => live,
        Some(at) => history::state_at(&state.pool, Scope::System(system), at).await.map_err(WebError::page)?,
    };
    let clock = at.unwrap_or(now);
    let sparks = history::sparklines(&state.pool, system, &HEADLINE_METRICS, clock - SPARK_WINDOW, clock, at.is_none())
        .await
        .map_err(WebError::page)?;
    let open = open_alerts(state, at, system).await?;
    let notices = Notices::at(state, at, Some(system)).await.map_err(WebError::page)?;
    let mut page = system_page(state, now, at, system, &components, &sparks, &open, &notices);
    page.layout = page.layout.archived(at, archived_until(state, at).await?);
    Ok(page)
}

/// Until when raw reports are archived, when a page shows the past (no query for the present).
pub async fn archived_until(state: &AppState, at: Option<OffsetDateTime>) -> Result<Option<OffsetDateTime>, WebError> {
    match at {
        None => Ok(None),
        Some(_) => history::archived_until(&state.pool).await.map_err(WebError::page),
    }
}

#[tracing::instrument(skip_all, fields(system = %system))]
pub async fn system(
    State(state): State<AppState>,
    Path(system): Path<String>,
    Query(q): Query<AtQuery>,
) -> Result<Html<Bytes>, WebError> {
    let at = q.resolve(Format::Html, state.now())?;
    let key = format!("system/{system}");
    let make = render_system(state.clone(), at, system);
    match at {
        None => crate::view::pagecache::page(&state, key, make).await,
        Some(_) => make.await.map(|Html(html)| Html(Bytes::from(html))),
    }
}

/// A system page, rendered with the outage banner (see [`render_home`]).
async fn render_system(state: AppState, at: Option<OffsetDateTime>, system: String) -> Result<Html<String>, WebError> {
    let now = state.now();
    crate::guard::auth::with_outage_banners(&state, async {
        render_aside(system_view(&state, now, at, &system).await?).await
    })
    .await
}

/// The window a sparkline covers.
const SPARK_WINDOW: time::Duration = time::Duration::hours(24);

/// Open alerts by component, for live pages (a page of the past shows none: alerts are not
/// read back in time).
pub type OpenAlerts = HashMap<(String, String), Vec<Firing>>;

/// Open alerts for the home page's tiles: each system's worst few by component, and how many
/// each system has open in all.
#[derive(Debug, Default)]
pub struct TileAlerts {
    pub worst: OpenAlerts,
    pub open: HashMap<String, usize>,
}

/// A system's open alerts, for its live page.
async fn open_alerts(state: &AppState, at: Option<OffsetDateTime>, system: &str) -> Result<OpenAlerts, WebError> {
    if at.is_some() {
        return Ok(OpenAlerts::new());
    }
    crate::read::alerts::open_by_component(&state.pool, system).await.map_err(WebError::page)
}

// ---------------------------------------------------------------------------------- quarantine

/// `/quarantine`: messages that could not be decoded or validated, newest first.
#[derive(Debug, Serialize)]
pub struct QuarantinePage {
    pub layout: Layout,
    pub total: i64,
    pub messages: Vec<QuarantineRow>,
}

#[derive(Debug, Serialize)]
pub struct QuarantineRow {
    pub id: i64,
    pub subject: String,
    pub reason: String,
    pub received: Age,
    pub payload: String,
    pub payload_bytes: usize,
    pub truncated: bool,
}

/// Payload characters shown per quarantined message.
const PAYLOAD_PREVIEW: usize = 2000;

pub fn quarantine_page(now: OffsetDateTime, total: i64, items: Vec<quarantine::Quarantined>) -> QuarantinePage {
    QuarantinePage {
        // No self-refresh: it would close the payload an operator has opened.
        layout: Layout::still("Quarantine", "quarantine", now),
        total,
        messages: items
            .into_iter()
            .map(|q| {
                let truncated = q.payload.chars().count() > PAYLOAD_PREVIEW;
                QuarantineRow {
                    id: q.id,
                    subject: q.subject,
                    reason: q.reason,
                    received: view::age(q.received_at, now, false),
                    payload: q.payload.chars().take(PAYLOAD_PREVIEW).collect(),
                    payload_bytes: q.payload_bytes,
                    truncated,
                }
            })
            .collect(),
    }
}

#[tracing::instrument(skip_all)]
pub async fn quarantine(State(state): State<AppState>) -> Result<Html<String>, WebError> {
    let now = state.now();
    let client = state.pool.get().await.map_err(WebError::page)?;
    let (total, items) = quarantine::recent(&**client, 100).await.map_err(WebError::page)?;
    render("quarantine", &quarantine_page(now, total, items))
}

/// Any URL that is not a page (answered in JSON under `/api/`).
pub async fn not_found(uri: Uri) -> WebError {
    let format = if uri.path().starts_with("/api/") { Format::Json } else { Format::Html };
    WebError::not_found(format, format!("There is no page at {}.", uri.path()), "Start from the systems overview at /.")
}

/// [`templates::render_live`] on a blocking thread, for the large pages (a system page with
/// hundreds of components takes tens of milliseconds): the requests waiting on the same async
/// worker are not held up behind it.
async fn render_aside<P: LivePage + Send + 'static>(page: P) -> Result<Html<String>, WebError> {
    tokio::task::spawn_blocking(move || templates::render_live(&page).map(Html).map_err(WebError::page))
        .await
        .map_err(WebError::page)?
}

/// Every template renders with realistic data and with empty data. Strict mode is on, so a
/// template naming a field its view model lacks fails here rather than rendering blank.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;
    use sitrep_domain::Status;
    use time::macros::datetime;

    pub(crate) const NOW: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

    /// All of `open` as the tiles' worst, counted per system.
    fn tiles(open: OpenAlerts) -> TileAlerts {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for ((system, _), alerts) in &open {
            *counts.entry(system.clone()).or_default() += alerts.len();
        }
        TileAlerts { worst: open, open: counts }
    }

    pub(crate) fn state() -> AppState {
        let pg = "postgres://nobody@127.0.0.1:1/none".parse().unwrap();
        let pool = sitrep_infra::db::pool(&pg, 1).unwrap();
        let mut s = AppState::new(pool, 600, "sitrep".into());
        s.clock = std::sync::Arc::new(|| NOW);
        s
    }

    pub(crate) fn component(
        system: &str,
        name: &str,
        status: Status,
        age_s: i64,
        metrics: serde_json::Value,
    ) -> ComponentState {
        let observed = NOW - time::Duration::seconds(age_s);
        ComponentState {
            system: system.into(),
            component: name.into(),
            status,
            message: Some(format!("{name} says <b>{{{{hi}}}}</b>")),
            metrics: metrics.as_object().cloned().unwrap_or_default(),
            labels: serde_json::Map::new(),
            ttl_seconds: None,
            observed_at: observed,
            received_at: observed,
            status_since: observed - time::Duration::minutes(30),
        }
    }

    fn realistic() -> Vec<ComponentState> {
        vec![
            component("derecho", "login/derecho1", Status::Ok, 12, json!({"users": 41, "load_1m": 3.2})),
            component("derecho", "fs/glade", Status::Degraded, 30, json!({"used_pct": 93.5, "capacity_tb": 20000})),
            component("derecho", "queue/main", Status::Ok, 4000, json!({"running_jobs": 1203})),
            component("casper", "nodes/gpu-a100", Status::Failed, 5, json!({"utilisation_pct": 0})),
            component("jupyterhub", "hub/main", Status::Ok, 5, json!({})),
        ]
    }

    /// One critical alert firing on derecho's filesystem.
    fn firing() -> OpenAlerts {
        let alert = Firing {
            url: "/alerts/6c1d".into(),
            severity: "critical",
            state_label: "FIRING",
            rule: "fs-full".into(),
            component: "fs/glade".into(),
            summary: "derecho fs/glade used_pct is 93.5".into(),
            impacted: false,
        };
        [(("derecho".to_owned(), "fs/glade".to_owned()), vec![alert])].into()
    }

    #[test]
    fn the_home_page_renders_worst_system_first_with_counts_and_ages() {
        let html = templates::render_live(&home_page(
            &state(),
            NOW,
            None,
            &realistic(),
            &tiles(firing()),
            &Notices::default(),
        ))
        .unwrap();
        let casper = html.find("href=\"/systems/casper\"").unwrap();
        let derecho = html.find("href=\"/systems/derecho\"").unwrap();
        let hub = html.find("href=\"/systems/jupyterhub\"").unwrap();
        assert!(casper < derecho && derecho < hub, "failed, then stale, then ok");
        assert!(html.contains("STALE") && html.contains("FAILED") && html.contains("DEGRADED"));
        assert!(html.contains("5 components"));
        assert!(html.contains("title=\"2026-11-22 09:59:55 UTC\""), "exact time on hover");
        assert!(html.contains("&lt;b&gt;"), "collector text is escaped");
        assert!(!html.contains("<b>"));
        assert!(html.contains("http-equiv=\"refresh\" content=\"30\""));
        assert!(
            html.contains("FIRING: fs-full</strong> fs/glade"),
            "the tile names its alert (not as a link: the tile is one)"
        );
    }

    #[test]
    fn the_home_page_renders_empty_with_what_to_do() {
        let html =
            templates::render_live(&home_page(&state(), NOW, None, &[], &TileAlerts::default(), &Notices::default()))
                .unwrap();
        assert!(html.contains("No reports yet."));
        assert!(html.contains("sitrep.report.&lt;system&gt;"));
        assert!(html.contains("docs/collectors.md"));
    }

    #[test]
    fn the_system_page_groups_by_kind_with_metrics_and_bars() {
        let components: Vec<_> = realistic().into_iter().filter(|c| c.system == "derecho").collect();
        let hourly = |v: f64, h: i64| (NOW - time::Duration::hours(h), v);
        let sparks: Sparks =
            [(("fs/glade".to_owned(), "used_pct".to_owned()), vec![hourly(80.0, 3), hourly(93.5, 1)])].into();
        let html = templates::render_live(&system_page(
            &state(),
            NOW,
            None,
            "derecho",
            &components,
            &sparks,
            &firing(),
            &Notices::default(),
        ))
        .unwrap();
        for needle in
            ["<h2>fs", "<h2>login", "<h2>queue", "1,203", "93.5", "<meter", "20,000&#8239;TB", "/api/v1/status/derecho"]
        {
            assert!(html.contains(needle), "lacks {needle}");
        }
        assert!(html.find("<h2>fs").unwrap() < html.find("<h2>login").unwrap(), "degraded group first");
        assert!(html.contains("href=\"/alerts/6c1d\""), "the component row names its alert");
        assert!(html.contains("class=\"age stale\""), "queue/main is past the 600 s window");
        assert!(html.contains("href=\"/systems/derecho/components/fs/glade\""), "rows link to their component");
        assert!(html.contains("<svg class=\"spark\""), "headline metrics get a sparkline");
        assert!(html.contains("used_pct, hourly averages over the last 24 h: from 80 to 93.5"));
        assert!(html.contains("name=\"at\"") && !html.contains("travel-banner"), "the form, and no banner when live");
    }

    #[test]
    fn a_page_in_the_past_says_so_links_back_to_now_and_keeps_the_instant_in_its_links() {
        let at = NOW - time::Duration::hours(8);
        let html = templates::render_live(&home_page(
            &state(),
            NOW,
            Some(at),
            &realistic(),
            &TileAlerts::default(),
            &Notices::default(),
        ))
        .unwrap();
        assert!(html
            .contains("Showing the state at <time datetime=\"2026-11-22T02:00:00Z\">2026-11-22 02:00:00 UTC</time>"));
        assert!(html.contains("<a href=\"/\">Back to now</a>"));
        assert!(html.contains("href=\"/systems/casper?at&#x3D;2026-11-22T02:00:00Z\""));
        assert!(html.contains("value=\"2026-11-22T02:00:00\""), "the form starts at the instant shown");
        assert!(!html.contains("http-equiv=\"refresh\""), "the past does not reload itself");
        let components: Vec<_> = realistic().into_iter().filter(|c| c.system == "derecho").collect();
        let html = templates::render_live(&system_page(
            &state(),
            NOW,
            Some(at),
            "derecho",
            &components,
            &Sparks::new(),
            &OpenAlerts::new(),
            &Notices::default(),
        ))
        .unwrap();
        assert!(html.contains("href=\"/systems/derecho/components/fs/glade?at&#x3D;2026-11-22T02:00:00Z\""));
    }

    #[test]
    fn the_system_page_renders_with_no_metrics_or_messages() {
        let mut c = component("derecho", "svc", Status::Unknown, 1, json!({}));
        c.message = None;
        let html = templates::render_live(&system_page(
            &state(),
            NOW,
            None,
            "derecho",
            &[c],
            &Sparks::new(),
            &OpenAlerts::new(),
            &Notices::default(),
        ))
        .unwrap();
        assert!(html.contains("<h2>other") && html.contains("UNKNOWN"));
    }

    #[test]
    fn the_quarantine_page_renders_with_and_without_messages() {
        let item = quarantine::Quarantined {
            id: 1,
            source_key: "seq:S:1".into(),
            subject: "sitrep.report.derecho".into(),
            headers: json!({}),
            payload: "{<script>".repeat(300),
            payload_bytes: 2700,
            reason: "payload: is not valid JSON".into(),
            received_at: NOW,
        };
        let html = templates::render("quarantine", &quarantine_page(NOW, 7, vec![item])).unwrap();
        assert!(
            html.contains("7 in all") && html.contains("is not valid JSON") && html.contains("first 2,000 characters")
        );
        assert!(!html.contains("<script>"));
        assert!(!html.contains("http-equiv=\"refresh\""), "an open payload must not be closed by a reload");
        let html = templates::render("quarantine", &quarantine_page(NOW, 0, vec![])).unwrap();
        assert!(html.contains("Nothing in quarantine."));
    }

    async fn body(resp: axum::response::Response) -> String {
        String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_error_page_renders_through_the_layout_and_hides_internals() {
        use axum::response::IntoResponse;
        let resp = WebError::not_found(Format::Html, "No reports yet from x.", "Collectors publish to sitrep.report.x")
            .into_response();
        assert_eq!(resp.status(), 404);
        let html = body(resp).await;
        assert!(html.contains("No reports yet from x.") && html.contains("<nav"), "{html}");
        let resp = WebError::page(anyhow::anyhow!("db down: secret detail")).into_response();
        assert_eq!(resp.status(), 500);
        let html = body(resp).await;
        assert!(html.contains("Something went wrong") && !html.contains("secret detail"), "{html}");
        let resp = WebError::api(anyhow::anyhow!("secret detail")).into_response();
        assert_eq!(resp.status(), 500);
        assert!(!body(resp).await.contains("secret"));
    }
}
