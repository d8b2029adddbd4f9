//! `sitrep archive`: old component events moved to checksummed files, the read models and the
//! command side carrying on as if nothing was archived, and replay and verify reading the files.

use crate::helpers::{eventually, spawn_app_with_rules, TestApp};
use crate::history::table;
use crate::replay::publish_round;
use sitrep_services::archive::{self, ArchiveArgs};
use sitrep_services::replay::{replay, verify, Which};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

const RULES: &str = r#"
[[rule]]
name = "failed"
kind = "status"
status = ["failed"]
severity = "critical"
"#;

/// Waits until every read model that reads component events, and the alert evaluator, has
/// applied the whole log.
async fn caught_up(app: &TestApp) {
    eventually("the read models and the evaluator to catch up", || async {
        let head = app.scalar("SELECT coalesce(max(position), 0) FROM events").await;
        let names = "('latest_status', 'history', 'alerts', 'outages', 'alert_evaluator')";
        let at = app
            .scalar(&format!(
                "SELECT count(*) FROM projection_checkpoints WHERE name IN {names} AND position >= {head}"
            ))
            .await;
        if at == 5 {
            Ok(())
        } else {
            Err(format!("{at} of 5 at the head {head}"))
        }
    })
    .await;
}

/// Rounds of reports, then the instant after them (by the database's clock): everything
/// recorded so far is before it.
async fn rounds_then_cut(app: &TestApp, rounds: std::ops::Range<usize>) -> OffsetDateTime {
    let reports = "SELECT count(*) FROM events WHERE event_type = 'StatusReported'";
    let want = app.scalar(reports).await + 5 * rounds.len() as i64;
    for round in rounds {
        publish_round(app, round).await;
    }
    eventually("the rounds stored", || async {
        let n = app.scalar(reports).await;
        (n == want).then_some(()).ok_or(format!("{n} of {want} reports"))
    })
    .await;
    caught_up(app).await;
    let client = app.pool.get().await.unwrap();
    let cut: OffsetDateTime = client.query_one("SELECT clock_timestamp()", &[]).await.unwrap().get(0);
    // Later commits get a later recorded_at.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    cut
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("sitrep-archive-{}", uuid::Uuid::new_v4().simple()))
}

async fn read_models(app: &TestApp) -> Vec<Vec<String>> {
    vec![
        table(app, "latest_status", "system, component").await,
        table(app, "status_segments", "system, component, started_at").await,
        table(app, "metric_rollups", "system, component, resolution, metric, bucket").await,
        table(app, "status_rollups", "system, component, resolution, bucket, status").await,
    ]
}

async fn run_verify(app: &TestApp) -> (anyhow::Result<()>, String) {
    let mut out = Vec::new();
    let result = verify(&app.settings, Which::All, &mut out).await;
    (result, String::from_utf8(out).unwrap())
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn archived_events_leave_the_table_and_replay_from_archive_plus_table_equals_the_live_read_models() {
    // Arrange: reports (some failed, so alerts are raised), then the cut, then more reports.
    let app = spawn_app_with_rules(RULES).await;
    let before = rounds_then_cut(&app, 0..8).await;
    let old_components = app.scalar("SELECT count(*) FROM events WHERE aggregate_type = 'component'").await;
    let alert_events = app.scalar("SELECT count(*) FROM events WHERE aggregate_type = 'alert'").await;
    assert!(alert_events > 0, "the rounds raise alerts");
    let in_the_past = {
        let client = app.pool.get().await.unwrap();
        let row = client.query_one("SELECT max(observed_at) FROM events", &[]).await.unwrap();
        row.get::<_, OffsetDateTime>(0)
    };
    rounds_then_cut(&app, 8..10).await;
    let dir = temp_dir();
    let snapshots = "SELECT count(*) FROM snapshots WHERE aggregate_type = 'component'";
    assert_eq!(app.scalar(snapshots).await, 0, "ingest snapshots a component every 100 events");

    // Act
    let done = archive::run(&app.pool, before, &dir).await.expect("archive");

    // Assert: one file (all recorded today) with its manifest, holding every old component event,
    // which left the table; everything else stayed.
    assert_eq!(done.files.len(), 1, "{done:?}");
    let m = &done.files[0];
    assert_eq!(m.events as i64, old_components);
    assert_eq!(done.deleted as i64, old_components);
    assert_eq!(files(&dir), [m.file.clone(), format!("{}.manifest.json", m.file)]);
    let through = done.through;
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) FROM events WHERE aggregate_type = 'component' AND position <= {through}"
        ))
        .await,
        0
    );
    let alerts_now = app.scalar("SELECT count(*) FROM events WHERE aggregate_type = 'alert'").await;
    assert!(alerts_now >= alert_events, "alert events stay: {alerts_now} of {alert_events}");
    assert_eq!(app.scalar("SELECT count(*) FROM archive_files").await, 1);
    let mut out = Vec::new();
    let args = ArchiveArgs { before: None, to: None, verify: Some(dir.clone()) };
    archive::command(&app.settings, &args, &mut out).await.expect("the files match their manifests");
    assert!(String::from_utf8(out).unwrap().contains(": OK ("));

    // A second run with the same cut-off has nothing to do, and writes nothing.
    let again = archive::run(&app.pool, before, &dir).await.unwrap();
    assert!(again.files.is_empty() && again.deleted == 0, "{again:?}");

    // verify reads the archive, then the table: the live read models are what the whole log gives.
    let (ok, said) = run_verify(&app).await;
    assert!(ok.is_ok(), "{said}");
    assert!(said.contains("latest_status: identical") && said.contains("history: identical"), "{said}");

    // replay from archive plus table gives the same tables.
    let live = read_models(&app).await;
    let mut out = Vec::new();
    replay(&app.settings, Which::All, &mut out).await.expect("replay");
    assert_eq!(read_models(&app).await, live, "{}", String::from_utf8(out).unwrap());

    // What the command side needs to carry on: each archived component's snapshot, at least as
    // new as its archived events.
    assert_eq!(app.scalar(snapshots).await, 5);
    let behind = "SELECT count(*) FROM snapshots s WHERE s.aggregate_type = 'component' AND s.last_sequence <
                    (SELECT max(sequence) FROM events e WHERE e.aggregate_id = s.aggregate_id)";
    assert_eq!(app.scalar(behind).await, 0);

    // Ingest goes on, restarted too: new reports of archived components continue their sequences.
    let mut app = app;
    app.stop_ingest().await;
    app.start_ingest().await;
    let sequence = "SELECT max(sequence) FROM events WHERE aggregate_id = 'derecho:login/derecho0'";
    let last = app.scalar(sequence).await;
    publish_round(&app, 10).await;
    eventually("the next report stored", || async {
        let now = app.scalar(sequence).await;
        (now > last).then_some(()).ok_or(format!("sequence {now}"))
    })
    .await;
    assert_eq!(app.scalar("SELECT count(*) FROM quarantine").await, 0, "no conflict");
    caught_up(&app).await;
    let (ok, said) = run_verify(&app).await;
    assert!(ok.is_ok(), "after more reports: {said}");

    // Time travel before the cut-off: status from segments, and the page says why.
    let at = in_the_past.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (status, page) = app.get(&format!("/systems/derecho?at={at}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("login/derecho0") && page.contains("are archived"), "{page}");
    let (_, component) = app.get(&format!("/systems/derecho/components/login/derecho0?at={at}")).await;
    assert!(component.contains("are archived"), "{component}");
    // A chart that reaches into archived time reads rollups, not the log (which lacks it).
    let (status, history) = app.get_json("/api/v1/history/derecho/login/derecho0").await;
    assert_eq!((status, history["resolution"].as_str()), (200, Some("hour")), "{history}");
    assert!(!history["series"].as_array().unwrap().is_empty(), "{history}");
    let (status, event) = app.get(&format!("/events/{}", m.first_position)).await;
    assert_eq!(status, 404);
    assert!(event.contains(&m.file), "an archived event says where it is: {event}");
    let (status, event) = app.get_json(&format!("/api/v1/events/{}", m.first_position)).await;
    assert_eq!(status, 404);
    assert!(event.to_string().contains(&m.file), "the API too: {event}");

    // An archive never runs beside a replay or verify (which would read a table it empties).
    let replaying = archive::hold_off(&app.pool).await.unwrap();
    let e = archive::run(&app.pool, before, &dir).await.unwrap_err();
    assert!(e.to_string().contains("a sitrep replay or verify, is running"), "{e}");
    drop(replaying);

    // The files are needed: a replay without them says so.
    std::fs::remove_dir_all(&dir).unwrap();
    let e = replay(&app.settings, Which::History, &mut Vec::new()).await.unwrap_err();
    assert!(format!("{e:#}").contains("--archive"), "{e:#}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_corrupted_archive_file_is_refused_by_verify_and_by_replay_naming_the_file() {
    let app = spawn_app_with_rules(RULES).await;
    let before = rounds_then_cut(&app, 0..4).await;
    let dir = temp_dir();
    let done = archive::run(&app.pool, before, &dir).await.unwrap();
    let file = dir.join(&done.files[0].file);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();

    let args = ArchiveArgs { before: None, to: None, verify: Some(dir.clone()) };
    let mut out = Vec::new();
    let e = archive::command(&app.settings, &args, &mut out).await.unwrap_err();
    let said = String::from_utf8(out).unwrap();
    assert!(said.contains("DOES NOT MATCH") && said.contains(&done.files[0].file), "{said}");
    assert!(e.to_string().contains(&done.files[0].file), "{e}");
    let e = replay(&app.settings, Which::LatestStatus, &mut Vec::new()).await.unwrap_err();
    assert!(format!("{e:#}").contains(&done.files[0].file), "{e:#}");
    let _ = std::fs::remove_dir_all(&dir);
    app.cleanup().await;
}

#[tokio::test]
async fn an_interrupted_archive_resumes_without_writing_a_file_twice_or_losing_an_event() {
    let app = spawn_app_with_rules(RULES).await;
    let before = rounds_then_cut(&app, 0..6).await;
    let components = app.scalar("SELECT count(*) FROM events WHERE aggregate_type = 'component'").await;
    let dir = temp_dir();

    // A run that wrote its file and stopped before recording it.
    let cut = archive::cut(&app.pool, before).await.unwrap();
    let written = archive::export_next(&app.pool, &dir, 0, cut).await.unwrap().expect("a file");
    let modified = std::fs::metadata(dir.join(&written.file)).unwrap().modified().unwrap();
    let resumed = archive::run(&app.pool, before, &dir).await.unwrap();
    assert_eq!((resumed.adopted, resumed.files.len()), (1, 1), "{resumed:?}");
    assert_eq!(resumed.files[0], written, "the file as it was written");
    assert_eq!(std::fs::metadata(dir.join(&written.file)).unwrap().modified().unwrap(), modified, "not written again");
    assert_eq!(resumed.deleted as i64, components);

    // A run that recorded its file and stopped part-way through deleting.
    let before = rounds_then_cut(&app, 6..9).await;
    let cut = archive::cut(&app.pool, before).await.unwrap();
    let second = archive::export_next(&app.pool, &dir, resumed.through, cut).await.unwrap().expect("a file");
    archive::record(&app.pool, &dir, &second).await.unwrap();
    let client = app.pool.get().await.unwrap();
    let some = client
        .execute(
            "DELETE FROM events WHERE position IN (SELECT position FROM events WHERE aggregate_type = 'component'
               AND position BETWEEN $1 AND $2 ORDER BY position LIMIT 7)",
            &[&second.first_position, &second.last_position],
        )
        .await
        .unwrap();
    assert_eq!(some, 7);
    let finished = archive::run(&app.pool, before, &dir).await.unwrap();
    assert!(finished.files.is_empty(), "nothing written again: {finished:?}");
    assert_eq!(finished.deleted + 7, second.events);
    let left = format!(
        "SELECT count(*) FROM events WHERE aggregate_type = 'component' AND position <= {}",
        second.last_position
    );
    assert_eq!(app.scalar(&left).await, 0);
    assert_eq!(files(&dir).len(), 4, "two files, two manifests");
    let (ok, said) = run_verify(&app).await;
    assert!(ok.is_ok(), "nothing lost: {said}");

    // A file missing from the folder stops a rebuild, named (not only the last one counts).
    std::fs::remove_file(dir.join(&written.file)).unwrap();
    std::fs::remove_file(dir.join(format!("{}.manifest.json", written.file))).unwrap();
    let (ok, _) = run_verify(&app).await;
    let e = format!("{:#}", ok.unwrap_err());
    assert!(e.contains(&written.file) && e.contains("--archive"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    app.cleanup().await;
}
