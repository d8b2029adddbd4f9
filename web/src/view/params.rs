//! Query parameters shared by pages and the API: instants (`at`, `from`, `to`), ranges and
//! steps. Every error names its parameter.

use crate::view::error::{Format, WebError};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// Parses an instant: RFC 3339 (`2026-11-22T02:13:00Z`, a space allowed for the `T`), or what an
/// HTML `datetime-local` input sends (`2026-11-22T02:13`, `2026-11-22T02:13:05`, with optional
/// fractions of a second), taken as UTC like every time on the pages.
pub fn instant(raw: &str) -> Result<OffsetDateTime, String> {
    let raw = raw.trim();
    let normal = match raw.as_bytes().get(10) {
        Some(b' ') | Some(b't') if raw.is_char_boundary(11) => format!("{}T{}", &raw[..10], &raw[11..]),
        _ => raw.to_owned(),
    };
    if let Ok(t) = OffsetDateTime::parse(&normal, &Rfc3339) {
        return Ok(t.to_offset(time::UtcOffset::UTC));
    }
    let fraction = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    let with_seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let without = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    PrimitiveDateTime::parse(&normal, &with_seconds)
        .or_else(|_| PrimitiveDateTime::parse(&normal, &fraction))
        .or_else(|_| PrimitiveDateTime::parse(&normal, &without))
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|_| format!("{raw:?} is not a time; use RFC 3339 such as 2026-11-22T02:13:00Z (UTC)"))
}

/// Parses a step such as `30s`, `5m`, `1h`, `1d`, `1w` or a plain number of seconds: whole
/// seconds, at least one, at most a year.
pub fn duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let usage = "use whole seconds or a number with s, m, h, d or w, such as 30s, 5m, 1h, 1d";
    let plain_units = raw.trim_end_matches(|c: char| c.is_ascii_digit() || " smhdw".contains(c)).is_empty();
    let parsed = match raw.parse::<u64>() {
        Ok(secs) => std::time::Duration::from_secs(secs),
        Err(_) if plain_units => {
            humantime::parse_duration(raw).map_err(|_| format!("{raw:?} is not a step; {usage}"))?
        }
        Err(_) => return Err(format!("{raw:?} is not a step; {usage}")),
    };
    if parsed.subsec_nanos() != 0 {
        return Err(format!("{raw:?} is not a whole number of seconds; {usage}"));
    }
    let d = Duration::try_from(parsed).map_err(|_| format!("{raw:?} is too long"))?;
    if d < Duration::SECOND {
        return Err(format!("{raw:?} must be at least one second"));
    }
    if d > Duration::days(366) {
        return Err(format!("{raw:?} is longer than a year"));
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
        assert_eq!(instant("2026-11-22 02:13:05Z").unwrap(), datetime!(2026-11-22 02:13:05 UTC));
        assert_eq!(instant("2026-11-22 02:13:05").unwrap(), datetime!(2026-11-22 02:13:05 UTC));
        assert_eq!(instant("2026-11-22T02:13:05.5").unwrap(), datetime!(2026-11-22 02:13:05.5 UTC));
        let err = instant("yesterday").unwrap_err();
        assert!(err.contains("\"yesterday\" is not a time"), "{err}");
    }

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!(duration("300").unwrap(), Duration::minutes(5));
        assert_eq!(duration("5m").unwrap(), Duration::minutes(5));
        assert_eq!(duration("1d").unwrap(), Duration::days(1));
        assert_eq!(duration("1h 30m").unwrap(), Duration::minutes(90));
        assert!(duration("0").unwrap_err().contains("at least one second"));
        assert!(duration("500ms").unwrap_err().contains("not a whole number of seconds"));
        assert!(duration("2months").unwrap_err().contains("is not a step"));
        assert!(duration("soon").unwrap_err().contains("use whole seconds"));
        assert!(duration("-5").unwrap_err().contains("is not a step"));
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
