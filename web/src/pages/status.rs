//! `/status`, the public status page for a centre's users.
//!
//! It shows only what `status.toml` makes public (`crate::read::public`): its groups,
//! in their display names, never the components inside them. It is readable without signing
//! in, even when viewing the dashboard needs it. The page is the same for everyone, so it is
//! kept and served again like `/` (`crate::view::pagecache`), and updates live over `/status/live`.

use crate::read::notices::Notices;
use crate::read::public::{self, group_state, public_outages, public_windows, update_word, PublicOutage, PublicState};
use crate::state::AppState;
use crate::view::error::WebError;
use crate::view::templates::{self, LivePage};
use crate::view::{self, Age};
use axum::extract::{Query, State};
use axum::response::Html;
use serde::{Deserialize, Serialize};
use sitrep_projections::sla::{self, Summary};
use time::{Duration, OffsetDateTime};

/// Days of history the uptime bars show.
pub const DAYS: i64 = 90;
/// Past incidents per page.
pub const INCIDENTS_PER_PAGE: i64 = 10;

#[derive(Debug, Clone, Serialize)]
pub struct DayCell {
    pub x: i64,
    pub key: &'static str,
    pub title: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub state: &'static str,
    pub state_key: &'static str,
    /// Availability over [`DAYS`], maintenance excluded.
    pub uptime: String,
    pub days: Vec<DayCell>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpdateView {
    pub at: Age,
    /// declared, updated or resolved, in words.
    pub kind: &'static str,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentView {
    /// For links and feed entries: `derecho-sched`.
    pub anchor: String,
    pub title: String,
    pub description: Option<String>,
    pub severity: String,
    pub ongoing: bool,
    pub started: Age,
    pub resolved: Option<Age>,
    pub groups: Vec<String>,
    /// Newest first.
    pub updates: Vec<UpdateView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowView {
    pub anchor: String,
    pub kind: &'static str,
    pub title: String,
    pub description: Option<String>,
    pub starts: Age,
    pub ends: Age,
    pub on_now: bool,
    pub groups: Vec<String>,
}

/// The status page's model: the frame and its live part.
#[derive(Debug, Clone, Serialize)]
pub struct StatusPage {
    pub title: String,
    pub description: Option<String>,
    pub overall: String,
    pub overall_key: &'static str,
    pub groups: Vec<GroupView>,
    pub incidents: Vec<IncidentView>,
    pub windows: Vec<WindowView>,
    pub page: i64,
    pub newer_url: Option<String>,
    pub older_url: Option<String>,
    pub rendered: Age,
    pub days: i64,
    /// Whether the page updates itself (the first page; older incidents stay put).
    pub streaming: bool,
}

impl LivePage for StatusPage {
    const PAGE: &'static str = "status";
    const LIVE: &'static str = "status_live";
    const FRAME: &'static [&'static str] = &["title", "description", "streaming"];
}

/// The status page as it stands at `now`; `page` 1 lists the newest incidents.
pub async fn status_view(state: &AppState, now: OffsetDateTime, page: i64) -> Result<StatusPage, WebError> {
    let config = &state.public;
    // The `[sla]` policy, so that users and the SLA report count alike.
    let policy = &config.policy;
    let from = now - Duration::days(DAYS);
    let mut groups = Vec::new();
    let mut states: Vec<(String, PublicState)> = Vec::new();
    let mut notices = Notices::default();
    for system in public::systems(config) {
        let n = Notices::at(state, None, Some(system)).await.map_err(WebError::page)?;
        notices.outages.extend(n.outages);
        notices.windows.extend(n.windows);
    }
    // Every public outage, read once: for the days' bars, and a page of them with their updates.
    let outages_90d = public_outages(state, config).await.map_err(WebError::page)?;
    for system in public::systems(config) {
        let live = crate::read::queries::system_components(&state.pool, system).await.map_err(WebError::page)?;
        let facts = crate::read::sla::system_facts(&state.pool, system, from, now).await.map_err(WebError::page)?;
        for g in config.groups_of(system) {
            let members: Vec<&String> = facts.segments.keys().filter(|c| g.includes(system, c)).collect();
            let inputs: Vec<sla::Input<'_>> = members.iter().map(|c| facts.input(c)).collect();
            let whole =
                Summary::of(inputs.iter().map(|i| sla::component(i, policy, from, now)).collect::<Vec<_>>().iter());
            let mut days = Vec::new();
            let first = (now - Duration::days(DAYS - 1)).date().midnight().assume_utc();
            for d in 0..DAYS {
                let start = first + Duration::days(d);
                let end = (start + Duration::DAY).min(now);
                let s = Summary::of(
                    inputs.iter().map(|i| sla::component(i, policy, start, end)).collect::<Vec<_>>().iter(),
                );
                let incidents: Vec<&str> = outages_90d
                    .iter()
                    .filter(|o| o.system == system && o.groups.contains(&g.name))
                    .filter(|o| o.started_at < end && o.resolved_at.is_none_or(|r| r > start))
                    .map(|o| o.title.as_str())
                    .collect();
                let key = match s.availability_pct {
                    None => "unknown",
                    Some(p) if p >= 99.9 && incidents.is_empty() => "ok",
                    Some(p) if p >= 99.0 => "degraded",
                    Some(_) => "failed",
                };
                let mut title = format!("{}: {}", start.date(), crate::view::uptime::percent_text(s.availability_pct));
                if s.maintenance_minutes > 0.0 {
                    title.push_str(&format!(
                        ", {} in maintenance",
                        view::span(Duration::seconds_f64(s.maintenance_minutes * 60.0))
                    ));
                }
                for i in incidents {
                    title.push_str(&format!("; incident: {i}"));
                }
                days.push(DayCell { x: d, key, title });
            }
            let state_now = group_state(g, &live, &notices, state.default_ttl_seconds, now);
            states.push((g.name.clone(), state_now));
            groups.push(GroupView {
                slug: g.slug.clone(),
                name: g.name.clone(),
                description: g.description.clone(),
                state: state_now.words(),
                state_key: state_now.key(),
                uptime: crate::view::uptime::percent_text(whole.availability_pct),
                days,
            });
        }
    }
    // Keep the configured order of the groups.
    groups.sort_by_key(|g| config.groups.iter().position(|c| c.slug == g.slug));
    // What the worst group is going through, and which groups are.
    let worst = states.iter().map(|(_, s)| *s).min();
    let (overall, overall_key) = match worst {
        None => ("No public systems yet".to_owned(), "unknown"),
        Some(PublicState::Operational) => ("All systems operational".to_owned(), "ok"),
        Some(w) => {
            let mut names: Vec<&str> = states.iter().filter(|(_, s)| *s == w).map(|(n, _)| n.as_str()).collect();
            names.sort_by_key(|n| config.groups.iter().position(|g| g.name == *n));
            (format!("{}: {}", w.words(), names.join(", ")), w.key())
        }
    };
    let page = page.max(1);
    let skip = usize::try_from((page - 1) * INCIDENTS_PER_PAGE).unwrap_or(usize::MAX);
    let mut shown: Vec<PublicOutage> =
        outages_90d.iter().skip(skip).take(INCIDENTS_PER_PAGE as usize + 1).cloned().collect();
    public::with_updates(state, &mut shown).await.map_err(WebError::page)?;
    let more = shown.len() as i64 > INCIDENTS_PER_PAGE;
    let incidents = shown.iter().take(INCIDENTS_PER_PAGE as usize).map(|o| incident_view(o, now)).collect();
    let windows = public_windows(config, &notices)
        .into_iter()
        .map(|(w, groups)| WindowView {
            anchor: format!("{}-{}", w.system, w.id),
            kind: if w.kind == "reservation" { "Reservation" } else { "Maintenance" },
            title: w.title.clone(),
            description: w.description.clone(),
            starts: view::age(w.starts_at, now, false),
            ends: view::age(w.ends_at, now, false),
            on_now: w.on_at(now),
            groups,
        })
        .collect();
    Ok(StatusPage {
        title: config.title.clone(),
        description: config.description.clone(),
        overall,
        overall_key,
        groups,
        incidents,
        windows,
        page,
        newer_url: (page > 1).then(|| {
            if page == 2 {
                "/status#incidents".to_owned()
            } else {
                format!("/status?page={}#incidents", page - 1)
            }
        }),
        older_url: more.then(|| format!("/status?page={}#incidents", page + 1)),
        rendered: view::age(now, now, false),
        days: DAYS,
        streaming: page == 1,
    })
}

fn incident_view(o: &PublicOutage, now: OffsetDateTime) -> IncidentView {
    IncidentView {
        anchor: format!("{}-{}", o.system, o.id),
        title: o.title.clone(),
        description: o.description.clone(),
        severity: o.severity.clone(),
        ongoing: o.resolved_at.is_none(),
        started: view::age(o.started_at, now, false),
        resolved: o.resolved_at.map(|r| view::age(r, now, false)),
        groups: o.groups.clone(),
        updates: o
            .updates
            .iter()
            .rev()
            .map(|(_, at, kind, message)| UpdateView {
                at: view::age(*at, now, false),
                kind: update_word(kind),
                message: message.clone(),
            })
            .collect(),
    }
}

#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    pub page: Option<String>,
}

/// `GET /status`.
pub async fn page(State(state): State<AppState>, Query(q): Query<StatusQuery>) -> Result<Html<bytes::Bytes>, WebError> {
    // The public page shows no error pages (they carry the operators' navigation): anything
    // but a page number is the first page.
    let page =
        q.page.as_deref().and_then(|p| p.trim().parse::<i64>().ok()).filter(|n| (1..=10_000).contains(n)).unwrap_or(1);
    let make = {
        let state = state.clone();
        async move {
            let view = status_view(&state, state.now(), page).await?;
            templates::render_live(&view).map(Html).map_err(WebError::page)
        }
    };
    crate::view::pagecache::page(&state, format!("status?page={page}"), make).await
}
