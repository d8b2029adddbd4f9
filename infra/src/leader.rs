//! One active worker per job across processes: each job runs only while its process holds a
//! Postgres session advisory lock named after the job, on a connection of its own.
//!
//! Start as many `sitrep project` processes as you like; for each projection and side effect
//! one of them works and the others stand by. When the worker's process dies, Postgres ends its
//! session and frees the lock, and a standby takes over within [`STANDBY_POLL`]. A worker whose
//! lock connection is lost (Postgres restarted, network cut) stops and competes again, since it
//! can no longer know it is alone. Correctness never rests on the lock alone: every worker
//! still locks its checkpoint row in each step, so a brief overlap only makes one of them wait.

use anyhow::Context;
use std::future::Future;
use std::time::Duration;
use tokio_postgres::Config;
use tokio_util::sync::CancellationToken;

/// How often a standby tries for the lock, and how often a worker checks it still holds it.
pub const STANDBY_POLL: Duration = Duration::from_secs(2);

/// The advisory lock key of a job (`hashtext` of its name).
const LOCK_SQL: &str = "SELECT pg_try_advisory_lock(hashtext('sitrep worker ' || $1))";

/// Runs `work` while this process holds the job's lock, until `cancel`. `work` gets a token that
/// is cancelled when the lock is lost or on `cancel`; it is started again after each takeover.
pub async fn exclusive<F, Fut>(pg: Config, job: &'static str, cancel: CancellationToken, mut work: F)
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut said_standby = false;
    while !cancel.is_cancelled() {
        let client = match acquire(&pg, job).await {
            Ok(Some(client)) => client,
            Ok(None) => {
                if !said_standby {
                    tracing::info!(job, "standing by: another process holds this job");
                    said_standby = true;
                }
                if sleep_or_cancel(&cancel, STANDBY_POLL).await {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(job, error = format!("{e:#}"), "cannot reach Postgres to take the job's lock; retrying");
                if sleep_or_cancel(&cancel, STANDBY_POLL).await {
                    break;
                }
                continue;
            }
        };
        said_standby = false;
        tracing::info!(job, "took the job's lock; working");
        let stop = cancel.child_token();
        let watch = async {
            loop {
                if sleep_or_cancel(&stop, STANDBY_POLL).await {
                    return;
                }
                if let Err(e) = client.simple_query("SELECT 1").await {
                    tracing::warn!(job, error = %e, "lost the job's lock connection; stopping the job");
                    stop.cancel();
                    return;
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

/// Connects and tries for the lock: `Some(client)` holds it for as long as the client lives.
/// The connection is named `sitrep worker <job> pid <pid>`, so `pg_stat_activity` shows which
/// process works on which job.
async fn acquire(pg: &Config, job: &str) -> anyhow::Result<Option<tokio_postgres::Client>> {
    let mut pg = pg.clone();
    pg.application_name(format!("sitrep worker {job} pid {}", std::process::id()));
    let client = crate::db::connect(&pg).await?;
    let got: bool = client.query_one(LOCK_SQL, &[&job]).await.context("taking the job's advisory lock")?.get(0);
    Ok(got.then_some(client))
}

/// Sleeps; true if cancelled first.
async fn sleep_or_cancel(cancel: &CancellationToken, how_long: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(how_long) => false,
    }
}
