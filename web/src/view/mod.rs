//! Presentation shared by pages: status badges, ages and metrics (here), and:
//!
//! - [`layout`]: what every page's frame shows (title, navigation, time travel, banners).
//! - [`templates`]: the Handlebars registry, with every template compiled into the binary.
//! - [`chart`]: server-side SVG charts, timelines and sparklines (coordinates; partials draw).
//! - [`uptime`]: how uptime is counted, from status segments and maintenance.
//! - [`pagecache`]: pages kept while nothing they show has changed.
//! - [`params`]: query parameters (`at`, `from`, `to`, `step`) with errors that name them.
//! - [`error`]: the one error type that becomes an HTTP response.

pub mod chart;
pub mod error;
pub mod layout;
pub mod pagecache;
pub mod params;
pub mod templates;
pub mod uptime;

use serde::Serialize;
use serde_json::{Map, Value};
use sitrep_domain::Status;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// A status as shown: what the collector said, or `stale` when its report is older than the
/// component's freshness window. Ordered worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shown {
    Failed,
    Stale,
    Degraded,
    Unknown,
    Starting,
    Stopped,
    /// Inside a maintenance window that is on: shown over what the collector says.
    Maintenance,
    Ok,
}

impl Shown {
    pub const ALL: [Shown; 8] = [
        Shown::Failed,
        Shown::Stale,
        Shown::Degraded,
        Shown::Unknown,
        Shown::Starting,
        Shown::Stopped,
        Shown::Maintenance,
        Shown::Ok,
    ];

    pub fn of(status: Status, stale: bool) -> Self {
        if stale {
            return Shown::Stale;
        }
        match status {
            Status::Ok => Shown::Ok,
            Status::Degraded => Shown::Degraded,
            Status::Failed => Shown::Failed,
            Status::Starting => Shown::Starting,
            Status::Stopped => Shown::Stopped,
            Status::Unknown => Shown::Unknown,
        }
    }

    /// A status as the history tables store it (a wire status, or `stale`).
    pub fn of_stored(status: &str) -> Self {
        match Status::parse(status) {
            Ok(s) => Self::of(s, false),
            Err(_) if status == "stale" => Shown::Stale,
            Err(_) => Shown::Unknown,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Shown::Failed => "failed",
            Shown::Stale => "stale",
            Shown::Degraded => "degraded",
            Shown::Unknown => "unknown",
            Shown::Starting => "starting",
            Shown::Stopped => "stopped",
            Shown::Maintenance => "maintenance",
            Shown::Ok => "ok",
        }
    }

    pub fn badge(self) -> Badge {
        let (label, icon) = match self {
            Shown::Failed => ("FAILED", "✖"),
            Shown::Stale => ("STALE", "◷"),
            Shown::Degraded => ("DEGRADED", "▲"),
            Shown::Unknown => ("UNKNOWN", "?"),
            Shown::Starting => ("STARTING", "▶"),
            Shown::Stopped => ("STOPPED", "■"),
            Shown::Maintenance => ("MAINTENANCE", "⚒"),
            Shown::Ok => ("OK", "✓"),
        };
        Badge { key: self.key(), label, icon }
    }
}

/// The status badge partial's data: colour class, word and glyph.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Badge {
    pub key: &'static str,
    pub label: &'static str,
    pub icon: &'static str,
}

/// The badge of a system with an outage in force: it outranks what collectors say, since
/// operators know first.
pub fn outage_badge(severity: sitrep_domain::outage::OutageSeverity) -> Badge {
    use sitrep_domain::outage::OutageSeverity as S;
    let (key, label) = match severity {
        S::Critical => ("outage-critical", "CRITICAL OUTAGE"),
        S::Major => ("outage-major", "MAJOR OUTAGE"),
        S::Minor => ("outage-minor", "MINOR OUTAGE"),
    };
    Badge { key, label, icon: "⚠" }
}

/// How old a value is: `text` for the eye ("12 s ago"), `exact` on hover, `iso` for machines.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Age {
    pub text: String,
    pub exact: String,
    pub iso: String,
    pub stale: bool,
}

/// Whether a report observed at `observed_at` is past its freshness window at `now`.
pub fn is_stale(observed_at: OffsetDateTime, ttl_seconds: u32, now: OffsetDateTime) -> bool {
    (now - observed_at).whole_seconds() > i64::from(ttl_seconds)
}

pub fn age(at: OffsetDateTime, now: OffsetDateTime, stale: bool) -> Age {
    Age { text: ago(at, now), exact: utc_text(at), iso: at.format(&Rfc3339).unwrap_or_default(), stale }
}

/// "12 s ago", "5 min ago", "3 h ago", "2 d ago"; "in the future" for clock skew.
pub fn ago(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let secs = (now - at).whole_seconds();
    match secs {
        s if s < -1 => "in the future".into(),
        s if s < 60 => format!("{} s ago", s.max(0)),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// A length of time as a person says it: "45 s", "20 min", "1 h 10 min", "24 h", "2 d 3 h".
pub fn span(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s <= 172_800 && (s % 3600) / 60 == 0 => format!("{} h", s / 3600),
        s if s < 86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s if (s % 86_400) / 3600 == 0 => format!("{} d", s / 86_400),
        s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `2026-11-22 10:00:00 UTC`.
pub fn utc_text(at: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC).format(&fmt).unwrap_or_default()
}

/// A metric as shown: name, formatted value and unit, and a bar for percentages.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricView {
    pub name: String,
    pub value: String,
    pub unit: &'static str,
    /// Whether the metric is a percentage shown with a utilisation bar.
    pub has_bar: bool,
    /// The bar's value in percent (0-100).
    pub bar: f64,
    pub high: bool,
    /// A 24-hour trend, for headline metrics on the system page.
    pub spark: Option<crate::view::chart::Sparkline>,
}

/// Formats a component's metrics, percentages first (they get bars), then by name.
pub fn metrics(map: &Map<String, Value>) -> Vec<MetricView> {
    let mut out: Vec<MetricView> = map.iter().filter_map(|(name, v)| v.as_f64().map(|x| metric(name, x))).collect();
    out.sort_by(|a, b| b.has_bar.cmp(&a.has_bar).then_with(|| a.name.cmp(&b.name)));
    out
}

pub fn metric(name: &str, x: f64) -> MetricView {
    let lower = name.to_ascii_lowercase();
    let is_pct = lower.ends_with("_pct")
        || lower.ends_with("_percent")
        || lower.contains("utilisation")
        || lower.contains("utilization");
    let unit = if is_pct {
        "%"
    } else if lower.ends_with("_bytes") {
        "B"
    } else if lower.ends_with("_tb") {
        "TB"
    } else if lower.ends_with("_gb") {
        "GB"
    } else if lower.ends_with("_seconds") {
        "s"
    } else if lower.ends_with("_ms") {
        "ms"
    } else {
        ""
    };
    MetricView {
        name: name.to_owned(),
        value: number(x),
        unit,
        has_bar: is_pct,
        bar: if is_pct { x.clamp(0.0, 100.0) } else { 0.0 },
        high: is_pct && x >= 90.0,
        spark: None,
    }
}

/// Whole numbers with thousands separators; others with up to two decimals.
pub fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        let digits = (x.abs() as u64).to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if x < 0.0 {
            grouped.insert(0, '-');
        }
        grouped
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        let now = datetime!(2026-11-22 10:00:00 UTC);
        assert_eq!(ago(now - time::Duration::seconds(12), now), "12 s ago");
        assert_eq!(ago(now - time::Duration::minutes(5), now), "5 min ago");
        assert_eq!(ago(now - time::Duration::hours(3), now), "3 h ago");
        assert_eq!(ago(now - time::Duration::days(2), now), "2 d ago");
        assert_eq!(ago(now + time::Duration::minutes(2), now), "in the future");
        assert_eq!(utc_text(now), "2026-11-22 10:00:00 UTC");
    }

    #[test]
    fn spans_read_like_a_person_would_say_them() {
        assert_eq!(span(time::Duration::seconds(45)), "45 s");
        assert_eq!(span(time::Duration::minutes(20)), "20 min");
        assert_eq!(span(time::Duration::minutes(70)), "1 h 10 min");
        assert_eq!(span(time::Duration::hours(12)), "12 h");
        assert_eq!(span(time::Duration::hours(51)), "2 d 3 h");
        assert_eq!(Shown::of_stored("stale"), Shown::Stale);
        assert_eq!(Shown::of_stored("degraded"), Shown::Degraded);
    }

    #[test]
    fn stale_is_past_the_freshness_window() {
        let now = datetime!(2026-11-22 10:00:00 UTC);
        assert!(!is_stale(now - time::Duration::seconds(600), 600, now));
        assert!(is_stale(now - time::Duration::seconds(601), 600, now));
    }

    #[test]
    fn stale_outranks_everything_but_failed() {
        assert!(Shown::Failed < Shown::Stale && Shown::Stale < Shown::Degraded && Shown::Stopped < Shown::Ok);
        assert_eq!(Shown::of(Status::Ok, true), Shown::Stale);
        assert_eq!(Shown::of(Status::Failed, false).badge().label, "FAILED");
    }

    #[test]
    fn numbers_and_units_are_formatted() {
        assert_eq!(number(1203.0), "1,203");
        assert_eq!(number(-1234567.0), "-1,234,567");
        assert_eq!(number(3.2), "3.2");
        assert_eq!(number(0.126), "0.13");
        assert_eq!(number(2.50), "2.5");
        let m = metric("used_pct", 93.5);
        assert_eq!((m.unit, m.has_bar, m.bar, m.high, m.value.as_str()), ("%", true, 93.5, true, "93.5"));
        let idle = metric("utilisation_pct", 0.0);
        assert!(idle.has_bar && idle.bar == 0.0, "0 % still gets its bar");
        assert_eq!(metric("users", 41.0).unit, "");
        assert_eq!(metric("capacity_tb", 38000.0).unit, "TB");
    }
}
