//! Feeds projections from the event log.
//!
//! Each projection has a row in `projection_checkpoints`. One step locks that row, reads the
//! next batch of events after it, lets the projection write its tables, moves the checkpoint
//! and commits, all in one transaction: a crash between steps loses nothing and applies nothing
//! twice, and two runners of the same projection take turns instead of applying a batch twice.
//! Projections read time from events only, never from the clock, so a rebuild from zero gives
//! the same tables as the live run.

use anyhow::Context;
use deadpool_postgres::{Pool, Transaction};
use sitrep_infra::event_store::{self, StoredEvent};
use sitrep_infra::wakeup::{self, Wakeups};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events read per step.
pub const BATCH: i64 = 1000;

/// Poll interval when no notification arrives (a safety net; notifications wake the runner
/// as soon as events commit).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// A read model fed from the event log.
pub trait Projection: Send + Sync + 'static {
    /// Unique name: the checkpoint key.
    fn name(&self) -> &'static str;
    /// The tables it owns, emptied by [`reset`].
    fn tables(&self) -> &'static [&'static str];
    /// Applies events, in order, inside the runner's transaction. Must not read the clock.
    fn apply(&self, tx: &Transaction<'_>, events: &[StoredEvent]) -> impl Future<Output = anyhow::Result<()>> + Send;
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

/// Applies one batch; returns how many events it applied and the new checkpoint.
pub async fn step<P: Projection>(pool: &Pool, projection: &P) -> anyhow::Result<(usize, i64)> {
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
pub async fn step_in<P: Projection>(pool: &Pool, projection: &P, schema: Option<&str>) -> anyhow::Result<(usize, i64)> {
    step_until(pool, projection, schema, i64::MAX).await
}

/// [`step_in`], applying no event past position `until`.
pub async fn step_until<P: Projection>(
    pool: &Pool,
    projection: &P,
    schema: Option<&str>,
    until: i64,
) -> anyhow::Result<(usize, i64)> {
    let name = projection.name();
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;
    use_schema(&tx, schema).await?;
    let position = lock_checkpoint(&tx, name).await?;
    let mut events = event_store::read_after(&*tx, position, BATCH).await?;
    events.retain(|e| e.position <= until);
    let Some(last) = events.last().map(|e| e.position) else {
        tx.rollback().await?;
        return Ok((0, position));
    };
    projection
        .apply(&tx, &events)
        .await
        .with_context(|| format!("projection {name} applying events after {position}"))?;
    move_checkpoint(&tx, name, last).await?;
    tx.commit().await?;
    Ok((events.len(), last))
}

/// Inside the caller's transaction (and its `search_path`): locks the checkpoint and applies
/// every event up to and including `head`; returns the new checkpoint.
pub async fn apply_until<P: Projection>(tx: &Transaction<'_>, projection: &P, head: i64) -> anyhow::Result<i64> {
    let name = projection.name();
    let mut position = lock_checkpoint(tx, name).await?;
    while position < head {
        let mut events = event_store::read_after(&**tx, position, BATCH).await?;
        events.retain(|e| e.position <= head);
        let Some(last) = events.last().map(|e| e.position) else { break };
        projection
            .apply(tx, &events)
            .await
            .with_context(|| format!("projection {name} applying events after {position}"))?;
        position = last;
    }
    move_checkpoint(tx, name, position).await?;
    Ok(position)
}

/// Applies batches until the projection has seen every committed event; returns how many.
pub async fn catch_up<P: Projection>(pool: &Pool, projection: &P) -> anyhow::Result<u64> {
    let mut total = 0;
    loop {
        let (n, _) = step(pool, projection).await?;
        total += n as u64;
        if n < BATCH as usize {
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
            Ok((n, position)) if n > 0 => {
                tracing::debug!(projection = name, events = n, position, "applied");
                if n == BATCH as usize {
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
