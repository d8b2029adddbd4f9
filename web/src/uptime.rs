//! Uptime and status stretches over a window, from the stored status segments. Pure: the
//! caller passes the window, so "now" and time travel are the same code.
//!
//! How uptime is counted: time reported `ok` or `degraded` is up; time reported `failed` is
//! down; uptime is up ÷ (up + down). Time that is `stale` (no fresh report), `starting`,
//! `stopped` or `unknown` is not counted either way.

use sitrep_projections::timeline::{Segment, STALE};
use time::OffsetDateTime;

/// What the pages say about how uptime is counted.
pub const HOW_COUNTED: &str = "Uptime is the time reported OK or DEGRADED divided by the time reported OK, DEGRADED \
     or FAILED. Time with no fresh report (STALE), and time STARTING, STOPPED or UNKNOWN, is not counted either way.";

/// A stretch of time in one status, inside a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stretch {
    pub status: String,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

/// The stretches of `segments` (one component's, oldest first) inside `[from, to)`. An open
/// segment is fresh until its last report's window runs out, and stale after that.
pub fn stretches(segments: &[Segment], from: OffsetDateTime, to: OffsetDateTime) -> Vec<Stretch> {
    let mut out = Vec::new();
    let mut push = |status: &str, a: OffsetDateTime, b: OffsetDateTime| {
        let (a, b) = (a.max(from), b.min(to));
        if a < b {
            out.push(Stretch { status: status.to_owned(), from: a, to: b });
        }
    };
    for s in segments {
        match s.ended_at {
            Some(end) => push(&s.status, s.started_at, end),
            None => {
                push(&s.status, s.started_at, s.fresh_until());
                push(STALE, s.fresh_until().max(s.started_at), to);
            }
        }
    }
    out
}

/// Seconds up, down and not counted in a window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Uptime {
    pub up: f64,
    pub down: f64,
    pub not_counted: f64,
}

impl Uptime {
    pub fn of(stretches: &[Stretch]) -> Self {
        let mut u = Uptime::default();
        for s in stretches {
            let secs = (s.to - s.from).as_seconds_f64();
            match s.status.as_str() {
                "ok" | "degraded" => u.up += secs,
                "failed" => u.down += secs,
                _ => u.not_counted += secs,
            }
        }
        u
    }

    /// Uptime over `[from, to)` from one component's segments.
    pub fn within(segments: &[Segment], from: OffsetDateTime, to: OffsetDateTime) -> Self {
        Self::of(&stretches(segments, from, to))
    }

    /// Percent up, or `None` when no time was counted.
    pub fn percent(&self) -> Option<f64> {
        let counted = self.up + self.down;
        (counted > 0.0).then(|| (100.0 * (self.up / counted)).clamp(0.0, 100.0))
    }

    /// "99.93 %", or "no data".
    pub fn text(&self) -> String {
        match self.percent() {
            Some(p) if (99.995..100.0).contains(&p) => "99.99 %".into(),
            Some(p) => format!("{} %", crate::view::number((p * 100.0).round() / 100.0)),
            None => "no data".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let u = Uptime::of(&s);
        assert_eq!((u.up, u.down, u.not_counted), (60.0 * 60.0, 30.0 * 60.0, 30.0 * 60.0));
        assert_eq!(u.text(), "66.67 %");
    }

    #[test]
    fn a_window_clips_the_segments_it_overlaps() {
        let segments = [seg("failed", 0, Some(60), 60, 600), seg("ok", 60, None, 100, 3600)];
        let u = Uptime::of(&stretches(&segments, m(30), m(90)));
        assert_eq!((u.up, u.down), (1800.0, 1800.0));
        assert_eq!(u.text(), "50 %");
    }

    #[test]
    fn no_counted_time_is_no_data_not_zero() {
        let u = Uptime::of(&stretches(&[seg("stopped", 0, None, 0, 600)], m(0), m(5)));
        assert_eq!(u.percent(), None);
        assert_eq!(u.text(), "no data");
        assert_eq!(Uptime { up: 99_999.0, down: 1.0, not_counted: 0.0 }.text(), "99.99 %");
    }
}
