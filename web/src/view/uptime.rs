//! Uptime over a window, from the stored status segments and the maintenance windows: the
//! default SLA policy (`sitrep_projections::sla`), so the component page, the uptime API and the
//! SLA report count alike. Pure: the caller passes the window, so "now" and time travel are the
//! same code.
//!
//! How uptime is counted: time reported `ok` or `degraded` is up; time reported `failed` is
//! down; uptime is up ÷ (up + down). Time inside a maintenance window or reservation that names
//! the component is excluded. Time that is `stale` (no fresh report), `starting`, `stopped` or
//! `unknown` is not counted either way.

use sitrep_projections::sla::{self, Policy, Span};
pub use sitrep_projections::sla::{stretches, Stretch};
use sitrep_projections::timeline::Segment;
use time::OffsetDateTime;

/// The windows uptime is given over (and the component page charts), with their query value.
pub const RANGES: [(&str, &str, time::Duration); 3] = [
    ("24h", "24 h", time::Duration::days(1)),
    ("7d", "7 d", time::Duration::days(7)),
    ("30d", "30 d", time::Duration::days(30)),
];

/// What the pages say about how uptime is counted.
pub const HOW_COUNTED: &str = "Uptime is the time reported OK or DEGRADED divided by the time reported OK, DEGRADED \
     or FAILED. Time inside a maintenance window or reservation that names the component is excluded. Time with no \
     fresh report (STALE), and time STARTING, STOPPED or UNKNOWN, is not counted either way.";

/// Seconds up, down, in maintenance and not counted in a window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Uptime {
    pub up: f64,
    pub down: f64,
    pub maintenance: f64,
    pub not_counted: f64,
}

impl Uptime {
    /// Uptime over `[from, to)` from one component's segments and the maintenance windows that
    /// name it.
    pub fn within(segments: &[Segment], maintenance: &[Span], from: OffsetDateTime, to: OffsetDateTime) -> Self {
        let input = sla::Input { segments, maintenance: maintenance.to_vec(), outages: vec![] };
        let f = sla::component(&input, &Policy::default(), from, to);
        Uptime { up: f.up, down: f.down, maintenance: f.maintenance, not_counted: f.unknown }
    }

    /// Percent up, or `None` when no time was counted.
    pub fn percent(&self) -> Option<f64> {
        sla::availability(self.up, self.down)
    }

    /// "99.93 %", or "no data".
    pub fn text(&self) -> String {
        percent_text(self.percent())
    }
}

/// "99.93 %" (never "100 %" for anything short of it), or "no data".
pub fn percent_text(p: Option<f64>) -> String {
    match p {
        Some(p) if (99.995..100.0).contains(&p) => "99.99 %".into(),
        Some(p) => format!("{} %", crate::view::number((p * 100.0).round() / 100.0)),
        None => "no data".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitrep_projections::timeline::STALE;
    use time::macros::datetime;
    use time::Duration;

    const T0: OffsetDateTime = datetime!(2026-11-22 06:00 UTC);

    fn m(minutes: i64) -> OffsetDateTime {
        T0 + Duration::minutes(minutes)
    }

    fn seg(status: &str, from: i64, to: Option<i64>, last: i64, ttl: i32) -> Segment {
        Segment {
            status: status.into(),
            started_at: m(from),
            ended_at: to.map(m),
            last_report_at: m(last),
            ttl_seconds: ttl,
        }
    }

    #[test]
    fn given_ok_degraded_failed_ok_then_uptime_counts_ok_and_degraded_as_up() {
        let segments = [
            seg("ok", 0, Some(20), 20, 600),
            seg("degraded", 20, Some(40), 40, 600),
            seg("failed", 40, Some(70), 70, 600),
            seg("ok", 70, None, 80, 600),
        ];
        // The open ok segment is fresh until 80 + 10 min; from 90 to 120 it is stale.
        let s = stretches(&segments, m(0), m(120));
        assert_eq!(s.last().unwrap(), &Stretch { status: STALE.into(), from: m(90), to: m(120) });
        let u = Uptime::within(&segments, &[], m(0), m(120));
        assert_eq!((u.up, u.down, u.not_counted), (60.0 * 60.0, 30.0 * 60.0, 30.0 * 60.0));
        assert_eq!(u.text(), "66.67 %");
    }

    #[test]
    fn time_in_maintenance_is_excluded() {
        let segments =
            [seg("ok", 0, Some(40), 40, 600), seg("failed", 40, Some(70), 70, 600), seg("ok", 70, None, 120, 600)];
        let window = [Span { from: m(40), to: m(60) }];
        let u = Uptime::within(&segments, &window, m(0), m(120));
        // Up 0–40 and 70–120, down 60–70: the failure from 40 to 60 was in the window.
        assert_eq!((u.up, u.down, u.maintenance), (90.0 * 60.0, 10.0 * 60.0, 20.0 * 60.0));
        assert_eq!(u.text(), "90 %");
    }

    #[test]
    fn a_window_clips_the_segments_it_overlaps() {
        let segments = [seg("failed", 0, Some(60), 60, 600), seg("ok", 60, None, 100, 3600)];
        let u = Uptime::within(&segments, &[], m(30), m(90));
        assert_eq!((u.up, u.down), (1800.0, 1800.0));
        assert_eq!(u.text(), "50 %");
    }

    #[test]
    fn no_counted_time_is_no_data_not_zero() {
        let u = Uptime::within(&[seg("stopped", 0, None, 0, 600)], &[], m(0), m(5));
        assert_eq!(u.percent(), None);
        assert_eq!(u.text(), "no data");
        let almost = Uptime { up: 99_999.0, down: 1.0, ..Uptime::default() };
        assert_eq!(almost.text(), "99.99 %");
    }
}
