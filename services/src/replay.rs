//! `sitrep replay` and `sitrep verify`: read models rebuilt from the event log beside the live
//! ones (`projections::rebuild`), then swapped in, or compared and thrown away.

use crate::app;
use anyhow::Context;
use deadpool_postgres::Pool;
use futures::future::{BoxFuture, FutureExt};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sitrep_infra::archive::Archive;
use sitrep_infra::event_store::Metadata;
use sitrep_infra::{db, Settings};
use sitrep_projections::feed::{self, Feed};
use sitrep_projections::rebuild::{self, Difference};
use sitrep_projections::{Alerts, History, LatestStatus, Outages, Projection};
use std::io::{IsTerminal, Write};
use std::path::Path;
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

    /// The read model's name, as its checkpoint and messages spell it.
    fn name(self) -> &'static str {
        match self {
            Which::All => "all",
            Which::LatestStatus => "latest_status",
            Which::History => "history",
            Which::Alerts => "alerts",
            Which::Outages => "outages",
        }
    }
}

async fn pool(settings: &Settings) -> anyhow::Result<Pool> {
    let pg = db::parse_url(settings.database_url.expose())?;
    db::migrate(&pg).await?;
    // Two connections per read model rebuilt side by side, and one for the shared read.
    let pool = db::pool(&pg, 10)?;
    db::check(&pool).await?;
    Ok(pool)
}

/// Progress on a terminal as a bar of the log's positions, with events/s and the time left;
/// elsewhere, a plain line every few seconds. The rate counts events applied, not positions,
/// which have gaps.
struct Progress {
    name: &'static str,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    fn new(name: &'static str, bars: &MultiProgress) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = bars.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{msg:14} [{bar:32}] position {pos}/{len}  {prefix}  ETA {eta}")
                    .expect("a valid progress template")
                    .progress_chars("=> "),
            );
            bar.set_message(name);
            bar
        });
        Self { name, bar, started: Instant::now(), last_line: Instant::now() }
    }

    /// At `position` of `head`, with `applied` events applied so far (fewer than the position
    /// where the log has gaps, or events of types the read model skips).
    fn update(&mut self, position: i64, head: i64, applied: u64) {
        let (position, head) = (position.max(0) as u64, head.max(0) as u64);
        let rate = applied as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        match &self.bar {
            Some(bar) => {
                bar.set_length(head);
                bar.set_position(position);
                bar.set_prefix(format!("{rate:.0} events/s"));
            }
            None if self.last_line.elapsed() >= Duration::from_secs(2) => {
                self.last_line = Instant::now();
                eprintln!("{}: at position {position} of {head}, {rate:.0} events/s", self.name);
            }
            None => {}
        }
    }

    /// Says what the rebuild does once the events are applied (building indexes, say).
    fn stage(&self, what: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{} ({what})", self.name)),
            None => eprintln!("{}: {what}", self.name),
        }
    }

    fn done(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Rebuilds one read model beside the live one and swaps it in; returns what it did, in a line.
async fn replay_one<P: Projection>(
    pool: &Pool,
    projection: &P,
    feed: Option<Feed>,
    prune: Option<sitrep_projections::Retention>,
    bars: &MultiProgress,
) -> anyhow::Result<String> {
    let name = projection.name();
    let _only_one = rebuild::exclusive(pool, name).await?;
    rebuild::prepare(pool, projection).await.with_context(|| format!("preparing shadow tables for {name}"))?;
    let mut progress = Progress::new(name, bars);
    let started = Instant::now();
    let mut built = rebuild::build(pool, projection, i64::MAX, feed, |p, h, n| progress.update(p, h, n))
        .await
        .with_context(|| format!("rebuilding {name}"))?;
    if let Some(retention) = prune {
        // The live history is pruned; the rebuilt one must not bring old rows back. Before the
        // deferred indexes, which then leave the pruned rows out.
        rebuild::prune_shadow(pool, time::OffsetDateTime::now_utc(), retention).await?;
    }
    if !projection.deferred_indexes().is_empty() {
        progress.stage("indexing");
        rebuild::index(pool, projection).await.with_context(|| format!("indexing the rebuilt {name}"))?;
        // Catch up with what came in meanwhile, so that the swap, which holds up the live
        // runner, has only the last few events to apply.
        let more = rebuild::build(pool, projection, i64::MAX, None, |_, _, _| {}).await?;
        built.applied += more.applied;
    }
    let position = rebuild::swap(pool, projection).await.with_context(|| format!("swapping in {name}"))?;
    let secs = started.elapsed().as_secs_f64();
    progress.done();
    Ok(format!(
        "{name}: rebuilt from {} events in {secs:.1} s ({:.0} events/s) and swapped in at position {position}",
        built.applied,
        built.applied as f64 / secs.max(0.001)
    ))
}

/// Runs the chosen read models' rebuilds side by side, each as its own task (on its own
/// connections, so both Postgres and sitrep work on them in parallel); returns their results in
/// the order given, or the first error once all have ended.
async fn side_by_side<T: Send + 'static>(
    which: Which,
    models: Vec<(Which, BoxFuture<'static, anyhow::Result<T>>)>,
) -> anyhow::Result<Vec<T>> {
    let tasks: Vec<_> = models.into_iter().filter(|(w, _)| which.includes(*w)).map(|(_, f)| tokio::spawn(f)).collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.context("a rebuild stopped unexpectedly")?);
    }
    results.into_iter().collect()
}

/// One read of the log, up to `until`, shared by the chosen rebuilds of the read models that
/// apply every event, latest status and history (alerts and outages read only their own
/// events): their feeds, in that order.
async fn shared_read(
    pool: &Pool,
    which: Which,
    history: &History,
    until: i64,
    archive: Option<&Path>,
) -> anyhow::Result<(Option<Feed>, Option<Feed>)> {
    let wanted = [which.includes(Which::LatestStatus), which.includes(Which::History)];
    let readers = wanted.iter().filter(|w| **w).count();
    if readers == 0 {
        return Ok((None, None));
    }
    let metadata =
        if LatestStatus.reads_metadata() || history.reads_metadata() { Metadata::Include } else { Metadata::Skip };
    let archive = open_archive(pool, archive).await?;
    let mut feeds = feed::share(pool, metadata, until, readers, archive).await?.into_iter();
    let latest = if wanted[0] { feeds.next() } else { None };
    Ok((latest, feeds.next()))
}

/// The archive that replay and verify read before the table: `dir`, else the folder
/// `sitrep archive` recorded; `None` when nothing was ever archived. Fails, saying what to do,
/// when events were archived and the files cannot be read or end short of what was archived.
async fn open_archive(pool: &Pool, dir: Option<&Path>) -> anyhow::Result<Option<Archive>> {
    let archived = crate::archive::archived_through(pool).await?;
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None if archived == 0 => return Ok(None),
        None => crate::archive::recorded_dir(pool).await?.unwrap_or_default(),
    };
    let moved = || {
        format!(
            "events up to position {archived} are archived in {}; pass --archive DIR with the folder that holds the files now",
            dir.display()
        )
    };
    let archive = Archive::open(&dir).with_context(moved)?;
    // Every file `sitrep archive` recorded must be there, as it was written.
    let found: std::collections::HashMap<String, String> =
        sitrep_infra::archive::manifests(&dir).with_context(moved)?.into_iter().map(|m| (m.file, m.sha256)).collect();
    let client = pool.get().await.context("connecting to Postgres")?;
    let missing: Vec<String> = client
        .query("SELECT file, sha256 FROM archive_files ORDER BY first_position", &[])
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|(file, sha)| found.get(file) != Some(sha))
        .map(|(file, _)| file)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "{} of the archived files are not in {} as they were written: {}; pass --archive DIR with the folder that holds them",
        missing.len(),
        dir.display(),
        missing.join(", ")
    );
    Ok(Some(archive))
}

/// `sitrep replay`: rebuilds the chosen read models side by side while the live ones keep
/// serving, saying what it did on `out`. Archived events are read from the folder `sitrep
/// archive` recorded.
pub async fn replay(settings: &Settings, which: Which, out: &mut dyn Write) -> anyhow::Result<()> {
    replay_with(settings, which, None, out).await
}

/// [`replay`], reading archived events from `archive` (a folder of `sitrep archive`'s files).
pub async fn replay_with(
    settings: &Settings,
    which: Which,
    archive: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let pool = pool(settings).await?;
    let _no_archive_meanwhile = crate::archive::hold_off(&pool).await?;
    let bars = MultiProgress::new();
    let history = History { default_ttl_seconds: settings.default_ttl_seconds };
    let retention = app::retention(settings);
    let (f1, f2) = shared_read(&pool, which, &history, i64::MAX, archive).await?;
    let (p1, p2, p3, p4) = (pool.clone(), pool.clone(), pool.clone(), pool);
    let (b1, b2, b3, b4) = (bars.clone(), bars.clone(), bars.clone(), bars);
    let lines = side_by_side(
        which,
        vec![
            (Which::LatestStatus, async move { replay_one(&p1, &LatestStatus, f1, None, &b1).await }.boxed()),
            (Which::History, async move { replay_one(&p2, &history, f2, Some(retention), &b2).await }.boxed()),
            (Which::Alerts, async move { replay_one(&p3, &Alerts, None, None, &b3).await }.boxed()),
            (Which::Outages, async move { replay_one(&p4, &Outages, None, None, &b4).await }.boxed()),
        ],
    )
    .await?;
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Rebuilds one read model beside the live one, compares, and throws the rebuild away; returns
/// the differences and what it found, in lines.
async fn verify_one<P: Projection>(
    pool: &Pool,
    projection: &P,
    feed: Option<Feed>,
    retention: Option<sitrep_projections::Retention>,
    bars: &MultiProgress,
) -> anyhow::Result<(Vec<Difference>, Vec<String>)> {
    let name = projection.name();
    let _only_one = rebuild::exclusive(pool, name).await?;
    rebuild::prepare(pool, projection).await?;
    let mut progress = Progress::new(name, bars);
    let result = async {
        // Only up to where the live one stands now: the comparison brings the rebuild the rest
        // of the way, to wherever the live one is then.
        let live = rebuild::live_position(pool, name).await?;
        rebuild::build(pool, projection, live, feed, |p, h, n| progress.update(p, h, n)).await?;
        rebuild::compare(pool, projection, retention).await
    }
    .await;
    rebuild::discard(pool, projection).await?;
    progress.done();
    let (differences, position) = result.with_context(|| format!("verifying {name}"))?;
    let mut lines = Vec::new();
    if differences.is_empty() {
        lines.push(format!("{name}: identical to a rebuild from the log (at position {position})"));
    } else {
        lines.push(format!("{name}: DIFFERS from a rebuild from the log (at position {position})"));
        for d in &differences {
            lines.push(format!(
                "  table {}: {} rows only in the live table, {} only in the rebuild",
                d.table, d.only_live, d.only_rebuilt
            ));
            lines.extend(d.live_examples.iter().map(|row| format!("    - live:    {row}")));
            lines.extend(d.rebuilt_examples.iter().map(|row| format!("    + rebuilt: {row}")));
        }
    }
    Ok((differences, lines))
}

/// `sitrep verify`: rebuilds the chosen read models side by side into shadow tables and compares
/// them with the live ones, writing what it found on `out`. Fails if any differ. Archived events
/// are read from the folder `sitrep archive` recorded.
pub async fn verify(settings: &Settings, which: Which, out: &mut dyn Write) -> anyhow::Result<()> {
    verify_with(settings, which, None, out).await
}

/// [`verify`], reading archived events from `archive` (a folder of `sitrep archive`'s files).
pub async fn verify_with(
    settings: &Settings,
    which: Which,
    archive: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let pool = pool(settings).await?;
    let _no_archive_meanwhile = crate::archive::hold_off(&pool).await?;
    let bars = MultiProgress::new();
    let history = History { default_ttl_seconds: settings.default_ttl_seconds };
    let retention = app::retention(settings);
    let models = [Which::LatestStatus, Which::History, Which::Alerts, Which::Outages];
    // The shared read stops where the first of the two live read models stands; each rebuild
    // goes on from the log to its own.
    let mut until = i64::MAX;
    for (model, name) in [(models[0], LatestStatus.name()), (models[1], history.name())] {
        if which.includes(model) {
            until = until.min(rebuild::live_position(&pool, name).await?);
        }
    }
    let (f1, f2) = shared_read(&pool, which, &history, until, archive).await?;
    let (p1, p2, p3, p4) = (pool.clone(), pool.clone(), pool.clone(), pool);
    let (b1, b2, b3, b4) = (bars.clone(), bars.clone(), bars.clone(), bars);
    let found = side_by_side(
        which,
        vec![
            (models[0], async move { verify_one(&p1, &LatestStatus, f1, None, &b1).await }.boxed()),
            (models[1], async move { verify_one(&p2, &history, f2, Some(retention), &b2).await }.boxed()),
            (models[2], async move { verify_one(&p3, &Alerts, None, None, &b3).await }.boxed()),
            (models[3], async move { verify_one(&p4, &Outages, None, None, &b4).await }.boxed()),
        ],
    )
    .await?;
    let chosen = models.iter().filter(|m| which.includes(**m));
    let mut differ = Vec::new();
    for (model, (differences, lines)) in chosen.zip(found) {
        for line in lines {
            writeln!(out, "{line}")?;
        }
        if !differences.is_empty() {
            differ.push(model.name());
        }
    }
    anyhow::ensure!(
        differ.is_empty(),
        "{} differ from a rebuild from the event log; `sitrep replay {}` rebuilds and swaps in",
        differ.join(", "),
        if differ.len() == 1 { differ[0].replace('_', "-") } else { "all".into() }
    );
    Ok(())
}
