//! One read of the log shared by several rebuilds.
//!
//! `latest_status` and `history` both apply every event, so rebuilt side by side they used to
//! read the whole log twice, and Postgres turned every payload into text twice. [`share`]
//! starts one reader, on its own connection, that reads the log once up to a fixed position and
//! hands every batch to each rebuild through a [`Feed`]. The rebuilds apply and write while the
//! reader reads ahead, so reading no longer waits for writing either.
//!
//! Reading outside the rebuilds' transactions is safe: one writer at a time commits in position
//! order (see `event_store`), so every event up to the head read at the start is committed and
//! never changes.

use crate::runner::BATCH;
use anyhow::Context;
use deadpool_postgres::Pool;
use sitrep_infra::archive::Archive;
use sitrep_infra::event_store::{self, Metadata, StoredEvent};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Batches read ahead of the slowest rebuild.
const AHEAD: usize = 8;

/// A batch of events, shared by every feed.
pub type Batch = Arc<Vec<StoredEvent>>;

enum Message {
    Batch(Batch),
    /// Every event up to the feed's end has been sent.
    End,
    Failed(String),
}

/// The events of the log from the start up to [`Feed::through`], in order, batch by batch.
pub struct Feed {
    rx: mpsc::Receiver<Message>,
    /// The last position handed out (0 before the first batch).
    position: i64,
    through: i64,
    ended: bool,
}

impl Feed {
    /// The position the feed ends at: every event up to it is handed out.
    pub fn through(&self) -> i64 {
        self.through
    }

    /// The last position handed out (0 before the first batch).
    pub fn position(&self) -> i64 {
        self.position
    }

    /// The next batch, or `None` once every event up to [`through`](Feed::through) has been
    /// handed out. Fails if the reader failed.
    pub async fn next(&mut self) -> anyhow::Result<Option<Batch>> {
        if self.ended {
            return Ok(None);
        }
        match self.rx.recv().await {
            Some(Message::Batch(batch)) => {
                self.position = batch.last().map_or(self.position, |e| e.position);
                Ok(Some(batch))
            }
            Some(Message::End) => {
                self.ended = true;
                self.position = self.position.max(self.through);
                Ok(None)
            }
            Some(Message::Failed(e)) => anyhow::bail!("reading the event log: {e}"),
            None => anyhow::bail!("the shared reader of the event log stopped"),
        }
    }
}

/// Starts one reader of the log from the start up to the head (at most `until`) and returns a
/// feed of it for each of `readers`. The reader keeps going while any feed is alive, and reads
/// [`AHEAD`] batches ahead of the slowest. With an `archive` (`sitrep archive`'s files), it
/// reads the archive first, merged in position order with the events the table kept up to the
/// archive's end (outages, alerts: everything but component events), then the table.
pub async fn share(
    pool: &Pool,
    metadata: Metadata,
    until: i64,
    readers: usize,
    archive: Option<Archive>,
) -> anyhow::Result<Vec<Feed>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    // The newest events may be archived ones (the table's head is then below the archive's end).
    let archived = archive.as_ref().map_or(0, Archive::last_position);
    let through = event_store::head(&**client).await?.max(archived).min(until);
    let (txs, feeds): (Vec<_>, Vec<_>) = (0..readers)
        .map(|_| {
            let (tx, rx) = mpsc::channel(AHEAD);
            (tx, Feed { rx, position: 0, through, ended: false })
        })
        .unzip();
    tokio::spawn(async move {
        let mut txs = txs;
        let mut position = 0;
        let mut merged = archive.map(|a| Merge::new(a, through, metadata));
        let failed = loop {
            let events = match merged.as_mut() {
                Some(merge) => match merge.next(&**client).await {
                    Ok(Some(events)) => events,
                    Ok(None) => {
                        position = merge.through;
                        merged = None;
                        continue;
                    }
                    Err(e) => break Some(format!("{e:#}")),
                },
                None => match event_store::read_after(&**client, position, BATCH, metadata).await {
                    Ok(mut events) => {
                        events.retain(|e| e.position <= through);
                        let Some(last) = events.last().map(|e| e.position) else { break None };
                        position = last;
                        events
                    }
                    Err(e) => break Some(format!("{e:#}")),
                },
            };
            let batch = Arc::new(events);
            // A rebuild that failed dropped its feed; the others go on.
            let mut alive = Vec::with_capacity(txs.len());
            for tx in txs {
                if tx.send(Message::Batch(batch.clone())).await.is_ok() {
                    alive.push(tx);
                }
            }
            txs = alive;
            if txs.is_empty() {
                return;
            }
        };
        for tx in &txs {
            let _ = tx.send(failed.clone().map_or(Message::End, Message::Failed)).await;
        }
    });
    Ok(feeds)
}

/// The archive's events merged with the table's, by position, up to the end of the archive.
struct Merge {
    archive: Option<Archive>,
    /// The archive's end (and the feed's, if that is before it).
    through: i64,
    metadata: Metadata,
    archived: VecDeque<StoredEvent>,
    archive_done: bool,
    table: VecDeque<StoredEvent>,
    table_position: i64,
    table_done: bool,
}

impl Merge {
    fn new(archive: Archive, until: i64, metadata: Metadata) -> Self {
        let through = archive.last_position().min(until);
        Self {
            archive: Some(archive),
            through,
            metadata,
            archived: VecDeque::new(),
            archive_done: false,
            table: VecDeque::new(),
            table_position: 0,
            table_done: false,
        }
    }

    /// The next batch in position order, or `None` once both sides are through.
    async fn next(&mut self, client: &impl tokio_postgres::GenericClient) -> anyhow::Result<Option<Vec<StoredEvent>>> {
        let mut batch = Vec::with_capacity(BATCH as usize);
        while batch.len() < BATCH as usize {
            if self.archived.is_empty() && !self.archive_done {
                self.refill_archive().await?;
            }
            if self.table.is_empty() && !self.table_done {
                let mut events = event_store::read_after(client, self.table_position, BATCH, self.metadata).await?;
                self.table_done =
                    events.len() < BATCH as usize || events.last().is_none_or(|e| e.position >= self.through);
                self.table_position = events.last().map_or(self.table_position, |e| e.position);
                events.retain(|e| e.position <= self.through);
                self.table.extend(events);
            }
            let heads = (self.archived.front().map(|e| e.position), self.table.front().map(|e| e.position));
            let take_archived = match heads {
                (None, None) => break,
                (Some(a), Some(t)) => {
                    if a == t {
                        // Still in the table too (a run stopped before deleting it): once.
                        self.table.pop_front();
                    }
                    a <= t
                }
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            let next = if take_archived { self.archived.pop_front() } else { self.table.pop_front() };
            batch.extend(next);
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    async fn refill_archive(&mut self) -> anyhow::Result<()> {
        let Some(mut archive) = self.archive.take() else {
            self.archive_done = true;
            return Ok(());
        };
        // Reading and unpacking files is blocking work.
        let (archive, batch) = tokio::task::spawn_blocking(move || {
            let batch = archive.next_batch(BATCH as usize);
            (archive, batch)
        })
        .await
        .context("reading the archive")?;
        let mut batch = batch?;
        batch.retain(|e| e.position <= self.through);
        if batch.is_empty() {
            self.archive_done = true;
            return Ok(());
        }
        if self.metadata == Metadata::Skip {
            batch.iter_mut().for_each(|e| e.metadata = serde_json::Value::Null);
        }
        self.archived.extend(batch);
        self.archive = Some(archive);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: i64) -> StoredEvent {
        StoredEvent {
            position,
            event_id: uuid::Uuid::nil(),
            aggregate_type: "component".into(),
            aggregate_id: "s/c".into(),
            sequence: position,
            event_type: "StatusReported".into(),
            event_version: "1".into(),
            payload: sitrep_infra::event_store::Payload::from_json("null".into()).unwrap(),
            metadata: serde_json::Value::Null,
            recorded_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn feed(through: i64) -> (mpsc::Sender<Message>, Feed) {
        let (tx, rx) = mpsc::channel(AHEAD);
        (tx, Feed { rx, position: 0, through, ended: false })
    }

    #[tokio::test]
    async fn given_batches_and_an_end_when_read_then_it_hands_them_out_and_ends_at_its_through() {
        let (tx, mut feed) = feed(9);
        tx.send(Message::Batch(Arc::new(vec![event(2), event(5)]))).await.unwrap();
        tx.send(Message::End).await.unwrap();
        let batch = feed.next().await.unwrap().unwrap();
        assert_eq!(batch.iter().map(|e| e.position).collect::<Vec<_>>(), [2, 5]);
        assert_eq!(feed.position(), 5);
        assert!(feed.next().await.unwrap().is_none());
        assert_eq!(feed.position(), 9, "every event up to its end was handed out");
        assert!(feed.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn given_a_failed_or_vanished_reader_when_read_then_it_fails_rather_than_ending() {
        let (tx, mut failed) = feed(9);
        tx.send(Message::Failed("connection closed".into())).await.unwrap();
        let e = failed.next().await.unwrap_err().to_string();
        assert!(e.contains("connection closed"), "{e}");

        let (tx, mut vanished) = feed(9);
        drop(tx);
        assert!(vanished.next().await.is_err(), "a reader that stopped without an end is not the end of the log");
    }
}
