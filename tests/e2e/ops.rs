//! The operator's view of sitrep itself: the event log browser and the ops page.

use crate::helpers::{spawn_app, wait_for_events};

#[tokio::test]
async fn the_event_log_pages_newest_first_with_filters_and_shows_where_each_event_came_from() {
    let app = spawn_app().await;
    for i in 0..30 {
        let status = if i % 2 == 0 { "ok" } else { "failed" };
        let body = format!(r#"{{"system":"derecho","component":"login/derecho{}","status":"{status}"}}"#, i % 3);
        app.publish_with_id("derecho", body.into_bytes(), &format!("m{i}")).await;
    }
    app.publish("casper", br#"{"system":"casper","component":"queue/htc","status":"ok"}"#.to_vec()).await;
    // 31 reports; status changes: 3 first ones, then every report of derecho after the first 3.
    wait_for_events(&app, 31 + 30 + 1).await;

    let (status, page) = app.get("/events").await;
    assert_eq!(status, 200);
    let newest = page.find("href=\"/events/62\"").expect("the newest event first");
    assert!(newest < page.find("href=\"/events/61\"").unwrap());
    assert!(!page.contains("href=\"/events/12\""), "50 per page");
    assert!(page.contains("href=\"/events?before&#x3D;13\""), "a link to older events: {page}");
    assert!(page.contains("NATS t"), "where it came from");

    let (_, older) = app.get("/events?before=13").await;
    assert!(older.contains("href=\"/events/12\"") && older.contains("No older events"));

    let (_, casper) = app.get("/events?system=casper").await;
    assert!(casper.contains("casper:queue/htc") && !casper.contains("derecho:login"));
    let (_, changes) = app.get("/events?system=derecho&component=login/derecho1&type=StatusChanged").await;
    assert_eq!(changes.matches("<code>StatusChanged</code>").count(), 10, "{changes}");

    let (status, one) = app.get("/events/62").await;
    assert_eq!(status, 200);
    assert!(one.contains("StatusChanged") && one.contains("queue/htc") && one.contains("stream sequence 31"), "{one}");
    assert!(one.contains("href=\"/systems/casper/components/queue/htc\""));
    let (_, with_id) = app.get("/events/1").await;
    assert!(with_id.contains("Nats-Msg-Id m0"), "{with_id}");
    assert_eq!(app.get("/events/999").await.0, 404);
    assert_eq!(app.get("/events/x").await.0, 400);
    assert_eq!(app.get("/events?before=x").await.0, 400);
    app.cleanup().await;
}

#[tokio::test]
async fn the_ops_page_shows_sitreps_own_state_and_quarantine_can_be_resubmitted_or_discarded() {
    use crate::helpers::{wait_for_components, wait_for_quarantined};
    let app = spawn_app().await;
    app.publish("derecho", br#"{"system":"derecho","component":"login/derecho1","status":"ok"}"#.to_vec()).await;
    app.publish("derecho", br#"{"system":"derecho","component":"fs/glade","status":"sideways"}"#.to_vec()).await;
    app.publish(
        "derecho",
        br#"{"system":"derecho","reports":[{"component":"a","status":"ok"},{"component":"b","status":"bad"}]}"#
            .to_vec(),
    )
    .await;
    wait_for_components(&app, 2).await;
    let q = wait_for_quarantined(&app, 2).await;

    let (status, ops) = app.get("/ops").await;
    assert_eq!(status, 200);
    for needle in [
        "latest_status",
        "history",
        "alert_evaluator",
        &app.settings.reports_stream,
        &app.settings.alerts_stream,
        "Ingest consumer",
        "is not a status",
        "Largest tables",
        "<code>events</code>",
    ] {
        assert!(ops.contains(needle), "/ops lacks {needle}");
    }

    let ops = app.sign_in("olga", sitrep_infra::auth::Role::Operator).await;
    let post = |path: String| {
        let ops = &ops;
        let app = &app;
        async move { app.post_form(ops, &path, &[]).await }
    };
    let id_of = |needle: &str| {
        q["messages"].as_array().unwrap().iter().find(|m| m["payload"].as_str().unwrap().contains(needle)).unwrap()
            ["id"]
            .as_i64()
            .unwrap()
    };
    // Partly stored: re-submitting would store report "a" twice.
    let partial = post(format!("/quarantine/{}/resubmit", id_of("\"b\""))).await;
    assert_eq!(partial.status(), 409);
    assert!(partial.text().await.unwrap().contains("would store them twice"));
    // Wholly rejected: published again, goes through the same path, and (still invalid) comes back.
    let whole = id_of("sideways");
    let resubmitted = post(format!("/quarantine/{whole}/resubmit")).await;
    assert_eq!(resubmitted.status(), 200, "back on /quarantine");
    let again = wait_for_quarantined(&app, 2).await;
    let back = again["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["payload"].as_str().unwrap().contains("sideways"))
        .unwrap();
    assert_ne!(back["id"].as_i64().unwrap(), whole, "a new entry: it was published again");
    let discarded = post(format!("/quarantine/{}/discard", back["id"])).await;
    assert_eq!(discarded.status(), 200);
    wait_for_quarantined(&app, 1).await;
    let evil = app
        .http
        .post(app.url(&format!("/quarantine/{}/discard", id_of("\"b\""))))
        .header("Origin", "http://evil.example")
        .header("Cookie", &ops.cookie)
        .form(&[("csrf", ops.csrf.as_str())]);
    assert_eq!(evil.send().await.unwrap().status(), 403);
    app.cleanup().await;
}

#[tokio::test]
async fn sitrep_reports_on_itself_as_the_system_sitrep_through_its_own_pipeline() {
    let (mut settings, db_name) = crate::helpers::isolated_settings().await;
    settings.self_report_seconds = 1;
    let running = sitrep_services::app::start(settings.clone(), sitrep_services::app::Parts::ALL).await.unwrap();
    let url = format!("http://{}/api/v1/status/sitrep", running.http_addr.unwrap());
    let body = crate::helpers::eventually("sitrep's own components", || async {
        let body: serde_json::Value =
            reqwest::get(&url).await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        let names: Vec<&str> = body["components"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["component"].as_str()).collect())
            .unwrap_or_default();
        let wanted =
            ["postgres", "nats", "ingest", "projection/latest_status", "projection/history", "projection/alerts"];
        if wanted.iter().all(|w| names.contains(w)) {
            Ok(body)
        } else {
            Err(format!("{names:?}"))
        }
    })
    .await;
    let postgres =
        body["components"].as_array().unwrap().iter().find(|c| c["component"] == "postgres").unwrap().clone();
    assert_eq!(postgres["status"], "ok");
    assert!(postgres["metrics"]["connections"].as_f64().unwrap() >= 1.0, "{postgres}");
    running.stop().await;
    crate::helpers::drop_isolated(&settings, &db_name).await;
}
