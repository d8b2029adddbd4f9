//! `/ops`: sitrep's own health for the platform team: read models, ingest, JetStream,
//! quarantine and Postgres. Also the quarantine actions: re-submit a message (after fixing
//! what rejected it) or discard it.

use crate::guard::auth::Viewer;
use crate::read::lags::{self, Lag};
use crate::state::{AppState, Bus};
use crate::view::error::{Format, WebError};
use crate::view::layout::Layout;
use crate::view::templates;
use crate::view::{self, Age};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Serialize;
use sitrep_infra::auth::Role;
use sitrep_infra::metrics;
use sitrep_infra::{quarantine, InfraError};

#[derive(Debug, Serialize)]
pub struct OpsPage {
    pub layout: Layout,
    pub projections: Vec<ProjectionRow>,
    pub ingest: IngestView,
    pub streams: Vec<StreamRow>,
    pub consumer: Option<ConsumerRow>,
    /// Ingest's backlog against the report stream's limits.
    pub backlog: Option<BacklogView>,
    pub bus_error: Option<String>,
    pub quarantine_total: i64,
    pub quarantined: Vec<QuarantinedRow>,
    /// Receivers and webhook routes with deliveries that failed in the last 24 hours.
    pub failing_receivers: Vec<FailingReceiver>,
    pub postgres: PostgresView,
}

/// A receiver (or a route's own webhook) whose deliveries failed lately.
#[derive(Debug, Serialize)]
pub struct FailingReceiver {
    pub name: String,
    pub failed: i64,
    pub delivered: i64,
    pub last_error: String,
    pub last_failed: view::Age,
    /// The latest alert it failed to tell of, to look at its page.
    pub alert_url: String,
}

#[derive(Debug, Serialize)]
pub struct ProjectionRow {
    pub name: String,
    pub position: i64,
    pub lag_events: i64,
    pub lag_seconds: String,
    pub behind: bool,
    pub rate: String,
}

#[derive(Debug, Serialize)]
pub struct IngestView {
    /// Reports stored per second over the last minute (from the log).
    pub reports_per_second: String,
    pub events_last_minute: i64,
    /// From this process's counters (present when ingest runs in it).
    pub batches: u64,
    pub mean_batch: String,
    pub quarantined_messages: u64,
}

#[derive(Debug, Serialize)]
pub struct StreamRow {
    pub name: String,
    pub messages: u64,
    pub bytes: String,
    pub consumers: usize,
}

#[derive(Debug, Serialize)]
pub struct ConsumerRow {
    pub name: String,
    pub pending: u64,
    pub ack_pending: usize,
    pub redelivered: usize,
    pub waiting: usize,
}

#[derive(Debug, Serialize)]
pub struct BacklogView {
    /// OK, DEGRADED (from half of a limit) or FAILED (from 80 %).
    pub badge: view::Badge,
    pub message: String,
    pub used_pct: String,
}

#[derive(Debug, Serialize)]
pub struct QuarantinedRow {
    pub id: i64,
    pub subject: String,
    pub reason: String,
    pub received: Age,
}

#[derive(Debug, Serialize)]
pub struct PostgresView {
    pub connections: i64,
    pub size: String,
    pub tables: Vec<(String, String)>,
}

fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    match n {
        n if n >= 1e9 => format!("{:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.0} kB", n / 1e3),
        n => format!("{n:.0} B"),
    }
}

async fn bus_state(bus: &Bus) -> anyhow::Result<(Vec<StreamRow>, Option<ConsumerRow>)> {
    use async_nats::jetstream::consumer::pull;
    let mut streams = Vec::new();
    let mut consumer_row = None;
    for name in [&bus.reports_stream, &bus.alerts_stream] {
        let Ok(mut stream) = bus.js.get_stream(name).await else { continue };
        let info = stream.info().await?;
        streams.push(StreamRow {
            name: name.clone(),
            messages: info.state.messages,
            bytes: bytes(info.state.bytes as i64),
            consumers: info.state.consumer_count,
        });
        if name == &bus.reports_stream {
            if let Ok(mut c) = stream.get_consumer::<pull::Config>(&bus.ingest_consumer).await {
                let ci = c.info().await?;
                consumer_row = Some(ConsumerRow {
                    name: bus.ingest_consumer.clone(),
                    pending: ci.num_pending,
                    ack_pending: ci.num_ack_pending,
                    redelivered: ci.num_redelivered,
                    waiting: ci.num_waiting,
                });
            }
        }
    }
    Ok((streams, consumer_row))
}

#[tracing::instrument(skip_all)]
pub async fn page(State(state): State<AppState>) -> Result<Html<String>, WebError> {
    let now = state.now();
    let client = state.pool.get().await.map_err(WebError::page)?;
    let db = |e: tokio_postgres::Error| WebError::page(InfraError::from(e));
    let lags: Vec<Lag> = lags::lags(&state.pool).await.map_err(WebError::page)?;
    let applied_last_minute = |position: i64| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT count(*) FROM events WHERE recorded_at > now() - interval '1 minute' AND position <= $1",
                    &[&position],
                )
                .await
                .map(|r| r.get::<_, i64>(0))
        }
    };
    let mut projections = Vec::new();
    for l in lags {
        let rate = applied_last_minute(l.position).await.map_err(db)? as f64 / 60.0;
        projections.push(ProjectionRow {
            behind: l.seconds > lags::READY_LAG_SECONDS,
            lag_seconds: format!("{:.1}", l.seconds),
            rate: format!("{rate:.1}"),
            name: l.projection,
            position: l.position,
            lag_events: l.events,
        });
    }
    let reports_last_minute: i64 = client
        .query_one(
            "SELECT count(*) FROM events WHERE recorded_at > now() - interval '1 minute' AND event_type = 'StatusReported'",
            &[],
        )
        .await
        .map_err(db)?
        .get(0);
    let events_last_minute: i64 = client
        .query_one("SELECT count(*) FROM events WHERE recorded_at > now() - interval '1 minute'", &[])
        .await
        .map_err(db)?
        .get(0);
    let m = metrics::metrics();
    let batches = m.ingest_batches.get();
    let messages: u64 = ["stored", "duplicate", "quarantined"]
        .iter()
        .map(|o| m.ingest_messages.get_or_create(&metrics::Outcome { outcome: o }).get())
        .sum();
    let ingest = IngestView {
        reports_per_second: format!("{:.1}", reports_last_minute as f64 / 60.0),
        events_last_minute,
        batches,
        mean_batch: if batches == 0 { "-".into() } else { format!("{:.1}", messages as f64 / batches as f64) },
        quarantined_messages: m.ingest_messages.get_or_create(&metrics::Outcome { outcome: "quarantined" }).get(),
    };
    let (streams, consumer, bus_error) = match &state.bus {
        None => (vec![], None, Some("This process has no NATS connection.".to_owned())),
        Some(bus) => match bus_state(bus).await {
            Ok((s, c)) => (s, c, None),
            Err(e) => (vec![], None, Some(format!("NATS: {e:#}"))),
        },
    };
    let backlog = match &state.bus {
        Some(bus) => Some(match bus.backlog(now).await {
            Ok(b) => BacklogView {
                badge: view::Shown::of_stored(b.level.status()).badge(),
                used_pct: format!("{:.0}%", b.used_pct),
                message: b.message,
            },
            Err(e) => BacklogView {
                badge: view::Shown::Unknown.badge(),
                used_pct: String::new(),
                message: format!("unknown: {e:#}"),
            },
        }),
        None => None,
    };
    let (quarantine_total, recent) = quarantine::recent(&**client, 10).await.map_err(WebError::page)?;
    let failing_receivers = client
        .query(
            "SELECT route, count(*) FILTER (WHERE NOT delivered), count(*) FILTER (WHERE delivered),
                    (array_agg(last_error ORDER BY updated_at DESC) FILTER (WHERE NOT delivered))[1],
                    max(updated_at) FILTER (WHERE NOT delivered),
                    (array_agg(alert_id ORDER BY updated_at DESC) FILTER (WHERE NOT delivered))[1]
             FROM alert_deliveries WHERE updated_at > now() - interval '24 hours'
             GROUP BY route HAVING count(*) FILTER (WHERE NOT delivered) > 0 ORDER BY 2 DESC, 1",
            &[],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| FailingReceiver {
            name: r.get(0),
            failed: r.get(1),
            delivered: r.get(2),
            last_error: r.get::<_, Option<String>>(3).unwrap_or_default(),
            last_failed: view::age(r.get(4), now, false),
            alert_url: format!("/alerts/{}", r.get::<_, uuid::Uuid>(5)),
        })
        .collect();
    let pg = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),
                    pg_database_size(current_database())",
            &[],
        )
        .await
        .map_err(db)?;
    let tables = client
        .query(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c
             WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY 2 DESC LIMIT 8",
            &[],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| (r.get::<_, String>(0), bytes(r.get(1))))
        .collect();
    let page = OpsPage {
        layout: Layout::new("Ops", "ops", now),
        projections,
        ingest,
        streams,
        consumer,
        backlog,
        bus_error,
        quarantine_total,
        quarantined: recent
            .into_iter()
            .map(|q| QuarantinedRow {
                id: q.id,
                subject: q.subject,
                reason: q.reason,
                received: view::age(q.received_at, now, false),
            })
            .collect(),
        failing_receivers,
        postgres: PostgresView { connections: pg.get(0), size: bytes(pg.get(1)), tables },
    };
    templates::render("ops", &page).map(Html).map_err(WebError::page)
}

fn not_quarantined(id: i64) -> WebError {
    WebError::not_found(Format::Html, format!("No quarantined message {id}."), "See /quarantine.")
}

fn parse_id(raw: &str) -> Result<i64, WebError> {
    raw.parse().map_err(|_| WebError::bad_request(Format::Html, "id", format!("{raw:?} is not a quarantine id")))
}

/// `POST /quarantine/{id}/resubmit`: publishes the message again, as it was, on its subject
/// (with a fresh `Nats-Msg-Id`), and removes it from quarantine. A message of which some
/// reports were stored is refused: re-submitting it would store those twice.
pub async fn resubmit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Response, WebError> {
    viewer.check_form(&headers, &form.csrf, Role::Operator)?;
    let id = parse_id(&id)?;
    let bus =
        state.bus.as_ref().ok_or_else(|| WebError::Conflict { what: "This process has no NATS connection.".into() })?;
    let client = state.pool.get().await.map_err(WebError::page)?;
    let db = |e: tokio_postgres::Error| WebError::page(InfraError::from(e));
    let row = client
        .query_opt("SELECT source_key, subject, payload FROM quarantine WHERE id = $1", &[&id])
        .await
        .map_err(db)?
        .ok_or_else(|| not_quarantined(id))?;
    let (key, subject, payload): (String, String, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
    // A message's first stored event has this id (ingest's marker); if it exists, part of the
    // message was stored.
    let markers = sitrep_infra::event_store::message_markers(&key);
    let partly_stored =
        !sitrep_infra::event_store::existing_ids(&**client, &markers).await.map_err(WebError::page)?.is_empty();
    if partly_stored {
        return Err(WebError::Conflict {
            what: "Some reports of this message were stored; re-submitting it would store them twice. Publish the fixed reports on their own.".into(),
        });
    }
    let mut nats_headers = async_nats::HeaderMap::new();
    nats_headers.insert("Nats-Msg-Id", format!("resubmit-{id}-{key}").as_str());
    nats_headers.insert("Sitrep-Resubmitted-From", key.as_str());
    let ack = bus
        .js
        .publish_with_headers(subject, nats_headers, payload.into())
        .await
        .map_err(|e| WebError::page(anyhow::anyhow!("publishing to NATS: {e}")))?;
    ack.await.map_err(|e| WebError::page(anyhow::anyhow!("JetStream did not store it: {e}")))?;
    client.execute("DELETE FROM quarantine WHERE id = $1", &[&id]).await.map_err(db)?;
    Ok(Redirect::to("/quarantine").into_response())
}

/// `POST /quarantine/{id}/discard`: removes the message from quarantine for good.
pub async fn discard(
    State(state): State<AppState>,
    Path(id): Path<String>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Response, WebError> {
    viewer.check_form(&headers, &form.csrf, Role::Operator)?;
    let id = parse_id(&id)?;
    let client = state.pool.get().await.map_err(WebError::page)?;
    let gone = client
        .execute("DELETE FROM quarantine WHERE id = $1", &[&id])
        .await
        .map_err(|e| WebError::page(InfraError::from(e)))?;
    if gone == 0 {
        return Err(not_quarantined(id));
    }
    Ok(Redirect::to("/quarantine").into_response())
}

/// A form whose only field is its token.
#[derive(Debug, serde::Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    pub csrf: String,
}
