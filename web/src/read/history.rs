//! Reads of the past: metric series, status segments, recent reports, and the state of every
//! component at an instant.
//!
//! The event log is the raw history: every report is an event with its `observed_at` as a
//! column, indexed by component and time (migration V12). Series pick their source by range
//! ([`Source::choose`]): every report for recent windows, rollups for older ones. The state at an
//! instant and a component's last reports are read from the log, for any instant since the
//! first event. This module is the only place where the web side reads the event log.

use crate::read::queries::ComponentState;
use crate::view::chart::Point;
use anyhow::Context;
use deadpool_postgres::Pool;
use serde_json::Value;
use sitrep_domain::component::ComponentEvent;
use sitrep_domain::{component_aggregate_id, ComponentName, SystemName};
use sitrep_projections::timeline::{Resolution, Segment};
use sitrep_projections::Retention;
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

/// Where a series is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Raw,
    Rollup(Resolution),
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Raw => "raw",
            Source::Rollup(r) => r.as_str(),
        }
    }

    /// The finest source that still holds `from`, at no finer resolution than `step`; and the
    /// step to use with it (never finer than the source).
    pub fn choose(from: OffsetDateTime, step: Duration, now: OffsetDateTime, kept: Retention) -> (Source, Duration) {
        let hour = Duration::hours(1);
        let day = Duration::days(1);
        if step < hour && from >= now - kept.raw {
            (Source::Raw, step)
        } else if step < day && from >= now - kept.hourly {
            (Source::Rollup(Resolution::Hour), step.max(hour))
        } else {
            (Source::Rollup(Resolution::Day), step.max(day))
        }
    }
}

/// Steps charts use: about 300 points or fewer per window.
const STEPS: [i64; 13] = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200, 86400];

/// The step a chart of `[from, to)` uses when none is asked for.
pub fn default_step(from: OffsetDateTime, to: OffsetDateTime) -> Duration {
    let wanted = (to - from).whole_seconds() / 300;
    Duration::seconds(STEPS.into_iter().find(|s| *s >= wanted).unwrap_or(86_400 * ((wanted + 86_399) / 86_400)))
}

/// One metric's points over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub metric: String,
    pub points: Vec<Point>,
}

/// A window of a series: `[from, to)` in `step` buckets, read from `source`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub source: Source,
    pub step: Duration,
    /// Where raw history starts (retention): a rollup window reads its last, partial bucket
    /// from raw reports when they are kept, so nothing after `to` leaks in.
    pub raw_from: OffsetDateTime,
}

impl Window {
    /// The window `[from, to)` with the source and step that suit it at `now` (`step` asked
    /// for, or the default). Reports observed up to `archived_until` are no longer in the log
    /// (`sitrep archive`): a window that starts before then reads rollups.
    pub fn new(
        from: OffsetDateTime,
        to: OffsetDateTime,
        step: Option<Duration>,
        now: OffsetDateTime,
        kept: Retention,
        archived_until: Option<OffsetDateTime>,
    ) -> Self {
        let kept = match archived_until {
            Some(until) if now - until < kept.raw => Retention { raw: (now - until).max(Duration::ZERO), ..kept },
            _ => kept,
        };
        let (source, step) = Source::choose(from, step.unwrap_or_else(|| default_step(from, to)), now, kept);
        Self { from, to, source, step, raw_from: now - kept.raw }
    }
}

/// Every metric of a component (or only `metric`) over a window.
pub async fn series(
    pool: &Pool,
    system: &str,
    component: &str,
    metric: Option<&str>,
    w: Window,
) -> anyhow::Result<Vec<Series>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let (from, to) = (w.from, w.to);
    let mut samples = Vec::new();
    match w.source {
        Source::Raw => raw_samples(&client, system, component, metric, from, to, &mut samples).await?,
        Source::Rollup(res) => {
            // Whole buckets from the rollups; the bucket holding `to` from raw reports, when kept.
            let tail = res.bucket(to);
            let tail_from_raw = tail >= w.raw_from && tail < to;
            let rollups_to = if tail_from_raw { tail } else { to };
            let rows = client
                .query(
                    "SELECT metric, bucket, min, max, sum::float8, count, last, last_at FROM metric_rollups
                     WHERE system = $1 AND component = $2 AND resolution = $3 AND bucket >= $4 AND bucket < $5
                       AND ($6::text IS NULL OR metric = $6)
                     ORDER BY last_at",
                    &[&system, &component, &res.as_str(), &res.bucket(from), &rollups_to, &metric],
                )
                .await
                .context("reading metric_rollups")?;
            samples.extend(rows.iter().map(|r| Sample {
                metric: r.get(0),
                at: r.get(1),
                min: r.get(2),
                max: r.get(3),
                sum: r.get(4),
                count: r.get(5),
                last: r.get(6),
            }));
            if tail_from_raw {
                raw_samples(&client, system, component, metric, tail, to, &mut samples).await?;
            }
        }
    }
    Ok(bucket(samples, w.step))
}

/// The aggregate id of a component's events (`system:component`), or `None` for names no
/// component can have. (Names are read as stored, so a component named before the rule against
/// `.` and `..` segments keeps its history.)
fn aggregate_id(system: &str, component: &str) -> Option<String> {
    let (system, component) = (SystemName::parse(system).ok()?, ComponentName::parse_stored(component).ok()?);
    Some(component_aggregate_id(&system, &component))
}

/// Every metric value (or only `metric`'s) reported in `[from, to)`, oldest first.
async fn raw_samples(
    client: &deadpool_postgres::Client,
    system: &str,
    component: &str,
    metric: Option<&str>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    samples: &mut Vec<Sample>,
) -> anyhow::Result<()> {
    let Some(id) = aggregate_id(system, component) else { return Ok(()) };
    let rows = client
        .query(
            "SELECT observed_at, payload->'StatusReported'->'metrics' FROM events
             WHERE aggregate_id = $1 AND observed_at >= $2 AND observed_at < $3
             ORDER BY observed_at, position",
            &[&id, &from, &to],
        )
        .await
        .context("reading reports from the event log")?;
    for r in &rows {
        let at: OffsetDateTime = r.get(0);
        let Some(Value::Object(metrics)) = r.get::<_, Option<Value>>(1) else { continue };
        for (name, v) in metrics {
            if metric.is_none_or(|m| m == name) {
                if let Some(v) = v.as_f64() {
                    samples.push(Sample { metric: name, at, min: v, max: v, sum: v, count: 1, last: v });
                }
            }
        }
    }
    Ok(())
}

/// A value, or a rollup of values, at a time: what [`bucket`] folds.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub metric: String,
    /// When it was observed (for a rollup, its bucket's start).
    pub at: OffsetDateTime,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: i64,
    pub last: f64,
}

/// Folds samples, given oldest last-value first, into `step`-wide buckets aligned to the epoch
/// (as Postgres's `date_bin(step, t, 'epoch')`), one series per metric, sorted by name and time.
pub fn bucket(samples: Vec<Sample>, step: Duration) -> Vec<Series> {
    let step_s = step.whole_seconds().max(1);
    let mut by_metric: std::collections::BTreeMap<String, std::collections::BTreeMap<i64, Point>> = Default::default();
    for s in samples {
        let b = s.at.unix_timestamp().div_euclid(step_s) * step_s;
        let points = by_metric.entry(s.metric).or_default();
        let p = points.entry(b).or_insert_with(|| Point {
            t: OffsetDateTime::from_unix_timestamp(b).unwrap_or(s.at),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            avg: 0.0,
            last: s.last,
            count: 0,
        });
        p.min = p.min.min(s.min);
        p.max = p.max.max(s.max);
        // `avg` holds the running sum until the end.
        p.avg += s.sum;
        p.count += s.count;
        p.last = s.last;
    }
    by_metric
        .into_iter()
        .map(|(metric, points)| Series {
            metric,
            points: points
                .into_values()
                .map(|p| Point { avg: if p.count > 0 { p.avg / p.count as f64 } else { 0.0 }, ..p })
                .collect(),
        })
        .collect()
}

/// Whether a component has ever reported `metric` (its daily rollups are kept for ever).
pub async fn has_metric(pool: &Pool, system: &str, component: &str, metric: &str) -> anyhow::Result<bool> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM metric_rollups
                            WHERE system = $1 AND component = $2 AND resolution = 'day' AND metric = $3)",
            &[&system, &component, &metric],
        )
        .await
        .context("reading metric_rollups")?;
    Ok(row.get(0))
}

/// The status segments of a system's components (or one component's) that overlap
/// `[from, to)`, by component and then oldest first.
pub async fn segments(
    pool: &Pool,
    system: &str,
    component: Option<&str>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> anyhow::Result<Vec<(String, Segment)>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT component, status, started_at, ended_at, last_report_at, ttl_seconds
             FROM status_segments
             WHERE system = $1 AND ($2::text IS NULL OR component = $2)
               AND started_at < $4 AND (ended_at IS NULL OR ended_at > $3)
             ORDER BY component, started_at",
            &[&system, &component, &from, &to],
        )
        .await
        .context("reading status_segments")?;
    Ok(rows
        .iter()
        .map(|r| {
            let segment = Segment {
                status: r.get(1),
                started_at: r.get(2),
                ended_at: r.get(3),
                last_report_at: r.get(4),
                ttl_seconds: r.get(5),
            };
            (r.get(0), segment)
        })
        .collect())
}

/// Groups `(component, segment)` rows by component.
pub fn by_component(rows: Vec<(String, Segment)>) -> HashMap<String, Vec<Segment>> {
    let mut out: HashMap<String, Vec<Segment>> = HashMap::new();
    for (component, segment) in rows {
        out.entry(component).or_default().push(segment);
    }
    out
}

/// One report as history keeps it.
#[derive(Debug, Clone)]
pub struct PastReport {
    pub state: ComponentState,
    pub late: bool,
}

/// A component's newest reports observed at or before `until`, newest first, from the log.
pub async fn recent_reports(
    pool: &Pool,
    system: &str,
    component: &str,
    until: OffsetDateTime,
    limit: i64,
) -> anyhow::Result<Vec<PastReport>> {
    let Some(id) = aggregate_id(system, component) else { return Ok(vec![]) };
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT payload FROM events WHERE aggregate_id = $1 AND observed_at <= $2
             ORDER BY observed_at DESC, position DESC LIMIT $3",
            &[&id, &until, &limit],
        )
        .await
        .context("reading reports from the event log")?;
    rows.iter().map(|r| from_payload(r.get(0))).collect()
}

/// A StatusReported event's payload as a past report (`status_since` is its own time until the
/// caller knows better).
fn from_payload(payload: Value) -> anyhow::Result<PastReport> {
    use serde::Deserialize;
    match ComponentEvent::deserialize(&payload).context("a StatusReported payload")? {
        ComponentEvent::StatusReported(r) => Ok(PastReport {
            late: r.late,
            state: ComponentState {
                system: r.system.to_string(),
                component: r.component.to_string(),
                status: r.status,
                message: r.message,
                metrics: r.metrics.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
                labels: r.labels.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
                ttl_seconds: r.ttl_seconds,
                observed_at: r.observed_at,
                received_at: r.received_at,
                status_since: r.observed_at,
            },
        }),
        other => anyhow::bail!("expected StatusReported, found {other:?}"),
    }
}

/// Which components [`state_at`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    All,
    System(&'a str),
    Component(&'a str, &'a str),
}

impl<'a> Scope<'a> {
    fn system(self) -> Option<&'a str> {
        match self {
            Scope::All => None,
            Scope::System(s) | Scope::Component(s, _) => Some(s),
        }
    }

    fn component(self) -> Option<&'a str> {
        match self {
            Scope::Component(_, c) => Some(c),
            _ => None,
        }
    }
}

/// Every component in `scope` as it stood at `at`: its newest in-order report observed at or
/// before `at` (from the log, one index probe per component that `latest_status` knows), and
/// since when it had had that status. Components that had not reported yet are left out.
pub async fn state_at(pool: &Pool, scope: Scope<'_>, at: OffsetDateTime) -> anyhow::Result<Vec<ComponentState>> {
    let (system, component) = (scope.system(), scope.component());
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT e.payload FROM latest_status l
             CROSS JOIN LATERAL (
                SELECT payload FROM events e
                WHERE e.aggregate_id = l.system || ':' || l.component AND e.observed_at <= $1
                  AND NOT (e.payload->'StatusReported'->>'late')::boolean
                ORDER BY e.observed_at DESC, e.position DESC LIMIT 1) e
             WHERE ($2::text IS NULL OR l.system = $2) AND ($3::text IS NULL OR l.component = $3)
             ORDER BY l.system, l.component",
            &[&at, &system, &component],
        )
        .await
        .context("reading reports from the event log")?;
    let mut states: Vec<ComponentState> =
        rows.iter().map(|r| from_payload(r.get(0)).map(|p| p.state)).collect::<anyhow::Result<_>>()?;
    // Since when: the start of the newest segment with the status it had then.
    let segments = client
        .query(
            "SELECT DISTINCT ON (system, component) system, component, started_at, status, ended_at,
                    last_report_at, ttl_seconds
             FROM status_segments
             WHERE ($2::text IS NULL OR system = $2) AND ($3::text IS NULL OR component = $3)
               AND started_at <= $1 AND status <> 'stale'
             ORDER BY system, component, started_at DESC",
            &[&at, &system, &component],
        )
        .await
        .context("reading status_segments")?;
    let mut since: HashMap<(String, String), OffsetDateTime> = HashMap::new();
    let mut archived = Vec::new();
    let found: std::collections::HashSet<(&str, &str)> =
        states.iter().map(|s| (s.system.as_str(), s.component.as_str())).collect();
    for r in &segments {
        let key: (String, String) = (r.get(0), r.get(1));
        if !found.contains(&(key.0.as_str(), key.1.as_str())) {
            // Its reports up to `at` are archived (`sitrep archive`): its state from the segment.
            archived.push(from_segment(key.clone(), r, at));
        }
        since.insert(key, r.get(2));
    }
    for s in &mut states {
        if let Some(t) = since.get(&(s.system.clone(), s.component.clone())) {
            s.status_since = *t;
        }
    }
    if !archived.is_empty() {
        add_rollup_metrics(&client, &mut archived, at, system).await?;
        states.extend(archived);
        states.sort_by(|a, b| (&a.system, &a.component).cmp(&(&b.system, &b.component)));
    }
    Ok(states)
}

/// A component's state at `at` from the status segment that held then, for a time whose raw
/// reports are archived: the status it was reporting, observed at `at` while the segment went
/// on past it (else at its last report, so the page ages it), no message.
fn from_segment(key: (String, String), r: &tokio_postgres::Row, at: OffsetDateTime) -> ComponentState {
    let started_at: OffsetDateTime = r.get(2);
    let ended_at: Option<OffsetDateTime> = r.get(4);
    let last_report_at: OffsetDateTime = r.get(5);
    let observed_at = if ended_at.is_none_or(|e| e > at) { last_report_at.min(at) } else { last_report_at };
    let status = sitrep_domain::Status::parse(r.get(3)).unwrap_or(sitrep_domain::Status::Unknown);
    ComponentState {
        system: key.0,
        component: key.1,
        status,
        message: None,
        metrics: Default::default(),
        labels: Default::default(),
        ttl_seconds: r.get::<_, i32>(6).try_into().ok(),
        observed_at,
        received_at: observed_at,
        status_since: started_at,
    }
}

/// Fills archived states' metrics with each metric's last value in the hourly rollups of the
/// day before `at` (of buckets whose last value came at or before `at`).
async fn add_rollup_metrics(
    client: &deadpool_postgres::Client,
    states: &mut [ComponentState],
    at: OffsetDateTime,
    system: Option<&str>,
) -> anyhow::Result<()> {
    let rows = client
        .query(
            "SELECT DISTINCT ON (system, component, metric) system, component, metric, last FROM metric_rollups
             WHERE resolution = 'hour' AND bucket > $1::timestamptz - interval '1 day' AND bucket <= $1 AND last_at <= $1
               AND ($2::text IS NULL OR system = $2)
             ORDER BY system, component, metric, bucket DESC",
            &[&at, &system],
        )
        .await
        .context("reading metric_rollups")?;
    let mut by_key: HashMap<(String, String), Vec<(String, f64)>> = HashMap::new();
    for r in rows {
        by_key.entry((r.get(0), r.get(1))).or_default().push((r.get(2), r.get(3)));
    }
    for s in states {
        if let Some(values) = by_key.remove(&(s.system.clone(), s.component.clone())) {
            s.metrics = values.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        }
    }
    Ok(())
}

/// Until when raw reports are archived (the newest `observed_at` that `sitrep archive` moved
/// out of the log), if any are.
pub async fn archived_until(pool: &Pool) -> anyhow::Result<Option<OffsetDateTime>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    Ok(client.query_one("SELECT max(last_observed_at) FROM archive_files", &[]).await?.get(0))
}

/// Hourly averages of the given metrics for a system's components over `[from, to)`, keyed by
/// `(component, metric)`, oldest first. Whole hours come from the rollups. The hour holding `to`
/// does too when `to` is now (`live`): its rollup holds nothing later. For an instant in the past
/// that hour comes from the raw reports before `to`, so the page shows nothing that came after
/// it. (Averaging the raw reports of the current hour on every render of a live page cost more
/// with every minute of the hour: 500 components reporting every few seconds.)
pub async fn sparklines(
    pool: &Pool,
    system: &str,
    metrics: &[&str],
    from: OffsetDateTime,
    to: OffsetDateTime,
    live: bool,
) -> anyhow::Result<HashMap<(String, String), Vec<(OffsetDateTime, f64)>>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let tail = Resolution::Hour.bucket(to);
    // With `live`, the rollups' bucket for `to` is read too, and the raw part is skipped
    // (a condition on a parameter alone, which Postgres checks once, before any scan).
    let rows = client
        .query(
            "SELECT component, metric, bucket, (sum / count)::float8 FROM metric_rollups
             WHERE system = $1 AND resolution = 'hour' AND metric = ANY($2) AND bucket >= $3
               AND (bucket < $4 OR ($6 AND bucket = $4))
             UNION ALL
             SELECT l.component, m.key, $4, avg(m.value::float8)
             FROM latest_status l
             JOIN events e ON e.aggregate_id = l.system || ':' || l.component
             CROSS JOIN jsonb_each(e.payload->'StatusReported'->'metrics') m
             WHERE NOT $6 AND l.system = $1 AND m.key = ANY($2) AND e.observed_at >= $4 AND e.observed_at < $5
             GROUP BY 1, 2
             ORDER BY 1, 2, 3",
            &[&system, &metrics, &Resolution::Hour.bucket(from), &tail, &to, &live],
        )
        .await
        .context("reading metric_rollups")?;
    let mut out: HashMap<(String, String), Vec<(OffsetDateTime, f64)>> = HashMap::new();
    for r in rows {
        out.entry((r.get(0), r.get(1))).or_default().push((r.get(2), r.get(3)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn raw(metric: &str, minute: i64, v: f64) -> Sample {
        let at = datetime!(2026-11-22 09:00 UTC) + Duration::minutes(minute);
        Sample { metric: metric.into(), at, min: v, max: v, sum: v, count: 1, last: v }
    }

    #[test]
    fn samples_fold_into_epoch_aligned_buckets_per_metric() {
        let samples = vec![
            raw("used_pct", 0, 10.0),
            raw("load", 5, 1.0),
            raw("used_pct", 20, 50.0),
            raw("used_pct", 59, 30.0),
            raw("used_pct", 61, 7.0),
        ];
        let series = bucket(samples, Duration::hours(1));
        assert_eq!(series.iter().map(|s| s.metric.as_str()).collect::<Vec<_>>(), ["load", "used_pct"]);
        let used = &series[1].points;
        assert_eq!(used.len(), 2);
        assert_eq!(used[0].t, datetime!(2026-11-22 09:00 UTC));
        assert_eq!((used[0].min, used[0].max, used[0].avg, used[0].last, used[0].count), (10.0, 50.0, 30.0, 30.0, 3));
        assert_eq!((used[1].t, used[1].avg, used[1].count), (datetime!(2026-11-22 10:00 UTC), 7.0, 1));
    }

    #[test]
    fn rollups_fold_by_their_sums_and_counts() {
        let hour = |minute: i64, sum: f64, count: i64, last: f64| Sample {
            metric: "m".into(),
            at: datetime!(2026-11-22 00:00 UTC) + Duration::minutes(minute),
            min: 1.0,
            max: 9.0,
            sum,
            count,
            last,
        };
        let series = bucket(vec![hour(0, 10.0, 2, 4.0), hour(60, 30.0, 3, 8.0)], Duration::hours(3));
        let p = &series[0].points[0];
        assert_eq!((p.avg, p.count, p.last, p.min, p.max), (8.0, 5, 8.0, 1.0, 9.0));
    }
}
