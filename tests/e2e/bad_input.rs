//! The bad-input corpus, over NATS and over HTTP: each kind of bad message is refused with a
//! reason that names the field at fault, and the valid reports published between them are all
//! stored. Unknown fields are the exception the wire format promises: they are ignored.

use crate::helpers::{eventually, spawn_app};
use serde_json::{json, Value};

/// One bad message: what it is, its payload, and the field its refusal must name.
struct Case {
    name: &'static str,
    payload: Vec<u8>,
    field: &'static str,
}

fn corpus() -> Vec<Case> {
    let report = |extra: Value| {
        let mut r = json!({"system": "derecho", "component": "node/bad", "status": "ok"});
        r.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        r.to_string().into_bytes()
    };
    let labels: serde_json::Map<String, Value> = (0..10_000).map(|i| (format!("l{i}"), json!("v"))).collect();
    let nested = format!(
        r#"{{"system":"derecho","component":"node/bad","status":"ok","labels":{{"deep":{}1{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let future = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    vec![
        Case {
            name: "invalid UTF-8",
            payload: b"{\"system\":\"derecho\",\"component\":\"node/\xff\xfe\",\"status\":\"ok\"}".to_vec(),
            field: "payload",
        },
        Case {
            name: "NaN metric",
            payload: br#"{"system":"derecho","component":"node/bad","status":"ok","metrics":{"load":NaN}}"#.to_vec(),
            field: "payload",
        },
        Case {
            name: "infinite metric",
            payload: br#"{"system":"derecho","component":"node/bad","status":"ok","metrics":{"load":Infinity}}"#
                .to_vec(),
            field: "payload",
        },
        Case {
            name: "metric out of range",
            payload: br#"{"system":"derecho","component":"node/bad","status":"ok","metrics":{"load":1e999}}"#.to_vec(),
            field: "payload",
        },
        Case { name: "10,000 labels", payload: report(json!({ "labels": labels })), field: "labels" },
        Case { name: "deeply nested JSON", payload: nested.into_bytes(), field: "payload" },
        Case {
            name: "another system than the subject's",
            payload: br#"{"system":"casper","component":"node/bad","status":"ok"}"#.to_vec(),
            field: "system",
        },
        Case {
            name: "observed_at an hour ahead",
            payload: report(json!({ "observed_at": future })),
            field: "observed_at",
        },
        Case { name: "wrong type", payload: report(json!({ "ttl_seconds": "soon" })), field: "ttl_seconds" },
        Case { name: "not an object", payload: b"[1,2,3]".to_vec(), field: "payload" },
        Case {
            name: "a component whose links would point elsewhere",
            payload: br#"{"system":"derecho","component":"node/bad/../../../../ops","status":"ok"}"#.to_vec(),
            field: "component",
        },
    ]
}

fn good(i: usize) -> Vec<u8> {
    json!({"system": "derecho", "component": format!("node/good{i}"), "status": "ok", "colour": "unknown fields are ignored"})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn every_kind_of_bad_message_is_refused_naming_its_field_while_valid_ones_flow_on() {
    let app = spawn_app().await;
    let cases = corpus();

    // Over NATS: each bad message, then a valid one.
    for (i, case) in cases.iter().enumerate() {
        app.publish_with_id("derecho", case.payload.clone(), &format!("bad-{i}")).await;
        app.publish_with_id("derecho", good(i), &format!("good-{i}")).await;
    }
    // A message over NATS's payload limit (1 MB by default) never reaches the stream: the
    // server refuses it, and the connection carries on.
    let huge = vec![b'x'; 10 * 1024 * 1024];
    let refused = async { app.js.publish(app.settings.report_subject("derecho"), huge.into()).await?.await };
    assert!(refused.await.is_err(), "NATS refused a 10 MB message");
    // A subject no stream captures is refused by JetStream itself.
    let stray =
        async { app.js.publish(format!("{}.report", app.settings.subject_prefix), good(0).into()).await?.await };
    assert!(stray.await.is_err(), "JetStream refused a subject with no system");
    app.publish_with_id("derecho", good(cases.len()), "good-last").await;

    let q = eventually("every bad message in quarantine", || async {
        let (_, q) = app.get_json("/api/v1/quarantine").await;
        if q["total"] == cases.len() as i64 {
            Ok(q)
        } else {
            Err(q.to_string())
        }
    })
    .await;
    let reported = "SELECT count(*) FROM events WHERE event_type = 'StatusReported'";
    eventually("every valid report stored", || async {
        let n = app.scalar(reported).await;
        if n > cases.len() as i64 {
            Ok(())
        } else {
            Err(format!("{n} reports stored"))
        }
    })
    .await;
    let items = q["messages"].as_array().cloned().unwrap_or_default();
    for (i, case) in cases.iter().enumerate() {
        let key = format!(":bad-{i}");
        let item = items
            .iter()
            .find(|it| it["source_key"].as_str().is_some_and(|k| k.ends_with(&key)))
            .unwrap_or_else(|| panic!("{} is not in quarantine: {q}", case.name));
        let reason = item["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with(case.field), "{}: the reason {reason:?} names {}", case.name, case.field);
    }
    let stored = app.scalar(reported).await;
    let bad_stored = app.scalar("SELECT count(*) FROM events WHERE aggregate_id LIKE '%node/bad%'").await;
    assert_eq!((stored, bad_stored), (cases.len() as i64 + 1, 0), "every valid report stored, no bad one");
    let ignored = app.scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%colour%'").await;
    assert_eq!(ignored, 0, "unknown fields are dropped, not stored");

    // Over HTTP, the same corpus gets a 400 naming the field, and the 10 MB body a 413.
    let key = crate::collectors::key_for(&app, "bad-input", &["derecho"]).await;
    for case in &cases {
        let resp = app
            .http
            .post(app.url("/api/v1/reports"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(case.payload.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or_default();
        let error = body["error"].as_str().unwrap_or_default().to_owned();
        // The system check comes first over HTTP: the key may not publish for casper.
        let want = if case.field == "system" { 403 } else { 400 };
        assert_eq!(status, want, "{}: {body}", case.name);
        assert!(error.contains(case.field), "{}: the error {error:?} names {}", case.name, case.field);
    }
    let resp = app
        .http
        .post(app.url("/api/v1/reports"))
        .bearer_auth(&key)
        .body(vec![b' '; 10 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413, "a 10 MB body is refused as too large");
    println!(
        "bad input: {} kinds refused over NATS (quarantined, field named) and over HTTP; 10 MB refused by NATS \
         and HTTP (413); {} valid reports stored between them",
        cases.len(),
        cases.len() + 1
    );
    app.cleanup().await;
}
