//! Quarantine: messages that could not be decoded or validated, kept whole (subject, headers,
//! raw bytes) with the reason, so an operator can see and fix them. A quarantined message never
//! blocks the ones behind it.

use crate::InfraError;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;

/// A message to quarantine. `source_key` identifies the message (its `Nats-Msg-Id`, else its
/// stream and sequence), so a redelivered message is kept once.
#[derive(Debug, Clone)]
pub struct NewQuarantined {
    pub source_key: String,
    pub subject: String,
    pub headers: Value,
    pub payload: Vec<u8>,
    pub reason: String,
}

/// A quarantined message as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantined {
    pub id: i64,
    pub source_key: String,
    pub subject: String,
    pub headers: Value,
    /// The payload as text, with invalid UTF-8 replaced (the raw bytes stay in the table).
    pub payload: String,
    pub payload_bytes: usize,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// Stores messages in quarantine inside the caller's transaction; a message already there is
/// left as it is.
pub async fn insert(tx: &impl GenericClient, items: &[NewQuarantined]) -> Result<(), InfraError> {
    if items.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = items.iter().map(|q| q.source_key.as_str()).collect();
    let subjects: Vec<&str> = items.iter().map(|q| q.subject.as_str()).collect();
    let headers: Vec<&Value> = items.iter().map(|q| &q.headers).collect();
    let payloads: Vec<&[u8]> = items.iter().map(|q| q.payload.as_slice()).collect();
    let reasons: Vec<&str> = items.iter().map(|q| q.reason.as_str()).collect();
    tx.execute(
        "INSERT INTO quarantine (source_key, subject, headers, payload, reason)
         SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::bytea[], $5::text[])
         ON CONFLICT (source_key) DO NOTHING",
        &[&keys, &subjects, &headers, &payloads, &reasons],
    )
    .await?;
    Ok(())
}

/// The newest quarantined messages, and how many there are in all.
pub async fn recent(client: &impl GenericClient, limit: i64) -> Result<(i64, Vec<Quarantined>), InfraError> {
    let total: i64 = client.query_one("SELECT count(*) FROM quarantine", &[]).await?.get(0);
    let rows = client
        .query(
            "SELECT id, source_key, subject, headers, payload, reason, received_at
             FROM quarantine ORDER BY received_at DESC, id DESC LIMIT $1",
            &[&limit],
        )
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            let bytes: Vec<u8> = r.get(4);
            Quarantined {
                id: r.get(0),
                source_key: r.get(1),
                subject: r.get(2),
                headers: r.get(3),
                payload: String::from_utf8_lossy(&bytes).into_owned(),
                payload_bytes: bytes.len(),
                reason: r.get(5),
                received_at: r.get(6),
            }
        })
        .collect();
    Ok((total, items))
}
