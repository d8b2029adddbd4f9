//! The Postgres event store.
//!
//! - [`append`] writes a batch of events with one statement inside the caller's transaction
//!   (ingest appends a whole NATS batch, plus snapshots and quarantine, in one commit).
//! - [`read_after`] is the global reader: events after a position, in order.
//! - [`PgEventRepository`] is the cqrs-es `PersistedEventRepository` over the same tables, for
//!   per-command use (`CqrsFramework::execute`).
//!
//! **Gap-safe order: one writer at a time.** A statement-level trigger on `events` (migration
//! V1) takes a transaction-scoped advisory lock before any inserted row draws its `position`,
//! so appends are serialised and commit in position order. A reader that asks for
//! `position > checkpoint` therefore never misses an event that committed late. We chose this
//! over transaction-id plus snapshot-xmin reading because ingest already appends in large
//! batches (one lock per batch, not per event), it keeps `position` a plain total order that
//! pages, links and checkpoints can use, and the reader stays one index range scan. The cost is
//! that appends never overlap; `append_is_serialised_so_readers_never_skip_a_late_commit` in the
//! end-to-end tests shows the reader cannot skip with two concurrent writers.

use crate::InfraError;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot};
use cqrs_es::Aggregate;
use deadpool_postgres::Pool;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// The notification channel that fires when events commit.
pub const EVENTS_CHANNEL: &str = "sitrep_events";

/// The advisory lock that serialises writers (migration V1's trigger takes the same one).
pub const WRITER_LOCK: i64 = 7_381_620_227_497_754_624;

/// Takes the writer lock for the rest of the caller's transaction. Appending takes it anyway;
/// take it first when what you read before appending must not change under you.
pub async fn lock_writer(tx: &impl GenericClient) -> Result<(), InfraError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITER_LOCK]).await?;
    Ok(())
}

/// Namespace for event ids derived from message ids (UUID v5).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5e1f_72e9_9c4a_4b8e_a1d2_6f03_c0de_0001);

/// Derives a stable event id: the same message and index give the same id on every delivery.
pub fn derived_event_id(message_key: &str, index: usize, event_type: &str) -> Uuid {
    Uuid::new_v5(&EVENT_ID_NAMESPACE, format!("{message_key}/{index}/{event_type}").as_bytes())
}

/// The event type in the derived id of a message's first report event.
pub const REPORT_MARKER: &str = "StatusReported";
/// The event type in the derived ids of outage and maintenance events.
pub const NOTICE_MARKER: &str = "notice";

/// The ids the first event of a message with this key has, whichever kind it carried: if one
/// is stored, (part of) the message is.
pub fn message_markers(message_key: &str) -> [Uuid; 2] {
    [derived_event_id(message_key, 0, REPORT_MARKER), derived_event_id(message_key, 0, NOTICE_MARKER)]
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
}

/// An event's payload as stored: JSON text, parsed only when a reader decodes it into the type
/// it wants. Readers that apply every event decode millions of them, and going through a
/// [`Value`] first parsed each twice and built a map on the way.
#[derive(Clone)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The payload as `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The payload as a JSON value (to show or re-serialise it).
    pub fn to_value(&self) -> Value {
        self.decode().unwrap_or(Value::Null)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// A payload with this JSON text; fails if it is not JSON.
    pub fn from_json(json: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json).map(Self)
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Payloads read from Postgres are `jsonb`'s normalised text, so equal text is equal JSON.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// An event as stored, with its global position.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Payload,
    pub metadata: Value,
    pub recorded_at: OffsetDateTime,
}

pub const STORED_COLUMNS: &str = "position, event_id, aggregate_type, aggregate_id, sequence, event_type, \
                              event_version, payload, metadata, recorded_at";

/// Whether a read brings each event's metadata. Most readers need only the payload, and the
/// metadata is about as large: Postgres turns it into text and the reader parses it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    Include,
    /// Every event's `metadata` is `null`.
    Skip,
}

impl Metadata {
    /// [`STORED_COLUMNS`], with `null` for the metadata when it is skipped.
    fn columns(self) -> std::borrow::Cow<'static, str> {
        match self {
            Metadata::Include => STORED_COLUMNS.into(),
            Metadata::Skip => STORED_COLUMNS.replace(" metadata,", " 'null'::jsonb AS metadata,").into(),
        }
    }
}

impl StoredEvent {
    pub fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            position: row.get(0),
            event_id: row.get(1),
            aggregate_type: row.get(2),
            aggregate_id: row.get(3),
            sequence: row.get(4),
            event_type: row.get(5),
            event_version: row.get(6),
            payload: Payload(row.get::<_, tokio_postgres::types::Json<Box<RawValue>>>(7).0),
            metadata: row.get(8),
            recorded_at: row.get(9),
        }
    }
}

/// When a report was observed, for the `observed_at` column that raw-history reads use (the
/// event log is the raw history; migration V12). `None` for every other kind of event.
fn observed_at(e: &NewEvent) -> Option<OffsetDateTime> {
    use sitrep_domain::component::{ComponentEvent, AGGREGATE_TYPE};
    if e.aggregate_type != AGGREGATE_TYPE || e.event_type != ComponentEvent::STATUS_REPORTED {
        return None;
    }
    let raw = e.payload.get(ComponentEvent::STATUS_REPORTED)?.get("observed_at")?.as_str()?;
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).ok()
}

/// Appends events in one statement and notifies readers when the caller's transaction commits.
/// Returns the position of the last one (`None` when there were none). Fails with
/// [`InfraError::Conflict`] or [`InfraError::DuplicateEvent`] on the unique keys.
pub async fn append(tx: &impl GenericClient, events: &[NewEvent]) -> Result<Option<i64>, InfraError> {
    if events.is_empty() {
        return Ok(None);
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut agg_types = Vec::with_capacity(events.len());
    let mut agg_ids = Vec::with_capacity(events.len());
    let mut seqs = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut versions = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    let mut metas = Vec::with_capacity(events.len());
    let mut observed = Vec::with_capacity(events.len());
    for e in events {
        observed.push(observed_at(e));
        ids.push(e.event_id);
        agg_types.push(e.aggregate_type.as_str());
        agg_ids.push(e.aggregate_id.as_str());
        seqs.push(e.sequence);
        types.push(e.event_type.as_str());
        versions.push(e.event_version.as_str());
        payloads.push(&e.payload);
        metas.push(&e.metadata);
    }
    let last: Option<i64> = tx
        .query_one(
            // WITH ORDINALITY: positions follow the order of `events`.
            "WITH appended AS (
                INSERT INTO events (event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, observed_at)
                SELECT i, at, ai, s, et, ev, p, m, o
                FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::jsonb[], $8::jsonb[], $9::timestamptz[])
                     WITH ORDINALITY AS u(i, at, ai, s, et, ev, p, m, o, ord)
                ORDER BY ord
                RETURNING position
             )
             SELECT max(position) FROM appended",
            &[&ids, &agg_types, &agg_ids, &seqs, &types, &versions, &payloads, &metas, &observed],
        )
        .await?
        .get(0);
    tx.execute("SELECT pg_notify($1, '')", &[&EVENTS_CHANNEL]).await?;
    Ok(last)
}

/// Which of these event ids are already stored.
pub async fn existing_ids(client: &impl GenericClient, ids: &[Uuid]) -> Result<Vec<Uuid>, InfraError> {
    let rows = client.query("SELECT event_id FROM events WHERE event_id = ANY($1)", &[&ids]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Events after `position`, in global order, at most `limit`.
pub async fn read_after(
    client: &impl GenericClient,
    position: i64,
    limit: i64,
    metadata: Metadata,
) -> Result<Vec<StoredEvent>, InfraError> {
    let columns = metadata.columns();
    let rows = client
        .query(
            &format!("SELECT {columns} FROM events WHERE position > $1 ORDER BY position LIMIT $2"),
            &[&position, &limit],
        )
        .await?;
    Ok(rows.iter().map(StoredEvent::from_row).collect())
}

/// Events of these aggregate types after `after` and up to `through`, in global order, at most
/// `limit`.
pub async fn read_types_between(
    client: &impl GenericClient,
    aggregate_types: &[&str],
    after: i64,
    through: i64,
    limit: i64,
    metadata: Metadata,
) -> Result<Vec<StoredEvent>, InfraError> {
    let columns = metadata.columns();
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM events
                 WHERE aggregate_type = ANY($1) AND position > $2 AND position <= $3
                 ORDER BY position LIMIT $4"
            ),
            &[&aggregate_types, &after, &through, &limit],
        )
        .await?;
    Ok(rows.iter().map(StoredEvent::from_row).collect())
}

/// The event at `position`, if there is one.
pub async fn at(client: &impl GenericClient, position: i64) -> Result<Option<StoredEvent>, InfraError> {
    let row =
        client.query_opt(&format!("SELECT {STORED_COLUMNS} FROM events WHERE position = $1"), &[&position]).await?;
    Ok(row.as_ref().map(StoredEvent::from_row))
}

/// The highest position stored (0 when empty).
pub async fn head(client: &impl GenericClient) -> Result<i64, InfraError> {
    Ok(client.query_one("SELECT coalesce(max(position), 0) FROM events", &[]).await?.get(0))
}

/// A stored aggregate state and the sequence of the last event it includes.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub payload: Value,
    pub last_sequence: i64,
    pub version: i64,
}

/// Loads snapshots for these aggregates of one type.
pub async fn load_snapshots(
    client: &impl GenericClient,
    aggregate_type: &str,
    ids: &[&str],
) -> Result<HashMap<String, Snapshot>, InfraError> {
    let rows = client
        .query(
            "SELECT aggregate_id, payload, last_sequence, snapshot_version FROM snapshots
             WHERE aggregate_type = $1 AND aggregate_id = ANY($2)",
            &[&aggregate_type, &ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), Snapshot { payload: r.get(1), last_sequence: r.get(2), version: r.get(3) }))
        .collect())
}

/// Events of these aggregates that their snapshots do not include yet (all of them for an
/// aggregate with no snapshot), as `(aggregate_id, sequence, payload)` in sequence order.
pub async fn events_after_snapshots(
    client: &impl GenericClient,
    aggregate_type: &str,
    ids: &[&str],
) -> Result<Vec<(String, i64, Value)>, InfraError> {
    let rows = client
        .query(
            // Per aggregate, an index range from its snapshot's sequence on: the events a
            // snapshot already includes are never read, however long the aggregate's history.
            "SELECT u.id, e.sequence, e.payload
             FROM unnest($2::text[]) AS u(id)
             LEFT JOIN snapshots s ON s.aggregate_type = $1 AND s.aggregate_id = u.id
             CROSS JOIN LATERAL (
                 SELECT e.sequence, e.payload FROM events e
                 WHERE e.aggregate_type = $1 AND e.aggregate_id = u.id AND e.sequence > coalesce(s.last_sequence, 0)
                 ORDER BY e.sequence
             ) e
             ORDER BY u.id, e.sequence",
            &[&aggregate_type, &ids],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// Writes snapshots for these aggregates of one type: `(id, state, last_sequence)`.
pub async fn save_snapshots<S: AsRef<str> + Sync>(
    tx: &impl GenericClient,
    aggregate_type: &str,
    snapshots: &[(S, Value, i64)],
) -> Result<(), InfraError> {
    if snapshots.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = snapshots.iter().map(|s| s.0.as_ref()).collect();
    let payloads: Vec<&Value> = snapshots.iter().map(|s| &s.1).collect();
    let seqs: Vec<i64> = snapshots.iter().map(|s| s.2).collect();
    tx.execute(
        "INSERT INTO snapshots (aggregate_type, aggregate_id, payload, last_sequence, snapshot_version)
         SELECT $1, id, p, s, 1 FROM unnest($2::text[], $3::jsonb[], $4::int8[]) AS u(id, p, s)
         ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
            SET payload = excluded.payload, last_sequence = excluded.last_sequence,
                snapshot_version = snapshots.snapshot_version + 1
            WHERE snapshots.last_sequence < excluded.last_sequence",
        &[&aggregate_type, &ids, &payloads, &seqs],
    )
    .await?;
    Ok(())
}

/// The cqrs-es repository over the same tables, for commands handled one at a time through
/// `CqrsFramework`. Event ids come from the metadata key `event_id` when the caller sets one
/// (so a retried command is not stored twice), else they are random.
#[derive(Clone)]
pub struct PgEventRepository {
    pool: Pool,
}

impl PgEventRepository {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn select(
        &self,
        aggregate_type: &str,
        id: &str,
        after: i64,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let client = self.pool.get().await.map_err(conn_err)?;
        let rows = client
            .query(
                "SELECT aggregate_id, sequence, aggregate_type, event_type, event_version, payload, metadata
                 FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 ORDER BY sequence",
                &[&aggregate_type, &id, &after],
            )
            .await
            .map_err(conn_err)?;
        Ok(rows.iter().map(serialized_from_row).collect())
    }
}

fn serialized_from_row(r: &tokio_postgres::Row) -> SerializedEvent {
    SerializedEvent {
        aggregate_id: r.get(0),
        sequence: r.get::<_, i64>(1) as usize,
        aggregate_type: r.get(2),
        event_type: r.get(3),
        event_version: r.get(4),
        payload: r.get(5),
        metadata: string_metadata(r.get(6)),
    }
}

/// cqrs-es reads metadata as a map of strings; ingest's metadata also has numbers (the stream
/// sequence) and nulls (no message id). Nulls are left out and other values written as text.
fn string_metadata(metadata: Value) -> Value {
    match metadata {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v {
                    Value::String(_) => (k, v),
                    other => (k, Value::String(other.to_string())),
                })
                .collect(),
        ),
        _ => Value::Object(serde_json::Map::new()),
    }
}

fn conn_err(e: impl std::error::Error + Send + Sync + 'static) -> PersistenceError {
    PersistenceError::ConnectionError(Box::new(e))
}

impl From<InfraError> for PersistenceError {
    fn from(e: InfraError) -> Self {
        match e {
            InfraError::Conflict(_) | InfraError::DuplicateEvent => PersistenceError::OptimisticLockError,
            other => PersistenceError::UnknownError(Box::new(other)),
        }
    }
}

impl PersistedEventRepository for PgEventRepository {
    async fn get_events<A: Aggregate>(&self, aggregate_id: &str) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.select(A::TYPE, aggregate_id, 0).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.select(A::TYPE, aggregate_id, last_sequence as i64).await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        let client = self.pool.get().await.map_err(conn_err)?;
        let found = load_snapshots(&**client, A::TYPE, &[aggregate_id]).await?;
        Ok(found.into_iter().next().map(|(id, s)| SerializedSnapshot {
            aggregate_id: id,
            aggregate: s.payload,
            current_sequence: s.last_sequence as usize,
            current_snapshot: s.version as usize,
        }))
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let mut client = self.pool.get().await.map_err(conn_err)?;
        let tx = client.transaction().await.map_err(conn_err)?;
        let new: Vec<NewEvent> = events
            .iter()
            .map(|e| NewEvent {
                event_id: e
                    .metadata
                    .get("event_id")
                    .and_then(Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .unwrap_or_else(Uuid::new_v4),
                aggregate_type: e.aggregate_type.clone(),
                aggregate_id: e.aggregate_id.clone(),
                sequence: e.sequence as i64,
                event_type: e.event_type.clone(),
                event_version: e.event_version.clone(),
                payload: e.payload.clone(),
                metadata: e.metadata.clone(),
            })
            .collect();
        append(&*tx, &new).await?;
        if let Some((id, state, _)) = snapshot_update {
            let last = events.iter().map(|e| e.sequence as i64).max().unwrap_or(0);
            save_snapshots(&*tx, A::TYPE, &[(id.as_str(), state, last)]).await?;
        }
        tx.commit().await.map_err(|e| PersistenceError::from(InfraError::from_db(e)))?;
        Ok(())
    }

    async fn stream_events<A: Aggregate>(&self, aggregate_id: &str) -> Result<ReplayStream, PersistenceError> {
        let events = self.select(A::TYPE, aggregate_id, 0).await?;
        Ok(feed(events))
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let client = self.pool.get().await.map_err(conn_err)?;
        let rows = client
            .query(
                "SELECT aggregate_id, sequence, aggregate_type, event_type, event_version, payload, metadata
                 FROM events WHERE aggregate_type = $1 ORDER BY position",
                &[&A::TYPE],
            )
            .await
            .map_err(conn_err)?;
        Ok(feed(rows.iter().map(serialized_from_row).collect()))
    }
}

fn feed(events: Vec<SerializedEvent>) -> ReplayStream {
    let (mut feed, stream) = ReplayStream::new(1024);
    tokio::spawn(async move {
        for e in events {
            if feed.push(Ok(e)).await.is_err() {
                break;
            }
        }
    });
    stream
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_ingest_wrote_reads_as_the_string_map_cqrs_es_expects() {
        let stored = json!({"source": "nats", "stream_seq": 42, "msg_id": null, "api_key": null});
        let read: HashMap<String, String> = serde_json::from_value(string_metadata(stored)).unwrap();
        assert_eq!(read, HashMap::from([("source".into(), "nats".into()), ("stream_seq".into(), "42".into())]));
    }
}
