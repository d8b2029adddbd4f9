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
use sitrep_domain::alert::{AlertEvent, Decision, Evaluator, EvaluatorEvent, Input, Tracked, AGGREGATE_TYPE as ALERT};
use sitrep_domain::component::{ComponentEvent, AGGREGATE_TYPE as COMPONENT};
use sitrep_domain::maintenance::{MaintenanceEvent, AGGREGATE_TYPE as MAINTENANCE};
use sitrep_domain::outage::{OutageEvent, AGGREGATE_TYPE as OUTAGE};
use sitrep_infra::alerts;
use sitrep_infra::event_store::{self, StoredEvent};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The alert evaluator, run as a projection named `alert_evaluator`.
///
/// It keeps its state in memory between steps. It saves the whole of it only now and then: a
/// snapshot as of an event position, every [`SNAPSHOT_EVENTS`] events (the document in
/// `alert_evaluator_state`, and a row in `alert_evaluator_components` for each component
/// touched since the last snapshot). At every other step it records only when it is next due,
/// for the alert clock. Under load a step touches nearly every component, so saving them at every
/// step cost a row write per report.
///
/// When its kept state is not where the checkpoint is (at start, after a failed commit, or after
/// another process ran it), it reads the snapshot and applies the events after it again, up to
/// the checkpoint, dropping what it decides on the way: those decisions are in the log already,
/// and the evaluator is a function of the log.
#[derive(Clone)]
pub struct AlertEvaluator {
    kept: Arc<Mutex<Option<Kept>>>,
    snapshot_events: i64,
}

/// Events between snapshots of the evaluator's state: at most this many are applied again after
/// a restart (seconds of work), and under load a snapshot writes each component once instead of
/// once per report.
pub const SNAPSHOT_EVENTS: i64 = 100_000;

impl Default for AlertEvaluator {
    fn default() -> Self {
        Self::snapshot_every(SNAPSHOT_EVENTS)
    }
}

impl AlertEvaluator {
    pub const NAME: &'static str = "alert_evaluator";

    /// An evaluator that saves a snapshot every `events` events (tests use a few).
    pub fn snapshot_every(events: i64) -> Self {
        Self { kept: Arc::default(), snapshot_events: events.max(1) }
    }
}

/// The aggregate types the evaluator reads.
const INPUTS: [&str; 5] = [COMPONENT, EvaluatorEvent::AGGREGATE_TYPE, ALERT, MAINTENANCE, OUTAGE];

/// The evaluator's state as of an event position, with what its snapshot lacks.
struct Kept {
    /// The position of the last event applied.
    at: i64,
    evaluator: Evaluator,
    /// The position the saved snapshot is as of (`None` before the first).
    saved_at: Option<i64>,
    /// Components that reports touched since the snapshot.
    unsaved: BTreeSet<String>,
}

/// The evaluator's state as of the checkpoint: its snapshot, and the events after it applied
/// again.
pub async fn evaluator_state(client: &impl tokio_postgres::GenericClient) -> anyhow::Result<Evaluator> {
    let checkpoint: Option<i64> = client
        .query_opt("SELECT position FROM projection_checkpoints WHERE name = $1", &[&AlertEvaluator::NAME])
        .await?
        .map(|r| r.get(0));
    Ok(restore(client, checkpoint.unwrap_or(0)).await?.0.evaluator)
}

/// The state as of `through` (the checkpoint): the snapshot, then the events after it up to
/// `through`. Also whether the snapshot is in the format of before components had rows of their
/// own (all of them in the document): then the next save writes every component.
async fn restore(client: &impl tokio_postgres::GenericClient, through: i64) -> anyhow::Result<(Kept, bool)> {
    let row = client
        .query_opt("SELECT state, position FROM alert_evaluator_state WHERE name = $1", &[&AlertEvaluator::NAME])
        .await?;
    // A snapshot without a position was saved at every step by an earlier sitrep: as of the
    // checkpoint.
    let (mut evaluator, saved_at): (Evaluator, Option<i64>) = match row {
        Some(r) => (
            serde_json::from_value(r.get(0)).context("reading the alert evaluator's saved state")?,
            Some(r.get::<_, Option<i64>>(1).unwrap_or(through)),
        ),
        None => (Evaluator::default(), None),
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
    // Maintenance windows are not in the snapshot: they are few, so read them again. So are
    // outages (a snapshot from before sitrep followed them has none).
    let snapshot = saved_at.unwrap_or(0);
    each_event(client, &[MAINTENANCE, OUTAGE], 0, snapshot, event_store::Metadata::Skip, |e| {
        if e.aggregate_type == OUTAGE {
            evaluator.note_outage(&e.payload.decode::<OutageEvent>()?);
        } else {
            evaluator.note_window(&e.payload.decode::<MaintenanceEvent>()?);
        }
        Ok(())
    })
    .await?;
    let mut kept = Kept { at: through, evaluator, saved_at, unsaved: BTreeSet::new() };
    let mut decided = Vec::new();
    each_event(client, &INPUTS, snapshot, through, event_store::Metadata::Include, |e| {
        decided.clear();
        kept.feed(e, &mut decided)
    })
    .await?;
    Ok((kept, legacy))
}

/// Calls `f` with each event of `types` after position `after` and up to `through`, in order.
async fn each_event(
    client: &impl tokio_postgres::GenericClient,
    types: &[&str],
    mut after: i64,
    through: i64,
    metadata: event_store::Metadata,
    mut f: impl FnMut(&StoredEvent) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    while after < through {
        let events =
            event_store::read_types_between(client, types, after, through, crate::runner::BATCH, metadata).await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        for e in &events {
            f(e)?;
        }
        if events.len() < crate::runner::BATCH as usize {
            break;
        }
    }
    Ok(())
}

impl Kept {
    /// Applies one event of the log, adding what the evaluator decides to `decisions`.
    fn feed(&mut self, e: &StoredEvent, decisions: &mut Vec<Decision>) -> anyhow::Result<()> {
        let position = e.position;
        match e.aggregate_type.as_str() {
            COMPONENT if e.event_type == ComponentEvent::STATUS_REPORTED => {
                if let ComponentEvent::StatusReported(r) = e.payload.decode::<ComponentEvent>()? {
                    self.unsaved.extend(Evaluator::touched_by(&r));
                    decisions.extend(self.evaluator.handle(position, Input::Reported(&r)));
                }
            }
            EvaluatorEvent::AGGREGATE_TYPE => {
                let event = e.payload.decode::<EvaluatorEvent>()?;
                decisions.extend(self.evaluator.handle(position, Input::Evaluator(&event)));
            }
            ALERT => {
                let event = e.payload.decode::<AlertEvent>()?;
                let id = Uuid::parse_str(&e.aggregate_id).with_context(|| format!("alert id {}", e.aggregate_id))?;
                decisions.extend(self.evaluator.handle(position, Input::Alert(id, &event)));
            }
            MAINTENANCE => {
                let event = e.payload.decode::<MaintenanceEvent>()?;
                decisions.extend(self.evaluator.handle(position, Input::Maintenance(&event)));
            }
            OUTAGE => {
                let event = e.payload.decode::<OutageEvent>()?;
                decisions.extend(self.evaluator.handle(position, Input::Outage(&event)));
            }
            _ => {}
        }
        Ok(())
    }
}

/// What one step of the evaluator carries: its state, and the decisions to append when the step
/// finishes.
#[derive(Default)]
pub struct EvaluatorStep {
    kept: Option<Kept>,
    decisions: Vec<Decision>,
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

    /// Each step writes a row or more, and takes the log's writer lock to append what it decided:
    /// a step covers up to ten batches.
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
        let mut kept = match step.kept.take() {
            Some(current) => current,
            None => {
                // The kept state serves if it has applied exactly the events before this step,
                // and the snapshot it knows is the one saved (not one another process saved
                // after a reset).
                let held = self.kept.lock().expect("the evaluator's kept state").take();
                let (before, saved_at) = Self::last_before(tx, events[0].position).await?;
                match held {
                    Some(held) if held.at == before && held.saved_at == saved_at => held,
                    _ => {
                        let (restored, legacy) = restore(&**tx, before).await?;
                        step.save_all = legacy;
                        restored
                    }
                }
            }
        };
        for e in events {
            kept.feed(e, &mut step.decisions)?;
        }
        kept.at = last;
        step.kept = Some(kept);
        Ok(())
    }

    /// Appends the step's decisions (taking the log's writer lock only now, briefly), then saves
    /// a snapshot if one is due, or else when the evaluator is next due.
    async fn finish(&self, tx: &Transaction<'_>, step: EvaluatorStep) -> anyhow::Result<()> {
        let Some(mut kept) = step.kept else { return Ok(()) };
        let appended = alerts::execute(&**tx, step.decisions).await?;
        if appended > 0 {
            tracing::info!(events = appended, "alert evaluator decided");
        }
        let due = serde_json::to_value(kept.evaluator.due())?;
        let snapshot = step.save_all || kept.saved_at.is_none_or(|s| kept.at - s >= self.snapshot_events);
        if !snapshot {
            let updated =
                tx.execute("UPDATE alert_evaluator_state SET due = $2 WHERE name = $1", &[&Self::NAME, &due]).await?;
            if updated == 1 {
                *self.kept.lock().expect("the evaluator's kept state") = Some(kept);
                return Ok(());
            }
        }
        // With no saved row to update (it cannot go while the checkpoint is locked), save
        // everything rather than trust what the kept state says is saved.
        write_snapshot(tx, &kept, step.save_all || !snapshot).await?;
        kept.unsaved.clear();
        kept.saved_at = Some(kept.at);
        // Kept as of `kept.at`: used again only if the checkpoint gets there, i.e. this commits.
        *self.kept.lock().expect("the evaluator's kept state") = Some(kept);
        Ok(())
    }
}

/// Saves `kept` as the snapshot: the document as of `kept.at`, and a row for each component
/// (every one with `all`, else those touched since the last snapshot).
async fn write_snapshot(tx: &Transaction<'_>, kept: &Kept, all: bool) -> anyhow::Result<()> {
    let due = serde_json::to_value(kept.evaluator.due())?;
    tx.execute(
        "INSERT INTO alert_evaluator_state (name, state, position, due) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE
         SET state = excluded.state, position = excluded.position, due = excluded.due",
        &[&AlertEvaluator::NAME, &serde_json::to_value(kept.evaluator.core())?, &kept.at, &due],
    )
    .await?;
    let (keys, states): (Vec<&str>, Vec<serde_json::Value>) = if all {
        kept.evaluator
            .components()
            .map(|(k, t)| Ok((k.as_str(), serde_json::to_value(t)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?
    } else {
        kept.unsaved
            .iter()
            .filter_map(|k| kept.evaluator.component(k).map(|t| (k.as_str(), t)))
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
            &[&AlertEvaluator::NAME, &keys, &states],
        )
        .await?;
    }
    Ok(())
}

/// Saves the evaluator's state as of its checkpoint as a whole snapshot, so that restoring it
/// never needs an event before the checkpoint: `sitrep archive` calls it before it moves
/// component events out of the table. Returns the position the snapshot is as of. A running
/// evaluator finds a snapshot it did not save and restores from it (see `apply`).
pub async fn snapshot_at_checkpoint(pool: &deadpool_postgres::Pool) -> anyhow::Result<i64> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    let at = crate::runner::lock_checkpoint(&tx, AlertEvaluator::NAME).await?;
    let (kept, _) = restore(&*tx, at).await?;
    write_snapshot(&tx, &kept, true).await?;
    tx.commit().await?;
    Ok(at)
}

impl AlertEvaluator {
    /// The newest event in the log before position `first` (the state kept after applying it is
    /// the state this batch starts from: the evaluator is a function of the log, in order), and
    /// the position of the saved snapshot (`None` if there is none).
    async fn last_before(tx: &Transaction<'_>, first: i64) -> anyhow::Result<(i64, Option<i64>)> {
        let row = tx
            .query_one(
                "SELECT (SELECT max(position) FROM events WHERE position < $1),
                        (SELECT position FROM alert_evaluator_state WHERE name = $2)",
                &[&first, &Self::NAME],
            )
            .await?;
        Ok((row.get::<_, Option<i64>>(0).unwrap_or(0), row.get(1)))
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
                AlertEvent::SilenceExpired { cause, .. } | AlertEvent::MaintenanceEnded { cause, .. } => {
                    (None, None, *cause)
                }
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
                                             impacted_by, since, raised_at, updated_at, raised_position, last_position,
                                             maintenance)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $12, $13)",
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
                            &info.maintenance,
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
                AlertEvent::MaintenanceEnded { at, .. } => {
                    tx.execute(
                        "UPDATE alerts SET maintenance_ended_at = $2, updated_at = $2, last_position = $3
                         WHERE alert_id = $1",
                        &[&t.alert_id, at, &t.position],
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
