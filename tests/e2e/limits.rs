//! What a flood or a forger meets: per-client limits on signing in and HTTP ingest (429 with
//! `Retry-After`, X-Forwarded-For believed only from trusted proxies), redirects after signing
//! in that stay on the dashboard, idempotency keys that are refused rather than ignored, and API
//! key provenance that a NATS publisher cannot forge.

use crate::collectors::key_for;
use crate::helpers::{cookie_of, eventually, spawn_app, spawn_app_with, TestApp};
use serde_json::json;

/// A sign-in attempt from `forwarded_for` (sent as `X-Forwarded-For` when given), answer not
/// followed, with `next`.
async fn sign_in_from(app: &TestApp, forwarded_for: Option<&str>, next: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client.get(app.url("/sign-in")).send().await.unwrap();
    let csrf = cookie_of(&page, "sitrep_csrf").unwrap();
    let mut req = client
        .post(app.url("/sign-in"))
        .header("Origin", app.origin())
        .header("Cookie", format!("sitrep_csrf={csrf}"))
        .form(&[("name", "ana"), ("password", "a long test password"), ("csrf", &csrf), ("next", next)]);
    if let Some(f) = forwarded_for {
        req = req.header("X-Forwarded-For", f);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn sign_ins_past_a_clients_limit_get_429_with_retry_after_and_other_clients_do_not() {
    let app = spawn_app_with(|s| {
        s.sign_in_per_minute = 3;
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    // Through the trusted proxy (the test's own address), each X-Forwarded-For client has its
    // own allowance.
    for _ in 0..3 {
        assert_eq!(sign_in_from(&app, Some("203.0.113.1"), "/").await.status(), 401);
    }
    let refused = sign_in_from(&app, Some("203.0.113.1"), "/").await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    assert!(refused.text().await.unwrap().contains("Too many sign-in attempts from your address"));
    assert_eq!(sign_in_from(&app, Some("203.0.113.2"), "/").await.status(), 401, "another client");
    // The proxy's own header is the right-most; what the client wrote before it is not believed.
    assert_eq!(sign_in_from(&app, Some("198.51.100.7, 203.0.113.1"), "/").await.status(), 429);
    app.cleanup().await;
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_buys_no_new_allowance() {
    let app = spawn_app_with(|s| s.sign_in_per_minute = 2).await;
    assert_eq!(sign_in_from(&app, Some("203.0.113.1"), "/").await.status(), 401);
    assert_eq!(sign_in_from(&app, Some("203.0.113.2"), "/").await.status(), 401);
    assert_eq!(sign_in_from(&app, Some("203.0.113.3"), "/").await.status(), 429);
    app.cleanup().await;
}

#[tokio::test]
async fn http_ingest_past_a_clients_limit_gets_429_and_publishes_nothing() {
    let app = spawn_app_with(|s| s.ingest_per_second = 1).await;
    let key = key_for(&app, "derecho-collector", &["derecho"]).await;
    let post = || {
        app.http
            .post(app.url("/api/v1/reports"))
            .bearer_auth(&key)
            .json(&json!({"system": "derecho", "component": "login/derecho1", "status": "ok"}))
            .send()
    };
    // A burst of twice the rate is taken; the next is refused before anything is published.
    let answers: Vec<u16> = futures::future::join_all((0..4).map(|_| post()))
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(answers.iter().filter(|s| **s == 202).count(), 2, "{answers:?}");
    assert_eq!(answers.iter().filter(|s| **s == 429).count(), 2, "{answers:?}");
    let refused = post().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Too many requests from your address"), "{body}");
    assert_eq!(app.stream_messages().await, 2);
    app.cleanup().await;
}

#[tokio::test]
async fn after_signing_in_a_next_that_would_leave_the_dashboard_or_break_the_header_goes_home() {
    let app = spawn_app().await;
    app.sign_in("ana", sitrep_infra::auth::Role::Operator).await;
    for next in ["/\t/other-host/", "/%09/other-host/", "/x\r\nSet-Cookie: a=b", "/x%00", "//other-host", "/alerts"] {
        let resp = sign_in_from(&app, None, next).await;
        assert_eq!(resp.status(), 303, "{next:?}");
        let to = resp.headers()["location"].to_str().unwrap();
        let expected = if next == "/alerts" { "/alerts" } else { "/" };
        assert_eq!(to, expected, "{next:?}");
    }
    // A NUL byte itself is refused before anything is looked at, naming the field.
    let resp = sign_in_from(&app, None, "/x\0").await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("next"));
    app.cleanup().await;
}

#[tokio::test]
async fn an_idempotency_key_that_cannot_be_kept_is_a_400_that_names_it() {
    let app = spawn_app().await;
    let key = key_for(&app, "derecho-collector", &["derecho"]).await;
    let report = json!({"system": "derecho", "component": "login/derecho1", "status": "ok"}).to_string();
    for (value, reason) in [
        (axum::http::HeaderValue::from_bytes("clé-1".as_bytes()).unwrap(), "printable ASCII"),
        (axum::http::HeaderValue::from_str(&"k".repeat(70_000)).unwrap(), "70000 bytes long"),
    ] {
        let resp = app
            .http
            .post(app.url("/api/v1/reports"))
            .bearer_auth(&key)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", value)
            .body(report.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], "Idempotency-Key", "{body}");
        assert!(body["errors"][0]["reason"].as_str().unwrap().contains(reason), "{body}");
    }
    assert_eq!(app.stream_messages().await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn an_api_key_header_set_by_a_nats_publisher_is_not_recorded_as_provenance() {
    let app = spawn_app().await;
    let key = key_for(&app, "derecho-collector", &["derecho"]).await;
    // Over HTTP with a key: the event names it.
    let resp = app
        .http
        .post(app.url("/api/v1/reports"))
        .bearer_auth(&key)
        .json(&json!({"system": "derecho", "component": "queue/http", "status": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    // Over NATS, claiming that key, with and without a made-up signature.
    for (component, signature) in [("queue/forged", None), ("queue/forged-signed", Some("00".repeat(32)))] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Sitrep-Api-Key", "derecho-collector");
        if let Some(sig) = &signature {
            headers.insert("Sitrep-Api-Key-Signature", sig.as_str());
        }
        let payload = json!({"system": "derecho", "component": component, "status": "ok"}).to_string();
        app.js
            .publish_with_headers(app.settings.report_subject("derecho"), headers, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let keys = eventually("three events with their metadata", || async {
        let client = app.pool.get().await.unwrap();
        let rows = client
            .query(
                "SELECT aggregate_id, metadata->>'api_key' FROM events WHERE aggregate_id LIKE 'derecho:queue/%' \
                 AND event_type = 'StatusReported' ORDER BY aggregate_id",
                &[],
            )
            .await
            .unwrap();
        let found: Vec<(String, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if found.len() == 3 {
            Ok(found)
        } else {
            Err(format!("{found:?}"))
        }
    })
    .await;
    assert_eq!(
        keys,
        [
            ("derecho:queue/forged".to_owned(), None),
            ("derecho:queue/forged-signed".to_owned(), None),
            ("derecho:queue/http".to_owned(), Some("derecho-collector".to_owned())),
        ]
    );
    app.cleanup().await;
}
