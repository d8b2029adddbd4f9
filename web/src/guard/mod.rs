//! What every request passes before a handler sees it.
//!
//! - [`auth`]: who is looking (sessions, roles, CSRF tokens) and what every page shows besides
//!   its content (the outage banner).
//! - [`limits`]: per-client limits on signing in and HTTP ingest (429 with `Retry-After`), and
//!   password hashes a few at a time.
//! - [`forms`]: the same-origin check every form post passes.
//! - [`hardening`]: no NUL or control bytes in the path, query or form fields, and every
//!   response's `Cache-Control`.

pub mod auth;
pub mod forms;
pub mod hardening;
pub mod limits;
