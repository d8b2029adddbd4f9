//! HTTP ingest, for collectors that cannot speak NATS: `POST /api/v1/reports`,
//! `/api/v1/outages` and `/api/v1/maintenance` take the same JSON as the subjects and go the
//! same way: checked here (so the caller hears about mistakes at once), then published on the
//! subject, where ingest stores, deduplicates and quarantines exactly as for NATS publishers.
//!
//! - `401`: no key, or one that is unknown or revoked. `403`: the key was not issued for the
//!   payload's system. Either way nothing is published.
//! - `413`: the body is over the wire format's 1 MiB.
//! - `400`: the message is wrong, or every report in it is; the body names each field.
//! - `202`: published; says how many reports will be stored and which batch items were rejected
//!   (those go to quarantine, as over NATS).
//!
//! An `Idempotency-Key` header becomes the message's `Nats-Msg-Id`, so a retried POST is stored once.

use crate::state::AppState;
use crate::view::error::WebError;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sitrep_domain::notice;
use sitrep_domain::wire::{self, FieldError, MessageKind, MAX_PAYLOAD_BYTES};
use sitrep_infra::{auth, provenance};

/// What a `202` says.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// Reports (or outage/maintenance messages) that will be stored.
    pub accepted: usize,
    /// Batch items rejected alone; the message is also kept in quarantine with these reasons.
    pub rejected: Vec<FieldError>,
    /// The subject it was published on.
    pub subject: String,
    /// The report stream's sequence number for the message.
    pub stream_seq: u64,
    /// True when JetStream had already seen this `Idempotency-Key` (nothing new was published).
    pub duplicate: bool,
}

pub async fn reports(state: State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, WebError> {
    post(state, headers, body, MessageKind::Report).await
}

pub async fn outages(state: State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, WebError> {
    post(state, headers, body, MessageKind::Outage).await
}

pub async fn maintenance(state: State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, WebError> {
    post(state, headers, body, MessageKind::Maintenance).await
}

/// The bearer key of a request.
fn bearer(headers: &HeaderMap) -> Result<&str, WebError> {
    if !headers.contains_key(header::AUTHORIZATION) {
        return Err(WebError::BadKey { what: "No API key: the Authorization header is missing.".into() });
    }
    bearer_token(headers)
        .ok_or_else(|| WebError::BadKey { what: "The Authorization header must be `Bearer <key>`.".into() })
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case), trimmed;
/// `None` if there is none.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    Some(token.trim()).filter(|t| scheme.eq_ignore_ascii_case("bearer") && !t.is_empty())
}

#[tracing::instrument(skip_all, fields(kind = kind.token(), key = tracing::field::Empty, system = tracing::field::Empty))]
async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
    kind: MessageKind,
) -> Result<Response, WebError> {
    let key = bearer(&headers)?;
    let client = state.pool.get().await.map_err(WebError::api)?;
    let (key_name, systems) = auth::check_key(&**client, key)
        .await
        .map_err(WebError::api)?
        .ok_or_else(|| WebError::BadKey { what: "This API key is unknown or revoked.".into() })?;
    drop(client);
    tracing::Span::current().record("key", key_name.as_str());

    let payload = axum::body::to_bytes(body, MAX_PAYLOAD_BYTES).await.map_err(|_| WebError::TooLarge {
        what: format!("the body is over {MAX_PAYLOAD_BYTES} bytes, the most one message may be"),
    })?;
    let system = wire::peek_system(&payload).map_err(|e| WebError::Rejected { errors: vec![e] })?;
    tracing::Span::current().record("system", system.as_str());
    if !systems.iter().any(|s| s == system.as_str()) {
        return Err(WebError::Forbidden {
            format: crate::view::error::Format::Json,
            what: format!(
                "system: the key {key_name:?} may publish for {}, not for {:?}; nothing was stored",
                systems.join(", "),
                system.as_str()
            ),
        });
    }

    let now = time::OffsetDateTime::now_utc();
    let (accepted, rejected) = match kind {
        MessageKind::Report => {
            let decoded =
                wire::decode(system.as_str(), &payload, now).map_err(|e| WebError::Rejected { errors: vec![e] })?;
            if decoded.reports.is_empty() {
                return Err(WebError::Rejected { errors: decoded.rejected });
            }
            (decoded.reports.len(), decoded.rejected)
        }
        _ => {
            let notice = notice::decode(kind, system.as_str(), &payload, now)
                .map_err(|e| WebError::Rejected { errors: vec![e] })?;
            refused_by_aggregate(&state, &notice).await?;
            (1, Vec::new())
        }
    };

    let bus = state
        .bus
        .as_ref()
        .ok_or_else(|| WebError::Unavailable { what: "This process has no NATS connection.".into() })?;
    let subject = format!("{}.{}.{}", bus.subject_prefix, kind.token(), system.as_str());
    let mut nats_headers = async_nats::HeaderMap::new();
    if let Some(id) = idempotency_key(&headers)? {
        nats_headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
    }
    nats_headers.insert(provenance::KEY_HEADER, key_name.as_str());
    nats_headers.insert(provenance::SIGNATURE_HEADER, state.provenance.sign(&key_name, &payload).as_str());
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, %subject, "publishing an HTTP message failed");
        WebError::Unavailable { what: format!("Could not publish to NATS ({e}); nothing was stored.") }
    };
    let ack = bus
        .js
        .publish_with_headers(subject.clone(), nats_headers, payload)
        .await
        .map_err(|e| unavailable(&e))?
        .await
        .map_err(|e| unavailable(&e))?;
    let body = Accepted { accepted, rejected, subject, stream_seq: ack.sequence, duplicate: ack.duplicate };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Answers `409` at once when the outage or window, as stored now, refuses the command (declaring
/// one that exists, resolving one never declared), instead of `202` and a quarantined message.
/// Ingest still decides for itself: a message racing another for the same id is settled there.
async fn refused_by_aggregate(state: &AppState, notice: &notice::Notice) -> Result<(), WebError> {
    let (ty, agg_id) = notice.target();
    let client = state.pool.get().await.map_err(WebError::api)?;
    let rows = client
        .query(
            "SELECT payload FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
            &[&ty, &agg_id],
        )
        .await
        .map_err(|e| WebError::api(sitrep_infra::InfraError::from(e)))?;
    let mut aggregate = notice::NoticeState::empty(notice);
    for row in rows {
        aggregate.apply_stored(row.get(0)).map_err(WebError::api)?;
    }
    match aggregate.decide(notice).await {
        Err(what) => Err(WebError::Refused { what: format!("{what}; nothing was stored") }),
        Ok(_) => Ok(()),
    }
}

/// The longest `Idempotency-Key` taken, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

/// The `Idempotency-Key` header, if any: 1 to 200 printable ASCII characters, else a `400` that
/// says so (a key that was silently dropped would store a retry twice).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, WebError> {
    let Some(raw) = headers.get("idempotency-key") else { return Ok(None) };
    let bad = |reason: String| WebError::Rejected { errors: vec![FieldError::new("Idempotency-Key", reason)] };
    let bytes = raw.as_bytes();
    if bytes.is_empty() {
        return Err(bad("is empty; leave the header out, or give 1 to 200 printable ASCII characters".into()));
    }
    if bytes.len() > MAX_IDEMPOTENCY_KEY {
        return Err(bad(format!("is {} bytes long; at most {MAX_IDEMPOTENCY_KEY} are allowed", bytes.len())));
    }
    if !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(bad(
            "may hold only printable ASCII characters (no spaces, no control or non-ASCII characters)".into()
        ));
    }
    Ok(raw.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(value: &[u8]) -> Result<Option<String>, String> {
        let mut h = HeaderMap::new();
        h.insert("idempotency-key", axum::http::HeaderValue::from_bytes(value).unwrap());
        idempotency_key(&h).map(|k| k.map(str::to_owned)).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn an_idempotency_key_is_printable_ascii_of_at_most_200_bytes_or_refused_with_a_reason() {
        assert_eq!(key(b"round-2026-12-07T10:00Z").unwrap().as_deref(), Some("round-2026-12-07T10:00Z"));
        assert_eq!(idempotency_key(&HeaderMap::new()).map_err(|_| ()).unwrap(), None);
        assert!(key("clé".as_bytes()).unwrap_err().contains("printable ASCII"));
        assert!(key(b"a b").unwrap_err().contains("printable ASCII"));
        assert!(key(&[b'k'; 70_000]).unwrap_err().contains("70000 bytes long"));
        assert!(key(b"").unwrap_err().contains("is empty"));
    }
}
