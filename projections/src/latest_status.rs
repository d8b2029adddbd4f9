//! The latest state of every component: status, message, metrics, labels, when it was
//! observed, and since when it has had that status.

use crate::runner::{Projection, REBUILD_STEP, WRITE_ROWS};
use deadpool_postgres::Transaction;
use sitrep_domain::component::{ComponentEvent, AGGREGATE_TYPE};
use sitrep_infra::event_store::StoredEvent;
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;
use tokio_postgres::types::Json;

#[derive(Clone, Copy)]
pub struct LatestStatus;

/// One component's row, folded from a step's events before it is written.
#[derive(Debug)]
struct Row {
    status: &'static str,
    /// When the step's first report of the component was observed: its status starts then if
    /// the stored row had another (or none).
    first_observed_at: OffsetDateTime,
    message: Option<String>,
    metrics: BTreeMap<String, f64>,
    labels: BTreeMap<String, String>,
    ttl_seconds: Option<i32>,
    observed_at: OffsetDateTime,
    received_at: OffsetDateTime,
    last_position: i64,
}

/// What one step folds from its batches before writing: the newest row of every component it
/// saw (in first-seen order), and when statuses started. Under a backlog a step sees a
/// component many times and writes its row once, with the `status_since` that applying its
/// events one at a time would give, wherever the step starts and ends.
#[derive(Default)]
pub struct LatestStep {
    rows: HashMap<(String, String), Row>,
    order: Vec<(String, String)>,
    /// Status changes that came before the step's first report of their component: they apply
    /// to the stored row, before the step's rows are written.
    before: HashMap<(String, String), OffsetDateTime>,
    /// When the status started, where the step itself shows it (a status change, or a report
    /// with another status than the step's previous one): applied after the rows are written.
    after: HashMap<(String, String), OffsetDateTime>,
}

impl Projection for LatestStatus {
    type Step = LatestStep;

    fn name(&self) -> &'static str {
        "latest_status"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["latest_status"]
    }

    /// Live steps stay one batch (the dashboard reads this table first); a rebuild folds many.
    fn rebuild_step_events(&self) -> i64 {
        REBUILD_STEP
    }

    fn reads_metadata(&self) -> bool {
        false
    }

    async fn apply(&self, _: &Transaction<'_>, events: &[StoredEvent], step: &mut LatestStep) -> anyhow::Result<()> {
        for stored in events.iter().filter(|e| e.aggregate_type == AGGREGATE_TYPE) {
            match stored.payload.decode::<ComponentEvent>()? {
                ComponentEvent::StatusReported(r) => {
                    if r.late {
                        continue;
                    }
                    let key = (r.system.to_string(), r.component.to_string());
                    let first_observed_at = match step.rows.get(&key) {
                        Some(row) => {
                            if row.status != r.status.as_str() {
                                step.after.insert(key.clone(), r.observed_at);
                            }
                            row.first_observed_at
                        }
                        None => {
                            step.order.push(key.clone());
                            r.observed_at
                        }
                    };
                    step.rows.insert(
                        key,
                        Row {
                            status: r.status.as_str(),
                            first_observed_at,
                            metrics: r.metrics,
                            labels: r.labels,
                            message: r.message,
                            ttl_seconds: r.ttl_seconds.map(|t| t as i32),
                            observed_at: r.observed_at,
                            received_at: r.received_at,
                            last_position: stored.position,
                        },
                    );
                }
                ComponentEvent::StatusChanged { system, component, at, .. } => {
                    let key = (system.to_string(), component.to_string());
                    if step.rows.contains_key(&key) {
                        step.after.insert(key, at);
                    } else {
                        step.before.insert(key, at);
                    }
                }
            }
        }
        Ok(())
    }

    async fn finish(&self, tx: &Transaction<'_>, step: LatestStep) -> anyhow::Result<()> {
        self.mark_changes(tx, &step.before).await?;
        for keys in step.order.chunks(WRITE_ROWS) {
            self.upsert(tx, keys, &step.rows).await?;
        }
        self.mark_changes(tx, &step.after).await
    }
}

impl LatestStatus {
    async fn upsert(
        &self,
        tx: &Transaction<'_>,
        order: &[(String, String)],
        rows: &HashMap<(String, String), Row>,
    ) -> anyhow::Result<()> {
        if order.is_empty() {
            return Ok(());
        }
        let mut cols = Columns::default();
        for key in order {
            let row = &rows[key];
            cols.system.push(key.0.as_str());
            cols.component.push(key.1.as_str());
            cols.status.push(row.status);
            cols.message.push(row.message.as_deref());
            cols.metrics.push(Json(&row.metrics));
            cols.labels.push(Json(&row.labels));
            cols.ttl.push(row.ttl_seconds);
            cols.observed.push(row.observed_at);
            cols.first_observed.push(row.first_observed_at);
            cols.received.push(row.received_at);
            cols.position.push(row.last_position);
        }
        tx.execute(
            "INSERT INTO latest_status AS l (system, component, status, message, metrics, labels, ttl_seconds,
                                             observed_at, received_at, status_since, last_position)
             SELECT s, c, st, m, me, la, t, o, r, f, p
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::int4[],
                         $8::timestamptz[], $9::timestamptz[], $10::int8[], $11::timestamptz[])
                  AS u(s, c, st, m, me, la, t, o, r, p, f)
             ON CONFLICT (system, component) DO UPDATE SET
                status = excluded.status, message = excluded.message, metrics = excluded.metrics,
                labels = excluded.labels, ttl_seconds = excluded.ttl_seconds,
                observed_at = excluded.observed_at, received_at = excluded.received_at,
                -- A new status starts at the step's first report even if its StatusChanged lands in
                -- the next step. (If the step's own reports change it again, `after` says when.)
                status_since = CASE WHEN l.status <> excluded.status THEN excluded.status_since ELSE l.status_since END,
                last_position = excluded.last_position",
            &[
                &cols.system,
                &cols.component,
                &cols.status,
                &cols.message,
                &cols.metrics,
                &cols.labels,
                &cols.ttl,
                &cols.observed,
                &cols.received,
                &cols.position,
                &cols.first_observed,
            ],
        )
        .await?;
        Ok(())
    }

    async fn mark_changes(
        &self,
        tx: &Transaction<'_>,
        changes: &HashMap<(String, String), OffsetDateTime>,
    ) -> anyhow::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let systems: Vec<&str> = changes.keys().map(|k| k.0.as_str()).collect();
        let components: Vec<&str> = changes.keys().map(|k| k.1.as_str()).collect();
        let ats: Vec<OffsetDateTime> = changes.values().copied().collect();
        tx.execute(
            "UPDATE latest_status l SET status_since = u.at
             FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(s, c, at)
             WHERE l.system = u.s AND l.component = u.c",
            &[&systems, &components, &ats],
        )
        .await?;
        Ok(())
    }
}

#[derive(Default)]
struct Columns<'a> {
    system: Vec<&'a str>,
    component: Vec<&'a str>,
    status: Vec<&'static str>,
    message: Vec<Option<&'a str>>,
    metrics: Vec<Json<&'a BTreeMap<String, f64>>>,
    labels: Vec<Json<&'a BTreeMap<String, String>>>,
    ttl: Vec<Option<i32>>,
    observed: Vec<OffsetDateTime>,
    first_observed: Vec<OffsetDateTime>,
    received: Vec<OffsetDateTime>,
    position: Vec<i64>,
}
