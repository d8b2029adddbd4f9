//! sitrep watching itself over HTTP: `/healthz` (the process answers), `/readyz` (connected to
//! Postgres and the read models caught up), `/metrics` (Prometheus text), and the middleware
//! that counts every request.

use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sitrep_infra::auth::{digest, same_secret};
use sitrep_infra::metrics::{self, Projection, Route};
use std::time::Instant;

pub use crate::read::lags::{lags, Lag, READY_LAG_SECONDS, READ_MODELS};

/// `GET /metrics`.
pub async fn metrics_text(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.auth.metrics_token {
        // Compared as digests, in constant time, so the time taken says nothing of the token.
        if crate::api::collect::bearer_token(&headers).is_none_or(|g| !same_secret(&digest(g), &digest(token))) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "/metrics needs the header Authorization: Bearer <SITREP_METRICS_TOKEN>\n",
            )
                .into_response();
        }
    }
    let m = metrics::metrics();
    match lags(&state.pool).await {
        Ok(lags) => {
            for l in lags {
                let label = Projection { projection: l.projection };
                m.projection_lag_events.get_or_create(&label).set(l.events);
                m.projection_lag_seconds.get_or_create(&label).set(l.seconds);
            }
        }
        Err(e) => tracing::warn!(error = format!("{e:#}"), "reading projection lag for /metrics"),
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics::render())
        .into_response()
}

/// `GET /readyz`: 200 once Postgres answers and every one of [`READ_MODELS`] is within
/// [`READY_LAG_SECONDS`] of the log; 503 with the reasons otherwise. `warnings` says when
/// ingest's backlog nears the report stream's limits (`report_backlog` has the figures).
pub async fn ready(State(state): State<AppState>) -> Response {
    match lags(&state.pool).await {
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "why": format!("Postgres: {e:#}")})),
        )
            .into_response(),
        Ok(lags) => {
            let behind: Vec<&Lag> = lags
                .iter()
                .filter(|l| READ_MODELS.contains(&l.projection.as_str()) && l.seconds > READY_LAG_SECONDS)
                .collect();
            let status = if behind.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            // Ingest's backlog near the report stream's limits is a warning, not unreadiness:
            // this process still serves the dashboard, which is what operators need then.
            let (backlog, unread) = match &state.bus {
                Some(bus) => match bus.backlog(state.now()).await {
                    Ok(b) => (Some(b), None),
                    Err(e) => (None, Some(format!("ingest's backlog is unknown: {e:#}"))),
                },
                None => (None, None),
            };
            let warnings: Vec<&str> = backlog
                .iter()
                .filter(|b| b.level != sitrep_infra::bus::BacklogLevel::Ok)
                .map(|b| b.message.as_str())
                .chain(unread.as_deref())
                .collect();
            let why: Vec<String> = behind
                .iter()
                .map(|l| format!("{} is {} events ({:.0} s) behind", l.projection, l.events, l.seconds))
                .collect();
            let body = serde_json::json!({"ready": behind.is_empty(), "why": why, "warnings": warnings,
                                          "projections": lags, "report_backlog": backlog});
            (status, Json(body)).into_response()
        }
    }
}

/// Counts every request by route and status, and times it.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let m = metrics::metrics();
    m.http_requests
        .get_or_create(&metrics::Request { method, route: route.clone(), status: response.status().as_u16() })
        .inc();
    m.http_request_seconds.get_or_create(&Route { route }).observe(started.elapsed().as_secs_f64());
    response
}
