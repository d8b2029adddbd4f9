//! The component states ingest keeps between batches.
//!
//! Each batch needs the state of every component it reports on. Loading it from the snapshot
//! table, and writing a snapshot back for every component a batch touched, cost as many rows
//! as the events themselves. Ingest instead keeps the states in memory, together with the
//! position of the log they include. A batch holds the event store's writer lock, so it first
//! reads the component events that other writers appended since (another ingest process, the
//! HTTP path), folds them in, and only then decides. Snapshots are written every
//! [`SNAPSHOT_EVERY`] events per component, and for all that are behind when ingest stops, so a
//! cold start reads only a short tail of each component's events.
//!
//! A batch that fails may have changed states it then did not store, so [`Components::forget`]
//! drops everything, and the next batch starts cold.

use cqrs_es::Aggregate;
use serde_json::Value;
use sitrep_domain::component::{Component, AGGREGATE_TYPE};
use sitrep_infra::event_store;
use std::collections::HashMap;
use tokio_postgres::GenericClient;

/// A component's snapshot is written once its state includes this many events more than the
/// last one.
pub(crate) const SNAPSHOT_EVERY: i64 = 100;

/// Catching up on more events than this drops the kept states instead (reading them back for
/// the components a batch needs is cheaper than folding in a long tail of others' events).
const MOST_TO_CATCH_UP: i64 = 10_000;

/// Kept states beyond this many are dropped, to bound memory with very many components.
const MOST_KEPT: usize = 250_000;

/// One component's state, the sequence of its last event, and the sequence its stored snapshot
/// has.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Kept {
    pub state: Component,
    pub sequence: i64,
    pub snapshot: i64,
}

/// What ingest keeps between batches.
#[derive(Debug, Default)]
pub(crate) struct Components {
    states: HashMap<String, Kept>,
    /// Every component event up to this position is in `states`, for the components there.
    /// `None` when nothing is known (at start, and after a failed batch).
    through: Option<i64>,
}

impl Components {
    /// Brings the kept states up to the log's head. Call with the writer lock held, so that
    /// nothing is appended between this and the batch's own append.
    pub async fn catch_up(&mut self, tx: &impl GenericClient) -> anyhow::Result<()> {
        if let Some(after) = self.through {
            let rows = tx
                .query(
                    "SELECT position, aggregate_id, sequence, payload FROM events
                     WHERE aggregate_type = $1 AND position > $2 ORDER BY position LIMIT $3",
                    &[&AGGREGATE_TYPE, &after, &(MOST_TO_CATCH_UP + 1)],
                )
                .await?;
            if rows.len() as i64 <= MOST_TO_CATCH_UP {
                for row in &rows {
                    self.absorb(row.get(1), row.get(2), row.get(3))?;
                }
                self.through = Some(rows.last().map_or(after, |r| r.get(0)));
                return Ok(());
            }
        }
        self.states.clear();
        self.through = Some(event_store::head(tx).await?);
        Ok(())
    }

    /// Folds in an event another writer appended. An event the state already includes is
    /// skipped; one that leaves a gap drops the component, which is then loaded again.
    fn absorb(&mut self, id: &str, sequence: i64, payload: Value) -> anyhow::Result<()> {
        let Some(kept) = self.states.get_mut(id) else { return Ok(()) };
        if sequence <= kept.sequence {
            return Ok(());
        }
        if sequence == kept.sequence + 1 {
            kept.state.apply(serde_json::from_value(payload)?);
            kept.sequence = sequence;
        } else {
            self.states.remove(id);
        }
        Ok(())
    }

    /// Loads the states of the components in `ids` that are not kept: each from its snapshot
    /// and the events after it.
    pub async fn load(&mut self, tx: &impl GenericClient, ids: &[&str]) -> anyhow::Result<()> {
        if self.states.len() + ids.len() > MOST_KEPT {
            self.states.clear();
        }
        let missing: Vec<&str> = ids.iter().copied().filter(|id| !self.states.contains_key(*id)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        for (id, s) in event_store::load_snapshots(tx, AGGREGATE_TYPE, &missing).await? {
            let kept = Kept {
                state: serde_json::from_value(s.payload)?,
                sequence: s.last_sequence,
                snapshot: s.last_sequence,
            };
            self.states.insert(id, kept);
        }
        for (id, sequence, payload) in event_store::events_after_snapshots(tx, AGGREGATE_TYPE, &missing).await? {
            let kept = self.states.entry(id).or_default();
            kept.state.apply(serde_json::from_value(payload)?);
            kept.sequence = sequence;
        }
        // A component with no events yet is kept too, at sequence 0.
        for id in missing {
            self.states.entry(id.to_owned()).or_default();
        }
        Ok(())
    }

    /// The kept state of a component that [`load`](Self::load) was called for.
    pub fn get_mut(&mut self, id: &str) -> &mut Kept {
        if !self.states.contains_key(id) {
            self.states.insert(id.to_owned(), Kept::default());
        }
        self.states.get_mut(id).expect("inserted above")
    }

    /// Records that the log is stored through `position` (the batch's last event), all of it
    /// in the kept states.
    pub fn stored_through(&mut self, position: Option<i64>) {
        if let Some(position) = position {
            self.through = Some(position);
        }
    }

    /// The snapshots that are due among these components, `(id, state, sequence)`, marked as
    /// written. `all` takes every one that is behind (when stopping).
    pub fn due_snapshots<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
        all: bool,
    ) -> anyhow::Result<Vec<(String, Value, i64)>> {
        let least = if all { 1 } else { SNAPSHOT_EVERY };
        let mut due = Vec::new();
        for id in ids {
            if let Some(kept) = self.states.get_mut(id) {
                if kept.sequence - kept.snapshot >= least {
                    due.push((id.to_owned(), serde_json::to_value(&kept.state)?, kept.sequence));
                    kept.snapshot = kept.sequence;
                }
            }
        }
        Ok(due)
    }

    /// Every snapshot that is behind, for when ingest stops.
    pub fn behind(&mut self) -> anyhow::Result<Vec<(String, Value, i64)>> {
        let ids: Vec<String> = self.states.keys().cloned().collect();
        self.due_snapshots(ids.iter().map(String::as_str), true)
    }

    /// Drops everything kept: after a failed batch, whose changes to the states were not stored.
    pub fn forget(&mut self) {
        self.states.clear();
        self.through = None;
    }

    #[cfg(test)]
    fn keep(&mut self, id: &str, kept: Kept, through: i64) {
        self.states.insert(id.to_owned(), kept);
        self.through = Some(through);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitrep_domain::component::{ComponentEvent, Reported};
    use sitrep_domain::wire::Report;
    use sitrep_domain::{ComponentName, Status, SystemName};
    use std::collections::BTreeMap;
    use time::macros::datetime;
    use time::OffsetDateTime;

    const ID: &str = "derecho:fs/glade";

    fn reported(status: Status, at: OffsetDateTime) -> Value {
        let report = Report {
            system: SystemName::parse("derecho").unwrap(),
            component: ComponentName::parse("fs/glade").unwrap(),
            status,
            observed_at: at,
            message: None,
            metrics: BTreeMap::new(),
            labels: BTreeMap::new(),
            ttl_seconds: None,
        };
        serde_json::to_value(ComponentEvent::StatusReported(Reported::new(report, at, false))).unwrap()
    }

    fn kept_ok_at_sequence(sequence: i64) -> Kept {
        let mut state = Component::default();
        state.apply(serde_json::from_value(reported(Status::Ok, datetime!(2026-11-22 10:00 UTC))).unwrap());
        Kept { state, sequence, snapshot: 0 }
    }

    #[test]
    fn another_writers_next_event_is_folded_into_the_kept_state() {
        let mut components = Components::default();
        components.keep(ID, kept_ok_at_sequence(2), 10);

        components.absorb(ID, 3, reported(Status::Failed, datetime!(2026-11-22 10:05 UTC))).unwrap();

        let kept = components.get_mut(ID);
        assert_eq!((kept.state.status, kept.sequence), (Some(Status::Failed), 3));
    }

    #[test]
    fn an_event_the_state_already_includes_changes_nothing() {
        let mut components = Components::default();
        components.keep(ID, kept_ok_at_sequence(2), 10);

        components.absorb(ID, 2, reported(Status::Failed, datetime!(2026-11-22 10:05 UTC))).unwrap();

        assert_eq!(components.get_mut(ID), &kept_ok_at_sequence(2));
    }

    #[test]
    fn an_event_after_a_gap_drops_the_component_so_it_is_loaded_again() {
        let mut components = Components::default();
        components.keep(ID, kept_ok_at_sequence(2), 10);

        components.absorb(ID, 5, reported(Status::Failed, datetime!(2026-11-22 10:05 UTC))).unwrap();

        assert!(!components.states.contains_key(ID));
    }

    #[test]
    fn events_of_components_not_kept_are_ignored() {
        let mut components = Components::default();
        components.absorb(ID, 1, reported(Status::Failed, datetime!(2026-11-22 10:05 UTC))).unwrap();
        assert!(components.states.is_empty());
    }

    #[test]
    fn a_snapshot_is_due_every_hundred_events_and_all_that_are_behind_when_stopping() {
        let mut components = Components::default();
        components.keep(ID, kept_ok_at_sequence(SNAPSHOT_EVERY - 1), 10);
        components.keep("derecho:other", kept_ok_at_sequence(SNAPSHOT_EVERY), 10);

        let due = components.due_snapshots([ID, "derecho:other"], false).unwrap();
        assert_eq!(
            due.iter().map(|d| (d.0.as_str(), d.2)).collect::<Vec<_>>(),
            vec![("derecho:other", SNAPSHOT_EVERY)]
        );
        assert!(components.due_snapshots(["derecho:other"], false).unwrap().is_empty(), "marked as written");

        let mut behind = components.behind().unwrap();
        behind.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(behind.iter().map(|d| (d.0.as_str(), d.2)).collect::<Vec<_>>(), vec![(ID, SNAPSHOT_EVERY - 1)]);
    }

    #[test]
    fn forgetting_drops_the_states_and_the_position() {
        let mut components = Components::default();
        components.keep(ID, kept_ok_at_sequence(2), 10);
        components.forget();
        assert!(components.states.is_empty());
        assert_eq!(components.through, None);
    }
}
