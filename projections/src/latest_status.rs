//! The latest state of every component: status, message, metrics, labels, when it was
//! observed, and since when it has had that status.

use crate::runner::{Projection, REBUILD_STEP, WRITE_ROWS};
use deadpool_postgres::Transaction;
use serde::Deserialize;
use serde_json::Value;
use sitrep_domain::component::{ComponentEvent, AGGREGATE_TYPE};
use sitrep_infra::event_store::StoredEvent;
use std::collections::HashMap;
use time::OffsetDateTime;

#[derive(Clone, Copy)]
pub struct LatestStatus;

/// One component's row, folded from a batch of events before it is written.
#[derive(Debug)]
struct Row {
    status: &'static str,
    message: Option<String>,
    metrics: Value,
    labels: Value,
    ttl_seconds: Option<i32>,
    observed_at: OffsetDateTime,
    received_at: OffsetDateTime,
    last_position: i64,
}

/// What one step folds from its batches before writing: the newest row of every component it
/// saw (in first-seen order) and each component's latest status change. Under a backlog a step
/// sees a component many times and writes its row once.
#[derive(Default)]
pub struct LatestStep {
    rows: HashMap<(String, String), Row>,
    order: Vec<(String, String)>,
    /// Status changes, applied after the rows: a change may come in a later step than its report.
    changes: HashMap<(String, String), OffsetDateTime>,
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
            match ComponentEvent::deserialize(&stored.payload)? {
                ComponentEvent::StatusReported(r) => {
                    if r.late {
                        continue;
                    }
                    let key = (r.system.to_string(), r.component.to_string());
                    if !step.rows.contains_key(&key) {
                        step.order.push(key.clone());
                    }
                    step.rows.insert(
                        key,
                        Row {
                            status: r.status.as_str(),
                            metrics: serde_json::to_value(&r.metrics)?,
                            labels: serde_json::to_value(&r.labels)?,
                            message: r.message,
                            ttl_seconds: r.ttl_seconds.map(|t| t as i32),
                            observed_at: r.observed_at,
                            received_at: r.received_at,
                            last_position: stored.position,
                        },
                    );
                }
                ComponentEvent::StatusChanged { system, component, at, .. } => {
                    step.changes.insert((system.to_string(), component.to_string()), at);
                }
            }
        }
        Ok(())
    }

    async fn finish(&self, tx: &Transaction<'_>, step: LatestStep) -> anyhow::Result<()> {
        for keys in step.order.chunks(WRITE_ROWS) {
            self.upsert(tx, keys, &step.rows).await?;
        }
        self.mark_changes(tx, &step.changes).await
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
            cols.metrics.push(&row.metrics);
            cols.labels.push(&row.labels);
            cols.ttl.push(row.ttl_seconds);
            cols.observed.push(row.observed_at);
            cols.received.push(row.received_at);
            cols.position.push(row.last_position);
        }
        tx.execute(
            "INSERT INTO latest_status AS l (system, component, status, message, metrics, labels, ttl_seconds,
                                             observed_at, received_at, status_since, last_position)
             SELECT s, c, st, m, me, la, t, o, r, o, p
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::int4[],
                         $8::timestamptz[], $9::timestamptz[], $10::int8[])
                  AS u(s, c, st, m, me, la, t, o, r, p)
             ON CONFLICT (system, component) DO UPDATE SET
                status = excluded.status, message = excluded.message, metrics = excluded.metrics,
                labels = excluded.labels, ttl_seconds = excluded.ttl_seconds,
                observed_at = excluded.observed_at, received_at = excluded.received_at,
                -- A new status starts now even if its StatusChanged lands in the next batch.
                status_since = CASE WHEN l.status <> excluded.status THEN excluded.observed_at ELSE l.status_since END,
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
    metrics: Vec<&'a Value>,
    labels: Vec<&'a Value>,
    ttl: Vec<Option<i32>>,
    observed: Vec<OffsetDateTime>,
    received: Vec<OffsetDateTime>,
    position: Vec<i64>,
}
