//! What can be asked of an alert: the evaluator raises, expires silences, ends maintenance and
//! resolves; operators acknowledge and silence.

use super::events::AlertInfo;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq)]
pub enum AlertCommand {
    Raise { info: AlertInfo, at: OffsetDateTime, cause: i64 },
    Acknowledge { by: String, comment: String, at: OffsetDateTime },
    Silence { by: String, comment: String, until: OffsetDateTime, at: OffsetDateTime },
    ExpireSilence { at: OffsetDateTime, cause: i64 },
    EndMaintenance { at: OffsetDateTime, cause: i64 },
    Resolve { reason: String, at: OffsetDateTime, cause: i64 },
}
