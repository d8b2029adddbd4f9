//! Ingest: the command side. Reads the report stream in batches, decodes each message, runs the
//! component aggregate for every report, and appends the whole batch (events, snapshots and
//! quarantine) in one transaction. Only after that commit are the messages acked, so nothing is
//! lost; event ids derive from the message (its `Nats-Msg-Id`, else stream and sequence), so a
//! redelivery adds nothing.

use anyhow::Context;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, AckKind};
use cqrs_es::DomainEvent;
use deadpool_postgres::Pool;
use futures::StreamExt;
use serde_json::{json, Value};
use sitrep_domain::component::{ComponentCommand, AGGREGATE_TYPE};
use sitrep_domain::maintenance;
use sitrep_domain::names::component_aggregate_id;
use sitrep_domain::notice::{self, Notice, NoticeState};
use sitrep_domain::outage;
use sitrep_domain::wire::{self, Decoded, FieldError, MessageKind, Report};
use sitrep_infra::event_store::{self, derived_event_id, NewEvent};
use sitrep_infra::provenance::{self, Provenance};
use sitrep_infra::quarantine::{self, NewQuarantined};
use sitrep_infra::{bus, Settings};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) mod components;
use components::Components;

/// What became of one batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub messages: usize,
    pub events: usize,
    pub quarantined: usize,
    pub duplicates: usize,
}

/// The API key name HTTP ingest attached to the message, if its signature holds. A key header
/// that a NATS publisher set itself has no valid signature, and is not believed.
fn verified_key(provenance: &Provenance, msg: &jetstream::Message) -> Option<String> {
    let headers = msg.headers.as_ref()?;
    let name = headers.get(provenance::KEY_HEADER)?.as_str();
    let signature = headers.get(provenance::SIGNATURE_HEADER).map(|v| v.as_str()).unwrap_or("");
    if provenance.verify(name, &msg.payload, signature) {
        Some(name.to_owned())
    } else {
        tracing::warn!(subject = %msg.subject, key = name, "a message names an API key it was not sent with; ignored");
        None
    }
}

/// One message, decoded.
pub(crate) struct Incoming {
    key: String,
    msg_id: Option<String>,
    subject: String,
    stream_seq: u64,
    received_at: OffsetDateTime,
    reports: Vec<Report>,
    /// Why (part of) the message was rejected, if it was.
    rejected: Vec<FieldError>,
    /// True when nothing in the message was usable.
    whole_rejected: bool,
    /// An outage or maintenance message's command.
    notice: Option<Notice>,
    headers: Value,
    payload: bytes::Bytes,
    /// The API key HTTP ingest says the message came in with, when its signature holds.
    api_key: Option<String>,
}

impl Incoming {
    /// Decodes a message. `stream_epoch` tells this incarnation of the stream from an earlier
    /// one of the same name, whose sequence numbers started again from 1.
    fn decode(settings: &Settings, stream_epoch: &str, provenance: &Provenance, msg: &jetstream::Message) -> Self {
        let info = msg.info().ok();
        let (stream_seq, published) =
            info.as_ref().map(|i| (i.stream_sequence, i.published)).unwrap_or((0, OffsetDateTime::now_utc()));
        let msg_id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned())
            .filter(|v| !v.is_empty());
        let subject = msg.subject.to_string();
        let key = match (&msg_id, &info) {
            (Some(id), _) => format!("msgid:{subject}:{id}"),
            (None, Some(i)) => format!("seq:{}@{stream_epoch}:{}", i.stream, i.stream_sequence),
            // Not a JetStream message (never expected): a key that never matches another.
            (None, None) => format!("unique:{}", uuid::Uuid::new_v4()),
        };
        let decoded = wire::parse_subject(&settings.subject_prefix, &subject).and_then(|(kind, system)| match kind {
            MessageKind::Report => wire::decode(system, &msg.payload, published).map(|d| (d, None)),
            _ => notice::decode(kind, system, &msg.payload, published).map(|n| (Decoded::default(), Some(n))),
        });
        let (reports, rejected, whole_rejected, notice) = match decoded {
            Ok((d, notice)) => {
                let whole = d.reports.is_empty() && notice.is_none();
                (d.reports, d.rejected, whole, notice)
            }
            Err(e) => (vec![], vec![e], true, None),
        };
        let headers = msg
            .headers
            .as_ref()
            .map(|h| {
                let map: serde_json::Map<String, Value> = h
                    .iter()
                    .map(|(k, vs)| (k.to_string(), json!(vs.iter().map(|v| v.as_str()).collect::<Vec<_>>())))
                    .collect();
                Value::Object(map)
            })
            .unwrap_or_else(|| json!({}));
        let api_key = verified_key(provenance, msg);
        Incoming {
            api_key,
            key,
            msg_id,
            subject,
            stream_seq,
            received_at: published,
            reports,
            rejected,
            whole_rejected,
            notice,
            headers,
            payload: msg.payload.clone(),
        }
    }

    /// The id of the message's first event: if it is stored, the whole message is.
    fn marker(&self) -> Option<uuid::Uuid> {
        if self.notice.is_some() {
            return Some(derived_event_id(&self.key, 0, event_store::NOTICE_MARKER));
        }
        (!self.reports.is_empty()).then(|| derived_event_id(&self.key, 0, event_store::REPORT_MARKER))
    }

    /// Where an event of this message came from, for `/events/{position}`.
    fn metadata(&self) -> Value {
        json!({
            "source": "nats",
            "subject": self.subject,
            "stream_seq": self.stream_seq,
            "msg_id": self.msg_id,
            "message_key": self.key,
            "api_key": self.api_key,
        })
    }

    /// The same message, to be quarantined whole because it could not be stored.
    fn poisoned(&self, why: &anyhow::Error) -> Self {
        Incoming {
            reports: vec![],
            rejected: vec![FieldError::new("payload", format!("could not be stored: {why:#}"))],
            whole_rejected: true,
            notice: None,
            key: self.key.clone(),
            msg_id: self.msg_id.clone(),
            subject: self.subject.clone(),
            stream_seq: self.stream_seq,
            received_at: self.received_at,
            headers: self.headers.clone(),
            payload: self.payload.clone(),
            api_key: self.api_key.clone(),
        }
    }
}

/// Appends one batch in one transaction and returns what it did. Acks are the caller's job,
/// after this returns. A failed batch drops the kept component states, which it may have changed
/// without storing.
pub(crate) async fn store_batch(
    pool: &Pool,
    components: &mut Components,
    incoming: &[Incoming],
) -> anyhow::Result<BatchOutcome> {
    let stored = try_store_batch(pool, components, incoming).await;
    if stored.is_err() {
        components.forget();
    }
    stored
}

async fn try_store_batch(
    pool: &Pool,
    components: &mut Components,
    incoming: &[Incoming],
) -> anyhow::Result<BatchOutcome> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    // One writer at a time (see event_store): take the lock first, so what we read below (which
    // messages are stored, each aggregate's state) cannot change before we append.
    event_store::lock_writer(&*tx).await?;

    let markers: Vec<uuid::Uuid> = incoming.iter().filter_map(Incoming::marker).collect();
    let stored: HashSet<uuid::Uuid> = event_store::existing_ids(&*tx, &markers).await?.into_iter().collect();

    let mut outcome = BatchOutcome { messages: incoming.len(), ..Default::default() };
    let mut seen_keys = HashSet::new();
    let fresh: Vec<&Incoming> = incoming
        .iter()
        .filter(|m| {
            let dup = m.marker().is_some_and(|id| stored.contains(&id)) || !seen_keys.insert(m.key.as_str());
            outcome.duplicates += usize::from(dup);
            !dup
        })
        .collect();

    let ids: Vec<String> = fresh
        .iter()
        .flat_map(|m| m.reports.iter().map(|r| component_aggregate_id(&r.system, &r.component)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    components.catch_up(&*tx).await?;
    components.load(&*tx, &id_refs).await?;

    let mut notices = Notices::load(&*tx, &fresh).await?;
    let mut events = Vec::new();
    let mut quarantined = Vec::new();
    for m in &fresh {
        let mut rejected: Vec<String> = m.rejected.iter().map(ToString::to_string).collect();
        if let Some(notice) = &m.notice {
            match notices.decide(notice).await {
                Ok(decided) => events.extend(decided.into_iter().enumerate().map(|(i, mut e)| {
                    e.event_id = derived_event_id(&m.key, i, event_store::NOTICE_MARKER);
                    e.metadata = m.metadata();
                    e
                })),
                Err(reason) => rejected.push(reason),
            }
        }
        for (index, report) in m.reports.iter().enumerate() {
            let agg_id = component_aggregate_id(&report.system, &report.component);
            let kept = components.get_mut(&agg_id);
            let command = ComponentCommand::ReportStatus { report: report.clone(), received_at: m.received_at };
            match kept.state.decide(command).await {
                Ok(decided) => {
                    for event in decided {
                        kept.sequence += 1;
                        let event_type = event.event_type();
                        events.push(NewEvent {
                            event_id: derived_event_id(&m.key, index, &event_type),
                            aggregate_type: AGGREGATE_TYPE.to_owned(),
                            aggregate_id: agg_id.clone(),
                            sequence: kept.sequence,
                            event_version: event.event_version(),
                            event_type,
                            payload: serde_json::to_value(&event)?,
                            metadata: m.metadata(),
                        });
                    }
                }
                Err(e) => rejected.push(format!("{}: {e}", report.component)),
            }
        }
        if !rejected.is_empty() {
            quarantined.push(NewQuarantined {
                source_key: m.key.clone(),
                subject: m.subject.clone(),
                headers: m.headers.clone(),
                payload: m.payload.to_vec(),
                reason: rejected.join("; "),
            });
        }
    }

    // Snapshots for components only (outages and windows have a handful of events each), and
    // only every SNAPSHOT_EVERY events of each: the kept states carry the rest.
    let snapshots = components.due_snapshots(id_refs.iter().copied(), false)?;
    let last = event_store::append(&*tx, &events).await?;
    event_store::save_snapshots(&*tx, AGGREGATE_TYPE, &snapshots).await?;
    quarantine::insert(&*tx, &quarantined).await?;
    tx.commit().await.context("committing the batch")?;
    components.stored_through(last);

    outcome.events = events.len();
    outcome.quarantined = quarantined.len();
    Ok(outcome)
}

/// The outages and maintenance windows a batch's messages are for, loaded from their events and
/// kept across the batch, with each one's last sequence; keyed by (aggregate type, id).
#[derive(Default)]
struct Notices(HashMap<(&'static str, String), (NoticeState, i64)>);

impl Notices {
    async fn load(tx: &impl tokio_postgres::GenericClient, fresh: &[&Incoming]) -> anyhow::Result<Self> {
        let mut out = Notices::default();
        for notice in fresh.iter().filter_map(|m| m.notice.as_ref()) {
            out.0.entry(notice.target()).or_insert_with(|| (NoticeState::empty(notice), 0));
        }
        for ty in [outage::AGGREGATE_TYPE, maintenance::AGGREGATE_TYPE] {
            let ids: Vec<&str> = out.0.keys().filter(|(t, _)| *t == ty).map(|(_, id)| id.as_str()).collect();
            if ids.is_empty() {
                continue;
            }
            for (id, seq, payload) in event_store::events_after_snapshots(tx, ty, &ids).await? {
                if let Some((state, last)) = out.0.get_mut(&(ty, id)) {
                    state.apply_stored(payload)?;
                    *last = seq;
                }
            }
        }
        Ok(out)
    }

    /// Runs the message's command on its aggregate. The events come back with their sequence,
    /// payload and type; the caller gives them ids and metadata. An `Err` is the aggregate's
    /// reason for refusing, for quarantine.
    async fn decide(&mut self, notice: &Notice) -> Result<Vec<NewEvent>, String> {
        let (ty, agg_id) = notice.target();
        let (state, seq) = self.0.entry((ty, agg_id.clone())).or_insert_with(|| (NoticeState::empty(notice), 0));
        let decided = state.decide(notice).await.map_err(|e| format!("{agg_id}: {e}"))?;
        Ok(decided
            .into_iter()
            .map(|d| {
                *seq += 1;
                NewEvent {
                    event_id: uuid::Uuid::nil(),
                    aggregate_type: ty.to_owned(),
                    aggregate_id: agg_id.clone(),
                    sequence: *seq,
                    event_type: d.event_type,
                    event_version: d.event_version,
                    payload: d.payload,
                    metadata: Value::Null,
                }
            })
            .collect())
    }
}

/// Where ingest reads from: the durable consumer, and the stream's creation time, which tells
/// this incarnation of the stream from an earlier one of the same name.
pub struct Source {
    consumer: PullConsumer,
    stream_epoch: String,
}

/// Creates the report stream and ingest's durable consumer if they are missing.
pub async fn prepare(nats: async_nats::Client, settings: &Settings) -> anyhow::Result<Source> {
    let js = jetstream::new(nats);
    let mut stream = bus::ensure_reports_stream(&js, settings).await?;
    let created = stream.info().await.context("reading the report stream's info")?.created;
    let consumer = bus::reports_consumer(&stream, settings).await?;
    Ok(Source { consumer, stream_epoch: created.unix_timestamp_nanos().to_string() })
}

/// Most payload bytes in one batch, so a batch of large messages stays one reasonable transaction.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Runs ingest until cancelled.
pub async fn run(pool: Pool, source: Source, settings: Settings, cancel: CancellationToken) -> anyhow::Result<()> {
    let Source { consumer, stream_epoch } = source;
    let provenance = Provenance::load(&**pool.get().await.context("connecting to Postgres")?)
        .await
        .context("reading the provenance secret")?;
    let mut components = Components::default();
    let wait = Duration::from_millis(settings.ingest_wait_ms);
    tracing::info!(stream = %settings.reports_stream, consumer = %settings.ingest_consumer, "ingest started");
    let mut backoff = Duration::from_millis(250);
    'outer: while !cancel.is_cancelled() {
        let subscribed = consumer
            .stream()
            .max_messages_per_batch(settings.ingest_batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut messages = match subscribed {
            Ok(messages) => {
                backoff = Duration::from_millis(250);
                messages
            }
            Err(e) => {
                // NATS restarting or unreachable: the client reconnects; keep trying.
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot read the report stream");
                tokio::select! {
                    _ = cancel.cancelled() => break 'outer,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue 'outer;
            }
        };
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => {
                    release_buffered(&mut messages).await;
                    break 'outer;
                }
                next = messages.next() => next,
            };
            let mut batch = match first {
                Some(Ok(m)) => vec![m],
                Some(Err(e)) => {
                    // Missed heartbeats, a deleted consumer, a reconnect: subscribe again.
                    tracing::warn!(error = %e, "report stream error; subscribing again");
                    tokio::select! {
                        _ = cancel.cancelled() => break 'outer,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue 'outer,
                    }
                }
                None => continue 'outer,
            };
            let deadline = Instant::now() + wait;
            let mut bytes = batch[0].payload.len();
            while batch.len() < settings.ingest_batch && bytes < MAX_BATCH_BYTES {
                match tokio::time::timeout_at(deadline, messages.next()).await {
                    Ok(Some(Ok(m))) => {
                        bytes += m.payload.len();
                        batch.push(m);
                    }
                    Ok(Some(Err(e))) => {
                        tracing::warn!(error = %e, "report stream hiccup; continuing")
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            handle_batch(&pool, &mut components, &settings, (&stream_epoch, &provenance), &batch, &cancel).await;
        }
    }
    save_behind_snapshots(&pool, &mut components).await;
    tracing::info!("ingest stopped");
    Ok(())
}

/// Writes the snapshots of every kept component whose snapshot is behind, so the next start
/// reads no long tails. Best effort: a snapshot only saves reading events.
async fn save_behind_snapshots(pool: &Pool, components: &mut Components) {
    let saved = async {
        let snapshots = components.behind()?;
        let client = pool.get().await?;
        event_store::save_snapshots(&**client, AGGREGATE_TYPE, &snapshots).await?;
        anyhow::Ok(snapshots.len())
    };
    match tokio::time::timeout(Duration::from_secs(5), saved).await {
        Ok(Ok(n)) => tracing::debug!(snapshots = n, "snapshots saved"),
        Ok(Err(e)) => {
            tracing::warn!(error = format!("{e:#}"), "could not save snapshots; the next start reads more events")
        }
        Err(_) => tracing::warn!("saving snapshots took too long; the next start reads more events"),
    }
}

/// How long a released message stays away: long enough that it is not handed straight back to
/// this stopping subscription, short enough that the next ingest gets it at once.
const RELEASE_DELAY: Duration = Duration::from_secs(1);
/// The longest a stop spends releasing buffered messages.
const RELEASE_BUDGET: Duration = Duration::from_secs(2);

/// Hands the messages the client has buffered back to JetStream, so a restart gets them within
/// [`RELEASE_DELAY`] instead of after the ack wait. Bounded: it stops at the first message it has
/// already released (JetStream redelivers to the open pull request) and after [`RELEASE_BUDGET`].
async fn release_buffered(messages: &mut async_nats::jetstream::consumer::pull::Stream) {
    let deadline = Instant::now() + RELEASE_BUDGET;
    let mut released = std::collections::HashSet::new();
    while let Ok(Ok(Some(Ok(m)))) =
        tokio::time::timeout_at(deadline, tokio::time::timeout(Duration::from_millis(20), messages.next())).await
    {
        let again = m.info().map(|i| !released.insert(i.stream_sequence)).unwrap_or(true);
        let _ = m.ack_with(AckKind::Nak(Some(RELEASE_DELAY))).await;
        if again {
            break;
        }
    }
}

/// Failed attempts at a whole batch before its messages are tried one at a time.
const ATTEMPTS_BEFORE_ISOLATING: u32 = 3;

/// Stores a batch, retrying with backoff while Postgres is unavailable, then acks it. A batch
/// that keeps failing is stored one message at a time, and a message that cannot be stored
/// even alone is quarantined with the database's reason, so it never blocks the ones behind it.
#[tracing::instrument(skip_all, fields(messages = batch.len()))]
async fn handle_batch(
    pool: &Pool,
    components: &mut Components,
    settings: &Settings,
    (stream_epoch, provenance): (&str, &Provenance),
    batch: &[jetstream::Message],
    cancel: &CancellationToken,
) {
    let mut incoming: Vec<Incoming> =
        batch.iter().map(|m| Incoming::decode(settings, stream_epoch, provenance, m)).collect();
    let mut backoff = Duration::from_millis(100);
    let mut attempts = 0;
    let outcome = loop {
        attempts += 1;
        let result = if attempts <= ATTEMPTS_BEFORE_ISOLATING {
            store_batch(pool, components, &incoming).await
        } else {
            store_one_by_one(pool, components, &mut incoming).await
        };
        match result {
            Ok(outcome) => break outcome,
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "storing a batch failed"
                );
                tokio::select! {
                    // Not acked: JetStream redelivers after ack_wait, and ids make that harmless.
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    };
    record_metrics(&outcome, &incoming);
    for (msg, inc) in batch.iter().zip(&incoming) {
        let kind = if inc.whole_rejected { AckKind::Term } else { AckKind::Ack };
        if let Err(e) = msg.ack_with(kind).await {
            tracing::warn!(error = %e, key = %inc.key, "ack failed; the message will be redelivered and deduplicated");
        }
    }
    tracing::debug!(?outcome, "batch stored");
}

/// Counts a committed batch in the process's metrics.
fn record_metrics(outcome: &BatchOutcome, incoming: &[Incoming]) {
    let m = sitrep_infra::metrics::metrics();
    let count = |outcome: &'static str, n: usize| {
        m.ingest_messages.get_or_create(&sitrep_infra::metrics::Outcome { outcome }).inc_by(n as u64);
    };
    let stored = outcome.messages.saturating_sub(outcome.duplicates + outcome.quarantined);
    count("stored", stored);
    count("duplicate", outcome.duplicates);
    count("quarantined", outcome.quarantined);
    m.ingest_events.inc_by(outcome.events as u64);
    m.ingest_batches.inc();
    m.ingest_batch_messages.observe(incoming.len() as f64);
    let now = OffsetDateTime::now_utc();
    for inc in incoming {
        m.ingest_latency_seconds.observe((now - inc.received_at).as_seconds_f64().max(0.0));
    }
}

/// Stores each message in its own transaction. A message that fails alone while the database
/// still accepts its quarantine entry is the problem: it is quarantined in place. If even that
/// fails, the database is the problem, and the error goes back to the caller to retry.
async fn store_one_by_one(
    pool: &Pool,
    components: &mut Components,
    incoming: &mut [Incoming],
) -> anyhow::Result<BatchOutcome> {
    let mut total = BatchOutcome::default();
    for slot in incoming.iter_mut() {
        let outcome = match store_batch(pool, components, std::slice::from_ref(slot)).await {
            Ok(outcome) => outcome,
            Err(why) => {
                let poisoned = slot.poisoned(&why);
                let outcome = store_batch(pool, components, std::slice::from_ref(&poisoned)).await?;
                tracing::warn!(key = %slot.key, error = format!("{why:#}"), "message could not be stored; quarantined");
                *slot = poisoned;
                outcome
            }
        };
        total.messages += outcome.messages;
        total.events += outcome.events;
        total.quarantined += outcome.quarantined;
        total.duplicates += outcome.duplicates;
    }
    Ok(total)
}
