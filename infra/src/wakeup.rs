//! Wakes event readers as soon as events commit, through Postgres LISTEN/NOTIFY
//! (the event store notifies [`EVENTS_CHANNEL`] in every append transaction).

use crate::event_store::EVENTS_CHANNEL;
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, Config, NoTls};
use tokio_util::sync::CancellationToken;

/// A receiver whose value changes whenever events may have committed.
pub type Wakeups = watch::Receiver<u64>;

/// Starts listening in the background and returns the receiver. The listener reconnects by
/// itself, and signals on every reconnect (events may have committed while it was away).
pub fn listen(config: Config, cancel: CancellationToken) -> Wakeups {
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        loop {
            let session = listen_once(&config, &tx);
            tokio::select! {
                _ = cancel.cancelled() => return,
                result = session => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "event listener lost its connection; reconnecting");
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
    rx
}

async fn listen_once(config: &Config, tx: &watch::Sender<u64>) -> anyhow::Result<()> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let sql = format!("LISTEN {EVENTS_CHANNEL}");
    let listen = client.batch_execute(&sql);
    // The LISTEN only completes while the connection is being polled.
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        tokio::select! {
            done = &mut listen, if !listening => {
                done?;
                listening = true;
                tx.send_modify(|n| *n += 1);
            }
            msg = messages.next() => match msg {
                Some(Ok(AsyncMessage::Notification(_))) => tx.send_modify(|n| *n += 1),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            }
        }
    }
}

/// Waits until woken or until `timeout` passes, whichever is first.
pub async fn wait(wakeups: &mut Wakeups, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, wakeups.changed()).await;
}
