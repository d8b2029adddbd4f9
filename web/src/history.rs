//! Reads of the past: metric series, status segments, recent reports, and the state of every
//! component at an instant.
//!
//! Series pick their source by range and retention ([`Source::choose`]). The state at an
//! instant comes from the raw history while it is kept, and from the event log beyond that, so
//! any instant since the first event can be shown. This module is the only place where the web
//! side reads the event log.

use crate::chart::Point;
use crate::queries::ComponentState;
use anyhow::Context;
use deadpool_postgres::Pool;
use serde_json::{Map, Value};
use sitrep_domain::component::{ComponentEvent, AGGREGATE_TYPE};
use sitrep_domain::{component_aggregate_id, ComponentName, Status, SystemName};
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
}

impl Window {
    /// The window `[from, to)` with the source and step that suit it at `now` (`step` asked
    /// for, or the default).
    pub fn new(
        from: OffsetDateTime,
        to: OffsetDateTime,
        step: Option<Duration>,
        now: OffsetDateTime,
        kept: Retention,
    ) -> Self {
        let (source, step) = Source::choose(from, step.unwrap_or_else(|| default_step(from, to)), now, kept);
        Self { from, to, source, step }
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
    let step_s = w.step.as_seconds_f64();
    let rows = match w.source {
        Source::Raw => client
            .query(
                "SELECT m.key, date_bin(make_interval(secs => $5), h.observed_at, timestamptz 'epoch') AS b,
                        min(m.v), max(m.v), avg(m.v), (array_agg(m.v ORDER BY h.observed_at DESC, h.position DESC))[1],
                        count(*)
                 FROM history_reports h
                 CROSS JOIN LATERAL (SELECT key, value::float8 AS v FROM jsonb_each(h.metrics)) AS m
                 WHERE h.system = $1 AND h.component = $2 AND h.observed_at >= $3 AND h.observed_at < $4
                   AND ($6::text IS NULL OR m.key = $6)
                 GROUP BY 1, 2 ORDER BY 1, 2",
                &[&system, &component, &from, &to, &step_s, &metric],
            )
            .await
            .context("reading history_reports")?,
        Source::Rollup(res) => client
            .query(
                "SELECT metric, date_bin(make_interval(secs => $5), bucket, timestamptz 'epoch') AS b,
                        min(min), max(max), (sum(sum) / sum(count))::float8,
                        (array_agg(last ORDER BY last_at DESC))[1], sum(count)::int8
                 FROM metric_rollups
                 WHERE system = $1 AND component = $2 AND resolution = $7 AND bucket >= $3 AND bucket < $4
                   AND ($6::text IS NULL OR metric = $6)
                 GROUP BY 1, 2 ORDER BY 1, 2",
                &[&system, &component, &res.bucket(from), &to, &step_s, &metric, &res.as_str()],
            )
            .await
            .context("reading metric_rollups")?,
    };
    let mut out: Vec<Series> = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let point = Point { t: r.get(1), min: r.get(2), max: r.get(3), avg: r.get(4), last: r.get(5), count: r.get(6) };
        match out.last_mut() {
            Some(s) if s.metric == name => s.points.push(point),
            _ => out.push(Series { metric: name, points: vec![point] }),
        }
    }
    Ok(out)
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

/// A component's newest reports observed at or before `until`, newest first: from the raw
/// history while it is kept, from the event log beyond.
pub async fn recent_reports(
    pool: &Pool,
    system: &str,
    component: &str,
    until: OffsetDateTime,
    limit: i64,
    raw_from: OffsetDateTime,
) -> anyhow::Result<Vec<PastReport>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    if until >= raw_from {
        let rows = client
            .query(
                "SELECT status, message, metrics, labels, ttl_seconds, observed_at, received_at, late
                 FROM history_reports
                 WHERE system = $1 AND component = $2 AND observed_at <= $3
                 ORDER BY observed_at DESC, position DESC LIMIT $4",
                &[&system, &component, &until, &limit],
            )
            .await
            .context("reading history_reports")?;
        return rows
            .iter()
            .map(|r| {
                let status: String = r.get(0);
                Ok(PastReport {
                    state: ComponentState {
                        system: system.to_owned(),
                        component: component.to_owned(),
                        status: Status::parse(&status).map_err(anyhow::Error::msg)?,
                        message: r.get(1),
                        metrics: object(r.get(2)),
                        labels: object(r.get(3)),
                        ttl_seconds: r.get::<_, Option<i32>>(4).map(|t| t as u32),
                        observed_at: r.get(5),
                        received_at: r.get(6),
                        status_since: r.get(5),
                    },
                    late: r.get(7),
                })
            })
            .collect();
    }
    let (Ok(sys), Ok(comp)) = (SystemName::parse(system), ComponentName::parse(component)) else {
        return Ok(vec![]);
    };
    let rows = client
        .query(
            "SELECT payload FROM events
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND event_type = $3
               AND (payload->'StatusReported'->>'observed_at')::timestamptz <= $4
             ORDER BY sequence DESC LIMIT $5",
            &[&AGGREGATE_TYPE, &component_aggregate_id(&sys, &comp), &ComponentEvent::STATUS_REPORTED, &until, &limit],
        )
        .await
        .context("reading the event log")?;
    rows.iter().map(|r| from_payload(r.get(0))).collect()
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A StatusReported event's payload as a past report (`status_since` is its own time until the
/// caller knows better).
fn from_payload(payload: Value) -> anyhow::Result<PastReport> {
    use serde::Deserialize;
    match ComponentEvent::deserialize(&payload).context("a StatusReported payload")? {
        ComponentEvent::StatusReported {
            system,
            component,
            status,
            observed_at,
            received_at,
            message,
            metrics,
            labels,
            ttl_seconds,
            late,
        } => Ok(PastReport {
            state: ComponentState {
                system: system.to_string(),
                component: component.to_string(),
                status,
                message,
                metrics: metrics.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
                labels: labels.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
                ttl_seconds,
                observed_at,
                received_at,
                status_since: observed_at,
            },
            late,
        }),
        other => anyhow::bail!("expected StatusReported, found {other:?}"),
    }
}

/// Every component (of one system, or of all) as it stood at `at`: its newest in-order report
/// observed at or before `at`, and since when it had had that status. Components that had not
/// reported yet are left out.
pub async fn state_at(
    pool: &Pool,
    system: Option<&str>,
    at: OffsetDateTime,
    raw_from: OffsetDateTime,
) -> anyhow::Result<Vec<ComponentState>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let mut states: Vec<ComponentState> = if at >= raw_from {
        let rows = client
            .query(
                "SELECT l.system, l.component, h.status, h.message, h.metrics, h.labels, h.ttl_seconds,
                        h.observed_at, h.received_at
                 FROM latest_status l
                 CROSS JOIN LATERAL (
                    SELECT * FROM history_reports h
                    WHERE h.system = l.system AND h.component = l.component AND NOT h.late AND h.observed_at <= $1
                    ORDER BY h.observed_at DESC, h.position DESC LIMIT 1) h
                 WHERE $2::text IS NULL OR l.system = $2
                 ORDER BY l.system, l.component",
                &[&at, &system],
            )
            .await
            .context("reading history_reports")?;
        rows.iter()
            .map(|r| {
                let status: String = r.get(2);
                Ok(ComponentState {
                    system: r.get(0),
                    component: r.get(1),
                    status: Status::parse(&status).map_err(anyhow::Error::msg)?,
                    message: r.get(3),
                    metrics: object(r.get(4)),
                    labels: object(r.get(5)),
                    ttl_seconds: r.get::<_, Option<i32>>(6).map(|t| t as u32),
                    observed_at: r.get(7),
                    received_at: r.get(8),
                    status_since: r.get(7),
                })
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        let prefix = system.map(|s| format!("{s}:")).unwrap_or_default();
        let rows = client
            .query(
                "SELECT DISTINCT ON (aggregate_id) payload FROM events
                 WHERE aggregate_type = $1 AND event_type = $2 AND starts_with(aggregate_id, $3)
                   AND NOT (payload->'StatusReported'->>'late')::boolean AND (payload->'StatusReported'->>'observed_at')::timestamptz <= $4
                 ORDER BY aggregate_id, sequence DESC",
                &[&AGGREGATE_TYPE, &ComponentEvent::STATUS_REPORTED, &prefix, &at],
            )
            .await
            .context("reading the event log")?;
        rows.iter().map(|r| from_payload(r.get(0)).map(|p| p.state)).collect::<anyhow::Result<_>>()?
    };
    // Since when: the start of the newest segment with the status it had then.
    let since = client
        .query(
            "SELECT DISTINCT ON (system, component) system, component, started_at
             FROM status_segments
             WHERE ($2::text IS NULL OR system = $2) AND started_at <= $1 AND status <> 'stale'
             ORDER BY system, component, started_at DESC",
            &[&at, &system],
        )
        .await
        .context("reading status_segments")?;
    let since: HashMap<(String, String), OffsetDateTime> =
        since.iter().map(|r| ((r.get(0), r.get(1)), r.get(2))).collect();
    for s in &mut states {
        if let Some(t) = since.get(&(s.system.clone(), s.component.clone())) {
            s.status_since = *t;
        }
    }
    Ok(states)
}

/// Hourly averages of the given metrics for a system's components over `[from, to)`, keyed by
/// `(component, metric)`, oldest first.
pub async fn sparklines(
    pool: &Pool,
    system: &str,
    metrics: &[&str],
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> anyhow::Result<HashMap<(String, String), Vec<(OffsetDateTime, f64)>>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT component, metric, bucket, (sum / count)::float8 FROM metric_rollups
             WHERE system = $1 AND resolution = 'hour' AND metric = ANY($2) AND bucket >= $3 AND bucket < $4
             ORDER BY component, metric, bucket",
            &[&system, &metrics, &Resolution::Hour.bucket(from), &to],
        )
        .await
        .context("reading metric_rollups")?;
    let mut out: HashMap<(String, String), Vec<(OffsetDateTime, f64)>> = HashMap::new();
    for r in rows {
        out.entry((r.get(0), r.get(1))).or_default().push((r.get(2), r.get(3)));
    }
    Ok(out)
}
