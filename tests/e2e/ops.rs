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
