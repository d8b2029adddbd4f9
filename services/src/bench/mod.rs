//! `sitrep bench`: sitrep measured against the limits of the machine it runs on, every figure
//! taken in one run so that ratios compare like with like (CPU steal varies between runs). It
//! works in a database, streams and subjects of its own, removed afterwards, and ends with one
//! machine-readable line per figure: `BENCH name=value unit=... ratio=...`.
//!
//! The phases, in order:
//! 1. End-to-end: a real `sitrep run` (this binary, as a child process) consumes `--reports`
//!    reports over `--components` components in `--systems` systems, published by
//!    `--collectors` concurrent collectors as fast as JetStream takes them. Timed from the first
//!    publish until ingest has acked everything and every read model and the alert evaluator
//!    have caught up with the log.
//! 2. Latency: `--latency-rate` reports/s offered for `--latency-seconds`, with probe reports
//!    whose publish-to-visible time in `/api/v1/status` is measured.
//! 3. Sign-in flood: `--flood-clients` clients sign in with made-up names from ever-new
//!    addresses for `--flood-seconds`, while a probe reads `/api/v1/status/<system>` and posts
//!    a report over HTTP ingest every 50 ms; the same probe idle first gives the ratios.
//!    Then the child's peak RSS.
//! 4. Dashboard: `/` and a system page under `--clients` concurrent `wrk` clients, each beside a
//!    static file of the same bytes from the same server.
//! 5. Replay: `sitrep replay all` over the log, beside a sequential read of the events table.
//! 6. Baselines: binary COPY of the same event rows, and the stock cqrs-es path.

mod baselines;
mod dashboard;
mod flood;
mod load;
mod soak;

pub use soak::run as soak;
pub use soak::SoakArgs;

use anyhow::Context;
use async_nats::jetstream;
use clap::Args;
use load::Plan;
use sitrep_infra::settings::Secret;
use sitrep_infra::{bus, db, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Reports published in the end-to-end run.
    #[arg(long, default_value_t = 1_000_000)]
    pub reports: u64,
    /// Components the reports are spread over (each reports once per round).
    #[arg(long, default_value_t = 10_000)]
    pub components: u32,
    /// Systems the components belong to.
    #[arg(long, default_value_t = 20)]
    pub systems: u32,
    /// Concurrent simulated collectors publishing the end-to-end run.
    #[arg(long, default_value_t = 20)]
    pub collectors: u32,
    /// Offered load (reports/s) while publish-to-visible latency is measured.
    #[arg(long, default_value_t = 5_000)]
    pub latency_rate: u32,
    /// Seconds the latency load lasts.
    #[arg(long, default_value_t = 10)]
    pub latency_seconds: u32,
    /// Concurrent dashboard clients.
    #[arg(long, default_value_t = 32)]
    pub clients: u32,
    /// Seconds of load on each page and static file.
    #[arg(long, default_value_t = 8)]
    pub http_seconds: u32,
    /// Clients flooding `/sign-in` with made-up names, each attempt from a new address, while
    /// the dashboard's JSON and HTTP ingest are probed (0 skips the phase).
    #[arg(long, default_value_t = 32)]
    pub flood_clients: u32,
    /// Seconds the sign-in flood lasts.
    #[arg(long, default_value_t = 10)]
    pub flood_seconds: u32,
    /// Reports through the stock cqrs-es path (one transaction each, so few are enough).
    #[arg(long, default_value_t = 10_000)]
    pub cqrs_reports: u64,
    /// Keep the benchmark database and streams afterwards (they are removed by default).
    #[arg(long)]
    pub keep: bool,
    /// Folder whose .sitrep/ holds local Postgres and NATS, started when the configured ones
    /// are on this machine and do not answer (as `sitrep demo` does); its alerts.toml, if any,
    /// is the rule set the end-to-end run evaluates.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// One measured figure.
struct Figure {
    name: &'static str,
    value: f64,
    unit: &'static str,
    ratio: Option<f64>,
    note: String,
}

/// A target from the issue that set them, and whether this run met it.
struct Target {
    what: String,
    met: bool,
    shown: String,
}

pub async fn run(settings: &Settings, args: &BenchArgs) -> anyhow::Result<()> {
    crate::alerting::install_tls_provider();
    let (bench, db_name) = isolated(settings).await;
    let started = Instant::now();
    let result = measure(&bench, args).await;
    if args.keep {
        println!("kept database {db_name} and streams {} and {}", bench.reports_stream, bench.alerts_stream);
    } else {
        remove(settings, &bench, &db_name).await?;
    }
    let (figures, targets) = result?;
    println!("\n{:<26} {:>12} {:<9} {:>7}  what", "figure", "value", "unit", "ratio");
    for f in &figures {
        let ratio = f.ratio.map(|r| format!("{r:.3}")).unwrap_or_else(|| "-".into());
        println!("{:<26} {:>12.2} {:<9} {:>7}  {}", f.name, f.value, f.unit, ratio, f.note);
    }
    println!("\ntargets:");
    for t in &targets {
        println!("  {} {:<58} {}", if t.met { "met    " } else { "MISSED " }, t.what, t.shown);
    }
    println!("\nthe whole run took {:.0} s\n", started.elapsed().as_secs_f64());
    for f in &figures {
        let ratio = f.ratio.map(|r| format!(" ratio={r:.3}")).unwrap_or_default();
        println!("BENCH {}={:.3} unit={}{ratio}", f.name, f.value, f.unit);
    }
    Ok(())
}

/// Settings for a database, streams, consumer and subjects of the run's own (named with the
/// second it started), and the database's name. Removes what runs stopped before their cleanup
/// left behind (a million reports each is worth the disk).
async fn isolated(settings: &Settings) -> (Settings, String) {
    let id = OffsetDateTime::now_utc().unix_timestamp();
    let db_name = format!("sitrep_bench_{id}");
    let mut bench = settings.clone();
    bench.database_url = Secret::new(
        db::url_of_database(settings.database_url.expose(), &db_name).expect("the URL was parsed at start"),
    );
    bench.subject_prefix = format!("bench{id}");
    bench.reports_stream = format!("BENCH{id}_REPORTS");
    bench.alerts_stream = format!("BENCH{id}_ALERTS");
    bench.ingest_consumer = format!("bench{id}-ingest");
    bench.self_report_seconds = 0;
    sitrep_infra::leftovers::remove(settings, "sitrep_bench_", "BENCH").await;
    (bench, db_name)
}

/// Deletes the run's streams and drops its database.
async fn remove(settings: &Settings, bench: &Settings, db_name: &str) -> anyhow::Result<()> {
    if let Ok(nats) = bus::connect(&bench.nats_url).await {
        let js = jetstream::new(nats);
        let _ = js.delete_stream(&bench.reports_stream).await;
        let _ = js.delete_stream(&bench.alerts_stream).await;
    }
    db::drop_database(settings.database_url.expose(), db_name).await
}

async fn measure(bench: &Settings, args: &BenchArgs) -> anyhow::Result<(Vec<Figure>, Vec<Target>)> {
    let pg = db::parse_url(bench.database_url.expose())?;
    db::migrate(&pg).await.context("creating the benchmark database")?;
    let pool = db::pool(&pg, 4)?;
    let js = jetstream::new(bus::connect(&bench.nats_url).await?);
    bus::ensure_reports_stream(&js, bench).await?;
    let plan = Plan::new(args);
    let mut figures = Vec::new();

    // 1. End-to-end through a real `sitrep run`.
    let child = Child::start(bench, &args.dir, &args.dir.join(".sitrep").join("bench-run.log")).await?;
    println!(
        "end-to-end: {} reports over {} components in {} systems from {} collectors...",
        args.reports, args.components, args.systems, args.collectors
    );
    let started = Instant::now();
    load::publish_all(&js, bench, plan, 0, args.reports, args.collectors).await?;
    let published = started.elapsed().as_secs_f64();
    caught_up(&js, bench, &pool, started).await?;
    let e2e_secs = started.elapsed().as_secs_f64();
    let client = pool.get().await?;
    let stored: i64 =
        client.query_one("SELECT count(*) FROM events WHERE event_type = 'StatusReported'", &[]).await?.get(0);
    anyhow::ensure!(stored as u64 == args.reports, "published {} reports but {stored} were stored", args.reports);
    let events: i64 = client.query_one("SELECT count(*) FROM events", &[]).await?.get(0);
    // What keeping them costs on disk: Postgres tables and indexes, and the report stream.
    let pg_bytes: i64 = client
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c
             WHERE c.relkind IN ('r', 'm') AND c.relnamespace = 'public'::regnamespace",
            &[],
        )
        .await?
        .get(0);
    drop(client);
    let stream_bytes = js.get_stream(&bench.reports_stream).await?.info().await?.state.bytes;
    let e2e = args.reports as f64 / e2e_secs;

    // 2. Latency at a fixed offered load; 3. the sign-in flood; then the child's peak memory.
    println!("latency: {} reports/s offered for {} s...", args.latency_rate, args.latency_seconds);
    let mut latency =
        load::latency(&js, bench, plan, args.reports, args.latency_rate, args.latency_seconds, child.addr).await?;
    caught_up(&js, bench, &pool, Instant::now()).await?;
    let flood = if args.flood_clients > 0 {
        println!(
            "sign-in flood: {} clients for {} s, each attempt from a new address...",
            args.flood_clients, args.flood_seconds
        );
        Some(flood::measure(&pool, child.addr, &plan.system(0), args.flood_clients, args.flood_seconds).await?)
    } else {
        None
    };
    let rss_mb = child.rss_mb("VmHWM:")?;
    child.stop().await;

    // 4. The dashboard.
    let system_page = format!("/systems/{}", plan.system(0));
    println!("dashboard: / and {system_page} under {} clients...", args.clients);
    let pages = dashboard::measure(&pool, bench, args, &["/", &system_page]).await?;

    // 5. Replay, and the sequential read it is compared with.
    println!("replay: every read model from the log...");
    // Events, not the head's position: positions can have gaps.
    let replayed: i64 = pool.get().await?.query_one("SELECT count(*) FROM events", &[]).await?.get(0);
    let started = Instant::now();
    let mut said = Vec::new();
    crate::replay::replay(bench, crate::replay::Which::All, &mut said).await?;
    let replay = replayed as f64 / started.elapsed().as_secs_f64();
    for line in String::from_utf8_lossy(&said).lines() {
        println!("  {line}");
    }
    let (read, read_rows) = baselines::sequential_read(&pool).await?;

    // 5b. Backtesting the rules in force over the whole log, against the replay above over the
    // same events. (`sitrep replay alerts` rebuilds the alerts read model from alert events
    // alone, which is no measure of the evaluator; the replay of every read model reads every
    // report, as the backtest does.)
    println!("backtest: the rules in force over the whole log...");
    let rules = sitrep_infra::alerts::load_rules(bench.alerts_file.as_deref(), bench.default_ttl_seconds)?
        .map(|(rules, _)| rules)
        .unwrap_or_default();
    let span = pool.get().await?.query_one("SELECT min(recorded_at), max(recorded_at) FROM events", &[]).await?;
    let (first, last): (time::OffsetDateTime, time::OffsetDateTime) = (span.get(0), span.get(1));
    let started = Instant::now();
    let tried = sitrep_projections::backtest::run(&pool, rules, first, last + time::Duration::SECOND).await?;
    let backtest = replayed as f64 / started.elapsed().as_secs_f64();
    println!("  {} would-be alerts from {} reports and windows", tried.alerts.len(), tried.events);

    // 6. Baselines.
    println!(
        "baselines: binary COPY of {} event rows, then {} reports through cqrs-es...",
        args.reports, args.cqrs_reports
    );
    let copy = baselines::copy(&pool, plan, args.reports).await?;
    let cqrs = baselines::cqrs(&pool, plan, args.cqrs_reports).await?;

    let (p50, p99) = (load::quantile(&mut latency.millis, 0.5), load::quantile(&mut latency.millis, 0.99));
    figures.extend([
        Figure {
            name: "ingest_e2e",
            value: e2e,
            unit: "reports/s",
            ratio: Some(e2e / copy),
            note: format!(
                "{} reports to every read model caught up, {e2e_secs:.1} s ({events} events; publishing took {published:.1} s); ratio to copy_baseline",
                args.reports
            ),
        },
        Figure {
            name: "ingest_e2e_vs_cqrs",
            value: e2e / cqrs,
            unit: "x",
            ratio: Some(e2e / cqrs),
            note: "ingest_e2e / cqrs_baseline".into(),
        },
        Figure {
            name: "storage_per_report",
            value: (pg_bytes as f64 + stream_bytes as f64) / args.reports as f64,
            unit: "bytes",
            ratio: None,
            note: format!(
                "after the end-to-end run: Postgres tables and indexes {:.1} MB + report stream {:.1} MB, per report",
                pg_bytes as f64 / 1e6,
                stream_bytes as f64 / 1e6
            ),
        },
        Figure { name: "copy_baseline", value: copy, unit: "rows/s", ratio: None, note: "binary COPY of the same StatusReported rows, 5,000 a transaction, one connection".into() },
        Figure { name: "cqrs_baseline", value: cqrs, unit: "reports/s", ratio: None, note: format!("CqrsFramework::execute, one command and transaction per report, {} reports", args.cqrs_reports) },
        Figure {
            name: "visible_p50",
            value: p50,
            unit: "ms",
            ratio: None,
            note: format!("publish to /api/v1/status, {} probes at {:.0} reports/s offered", latency.millis.len(), latency.offered),
        },
        Figure { name: "visible_p99", value: p99, unit: "ms", ratio: Some(p99 / 250.0), note: "ratio to the 250 ms target".into() },
        Figure { name: "rss_peak", value: rss_mb, unit: "MB", ratio: Some(rss_mb / 200.0), note: "peak RSS (VmHWM) of sitrep run; ratio to the 200 MB target".into() },
        Figure { name: "replay_all", value: replay, unit: "events/s", ratio: Some(replay / read), note: format!("sitrep replay all over {replayed} events; ratio to sequential_read") },
        Figure {
            name: "backtest",
            value: backtest,
            unit: "events/s",
            ratio: Some(backtest / replay),
            note: format!("sitrep rules backtest of the rules in force over the whole log ({replayed} events); ratio to replay_all"),
        },
        Figure { name: "sequential_read", value: read, unit: "rows/s", ratio: None, note: format!("SELECT * FROM events ORDER BY position through a cursor, {read_rows} rows") },
    ]);
    let names = [("home", "/"), ("system", system_page.as_str())];
    let mut targets = vec![
        Target { what: "end-to-end >= 25,000 reports/s".into(), met: e2e >= 25_000.0, shown: format!("{e2e:.0}") },
        Target {
            what: "end-to-end >= 0.4x raw COPY".into(),
            met: e2e / copy >= 0.4,
            shown: format!("{:.2}x", e2e / copy),
        },
        Target {
            what: "end-to-end >= 10x stock cqrs-es".into(),
            met: e2e / cqrs >= 10.0,
            shown: format!("{:.1}x", e2e / cqrs),
        },
        Target {
            what: format!("p99 publish-to-visible <= 250 ms at {} reports/s offered", args.latency_rate),
            met: p99 <= 250.0,
            shown: format!("{p99:.0} ms"),
        },
        Target {
            what: "replay >= 0.5x sequential read".into(),
            met: replay / read >= 0.5,
            shown: format!("{:.2}x", replay / read),
        },
        Target {
            what: "backtest >= 1x replay of the read models".into(),
            met: backtest >= replay,
            shown: format!("{:.2}x", backtest / replay),
        },
        Target { what: "RSS <= 200 MB".into(), met: rss_mb <= 200.0, shown: format!("{rss_mb:.0} MB") },
    ];
    if let Some(mut f) = flood {
        let answers: Vec<String> = f.answers.iter().map(|(s, n)| format!("{n} x {s}")).collect();
        let (status_idle, status_flood, status_ratio) = f.medians(|p| &mut p.status_ms);
        let (ingest_idle, ingest_flood, ingest_ratio) = f.medians(|p| &mut p.ingest_ms);
        figures.extend([
            Figure {
                name: "flood_status_p50",
                value: status_flood,
                unit: "ms",
                ratio: Some(status_ratio),
                note: format!(
                    "/api/v1/status/{} median under {} sign-in flooders (sign-ins answered {}); idle {status_idle:.2} ms; ratio to idle",
                    plan.system(0),
                    args.flood_clients,
                    answers.join(", ")
                ),
            },
            Figure {
                name: "flood_ingest_p50",
                value: ingest_flood,
                unit: "ms",
                ratio: Some(ingest_ratio),
                note: format!("POST /api/v1/reports median under the same flood; idle {ingest_idle:.2} ms; ratio to idle"),
            },
        ]);
        targets.push(Target {
            what: "dashboard and HTTP ingest within 2x idle under a sign-in flood".into(),
            met: status_ratio <= 2.0 && ingest_ratio <= 2.0,
            shown: format!("{status_ratio:.2}x, {ingest_ratio:.2}x"),
        });
    }
    for ((short, path), c) in names.iter().zip(&pages) {
        let ratio = c.page.p99_ms / c.file.p99_ms;
        figures.push(Figure {
            name: if *short == "home" { "home_p99" } else { "system_page_p99" },
            value: c.page.p99_ms,
            unit: "ms",
            ratio: Some(ratio),
            note: format!(
                "{path} ({} bytes), {} clients: p50 {:.2} ms, {:.0} req/s; ratio to the static file's p99",
                c.page.bytes, args.clients, c.page.p50_ms, c.page.per_sec
            ),
        });
        figures.push(Figure {
            name: if *short == "home" { "home_static_p99" } else { "system_page_static_p99" },
            value: c.file.p99_ms,
            unit: "ms",
            ratio: None,
            note: format!(
                "the same {} bytes as a static file: p50 {:.2} ms, {:.0} req/s",
                c.file.bytes, c.file.p50_ms, c.file.per_sec
            ),
        });
        targets.push(Target {
            what: format!("dashboard {path} p99 <= 3x static"),
            met: ratio <= 3.0,
            shown: format!("{ratio:.2}x"),
        });
    }
    Ok((figures, targets))
}

/// Waits until ingest has acked every message and every read model and the alert evaluator have
/// reached the head of the log, printing progress every 5 s.
async fn caught_up(
    js: &jetstream::Context,
    bench: &Settings,
    pool: &deadpool_postgres::Pool,
    since: Instant,
) -> anyhow::Result<()> {
    let stream = js.get_stream(&bench.reports_stream).await?;
    let mut last_line = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let mut consumer: jetstream::consumer::PullConsumer = stream
            .get_consumer(&bench.ingest_consumer)
            .await
            .map_err(|e| anyhow::anyhow!("the ingest consumer: {e}"))?;
        let info = consumer.info().await?;
        let waiting = info.num_pending + info.num_ack_pending as u64;
        let client = pool.get().await?;
        let row = client
            .query_one(
                "SELECT (SELECT coalesce(max(position), 0) FROM events),
                        (SELECT coalesce(min(position), 0) FROM projection_checkpoints WHERE name = ANY($1)),
                        (SELECT count(*) FROM projection_checkpoints WHERE name = ANY($1))",
                &[&sitrep_web::read::lags::READ_MODELS.to_vec()],
            )
            .await?;
        let (head, slowest, count): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if waiting == 0 && count == sitrep_web::read::lags::READ_MODELS.len() as i64 && slowest >= head {
            return Ok(());
        }
        if last_line.elapsed() >= Duration::from_secs(5) {
            last_line = Instant::now();
            eprintln!(
                "  {:>4.0} s: {waiting} messages waiting for ingest, {head} events, slowest read model at {slowest}",
                since.elapsed().as_secs_f64()
            );
        }
        anyhow::ensure!(Instant::now() < deadline, "the read models did not catch up within 30 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `sitrep run` as a child process, on the benchmark's database, streams and a free port.
struct Child {
    process: tokio::process::Child,
    addr: SocketAddr,
}

impl Child {
    /// Starts it with its log in `log` (or the temporary folder if that cannot be written) and
    /// `dir`'s alerts.toml, if any, as its rules; returns once it answers.
    async fn start(bench: &Settings, dir: &std::path::Path, log: &std::path::Path) -> anyhow::Result<Self> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::fs::File::create(log)
            .or_else(|_| std::fs::File::create(std::env::temp_dir().join(log.file_name().unwrap_or_default())))?;
        // SITREP_BENCH_WRAP runs it under a profiler, e.g. `perf record -g -o perf.data` or
        // `heaptrack -o sitrep-run` (see docs/performance.md).
        let wrap = std::env::var("SITREP_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = tokio::process::Command::new(program);
                c.args(words).arg(std::env::current_exe()?);
                c
            }
            None => tokio::process::Command::new(std::env::current_exe()?),
        };
        command
            .arg("run")
            .env("SITREP_DATABASE_URL", bench.database_url.expose())
            .env("SITREP_NATS_URL", &bench.nats_url)
            .env("SITREP_HTTP_ADDR", addr.to_string())
            .env("SITREP_SUBJECT_PREFIX", &bench.subject_prefix)
            .env("SITREP_REPORTS_STREAM", &bench.reports_stream)
            .env("SITREP_ALERTS_STREAM", &bench.alerts_stream)
            .env("SITREP_INGEST_CONSUMER", &bench.ingest_consumer)
            .env("SITREP_INGEST_BATCH", bench.ingest_batch.to_string())
            .env("SITREP_INGEST_WAIT_MS", bench.ingest_wait_ms.to_string())
            .env("SITREP_DEFAULT_TTL_SECONDS", bench.default_ttl_seconds.to_string())
            .env("SITREP_SELF_REPORT_SECONDS", "0")
            // The sign-in flood comes from the bench itself, as from a proxy, so that each
            // attempt can claim a new client address (flood.rs).
            .env("SITREP_TRUSTED_PROXIES", "127.0.0.1")
            .env("SITREP_SIGN_IN_PER_MINUTE", "10")
            .env("SITREP_INGEST_PER_SECOND", "50")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let rules = dir.join("alerts.toml");
        if rules.exists() {
            command.env("SITREP_ALERTS_FILE", rules);
        } else {
            command.env_remove("SITREP_ALERTS_FILE");
        }
        let process = command.spawn().context("starting sitrep run")?;
        let child = Child { process, addr };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !client.get(format!("http://{addr}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            anyhow::ensure!(Instant::now() < deadline, "sitrep run did not answer on {addr} within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(child)
    }

    /// A memory figure of the process from /proc/<pid>/status, in MB: `VmHWM:` is the most it
    /// has held, `VmRSS:` what it holds now.
    fn rss_mb(&self, field: &str) -> anyhow::Result<f64> {
        let pid = self.process.id().context("sitrep run has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .with_context(|| format!("no {field} in /proc/<pid>/status"))?
            .parse()?;
        Ok(kb / 1024.0)
    }

    /// Whether it is still running.
    fn running(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }

    /// Asks it to stop (SIGTERM), then kills it after 10 s.
    async fn stop(mut self) {
        if let Some(pid) = self.process.id() {
            let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        if tokio::time::timeout(Duration::from_secs(10), self.process.wait()).await.is_err() {
            let _ = self.process.kill().await;
        }
    }
}
