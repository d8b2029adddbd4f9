//! Every URL of sitrep, in one place.

use crate::api::{self, collect, health};
use crate::guard::{auth, hardening, limits};
use crate::pages::{
    alerts, backtest, badges, component, events, feeds, home, live, ops, outages, report, signin, status,
};
use crate::state::AppState;
use crate::view::templates;
use axum::http::header;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// The Content-Security-Policy of every response. Scripts, styles and connections come from
/// sitrep itself only: no inline script or style (the templates have none, and htmx is told not
/// to add its indicator styles), no plugins, no framing, and forms post only to sitrep.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

pub fn router(state: AppState) -> Router {
    let pages = Router::new()
        .route("/", get(home::home))
        .route("/systems/{system}", get(home::system))
        .route("/systems/{system}/components/{*component}", get(component::page))
        .route("/quarantine", get(home::quarantine))
        .route("/quarantine/{id}/resubmit", post(ops::resubmit))
        .route("/quarantine/{id}/discard", post(ops::discard))
        .route("/ops", get(ops::page))
        .route("/reports/sla", get(report::sla_page))
        .route("/status", get(status::page))
        .route("/status/feed.atom", get(feeds::atom))
        .route("/status/feed.rss", get(feeds::rss))
        .route("/badge/{system}/{*rest}", get(badges::get))
        .route("/events", get(events::list))
        .route("/events/{position}", get(events::one))
        .route("/alerts", get(alerts::list_page))
        .route("/alerts/rules", get(alerts::rules_page))
        .route("/alerts/rules/backtest", get(backtest::form).post(backtest::run))
        .route("/alerts/{id}", get(alerts::alert_page))
        .route("/alerts/{id}/acknowledge", post(alerts::acknowledge))
        .route("/alerts/{id}/silence", post(alerts::silence))
        .route("/outages", get(outages::list_page).post(outages::declare))
        .route("/maintenance", post(outages::schedule))
        .route("/systems/{system}/outages/{id}", get(outages::outage_page))
        .route("/systems/{system}/outages/{id}/{action}", post(outages::update_outage))
        .route("/systems/{system}/maintenance/{id}", get(outages::window_page))
        .route("/systems/{system}/maintenance/{id}/{action}", post(outages::update_window))
        .route("/sign-in", get(signin::page).post(signin::sign_in))
        .route("/sign-out", post(signin::sign_out));
    let api = Router::new()
        .route("/api/v1/status", get(api::status_all))
        .route("/api/v1/status/{system}", get(api::status_system))
        .route("/api/v1/history/{system}/{*component}", get(api::history))
        .route("/api/v1/uptime/{system}", get(api::uptime))
        .route("/api/v1/quarantine", get(api::quarantine))
        .route("/api/v1/alerts", get(alerts::list_api))
        .route("/api/v1/alerts/{id}", get(alerts::alert_api))
        .route("/api/v1/events/{position}", get(api::event_api))
        .route("/api/v1/outages", get(outages::api).post(collect::outages))
        .route("/api/v1/maintenance", post(collect::maintenance))
        .route("/api/v1/reports", post(collect::reports));
    let plumbing = Router::new()
        .route(
            "/static/sitrep.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], templates::CSS) }),
        )
        .route(
            "/static/htmx-2.0.11.min.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], templates::HTMX) }),
        )
        .route(
            "/static/htmx-ext-sse-2.2.4.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], templates::HTMX_SSE) }),
        )
        .route("/live", get(live::live))
        .route("/status/live", get(live::status_live))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics_text));
    pages
        .merge(api)
        .merge(plumbing)
        .fallback(home::not_found)
        .route_layer(axum::middleware::from_fn(hardening::refuse_nul_in_forms))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::layer))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), limits::layer))
        .route_layer(axum::middleware::from_fn(health::count_requests))
        .layer(axum::middleware::from_fn(hardening::refuse_control_bytes))
        .layer(axum::middleware::from_fn(hardening::cache_control))
        .layer(security_header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::REFERRER_POLICY, "same-origin"))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Sets `name` on every response that has not set it itself.
fn security_header(name: header::HeaderName, value: &'static str) -> SetResponseHeaderLayer<header::HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, header::HeaderValue::from_static(value))
}

/// Serves until cancelled.
pub async fn serve(listener: TcpListener, mut state: AppState, cancel: CancellationToken) -> std::io::Result<()> {
    // Live pages hold their connection open; they end when the server stops.
    state.shutdown = cancel.clone();
    // The peer's address is kept for per-client limits (limits.rs).
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}
