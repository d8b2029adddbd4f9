//! Bounded storage: the report stream is a work queue with limits that refuses new reports at its
//! size limit, so JetStream keeps no second copy of the log, and a backlog that nears a limit is
//! said everywhere an operator looks.

use crate::helpers::{eventually, spawn_app_with};
use serde_json::Value;

/// A batch of 20 reports of about 400 bytes each: 8 kB a message.
fn big_batch(i: usize) -> Vec<u8> {
    let reports: Vec<Value> = (0..20)
        .map(|c| {
            serde_json::json!({"component": format!("node/n{c:02}"), "status": "ok",
                               "message": format!("round {i}: {}", "x".repeat(380))})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"system": "derecho", "reports": reports})).unwrap()
}

#[tokio::test]
async fn a_full_report_stream_with_ingest_stopped_refuses_new_reports_discards_none_and_says_so() {
    // Arrange: a 1 MiB report stream, and ingest down.
    let rules = "[[rule]]\nname = \"failed\"\nkind = \"status\"\nstatus = [\"failed\"]\nseverity = \"critical\"\n";
    let mut app = spawn_app_with(|s| {
        s.reports_max_mb = 1;
        s.alerts_file = Some(crate::helpers::write_rules(&s.reports_stream, rules));
    })
    .await;
    app.stop_ingest().await;

    // Act: publish until JetStream refuses (it must, well within 300 messages of 8 kB).
    let subject = app.settings.report_subject("derecho");
    let mut accepted = 0usize;
    let mut refusal = None;
    for i in 0..300 {
        let published = app.js.publish(subject.clone(), big_batch(i).into()).await.expect("publish");
        match published.await {
            Ok(_) => accepted += 1,
            Err(e) => {
                refusal = Some(e.to_string());
                break;
            }
        }
    }

    // Assert: refused at the limit, and every message it accepted is still there.
    let refusal = refusal.expect("JetStream refuses new reports at the size limit");
    assert!(refusal.to_lowercase().contains("maximum bytes"), "{refusal}");
    assert!(accepted > 50, "only {accepted} messages fitted in 1 MiB");
    assert_eq!(app.stream_messages().await, accepted as u64, "no unstored message was discarded");

    // The warning: /readyz, /ops and the self-report.
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "a backlog is a warning, not unreadiness: {ready}");
    let warnings = ready["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{ready}");
    let warning = warnings[0].as_str().unwrap();
    assert!(warning.contains(&format!("{accepted} reports waiting for ingest")), "{warning}");
    assert!(warning.contains("of the size limit: at it new reports are refused"), "{warning}");
    assert_eq!(ready["report_backlog"]["level"], "critical", "{ready}");
    let (_, ops) = app.get("/ops").await;
    assert!(ops.contains("Ingest backlog:") && ops.contains("s-failed"), "{ops}");
    let stream = sitrep_services::selfwatch::backlog_report(&app.js, &app.settings).await;
    assert_eq!(stream["status"], "failed", "{stream}");
    assert_eq!(stream["metrics"]["backlog_messages"], accepted as u64, "{stream}");
    // With ingest down, the self-report is recorded through the command side, and alerts.
    sitrep_services::selfwatch::record(&app.pool, &stream, 90).await.expect("recorded");
    eventually("an alert on sitrep's backlog while ingest is down", || async {
        let (_, alerts) = app.get_json("/api/v1/alerts").await;
        let found = alerts.to_string();
        (found.contains("stream/reports") && found.contains("firing")).then_some(()).ok_or(found)
    })
    .await;

    // Ingest catches up: every accepted report stored once, and the work queue empties.
    app.start_ingest().await;
    let want = (accepted * 20) as i64;
    eventually("every accepted report stored", || async {
        let n = app
            .scalar("SELECT count(*) FROM events WHERE event_type = 'StatusReported' AND aggregate_id LIKE 'derecho:%'")
            .await;
        (n == want).then_some(()).ok_or(format!("{n} of {want} reports stored"))
    })
    .await;
    eventually("the stream emptied by ingest's acks", || async {
        let n = app.stream_messages().await;
        (n == 0).then_some(()).ok_or(format!("{n} messages left"))
    })
    .await;
    let (_, ready) = app.get_json("/readyz").await;
    assert_eq!(ready["warnings"], serde_json::json!([]), "{ready}");
    assert!(
        app.js.publish(subject, big_batch(999).into()).await.unwrap().await.is_ok(),
        "the stream takes reports again"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_existing_stream_gets_the_limits_on_start_and_keeps_what_it_holds() {
    use async_nats::jetstream::stream;
    // Arrange: the report stream as an earlier sitrep made it: limits retention, no limits.
    let (settings, _) = crate::helpers::isolated_settings().await;
    let nats = sitrep_infra::bus::connect(&settings.nats_url).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    js.create_stream(stream::Config {
        name: settings.reports_stream.clone(),
        subjects: vec![format!("{}.report.>", settings.subject_prefix)],
        ..Default::default()
    })
    .await
    .unwrap();
    let subject = settings.report_subject("derecho");
    js.publish(subject, br#"{"system":"derecho","component":"a","status":"ok"}"#.to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();

    // Act: sitrep starts on it.
    let s = sitrep_infra::bus::ensure_reports_stream(&js, &settings).await.expect("ensure");
    let config = s.cached_info().config.clone();

    // Assert: bounded, the other subjects added, nothing lost; discard-old, since a limits
    // stream also holds stored reports and discard-new would refuse every report once full.
    assert_eq!(config.max_age, std::time::Duration::from_secs(7 * 86_400));
    assert_eq!(config.max_bytes, 64 * 1024 * 1024);
    assert_eq!(config.discard, stream::DiscardPolicy::Old);
    assert_eq!(config.subjects.len(), 3, "{:?}", config.subjects);
    assert_eq!(s.cached_info().state.messages, 1);
    let _ = js.delete_stream(&settings.reports_stream).await;
}

#[tokio::test]
async fn a_new_report_stream_is_a_bounded_work_queue_and_the_alert_stream_keeps_thirty_days() {
    use async_nats::jetstream::stream;
    // The defaults, as a user who sets nothing gets them.
    let defaults = sitrep_infra::Settings::from_env();
    assert_eq!((defaults.reports_max_mb, defaults.alerts_max_mb), (1024, 1024));
    let app = spawn_app_with(|s| {
        s.reports_max_mb = defaults.reports_max_mb;
        s.alerts_max_mb = defaults.alerts_max_mb;
    })
    .await;
    let mut reports = app.js.get_stream(&app.settings.reports_stream).await.unwrap();
    let r = reports.info().await.unwrap().config.clone();
    assert_eq!(
        (r.retention, r.discard, r.max_age, r.max_bytes),
        (
            stream::RetentionPolicy::WorkQueue,
            stream::DiscardPolicy::New,
            std::time::Duration::from_secs(7 * 86_400),
            1 << 30
        )
    );
    let mut alerts = app.js.get_stream(&app.settings.alerts_stream).await.unwrap();
    let a = alerts.info().await.unwrap().config.clone();
    assert_eq!(
        (a.retention, a.discard, a.max_age, a.max_bytes),
        (
            stream::RetentionPolicy::Limits,
            stream::DiscardPolicy::Old,
            std::time::Duration::from_secs(30 * 86_400),
            1 << 30
        )
    );
    app.cleanup().await;
}
