//! The statuses a collector may report.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a collector says about a component. The read side adds `stale` (no report within the
/// component's freshness window) on top of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Degraded,
    Failed,
    Starting,
    Stopped,
    Unknown,
}

impl Status {
    pub const ALL: [Status; 6] =
        [Status::Ok, Status::Degraded, Status::Failed, Status::Starting, Status::Stopped, Status::Unknown];

    /// Parses the wire spelling (lower case, exactly as documented).
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| {
            format!("{raw:?} is not a status; expected one of ok, degraded, failed, starting, stopped, unknown")
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Degraded => "degraded",
            Status::Failed => "failed",
            Status::Starting => "starting",
            Status::Stopped => "stopped",
            Status::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_wire_spelling() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
    }

    #[test]
    fn an_unknown_status_is_rejected_with_the_allowed_values() {
        let err = Status::parse("OK").unwrap_err();
        assert!(err.contains("\"OK\" is not a status"), "{err}");
        assert!(err.contains("ok, degraded, failed"), "{err}");
    }
}
