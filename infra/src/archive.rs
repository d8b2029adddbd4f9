//! Archive files of old events, as `sitrep archive` writes them and replay and verify read them.
//!
//! A file holds a run of component events in position order, one JSON object a line, gzip
//! compressed (`events-<day>-<first>-<last>.jsonl.gz`; `zcat` reads it). Beside it,
//! `<file>.manifest.json` says what it holds: the count, the first and last position, the times,
//! its size and its SHA-256. A file and its manifest are written under a `.part` name, synced,
//! and renamed, so a file with a manifest is whole. Every read checks the file against its
//! manifest first and names the file when it does not match.

use crate::event_store::{Payload, StoredEvent};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use uuid::Uuid;

/// What a manifest's `format` says.
pub const FORMAT: &str = "sitrep-archive-v1";

/// What an archive file holds, written beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// The archive file's name, in the same folder.
    pub file: String,
    pub events: u64,
    pub first_position: i64,
    pub last_position: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub first_recorded_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_recorded_at: OffsetDateTime,
    /// The newest `observed_at` of the reports in it (time travel before it has no raw reports).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_observed_at: Option<OffsetDateTime>,
    /// The compressed file's size and SHA-256 (hex).
    pub bytes: u64,
    pub sha256: String,
}

/// One event as a line of an archive file.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    position: i64,
    event_id: Uuid,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: i64,
    event_type: &'a str,
    event_version: &'a str,
    #[serde(borrow)]
    payload: &'a RawValue,
    metadata: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    recorded_at: OffsetDateTime,
}

/// The name of the archive file for events from `first` to `last` recorded on `day`.
pub fn file_name(day: time::Date, first: i64, last: i64) -> String {
    format!("events-{day}-{first:012}-{last:012}.jsonl.gz")
}

fn manifest_path(dir: &Path, file: &str) -> PathBuf {
    dir.join(format!("{file}.manifest.json"))
}

fn part(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

/// Writes an archive file as events are handed to it; [`Writer::finish`] makes it whole.
pub struct Writer {
    dir: PathBuf,
    day: time::Date,
    out: flate2::write::GzEncoder<BufWriter<File>>,
    path: PathBuf,
    events: u64,
    first: Option<(i64, OffsetDateTime)>,
    last: Option<(i64, OffsetDateTime)>,
    last_observed_at: Option<OffsetDateTime>,
}

impl Writer {
    /// Starts a file in `dir` for events recorded on `day` (under a temporary name).
    pub fn create(dir: &Path, day: time::Date) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the archive folder {}", dir.display()))?;
        let path = dir.join(format!("events-{day}.jsonl.gz"));
        let file = File::create(part(&path)).with_context(|| format!("creating {}", part(&path).display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            day,
            out: flate2::write::GzEncoder::new(BufWriter::new(file), flate2::Compression::default()),
            path,
            events: 0,
            first: None,
            last: None,
            last_observed_at: None,
        })
    }

    /// The day the file is for.
    pub fn day(&self) -> time::Date {
        self.day
    }

    /// Adds an event (in position order).
    pub fn push(&mut self, e: &StoredEvent, observed_at: Option<OffsetDateTime>) -> anyhow::Result<()> {
        let payload: &RawValue = serde_json::from_str(e.payload.as_str())?;
        let line = Line {
            position: e.position,
            event_id: e.event_id,
            aggregate_type: &e.aggregate_type,
            aggregate_id: &e.aggregate_id,
            sequence: e.sequence,
            event_type: &e.event_type,
            event_version: &e.event_version,
            payload,
            metadata: e.metadata.clone(),
            recorded_at: e.recorded_at,
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        self.events += 1;
        self.first.get_or_insert((e.position, e.recorded_at));
        self.last = Some((e.position, e.recorded_at));
        self.last_observed_at = self.last_observed_at.max(observed_at);
        Ok(())
    }

    /// Closes the file, syncs it, names it after its positions and writes its manifest.
    /// Returns `None` (and removes the file) when no event was added.
    pub fn finish(self) -> anyhow::Result<Option<Manifest>> {
        let written = part(&self.path);
        let file = self.out.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let (Some(first), Some(last)) = (self.first, self.last) else {
            std::fs::remove_file(&written)?;
            return Ok(None);
        };
        let name = file_name(self.day, first.0, last.0);
        let (bytes, sha256) = digest(&written)?;
        std::fs::rename(&written, self.dir.join(&name))?;
        let manifest = Manifest {
            format: FORMAT.into(),
            file: name,
            events: self.events,
            first_position: first.0,
            last_position: last.0,
            first_recorded_at: first.1,
            last_recorded_at: last.1,
            last_observed_at: self.last_observed_at,
            bytes,
            sha256,
        };
        let path = manifest_path(&self.dir, &manifest.file);
        std::fs::write(part(&path), serde_json::to_vec_pretty(&manifest)?)?;
        File::open(part(&path))?.sync_all()?;
        std::fs::rename(part(&path), &path)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(Some(manifest))
    }
}

/// The size and SHA-256 (hex) of a file.
fn digest(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    let mut bytes = 0;
    loop {
        let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hash.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

/// Every manifest in `dir`, by first position. Fails, naming the file, on a manifest that does
/// not parse or on two files whose positions overlap. Leftovers of an interrupted write (`.part`
/// files) are not listed.
pub fn manifests(dir: &Path) -> anyhow::Result<Vec<Manifest>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading the archive folder {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !name.ends_with(".manifest.json") {
            continue;
        }
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let manifest: Manifest =
            serde_json::from_slice(&text).with_context(|| format!("{} is not an archive manifest", path.display()))?;
        anyhow::ensure!(
            manifest.format == FORMAT,
            "{}: format {:?}, expected {FORMAT:?}",
            path.display(),
            manifest.format
        );
        out.push(manifest);
    }
    out.sort_by_key(|m| m.first_position);
    for pair in out.windows(2) {
        anyhow::ensure!(
            pair[0].last_position < pair[1].first_position,
            "archive files {} and {} overlap (positions {}..{} and {}..{})",
            pair[0].file,
            pair[1].file,
            pair[0].first_position,
            pair[0].last_position,
            pair[1].first_position,
            pair[1].last_position
        );
    }
    Ok(out)
}

/// Reads the events of one archive file, in batches, after checking the whole file against its
/// manifest (size and SHA-256). A line that does not parse, a count or positions that differ from
/// the manifest's: each fails with the file's name.
pub struct Reader {
    path: PathBuf,
    manifest: Manifest,
    lines: std::io::Lines<BufReader<flate2::read::GzDecoder<File>>>,
    read: u64,
    last: i64,
}

impl Reader {
    pub fn open(dir: &Path, manifest: &Manifest) -> anyhow::Result<Self> {
        let path = dir.join(&manifest.file);
        let (bytes, sha256) = digest(&path)?;
        anyhow::ensure!(
            bytes == manifest.bytes && sha256 == manifest.sha256,
            "archive file {} does not match its manifest: {bytes} bytes with SHA-256 {sha256}, the manifest says {} bytes with {}",
            path.display(),
            manifest.bytes,
            manifest.sha256
        );
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let lines = BufReader::new(flate2::read::GzDecoder::new(file)).lines();
        Ok(Self { path, manifest: manifest.clone(), lines, read: 0, last: 0 })
    }

    /// Up to `n` more events; an empty batch at the end, once the count and last position were
    /// checked against the manifest.
    pub fn next_batch(&mut self, n: usize) -> anyhow::Result<Vec<StoredEvent>> {
        let mut out = Vec::with_capacity(n.min(10_000));
        let name = || self.path.display().to_string();
        while out.len() < n {
            let Some(line) = self.lines.next() else {
                anyhow::ensure!(
                    self.read == self.manifest.events && self.last == self.manifest.last_position,
                    "archive file {} holds {} events up to position {}, its manifest says {} up to {}",
                    name(),
                    self.read,
                    self.last,
                    self.manifest.events,
                    self.manifest.last_position
                );
                break;
            };
            let line = line.with_context(|| format!("reading archive file {}", name()))?;
            let l: Line<'_> = serde_json::from_str(&line)
                .with_context(|| format!("archive file {}, line {}", name(), self.read + 1))?;
            anyhow::ensure!(
                l.position > self.last
                    && l.position >= self.manifest.first_position
                    && l.position <= self.manifest.last_position,
                "archive file {}, line {}: position {} out of order or outside {}..{}",
                name(),
                self.read + 1,
                l.position,
                self.manifest.first_position,
                self.manifest.last_position
            );
            self.read += 1;
            self.last = l.position;
            out.push(StoredEvent {
                position: l.position,
                event_id: l.event_id,
                aggregate_type: l.aggregate_type.to_owned(),
                aggregate_id: l.aggregate_id.to_owned(),
                sequence: l.sequence,
                event_type: l.event_type.to_owned(),
                event_version: l.event_version.to_owned(),
                payload: Payload::from_json(l.payload.get().to_owned())?,
                metadata: l.metadata,
                recorded_at: l.recorded_at,
            });
        }
        Ok(out)
    }
}

/// Checks one file against its manifest and reads it through.
pub fn verify_one(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let mut reader = Reader::open(dir, manifest)?;
    while !reader.next_batch(10_000)?.is_empty() {}
    Ok(())
}

/// Removes a file and its manifest (one that was never recorded as archived).
pub fn remove(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(dir.join(&manifest.file));
    std::fs::remove_file(manifest_path(dir, &manifest.file))
        .with_context(|| format!("removing the manifest of {}", manifest.file))
}

/// Checks every file in `dir` against its manifest and reads it through. Returns each file's
/// name with what is wrong with it, if anything.
pub fn verify(dir: &Path) -> anyhow::Result<Vec<(Manifest, Option<String>)>> {
    let mut out = Vec::new();
    for m in manifests(dir)? {
        let checked = verify_one(dir, &m);
        out.push((m, checked.err().map(|e| format!("{e:#}"))));
    }
    Ok(out)
}

/// Every archived event, file after file, in position order: what replay and verify read
/// before the table.
pub struct Archive {
    dir: PathBuf,
    manifests: std::collections::VecDeque<Manifest>,
    current: Option<Reader>,
}

impl Archive {
    /// The archive in `dir` (its manifests; files are checked as they are reached).
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self { dir: dir.to_owned(), manifests: manifests(dir)?.into(), current: None })
    }

    /// The last position the archive holds (0 when empty).
    pub fn last_position(&self) -> i64 {
        self.manifests.back().map_or(0, |m| m.last_position)
    }

    /// Up to `n` more events, empty at the end of the last file. Blocking I/O: call it from a
    /// blocking thread.
    pub fn next_batch(&mut self, n: usize) -> anyhow::Result<Vec<StoredEvent>> {
        loop {
            if self.current.is_none() {
                let Some(m) = self.manifests.pop_front() else { return Ok(vec![]) };
                self.current = Some(Reader::open(&self.dir, &m)?);
            }
            let batch = self.current.as_mut().expect("opened above").next_batch(n)?;
            if !batch.is_empty() {
                return Ok(batch);
            }
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn event(position: i64) -> StoredEvent {
        StoredEvent {
            position,
            event_id: Uuid::from_u128(position as u128),
            aggregate_type: "component".into(),
            aggregate_id: "derecho:login/d1".into(),
            sequence: position,
            event_type: "StatusReported".into(),
            event_version: "1".into(),
            payload: Payload::from_json(format!(r#"{{"StatusReported":{{"n":{position},"m":"é \"q\""}}}}"#)).unwrap(),
            metadata: serde_json::json!({"msg_id": format!("m{position}")}),
            recorded_at: datetime!(2026-11-20 10:00 UTC) + time::Duration::seconds(position),
        }
    }

    fn write(dir: &Path, positions: &[i64]) -> Manifest {
        let mut w = Writer::create(dir, time::macros::date!(2026 - 11 - 20)).unwrap();
        for p in positions {
            w.push(&event(*p), Some(datetime!(2026-11-20 09:00 UTC))).unwrap();
        }
        w.finish().unwrap().unwrap()
    }

    #[test]
    fn events_written_to_a_file_read_back_equal_with_a_manifest_that_says_what_it_holds() {
        let dir = tempdir();
        let m = write(&dir, &[3, 5, 9]);
        assert_eq!((m.events, m.first_position, m.last_position), (3, 3, 9));
        assert_eq!(m.file, "events-2026-11-20-000000000003-000000000009.jsonl.gz");
        assert_eq!(manifests(&dir).unwrap(), vec![m.clone()]);
        let mut archive = Archive::open(&dir).unwrap();
        assert_eq!(archive.last_position(), 9);
        let mut got = Vec::new();
        loop {
            let batch = archive.next_batch(2).unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch);
        }
        assert_eq!(got, vec![event(3), event(5), event(9)]);
        assert!(verify(&dir).unwrap().iter().all(|(_, wrong)| wrong.is_none()));
    }

    #[test]
    fn a_corrupted_file_is_refused_by_name() {
        let dir = tempdir();
        let m = write(&dir, &[1, 2]);
        let path = dir.join(&m.file);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 9;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let found = verify(&dir).unwrap();
        let wrong = found[0].1.as_deref().expect("refused");
        assert!(wrong.contains(&m.file) && wrong.contains("does not match its manifest"), "{wrong}");
        let e = Archive::open(&dir).unwrap().next_batch(10).unwrap_err();
        assert!(format!("{e:#}").contains(&m.file), "{e:#}");
    }

    #[test]
    fn overlapping_files_and_an_empty_writer_are_refused_or_left_out() {
        let dir = tempdir();
        write(&dir, &[1, 5]);
        assert!(Writer::create(&dir, time::macros::date!(2026 - 11 - 21)).unwrap().finish().unwrap().is_none());
        write(&dir, &[4, 8]);
        let e = manifests(&dir).unwrap_err().to_string();
        assert!(e.contains("overlap"), "{e}");
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sitrep-archive-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
