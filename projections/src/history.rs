//! History: status segments, and hourly and daily rollups of metrics (min, max, sum, count,
//! last) and of the seconds spent in each status. The raw reports are the event log itself
//! (its `observed_at` column, migration V12): this read model keeps only what the log cannot
//! answer quickly.
//!
//! Every write is a commutative merge whose result does not depend on how events were batched
//! (numeric sums, min, max, last by time), or a segment keyed by its start, so a rebuild from
//! the log gives identical tables. Retention ([`prune`]) is separate: it deletes old hourly
//! rollups on a schedule, never events.

use crate::exact::{ExactSum, Numeric};
use crate::runner::{Projection, REBUILD_STEP, WRITE_ROWS};
use crate::timeline::{self, Resolution, Segment};
use anyhow::Context;
use deadpool_postgres::{Pool, Transaction};
use sitrep_domain::component::{ComponentEvent, AGGREGATE_TYPE};
use sitrep_infra::event_store::StoredEvent;
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

/// The history projection. Its only setting is the freshness window for reports that carry no
/// `ttl_seconds`: past it, time counts as stale.
#[derive(Clone, Copy)]
pub struct History {
    pub default_ttl_seconds: u32,
}

type Key = (String, String);

/// One StatusReported event, as the history tables need it.
struct Report {
    key: Key,
    status: &'static str,
    metrics: std::collections::BTreeMap<String, f64>,
    ttl_seconds: Option<i32>,
    observed_at: OffsetDateTime,
    late: bool,
}

/// What one step of history carries from batch to batch, written once by `finish`: metric
/// values folded into their rollup rows, each component's open segment as the step has moved it,
/// the segments it touched, and the seconds to add to the status rollups. Under a backlog a step
/// sees a component many times, and its rollup and segment rows are written once.
#[derive(Default)]
pub struct HistoryStep {
    /// Per component and metric, the rollup rows (an hour and a day, or more where the step
    /// crosses a bucket) that the step's values fold into.
    metrics: HashMap<Key, HashMap<String, Vec<Rollup>>>,
    /// Open segments, loaded once per component per step (`None`: it has none).
    open: HashMap<Key, Option<Segment>>,
    touched: HashMap<(Key, OffsetDateTime), Segment>,
    order: Vec<(Key, OffsetDateTime)>,
    seconds: HashMap<(Key, Resolution, OffsetDateTime, String), i64>,
}

/// A step's values of one metric of one component in one rollup bucket, folded as the stored
/// row merges them: min, max, an exact sum, count, and the last value by `observed_at` (the
/// later report on a tie, as reports come in log order).
struct Rollup {
    resolution: Resolution,
    bucket: OffsetDateTime,
    min: f64,
    max: f64,
    sum: ExactSum,
    count: i64,
    last: f64,
    last_at: OffsetDateTime,
}

impl Rollup {
    fn new(resolution: Resolution, bucket: OffsetDateTime, value: f64, numeric: &Numeric, at: OffsetDateTime) -> Self {
        let mut sum = ExactSum::default();
        sum.add(numeric);
        Rollup { resolution, bucket, min: value, max: value, sum, count: 1, last: value, last_at: at }
    }

    /// Of equal values (0.0 and -0.0), min and max keep the one seen first, here and in the
    /// upsert's `least`/`greatest`.
    fn add(&mut self, value: f64, numeric: &Numeric, at: OffsetDateTime) {
        if value < self.min {
            self.min = value;
        }
        if value > self.max {
            self.max = value;
        }
        self.sum.add(numeric);
        self.count += 1;
        if at >= self.last_at {
            self.last = value;
            self.last_at = at;
        }
    }
}

impl Projection for History {
    type Step = HistoryStep;

    fn name(&self) -> &'static str {
        "history"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["status_segments", "metric_rollups", "status_rollups"]
    }

    /// Rollups and segments merge, so a step covers up to fifty batches when they wait.
    fn step_events(&self) -> i64 {
        50 * crate::runner::BATCH
    }

    fn rebuild_step_events(&self) -> i64 {
        REBUILD_STEP
    }

    fn reads_metadata(&self) -> bool {
        false
    }

    /// What pages and retention read; steps look up only open segments and primary keys.
    fn deferred_indexes(&self) -> &'static [&'static str] {
        &["metric_rollups_retention", "status_rollups_retention"]
    }

    async fn apply(&self, tx: &Transaction<'_>, events: &[StoredEvent], step: &mut HistoryStep) -> anyhow::Result<()> {
        let mut reports = Vec::new();
        for stored in events.iter().filter(|e| e.aggregate_type == AGGREGATE_TYPE) {
            if let ComponentEvent::StatusReported(r) = stored.payload.decode::<ComponentEvent>()? {
                reports.push(Report {
                    key: (r.system.to_string(), r.component.to_string()),
                    status: r.status.as_str(),
                    ttl_seconds: r.ttl_seconds.map(|t| t as i32),
                    metrics: r.metrics,
                    // Postgres keeps microseconds; so does everything computed here, or a stretch
                    // whose start was read back from a table would differ by the nanoseconds from
                    // one computed in the same batch, and results would depend on batching.
                    observed_at: to_micros(r.observed_at),
                    late: r.late,
                });
            }
        }
        if reports.is_empty() {
            return Ok(());
        }
        fold_metrics(&reports, &mut step.metrics);
        self.advance_timelines(tx, &reports, step).await.context("status_segments")
    }

    async fn finish(&self, tx: &Transaction<'_>, step: HistoryStep) -> anyhow::Result<()> {
        merge_metric_rollups(tx, &step.metrics).await.context("metric_rollups")?;
        write_segments(tx, &step.order, &step.touched).await.context("status_segments")?;
        add_status_seconds(tx, &step.seconds).await.context("status_rollups")
    }
}

/// Folds each report's metric values into the step's rollup rows, in log order.
fn fold_metrics(reports: &[Report], metrics: &mut HashMap<Key, HashMap<String, Vec<Rollup>>>) {
    for r in reports.iter().filter(|r| !r.metrics.is_empty()) {
        if !metrics.contains_key(&r.key) {
            metrics.insert(r.key.clone(), HashMap::new());
        }
        let by_metric = metrics.get_mut(&r.key).expect("inserted above");
        for (name, &value) in &r.metrics {
            // JSON has no NaN or infinity, so every value in a report is finite.
            let Some(numeric) = Numeric::of(value) else { continue };
            if !by_metric.contains_key(name.as_str()) {
                by_metric.insert(name.clone(), Vec::with_capacity(Resolution::ALL.len()));
            }
            let rows = by_metric.get_mut(name.as_str()).expect("inserted above");
            for resolution in Resolution::ALL {
                let bucket = resolution.bucket(r.observed_at);
                // Reports come nearly in time order: the bucket is most often the newest row.
                match rows.iter_mut().rev().find(|row| row.resolution == resolution && row.bucket == bucket) {
                    Some(row) => row.add(value, &numeric, r.observed_at),
                    None => rows.push(Rollup::new(resolution, bucket, value, &numeric, r.observed_at)),
                }
            }
        }
    }
}

/// Merges the step's rollup rows into the stored ones: sums add exactly (the same digits and
/// scale as Postgres's own `numeric` sum of the values), so the result is the same however the
/// events were batched.
async fn merge_metric_rollups(
    tx: &Transaction<'_>,
    metrics: &HashMap<Key, HashMap<String, Vec<Rollup>>>,
) -> anyhow::Result<()> {
    let rows: Vec<(&Key, &str, &Rollup)> = metrics
        .iter()
        .flat_map(|(key, by_metric)| {
            by_metric.iter().flat_map(move |(name, rows)| rows.iter().map(move |row| (key, name.as_str(), row)))
        })
        .collect();
    for rows in rows.chunks(WRITE_ROWS) {
        tx.execute(
            "INSERT INTO metric_rollups AS r (system, component, resolution, metric, bucket, min, max, sum, count, last, last_at)
             SELECT s, c, res, m, b, mn, mx, sm::numeric, n, l, la
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::float8[], $7::float8[],
                         $8::text[], $9::int8[], $10::float8[], $11::timestamptz[]) AS u(s, c, res, m, b, mn, mx, sm, n, l, la)
             ON CONFLICT (system, component, resolution, metric, bucket) DO UPDATE SET
                min = least(r.min, excluded.min), max = greatest(r.max, excluded.max),
                sum = r.sum + excluded.sum, count = r.count + excluded.count,
                last = CASE WHEN excluded.last_at >= r.last_at THEN excluded.last ELSE r.last END,
                last_at = greatest(r.last_at, excluded.last_at)",
            &[
                &rows.iter().map(|(k, _, _)| k.0.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|(k, _, _)| k.1.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|(_, _, row)| row.resolution.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|(_, name, _)| *name).collect::<Vec<_>>(),
                &rows.iter().map(|(_, _, row)| row.bucket).collect::<Vec<_>>(),
                &rows.iter().map(|(_, _, row)| row.min).collect::<Vec<_>>(),
                &rows.iter().map(|(_, _, row)| row.max).collect::<Vec<_>>(),
                &rows.iter().map(|(_, _, row)| row.sum.to_numeric()).collect::<Vec<_>>(),
                &rows.iter().map(|(_, _, row)| row.count).collect::<Vec<_>>(),
                &rows.iter().map(|(_, _, row)| row.last).collect::<Vec<_>>(),
                &rows.iter().map(|(_, _, row)| row.last_at).collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    Ok(())
}

impl History {
    /// Moves each component's open segment forward through its in-order reports, noting the
    /// segments it touched and the closed time for the status rollups in the step.
    async fn advance_timelines(
        &self,
        tx: &Transaction<'_>,
        reports: &[Report],
        step: &mut HistoryStep,
    ) -> anyhow::Result<()> {
        let in_order: Vec<&Report> = reports.iter().filter(|r| !r.late).collect();
        let unseen: Vec<&Report> = in_order.iter().copied().filter(|r| !step.open.contains_key(&r.key)).collect();
        if !unseen.is_empty() {
            let mut loaded = load_open_segments(tx, &unseen).await?;
            for r in unseen {
                let segment = loaded.remove(&r.key);
                step.open.entry(r.key.clone()).or_insert(segment);
            }
        }
        for r in in_order {
            let ttl = r.ttl_seconds.unwrap_or(self.default_ttl_seconds as i32);
            let open = step.open.get_mut(&r.key).expect("loaded above");
            let advanced = timeline::advance(open.as_ref(), r.status, r.observed_at, ttl);
            for span in &advanced.spans {
                for res in Resolution::ALL {
                    for (bucket, micros) in timeline::split(span.from, span.to, res) {
                        *step.seconds.entry((r.key.clone(), res, bucket, span.status.clone())).or_default() += micros;
                    }
                }
            }
            for segment in advanced.segments {
                let id = (r.key.clone(), segment.started_at);
                if step.touched.insert(id.clone(), segment.clone()).is_none() {
                    step.order.push(id);
                }
                *open = Some(segment);
            }
        }
        Ok(())
    }
}

async fn load_open_segments(tx: &Transaction<'_>, reports: &[&Report]) -> anyhow::Result<HashMap<Key, Segment>> {
    let systems: Vec<&str> = reports.iter().map(|r| r.key.0.as_str()).collect();
    let components: Vec<&str> = reports.iter().map(|r| r.key.1.as_str()).collect();
    let rows = tx
        .query(
            "SELECT system, component, status, started_at, last_report_at, ttl_seconds
             FROM status_segments
             WHERE ended_at IS NULL
               AND (system, component) IN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[]))",
            &[&systems, &components],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let segment = Segment {
                status: row.get(2),
                started_at: row.get(3),
                ended_at: None,
                last_report_at: row.get(4),
                ttl_seconds: row.get(5),
            };
            ((row.get(0), row.get(1)), segment)
        })
        .collect())
}

async fn write_segments(
    tx: &Transaction<'_>,
    order: &[(Key, OffsetDateTime)],
    touched: &HashMap<(Key, OffsetDateTime), Segment>,
) -> anyhow::Result<()> {
    let segments: Vec<(&Key, &Segment)> = order.iter().map(|id| (&id.0, &touched[id])).collect();
    for segments in segments.chunks(WRITE_ROWS) {
        tx.execute(
            "INSERT INTO status_segments AS g (system, component, started_at, ended_at, status, last_report_at, ttl_seconds)
             SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[],
                                  $6::timestamptz[], $7::int4[])
             ON CONFLICT (system, component, started_at) DO UPDATE SET
                ended_at = excluded.ended_at, status = excluded.status,
                last_report_at = excluded.last_report_at, ttl_seconds = excluded.ttl_seconds",
            &[
                &segments.iter().map(|(k, _)| k.0.as_str()).collect::<Vec<_>>(),
                &segments.iter().map(|(k, _)| k.1.as_str()).collect::<Vec<_>>(),
                &segments.iter().map(|(_, s)| s.started_at).collect::<Vec<_>>(),
                &segments.iter().map(|(_, s)| s.ended_at).collect::<Vec<_>>(),
                &segments.iter().map(|(_, s)| s.status.as_str()).collect::<Vec<_>>(),
                &segments.iter().map(|(_, s)| s.last_report_at).collect::<Vec<_>>(),
                &segments.iter().map(|(_, s)| s.ttl_seconds).collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    Ok(())
}

async fn add_status_seconds(
    tx: &Transaction<'_>,
    seconds: &HashMap<(Key, Resolution, OffsetDateTime, String), i64>,
) -> anyhow::Result<()> {
    let rows: Vec<_> = seconds.iter().collect();
    for rows in rows.chunks(WRITE_ROWS) {
        tx.execute(
            "INSERT INTO status_rollups AS r (system, component, resolution, bucket, status, seconds)
             SELECT s, c, res, b, st, us::numeric / 1000000
             FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::int8[]) AS u(s, c, res, b, st, us)
             ON CONFLICT (system, component, resolution, bucket, status) DO UPDATE SET seconds = r.seconds + excluded.seconds",
            &[
                &rows.iter().map(|(k, _)| k.0 .0.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|(k, _)| k.0 .1.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|(k, _)| k.1.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|(k, _)| k.2).collect::<Vec<_>>(),
                &rows.iter().map(|(k, _)| k.3.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|(_, us)| **us).collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The rows of `table` that retention at `now` keeps, as a SQL condition (for comparing a
/// rebuilt history with a live one pruned at another moment); `None` for tables never pruned.
pub fn kept_rows(table: &str, now: OffsetDateTime, retention: Retention) -> Option<String> {
    let rfc = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let hourly_cutoff = now - retention.hourly - Duration::hours(1);
    match table {
        "metric_rollups" | "status_rollups" => {
            Some(format!("NOT (resolution = 'hour' AND bucket < '{}')", rfc(hourly_cutoff)))
        }
        _ => None,
    }
}

/// `t` with its nanoseconds cut to whole microseconds, as Postgres stores it.
pub fn to_micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}

/// How far back each resolution is read, and how long hourly rollups are kept. Daily rollups
/// and status segments are kept for ever; the event log is pruned only by `sitrep archive`.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Charts of windows that start within this read every report from the log; older windows
    /// read rollups (`SITREP_HISTORY_RAW_DAYS`). Nothing is deleted by it.
    pub raw: Duration,
    pub hourly: Duration,
}

impl Default for Retention {
    /// The settings' defaults: 7 days of raw history, 90 days of hourly rollups.
    fn default() -> Self {
        Self { raw: Duration::days(7), hourly: Duration::days(90) }
    }
}

/// Rows deleted by one [`prune`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub hourly_rollups: u64,
}

/// Deletes hourly rollups older than the retention allows at `now`.
pub async fn prune(pool: &Pool, now: OffsetDateTime, retention: Retention) -> anyhow::Result<Pruned> {
    let client = pool.get().await.context("connecting to Postgres")?;
    prune_with(&**client, now, retention).await
}

/// [`prune`] on a given connection or transaction (tables as its `search_path` finds them).
pub async fn prune_with(
    client: &impl tokio_postgres::GenericClient,
    now: OffsetDateTime,
    retention: Retention,
) -> anyhow::Result<Pruned> {
    // An hourly bucket goes once all of it is past the cutoff.
    let hourly_cutoff = now - retention.hourly - Duration::hours(1);
    let mut hourly_rollups = 0;
    for table in ["metric_rollups", "status_rollups"] {
        hourly_rollups += client
            .execute(&format!("DELETE FROM {table} WHERE resolution = 'hour' AND bucket < $1"), &[&hourly_cutoff])
            .await
            .with_context(|| format!("pruning {table}"))?;
    }
    Ok(Pruned { hourly_rollups })
}
