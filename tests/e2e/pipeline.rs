//! The whole path: NATS → ingest → event store → latest status → API and pages.

use crate::helpers::{
    component_names, eventually, spawn_app, wait_for_components, wait_for_events, wait_for_quarantined,
    wait_until_all_acked,
};
use serde_json::json;

#[tokio::test]
async fn a_single_report_and_a_batch_appear_in_the_api_and_on_the_pages() {
    // Arrange
    let app = spawn_app().await;
    let single = json!({"system": "derecho", "component": "login/derecho1", "status": "ok",
        "observed_at": "2026-11-22T10:00:00Z", "message": "41 users",
        "metrics": {"users": 41, "load_1m": 3.2}, "labels": {"kind": "login_node"}, "ttl_seconds": 600});
    let batch = json!({"system": "derecho", "observed_at": "2026-11-22T10:00:00Z",
        "reports": [{"component": "queue/main", "status": "ok", "metrics": {"running_jobs": 1203}},
                    {"component": "fs/glade", "status": "degraded", "message": "OST0003 slow",
                     "metrics": {"used_pct": 93.5}}]});

    // Act
    app.publish("derecho", serde_json::to_vec(&single).unwrap()).await;
    app.publish("derecho", serde_json::to_vec(&batch).unwrap()).await;

    // Assert: the API
    let body = wait_for_components(&app, 3).await;
    let components = body["components"].as_array().unwrap();
    let login = components.iter().find(|c| c["component"] == "login/derecho1").unwrap();
    assert_eq!(login["system"], "derecho");
    assert_eq!(login["status"], "ok");
    assert_eq!(login["message"], "41 users");
    assert_eq!(login["observed_at"], "2026-11-22T10:00:00Z");
    assert_eq!(login["metrics"]["users"], 41.0);
    assert_eq!(login["metrics"]["load_1m"], 3.2);
    assert_eq!(login["labels"]["kind"], "login_node");
    assert_eq!(login["stale"], true, "observed long ago with a 600 s window");
    let glade = components.iter().find(|c| c["component"] == "fs/glade").unwrap();
    assert_eq!(glade["status"], "degraded");
    assert_eq!(glade["message"], "OST0003 slow");
    let (status, one) = app.get_json("/api/v1/status/derecho").await;
    assert_eq!(status, 200);
    assert_eq!(one["components"].as_array().unwrap().len(), 3);
    let (status, missing) = app.get_json("/api/v1/status/casper").await;
    assert_eq!(status, 404);
    assert!(missing["hint"].as_str().unwrap().contains(".report.casper"), "{missing}");

    // Assert: the pages
    let (status, home) = app.get("/").await;
    assert_eq!(status, 200);
    assert!(home.contains("href=\"/systems/derecho\""), "{home}");
    assert!(home.contains("STALE"), "old reports show as stale: {home}");
    let (status, page) = app.get("/systems/derecho").await;
    assert_eq!(status, 200);
    for needle in
        ["login/derecho1", "41 users", "queue/main", "1,203", "fs/glade", "OST0003 slow", "login_node", "<meter"]
    {
        assert!(page.contains(needle), "system page lacks {needle:?}");
    }
    let (status, nope) = app.get_json("/api/v1/nope").await;
    assert_eq!(status, 404);
    assert!(nope["error"].as_str().unwrap().contains("/api/v1/nope"), "{nope}");
    let (status, page) = app.get("/systems/casper").await;
    assert_eq!(status, 404);
    assert!(page.contains("No reports yet from casper"), "{page}");
    app.cleanup().await;
}

#[tokio::test]
async fn an_invalid_message_is_quarantined_with_its_reason_and_a_valid_message_after_it_is_still_processed() {
    let app = spawn_app().await;

    app.publish("derecho", br#"{"system": "derecho", "component": "x", "status": "sideways"}"#.to_vec()).await;
    app.publish("derecho", b"{not json".to_vec()).await;
    app.publish("derecho", br#"{"system": "casper", "component": "x", "status": "ok"}"#.to_vec()).await;
    app.publish_to(&format!("{}.report.derecho.extra", app.settings.subject_prefix), b"{}".to_vec(), None).await;
    app.publish(
        "derecho",
        br#"{"system":"derecho","reports":[{"component":"good","status":"ok"},{"component":"bad","status":7}]}"#
            .to_vec(),
    )
    .await;
    app.publish("derecho", br#"{"system": "derecho", "component": "after", "status": "failed"}"#.to_vec()).await;

    let body = wait_for_components(&app, 2).await;
    assert_eq!(component_names(&body), ["after", "good"]);
    let quarantined = wait_for_quarantined(&app, 5).await;
    let reasons: Vec<&str> =
        quarantined["messages"].as_array().unwrap().iter().map(|m| m["reason"].as_str().unwrap()).collect();
    for expected in [
        "status: \"sideways\" is not a status",
        "payload: is not valid JSON",
        "system: \"casper\" does not match the subject's system \"derecho\"",
        "subject: ",
        "reports[1].status: must be a string, not a number",
    ] {
        assert!(reasons.iter().any(|r| r.contains(expected)), "no reason with {expected:?} in {reasons:?}");
    }
    let raw = quarantined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["reason"].as_str().unwrap().contains("JSON"))
        .unwrap();
    assert_eq!(raw["payload"], "{not json", "the raw bytes are kept");
    let (status, page) = app.get("/quarantine").await;
    assert_eq!(status, 200);
    assert!(page.contains("is not a status"), "{page}");
    app.cleanup().await;
}

#[tokio::test]
async fn the_same_nats_msg_id_published_twice_gives_one_event() {
    let app = spawn_app().await;
    let report = br#"{"system": "derecho", "component": "login/derecho1", "status": "ok"}"#;

    app.publish_with_id("derecho", report.to_vec(), "collector-42-run-7").await;
    app.publish_with_id("derecho", report.to_vec(), "collector-42-run-7").await;
    app.publish("derecho", br#"{"system": "derecho", "component": "marker", "status": "ok"}"#.to_vec()).await;

    wait_for_components(&app, 2).await;
    // login/derecho1: StatusReported + StatusChanged; marker: the same. Nothing twice.
    wait_for_events(&app, 4).await;
    assert_eq!(app.scalar("SELECT count(*) FROM events WHERE event_type = 'StatusReported'").await, 2);
    app.cleanup().await;
}

#[tokio::test]
async fn a_redelivered_message_adds_no_events() {
    // Arrange: two messages ingested and acked.
    let mut app = spawn_app().await;
    app.publish("derecho", br#"{"system": "derecho", "component": "a", "status": "ok"}"#.to_vec()).await;
    app.publish_with_id("derecho", br#"{"system": "derecho", "component": "b", "status": "failed"}"#.to_vec(), "b-1")
        .await;
    // And an outage declared: stored again it would be refused ("already declared") and quarantined.
    let outage = app.settings.subject(sitrep_domain::wire::MessageKind::Outage, "derecho");
    let declare = br#"{"system": "derecho", "action": "declare", "id": "o1", "severity": "minor", "title": "x"}"#;
    app.publish_to(&outage, declare.to_vec(), None).await;
    wait_for_events(&app, 5).await;

    // Act: deliver the whole stream to ingest again, as a crash between commit and ack would.
    app.stop_ingest().await;
    let stream = app.js.get_stream(&app.settings.reports_stream).await.unwrap();
    stream.delete_consumer(&app.settings.ingest_consumer).await.unwrap();
    app.start_ingest().await;
    app.publish("derecho", br#"{"system": "derecho", "component": "c", "status": "ok"}"#.to_vec()).await;

    // Assert: only the new message added events; everything before it was recognised.
    wait_for_events(&app, 7).await;
    wait_until_all_acked(&app).await;
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, 7);
    assert_eq!(app.scalar("SELECT count(*) FROM quarantine").await, 0, "the outage was recognised, not refused");
    app.cleanup().await;
}

#[tokio::test]
async fn stopping_the_consumer_mid_stream_and_starting_it_again_loses_nothing() {
    let mut app = spawn_app().await;
    const MESSAGES: usize = 600;
    let publisher = {
        let js = app.js.clone();
        let subject = app.settings.report_subject("derecho");
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                let payload = format!(
                    r#"{{"system":"derecho","component":"node/n{:03}","status":"ok","metrics":{{"i":{i}}}}}"#,
                    i % 50
                );
                js.publish(subject.clone(), payload.into()).await.unwrap().await.unwrap();
            }
        })
    };

    // Stop ingest while messages are flowing, then start it again.
    eventually("ingest to have stored some events", || async {
        let n = app.scalar("SELECT count(*) FROM events").await;
        if n > 0 {
            Ok(())
        } else {
            Err("none yet".into())
        }
    })
    .await;
    app.stop_ingest().await;
    let while_stopped = app.scalar("SELECT count(*) FROM events WHERE event_type = 'StatusReported'").await;
    app.start_ingest().await;
    publisher.await.unwrap();

    // Every report is stored exactly once: 600 reports plus 50 first-time status changes.
    wait_for_events(&app, MESSAGES as i64 + 50).await;
    assert!((while_stopped as usize) < MESSAGES, "the stop happened mid-stream ({while_stopped} stored)");
    assert_eq!(app.scalar("SELECT count(DISTINCT payload->'StatusReported'->'metrics'->>'i') FROM events WHERE event_type = 'StatusReported'").await, MESSAGES as i64);
    assert_eq!(app.scalar("SELECT count(*) FROM latest_status").await, 50);
    app.cleanup().await;
}

#[tokio::test]
async fn messages_are_acked_only_after_their_events_commit() {
    let app = spawn_app().await;
    app.publish("derecho", br#"{"system": "derecho", "component": "warmup", "status": "ok"}"#.to_vec()).await;
    wait_for_events(&app, 2).await;

    // Hold the event store's writer lock so ingest cannot commit.
    let mut blocker = app.pool.get().await.unwrap();
    let tx = blocker.transaction().await.unwrap();
    sitrep_infra::event_store::lock_writer(&*tx).await.unwrap();
    for i in 0..5 {
        app.publish("derecho", format!(r#"{{"system":"derecho","component":"c{i}","status":"ok"}}"#)).await;
    }
    eventually("ingest to hold the 5 messages unacked", || async {
        let info = app.consumer_info().await?;
        if info.num_ack_pending == 5 {
            Ok(())
        } else {
            Err(format!("{info:?}"))
        }
    })
    .await;
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, 2, "nothing committed while blocked");

    // Release: the batch commits, then it is acked.
    tx.rollback().await.unwrap();
    wait_for_events(&app, 12).await;
    wait_until_all_acked(&app).await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_message_the_database_refuses_is_quarantined_and_does_not_block_the_others() {
    // Arrange: the event store refuses rows for one component, as a poison message would.
    let app = spawn_app().await;
    let client = app.pool.get().await.unwrap();
    client
        .batch_execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.aggregate_id LIKE '%poison%' THEN RAISE EXCEPTION 'refusing a poisoned row'; END IF;
             RETURN NEW; END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
        )
        .await
        .unwrap();

    // Act
    for component in ["before", "poison", "after"] {
        app.publish("derecho", format!(r#"{{"system":"derecho","component":"{component}","status":"ok"}}"#)).await;
    }

    // Assert: the others are stored, the poisoned one is quarantined with the database's reason,
    // and nothing is left unacked.
    let body = wait_for_components(&app, 2).await;
    assert_eq!(component_names(&body), ["after", "before"]);
    let q = wait_for_quarantined(&app, 1).await;
    let reason = q["messages"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("could not be stored") && reason.contains("refusing a poisoned row"), "{reason}");
    assert!(q["messages"][0]["payload"].as_str().unwrap().contains("poison"));
    wait_until_all_acked(&app).await;
    app.cleanup().await;
}

#[tokio::test]
async fn kept_pages_are_at_most_a_second_behind_and_signed_in_viewers_see_a_new_report_at_once() {
    let app = spawn_app().await;
    let ana = app.sign_in("ana", sitrep_infra::auth::Role::Viewer).await;
    app.publish("derecho", r#"{"system":"derecho","component":"fs/glade","status":"ok","message":"first"}"#).await;
    wait_for_components(&app, 1).await;
    for page in ["/", "/systems/derecho"] {
        // Twice: the second request is served the page kept from the first.
        for _ in 0..2 {
            let (status, body) = app.get(page).await;
            assert_eq!(status, 200);
            assert!(body.contains("s-ok") && !body.contains("s-failed"), "{page} before the failure");
        }
    }

    app.publish("derecho", r#"{"system":"derecho","component":"fs/glade","status":"failed","message":"second"}"#).await;
    eventually("the API to show the failure", || async {
        let (_, body) = app.get_json("/api/v1/status/derecho").await;
        if body["components"][0]["status"] == "failed" {
            Ok(())
        } else {
            Err(format!("{body}"))
        }
    })
    .await;
    for page in ["/", "/systems/derecho"] {
        let (_, body) = app.get_as(&ana, page).await;
        assert!(body.contains("s-failed"), "{page} shows a signed-in viewer the failure on the next request");
    }
    // Signed out, a page kept from before may be served until it is FRESH_FOR old, not after.
    tokio::time::sleep(sitrep_web::view::pagecache::FRESH_FOR).await;
    for page in ["/", "/systems/derecho"] {
        let (_, body) = app.get(page).await;
        assert!(body.contains("s-failed"), "{page} shows the failure once the kept page is a second old");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn ingest_builds_on_what_another_writer_stored_for_the_same_component() {
    // Arrange: ingest has seen svc/api as ok, then another writer (here the cqrs-es path, as a
    // second ingest process would) stores a failed report for it.
    use cqrs_es::persist::PersistedEventStore;
    use sitrep_domain::component::{Component, ComponentCommand};
    let app = spawn_app().await;
    app.publish("derecho", br#"{"system":"derecho","component":"svc/api","status":"ok"}"#.to_vec()).await;
    wait_for_events(&app, 2).await;
    let cqrs = cqrs_es::CqrsFramework::new(
        PersistedEventStore::<_, Component>::new_event_store(sitrep_infra::event_store::PgEventRepository::new(
            app.pool.clone(),
        )),
        vec![],
        (),
    );
    let now = time::OffsetDateTime::now_utc();
    let payload = br#"{"system":"derecho","component":"svc/api","status":"failed"}"#;
    let failed = sitrep_domain::wire::decode("derecho", payload, now).unwrap().reports.remove(0);
    cqrs.execute("derecho:svc/api", ComponentCommand::ReportStatus { report: failed, received_at: now }).await.unwrap();

    // Act: ingest gets the next report for the same component.
    app.publish("derecho", br#"{"system":"derecho","component":"svc/api","status":"ok"}"#.to_vec()).await;

    // Assert: ingest decided from the failed state: its report is a change back to ok, stored
    // right after the other writer's events, with no sequence left out or used twice.
    wait_for_events(&app, 6).await;
    let changes = app
        .scalar(
            "SELECT count(*) FROM events WHERE aggregate_id = 'derecho:svc/api' AND sequence = 6
               AND payload->'StatusChanged'->>'from' = 'failed' AND payload->'StatusChanged'->>'to' = 'ok'",
        )
        .await;
    assert_eq!(changes, 1, "the change from failed to ok is the component's sixth event");
    assert_eq!(
        app.scalar("SELECT max(sequence) - count(*) FROM events WHERE aggregate_id = 'derecho:svc/api'").await,
        0
    );
    wait_until_all_acked(&app).await;
    app.cleanup().await;
}
