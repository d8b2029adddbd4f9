//! Feeds projections from the event log.
//!
//! Each projection has a row in `projection_checkpoints`. One step locks that row, reads the
//! events after it a batch at a time (up to the projection's `step_events`), lets the projection
//! write its tables, moves the checkpoint and commits, all in one transaction: a crash between
//! steps loses nothing and applies nothing twice, and two runners of the same projection take
//! turns instead of applying a step twice.
//! Projections read time from events only, never from the clock, so a rebuild from zero gives
//! the same tables as the live run.

use crate::feed::{Batch, Feed};
use anyhow::Context;
use deadpool_postgres::{Pool, Transaction};
use sitrep_infra::event_store::{self, Metadata, StoredEvent};
use sitrep_infra::wakeup::{self, Wakeups};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events read per batch.
pub const BATCH: i64 = 1000;

/// The most events one step of a rebuild applies, for projections that fold a step before
/// writing it ([`Projection::rebuild_step_events`]). Nobody waits for a rebuild's commits, so
/// its steps are as large as memory comfortably allows: a step of history holds its reports'
/// rollup rows and segments, about 1 KB per component and a few hundred bytes per event.
pub const REBUILD_STEP: i64 = 250 * BATCH;

/// Rows per statement when a step writes what it merged: a step that caught up on a backlog
/// has tens of thousands, and a statement's parameters are encoded twice in memory (and a pooled
/// connection keeps buffers the size of the largest message it sent), so they go in slices.
pub const WRITE_ROWS: usize = 5_000;

/// Poll interval when no notification arrives (a safety net; notifications wake the runner
/// as soon as events commit).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// A read model fed from the event log.
///
/// One step applies events in one transaction, [`BATCH`] at a time, up to
/// [`step_events`](Projection::step_events). What the projection carries from one batch of a
/// step to the next (rows to merge once, say) lives in its [`Step`](Projection::Step), and
/// [`finish`](Projection::finish) writes it before the checkpoint moves.
pub trait Projection: Send + Sync + 'static {
    /// What a step accumulates over its batches (`()` for projections that write as they go).
    type Step: Default + Send;
    /// Unique name: the checkpoint key.
    fn name(&self) -> &'static str;
    /// The tables it owns, emptied by [`reset`].
    fn tables(&self) -> &'static [&'static str];
    /// The most events one step applies when more are waiting. Larger steps let writes that
    /// merge (rollups, saved state) happen once for many events, at the cost of committing
    /// later; projections the live pages read first keep one batch.
    fn step_events(&self) -> i64 {
        BATCH
    }
    /// The most events one step applies when it rebuilds shadow tables (see [`crate::rebuild`]):
    /// nobody reads them until the swap, so a projection whose [`finish`](Projection::finish)
    /// merges what its batches folded gains from larger steps. The default is
    /// [`step_events`](Projection::step_events).
    fn rebuild_step_events(&self) -> i64 {
        self.step_events()
    }
    /// Indexes of its tables (by their migrations' names) that a rebuild creates once the shadow
    /// tables are filled, rather than keeping them up to date row by row: building an index
    /// at the end takes a fraction of the time. Only indexes no step reads (a step that looks
    /// rows up needs its index all along) and no constraint relies on.
    fn deferred_indexes(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether [`apply`](Projection::apply) reads events' metadata; if not (say so when it
    /// can), the runner leaves it out of its reads and every event's `metadata` is `null`.
    fn reads_metadata(&self) -> bool {
        true
    }
    /// The aggregate types whose events it applies; empty (the default) for all of them. A
    /// projection that names its types reads only those, yet its checkpoint still follows the
    /// head of the log.
    fn aggregate_types(&self) -> &'static [&'static str] {
        &[]
    }
    /// Applies events, in order, inside the runner's transaction. Must not read the clock.
    fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
        step: &mut Self::Step,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Writes what the step accumulated, after its last [`apply`](Projection::apply) and before
    /// the checkpoint moves, in the same transaction.
    fn finish(&self, tx: &Transaction<'_>, step: Self::Step) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = (tx, step);
        async { Ok(()) }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stepped {
    /// Events applied.
    pub applied: usize,
    /// The checkpoint after the step.
    pub position: i64,
    /// Whether the step saw the end of the log (or of its limit); if not, more events wait.
    pub caught_up: bool,
}

/// Locks the checkpoint called `name` (created at 0 if new) for the rest of the transaction and
/// returns its position. Two workers with the same checkpoint take turns instead of both
/// acting on the same events; notifiers use it the same way as projections.
pub async fn lock_checkpoint(tx: &Transaction<'_>, name: &str) -> anyhow::Result<i64> {
    tx.execute("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", &[&name]).await?;
    let row = tx.query_one("SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", &[&name]).await?;
    Ok(row.get(0))
}

/// Moves the checkpoint called `name` to `position` (inside the transaction that locked it).
pub async fn move_checkpoint(tx: &Transaction<'_>, name: &str, position: i64) -> anyhow::Result<()> {
    tx.execute(
        "UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1",
        &[&name, &position],
    )
    .await?;
    Ok(())
}

/// Applies one step; see [`Stepped`].
pub async fn step<P: Projection>(pool: &Pool, projection: &P) -> anyhow::Result<Stepped> {
    step_in(pool, projection, None).await
}

/// Makes the rest of the transaction find tables (the projection's and its checkpoint) in
/// `schema` first, then in `public`: how a rebuild writes shadow tables with the same code.
pub async fn use_schema(tx: &Transaction<'_>, schema: Option<&str>) -> anyhow::Result<()> {
    let path = match schema {
        Some(s) => format!("\"{s}\", public"),
        None => "public".to_owned(),
    };
    tx.batch_execute(&format!("SET LOCAL search_path TO {path}")).await?;
    Ok(())
}

/// [`step`], with the projection's tables and checkpoint in `schema` (see [`use_schema`]).
pub async fn step_in<P: Projection>(pool: &Pool, projection: &P, schema: Option<&str>) -> anyhow::Result<Stepped> {
    step_until(pool, projection, schema, i64::MAX).await
}

/// Where a step's events come from.
pub enum Source<'a> {
    /// Read from the log in the step's own transaction.
    Log,
    /// Handed out by a reader shared with other rebuilds; the step applies no event past the
    /// feed's end (see [`crate::feed`]).
    Feed(&'a mut Feed),
}

/// [`step_in`], applying no event past position `until`. In a shadow schema (a rebuild), a step
/// applies up to [`Projection::rebuild_step_events`], otherwise [`Projection::step_events`].
pub async fn step_until<P: Projection>(
    pool: &Pool,
    projection: &P,
    schema: Option<&str>,
    until: i64,
) -> anyhow::Result<Stepped> {
    step_from(pool, projection, schema, until, Source::Log).await
}

/// [`step_until`], with the events from `source`.
pub async fn step_from<P: Projection>(
    pool: &Pool,
    projection: &P,
    schema: Option<&str>,
    until: i64,
    mut source: Source<'_>,
) -> anyhow::Result<Stepped> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    use_schema(&tx, schema).await?;
    let position = lock_checkpoint(&tx, projection.name()).await?;
    let limit = if schema.is_some() { projection.rebuild_step_events() } else { projection.step_events() };
    let stepped = apply_step(&tx, projection, &mut source, position, until, limit).await?;
    if stepped.position == position {
        tx.rollback().await?;
    } else {
        move_checkpoint(&tx, projection.name(), stepped.position).await?;
        tx.commit().await?;
    }
    Ok(stepped)
}

/// Applies the events after `position`, up to and including `until`, [`BATCH`] at a time, until
/// the step has applied `limit` events or seen the last of them; then [`Projection::finish`].
/// The caller locked the checkpoint and moves it.
async fn apply_step<P: Projection>(
    tx: &Transaction<'_>,
    projection: &P,
    source: &mut Source<'_>,
    mut position: i64,
    until: i64,
    limit: i64,
) -> anyhow::Result<Stepped> {
    let name = projection.name();
    let mut step = P::Step::default();
    let mut applied = 0;
    let metadata = if projection.reads_metadata() { Metadata::Include } else { Metadata::Skip };
    if let Source::Feed(feed) = source {
        anyhow::ensure!(
            feed.position() == position,
            "projection {name} stands at {position}, but its shared read of the log at {}",
            feed.position()
        );
    }
    let caught_up = loop {
        let read = match source {
            Source::Log => read_batch(tx, projection.aggregate_types(), metadata, position, until).await?,
            Source::Feed(feed) => read_feed(feed, position, until).await?,
        };
        if read.through <= position {
            break true;
        }
        if !read.events.is_empty() {
            projection
                .apply(tx, &read.events[..], &mut step)
                .await
                .with_context(|| format!("projection {name} applying events after {position}"))?;
            applied += read.events.len();
        }
        position = read.through;
        if !read.more {
            break true;
        }
        if applied as i64 >= limit {
            break false;
        }
    };
    if applied > 0 {
        projection.finish(tx, step).await.with_context(|| format!("projection {name} finishing a step"))?;
    }
    Ok(Stepped { applied, position, caught_up })
}

/// One read of the log for a step.
struct Read {
    /// The events to apply, in order.
    events: Batch,
    /// Every event up to here has been read (those of other types skipped).
    through: i64,
    /// Whether more events may follow before `until`.
    more: bool,
}

/// Reads up to [`BATCH`] events after `position` and up to `until`, of `types` (all if empty).
async fn read_batch(
    tx: &Transaction<'_>,
    types: &[&str],
    metadata: Metadata,
    position: i64,
    until: i64,
) -> anyhow::Result<Read> {
    if types.is_empty() {
        let mut events = event_store::read_after(&**tx, position, BATCH, metadata).await?;
        let read = events.len();
        events.retain(|e| e.position <= until);
        let more = read == BATCH as usize && events.len() == read;
        let through = events.last().map_or(position, |e| e.position);
        return Ok(Read { events: Arc::new(events), through, more });
    }
    // One writer at a time commits in position order (see event_store), so every event up to
    // the head read here is visible to the read after it: a short read has seen all of them.
    let head = event_store::head(&**tx).await?.min(until);
    let events = event_store::read_types_between(&**tx, types, position, head, BATCH, metadata).await?;
    let more = events.len() == BATCH as usize;
    let through = if more { events.last().map_or(position, |e| e.position) } else { head.max(position) };
    Ok(Read { events: Arc::new(events), through, more })
}

/// The next batch of a shared read, which ends at or before `until`.
async fn read_feed(feed: &mut Feed, position: i64, until: i64) -> anyhow::Result<Read> {
    anyhow::ensure!(feed.through() <= until, "a shared read of the log to {} past {until}", feed.through());
    Ok(match feed.next().await? {
        Some(events) => Read { through: events.last().map_or(position, |e| e.position), events, more: true },
        None => Read { events: Arc::default(), through: feed.position().max(position), more: false },
    })
}

/// Inside the caller's transaction (and its `search_path`, a shadow schema): locks the checkpoint
/// and applies every event up to and including `head`, in steps of
/// [`Projection::rebuild_step_events`]; returns the new checkpoint.
pub async fn apply_until<P: Projection>(tx: &Transaction<'_>, projection: &P, head: i64) -> anyhow::Result<i64> {
    let name = projection.name();
    let mut position = lock_checkpoint(tx, name).await?;
    while position < head {
        let limit = projection.rebuild_step_events();
        let stepped = apply_step(tx, projection, &mut Source::Log, position, head, limit).await?;
        position = stepped.position;
        if stepped.caught_up {
            break;
        }
    }
    move_checkpoint(tx, name, position).await?;
    Ok(position)
}

/// Applies steps until the projection has seen every committed event; returns how many.
pub async fn catch_up<P: Projection>(pool: &Pool, projection: &P) -> anyhow::Result<u64> {
    let mut total = 0;
    loop {
        let stepped = step(pool, projection).await?;
        total += stepped.applied as u64;
        if stepped.caught_up {
            return Ok(total);
        }
    }
}

/// Empties the projection's tables and puts its checkpoint back to the start, in one
/// transaction, so the next run rebuilds it from the whole log.
pub async fn reset<P: Projection>(pool: &Pool, projection: &P) -> anyhow::Result<()> {
    let name = projection.name();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Lock the checkpoint first, in the same order as `step`, so a running runner waits for the
    // reset instead of deadlocking with it.
    lock_checkpoint(&tx, name).await?;
    for table in projection.tables() {
        tx.batch_execute(&format!("DELETE FROM {table}")).await?;
    }
    move_checkpoint(&tx, name, 0).await?;
    tx.commit().await?;
    Ok(())
}

/// Keeps the projection caught up until cancelled, waking on new events.
pub async fn run<P: Projection>(pool: Pool, projection: P, mut wakeups: Wakeups, cancel: CancellationToken) {
    let name = projection.name();
    tracing::info!(projection = name, "projection runner started");
    while !cancel.is_cancelled() {
        match step(&pool, &projection).await {
            Ok(stepped) if stepped.applied > 0 => {
                tracing::debug!(projection = name, events = stepped.applied, position = stepped.position, "applied");
                if !stepped.caught_up {
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(projection = name, error = format!("{e:#}"), "projection step failed; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(IDLE_POLL) => continue,
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = wakeup::wait(&mut wakeups, IDLE_POLL) => {}
        }
    }
    tracing::info!(projection = name, "projection runner stopped");
}
