//! `sitrep archive`: moves old component events out of Postgres into checksummed files that
//! replay and verify read back (`sitrep_infra::archive` has the file format).
//!
//! A run, under a session lock so two never overlap:
//! 1. finishes the deletes of files an interrupted run recorded;
//! 2. picks the cut: the last position recorded before `--before`, but no further than the
//!    read models that read component events (`latest_status`, `history`) and the alert
//!    evaluator have applied, whose state it first saves as a whole snapshot at its checkpoint;
//! 3. writes a snapshot of every component aggregate that has events up to the cut, at its
//!    newest sequence, so ingest and the forms never need an archived event (checked before
//!    anything is deleted);
//! 4. exports the component events after the last archived position and up to the cut, one
//!    file per UTC day they were recorded, each with its manifest; records each file in
//!    `archive_files`, then deletes its events in batches of [`DELETE_BATCH`], each its own
//!    short transaction, so ingest is never held up.
//!
//! Only component events (reports and status changes, nearly all of the log) are archived.
//! Outages, maintenance, alerts and the evaluator's records stay: they are few, and their
//! aggregates are loaded from the table. A file found on disk but not recorded (a run stopped
//! between writing and recording it) is checked against its manifest and taken as written, so
//! no file is ever written twice.

use anyhow::Context;
use deadpool_postgres::Pool;
use sitrep_domain::component::AGGREGATE_TYPE;
use sitrep_infra::archive::{self, Manifest};
use sitrep_infra::event_store::{self, Metadata};
use sitrep_infra::{db, Settings};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Events deleted per transaction.
pub const DELETE_BATCH: i64 = 5_000;

/// Events read from the table per query while exporting.
const READ_BATCH: i64 = 10_000;

/// Components whose snapshots are written per transaction.
const SNAPSHOT_BATCH: usize = 1_000;

/// `sitrep archive`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct ArchiveArgs {
    /// Archive the component events recorded before this instant: a date (`2026-11-01`, its
    /// midnight UTC) or an RFC 3339 time.
    #[arg(long, value_parser = parse_instant, required_unless_present = "verify")]
    pub before: Option<OffsetDateTime>,
    /// The folder the archive files go to (created if missing). Keep every run's files in one
    /// folder: replay and verify read them all from there.
    #[arg(long, value_name = "DIR", required_unless_present = "verify")]
    pub to: Option<PathBuf>,
    /// Check every file in DIR against its manifest (size, SHA-256, count, positions), write
    /// nothing, and exit non-zero naming any file that does not match.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["before", "to"])]
    pub verify: Option<PathBuf>,
}

/// A date (midnight UTC) or an RFC 3339 instant.
pub fn parse_instant(raw: &str) -> Result<OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(t);
    }
    time::Date::parse(raw, time::macros::format_description!("[year]-[month]-[day]"))
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| format!("{raw:?} is neither a date (2026-11-01) nor an RFC 3339 time (2026-11-01T00:00:00Z)"))
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Archived {
    pub files: Vec<Manifest>,
    /// Files found written by an interrupted run and taken as they were.
    pub adopted: usize,
    pub deleted: u64,
    /// The last position archived (0 if nothing ever was).
    pub through: i64,
}

/// Runs `sitrep archive` (or `--verify`), saying what it did on `out`.
pub async fn command(settings: &Settings, args: &ArchiveArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(dir) = &args.verify {
        return verify_files(dir, out);
    }
    let (Some(before), Some(dir)) = (args.before, args.to.as_ref()) else {
        anyhow::bail!("sitrep archive needs --before and --to (or --verify DIR)");
    };
    let pg = db::parse_url(settings.database_url.expose())?;
    db::migrate(&pg).await?;
    let pool = db::pool(&pg, 4)?;
    db::check(&pool).await?;
    let done = run(&pool, before, dir).await?;
    let events: u64 = done.files.iter().map(|m| m.events).sum();
    let bytes: u64 = done.files.iter().map(|m| m.bytes).sum();
    for m in &done.files {
        writeln!(out, "{}: {} events, positions {} to {}", m.file, m.events, m.first_position, m.last_position)?;
    }
    if done.files.is_empty() {
        writeln!(out, "nothing to archive before {before}: the log's component events after position {} are newer, or not yet applied by every read model", done.through)?;
    } else {
        writeln!(
            out,
            "archived {events} events in {} files ({:.1} MiB) to {}; deleted {} from the events table; the archive holds positions up to {}",
            done.files.len(),
            bytes as f64 / (1024.0 * 1024.0),
            dir.display(),
            done.deleted,
            done.through
        )?;
        if done.adopted > 0 {
            writeln!(out, "{} of the files were written by an interrupted run and taken as they were", done.adopted)?;
        }
    }
    Ok(())
}

/// `sitrep archive --verify DIR`.
fn verify_files(dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let checked = archive::verify(dir)?;
    let mut wrong = Vec::new();
    for (m, problem) in &checked {
        match problem {
            None => writeln!(
                out,
                "{}: OK ({} events, positions {} to {})",
                m.file, m.events, m.first_position, m.last_position
            )?,
            Some(p) => {
                writeln!(out, "{}: DOES NOT MATCH: {p}", m.file)?;
                wrong.push(m.file.clone());
            }
        }
    }
    anyhow::ensure!(!checked.is_empty(), "{} holds no archive manifests", dir.display());
    anyhow::ensure!(
        wrong.is_empty(),
        "{} of {} archive files do not match their manifests: {}",
        wrong.len(),
        checked.len(),
        wrong.join(", ")
    );
    Ok(())
}

/// Takes the archive's lock alone (held while the returned connection lives): no other archive,
/// and no replay or verify, which would read the table while events leave it.
async fn exclusive(pool: &Pool) -> anyhow::Result<deadpool_postgres::ClientWrapper> {
    let client = deadpool_postgres::Object::take(pool.get().await.context("connecting to Postgres")?);
    let got: bool = client.query_one("SELECT pg_try_advisory_lock(hashtext('sitrep archive'))", &[]).await?.get(0);
    anyhow::ensure!(got, "another sitrep archive, or a sitrep replay or verify, is running; wait for it to finish");
    Ok(client)
}

/// Takes the archive's lock shared, for a replay or verify (held while the returned connection
/// lives): rebuilds run side by side, but not while an archive moves events out of the table.
pub async fn hold_off(pool: &Pool) -> anyhow::Result<deadpool_postgres::ClientWrapper> {
    let client = deadpool_postgres::Object::take(pool.get().await.context("connecting to Postgres")?);
    let got: bool =
        client.query_one("SELECT pg_try_advisory_lock_shared(hashtext('sitrep archive'))", &[]).await?.get(0);
    anyhow::ensure!(got, "sitrep archive is running; start this again once it has finished");
    Ok(client)
}

/// Archives the component events recorded before `before` into `dir` (all steps, see the
/// module's documentation).
pub async fn run(pool: &Pool, before: OffsetDateTime, dir: &Path) -> anyhow::Result<Archived> {
    let _only_one = exclusive(pool).await?;
    let mut done = Archived { deleted: finish_deletes(pool).await?, ..Default::default() };
    let start = archived_through(pool).await?;
    let cut = cut(pool, before).await?;
    done.through = start;
    if cut <= start {
        return Ok(done);
    }
    snapshot_components(pool, start, cut).await?;
    let mut unrecorded = unrecorded_files(dir, start)?;
    let mut after = start;
    while after < cut {
        // A file an interrupted run wrote but did not record is taken as written when it starts
        // where this run goes on, ends within the cut and matches its manifest. Any other is
        // removed (its events are all still in the table) and written again.
        let next = next_position(pool, after, cut).await?;
        let found = unrecorded.iter().position(|m| Some(m.first_position) == next && m.last_position <= cut);
        let adopted = match found.map(|i| unrecorded.remove(i)) {
            Some(m) => match archive::verify_one(dir, &m) {
                Ok(()) => Some(m),
                Err(e) => {
                    tracing::warn!(file = m.file, error = format!("{e:#}"), "writing an unrecorded archive file again");
                    archive::remove(dir, &m)?;
                    None
                }
            },
            None => None,
        };
        for m in unrecorded.iter().filter(|m| Some(m.first_position) == next) {
            tracing::warn!(file = m.file, "an unrecorded archive file reaches past this run's cut; writing it again");
            archive::remove(dir, m)?;
        }
        unrecorded.retain(|m| Some(m.first_position) != next);
        let (manifest, adopted) = match adopted {
            Some(m) => (Some(m), true),
            None => (export_next(pool, dir, after, cut).await?, false),
        };
        let Some(manifest) = manifest else { break };
        record(pool, dir, &manifest).await?;
        done.deleted += delete_range(pool, manifest.first_position, manifest.last_position).await?;
        after = manifest.last_position;
        done.through = after;
        done.adopted += usize::from(adopted);
        done.files.push(manifest);
    }
    Ok(done)
}

/// The last position archived so far (0 if none).
pub async fn archived_through(pool: &Pool) -> anyhow::Result<i64> {
    let client = pool.get().await.context("connecting to Postgres")?;
    Ok(client.query_one("SELECT coalesce(max(last_position), 0) FROM archive_files", &[]).await?.get(0))
}

/// The folder the archive files were written to (the newest run's), if any were.
pub async fn recorded_dir(pool: &Pool) -> anyhow::Result<Option<PathBuf>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client.query_opt("SELECT dir FROM archive_files ORDER BY last_position DESC LIMIT 1", &[]).await?;
    Ok(row.map(|r| PathBuf::from(r.get::<_, String>(0))))
}

/// The position to archive up to: the last one recorded before `before`, but not past what
/// the read models that read component events have applied, nor past the alert evaluator's
/// checkpoint (saved as a whole snapshot first, so that it never needs an archived event).
pub async fn cut(pool: &Pool, before: OffsetDateTime) -> anyhow::Result<i64> {
    let evaluator = sitrep_projections::alerts::snapshot_at_checkpoint(pool).await?;
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_one(
            "SELECT (SELECT coalesce(min(position), 0) FROM projection_checkpoints WHERE name = ANY($1)),
                    (SELECT count(*) FROM projection_checkpoints WHERE name = ANY($1))",
            &[&&["latest_status", "history"][..]],
        )
        .await?;
    let (applied, models): (i64, i64) = (row.get(0), row.get(1));
    // A read model that never ran has applied nothing.
    let applied = if models < 2 { 0 } else { applied };
    Ok(last_recorded_before(&client, before).await?.min(applied).min(evaluator))
}

/// The last position recorded before `before` (0 if none), by bisection on the positions:
/// `recorded_at` grows with the position (one writer at a time), and has no index of its own.
async fn last_recorded_before(client: &deadpool_postgres::Client, before: OffsetDateTime) -> anyhow::Result<i64> {
    // The first event at or after `p`: its position and when it was recorded.
    let at = |p: i64| async move {
        let row = client
            .query_opt("SELECT position, recorded_at FROM events WHERE position >= $1 ORDER BY position LIMIT 1", &[&p])
            .await?;
        anyhow::Ok(row.map(|r| (r.get::<_, i64>(0), r.get::<_, OffsetDateTime>(1))))
    };
    let Some((first, recorded)) = at(0).await? else { return Ok(0) };
    if recorded >= before {
        return Ok(0);
    }
    let head = event_store::head(&***client).await?;
    // Invariant: the event at or after `lo` was recorded before `before`.
    let (mut lo, mut hi) = (first, head);
    while lo < hi {
        let mid = lo + (hi - lo + 1) / 2;
        match at(mid).await? {
            Some((_, t)) if t < before => lo = mid,
            _ => hi = mid - 1,
        }
    }
    Ok(at(lo).await?.map_or(0, |(p, _)| p))
}

/// The first component event after `after` and up to `cut`.
async fn next_position(pool: &Pool, after: i64, cut: i64) -> anyhow::Result<Option<i64>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_one(
            "SELECT min(position) FROM events WHERE aggregate_type = $1 AND position > $2 AND position <= $3",
            &[&AGGREGATE_TYPE, &after, &cut],
        )
        .await?;
    Ok(row.get(0))
}

/// Writes, at each component's newest sequence, the snapshot of every component aggregate with
/// events after `start` and up to `cut`, then checks that each snapshot includes every event of
/// its component up to the cut.
async fn snapshot_components(pool: &Pool, start: i64, cut: i64) -> anyhow::Result<()> {
    let mut client = pool.get().await.context("connecting to Postgres")?;
    let ids: Vec<String> = client
        .query(
            "SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = $1 AND position > $2 AND position <= $3",
            &[&AGGREGATE_TYPE, &start, &cut],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for chunk in ids.chunks(SNAPSHOT_BATCH) {
        let tx = client.transaction().await?;
        // The writer lock: no snapshot or event of these components changes while they load
        // (a batch of ingest waits a moment).
        event_store::lock_writer(&*tx).await?;
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let mut states = crate::ingest::components::Components::default();
        states.load(&*tx, &refs).await?;
        event_store::save_snapshots(&*tx, AGGREGATE_TYPE, &states.behind()?).await?;
        tx.commit().await?;
    }
    let missing: i64 = client
        .query_one(
            "SELECT count(*) FROM (
                SELECT aggregate_id, max(sequence) AS last FROM events
                WHERE aggregate_type = $1 AND position > $2 AND position <= $3 GROUP BY aggregate_id) a
             LEFT JOIN snapshots s ON s.aggregate_type = $1 AND s.aggregate_id = a.aggregate_id
             WHERE coalesce(s.last_sequence, 0) < a.last",
            &[&AGGREGATE_TYPE, &start, &cut],
        )
        .await?
        .get(0);
    anyhow::ensure!(
        missing == 0,
        "{missing} components have no snapshot that includes their archived events; nothing was archived"
    );
    Ok(())
}

/// The files in `dir` past what is recorded as archived (`start`): written by a run that
/// stopped before recording them. None if the folder does not exist yet.
fn unrecorded_files(dir: &Path, start: i64) -> anyhow::Result<Vec<Manifest>> {
    if !dir.exists() {
        return Ok(vec![]);
    }
    Ok(archive::manifests(dir)?.into_iter().filter(|m| m.first_position > start).collect())
}

/// Writes the next file: the component events after `after`, up to `cut`, recorded on the same
/// UTC day as the first of them. `None` when there are none.
pub async fn export_next(pool: &Pool, dir: &Path, after: i64, cut: i64) -> anyhow::Result<Option<Manifest>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let mut writer: Option<archive::Writer> = None;
    let mut position = after;
    'read: loop {
        let events =
            event_store::read_types_between(&**client, &[AGGREGATE_TYPE], position, cut, READ_BATCH, Metadata::Include)
                .await?;
        if events.is_empty() {
            break;
        }
        let observed = observed_at(&client, &events).await?;
        for e in &events {
            let day = e.recorded_at.to_offset(time::UtcOffset::UTC).date();
            let w = match &mut writer {
                Some(w) if w.day() != day => break 'read,
                Some(w) => w,
                None => writer.insert(archive::Writer::create(dir, day)?),
            };
            w.push(e, observed.get(&e.position).copied())?;
            position = e.position;
        }
    }
    let Some(writer) = writer else { return Ok(None) };
    tokio::task::spawn_blocking(move || writer.finish()).await.context("finishing an archive file")?
}

/// The `observed_at` column of these events' reports.
async fn observed_at(
    client: &deadpool_postgres::Client,
    events: &[event_store::StoredEvent],
) -> anyhow::Result<std::collections::HashMap<i64, OffsetDateTime>> {
    let (first, last) = (events[0].position, events[events.len() - 1].position);
    let rows = client
        .query(
            "SELECT position, observed_at FROM events WHERE position BETWEEN $1 AND $2 AND observed_at IS NOT NULL",
            &[&first, &last],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Records a file in `archive_files` (before its events are deleted).
pub async fn record(pool: &Pool, dir: &Path, m: &Manifest) -> anyhow::Result<()> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    client
        .execute(
            "INSERT INTO archive_files (file, dir, first_position, last_position, events, sha256, last_observed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (file) DO NOTHING",
            &[
                &m.file,
                &dir.to_string_lossy().as_ref(),
                &m.first_position,
                &m.last_position,
                &(m.events as i64),
                &m.sha256,
                &m.last_observed_at,
            ],
        )
        .await?;
    Ok(())
}

/// Deletes the component events in `[first, last]`, [`DELETE_BATCH`] per transaction.
pub async fn delete_range(pool: &Pool, first: i64, last: i64) -> anyhow::Result<u64> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let mut deleted = 0;
    loop {
        let n = client
            .execute(
                "DELETE FROM events WHERE position IN (
                    SELECT position FROM events
                    WHERE aggregate_type = $1 AND position BETWEEN $2 AND $3 ORDER BY position LIMIT $4)",
                &[&AGGREGATE_TYPE, &first, &last, &DELETE_BATCH],
            )
            .await?;
        deleted += n;
        if n < DELETE_BATCH as u64 {
            return Ok(deleted);
        }
    }
}

/// Finishes the deletes of every recorded file (a run may have stopped part-way).
async fn finish_deletes(pool: &Pool) -> anyhow::Result<u64> {
    let ranges: Vec<(i64, i64)> = {
        let client = pool.get().await.context("connecting to Postgres")?;
        client
            .query(
                "SELECT f.first_position, f.last_position FROM archive_files f
                 WHERE EXISTS (SELECT 1 FROM events e WHERE e.aggregate_type = $1
                               AND e.position BETWEEN f.first_position AND f.last_position)",
                &[&AGGREGATE_TYPE],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let mut deleted = 0;
    for (first, last) in ranges {
        deleted += delete_range(pool, first, last).await?;
    }
    Ok(deleted)
}
