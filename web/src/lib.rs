//! # sitrep-web
//!
//! The dashboard and the JSON API. Every URL of the product is in [`router`]; start there.
//!
//! - [`router`]: all routes, merged in one place, and `serve`.
//! - [`state`]: what handlers share (pool, settings, clock).
//! - [`pages`]: the HTML pages' handlers and their view models (one struct per page).
//! - [`component`]: the component page (charts, timeline, uptime, last reports).
//! - [`alerts`]: the alert list, each alert's page and actions, the rules in force, and their JSON.
//! - [`api`]: the JSON API handlers, including history (JSON and CSV) and uptime.
//! - [`queries`]: reading the latest-status read model.
//! - [`events`]: the event log browser (`/events`, `/events/{position}`).
//! - [`auth`]: who is looking (sessions, roles, CSRF tokens) and what every page shows besides
//!   its content (the outage banner); [`signin`]: `/sign-in` and `/sign-out`.
//! - [`collect`]: HTTP ingest for collectors (`POST /api/v1/reports` and friends, API keys).
//! - [`outages`]: outages and maintenance windows: banner, pages, forms, JSON.
//! - [`limits`]: per-client limits on signing in and HTTP ingest (429 with `Retry-After`), and
//!   password hashes a few at a time.
//! - [`forms`]: the same-origin check every form post passes.
//! - [`hardening`]: what every request passes (no NUL or control bytes in the path, query or
//!   form fields) and every response gets (`Cache-Control`).
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`, and the middleware that counts requests.
//! - [`history`]: reading the past: series, segments, reports, the state at an instant (the
//!   only place the web side reads the event log, for instants older than raw history).
//! - [`pagecache`]: `/` and system pages kept while nothing they show has changed.
//! - [`live`]: `/live`, the server-sent events that keep open pages current (htmx SSE).
//! - [`ops`]: `/ops`, sitrep's own health, and the quarantine actions.
//! - [`params`]: query parameters (`at`, `from`, `to`, `step`) with errors that name them.
//! - [`uptime`]: how uptime is counted, from status segments.
//! - [`chart`]: server-side SVG charts, timelines and sparklines (coordinates; partials draw).
//! - [`view`]: presentation pieces shared by pages: status badges, ages, metrics.
//! - [`templates`]: the Handlebars registry, with every template compiled into the binary.
//! - [`error`]: the one error type that becomes an HTTP response.

pub mod alerts;
pub mod api;
pub mod auth;
pub mod badges;
pub mod chart;
pub mod collect;
pub mod component;
pub mod error;
pub mod events;
pub mod feeds;
pub mod forms;
pub mod hardening;
pub mod health;
pub mod history;
pub mod limits;
pub mod live;
pub mod ops;
pub mod outages;
pub mod pagecache;
pub mod pages;
pub mod params;
pub mod public;
pub mod queries;
pub mod report;
pub mod report_pdf;
pub mod router;
pub mod signin;
pub mod sla;
pub mod state;
pub mod status;
pub mod templates;
pub mod uptime;
pub mod view;

pub use router::{router, serve};
pub use state::AppState;
