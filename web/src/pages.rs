//! The HTML pages. Each page has one view-model struct, built here and rendered by the template
//! of the same name; templates hold no logic beyond loops and conditionals.

use crate::error::{Format, WebError};
use crate::queries::{self, ComponentState};
use crate::state::AppState;
use crate::templates;
use crate::view::{self, Age, Badge, MetricView, Shown};
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Html;
use serde::Serialize;
use sitrep_infra::quarantine;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Seconds between meta refreshes of a page.
pub const REFRESH_SECONDS: u32 = 30;
/// Problems listed on a system tile before "and N more".
const TILE_PROBLEMS: usize = 5;

/// What the layout shows around every page.
#[derive(Debug, Serialize)]
pub struct Layout {
    pub title: String,
    pub nav: &'static str,
    pub generated: String,
    pub generated_iso: String,
    /// Seconds between refreshes; 0 for pages that do not refresh.
    pub refresh_seconds: u32,
}

impl Layout {
    /// The layout of a page that refreshes itself.
    pub fn new(title: impl Into<String>, nav: &'static str, now: OffsetDateTime) -> Self {
        let age = view::age(now, now, false);
        Self {
            title: title.into(),
            nav,
            generated: age.exact,
            generated_iso: age.iso,
            refresh_seconds: REFRESH_SECONDS,
        }
    }

    /// The layout of a page that does not refresh (errors).
    pub fn still(title: impl Into<String>, now: OffsetDateTime) -> Self {
        Self { refresh_seconds: 0, ..Self::new(title, "", now) }
    }
}

/// A status and how many components have it.
#[derive(Debug, Serialize)]
pub struct Count {
    pub badge: Badge,
    pub count: usize,
}

/// A component as a page sees it: its state plus what the clock says about its age.
struct Seen<'a> {
    state: &'a ComponentState,
    shown: Shown,
}

fn seen<'a>(state: &AppState, now: OffsetDateTime, components: &'a [ComponentState]) -> Vec<Seen<'a>> {
    let mut out: Vec<Seen> = components
        .iter()
        .map(|c| {
            let ttl = c.ttl_seconds.unwrap_or(state.default_ttl_seconds);
            Seen { state: c, shown: Shown::of(c.status, view::is_stale(c.observed_at, ttl, now)) }
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
    pub systems: Vec<SystemTile>,
    pub totals: Vec<Count>,
    pub component_count: usize,
    /// Example subject for the empty state.
    pub subject_example: String,
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
}

/// A component that is not OK, named on its system's tile.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub component: String,
    pub badge: Badge,
    pub message: String,
}

pub fn home_page(state: &AppState, now: OffsetDateTime, components: &[ComponentState]) -> HomePage {
    let all = seen(state, now, components);
    let mut by_system: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    for s in &all {
        by_system.entry(s.state.system.as_str()).or_default().push(s);
    }
    let mut tiles: Vec<(Shown, SystemTile)> = by_system
        .into_iter()
        .map(|(name, items)| {
            let worst = worst(items.iter().copied());
            let newest = items.iter().map(|s| s.state.observed_at).max().unwrap_or(now);
            let all_stale = items.iter().all(|s| s.shown == Shown::Stale);
            let problems: Vec<&&Seen> =
                items.iter().filter(|s| s.shown != Shown::Ok && s.shown != Shown::Stopped).collect();
            let tile = SystemTile {
                name: name.to_owned(),
                url: format!("/systems/{name}"),
                worst: worst.badge(),
                counts: counts(items.iter().copied()),
                component_count: items.len(),
                last_report: view::age(newest, now, all_stale),
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
            (worst, tile)
        })
        .collect();
    tiles.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    HomePage {
        layout: Layout::new("Systems", "systems", now),
        totals: counts(all.iter()),
        component_count: all.len(),
        systems: tiles.into_iter().map(|(_, t)| t).collect(),
        subject_example: format!("{}.report.<system>", state.subject_prefix),
    }
}

pub async fn home(State(state): State<AppState>) -> Result<Html<String>, WebError> {
    let now = state.now();
    let components = queries::all_components(&state.pool).await.map_err(WebError::page)?;
    render("home", &home_page(&state, now, &components))
}

// -------------------------------------------------------------------------------------- system

/// `/systems/{system}`: the system's components, grouped by kind, worst first.
#[derive(Debug, Serialize)]
pub struct SystemPage {
    pub layout: Layout,
    pub system: String,
    pub worst: Badge,
    pub counts: Vec<Count>,
    pub component_count: usize,
    pub groups: Vec<Group>,
    pub api_url: String,
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
    pub badge: Badge,
    pub message: String,
    pub metrics: Vec<MetricView>,
    pub age: Age,
    pub since: Age,
}

fn kind_of(c: &ComponentState) -> String {
    match c.labels.get("kind").and_then(|v| v.as_str()) {
        Some(kind) if !kind.is_empty() => kind.to_owned(),
        _ => c.component.split_once('/').map(|(head, _)| head).unwrap_or("other").to_owned(),
    }
}

pub fn system_page(state: &AppState, now: OffsetDateTime, system: &str, components: &[ComponentState]) -> SystemPage {
    let all = seen(state, now, components);
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
                .map(|s| ComponentRow {
                    name: s.state.component.clone(),
                    badge: s.shown.badge(),
                    message: s.state.message.clone().unwrap_or_default(),
                    metrics: view::metrics(&s.state.metrics),
                    age: view::age(s.state.observed_at, now, s.shown == Shown::Stale),
                    since: view::age(s.state.status_since, now, false),
                })
                .collect();
            (worst, Group { name, worst: worst.badge(), counts: counts(items.iter().copied()), rows })
        })
        .collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    SystemPage {
        layout: Layout::new(system, "systems", now),
        system: system.to_owned(),
        worst: worst(all.iter()).badge(),
        counts: counts(all.iter()),
        component_count: all.len(),
        groups: groups.into_iter().map(|(_, g)| g).collect(),
        api_url: format!("/api/v1/status/{system}"),
    }
}

pub async fn system(State(state): State<AppState>, Path(system): Path<String>) -> Result<Html<String>, WebError> {
    let now = state.now();
    let components = queries::system_components(&state.pool, &system).await.map_err(WebError::page)?;
    if components.is_empty() {
        return Err(WebError::not_found(
            Format::Html,
            format!("No reports yet from {system}."),
            format!(
                "Collectors publish to {}.report.{system}: see docs/collectors.md for the format.",
                state.subject_prefix
            ),
        ));
    }
    render("system", &system_page(&state, now, &system, &components))
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
        layout: Layout::new("Quarantine", "quarantine", now),
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

pub async fn quarantine(State(state): State<AppState>) -> Result<Html<String>, WebError> {
    let now = state.now();
    let client = state.pool.get().await.map_err(WebError::page)?;
    let (total, items) = quarantine::recent(&**client, 100).await.map_err(WebError::page)?;
    render("quarantine", &quarantine_page(now, total, items))
}

/// Any URL that is not a page.
pub async fn not_found(uri: Uri) -> WebError {
    WebError::not_found(
        Format::Html,
        format!("There is no page at {}.", uri.path()),
        "Start from the systems overview.",
    )
}

fn render<T: Serialize>(name: &str, page: &T) -> Result<Html<String>, WebError> {
    templates::render(name, page).map(Html).map_err(WebError::page)
}
