//! Builds sitrep's long-running parts (ingest, projections with alerting, web) and runs them until
//! stopped.
//! `sitrep run` starts all three in one process; `ingest`, `project` and `web` start one each.

use crate::alerting;
use anyhow::Context;
use deadpool_postgres::Pool;
use sitrep_infra::{bus, db, leader, wakeup, Settings};
use sitrep_projections::{history, AlertEvaluator, Alerts, History, LatestStatus, Outages, Projection, Retention};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Which parts to run.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    pub ingest: bool,
    pub project: bool,
    pub web: bool,
}

impl Parts {
    pub const ALL: Parts = Parts { ingest: true, project: true, web: true };
}

/// The running parts.
pub struct Running {
    /// Where the web server listens (with the real port when configured with port 0).
    pub http_addr: Option<SocketAddr>,
    pub pool: Pool,
    cancel: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
}

/// Migrates the database, connects, and starts the parts.
pub async fn start(settings: Settings, parts: Parts) -> anyhow::Result<Running> {
    let pg = db::parse_url(settings.database_url.expose())?;
    db::migrate(&pg).await?;
    let pool = db::pool(&pg, 16)?;
    db::check(&pool).await?;
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();

    if parts.ingest {
        let nats = bus::connect(&settings.nats_url).await?;
        let source = crate::ingest::prepare(nats, &settings).await?;
        let (pool, settings, cancel) = (pool.clone(), settings.clone(), cancel.clone());
        tasks.spawn(async move { crate::ingest::run(pool, source, settings, cancel).await.context("ingest") });
    }
    if parts.project {
        match db::autovacuum(&pool).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "Postgres runs with autovacuum off: the read models' tables keep every row version their \
                 updates leave, and projections slow down as they grow. Turn autovacuum on, or VACUUM \
                 them often (docs/operations.md, \"Postgres\")"
            ),
            Err(e) => tracing::warn!("could not tell whether Postgres runs autovacuum: {e:#}"),
        }
        let wakeups = wakeup::listen(pg.clone(), cancel.clone());
        let history = History { default_ttl_seconds: settings.default_ttl_seconds };
        spawn_projection(&mut tasks, &pg, &pool, LatestStatus, &wakeups, &cancel);
        spawn_projection(&mut tasks, &pg, &pool, Outages, &wakeups, &cancel);
        spawn_projection(&mut tasks, &pg, &pool, history, &wakeups, &cancel);
        let (pool2, retention) = (pool.clone(), retention(&settings));
        spawn_exclusive(&mut tasks, &pg, "history_retention", &cancel, move |stop| {
            run_retention(pool2.clone(), retention, stop)
        });
        start_alerting(&mut tasks, &pg, &pool, &settings, wakeups, &cancel).await?;
    }
    let mut http_addr = None;
    if parts.web {
        let listener = tokio::net::TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| format!("listening on {} (set SITREP_HTTP_ADDR)", settings.http_addr))?;
        http_addr = Some(listener.local_addr()?);
        let mut state =
            sitrep_web::AppState::new(pool.clone(), settings.default_ttl_seconds, settings.subject_prefix.clone());
        state.kept = retention(&settings);
        state.provenance = sitrep_infra::provenance::Provenance::load(&**pool.get().await?).await?;
        state.receivers = std::sync::Arc::new(
            sitrep_infra::alerts::receivers_in_file(settings.alerts_file.as_deref()).unwrap_or_else(|e| {
                tracing::warn!(error = format!("{e:#}"), "the receivers cannot be shown on /alerts/rules");
                Vec::new()
            }),
        );
        state.rules_text = std::sync::Arc::new(sitrep_infra::alerts::rules_text(settings.alerts_file.as_deref())?);
        state.public =
            std::sync::Arc::new(sitrep_web::read::public::PublicConfig::load(settings.status_file.as_deref())?);
        match state.public.doubts(&pool).await {
            Ok(doubts) => doubts.iter().for_each(|d| tracing::warn!("{d}")),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "could not check status.toml against the reports"),
        }
        state.limits = sitrep_web::guard::limits::Limits::new(
            settings.sign_in_per_minute,
            settings.ingest_per_second,
            settings.trusted_proxies.clone(),
        );
        state.auth = sitrep_web::state::AuthConfig {
            users_file: std::sync::Arc::new(match &settings.users_file {
                Some(path) => sitrep_infra::auth::load_users_file(path)?,
                None => Default::default(),
            }),
            view_requires_sign_in: settings.view_requires_sign_in,
            session_length: time::Duration::hours(settings.session_hours.into()),
            secure_cookies: settings.secure_cookies,
            metrics_token: settings
                .metrics_token
                .as_ref()
                .map(|t| t.expose().trim())
                .filter(|t| !t.is_empty())
                .map(Into::into),
        };
        // The dashboard shows JetStream's state on /ops and re-submits quarantined messages.
        state.bus = match bus::connect(&settings.nats_url).await {
            Ok(nats) => Some(sitrep_web::state::Bus {
                js: async_nats::jetstream::new(nats),
                reports_stream: settings.reports_stream.clone(),
                ingest_consumer: settings.ingest_consumer.clone(),
                alerts_stream: settings.alerts_stream.clone(),
                subject_prefix: settings.subject_prefix.clone(),
            }),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "no NATS for the dashboard; /ops will say so");
                None
            }
        };
        let cancel = cancel.clone();
        tasks.spawn(async move { sitrep_web::serve(listener, state, cancel).await.context("web server") });
    }
    Ok(Running { http_addr, pool, cancel, tasks })
}

impl Running {
    /// Runs until `shutdown` resolves or a part fails, then stops every part.
    pub async fn run_until_stopped(mut self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let result = tokio::select! {
            _ = shutdown => Ok(()),
            Some(done) = self.tasks.join_next() => match done {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::Error::new(e).context("a part of sitrep panicked")),
            },
        };
        self.stop().await;
        result
    }

    /// Stops every part and waits for them to finish.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while let Some(done) = self.tasks.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::warn!(error = format!("{e:#}"), "part stopped with an error");
            }
        }
    }
}

/// Records the alert rules, then starts the evaluator, the alerts read model, the alert clock,
/// the bus publisher, the notification planner and delivery.
async fn start_alerting(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    pg: &tokio_postgres::Config,
    pool: &Pool,
    settings: &Settings,
    wakeups: wakeup::Wakeups,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let rules = alerting::load_and_record_rules(pool, settings).await?;
    let js = async_nats::jetstream::new(bus::connect(&settings.nats_url).await?);
    bus::ensure_alerts_stream(&js, settings).await?;
    let receivers = sitrep_infra::alerts::load_receivers(settings.alerts_file.as_deref())?;
    alerting::check_templates(&receivers)?;
    let hooks =
        alerting::Webhooks::new(rules.routes.clone(), alerting::Webhooks::BACKOFF.to_vec())?.with_receivers(receivers);
    spawn_projection(tasks, pg, pool, AlertEvaluator::default(), &wakeups, cancel);
    spawn_projection(tasks, pg, pool, Alerts, &wakeups, cancel);
    let (p, s, j) = (pool.clone(), settings.clone(), js.clone());
    spawn_exclusive(tasks, pg, "alert_clock", cancel, move |stop| {
        alerting::run_clock(p.clone(), j.clone(), s.clone(), stop)
    });
    let (p, s, j) = (pool.clone(), settings.clone(), js.clone());
    spawn_exclusive(tasks, pg, alerting::PUBLISHER, cancel, move |stop| {
        alerting::run_publisher(p.clone(), j.clone(), s.clone(), stop)
    });
    if settings.self_report_seconds > 0 {
        // One reporter among the project processes: the figures are global, and the backlog
        // report goes through one aggregate, which two writers would contend for.
        let every = Duration::from_secs(settings.self_report_seconds);
        let (p, s, j) = (pool.clone(), settings.clone(), js.clone());
        spawn_exclusive(tasks, pg, "self_report", cancel, move |stop| {
            crate::selfwatch::run(p.clone(), j.clone(), s.clone(), every, stop)
        });
    }
    // The planner decides (grouping, waits, reminders, escalation) and records its decisions;
    // the notifier delivers them. Both run with no routes too, keeping up with the log.
    let (p, routes) = (pool.clone(), rules.routes.clone());
    spawn_exclusive(tasks, pg, alerting::PLANNER, cancel, move |stop| {
        alerting::run_planner(p.clone(), routes.clone(), stop)
    });
    let p = pool.clone();
    spawn_exclusive(tasks, pg, alerting::WEBHOOKS, cancel, move |stop| {
        alerting::run_webhooks(p.clone(), hooks.clone(), stop)
    });
    Ok(())
}

/// Runs `work` in this process only while it holds the job's lock (see [`leader`]): with several
/// `sitrep project` processes, one works on each job and the others stand by.
fn spawn_exclusive<F, Fut>(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    pg: &tokio_postgres::Config,
    job: &'static str,
    cancel: &CancellationToken,
    work: F,
) where
    F: FnMut(CancellationToken) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (pg, cancel) = (pg.clone(), cancel.clone());
    tasks.spawn(async move {
        leader::exclusive(pg, job, cancel, work).await;
        Ok(())
    });
}

/// Keeps a projection caught up, in one process at a time.
fn spawn_projection<P: Projection + Clone + Send + Sync + 'static>(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    pg: &tokio_postgres::Config,
    pool: &Pool,
    projection: P,
    wakeups: &wakeup::Wakeups,
    cancel: &CancellationToken,
) {
    let (pool, wakeups) = (pool.clone(), wakeups.clone());
    spawn_exclusive(tasks, pg, projection.name(), cancel, move |stop| {
        sitrep_projections::run(pool.clone(), projection.clone(), wakeups.clone(), stop)
    });
}

/// How often retention runs (it also runs once at start-up).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

pub fn retention(settings: &Settings) -> Retention {
    Retention {
        raw: time::Duration::days(settings.history_raw_days.into()),
        hourly: time::Duration::days(settings.history_hourly_days.into()),
    }
}

/// Prunes old hourly rollups now and then every hour, until cancelled.
async fn run_retention(pool: Pool, retention: Retention, cancel: CancellationToken) {
    loop {
        match history::prune(&pool, time::OffsetDateTime::now_utc(), retention).await {
            Ok(p) => tracing::info!(hourly_rollups = p.hourly_rollups, "history pruned"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "history retention failed; will retry"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
