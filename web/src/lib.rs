//! # sitrep-web
//!
//! The dashboard and the JSON API. Every URL of the product is in [`router`]; start there.
//!
//! - [`router`]: all routes, merged in one place, and `serve`.
//! - [`state`]: what handlers share (pool, settings, clock).
//! - [`pages`]: the HTML pages' handlers and their view models (one struct per page).
//! - [`api`]: the JSON API handlers.
//! - [`queries`]: reading the read models (web reads projections only, never the event log).
//! - [`view`]: presentation pieces shared by pages: status badges, ages, metrics.
//! - [`templates`]: the Handlebars registry, with every template compiled into the binary.
//! - [`error`]: the one error type that becomes an HTTP response.

pub mod api;
pub mod error;
pub mod pages;
pub mod queries;
pub mod router;
pub mod state;
pub mod templates;
pub mod view;

pub use router::{router, serve};
pub use state::AppState;
