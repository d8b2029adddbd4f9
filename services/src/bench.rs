//! `sitrep bench`: measurements taken in one run against the local Postgres, in a database of
//! its own, so that ratios compare figures from the same machine state. Ends with one
//! machine-readable line per figure: `BENCH name=value unit=... ratio=...`.
//!
//! Figures so far:
//! - `history_projection`: events/s of the latest-status and history projections catching up
//!   on the seeded log (ratio: none, it is the first figure of its kind).
//! - `alert_evaluator`: events/s of the alert evaluator (with the shipped `alerts.toml`) on the
//!   same log; ratio to `history_projection`.
//! - `system_page`: the plain latest-status system page of a system with `--components`
//!   components (the baseline, ratio 1).
//! - `component_page_24h` and `component_page_30d`: the component page of a component with
//!   `--days` days of one-minute reports, in its 24-hour and 30-day views; ratio to
//!   `system_page`.
//!
//! Pages are requested in-process through the router (no sockets), one at a time, after a
//! warm-up, so the figures are rendering and query time.

use anyhow::Context;
use axum::body::Body;
use axum::http::Request;
use clap::Args;
use serde_json::json;
use sitrep_domain::alert::{EvaluatorEvent, RuleSet};
use sitrep_domain::component::{ComponentEvent, Reported, AGGREGATE_TYPE};
use sitrep_domain::wire::Report;
use sitrep_domain::{component_aggregate_id, ComponentName, Status, SystemName};
use sitrep_infra::alerts;
use sitrep_infra::event_store::{self, NewEvent};
use sitrep_infra::{db, Settings};
use sitrep_projections::{catch_up, AlertEvaluator, History, LatestStatus};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tower::ServiceExt;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Components in the benchmark system (what the system page shows).
    #[arg(long, default_value_t = 100)]
    pub components: usize,
    /// Days of one-minute reports behind the charted component.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Timed requests per page (after 10 warm-up requests).
    #[arg(long, default_value_t = 60)]
    pub requests: usize,
    /// Keep the benchmark database afterwards (it is dropped by default).
    #[arg(long)]
    pub keep: bool,
    /// Folder whose .sitrep/ holds local Postgres and NATS, started when the configured ones
    /// are on this machine and do not answer (as `sitrep demo` does).
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
}

/// One measured figure.
struct Figure {
    name: &'static str,
    value: f64,
    unit: &'static str,
    ratio: Option<f64>,
    note: String,
}

pub async fn run(settings: &Settings, args: &BenchArgs) -> anyhow::Result<()> {
    let db_name = format!("sitrep_bench_{}", OffsetDateTime::now_utc().unix_timestamp());
    let mut config = db::parse_url(settings.database_url.expose())?;
    config.dbname(&db_name);
    db::migrate(&config).await.context("creating the benchmark database")?;
    let pool = db::pool(&config, 4)?;
    let result = measure(&pool, settings, args).await;
    drop(pool);
    if args.keep {
        println!("kept database {db_name}");
    } else {
        db::drop_database(settings.database_url.expose(), &db_name).await?;
    }
    let figures = result?;
    println!("\n{:<22} {:>12} {:<10} {:>7}  what", "figure", "value", "unit", "ratio");
    for f in &figures {
        let ratio = f.ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into());
        println!("{:<22} {:>12.2} {:<10} {:>7}  {}", f.name, f.value, f.unit, ratio, f.note);
    }
    println!();
    for f in &figures {
        let ratio = f.ratio.map(|r| format!(" ratio={r:.3}")).unwrap_or_default();
        println!("BENCH {}={:.3} unit={}{ratio}", f.name, f.value, f.unit);
    }
    Ok(())
}

async fn measure(pool: &deadpool_postgres::Pool, settings: &Settings, args: &BenchArgs) -> anyhow::Result<Vec<Figure>> {
    let now = OffsetDateTime::now_utc();
    println!("seeding: {} components, and {} days of one-minute reports for bench:fs/big", args.components, args.days);
    let shipped = RuleSet::parse_toml(include_str!("../../alerts.toml"), settings.default_ttl_seconds.into())?;
    let mut client = pool.get().await?;
    alerts::record(&mut client, &EvaluatorEvent::RulesLoaded { rules: shipped, source: "alerts.toml".into() }).await?;
    drop(client);
    let events = seed(pool, args, now).await?;
    let started = Instant::now();
    let applied = catch_up(pool, &LatestStatus).await?
        + catch_up(pool, &History { default_ttl_seconds: settings.default_ttl_seconds }).await?;
    let secs = started.elapsed().as_secs_f64();
    let mut figures = vec![Figure {
        name: "history_projection",
        value: applied as f64 / secs,
        unit: "events/s",
        ratio: None,
        note: format!("latest_status + history catching up on {events} events"),
    }];

    // The alert evaluator over the same log, with the shipped rules recorded before it.
    let started = Instant::now();
    let evaluated = catch_up(pool, &AlertEvaluator).await?;
    let secs = started.elapsed().as_secs_f64();
    let raised: i64 =
        pool.get().await?.query_one("SELECT count(*) FROM events WHERE event_type = 'AlertRaised'", &[]).await?.get(0);
    let history_rate = figures[0].value;
    figures.push(Figure {
        name: "alert_evaluator",
        value: evaluated as f64 / secs,
        unit: "events/s",
        ratio: Some(evaluated as f64 / secs / history_rate),
        note: format!("the evaluator with the shipped alerts.toml on the same events ({raised} alerts raised); ratio to history_projection"),
    });

    let mut state =
        sitrep_web::AppState::new(pool.clone(), settings.default_ttl_seconds, settings.subject_prefix.clone());
    state.clock = std::sync::Arc::new(move || now);
    let router = sitrep_web::router(state);
    let pages = [
        ("system_page", "/systems/bench".to_owned()),
        ("component_page_24h", "/systems/bench/components/fs/big".to_owned()),
        ("component_page_30d", "/systems/bench/components/fs/big?range=30d".to_owned()),
    ];
    let mut medians = Vec::new();
    for (name, path) in &pages {
        let mut times = Vec::with_capacity(args.requests);
        for i in 0..args.requests + 10 {
            let started = Instant::now();
            let response = router.clone().oneshot(Request::get(path.as_str()).body(Body::empty())?).await?;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            anyhow::ensure!(status == 200, "{path} answered {status}: {}", String::from_utf8_lossy(&body));
            if i >= 10 {
                times.push(started.elapsed());
            }
        }
        times.sort();
        let p50 = ms(times[times.len() / 2]);
        let p99 = ms(times[(times.len() * 99 / 100).min(times.len() - 1)]);
        medians.push(p50);
        let ratio = Some(p50 / medians[0]);
        figures.push(Figure {
            name,
            value: p50,
            unit: "ms",
            ratio,
            note: format!("p50 of {} ({path}); p99 {p99:.2} ms", args.requests),
        });
    }
    Ok(figures)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Appends the benchmark's events: one report for each of `components` components, and one
/// report a minute for `days` days for `fs/big` (with a failure a day, to give the timeline
/// segments). Returns how many events it appended.
async fn seed(pool: &deadpool_postgres::Pool, args: &BenchArgs, now: OffsetDateTime) -> anyhow::Result<usize> {
    let system = SystemName::parse("bench").map_err(anyhow::Error::msg)?;
    let mut events = Vec::new();
    let mut add = |component: &str, sequence: &mut i64, event: ComponentEvent| -> anyhow::Result<()> {
        let name = ComponentName::parse(component).map_err(anyhow::Error::msg)?;
        *sequence += 1;
        events.push(NewEvent {
            event_id: uuid::Uuid::new_v4(),
            aggregate_type: AGGREGATE_TYPE.into(),
            aggregate_id: component_aggregate_id(&system, &name),
            sequence: *sequence,
            event_type: cqrs_es::DomainEvent::event_type(&event),
            event_version: "1".into(),
            payload: serde_json::to_value(&event)?,
            metadata: json!({}),
        });
        Ok(())
    };
    let report = |component: &str, status: Status, at: OffsetDateTime, metrics: Vec<(&str, f64)>| {
        let report = Report {
            system: system.clone(),
            component: ComponentName::parse(component).expect("a valid name"),
            status,
            observed_at: at,
            message: None,
            metrics: metrics.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            labels: Default::default(),
            ttl_seconds: Some(120),
        };
        ComponentEvent::StatusReported(Reported::new(report, at, false))
    };
    let changed =
        |component: &str, from: Option<Status>, to: Status, at: OffsetDateTime| ComponentEvent::StatusChanged {
            system: system.clone(),
            component: ComponentName::parse(component).expect("a valid name"),
            from,
            to,
            at,
        };
    for i in 0..args.components.saturating_sub(1) {
        let name = format!("node/n{i:05}");
        let mut seq = 0;
        add(
            &name,
            &mut seq,
            report(&name, Status::Ok, now, vec![("load_1m", 1.0 + i as f64 % 7.0), ("utilisation_pct", 50.0)]),
        )?;
        add(&name, &mut seq, changed(&name, None, Status::Ok, now))?;
    }
    let minutes = i64::from(args.days) * 24 * 60;
    let mut seq = 0;
    let mut last: Option<Status> = None;
    for m in (0..minutes).rev() {
        let at = now - time::Duration::minutes(m);
        let x = m as f64;
        let status = if m % 1440 < 15 { Status::Failed } else { Status::Ok };
        let metrics = vec![
            ("used_pct", 50.0 + 40.0 * (x / 5000.0).sin().abs()),
            ("read_mb_s", 800.0 + 300.0 * (x / 90.0).cos()),
            ("inodes_used", 1.0e8 + x * 10.0),
        ];
        add("fs/big", &mut seq, report("fs/big", status, at, metrics))?;
        if last != Some(status) {
            add("fs/big", &mut seq, changed("fs/big", last, status, at))?;
            last = Some(status);
        }
    }
    let total = events.len();
    let mut client = pool.get().await?;
    for chunk in events.chunks(5000) {
        let tx = client.transaction().await?;
        event_store::append(&*tx, chunk).await?;
        tx.commit().await?;
    }
    Ok(total)
}
