//! What sitrep's figures are compared with, measured in the same run: the raw binary COPY of the
//! same event rows (the limit for writing), the stock cqrs-es path (one `CqrsFramework::execute`
//! and one transaction per report), and a plain sequential read of the events table (the limit
//! for replay).

use super::load::Plan;
use anyhow::Context;
use bytes::{BufMut, BytesMut};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{CqrsFramework, DomainEvent};
use deadpool_postgres::Pool;
use serde_json::json;
use sitrep_domain::component::{Component, ComponentCommand, ComponentEvent, Reported, AGGREGATE_TYPE};
use sitrep_domain::{component_aggregate_id, wire};
use sitrep_infra::event_store::PgEventRepository;
use std::error::Error;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{accepts, to_sql_checked, IsNull, ToSql, Type};

/// Rows per COPY, each in a transaction of its own (as ingest commits a batch at a time).
const COPY_CHUNK: u64 = 5_000;

/// JSON already serialised, sent as `jsonb` without parsing it again.
#[derive(Debug)]
struct Jsonb<'a>(&'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_u8(1); // the jsonb binary format's version
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    accepts!(JSONB);
    to_sql_checked!();
}

/// One event row as ingest would append it for report `i` of the plan.
struct Row {
    event_id: uuid::Uuid,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    payload: String,
    metadata: String,
}

fn row(plan: &Plan, i: u64, now: OffsetDateTime) -> anyhow::Result<Row> {
    let (system, payload) = plan.report(i);
    let mut decoded = wire::decode(&system, payload.as_bytes(), now).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = decoded.reports.remove(0);
    let aggregate_id = component_aggregate_id(&report.system, &report.component);
    let event = ComponentEvent::StatusReported(Reported::new(report, now, false));
    let subject = format!("sitrep.report.{system}");
    Ok(Row {
        event_id: uuid::Uuid::new_v4(),
        aggregate_id,
        sequence: (i / u64::from(plan.components)) as i64 + 1,
        event_type: event.event_type(),
        payload: serde_json::to_string(&event)?,
        metadata: json!({"source": "nats", "subject": subject, "stream_seq": i + 1, "msg_id": null,
                         "message_key": format!("seq:{}", i + 1), "api_key": null})
        .to_string(),
    })
}

/// Rows/s of binary COPY of `reports` StatusReported rows into a copy of the events table with
/// the same indexes and constraints, from one connection. Only the COPY is timed; the rows are
/// made beforehand, a chunk at a time.
pub async fn copy(pool: &Pool, plan: Plan, reports: u64) -> anyhow::Result<f64> {
    let mut client = pool.get().await?;
    client
        .batch_execute("DROP TABLE IF EXISTS bench_copy; CREATE TABLE bench_copy (LIKE events INCLUDING ALL)")
        .await
        .context("creating the COPY baseline's table")?;
    let types = [Type::UUID, Type::TEXT, Type::TEXT, Type::INT8, Type::TEXT, Type::TEXT, Type::JSONB, Type::JSONB];
    let now = OffsetDateTime::now_utc();
    let mut timed = Duration::ZERO;
    let mut from = 0;
    while from < reports {
        let to = (from + COPY_CHUNK).min(reports);
        let rows = (from..to).map(|i| row(&plan, i, now)).collect::<anyhow::Result<Vec<_>>>()?;
        let started = Instant::now();
        let tx = client.transaction().await?;
        let sink = tx
            .copy_in(
                "COPY bench_copy (event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                 FROM STDIN (FORMAT binary)",
            )
            .await?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        futures::pin_mut!(writer);
        for r in &rows {
            let (payload, metadata) = (Jsonb(&r.payload), Jsonb(&r.metadata));
            writer
                .as_mut()
                .write(&[
                    &r.event_id,
                    &AGGREGATE_TYPE,
                    &r.aggregate_id,
                    &r.sequence,
                    &r.event_type,
                    &"1",
                    &payload,
                    &metadata,
                ])
                .await?;
        }
        writer.finish().await.context("COPY into the baseline table")?;
        tx.commit().await?;
        timed += started.elapsed();
        from = to;
    }
    client.batch_execute("DROP TABLE bench_copy").await?;
    Ok(reports as f64 / timed.as_secs_f64())
}

/// Reports/s through the stock cqrs-es path: `CqrsFramework::execute` with one command per
/// report on sitrep's Postgres repository (no snapshots), one transaction per command, one
/// after another. The reports are the plan's first `reports`, for systems of their own.
pub async fn cqrs(pool: &Pool, plan: Plan, reports: u64) -> anyhow::Result<f64> {
    let plan = Plan { system_prefix: "cqrs", ..plan };
    let cqrs = CqrsFramework::new(
        PersistedEventStore::<_, Component>::new_event_store(PgEventRepository::new(pool.clone())),
        vec![],
        (),
    );
    let started = Instant::now();
    for i in 0..reports {
        let (system, payload) = plan.report(i);
        let now = OffsetDateTime::now_utc();
        let mut decoded = wire::decode(&system, payload.as_bytes(), now).map_err(|e| anyhow::anyhow!("{e}"))?;
        let report = decoded.reports.remove(0);
        let id = component_aggregate_id(&report.system, &report.component);
        cqrs.execute(&id, ComponentCommand::ReportStatus { report, received_at: now })
            .await
            .map_err(|e| anyhow::anyhow!("cqrs-es refused a report: {e}"))?;
    }
    Ok(reports as f64 / started.elapsed().as_secs_f64())
}

/// Rows/s of reading the whole events table in log order through a cursor, 1,000 rows a fetch,
/// as a projection reads it; and how many rows there were.
pub async fn sequential_read(pool: &Pool) -> anyhow::Result<(f64, u64)> {
    let mut client = pool.get().await?;
    let started = Instant::now();
    let tx = client.transaction().await?;
    tx.batch_execute("DECLARE bench_read NO SCROLL CURSOR FOR SELECT * FROM events ORDER BY position").await?;
    let fetch = tx.prepare("FETCH 1000 FROM bench_read").await?;
    let mut rows = 0u64;
    loop {
        let got = tx.query(&fetch, &[]).await?;
        if got.is_empty() {
            break;
        }
        rows += got.len() as u64;
    }
    tx.commit().await?;
    Ok((rows as f64 / started.elapsed().as_secs_f64(), rows))
}
