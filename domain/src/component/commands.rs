//! What can be asked of a component.

use crate::wire::Report;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ComponentCommand {
    /// Record a collector's report. `received_at` is when sitrep received it.
    ReportStatus {
        report: Report,
        #[serde(with = "time::serde::rfc3339")]
        received_at: OffsetDateTime,
    },
}
