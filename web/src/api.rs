//! The JSON API, version 1.

use crate::error::{Format, WebError};
use crate::queries::{self, ComponentState};
use crate::state::AppState;
use crate::view;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use sitrep_infra::quarantine::{self, Quarantined};
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

#[tracing::instrument(skip_all)]
pub async fn status_all(State(state): State<AppState>) -> Result<Json<StatusResponse>, WebError> {
    let now = state.now();
    let rows = queries::all_components(&state.pool).await.map_err(WebError::api)?;
    let components = rows.into_iter().map(|c| to_json(&state, now, c)).collect();
    Ok(Json(StatusResponse { generated_at: now, components }))
}

#[tracing::instrument(skip_all, fields(system = %system))]
pub async fn status_system(
    State(state): State<AppState>,
    Path(system): Path<String>,
) -> Result<Json<StatusResponse>, WebError> {
    let now = state.now();
    let rows = queries::system_components(&state.pool, &system).await.map_err(WebError::api)?;
    if rows.is_empty() {
        return Err(WebError::no_reports(Format::Json, &system, &state.subject_prefix));
    }
    let components = rows.into_iter().map(|c| to_json(&state, now, c)).collect();
    Ok(Json(StatusResponse { generated_at: now, components }))
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
