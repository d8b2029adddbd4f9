//! `sitrep soak`: a real `sitrep run` under steady load for a bounded time, to show that it
//! holds up. Reports are offered at a fixed rate (by default half the end-to-end rate in
//! docs/performance.md), and `--clients` dashboards, half on `/` and half on a system page, each
//! load their page once a second the whole time (a dashboard left open and reloading; live
//! pages need far less). Every `--every` seconds it samples the child's RSS, the projection lag and
//! ingest's backlog. At the end it counts errors, which must be zero: failed publishes, failed
//! HTTP requests, reports not stored, and ERROR lines in sitrep's log. It also reports the
//! largest lag, and whether RSS stayed flat; it fails on errors or on RSS that kept growing.

use super::load::{Degraded, Plan};
use super::{caught_up, Child};
use anyhow::Context;
use async_nats::jetstream::{self, context::PublishAckFuture};
use clap::Args;
use sitrep_infra::{bus, db, Settings};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Minutes of load.
    #[arg(long, default_value_t = 10)]
    pub minutes: u32,
    /// Reports per second offered: by default half the end-to-end rate in docs/performance.md.
    #[arg(long, default_value_t = 3_550)]
    pub rate: u32,
    /// Components the reports are spread over (each reports once per round).
    #[arg(long, default_value_t = 10_000)]
    pub components: u32,
    /// Systems the components belong to.
    #[arg(long, default_value_t = 20)]
    pub systems: u32,
    /// Dashboards, half on `/` and half on a system page, each loading its page once a second.
    #[arg(long, default_value_t = 32)]
    pub clients: u32,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    pub every: u32,
    /// Folder whose .sitrep/ holds local Postgres and NATS (as for `sitrep bench`), and the log
    /// of the `sitrep run` under test (.sitrep/soak-run.log).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// One sample.
struct Sample {
    at: f64,
    rss_mb: f64,
    lag_events: i64,
    lag_seconds: f64,
    backlog: u64,
}

pub async fn run(settings: &Settings, args: &SoakArgs) -> anyhow::Result<()> {
    crate::alerting::install_tls_provider();
    let (soak, db_name) = super::isolated(settings).await;
    let result = soak_in(&soak, args).await;
    super::remove(settings, &soak, &db_name).await?;
    result
}

async fn soak_in(soak: &Settings, args: &SoakArgs) -> anyhow::Result<()> {
    let pg = db::parse_url(soak.database_url.expose())?;
    db::migrate(&pg).await.context("creating the soak database")?;
    let pool = db::pool(&pg, 2)?;
    let js = jetstream::new(bus::connect(&soak.nats_url).await?);
    bus::ensure_reports_stream(&js, soak).await?;
    // A steady set of flapping components (as many status changes as the benchmark's load), so
    // that alert state stops growing within seconds and RSS that grows after that is a leak.
    let plan = Plan {
        systems: args.systems.max(1),
        components: args.components.max(1),
        system_prefix: "sys",
        degraded: Degraded::EveryNth(50),
    };
    let log = args.dir.join(".sitrep").join("soak-run.log");
    let mut child = Child::start(soak, &args.dir, &log).await?;

    // Every component once, so the pages are full from the start.
    println!("soak: first round of {} components...", args.components);
    let first = u64::from(plan.components);
    super::load::publish_all(&js, soak, plan, 0, first, 20).await?;
    caught_up(&js, soak, &pool, Instant::now()).await?;

    let seconds = u64::from(args.minutes) * 60;
    println!(
        "soak: {} reports/s and {} dashboard clients for {} minutes; a sample every {} s",
        args.rate, args.clients, args.minutes, args.every
    );
    let served = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let mut dashboards = tokio::task::JoinSet::new();
    for n in 0..args.clients {
        let path = if n % 2 == 0 { "/".to_owned() } else { format!("/systems/{}", plan.system(0)) };
        let url = format!("http://{}{path}", child.addr);
        dashboards.spawn(dashboard(http.clone(), url, until, served.clone(), failed.clone()));
    }
    let publish_errors = Arc::new(AtomicU64::new(0));
    let publisher =
        tokio::spawn(offer(js.clone(), soak.clone(), plan, first, args.rate, seconds, publish_errors.clone()));

    let started = Instant::now();
    let mut samples = Vec::new();
    while !publisher.is_finished() {
        tokio::time::sleep(Duration::from_secs(args.every.into())).await;
        let s = sample(&child, &pool, &js, soak, started).await?;
        println!(
            "  {:>5.0} s  RSS {:>6.1} MB  lag {:>6} events ({:>5.2} s)  ingest backlog {:>6}",
            s.at, s.rss_mb, s.lag_events, s.lag_seconds, s.backlog
        );
        samples.push(s);
    }
    let published = publisher.await.context("the publisher panicked")?;
    caught_up(&js, soak, &pool, Instant::now()).await?;
    // Ingest kept up if what waited at the end of the load was under 5 s of it.
    let behind = samples.last().map_or(0, |s| s.backlog);
    let kept_up = behind < 5 * u64::from(args.rate);
    while dashboards.join_next().await.is_some() {}
    let (http_requests, http_errors) = (served.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let stored: i64 = pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM events WHERE event_type = 'StatusReported'", &[])
        .await?
        .get(0);
    let lost = (first + published).saturating_sub(stored as u64);
    let log_errors = std::fs::read_to_string(&log).unwrap_or_default().lines().filter(|l| l.contains("ERROR")).count();
    let alive = child.running();
    child.stop().await;

    let publish_errors = publish_errors.load(Ordering::Relaxed);
    let errors = publish_errors + http_errors + lost + log_errors as u64 + u64::from(!alive);
    let max_lag = samples.iter().map(|s| s.lag_events).max().unwrap_or(0);
    let max_lag_s = samples.iter().map(|s| s.lag_seconds).fold(0.0, f64::max);
    let max_backlog = samples.iter().map(|s| s.backlog).max().unwrap_or(0);
    let (growth, verdict) = rss_trend(&samples);
    let rss_max = samples.iter().map(|s| s.rss_mb).fold(0.0, f64::max);
    println!(
        "\nsoak over {} min: {published} reports published after the first round, {stored} stored in all",
        args.minutes
    );
    println!(
        "errors: {errors} (publish {publish_errors}, HTTP {http_errors}, reports not stored {lost}, ERROR log lines {log_errors}, sitrep {})",
        if alive { "running to the end" } else { "EXITED" }
    );
    println!("dashboards: {http_requests} pages served to {} clients, {http_errors} failed", args.clients);
    println!(
        "ingest {}: {behind} messages waiting when the load ended",
        if kept_up { "kept up" } else { "FELL BEHIND" }
    );
    println!("largest lag: {max_lag} events ({max_lag_s:.2} s); largest ingest backlog: {max_backlog} messages");
    println!("RSS: max {rss_max:.1} MB; after the first minute it grew {growth:+.2} MB/min: {verdict}");
    println!("SOAK errors={errors}");
    println!("SOAK max_lag_events={max_lag}");
    println!("SOAK max_lag_seconds={max_lag_s:.3}");
    println!("SOAK rss_max_mb={rss_max:.1}");
    println!("SOAK rss_growth_mb_per_min={growth:.3}");
    anyhow::ensure!(errors == 0, "the soak saw {errors} errors; see {}", log.display());
    anyhow::ensure!(verdict != "GROWING", "RSS kept growing ({growth:+.2} MB/min after the first minute)");
    anyhow::ensure!(kept_up, "ingest fell behind the offered rate: {behind} messages waited when the load ended");
    Ok(())
}

/// Offers the plan's reports from `from` at `rate` reports/s for `seconds`, in ticks of 10 ms,
/// never waiting on acks (they are awaited aside). Failed publishes are counted, not retried.
async fn offer(
    js: jetstream::Context,
    settings: Settings,
    plan: Plan,
    from: u64,
    rate: u32,
    seconds: u64,
    errors: Arc<AtomicU64>,
) -> u64 {
    const TICK: Duration = Duration::from_millis(10);
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<PublishAckFuture>();
    let acker = {
        let errors = errors.clone();
        tokio::spawn(async move {
            while let Some(ack) = ack_rx.recv().await {
                if ack.await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut ticker = tokio::time::interval(TICK);
    while started.elapsed().as_secs() < seconds {
        ticker.tick().await;
        let due = (started.elapsed().as_secs_f64() * f64::from(rate)) as u64;
        while sent < due {
            let (system, payload) = plan.report(from + sent);
            match js.publish(settings.report_subject(&system), payload.into()).await {
                Ok(ack) => {
                    let _ = ack_tx.send(ack);
                }
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            sent += 1;
        }
    }
    drop(ack_tx);
    let _ = acker.await;
    sent
}

async fn sample(
    child: &Child,
    pool: &deadpool_postgres::Pool,
    js: &jetstream::Context,
    soak: &Settings,
    started: Instant,
) -> anyhow::Result<Sample> {
    let row = pool
        .get()
        .await?
        .query_one(
            "WITH slowest AS (
                 SELECT coalesce(min(position), 0) AS p FROM projection_checkpoints WHERE name = ANY($1))
             SELECT (SELECT coalesce(max(position), 0) FROM events) - (SELECT p FROM slowest),
                    coalesce((SELECT extract(epoch FROM now() - recorded_at)::float8 FROM events
                              WHERE position > (SELECT p FROM slowest) ORDER BY position LIMIT 1), 0)",
            &[&sitrep_web::read::lags::READ_MODELS.to_vec()],
        )
        .await?;
    let stream = js.get_stream(&soak.reports_stream).await?;
    let mut consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer(&soak.ingest_consumer).await.map_err(|e| anyhow::anyhow!("the ingest consumer: {e}"))?;
    let info = consumer.info().await?;
    Ok(Sample {
        at: started.elapsed().as_secs_f64(),
        rss_mb: child.rss_mb("VmRSS:")?,
        lag_events: row.get(0),
        lag_seconds: row.get(1),
        backlog: info.num_pending + info.num_ack_pending as u64,
    })
}

/// RSS growth in MB per minute after the first minute (least squares), and whether that is
/// flat: under 1 MB/min, or under 2% of the mean per minute.
fn rss_trend(samples: &[Sample]) -> (f64, &'static str) {
    let warm: Vec<(f64, f64)> = samples.iter().filter(|s| s.at >= 60.0).map(|s| (s.at / 60.0, s.rss_mb)).collect();
    if warm.len() < 3 {
        return (0.0, "too short to tell");
    }
    let n = warm.len() as f64;
    let (mx, my) = (warm.iter().map(|p| p.0).sum::<f64>() / n, warm.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = warm.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = warm.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (slope, if slope < 1.0 || slope < 0.02 * my { "flat" } else { "GROWING" })
}

/// One dashboard: loads `url` once a second until `until`, counting pages served and failed
/// (an error status, or no answer within 10 s).
async fn dashboard(http: reqwest::Client, url: String, until: Instant, served: Arc<AtomicU64>, failed: Arc<AtomicU64>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < until {
        tick.tick().await;
        let ok = match http.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => resp.bytes().await.is_ok(),
            _ => false,
        };
        if ok { &served } else { &failed }.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_that_keeps_growing_is_not_flat() {
        let at = |m: f64, mb: f64| Sample { at: m * 60.0, rss_mb: mb, lag_events: 0, lag_seconds: 0.0, backlog: 0 };
        let flat: Vec<Sample> = (0..10).map(|m| at(m as f64, 150.0 + (m % 2) as f64)).collect();
        assert_eq!(rss_trend(&flat).1, "flat");
        let growing: Vec<Sample> = (0..10).map(|m| at(m as f64, 150.0 + 10.0 * m as f64)).collect();
        let (slope, verdict) = rss_trend(&growing);
        assert_eq!(verdict, "GROWING");
        assert!((slope - 10.0).abs() < 1e-9);
    }
}
