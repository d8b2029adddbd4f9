//! Charts drawn on the server as SVG. This module only computes coordinates and labels; the
//! `chart`, `timeline` and `sparkline` partials turn them into SVG elements, so every text that
//! came from a collector is escaped by the template engine like anywhere else.

use crate::view;
use crate::view::uptime::Stretch;
use serde::Serialize;
use time::macros::format_description;
use time::{Duration, OffsetDateTime};

/// Drawing area of a chart, in SVG user units.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// One bucket of a metric series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    #[serde(with = "time::serde::rfc3339")]
    pub t: OffsetDateTime,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub last: f64,
    pub count: i64,
}

/// An axis tick: where it is and what it says.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tick {
    pub at: f64,
    pub label: String,
}

/// A column that shows a point's figures on hover.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hover {
    pub x: f64,
    pub width: f64,
    pub title: String,
}

/// The `chart` partial's data: one metric over one window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Chart {
    pub metric: String,
    pub unit: &'static str,
    pub width: u32,
    pub height: u32,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    pub plot_height: f64,
    /// Where value labels end, tick marks end, and time labels sit.
    pub y_label_x: f64,
    pub x_tick_end: f64,
    pub x_label_y: f64,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    /// Average line, one polyline per run of points without a gap.
    pub lines: Vec<String>,
    /// Min-to-max band, one polygon per run.
    pub bands: Vec<String>,
    pub hovers: Vec<Hover>,
    /// "min 10 · avg 42.5 · max 90 %" over the window; empty when there is no data.
    pub summary: String,
    pub empty: bool,
    /// What the chart shows, for screen readers.
    pub label: String,
}

/// Lays out `points` (oldest first, each one `step` wide) over `[from, to)`.
pub fn chart(metric: &str, points: &[Point], from: OffsetDateTime, to: OffsetDateTime, step: Duration) -> Chart {
    let unit = view::metric(metric, 0.0).unit;
    let (lo, hi) = y_range(metric, points);
    let x = |t: OffsetDateTime| x_of(t, from, to);
    let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - (v - lo) / (hi - lo));
    let col = ((WIDTH - LEFT - RIGHT) * (step / (to - from))).max(1.0);
    let mut lines = Vec::new();
    let mut bands = Vec::new();
    for run in runs(points, step) {
        let mid = |p: &Point| x(p.t + step / 2);
        lines.push(run.iter().map(|p| format!("{:.1},{:.1}", mid(p), y(p.avg))).collect::<Vec<_>>().join(" "));
        let upper = run.iter().map(|p| format!("{:.1},{:.1}", mid(p), y(p.max)));
        let lower = run.iter().rev().map(|p| format!("{:.1},{:.1}", mid(p), y(p.min)));
        bands.push(upper.chain(lower).collect::<Vec<_>>().join(" "));
    }
    let with_unit =
        |v: f64| if unit.is_empty() { view::number(v) } else { format!("{}\u{202f}{unit}", view::number(v)) };
    let hovers = points
        .iter()
        .map(|p| Hover {
            x: x(p.t),
            width: col,
            title: format!(
                "{}: avg {} (min {}, max {}, last {}; {} report{})",
                view::utc_text(p.t),
                with_unit(round2(p.avg)),
                view::number(p.min),
                view::number(p.max),
                view::number(p.last),
                p.count,
                if p.count == 1 { "" } else { "s" }
            ),
        })
        .collect();
    let summary = summary(points).map(|(min, avg, max)| {
        format!("min {} · avg {} · max {}", view::number(min), view::number(round2(avg)), with_unit(max))
    });
    Chart {
        metric: metric.to_owned(),
        unit,
        width: WIDTH as u32,
        height: HEIGHT as u32,
        left: LEFT,
        right: WIDTH - RIGHT,
        top: TOP,
        bottom: HEIGHT - BOTTOM,
        plot_height: HEIGHT - BOTTOM - TOP,
        y_label_x: LEFT - 4.0,
        x_tick_end: HEIGHT - BOTTOM + 4.0,
        x_label_y: HEIGHT - BOTTOM + 16.0,
        x_ticks: time_ticks(from, to).into_iter().map(|(t, label)| Tick { at: x(t), label }).collect(),
        y_ticks: value_ticks(lo, hi).into_iter().map(|v| Tick { at: y(v), label: view::number(v) }).collect(),
        lines,
        bands,
        hovers,
        empty: points.is_empty(),
        label: format!("{metric} from {} to {}", view::utc_text(from), view::utc_text(to)),
        summary: summary.unwrap_or_default(),
    }
}

/// Where `t` falls on the x axis of a chart or timeline of `[from, to)`.
fn x_of(t: OffsetDateTime, from: OffsetDateTime, to: OffsetDateTime) -> f64 {
    LEFT + (WIDTH - LEFT - RIGHT) * ((t - from) / (to - from)).clamp(0.0, 1.0)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn summary(points: &[Point]) -> Option<(f64, f64, f64)> {
    let count: i64 = points.iter().map(|p| p.count).sum();
    if count == 0 {
        return None;
    }
    let min = points.iter().map(|p| p.min).fold(f64::INFINITY, f64::min);
    let max = points.iter().map(|p| p.max).fold(f64::NEG_INFINITY, f64::max);
    let avg = points.iter().map(|p| p.avg * p.count as f64).sum::<f64>() / count as f64;
    Some((min, avg, max))
}

/// Consecutive points with no gap wider than two steps between them.
fn runs(points: &[Point], step: Duration) -> Vec<&[Point]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].t - points[i - 1].t > step * 2 {
            if i > start {
                out.push(&points[start..i]);
            }
            start = i;
        }
    }
    out
}

/// The value axis: percentages run 0-100; other metrics from 0 (or their minimum, if
/// negative) to a round number above their maximum.
fn y_range(metric: &str, points: &[Point]) -> (f64, f64) {
    if view::metric(metric, 0.0).has_bar {
        return (0.0, 100.0);
    }
    let lo = points.iter().map(|p| p.min).fold(0.0, f64::min);
    let hi = points.iter().map(|p| p.max).fold(f64::NEG_INFINITY, f64::max);
    if !hi.is_finite() || hi <= lo {
        return (lo, lo + 1.0);
    }
    let step = nice_step((hi - lo) / 4.0);
    (lo, (hi / step).ceil() * step)
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude)
}

fn value_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let step = nice_step((hi - lo) / 4.0);
    let mut out = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 {
        out.push(round2(v));
        v += step;
    }
    out
}

/// Time ticks: every 4 hours for a day or two, daily for up to ten days, every five days beyond.
fn time_ticks(from: OffsetDateTime, to: OffsetDateTime) -> Vec<(OffsetDateTime, String)> {
    let range = to - from;
    let (every, hours) = if range <= Duration::days(2) {
        (Duration::hours(4), true)
    } else if range <= Duration::days(10) {
        (Duration::days(1), false)
    } else {
        (Duration::days(5), false)
    };
    let every_s = every.whole_seconds();
    let first = (from.unix_timestamp() + every_s - 1).div_euclid(every_s) * every_s;
    let fmt_h = format_description!("[hour]:[minute]");
    let fmt_d = format_description!("[month]-[day]");
    let mut out = Vec::new();
    let mut t = OffsetDateTime::from_unix_timestamp(first).unwrap_or(from);
    while t < to {
        let label = if hours { t.format(&fmt_h) } else { t.format(&fmt_d) };
        out.push((t, label.unwrap_or_default()));
        t += every;
    }
    out
}

/// One coloured segment of a status timeline band.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BandPart {
    pub x: f64,
    pub width: f64,
    pub key: &'static str,
    pub title: String,
}

/// The `timeline` partial's data: statuses over a window, and the ticks under them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Timeline {
    pub width: u32,
    pub left: f64,
    pub right: f64,
    pub parts: Vec<BandPart>,
    pub ticks: Vec<Tick>,
    pub empty: bool,
}

/// Lays out status stretches over `[from, to)`, on the same x axis as [`chart`].
pub fn timeline(stretches: &[Stretch], from: OffsetDateTime, to: OffsetDateTime) -> Timeline {
    let x = |t: OffsetDateTime| x_of(t, from, to);
    let parts = stretches
        .iter()
        .map(|s| {
            let shown = crate::view::Shown::of_stored(&s.status);
            BandPart {
                x: x(s.from),
                width: (x(s.to) - x(s.from)).max(0.5),
                key: shown.key(),
                title: format!(
                    "{} from {} to {} ({})",
                    shown.badge().label,
                    view::utc_text(s.from),
                    view::utc_text(s.to),
                    view::span(s.to - s.from)
                ),
            }
        })
        .collect();
    Timeline {
        width: WIDTH as u32,
        left: LEFT,
        right: WIDTH - RIGHT,
        empty: stretches.is_empty(),
        parts,
        ticks: time_ticks(from, to).into_iter().map(|(t, label)| Tick { at: x(t), label }).collect(),
    }
}

/// The `sparkline` partial's data: a metric's recent trend, small and unlabelled.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sparkline {
    pub points: String,
    pub title: String,
}

/// A sparkline of `(time, value)` over `[from, to)`, 80×16 units; `None` with fewer than two
/// values.
pub fn sparkline(
    metric: &str,
    values: &[(OffsetDateTime, f64)],
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Option<Sparkline> {
    if values.len() < 2 {
        return None;
    }
    let (lo, hi) = if view::metric(metric, 0.0).has_bar {
        (0.0, 100.0)
    } else {
        let lo = values.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);
        let hi = values.iter().map(|v| v.1).fold(f64::NEG_INFINITY, f64::max);
        if hi > lo {
            (lo, hi)
        } else {
            (lo - 1.0, hi + 1.0)
        }
    };
    let points = values
        .iter()
        .map(|(t, v)| {
            let x = 80.0 * ((*t - from) / (to - from)).clamp(0.0, 1.0);
            let y = 1.0 + 14.0 * (1.0 - ((v - lo) / (hi - lo)).clamp(0.0, 1.0));
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let first = values.first().map(|v| v.1).unwrap_or_default();
    let last = values.last().map(|v| v.1).unwrap_or_default();
    let title = format!(
        "{metric}, hourly averages over the last {}: from {} to {}",
        view::span(to - from),
        view::number(round2(first)),
        view::number(round2(last))
    );
    Some(Sparkline { points, title })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const FROM: OffsetDateTime = datetime!(2026-11-21 10:00 UTC);
    const TO: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);

    fn p(hours: i64, v: f64) -> Point {
        Point { t: FROM + Duration::hours(hours), min: v - 1.0, max: v + 1.0, avg: v, last: v, count: 2 }
    }

    #[test]
    fn a_percentage_chart_runs_0_to_100_with_hourly_ticks_and_a_hover_per_point() {
        let c = chart("used_pct", &[p(0, 50.0), p(1, 60.0)], FROM, TO, Duration::hours(1));
        assert_eq!(c.y_ticks.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(), ["0", "25", "50", "75", "100"]);
        assert_eq!(c.x_ticks[0].label, "12:00");
        assert_eq!(c.x_ticks.len(), 6);
        assert_eq!(c.lines.len(), 1);
        assert_eq!(c.hovers.len(), 2);
        assert!(c.hovers[0].title.starts_with("2026-11-21 10:00:00 UTC: avg 50\u{202f}% (min 49, max 51"), "{c:?}");
        assert_eq!(c.summary, "min 49 · avg 55 · max 61\u{202f}%");
    }

    #[test]
    fn a_gap_breaks_the_line() {
        let c = chart("load", &[p(0, 1.0), p(1, 2.0), p(5, 3.0)], FROM, TO, Duration::hours(1));
        assert_eq!(c.lines.len(), 2);
        assert_eq!(c.y_ticks.last().unwrap().label, "4");
    }

    #[test]
    fn an_empty_chart_says_so() {
        let c = chart("load", &[], FROM, TO, Duration::hours(1));
        assert!(c.empty && c.lines.is_empty() && c.summary.is_empty());
    }

    #[test]
    fn a_timeline_names_each_status_on_hover() {
        let s = [
            Stretch { status: "ok".into(), from: FROM, to: FROM + Duration::hours(12) },
            Stretch { status: "failed".into(), from: FROM + Duration::hours(12), to: TO },
        ];
        let t = timeline(&s, FROM, TO);
        assert_eq!(t.parts.len(), 2);
        assert_eq!(t.parts[1].key, "failed");
        assert_eq!(t.parts[1].title, "FAILED from 2026-11-21 22:00:00 UTC to 2026-11-22 10:00:00 UTC (12 h)");
        assert!((t.parts[0].width - t.parts[1].width).abs() < 0.01);
    }

    #[test]
    fn a_sparkline_needs_two_values() {
        assert!(sparkline("used_pct", &[(FROM, 1.0)], FROM, TO).is_none());
        let s = sparkline("used_pct", &[(FROM, 0.0), (TO, 100.0)], FROM, TO).unwrap();
        assert_eq!(s.points, "0.0,15.0 80.0,1.0");
    }
}
