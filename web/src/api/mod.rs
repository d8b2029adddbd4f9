//! The JSON API, version 1: status, history, uptime, quarantine and events; and
//! [`collect`] (HTTP ingest for collectors, with API keys) and [`health`] (`/healthz`,
//! `/readyz`, `/metrics`).

pub mod collect;
pub mod health;

use crate::read::history::{self, Scope, Window};
use crate::read::queries::{self, ComponentState};
use crate::state::AppState;
use crate::view;
use crate::view::chart::Point;
use crate::view::error::{Format, WebError};
use crate::view::params::{self, AtQuery};
use crate::view::uptime::{self, Uptime};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sitrep_infra::event_store;
use sitrep_infra::quarantine::{self, Quarantined};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `GET /api/v1/status` and `GET /api/v1/status/{system}`.
#[derive(Debug, Serialize)]
pub struct StatusResponse {
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    pub components: Vec<ComponentJson>,
}

/// One component's latest state. `status` is what its collector last said; `stale` is true
/// when that report is older than `ttl_seconds` (or the default freshness window).
#[derive(Debug, Serialize)]
pub struct ComponentJson {
    pub system: String,
    pub component: String,
    pub status: &'static str,
    pub stale: bool,
    pub message: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub status_since: OffsetDateTime,
    pub ttl_seconds: u32,
    pub metrics: Map<String, Value>,
    pub labels: Map<String, Value>,
}

fn to_json(state: &AppState, now: OffsetDateTime, c: ComponentState) -> ComponentJson {
    let ttl = c.ttl_seconds.unwrap_or(state.default_ttl_seconds);
    ComponentJson {
        stale: view::is_stale(c.observed_at, ttl, now),
        system: c.system,
        component: c.component,
        status: c.status.as_str(),
        message: c.message,
        observed_at: c.observed_at,
        received_at: c.received_at,
        status_since: c.status_since,
        ttl_seconds: ttl,
        metrics: c.metrics,
        labels: c.labels,
    }
}

/// The components now, or as they were at `?at=` (then `generated_at` is that instant, and the
/// last value is `true`).
async fn states(
    state: &AppState,
    system: Option<&str>,
    q: &AtQuery,
) -> Result<(OffsetDateTime, Vec<ComponentState>, bool), WebError> {
    let now = state.now();
    let rows = match q.resolve(Format::Json, now)? {
        None => match system {
            None => queries::all_components(&state.pool).await,
            Some(system) => queries::system_components(&state.pool, system).await,
        }
        .map(|rows| (now, rows, false)),
        Some(at) => {
            let scope = system.map_or(Scope::All, Scope::System);
            history::state_at(&state.pool, scope, at).await.map(|rows| (at, rows, true))
        }
    };
    rows.map_err(WebError::api)
}

#[tracing::instrument(skip_all)]
pub async fn status_all(
    State(state): State<AppState>,
    Query(q): Query<AtQuery>,
) -> Result<Json<StatusResponse>, WebError> {
    let (at, rows, _) = states(&state, None, &q).await?;
    let components = rows.into_iter().map(|c| to_json(&state, at, c)).collect();
    Ok(Json(StatusResponse { generated_at: at, components }))
}

#[tracing::instrument(skip_all, fields(system = %system))]
pub async fn status_system(
    State(state): State<AppState>,
    Path(system): Path<String>,
    Query(q): Query<AtQuery>,
) -> Result<Json<StatusResponse>, WebError> {
    let (at, rows, past) = states(&state, Some(&system), &q).await?;
    if rows.is_empty() && !past {
        return Err(WebError::no_reports(Format::Json, &system, &state.subject_prefix));
    }
    let components = rows.into_iter().map(|c| to_json(&state, at, c)).collect();
    Ok(Json(StatusResponse { generated_at: at, components }))
}

#[derive(Debug, Serialize)]
pub struct QuarantineResponse {
    pub total: i64,
    pub messages: Vec<Quarantined>,
}

/// `GET /api/v1/quarantine`: the newest 100 quarantined messages with their reasons.
#[tracing::instrument(skip_all)]
pub async fn quarantine(State(state): State<AppState>) -> Result<Json<QuarantineResponse>, WebError> {
    let client = state.pool.get().await.map_err(WebError::api)?;
    let (total, messages) = quarantine::recent(&**client, 100).await.map_err(WebError::api)?;
    Ok(Json(QuarantineResponse { total, messages }))
}

/// `?metric=&from=&to=&step=&format=` of the history API.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    pub metric: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub step: Option<String>,
    pub format: Option<String>,
}

/// The most points one history answer may hold.
pub const MAX_POINTS: i64 = 10_000;

/// `GET /api/v1/history/{system}/{component}`: one metric's (or every metric's) points.
#[derive(Debug, Serialize)]
pub struct HistoryResponse {
    pub system: String,
    pub component: String,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// `raw`, `hour` or `day`: where the points come from.
    pub resolution: &'static str,
    pub step_seconds: i64,
    pub series: Vec<SeriesJson>,
}

#[derive(Debug, Serialize)]
pub struct SeriesJson {
    pub metric: String,
    pub points: Vec<Point>,
}

/// Serves JSON, or CSV when the component ends in `.csv` (or `format=csv`).
#[tracing::instrument(skip_all, fields(system = %system, component = %component))]
pub async fn history(
    State(state): State<AppState>,
    Path((system, component)): Path<(String, String)>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, WebError> {
    let (component, csv) = match (q.format.as_deref().filter(|f| !f.is_empty()), component.strip_suffix(".csv")) {
        (Some("csv"), stripped) => (stripped.unwrap_or(&component).to_owned(), true),
        // `format=json` keeps a name that really ends in `.csv`.
        (Some("json"), _) => (component.clone(), false),
        (Some(other), _) => {
            return Err(WebError::bad_request(
                Format::Json,
                "format",
                format!("{other:?} is not a format; use json or csv"),
            ))
        }
        (None, Some(stripped)) => (stripped.to_owned(), true),
        (None, None) => (component.clone(), false),
    };
    let now = state.now();
    let bad = |field: &str, what: String| WebError::bad_request(Format::Json, field, what);
    let to = match q.to.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => params::instant(raw).map_err(|e| bad("to", e))?,
        None => now,
    };
    let from = match q.from.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => params::instant(raw).map_err(|e| bad("from", e))?,
        None => to - time::Duration::days(1),
    };
    if from >= to {
        return Err(bad("from", "must be before to".into()));
    }
    let step = match q.step.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => Some(params::duration(raw).map_err(|e| bad("step", e))?),
        None => None,
    };
    let archived = history::archived_until(&state.pool).await.map_err(WebError::api)?;
    let window = Window::new(from, to, step, now, state.kept, archived);
    let points = (to - from).whole_seconds() / window.step.whole_seconds().max(1);
    if points > MAX_POINTS {
        return Err(bad("step", format!("gives {points} points over this range; at most {MAX_POINTS} are allowed")));
    }
    if queries::component(&state.pool, &system, &component).await.map_err(WebError::api)?.is_none() {
        return Err(WebError::no_component_reports(Format::Json, &system, &component, &state.subject_prefix));
    }
    let metric = q.metric.as_deref().filter(|m| !m.is_empty());
    if let Some(m) = metric {
        if !history::has_metric(&state.pool, &system, &component, m).await.map_err(WebError::api)? {
            return Err(WebError::not_found(
                Format::Json,
                format!("metric: {system} / {component} has never reported a metric named {m:?}."),
                "Leave metric out to get every metric the component reports.",
            ));
        }
    }
    let series = history::series(&state.pool, &system, &component, metric, window).await.map_err(WebError::api)?;
    if csv {
        return history_csv(&system, &component, &series).map_err(WebError::api);
    }
    Ok(Json(HistoryResponse {
        system,
        component,
        from,
        to,
        resolution: window.source.as_str(),
        step_seconds: window.step.whole_seconds(),
        series: series.into_iter().map(|s| SeriesJson { metric: s.metric, points: s.points }).collect(),
    })
    .into_response())
}

/// The CSV download: one row per metric and bucket.
fn history_csv(system: &str, component: &str, series: &[history::Series]) -> anyhow::Result<Response> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["time", "metric", "min", "max", "avg", "last", "count"])?;
    for s in series {
        for p in &s.points {
            out.write_record([
                p.t.format(&Rfc3339)?,
                s.metric.clone(),
                p.min.to_string(),
                p.max.to_string(),
                p.avg.to_string(),
                p.last.to_string(),
                p.count.to_string(),
            ])?;
        }
    }
    let body = out.into_inner().map_err(|e| anyhow::anyhow!("writing CSV: {e}"))?;
    let file = format!("{system}_{}.csv", component.replace('/', "_"));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/v1/uptime/{system}`: each component's uptime over 24 h, 7 d and 30 d.
#[derive(Debug, Serialize)]
pub struct UptimeResponse {
    pub system: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// How uptime is counted.
    pub counted: &'static str,
    pub components: Vec<ComponentUptime>,
}

#[derive(Debug, Serialize)]
pub struct ComponentUptime {
    pub component: String,
    pub windows: BTreeMap<&'static str, WindowUptime>,
}

#[derive(Debug, Serialize)]
pub struct WindowUptime {
    /// Percent up, or null when no time was counted.
    pub uptime_pct: Option<f64>,
    pub up_seconds: f64,
    pub down_seconds: f64,
    /// Inside maintenance windows and reservations that name the component: excluded.
    pub maintenance_seconds: f64,
    pub not_counted_seconds: f64,
}

#[tracing::instrument(skip_all, fields(system = %system))]
pub async fn uptime(
    State(state): State<AppState>,
    Path(system): Path<String>,
    Query(q): Query<AtQuery>,
) -> Result<Json<UptimeResponse>, WebError> {
    let now = state.now();
    let end = q.resolve(Format::Json, now)?.unwrap_or(now);
    let windows = uptime::RANGES;
    let facts =
        crate::read::sla::system_facts(&state.pool, &system, end - windows[2].2, end).await.map_err(WebError::api)?;
    let live = queries::system_components(&state.pool, &system).await.map_err(WebError::api)?;
    if live.is_empty() {
        return Err(WebError::no_reports(Format::Json, &system, &state.subject_prefix));
    }
    let components = live
        .into_iter()
        .map(|c| {
            let segments = facts.segments.get(&c.component).map(Vec::as_slice).unwrap_or_default();
            let maintenance = facts.maintenance_of(&c.component);
            let windows = windows
                .iter()
                .map(|(key, _, window)| {
                    let u = Uptime::within(segments, &maintenance, end - *window, end);
                    let w = WindowUptime {
                        uptime_pct: u.percent(),
                        up_seconds: u.up,
                        down_seconds: u.down,
                        maintenance_seconds: u.maintenance,
                        not_counted_seconds: u.not_counted,
                    };
                    (*key, w)
                })
                .collect();
            ComponentUptime { component: c.component, windows }
        })
        .collect();
    Ok(Json(UptimeResponse { system, at: end, counted: uptime::HOW_COUNTED, components }))
}

/// `GET /api/v1/events/{position}`: one event of the log, the evidence behind a transition.
pub async fn event_api(
    State(state): State<AppState>,
    Path(position): Path<String>,
) -> Result<Json<serde_json::Value>, WebError> {
    let position: i64 = position.parse().map_err(|_| {
        WebError::bad_request(Format::Json, "position", format!("{position:?} is not an event position"))
    })?;
    let client = state.pool.get().await.map_err(WebError::api)?;
    let Some(e) = event_store::at(&**client, position).await.map_err(WebError::api)? else {
        return Err(WebError::missing_event(&client, Format::Json, position).await);
    };
    Ok(Json(serde_json::json!({
        "position": e.position, "event_id": e.event_id, "aggregate_type": e.aggregate_type,
        "aggregate_id": e.aggregate_id, "sequence": e.sequence, "event_type": e.event_type,
        "event_version": e.event_version, "payload": e.payload.to_value(), "metadata": e.metadata,
        "recorded_at": view::age(e.recorded_at, state.now(), false).iso,
    })))
}
