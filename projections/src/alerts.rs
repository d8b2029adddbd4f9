//! Alerts on the read side of the log.
//!
//! - [`AlertEvaluator`] is the process manager: it runs under the same runner as a projection
//!   (checkpoint, one transaction per step), feeds each event to the pure
//!   [`Evaluator`], and appends the alert events its decisions lead to in the same
//!   transaction as its saved state and checkpoint. Its decisions carry ids derived from the
//!   log, so resetting it and running it again over the same log appends nothing new.
//! - [`Alerts`] is the read model the pages show: `alerts` (each alert as it is now) and
//!   `alert_transitions` (each transition, with the position of the event that caused it).

use crate::runner::Projection;
use anyhow::Context;
use deadpool_postgres::Transaction;
use serde::Deserialize;
use sitrep_domain::alert::{AlertEvent, Decision, Evaluator, EvaluatorEvent, Input, Tracked, AGGREGATE_TYPE as ALERT};
use sitrep_domain::component::{ComponentEvent, AGGREGATE_TYPE as COMPONENT};
use sitrep_infra::alerts;
use sitrep_infra::event_store::StoredEvent;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The alert evaluator, run as a projection named `alert_evaluator`. It keeps its state in
/// memory between steps as well as in `alert_evaluator_state`, and reads it back from the
/// table only when the checkpoint is not where it left it (at start, after a failed commit, or
/// after another process ran it).
#[derive(Default, Clone)]
pub struct AlertEvaluator {
    kept: Arc<Mutex<Option<(i64, Evaluator)>>>,
}

impl AlertEvaluator {
    pub const NAME: &'static str = "alert_evaluator";
}

/// Reads the evaluator's saved state (a fresh one before its first batch): its core document,
/// then its components, one row each.
pub async fn evaluator_state(client: &impl tokio_postgres::GenericClient) -> anyhow::Result<Evaluator> {
    Ok(saved_state(client).await?.0)
}

/// The saved state, and whether it is in the format of before components had rows of their own
/// (all of them in the document): then the next save writes every component.
async fn saved_state(client: &impl tokio_postgres::GenericClient) -> anyhow::Result<(Evaluator, bool)> {
    let row =
        client.query_opt("SELECT state FROM alert_evaluator_state WHERE name = $1", &[&AlertEvaluator::NAME]).await?;
    let mut evaluator: Evaluator = match row {
        Some(r) => serde_json::from_value(r.get(0)).context("reading the alert evaluator's saved state")?,
        None => Evaluator::default(),
    };
    let legacy = evaluator.components().next().is_some();
    let rows = client
        .query("SELECT key, state FROM alert_evaluator_components WHERE name = $1", &[&AlertEvaluator::NAME])
        .await?;
    for r in rows {
        let tracked: Tracked =
            serde_json::from_value(r.get(1)).context("reading a component of the alert evaluator")?;
        evaluator.restore_component(r.get(0), tracked);
    }
    Ok((evaluator, legacy))
}

/// What one step of the evaluator carries: its state, the last position applied, the
/// components it touched, and the decisions to append when the step finishes.
#[derive(Default)]
pub struct EvaluatorStep {
    evaluator: Option<(i64, Evaluator)>,
    decisions: Vec<Decision>,
    touched: BTreeSet<String>,
    /// Save every component, not only the touched ones (the state was loaded in the old format).
    save_all: bool,
}

impl Projection for AlertEvaluator {
    type Step = EvaluatorStep;

    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["alert_evaluator_state", "alert_evaluator_components"]
    }

    /// Its state is one document, written once per step: a step covers up to ten batches.
    fn step_events(&self) -> i64 {
        10 * crate::runner::BATCH
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
        step: &mut EvaluatorStep,
    ) -> anyhow::Result<()> {
        let Some(last) = events.last().map(|e| e.position) else { return Ok(()) };
        let mut evaluator = match step.evaluator.take() {
            Some((_, current)) => current,
            None => {
                // The kept state serves if it has applied exactly the events before this step.
                let kept = self.kept.lock().expect("the evaluator's kept state").take();
                match kept {
                    Some((at, evaluator)) if at == Self::last_before(tx, events[0].position).await? => evaluator,
                    _ => {
                        let (evaluator, legacy) = saved_state(&**tx).await?;
                        step.save_all = legacy;
                        evaluator
                    }
                }
            }
        };
        for e in events {
            let position = e.position;
            match e.aggregate_type.as_str() {
                COMPONENT if e.event_type == ComponentEvent::STATUS_REPORTED => {
                    if let ComponentEvent::StatusReported(r) = ComponentEvent::deserialize(&e.payload)? {
                        step.touched.extend(Evaluator::touched_by(&r));
                        step.decisions.extend(evaluator.handle(position, Input::Reported(&r)));
                    }
                }
                EvaluatorEvent::AGGREGATE_TYPE => {
                    let event = EvaluatorEvent::deserialize(&e.payload)?;
                    step.decisions.extend(evaluator.handle(position, Input::Evaluator(&event)));
                }
                ALERT => {
                    let event = AlertEvent::deserialize(&e.payload)?;
                    let id =
                        Uuid::parse_str(&e.aggregate_id).with_context(|| format!("alert id {}", e.aggregate_id))?;
                    step.decisions.extend(evaluator.handle(position, Input::Alert(id, &event)));
                }
                _ => {}
            }
        }
        step.evaluator = Some((last, evaluator));
        Ok(())
    }

    /// Appends the step's decisions (taking the log's writer lock only now, briefly) and saves
    /// the state.
    async fn finish(&self, tx: &Transaction<'_>, step: EvaluatorStep) -> anyhow::Result<()> {
        let Some((last, evaluator)) = step.evaluator else { return Ok(()) };
        let appended = alerts::execute(&**tx, step.decisions).await?;
        if appended > 0 {
            tracing::info!(events = appended, "alert evaluator decided");
        }
        tx.execute(
            "INSERT INTO alert_evaluator_state (name, state) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET state = excluded.state",
            &[&Self::NAME, &serde_json::to_value(evaluator.core())?],
        )
        .await?;
        // Only the components this step touched (every one after loading the old format).
        let (keys, states): (Vec<&str>, Vec<serde_json::Value>) = if step.save_all {
            evaluator
                .components()
                .map(|(k, t)| Ok((k.as_str(), serde_json::to_value(t)?)))
                .collect::<Result<Vec<_>, serde_json::Error>>()?
        } else {
            step.touched
                .iter()
                .filter_map(|k| evaluator.component(k).map(|t| (k.as_str(), t)))
                .map(|(k, t)| Ok((k, serde_json::to_value(t)?)))
                .collect::<Result<Vec<_>, serde_json::Error>>()?
        }
        .into_iter()
        .unzip();
        if !keys.is_empty() {
            tx.execute(
                "INSERT INTO alert_evaluator_components (name, key, state)
                 SELECT $1, k, s FROM unnest($2::text[], $3::jsonb[]) AS t(k, s)
                 ON CONFLICT (name, key) DO UPDATE SET state = excluded.state",
                &[&Self::NAME, &keys, &states],
            )
            .await?;
        }
        // Kept as of `last`: used again only if the checkpoint gets there, i.e. this commits.
        *self.kept.lock().expect("the evaluator's kept state") = Some((last, evaluator));
        Ok(())
    }
}

impl AlertEvaluator {
    /// The newest event in the log before position `first`: the state kept after applying it is
    /// the state this batch starts from (the evaluator is a function of the log, in order).
    async fn last_before(tx: &Transaction<'_>, first: i64) -> anyhow::Result<i64> {
        let before: Option<i64> =
            tx.query_one("SELECT max(position) FROM events WHERE position < $1", &[&first]).await?.get(0);
        Ok(before.unwrap_or(0))
    }
}

/// The alerts read model.
#[derive(Clone, Copy)]
pub struct Alerts;

impl Projection for Alerts {
    type Step = ();

    fn name(&self) -> &'static str {
        "alerts"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["alerts", "alert_transitions"]
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[ALERT]
    }

    async fn apply(&self, tx: &Transaction<'_>, events: &[StoredEvent], _: &mut ()) -> anyhow::Result<()> {
        for t in alerts::transitions(&**tx, events).await? {
            let Some(info) = t.after.info.as_ref() else { continue };
            let state = t.after.state.as_str();
            let (by, comment, cause) = match &t.event {
                AlertEvent::Raised { cause, .. } => (None, None, *cause),
                AlertEvent::Acknowledged { by, comment, .. } | AlertEvent::Silenced { by, comment, .. } => {
                    (Some(by.as_str()), Some(comment.as_str()), t.position)
                }
                AlertEvent::SilenceExpired { cause, .. } => (None, None, *cause),
                AlertEvent::Resolved { reason, cause, .. } => (None, Some(reason.as_str()), *cause),
            };
            let at = t.event.at();
            tx.execute(
                "INSERT INTO alert_transitions (position, alert_id, transition, state, at, by_whom, comment, cause, notify)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[&t.position, &t.alert_id, &t.event.transition(), &state, &at, &by, &comment, &cause, &t.notify()],
            )
            .await?;
            match &t.event {
                AlertEvent::Raised { at, .. } => {
                    tx.execute(
                        "INSERT INTO alerts (alert_id, rule, kind, severity, system, component, summary, state,
                                             impacted_by, since, raised_at, updated_at, raised_position, last_position)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $12)",
                        &[
                            &t.alert_id,
                            &info.rule,
                            &info.kind,
                            &info.severity.as_str(),
                            &info.system,
                            &info.component,
                            &info.summary,
                            &state,
                            &info.impacted_by,
                            &info.since,
                            at,
                            &t.position,
                        ],
                    )
                    .await?;
                }
                AlertEvent::Acknowledged { by, at, .. } => {
                    tx.execute(
                        "UPDATE alerts SET state = $2, acknowledged_by = $3, acknowledged_at = $4, updated_at = $4,
                                last_position = $5 WHERE alert_id = $1",
                        &[&t.alert_id, &state, by, at, &t.position],
                    )
                    .await?;
                }
                AlertEvent::Silenced { .. } | AlertEvent::SilenceExpired { .. } => {
                    tx.execute(
                        "UPDATE alerts SET state = $2, silenced_until = $3, updated_at = $4, last_position = $5
                         WHERE alert_id = $1",
                        &[&t.alert_id, &state, &t.after.silenced_until, &at, &t.position],
                    )
                    .await?;
                }
                AlertEvent::Resolved { reason, at, .. } => {
                    tx.execute(
                        "UPDATE alerts SET state = $2, silenced_until = NULL, resolved_at = $3, resolved_reason = $4,
                                updated_at = $3, last_position = $5 WHERE alert_id = $1",
                        &[&t.alert_id, &state, at, reason, &t.position],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}
