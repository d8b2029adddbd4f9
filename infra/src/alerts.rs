//! Alerts in the event store: loading `alerts.toml`, recording what the evaluator needs
//! (rules in force, clock ticks), carrying out its decisions on alert aggregates, and reading
//! alert events back as [`Transition`]s for the read model and the notifiers.

use crate::event_store::{self, NewEvent, StoredEvent};
use crate::InfraError;
use anyhow::Context;
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::json;
use sitrep_domain::alert::notify::{self, NotifierEvent};
use sitrep_domain::alert::receivers::{self, Receiver, Resolved, Secret};
use sitrep_domain::alert::{Alert, AlertEvent, Decision, EvaluatorEvent, RuleSet, Transition};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// The file read when `SITREP_ALERTS_FILE` is not set (and only if it exists).
pub const DEFAULT_RULES_FILE: &str = "alerts.toml";

/// The rules file's path and text: the configured file (which must exist), else `alerts.toml`
/// in the working directory if there is one.
fn rules_file(configured: Option<&Path>) -> anyhow::Result<Option<(PathBuf, String)>> {
    let path: PathBuf = match configured {
        Some(p) => p.to_owned(),
        None if Path::new(DEFAULT_RULES_FILE).exists() => PathBuf::from(DEFAULT_RULES_FILE),
        None => return Ok(None),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading the alert rules {}", path.display()))?;
    Ok(Some((path, text)))
}

/// The text of the rules file (the same file [`load_rules`] reads); empty when there is none.
pub fn rules_text(configured: Option<&Path>) -> anyhow::Result<String> {
    Ok(rules_file(configured)?.map(|(_, text)| text).unwrap_or_default())
}

/// Reads and checks the rules: the configured file (which must exist), else `alerts.toml` in
/// the working directory if there is one. Returns the rules and where they came from, or
/// `None` when nothing is configured and there is no `alerts.toml`.
pub fn load_rules(configured: Option<&Path>, default_ttl_seconds: u32) -> anyhow::Result<Option<(RuleSet, String)>> {
    let Some((path, text)) = rules_file(configured)? else { return Ok(None) };
    let rules = RuleSet::parse_toml(&text, default_ttl_seconds.into())
        .with_context(|| format!("checking the alert rules in {}", path.display()))?;
    Ok(Some((rules, path.display().to_string())))
}

/// The `[[receiver]]`s of the rules file (the same file [`load_rules`] reads), checked, their
/// secrets not read. No file: none.
pub fn receivers_in_file(configured: Option<&Path>) -> anyhow::Result<Vec<Receiver>> {
    let Some((path, text)) = rules_file(configured)? else { return Ok(Vec::new()) };
    let mut receivers =
        receivers::parse(&text).with_context(|| format!("checking the receivers in {}", path.display()))?;
    // A body template in a file is read now, like the rules (it is not a secret).
    for r in &mut receivers {
        if let Some(t) = &mut r.template {
            if let receivers::TemplateSource::File(file) = &t.source {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("receiver {:?}: reading template_file {file}", r.name))?;
                t.source = receivers::TemplateSource::Inline(text);
            }
        }
    }
    Ok(receivers)
}

/// The receivers of the rules file, each with its secrets read now from where the file says:
/// inline, an environment variable or a file. A secret that cannot be read is an error naming
/// the receiver and the setting.
pub fn load_receivers(configured: Option<&Path>) -> anyhow::Result<Vec<(Receiver, Resolved)>> {
    receivers_in_file(configured)?
        .into_iter()
        .map(|r| {
            let resolved = resolve(&r)?;
            Ok((r, resolved))
        })
        .collect()
}

/// One receiver's secrets, read now.
pub fn resolve(r: &Receiver) -> anyhow::Result<Resolved> {
    let read = |field: &str, secret: &Secret| -> anyhow::Result<String> {
        let value = match secret {
            Secret::Inline(v) => v.clone(),
            Secret::Env(var) => std::env::var(var).with_context(|| {
                format!("receiver {:?}: {field}_env names the environment variable {var}, which is not set", r.name)
            })?,
            Secret::File(file) => std::fs::read_to_string(file)
                .with_context(|| format!("receiver {:?}: reading {field}_file {file}", r.name))?,
        };
        anyhow::ensure!(!value.trim().is_empty(), "receiver {:?}: its {field} is empty", r.name);
        Ok(value.trim().to_owned())
    };
    let url = match &r.url {
        Some(s) => read("url", s)?,
        None => r.default_url().unwrap_or_default().to_owned(),
    };
    let field = match r.kind {
        receivers::Kind::Pagerduty => "routing_key",
        receivers::Kind::Email => "password",
        _ => "token",
    };
    let token = r.token.as_ref().map(|s| read(field, s)).transpose()?;
    Ok(Resolved { url, token })
}

/// Appends one evaluator event (rules loaded, clock ticked) at the next sequence of its stream.
pub async fn record(client: &mut deadpool_postgres::Client, event: &EvaluatorEvent) -> Result<i64, InfraError> {
    let tx = client.transaction().await?;
    event_store::lock_writer(&*tx).await?;
    let last: i64 = tx
        .query_one(
            "SELECT coalesce(max(sequence), 0) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
            &[&EvaluatorEvent::AGGREGATE_TYPE, &EvaluatorEvent::AGGREGATE_ID],
        )
        .await?
        .get(0);
    event_store::append(
        &*tx,
        &[NewEvent {
            event_id: Uuid::new_v4(),
            aggregate_type: EvaluatorEvent::AGGREGATE_TYPE.into(),
            aggregate_id: EvaluatorEvent::AGGREGATE_ID.into(),
            sequence: last + 1,
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload: serde_json::to_value(event)?,
            metadata: json!({}),
        }],
    )
    .await?;
    tx.commit().await?;
    Ok(last + 1)
}

/// Appends notifier events (decisions, the notifier's start) in one transaction, at the next
/// sequences of the notifier's stream. A decision's event id is its id.
pub async fn record_notifier(
    client: &mut deadpool_postgres::Client,
    events: &[NotifierEvent],
) -> Result<(), InfraError> {
    if events.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await?;
    event_store::lock_writer(&*tx).await?;
    let last: i64 = tx
        .query_one(
            "SELECT coalesce(max(sequence), 0) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
            &[&notify::AGGREGATE_TYPE, &notify::AGGREGATE_ID],
        )
        .await?
        .get(0);
    let new: Vec<NewEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(NewEvent {
                event_id: match e {
                    NotifierEvent::NotificationDecided(d) => d.id,
                    NotifierEvent::NotifierStarted { .. } => Uuid::new_v4(),
                },
                aggregate_type: notify::AGGREGATE_TYPE.into(),
                aggregate_id: notify::AGGREGATE_ID.into(),
                sequence: last + 1 + i as i64,
                event_type: e.event_type().into(),
                event_version: "1".into(),
                payload: serde_json::to_value(e)?,
                metadata: json!({}),
            })
        })
        .collect::<Result<_, InfraError>>()?;
    event_store::append(&*tx, &new).await?;
    tx.commit().await?;
    Ok(())
}

/// The rules last recorded in the log, if any.
pub async fn recorded_rules(client: &impl GenericClient) -> Result<Option<RuleSet>, InfraError> {
    let row = client
        .query_opt(
            "SELECT payload FROM events WHERE aggregate_type = $1 AND event_type = 'AlertRulesLoaded'
             ORDER BY position DESC LIMIT 1",
            &[&EvaluatorEvent::AGGREGATE_TYPE],
        )
        .await?;
    Ok(match row.map(|r| serde_json::from_value::<EvaluatorEvent>(r.get(0))).transpose()? {
        Some(EvaluatorEvent::RulesLoaded { rules, .. }) => Some(rules),
        _ => None,
    })
}

/// Records `rules` unless they are the ones already in force; returns whether it did.
pub async fn record_rules_if_changed(
    client: &mut deadpool_postgres::Client,
    rules: &RuleSet,
    source: &str,
) -> Result<bool, InfraError> {
    // No rules recorded yet means no rules: an empty file adds nothing to the log.
    if recorded_rules(&***client).await?.unwrap_or_default() == *rules {
        return Ok(false);
    }
    record(client, &EvaluatorEvent::RulesLoaded { rules: rules.clone(), source: source.into() }).await?;
    Ok(true)
}

/// The events of these alerts before `position`, folded: each alert as it was, and its last
/// sequence.
async fn alerts_before(
    client: &impl GenericClient,
    ids: &[&str],
    position: i64,
) -> Result<HashMap<String, (Alert, i64)>, InfraError> {
    let rows = client
        .query(
            "SELECT aggregate_id, sequence, payload FROM events
             WHERE aggregate_type = $1 AND aggregate_id = ANY($2) AND position < $3
             ORDER BY aggregate_id, sequence",
            &[&Alert::TYPE, &ids, &position],
        )
        .await?;
    let mut alerts: HashMap<String, (Alert, i64)> = HashMap::new();
    for row in rows {
        let entry = alerts.entry(row.get(0)).or_default();
        entry.0.apply(serde_json::from_value(row.get(2))?);
        entry.1 = row.get(1);
    }
    Ok(alerts)
}

/// The id of the one event a decision leads to, so the same decision is never stored twice.
fn decided_event_id(decision: &Decision) -> Uuid {
    Uuid::new_v5(&decision.command_id, b"event")
}

/// Carries out the evaluator's decisions on their alert aggregates inside the caller's
/// transaction. A decision already stored (the evaluator running over the log again) is
/// skipped; one the aggregate refuses (an operator got there first) is logged and dropped.
/// Returns how many events it appended.
pub async fn execute(tx: &impl GenericClient, decisions: Vec<Decision>) -> Result<usize, InfraError> {
    if decisions.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = decisions.iter().map(decided_event_id).collect();
    let stored = event_store::existing_ids(tx, &ids).await?;
    let todo: Vec<(Uuid, Decision)> = ids.into_iter().zip(decisions).filter(|(id, _)| !stored.contains(id)).collect();
    let alert_ids: Vec<String> = todo.iter().map(|(_, d)| d.alert_id.to_string()).collect();
    let refs: Vec<&str> = alert_ids.iter().map(String::as_str).collect();
    let mut alerts = alerts_before(tx, &refs, i64::MAX).await?;
    let mut new = Vec::new();
    for (event_id, decision) in todo {
        let key = decision.alert_id.to_string();
        let (alert, sequence) = alerts.entry(key.clone()).or_default();
        match alert.decide(decision.command.clone()) {
            Ok(event) => {
                *sequence += 1;
                new.push(NewEvent {
                    event_id,
                    aggregate_type: Alert::TYPE.into(),
                    aggregate_id: key,
                    sequence: *sequence,
                    event_type: event.event_type(),
                    event_version: event.event_version(),
                    payload: serde_json::to_value(&event)?,
                    metadata: json!({"command_id": decision.command_id, "by": "evaluator"}),
                });
                alert.apply(event);
            }
            Err(e) => tracing::info!(alert = %decision.alert_id, error = %e, "alert command refused; skipped"),
        }
    }
    event_store::append(tx, &new).await?;
    Ok(new.len())
}

/// Alert events after `position`, in order, at most `limit`.
pub async fn events_after(
    client: &impl GenericClient,
    position: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, InfraError> {
    event_store::read_types_between(client, &[Alert::TYPE], position, i64::MAX, limit, event_store::Metadata::Include)
        .await
}

/// The alert events among `events` as transitions (the alert before and after each).
pub async fn transitions(client: &impl GenericClient, events: &[StoredEvent]) -> Result<Vec<Transition>, InfraError> {
    let ours: Vec<&StoredEvent> = events.iter().filter(|e| e.aggregate_type == Alert::TYPE).collect();
    let Some(first) = ours.first().map(|e| e.position) else { return Ok(Vec::new()) };
    let ids: Vec<&str> = ours.iter().map(|e| e.aggregate_id.as_str()).collect();
    let mut alerts = alerts_before(client, &ids, first).await?;
    let mut out = Vec::with_capacity(ours.len());
    for e in ours {
        let event = e.payload.decode::<AlertEvent>()?;
        let (alert, _) = alerts.entry(e.aggregate_id.clone()).or_default();
        let before = alert.clone();
        alert.apply(event.clone());
        out.push(Transition {
            position: e.position,
            event_id: e.event_id,
            alert_id: Uuid::parse_str(&e.aggregate_id).unwrap_or_default(),
            event,
            before,
            after: alert.clone(),
        });
    }
    Ok(out)
}

/// Metadata for an operator's command: who, for the record.
pub fn operator_metadata(by: &str) -> HashMap<String, String> {
    HashMap::from([("by".to_owned(), by.to_owned())])
}
