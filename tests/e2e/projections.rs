//! Projections are pure functions of the event log.

use crate::helpers::{spawn_app_without_projections, wait_for_events};
use sitrep_projections::rebuild::{self, SHADOW};
use sitrep_projections::{catch_up, reset, runner, LatestStatus};

async fn latest_rows(app: &crate::helpers::TestApp) -> Vec<String> {
    let client = app.pool.get().await.unwrap();
    client
        .query("SELECT row_to_json(l)::text FROM latest_status l ORDER BY system, component", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn deleting_the_latest_status_rows_and_checkpoint_and_projecting_again_gives_identical_rows() {
    // Arrange: a history with changes, a late report and a batch.
    let app = spawn_app_without_projections().await;
    let payloads = [
        r#"{"system":"derecho","component":"fs/glade","status":"ok","observed_at":"2026-11-22T10:00:00Z","metrics":{"used_pct":70}}"#,
        r#"{"system":"derecho","component":"fs/glade","status":"degraded","observed_at":"2026-11-22T10:05:00Z","message":"slow"}"#,
        r#"{"system":"derecho","component":"fs/glade","status":"failed","observed_at":"2026-11-22T10:01:00Z"}"#,
        r#"{"system":"derecho","observed_at":"2026-11-22T10:02:00Z","reports":[{"component":"queue/main","status":"ok"},{"component":"login/derecho1","status":"starting","labels":{"kind":"login_node"}}]}"#,
        r#"{"system":"casper","component":"nodes/gpu-a100","status":"ok","observed_at":"2026-11-22T10:03:00Z","ttl_seconds":60}"#,
    ];
    for (i, p) in payloads.iter().enumerate() {
        let system = if i == 4 { "casper" } else { "derecho" };
        app.publish(system, p.as_bytes().to_vec()).await;
    }
    wait_for_events(&app, 11).await;
    assert_eq!(catch_up(&app.pool, &LatestStatus).await.unwrap(), 11);
    let before = latest_rows(&app).await;
    assert!(
        before.iter().any(
            |r| r.contains(r#""status":"degraded""#) && r.contains(r#""status_since":"2026-11-22T10:05:00+00:00""#)
        ),
        "{before:?}"
    );

    // Act
    reset(&app.pool, &LatestStatus).await.unwrap();
    assert_eq!(app.scalar("SELECT count(*) FROM latest_status").await, 0);
    let applied = catch_up(&app.pool, &LatestStatus).await.unwrap();

    // Assert
    assert_eq!(applied, 11);
    assert_eq!(latest_rows(&app).await, before);
    app.cleanup().await;
}

#[tokio::test]
async fn a_projection_that_reads_only_its_own_events_applies_them_all_and_its_checkpoint_follows_the_head() {
    use sitrep_domain::wire::MessageKind;
    use sitrep_projections::runner::step;
    use sitrep_projections::Outages;
    // Arrange: component reports around an outage, stored by ingest with no projection running.
    let app = spawn_app_without_projections().await;
    let report = |n: u32| format!(r#"{{"system":"derecho","component":"node/n{n}","status":"ok"}}"#);
    app.publish("derecho", report(1)).await;
    let declare = serde_json::json!({"system": "derecho", "action": "declare", "id": "glade-1", "severity": "major",
                                     "title": "Glade is unavailable"});
    app.publish_to(&app.settings.subject(MessageKind::Outage, "derecho"), declare.to_string(), Some("o1")).await;
    app.publish("derecho", report(2)).await;
    wait_for_events(&app, 5).await;
    let head = app.scalar("SELECT max(position) FROM events").await;

    // Act / Assert: one step reads the outage's event alone, and the checkpoint moves to the head.
    let stepped = step(&app.pool, &Outages).await.unwrap();
    assert_eq!((stepped.applied, stepped.position, stepped.caught_up), (1, head, true));
    assert_eq!(app.scalar("SELECT count(*) FROM outages WHERE id = 'glade-1'").await, 1);

    // Only other events since: nothing to apply, yet the checkpoint follows the head.
    app.publish("derecho", report(3)).await;
    wait_for_events(&app, 7).await;
    let head = app.scalar("SELECT max(position) FROM events").await;
    let stepped = step(&app.pool, &Outages).await.unwrap();
    assert_eq!((stepped.applied, stepped.position), (0, head));
    assert_eq!(app.scalar("SELECT position FROM projection_checkpoints WHERE name = 'outages'").await, head);
    app.cleanup().await;
}

#[tokio::test]
async fn latest_status_is_the_same_at_every_position_whether_built_in_one_step_or_event_by_event() {
    // Arrange: two components whose statuses change back and forth, a report at a time, so that
    // reports and their status changes interleave in the log.
    let app = spawn_app_without_projections().await;
    let statuses = ["ok", "ok", "failed", "failed", "ok", "degraded", "degraded", "ok"];
    for (i, status) in statuses.iter().enumerate() {
        for (c, component) in ["fs/glade", "queue/main"].iter().enumerate() {
            let status = if c == 0 { status } else { statuses[(i + 3) % statuses.len()] };
            let payload = format!(
                r#"{{"system":"derecho","component":"{component}","status":"{status}","observed_at":"2026-11-22T10:{:02}:00Z"}}"#,
                i * 5 + c
            );
            app.publish("derecho", payload.into_bytes()).await;
        }
    }
    let reports = 2 * statuses.len() as i64;
    crate::helpers::eventually("every report stored", || async {
        let n = app.scalar("SELECT count(*) FROM events WHERE event_type = 'StatusReported'").await;
        (n == reports).then_some(()).ok_or(format!("{n} of {reports}"))
    })
    .await;
    let head = app.scalar("SELECT max(position) FROM events").await;
    let shadow_rows = || async {
        let client = app.pool.get().await.unwrap();
        let rows = client
            .query(&format!("SELECT row_to_json(l)::text FROM {SHADOW}.latest_status l ORDER BY component"), &[])
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()
    };

    for until in 1..=head {
        // Act: the events up to `until` in one step, then one event per step.
        rebuild::prepare(&app.pool, &LatestStatus).await.unwrap();
        runner::step_until(&app.pool, &LatestStatus, Some(SHADOW), until).await.unwrap();
        let folded = shadow_rows().await;
        rebuild::prepare(&app.pool, &LatestStatus).await.unwrap();
        for one in 1..=until {
            runner::step_until(&app.pool, &LatestStatus, Some(SHADOW), one).await.unwrap();
        }

        // Assert: the same rows, status_since included.
        assert_eq!(folded, shadow_rows().await, "up to position {until}");
    }
    rebuild::discard(&app.pool, &LatestStatus).await.unwrap();
    app.cleanup().await;
}

#[tokio::test]
async fn a_rebuild_fed_by_a_read_shared_with_another_equals_the_live_read_model() {
    use sitrep_infra::event_store::Metadata;
    use sitrep_projections::feed;
    // Arrange: reports of a few components, projected live.
    let app = spawn_app_without_projections().await;
    for i in 0..12 {
        let status = ["ok", "degraded", "failed"][i % 3];
        let payload = format!(
            r#"{{"system":"derecho","component":"node/n{}","status":"{status}","observed_at":"2026-11-22T10:{i:02}:00Z","metrics":{{"load":{i}}}}}"#,
            i % 4
        );
        app.publish("derecho", payload.into_bytes()).await;
    }
    crate::helpers::eventually("every report stored", || async {
        let n = app.scalar("SELECT count(*) FROM events WHERE event_type = 'StatusReported'").await;
        (n == 12).then_some(()).ok_or(format!("{n} of 12"))
    })
    .await;
    let events = catch_up(&app.pool, &LatestStatus).await.unwrap();
    let head = app.scalar("SELECT max(position) FROM events").await;
    let middle = app.scalar("SELECT position FROM events ORDER BY position OFFSET 8 LIMIT 1").await;

    // Act: a read shared by two rebuilds, one of which gives up at once, that ends in the middle
    // of the log; the rebuild goes on from the log itself.
    let mut feeds = feed::share(&app.pool, Metadata::Skip, middle, 2, None).await.unwrap();
    drop(feeds.pop());
    rebuild::prepare(&app.pool, &LatestStatus).await.unwrap();
    let built = rebuild::build(&app.pool, &LatestStatus, i64::MAX, feeds.pop(), |_, _, _| {}).await.unwrap();

    // Assert: every event applied once, and the same rows as the live read model.
    assert_eq!((built.applied, built.position), (events, head));
    let (differences, position) = rebuild::compare(&app.pool, &LatestStatus, None).await.unwrap();
    assert_eq!((differences, position), (vec![], head));
    rebuild::discard(&app.pool, &LatestStatus).await.unwrap();
    app.cleanup().await;
}
