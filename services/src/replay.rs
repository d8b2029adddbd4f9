//! `sitrep replay` and `sitrep verify`: read models rebuilt from the event log beside the live
//! ones (`projections::rebuild`), then swapped in, or compared and thrown away.

use crate::app;
use anyhow::Context;
use deadpool_postgres::Pool;
use indicatif::{ProgressBar, ProgressStyle};
use sitrep_infra::{db, Settings};
use sitrep_projections::rebuild::{self, Difference};
use sitrep_projections::{Alerts, History, LatestStatus, Outages, Projection};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Which read model to rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// Every read model.
    All,
    /// The latest state of every component.
    LatestStatus,
    /// Raw history, status segments and rollups.
    History,
    /// The alerts read model (alerts and their transitions).
    Alerts,
    /// Outages with their timelines, and maintenance windows.
    Outages,
}

impl Which {
    fn includes(self, other: Which) -> bool {
        self == Which::All || self == other
    }
}

async fn pool(settings: &Settings) -> anyhow::Result<Pool> {
    let pg = db::parse_url(settings.database_url.expose())?;
    db::migrate(&pg).await?;
    let pool = db::pool(&pg, 4)?;
    db::check(&pool).await?;
    Ok(pool)
}

/// Progress on a terminal as a bar with events/s and the time left; elsewhere, a plain line
/// every few seconds.
struct Progress {
    name: &'static str,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    fn new(name: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{msg:14} [{bar:32}] {pos}/{len} events  {per_sec}  ETA {eta}")
                    .expect("a valid progress template")
                    .progress_chars("=> "),
            );
            bar.set_message(name);
            bar
        });
        Self { name, bar, started: Instant::now(), last_line: Instant::now() }
    }

    fn update(&mut self, position: i64, head: i64) {
        let (position, head) = (position.max(0) as u64, head.max(0) as u64);
        match &self.bar {
            Some(bar) => {
                bar.set_length(head);
                bar.set_position(position);
            }
            None if self.last_line.elapsed() >= Duration::from_secs(2) => {
                self.last_line = Instant::now();
                let rate = position as f64 / self.started.elapsed().as_secs_f64().max(0.001);
                eprintln!("{}: {position}/{head} events, {rate:.0} events/s", self.name);
            }
            None => {}
        }
    }

    fn done(self, out: &mut dyn Write, line: String) -> std::io::Result<()> {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
        writeln!(out, "{line}")
    }
}

/// Rebuilds one read model beside the live one and swaps it in.
async fn replay_one<P: Projection>(
    pool: &Pool,
    projection: &P,
    prune: Option<sitrep_projections::Retention>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let name = projection.name();
    let _only_one = rebuild::exclusive(pool, name).await?;
    rebuild::prepare(pool, projection).await.with_context(|| format!("preparing shadow tables for {name}"))?;
    let mut progress = Progress::new(name);
    let started = Instant::now();
    let built = rebuild::build(pool, projection, i64::MAX, |p, h| progress.update(p, h))
        .await
        .with_context(|| format!("rebuilding {name}"))?;
    if let Some(retention) = prune {
        // The live history is pruned; the rebuilt one must not bring old rows back.
        rebuild::prune_shadow(pool, time::OffsetDateTime::now_utc(), retention).await?;
    }
    let position = rebuild::swap(pool, projection).await.with_context(|| format!("swapping in {name}"))?;
    let secs = started.elapsed().as_secs_f64();
    progress.done(
        out,
        format!(
            "{name}: rebuilt from {built} events in {secs:.1} s ({:.0} events/s) and swapped in at position {position}",
            built as f64 / secs.max(0.001)
        ),
    )?;
    Ok(())
}

/// `sitrep replay`: rebuilds the chosen read models while the live ones keep serving, saying
/// what it did on `out`.
pub async fn replay(settings: &Settings, which: Which, out: &mut dyn Write) -> anyhow::Result<()> {
    let pool = pool(settings).await?;
    if which.includes(Which::LatestStatus) {
        replay_one(&pool, &LatestStatus, None, out).await?;
    }
    if which.includes(Which::History) {
        let history = History { default_ttl_seconds: settings.default_ttl_seconds };
        replay_one(&pool, &history, Some(app::retention(settings)), out).await?;
    }
    if which.includes(Which::Alerts) {
        replay_one(&pool, &Alerts, None, out).await?;
    }
    if which.includes(Which::Outages) {
        replay_one(&pool, &Outages, None, out).await?;
    }
    Ok(())
}

/// Rebuilds one read model beside the live one, compares, and throws the rebuild away.
async fn verify_one<P: Projection>(
    pool: &Pool,
    projection: &P,
    retention: Option<sitrep_projections::Retention>,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<Difference>> {
    let name = projection.name();
    let _only_one = rebuild::exclusive(pool, name).await?;
    rebuild::prepare(pool, projection).await?;
    let mut progress = Progress::new(name);
    let result = async {
        // Only up to where the live one stands now: the comparison brings the rebuild the rest
        // of the way, to wherever the live one is then.
        let live = rebuild::live_position(pool, name).await?;
        rebuild::build(pool, projection, live, |p, h| progress.update(p, h)).await?;
        rebuild::compare(pool, projection, retention).await
    }
    .await;
    rebuild::discard(pool, projection).await?;
    let (differences, position) = result.with_context(|| format!("verifying {name}"))?;
    if differences.is_empty() {
        progress.done(out, format!("{name}: identical to a rebuild from the log (at position {position})"))?;
    } else {
        progress.done(out, format!("{name}: DIFFERS from a rebuild from the log (at position {position})"))?;
        for d in &differences {
            writeln!(
                out,
                "  table {}: {} rows only in the live table, {} only in the rebuild",
                d.table, d.only_live, d.only_rebuilt
            )?;
            for row in &d.live_examples {
                writeln!(out, "    - live:    {row}")?;
            }
            for row in &d.rebuilt_examples {
                writeln!(out, "    + rebuilt: {row}")?;
            }
        }
    }
    Ok(differences)
}

/// `sitrep verify`: rebuilds the chosen read models into shadow tables and compares them with
/// the live ones, writing what it found on `out`. Fails if any differ.
pub async fn verify(settings: &Settings, which: Which, out: &mut dyn Write) -> anyhow::Result<()> {
    let pool = pool(settings).await?;
    let mut differ = Vec::new();
    if which.includes(Which::LatestStatus) && !verify_one(&pool, &LatestStatus, None, out).await?.is_empty() {
        differ.push("latest_status");
    }
    let history = History { default_ttl_seconds: settings.default_ttl_seconds };
    if which.includes(Which::History)
        && !verify_one(&pool, &history, Some(app::retention(settings)), out).await?.is_empty()
    {
        differ.push("history");
    }
    if which.includes(Which::Alerts) && !verify_one(&pool, &Alerts, None, out).await?.is_empty() {
        differ.push("alerts");
    }
    if which.includes(Which::Outages) && !verify_one(&pool, &Outages, None, out).await?.is_empty() {
        differ.push("outages");
    }
    anyhow::ensure!(
        differ.is_empty(),
        "{} differ from a rebuild from the event log; `sitrep replay {}` rebuilds and swaps in",
        differ.join(", "),
        if differ.len() == 1 { differ[0].replace('_', "-") } else { "all".into() }
    );
    Ok(())
}
