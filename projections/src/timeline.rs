//! Pure time arithmetic for the history projection: how a component's in-order reports become
//! status segments, and how spans of time are split into hourly and daily buckets. No I/O and no
//! clock, so a rebuild from the log gives the same answer.

use time::{Duration, OffsetDateTime};

/// The status of time after a component's freshness window ran out with no new report.
pub const STALE: &str = "stale";

/// A rollup resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    Hour,
    Day,
}

impl Resolution {
    pub const ALL: [Resolution; 2] = [Resolution::Hour, Resolution::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Resolution::Hour => 3_600,
            Resolution::Day => 86_400,
        }
    }

    /// The start of the bucket holding `t` (UTC hours and days, like Postgres's
    /// `date_bin(.., 'epoch')`).
    pub fn bucket(self, t: OffsetDateTime) -> OffsetDateTime {
        let secs = t.unix_timestamp().div_euclid(self.seconds()) * self.seconds();
        OffsetDateTime::from_unix_timestamp(secs).expect("a bucket start is a valid time")
    }
}

/// Splits `[from, to)` into the buckets it crosses: `(bucket start, microseconds inside it)`.
pub fn split(from: OffsetDateTime, to: OffsetDateTime, res: Resolution) -> Vec<(OffsetDateTime, i64)> {
    let mut out = Vec::new();
    let mut start = from;
    while start < to {
        let bucket = res.bucket(start);
        let end = (bucket + Duration::seconds(res.seconds())).min(to);
        out.push((bucket, (end - start).whole_microseconds() as i64));
        start = end;
    }
    out
}

/// One stretch of time in one status. The open segment (`ended_at` is `None`) is fresh until
/// `last_report_at + ttl_seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub status: String,
    pub started_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
    pub last_report_at: OffsetDateTime,
    pub ttl_seconds: i32,
}

impl Segment {
    fn open(status: &str, at: OffsetDateTime, ttl_seconds: i32) -> Self {
        Self { status: status.to_owned(), started_at: at, ended_at: None, last_report_at: at, ttl_seconds }
    }

    /// When the open segment turns stale unless another report arrives.
    pub fn fresh_until(&self) -> OffsetDateTime {
        self.last_report_at + Duration::seconds(i64::from(self.ttl_seconds))
    }
}

/// Time that became history: `[from, to)` was spent in `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub status: String,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

/// What one in-order report did to a component's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    /// Segments written or rewritten, oldest first; the last one is the new open segment. A
    /// segment with the same start as an earlier one replaces it.
    pub segments: Vec<Segment>,
    /// Time closed by this report.
    pub spans: Vec<Span>,
}

/// Advances a component's timeline with a report that is not late (its `at` is not before the
/// open segment's last report).
///
/// The time since the last report is credited to the open segment's status up to its freshness
/// window, and to `stale` beyond it. A change of status, or a stale gap, closes the open segment
/// and opens a new one at `at`.
pub fn advance(open: Option<&Segment>, status: &str, at: OffsetDateTime, ttl_seconds: i32) -> Advance {
    let Some(open) = open else {
        return Advance { segments: vec![Segment::open(status, at, ttl_seconds)], spans: vec![] };
    };
    let stale_from = open.fresh_until();
    let mut spans = Vec::new();
    let fresh_end = at.min(stale_from);
    if open.last_report_at < fresh_end {
        spans.push(Span { status: open.status.clone(), from: open.last_report_at, to: fresh_end });
    }
    if at > stale_from {
        spans.push(Span { status: STALE.to_owned(), from: stale_from, to: at });
        let closed = Segment { ended_at: Some(stale_from), ..open.clone() };
        let gap = Segment {
            status: STALE.to_owned(),
            started_at: stale_from,
            ended_at: Some(at),
            last_report_at: stale_from,
            ttl_seconds: 0,
        };
        return Advance { segments: vec![closed, gap, Segment::open(status, at, ttl_seconds)], spans };
    }
    if open.status == status {
        let extended = Segment { last_report_at: at, ttl_seconds, ..open.clone() };
        return Advance { segments: vec![extended], spans };
    }
    let mut segments = Vec::new();
    if open.started_at < at {
        segments.push(Segment { ended_at: Some(at), last_report_at: at, ..open.clone() });
    }
    // Same start: the new status replaces a segment that lasted no time at all.
    segments.push(Segment::open(status, at, ttl_seconds));
    Advance { segments, spans }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-22 09:00:00 UTC);

    fn min(m: i64) -> OffsetDateTime {
        T0 + Duration::minutes(m)
    }

    #[test]
    fn buckets_are_utc_hours_and_days() {
        let t = datetime!(2026-11-22 09:59:59.5 UTC);
        assert_eq!(Resolution::Hour.bucket(t), datetime!(2026-11-22 09:00 UTC));
        assert_eq!(Resolution::Day.bucket(t), datetime!(2026-11-22 00:00 UTC));
    }

    #[test]
    fn a_span_is_split_at_bucket_boundaries() {
        let parts = split(datetime!(2026-11-22 09:40 UTC), datetime!(2026-11-22 11:10 UTC), Resolution::Hour);
        let secs: Vec<(OffsetDateTime, i64)> = parts.into_iter().map(|(b, us)| (b, us / 1_000_000)).collect();
        assert_eq!(
            secs,
            vec![
                (datetime!(2026-11-22 09:00 UTC), 1200),
                (datetime!(2026-11-22 10:00 UTC), 3600),
                (datetime!(2026-11-22 11:00 UTC), 600)
            ]
        );
        assert!(split(T0, T0, Resolution::Day).is_empty());
    }

    #[test]
    fn given_no_history_when_a_report_arrives_then_a_segment_opens_and_no_time_is_counted() {
        let a = advance(None, "ok", T0, 600);
        assert_eq!(a.segments, vec![Segment::open("ok", T0, 600)]);
        assert!(a.spans.is_empty());
    }

    #[test]
    fn given_an_ok_segment_when_ok_is_reported_again_then_it_extends_and_credits_ok() {
        let open = Segment::open("ok", T0, 600);
        let a = advance(Some(&open), "ok", min(5), 600);
        assert_eq!(a.segments, vec![Segment { last_report_at: min(5), ..open }]);
        assert_eq!(a.spans, vec![Span { status: "ok".into(), from: T0, to: min(5) }]);
    }

    #[test]
    fn given_an_ok_segment_when_degraded_is_reported_then_ok_closes_and_degraded_opens() {
        let open = Segment { last_report_at: min(5), ..Segment::open("ok", T0, 600) };
        let a = advance(Some(&open), "degraded", min(7), 300);
        assert_eq!(
            a.segments,
            vec![
                Segment { ended_at: Some(min(7)), last_report_at: min(7), ..open.clone() },
                Segment::open("degraded", min(7), 300)
            ]
        );
        assert_eq!(a.spans, vec![Span { status: "ok".into(), from: min(5), to: min(7) }]);
    }

    #[test]
    fn given_a_quiet_collector_when_it_reports_again_then_the_gap_past_its_window_is_stale() {
        let open = Segment::open("ok", T0, 600);
        let a = advance(Some(&open), "ok", min(30), 600);
        assert_eq!(
            a.spans,
            vec![
                Span { status: "ok".into(), from: T0, to: min(10) },
                Span { status: STALE.into(), from: min(10), to: min(30) }
            ]
        );
        assert_eq!(a.segments.len(), 3);
        assert_eq!((a.segments[0].ended_at, a.segments[1].status.as_str()), (Some(min(10)), STALE));
        assert_eq!(a.segments[2], Segment::open("ok", min(30), 600));
    }

    #[test]
    fn given_a_segment_that_just_opened_when_a_new_status_has_the_same_time_then_it_replaces_it() {
        let open = Segment::open("ok", T0, 600);
        let a = advance(Some(&open), "failed", T0, 600);
        assert_eq!(a.segments, vec![Segment::open("failed", T0, 600)]);
        assert!(a.spans.is_empty());
    }
}
