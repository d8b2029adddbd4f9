//! sitrep reporting on itself as the system `sitrep`, through its own pipeline: every
//! `SITREP_SELF_REPORT_SECONDS` it publishes a batch on `<prefix>.report.sitrep` with the
//! components `postgres`, `nats`, `ingest` and `projection/<name>`, so sitrep's own health shows,
//! alerts and is kept in history like any other system's.
//!
//! One component takes another way: `stream/reports`, ingest's backlog against the report
//! stream's limits (degraded from half of a limit, failed from 80 %, so the `degraded` and
//! `failed` rules alert well before unstored reports would be lost). When ingest is down, a
//! report on NATS would wait in that very backlog, so this one is recorded through the command
//! side directly (cqrs-es on the event store, the path operators' forms take), and the alert
//! evaluator sees it at once.

use async_nats::jetstream::{self, consumer::pull};
use deadpool_postgres::Pool;
use serde_json::{json, Value};
use sitrep_infra::Settings;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Backlog of the ingest consumer at which `ingest` reports degraded.
const INGEST_BACKLOG_DEGRADED: u64 = 10_000;

fn component(name: &str, status: &str, message: String, metrics: Value) -> Value {
    json!({"component": name, "status": status, "message": message, "metrics": metrics,
           "labels": {"kind": "sitrep"}})
}

/// One round of self-reports.
pub async fn reports(pool: &Pool, js: &jetstream::Context, settings: &Settings, every: Duration) -> Value {
    let mut out = Vec::new();
    match pool.get().await {
        Ok(client) => match client
            .query_one(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),
                        pg_database_size(current_database())",
                &[],
            )
            .await
        {
            Ok(row) => out.push(component(
                "postgres",
                "ok",
                "answering".into(),
                json!({"connections": row.get::<_, i64>(0), "size_mb": row.get::<_, i64>(1) / 1_000_000}),
            )),
            Err(e) => out.push(component("postgres", "failed", format!("query failed: {e}"), json!({}))),
        },
        Err(e) => out.push(component("postgres", "failed", format!("no connection: {e}"), json!({}))),
    }
    match js.get_stream(&settings.reports_stream).await {
        Ok(mut stream) => {
            let messages = stream.info().await.map(|i| i.state.messages).unwrap_or(0);
            out.push(component(
                "nats",
                "ok",
                "JetStream answering".into(),
                json!({"report_stream_messages": messages}),
            ));
            match stream.get_consumer::<pull::Config>(&settings.ingest_consumer).await {
                Ok(mut consumer) => match consumer.info().await {
                    Ok(info) => {
                        let backlog = info.num_pending + info.num_ack_pending as u64;
                        let status = if backlog >= INGEST_BACKLOG_DEGRADED { "degraded" } else { "ok" };
                        out.push(component(
                            "ingest",
                            status,
                            format!("{backlog} messages waiting"),
                            json!({"pending": info.num_pending, "ack_pending": info.num_ack_pending,
                                   "redelivered": info.num_redelivered}),
                        ));
                    }
                    Err(e) => out.push(component("ingest", "unknown", format!("consumer info: {e}"), json!({}))),
                },
                Err(_) => out.push(component("ingest", "unknown", "no ingest consumer yet".into(), json!({}))),
            }
        }
        Err(e) => out.push(component("nats", "failed", format!("JetStream: {e}"), json!({}))),
    }
    match sitrep_web::read::lags::lags(pool).await {
        Ok(lags) => {
            for l in lags.into_iter().filter(|l| sitrep_web::read::lags::READ_MODELS.contains(&l.projection.as_str())) {
                let status = match l.seconds {
                    s if s <= 10.0 => "ok",
                    s if s <= 60.0 => "degraded",
                    _ => "failed",
                };
                out.push(component(
                    &format!("projection/{}", l.projection),
                    status,
                    format!("{} events, {:.0} s behind", l.events, l.seconds),
                    json!({"lag_events": l.events, "lag_seconds": (l.seconds * 10.0).round() / 10.0}),
                ));
            }
        }
        Err(e) => tracing::debug!(error = format!("{e:#}"), "no projection lag for the self-report"),
    }
    // Three rounds missed and sitrep's own components go stale.
    json!({"system": "sitrep", "ttl_seconds": every.as_secs() * 3, "reports": out})
}

/// The report on ingest's backlog: the `stream/reports` component, as the wire format has it.
pub async fn backlog_report(js: &jetstream::Context, settings: &Settings) -> Value {
    match sitrep_infra::bus::read_report_stream(js, settings.into()).await {
        Ok(reading) => {
            let b = reading.backlog(time::OffsetDateTime::now_utc());
            component(
                BACKLOG_COMPONENT,
                b.level.status(),
                b.message,
                json!({"backlog_messages": b.messages, "backlog_bytes": b.bytes,
                       "backlog_age_seconds": b.oldest_seconds.round(), "limit_used_pct": (b.used_pct * 10.0).round() / 10.0}),
            )
        }
        Err(e) => component(BACKLOG_COMPONENT, "unknown", format!("{e:#}"), json!({})),
    }
}

/// The component that reports ingest's backlog.
pub const BACKLOG_COMPONENT: &str = "stream/reports";

/// Records `report` (one component of system `sitrep`, freshness `ttl_seconds`) through the
/// command side: the component aggregate on the event store, from its snapshot (so archived
/// events are never needed), as operators' forms record theirs.
pub async fn record(pool: &Pool, report: &Value, ttl_seconds: u64) -> anyhow::Result<()> {
    use cqrs_es::persist::PersistedEventStore;
    use sitrep_domain::component::{Component, ComponentCommand};
    let mut item = report.clone();
    item["system"] = json!("sitrep");
    item["ttl_seconds"] = json!(ttl_seconds);
    let now = time::OffsetDateTime::now_utc();
    let mut decoded = sitrep_domain::wire::decode("sitrep", item.to_string().as_bytes(), now)
        .map_err(|e| anyhow::anyhow!("the self-report does not decode: {e}"))?;
    let report = decoded.reports.remove(0);
    let id = sitrep_domain::component_aggregate_id(&report.system, &report.component);
    let repo = sitrep_infra::event_store::PgEventRepository::new(pool.clone());
    let cqrs =
        cqrs_es::CqrsFramework::new(PersistedEventStore::<_, Component>::new_snapshot_store(repo, 100), vec![], ());
    cqrs.execute(&id, ComponentCommand::ReportStatus { report, received_at: now })
        .await
        .map_err(|e| anyhow::anyhow!("recording {id}: {e}"))
}

/// Publishes self-reports every `every` until cancelled (the first at once).
pub async fn run(pool: Pool, js: jetstream::Context, settings: Settings, every: Duration, cancel: CancellationToken) {
    let subject = settings.report_subject("sitrep");
    loop {
        let backlog = backlog_report(&js, &settings).await;
        if let Err(e) = record(&pool, &backlog, every.as_secs() * 3).await {
            tracing::warn!(error = format!("{e:#}"), "the self-report on ingest's backlog was not recorded");
        }
        let batch = reports(&pool, &js, &settings, every).await;
        match js.publish(subject.clone(), batch.to_string().into()).await {
            Ok(ack) => {
                if let Err(e) = ack.await {
                    tracing::warn!(error = %e, "self-report not stored by JetStream");
                }
            }
            Err(e) => tracing::warn!(error = %e, "self-report not published"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
