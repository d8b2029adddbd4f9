//! # sitrep-web
//!
//! The dashboard, the public face and the JSON API. Every URL of the product is in [`mod@router`];
//! start there. The crate is in layers, each depending only on those below it:
//!
//! - [`mod@router`]: all routes, merged in one place, and `serve`; [`state`]: what handlers share
//!   (pool, settings, clock, caches).
//! - [`pages`]: the HTML pages, one module per page family, and the live stream that keeps open
//!   pages current. Pages depend on the shared pieces below, not on each other (only
//!   [`pages::live`] renders other pages' live parts).
//! - [`api`]: the JSON API, HTTP ingest for collectors, and health and metrics.
//! - [`read`]: reading the read models and the log: latest status, history, notices, alerts,
//!   the SLA arithmetic's inputs, the public face's configuration and what it shows.
//! - [`view`]: presentation shared by pages: the layout, templates, charts, ages, uptime, the
//!   page cache, query parameters, and the one error type that becomes a response.
//! - [`guard`]: what every request passes: who is looking (sessions, roles, CSRF), per-client
//!   limits, the same-origin check of forms, and hardening (control bytes, `Cache-Control`).

pub mod api;
pub mod guard;
pub mod pages;
pub mod read;
pub mod router;
pub mod state;
pub mod view;

pub use router::{router, serve};
pub use state::AppState;
