//! One active worker per job across processes: each job runs only while its process holds a
//! Postgres session advisory lock named after the job, on a connection of its own.
//!
//! Start as many `sitrep project` processes as you like; for each job one of them works and the
//! others stand by, each keeping one connection per job and trying for its lock every
//! [`STANDBY_POLL`]. When the worker's process dies, Postgres ends its session and frees the
//! lock, and a standby takes over at its next try. When the worker's whole machine is lost, the
//! server ends the session after [`IDLE_SESSION_TIMEOUT`] without a check. A worker whose lock
//! connection fails a check (Postgres restarted, network cut) stops the job and competes again,
//! since it can no longer know it is alone. The read models do not rest on the lock alone:
//! every projection step also locks its checkpoint row, so a brief overlap only makes one of
//! them wait.

use anyhow::Context;
use std::future::Future;
use std::time::Duration;
use tokio_postgres::Config;
use tokio_util::sync::CancellationToken;

/// How often a standby tries for the lock, and how often a worker checks it still holds it.
pub const STANDBY_POLL: Duration = Duration::from_secs(2);

/// How long the server keeps a lock connection that stopped checking in (its process's machine
/// died, or the network to it): then the session ends and the lock is free.
pub const IDLE_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a connection attempt or a check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `work` while this process holds the job's lock, until `cancel`. `work` gets a token that
/// is cancelled when the lock is lost or on `cancel`; it is started again after each takeover.
pub async fn exclusive<F, Fut>(pg: Config, job: &'static str, cancel: CancellationToken, mut work: F)
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut said_standby = false;
    'connect: while !cancel.is_cancelled() {
        let client = tokio::select! {
            _ = cancel.cancelled() => break,
            connected = tokio::time::timeout(CHECK_TIMEOUT, connect(&pg, job)) => match connected {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    tracing::warn!(job, error = format!("{e:#}"), "cannot reach Postgres to take the job's lock; retrying");
                    if sleep_or_cancel(&cancel, STANDBY_POLL).await { break } else { continue }
                }
                Err(_) => {
                    tracing::warn!(job, "connecting to Postgres for the job's lock timed out; retrying");
                    continue;
                }
            },
        };
        // Try for the lock on this connection until it is ours, or the connection fails.
        loop {
            match check(&client, "SELECT pg_try_advisory_lock(hashtext('sitrep worker ' || $1))", job).await {
                Ok(true) => break,
                Ok(false) => {
                    if !said_standby {
                        tracing::info!(job, "standing by: another process holds this job");
                        said_standby = true;
                    }
                    if sleep_or_cancel(&cancel, STANDBY_POLL).await {
                        break 'connect;
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        job,
                        error = format!("{e:#}"),
                        "lost the connection for the job's lock; reconnecting"
                    );
                    continue 'connect;
                }
            }
        }
        said_standby = false;
        tracing::info!(job, "took the job's lock; working");
        let stop = cancel.child_token();
        let watch = async {
            while !sleep_or_cancel(&stop, STANDBY_POLL).await {
                if let Err(e) = check(&client, "SELECT $1::text IS NOT NULL", job).await {
                    tracing::warn!(job, error = format!("{e:#}"), "lost the job's lock connection; stopping the job");
                    stop.cancel();
                }
            }
        };
        let working = async {
            work(stop.clone()).await;
            stop.cancel();
        };
        tokio::join!(working, watch);
        // Dropping the client ends the session, which frees the lock for a standby.
        drop(client);
    }
}

/// Connects for the job's lock. The connection is named `sitrep worker <job> pid <pid>`, so
/// `pg_stat_activity` shows which process works on which job, and the server ends it after
/// [`IDLE_SESSION_TIMEOUT`] without a query.
async fn connect(pg: &Config, job: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut pg = pg.clone();
    pg.application_name(format!("sitrep worker {job} pid {}", std::process::id()));
    let client = crate::db::connect(&pg).await?;
    client
        .batch_execute(&format!("SET idle_session_timeout = {}", IDLE_SESSION_TIMEOUT.as_millis()))
        .await
        .context("setting the lock connection's idle timeout")?;
    Ok(client)
}

/// Runs a one-value query about the job on the lock connection, within [`CHECK_TIMEOUT`].
async fn check(client: &tokio_postgres::Client, sql: &str, job: &str) -> anyhow::Result<bool> {
    let row = tokio::time::timeout(CHECK_TIMEOUT, client.query_one(sql, &[&job]))
        .await
        .context("no answer within 5 s")?
        .context("querying Postgres")?;
    Ok(row.get(0))
}

/// Sleeps; true if cancelled first.
async fn sleep_or_cancel(cancel: &CancellationToken, how_long: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(how_long) => false,
    }
}
