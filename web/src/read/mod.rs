//! Reading the read models and the log, for pages and the API. No HTML here.
//!
//! - [`queries`]: the latest-status read model.
//! - [`history`]: the past: series, segments, reports, the state at an instant (the only place
//!   the web side reads the event log, for raw history).
//! - [`notices`]: outages and maintenance windows in force, and the banners they put up.
//! - [`alerts`]: the alerts read model, as tiles and component rows show it.
//! - [`lags`]: how far each read model is behind the log.
//! - [`sla`]: the inputs of the SLA arithmetic (segments, maintenance, outages) for a system.
//! - [`public`]: `status.toml`, and what the public face shows of the centre.
//! - [`sla_report`]: the SLA report, computed for a month under the policy.

pub mod alerts;
pub mod history;
pub mod lags;
pub mod notices;
pub mod public;
pub mod queries;
pub mod sla;
pub mod sla_report;
