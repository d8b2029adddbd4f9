//! The HTML pages, one module per page family. Each page has one view-model struct, built in
//! its module and rendered by the template of the same name. Pages depend on `read`, `view` and
//! `guard`, not on each other; only [`live`], the stream that keeps open pages current,
//! renders the live parts of [`home`] and [`status`].
//!
//! - [`home`]: `/`, the system pages, `/quarantine`, and the not-found page.
//! - [`component`]: the component page (charts, timeline, uptime, last reports).
//! - [`alerts`]: the alert list, each alert's page and actions, the rules in force, and their JSON.
//! - [`backtest`]: `/alerts/rules/backtest`, candidate rules over the stored log.
//! - [`events`]: the event log browser (`/events`, `/events/{position}`).
//! - [`outages`]: outages and maintenance windows: pages, forms, JSON.
//! - [`ops`]: `/ops`, sitrep's own health, and the quarantine actions.
//! - [`signin`]: `/sign-in` and `/sign-out`.
//! - [`report`]: the SLA report as a page, a document, CSV, JSON and PDF (`report::pdf`).
//! - [`status`], [`feeds`] and [`badges`]: the public face for a centre's users.
//! - [`live`]: `/live` and `/status/live`, the server-sent events of open pages (htmx SSE).

pub mod alerts;
pub mod backtest;
pub mod badges;
pub mod component;
pub mod events;
pub mod feeds;
pub mod home;
pub mod live;
pub mod ops;
pub mod outages;
pub mod report;
pub mod signin;
pub mod status;
