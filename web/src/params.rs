//! Query parameters shared by pages and the API: instants (`at`, `from`, `to`), ranges and
//! steps. Every error names its parameter.

use crate::error::{Format, WebError};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// Parses an instant: RFC 3339 (`2026-11-22T02:13:00Z`), or what an HTML `datetime-local` input
/// sends (`2026-11-22T02:13` or `2026-11-22T02:13:05`), taken as UTC like every time on the pages.
pub fn instant(raw: &str) -> Result<OffsetDateTime, String> {
    let raw = raw.trim();
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(t.to_offset(time::UtcOffset::UTC));
    }
    let with_seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let without = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    PrimitiveDateTime::parse(raw, &with_seconds)
        .or_else(|_| PrimitiveDateTime::parse(raw, &without))
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|_| format!("{raw:?} is not a time; use RFC 3339 such as 2026-11-22T02:13:00Z (UTC)"))
}

/// Parses a duration such as `5m`, `1h`, `90s`, `1d` or a plain number of seconds.
pub fn duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let parsed = match raw.parse::<u64>() {
        Ok(secs) => std::time::Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(raw)
            .map_err(|e| format!("{raw:?} is not a duration ({e}); use seconds or forms such as 5m, 1h, 1d"))?,
    };
    let d = Duration::try_from(parsed).map_err(|_| format!("{raw:?} is too long"))?;
    if d <= Duration::ZERO {
        return Err(format!("{raw:?} must be longer than zero"));
    }
    Ok(d)
}

/// `?at=`: show the past. Empty means now.
#[derive(Debug, Default, Deserialize)]
pub struct AtQuery {
    pub at: Option<String>,
}

impl AtQuery {
    /// The instant asked for, or `None` for now. An instant at or after `now` is now.
    pub fn resolve(&self, format: Format, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, WebError> {
        match self.at.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(raw) => {
                let t = instant(raw).map_err(|e| WebError::bad_request(format, "at", e))?;
                Ok((t < now).then_some(t))
            }
        }
    }
}

/// The `?at=` suffix that keeps a link in the same instant.
pub fn at_suffix(at: Option<OffsetDateTime>, sep: char) -> String {
    match at {
        Some(t) => format!("{sep}at={}", t.format(&Rfc3339).unwrap_or_default()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn instants_accept_rfc3339_and_form_input_as_utc() {
        assert_eq!(instant("2026-11-22T02:13:00Z").unwrap(), datetime!(2026-11-22 02:13 UTC));
        assert_eq!(instant("2026-11-22T03:13:00+01:00").unwrap(), datetime!(2026-11-22 02:13 UTC));
        assert_eq!(instant("2026-11-22T02:13").unwrap(), datetime!(2026-11-22 02:13 UTC));
        assert_eq!(instant("2026-11-22T02:13:05").unwrap(), datetime!(2026-11-22 02:13:05 UTC));
        let err = instant("yesterday").unwrap_err();
        assert!(err.contains("\"yesterday\" is not a time"), "{err}");
    }

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!(duration("300").unwrap(), Duration::minutes(5));
        assert_eq!(duration("5m").unwrap(), Duration::minutes(5));
        assert_eq!(duration("1d").unwrap(), Duration::days(1));
        assert!(duration("0").unwrap_err().contains("longer than zero"));
        assert!(duration("soon").unwrap_err().contains("is not a duration"));
    }

    #[test]
    fn an_instant_in_the_future_means_now() {
        let now = datetime!(2026-11-22 10:00 UTC);
        let q = |at: &str| AtQuery { at: Some(at.into()) }.resolve(Format::Html, now);
        assert_eq!(q("2026-11-22T09:00:00Z").unwrap(), Some(datetime!(2026-11-22 09:00 UTC)));
        assert_eq!(q("2026-11-22T11:00:00Z").unwrap(), None);
        assert_eq!(q("").unwrap(), None);
        assert!(matches!(q("x"), Err(WebError::BadRequest { ref field, .. }) if field == "at"));
    }
}
