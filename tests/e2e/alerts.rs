//! Alerts end to end: rules → evaluator → alert events → read model, pages, the bus and webhooks.

use crate::helpers::{eventually, spawn_app_with_rules, TestApp};
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use futures::StreamExt;
use serde_json::{json, Value};
use sitrep_domain::alert::AlertMessage;
use sitrep_infra::auth::Role;
use sitrep_projections::{reset, AlertEvaluator, Alerts};
use std::time::Duration;

const FS_FAILED: &str = r#"
[[rule]]
name = "fs-failed"
match = "*:fs/*"
kind = "status"
status = ["failed"]
severity = "critical"
summary = "{{component}} on {{system}} is {{status}}"
"#;

/// Brings the evaluator and the alerts read model up to the log, runs the notification planner
/// once (now) and delivers every decision it recorded; returns how many alert deliveries were
/// made.
async fn notify_all(
    app: &TestApp,
    runner: &mut sitrep_services::alerting::PlanRunner,
    hooks: &sitrep_services::alerting::Webhooks,
) -> usize {
    sitrep_projections::catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
    sitrep_projections::catch_up(&app.pool, &Alerts).await.unwrap();
    runner.step(&app.pool, time::OffsetDateTime::now_utc()).await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut made = 0;
    loop {
        let (n, more) = sitrep_services::alerting::webhook_step(&app.pool, hooks, &cancel).await.unwrap();
        made += n;
        if !more {
            return made;
        }
    }
}

async fn report(app: &TestApp, component: &str, status: &str, ttl: u32) {
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let payload = json!({"system": "derecho", "component": component, "status": status, "observed_at": now,
                         "ttl_seconds": ttl});
    app.publish("derecho", payload.to_string()).await;
}

/// A subscriber as docs/alerts.md describes it: a durable consumer on `<prefix>.alert.>`.
async fn subscriber(app: &TestApp) -> PullConsumer {
    let stream = app.js.get_stream(&app.settings.alerts_stream).await.expect("the alert stream exists");
    stream
        .create_consumer(pull::Config {
            durable_name: Some("test-subscriber".into()),
            filter_subject: app.settings.alert_subjects(),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap()
}

/// Everything the subscriber has not seen yet (acked as read): `(subject, Nats-Msg-Id, message)`.
async fn receive(consumer: &PullConsumer) -> Vec<(String, String, AlertMessage)> {
    let mut out = Vec::new();
    let mut batch = consumer.fetch().max_messages(100).expires(Duration::from_millis(300)).messages().await.unwrap();
    while let Some(Ok(m)) = batch.next().await {
        let id = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string()).unwrap_or_default();
        let msg: AlertMessage = serde_json::from_slice(&m.payload).expect("an alert message in format v1");
        out.push((m.subject.to_string(), id, msg));
        m.ack().await.unwrap();
    }
    out
}

async fn receive_until(consumer: &PullConsumer, n: usize) -> Vec<(String, String, AlertMessage)> {
    let start = tokio::time::Instant::now();
    let mut all = Vec::new();
    while all.len() < n {
        assert!(start.elapsed() < crate::helpers::DEADLINE, "timed out waiting for {n} alert messages; got {all:?}");
        all.extend(receive(consumer).await);
    }
    all
}

async fn open_alert(app: &TestApp, state: &str) -> Value {
    eventually(&format!("an alert {state}"), || async {
        let (_, body) = app.get_json("/api/v1/alerts?state=all").await;
        match body["alerts"].as_array().and_then(|a| a.iter().find(|x| x["state"] == state)) {
            Some(a) => Ok(a.clone()),
            None => Err(body.to_string()),
        }
    })
    .await
}

async fn checkpoint(app: &TestApp, name: &str) -> i64 {
    app.scalar(&format!("SELECT coalesce((SELECT position FROM projection_checkpoints WHERE name = '{name}'), 0)"))
        .await
}

async fn wait_caught_up(app: &TestApp, names: &[&str]) {
    for name in names {
        eventually(&format!("{name} to catch up"), || async {
            let (seen, head) =
                (checkpoint(app, name).await, app.scalar("SELECT coalesce(max(position), 0) FROM events").await);
            if seen == head {
                Ok(())
            } else {
                Err(format!("{name} at {seen}, log at {head}"))
            }
        })
        .await;
    }
}

async fn dump(app: &TestApp, table: &str, order: &str) -> Vec<String> {
    let client = app.pool.get().await.unwrap();
    let rows = client.query(&format!("SELECT t::text FROM {table} t ORDER BY {order}"), &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn a_failure_reaches_a_subscriber_as_firing_acknowledged_and_resolved_exactly_once() {
    let mut app = spawn_app_with_rules(FS_FAILED).await;
    let consumer = subscriber(&app).await;

    // A filesystem fails; the rule fires.
    report(&app, "fs/glade", "ok", 600).await;
    report(&app, "fs/glade", "failed", 600).await;
    let alert = open_alert(&app, "firing").await;
    assert_eq!(alert["summary"], "fs/glade on derecho is failed");
    let id = alert["id"].as_str().unwrap().to_owned();

    // An operator acknowledges it from its page.
    let ana = app.sign_in("ana", Role::Operator).await;
    let (status, page) = app.get_as(&ana, &format!("/alerts/{id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Acknowledge"), "the page offers the action to an operator");
    let (_, anonymous) = app.get(&format!("/alerts/{id}")).await;
    assert!(!anonymous.contains("/acknowledge\"") && anonymous.contains("Sign in</a> to acknowledge"));
    let resp = app.post_form(&ana, &format!("/alerts/{id}/acknowledge"), &[("comment", "on it")]).await;
    assert_eq!(resp.status(), 200, "redirected back to the alert");
    let page = resp.text().await.unwrap();
    assert!(page.contains("ACKNOWLEDGED") && page.contains("ana"), "the page shows the acknowledgement");

    // The filesystem recovers.
    report(&app, "fs/glade", "ok", 600).await;
    open_alert(&app, "resolved").await;

    let got = receive_until(&consumer, 3).await;
    let transitions: Vec<&str> = got.iter().map(|m| m.2.transition.as_str()).collect();
    assert_eq!(transitions, ["firing", "acknowledged", "resolved"]);
    for (subject, msg_id, m) in &got {
        assert_eq!(subject, &app.settings.alert_subject("critical", "derecho"));
        assert_eq!(msg_id, &m.event_id.to_string(), "the event id is the Nats-Msg-Id");
        assert_eq!(
            (m.alert_id.to_string(), m.rule.as_str(), m.component.as_str()),
            (id.clone(), "fs-failed", "fs/glade")
        );
        assert!(m.notify);
    }
    assert_eq!((got[1].2.by.as_deref(), got[1].2.comment.as_deref()), (Some("ana"), Some("on it")));
    assert_eq!(got[2].2.reason.as_deref(), Some("status is now ok"));

    // The publisher restarts after publishing but before its checkpoint moved: JetStream drops
    // the repeats, so the subscriber sees nothing twice.
    wait_caught_up(&app, &["alert_publisher"]).await;
    let published = checkpoint(&app, "alert_publisher").await;
    app.pool
        .get()
        .await
        .unwrap()
        .execute("UPDATE projection_checkpoints SET position = 0 WHERE name = 'alert_publisher'", &[])
        .await
        .unwrap();
    eventually("the publisher to go over the log again", || async {
        let p = checkpoint(&app, "alert_publisher").await;
        if p >= published {
            Ok(())
        } else {
            Err(format!("at {p}"))
        }
    })
    .await;
    assert!(receive(&consumer).await.is_empty(), "no transition is delivered twice");

    // sitrep is killed after the evaluator committed an alert but before it was published.
    app.stop_main().await;
    report(&app, "fs/glade", "failed", 600).await;
    eventually("ingest to store the report", || async {
        let n = app.scalar("SELECT count(*) FROM events WHERE event_type = 'StatusReported'").await;
        if n == 4 {
            Ok(())
        } else {
            Err(format!("{n} reports"))
        }
    })
    .await;
    sitrep_projections::catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
    assert_eq!(app.scalar("SELECT count(*) FROM events WHERE event_type = 'AlertRaised'").await, 2, "committed");
    app.start_main().await;
    let again = receive_until(&consumer, 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].2.transition, "firing");
    assert_ne!(again[0].2.alert_id.to_string(), id, "a new firing is a new alert");

    // Rebuilding the alert read model and re-running the evaluator from zero gives the same
    // history, appends nothing, and publishes nothing again.
    wait_caught_up(&app, &["alert_evaluator", "alerts", "alert_publisher"]).await;
    let events_before = app.scalar("SELECT count(*) FROM events").await;
    let alerts_before = dump(&app, "alerts", "alert_id").await;
    let transitions_before = dump(&app, "alert_transitions", "position").await;
    reset(&app.pool, &AlertEvaluator::default()).await.unwrap();
    reset(&app.pool, &Alerts).await.unwrap();
    wait_caught_up(&app, &["alert_evaluator", "alerts"]).await;
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, events_before, "the evaluator decided nothing new");
    assert_eq!(dump(&app, "alerts", "alert_id").await, alerts_before);
    assert_eq!(dump(&app, "alert_transitions", "position").await, transitions_before);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receive(&consumer).await.is_empty(), "nothing published a second time");
    app.cleanup().await;
}

#[tokio::test]
async fn a_quiet_collector_raises_a_stale_alert_from_a_recorded_tick() {
    let app = spawn_app_with_rules("[[rule]]\nname = \"silent\"\nkind = \"stale\"\nseverity = \"warning\"").await;
    report(&app, "login/derecho1", "ok", 1).await;
    let alert = open_alert(&app, "firing").await;
    assert_eq!(alert["kind"], "stale");
    assert!(alert["summary"].as_str().unwrap().contains("has not reported since"), "{alert}");
    assert!(
        app.scalar("SELECT count(*) FROM events WHERE event_type = 'AlertClockTicked'").await >= 1,
        "the tick is in the log"
    );
    // Reporting again resolves it.
    report(&app, "login/derecho1", "ok", 600).await;
    let resolved = open_alert(&app, "resolved").await;
    assert_eq!(resolved["resolved_reason"], "reported again");
    app.cleanup().await;
}

#[tokio::test]
async fn alert_forms_refuse_other_sites_and_bad_input_and_pages_render() {
    let app = spawn_app_with_rules(FS_FAILED).await;
    report(&app, "fs/glade", "failed", 600).await;
    let id = open_alert(&app, "firing").await["id"].as_str().unwrap().to_owned();
    let ack = format!("/alerts/{id}/acknowledge");
    let ana = app.sign_in("ana", Role::Operator).await;
    // Signed in, but posted from another site.
    let evil = app
        .http
        .post(app.url(&ack))
        .header("Origin", "http://evil.example")
        .header("Cookie", &ana.cookie)
        .form(&[("csrf", ana.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    // Not signed in at all.
    let unsigned =
        app.http.post(app.url(&ack)).header("Origin", app.origin()).form(&[("comment", "x")]).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(unsigned.text().await.unwrap().contains("Sign in first"));
    // Signed in, with a token that is not the session's.
    let forged = app
        .http
        .post(app.url(&ack))
        .header("Origin", app.origin())
        .header("Cookie", &ana.cookie)
        .form(&[("csrf", "0".repeat(64).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("security token"));
    // Signed in as a viewer, who may look but not act.
    let vic = app.sign_in("vic", Role::Viewer).await;
    let viewer = app.post_form(&vic, &ack, &[]).await;
    assert_eq!(viewer.status(), 403);
    assert!(viewer.text().await.unwrap().contains("needs the operator role"));
    let forever = app.post_form(&ana, &format!("/alerts/{id}/silence"), &[("for", "soon")]).await;
    assert_eq!(forever.status(), 400);
    let silenced = app.post_form(&ana, &format!("/alerts/{id}/silence"), &[("for", "2h")]).await;
    assert_eq!(silenced.status(), 200);
    assert!(silenced.text().await.unwrap().contains("SILENCED"));
    assert_eq!(
        app.scalar("SELECT count(*) FROM events WHERE event_type = 'AlertAcknowledged'").await,
        0,
        "refused posts store nothing"
    );

    for path in ["/alerts", "/alerts?state=all", "/alerts/rules", "/systems/derecho", "/"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.contains("fs-failed"), "{path} names the rule");
    }
    let (status, body) = app.get_json("/api/v1/alerts?state=sometimes").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("state")));
    let (status, _) = app.get("/alerts/not-an-id").await;
    assert_eq!(status, 400);
    let (status, _) = app.get(&format!("/alerts/{}", uuid::Uuid::nil())).await;
    assert_eq!(status, 404);
    let raised_by: i64 =
        app.get_json(&format!("/api/v1/alerts/{id}")).await.1["transitions"][0]["cause"].as_i64().unwrap();
    let (status, evidence) = app.get_json(&format!("/api/v1/events/{raised_by}")).await;
    assert_eq!((status, evidence["event_type"].as_str()), (200, Some("StatusReported")), "the evidence is the report");
    app.cleanup().await;
}

#[tokio::test]
async fn webhooks_retry_with_backoff_and_failures_show_on_the_alert() {
    use axum::{http::StatusCode, routing::post, Json, Router};
    use sitrep_domain::alert::rules::{Matcher, Route};
    use sitrep_domain::alert::Severity;
    use sitrep_services::alerting::Webhooks;
    use std::sync::{Arc, Mutex};

    // A receiver that fails its first request and takes the rest.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let calls = Arc::new(Mutex::new(0));
    let (r, c) = (received.clone(), calls.clone());
    let receiver = Router::new().route(
        "/hook",
        post(move |Json(body): Json<Value>| {
            let (r, c) = (r.clone(), c.clone());
            async move {
                let mut n = c.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                r.lock().unwrap().push(body);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    // No projections or alerting in the app: this test drives them, with short waits.
    let app = crate::helpers::spawn_app_with_rules_without_projections(FS_FAILED).await;
    sitrep_services::alerting::load_and_record_rules(&app.pool, &app.settings).await.unwrap();
    let route = |name: &str, url: String| Route {
        name: name.into(),
        url,
        severities: vec![Severity::Critical],
        matches: Matcher::parse("derecho:*").unwrap(),
        receivers: vec![],
        group_by: vec![],
        group_wait_secs: 0,
        group_interval_secs: 0,
        repeat_interval_secs: None,
        escalate_after_secs: None,
        escalate_to: None,
        rules: vec![],
        continue_: true,
        labels: Default::default(),
    };
    let routes =
        vec![route("ops", format!("http://127.0.0.1:{port}/hook")), route("dead", "http://127.0.0.1:9/hook".into())];
    let hooks = Webhooks::new(routes.clone(), vec![Duration::from_millis(10), Duration::from_millis(20)]).unwrap();
    let mut runner = sitrep_services::alerting::PlanRunner::new(routes);

    report(&app, "fs/glade", "failed", 600).await;
    crate::helpers::wait_for_events(&app, 3).await; // the rules, the report, the status change
    assert_eq!(notify_all(&app, &mut runner, &hooks).await, 2, "one delivery per route");
    let id = open_alert(&app, "firing").await["id"].as_str().unwrap().to_owned();

    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0]["transition"].as_str(), got[0]["alert_id"].as_str()), (Some("firing"), Some(id.as_str())));
    let (_, body) = app.get_json(&format!("/api/v1/alerts/{id}")).await;
    let deliveries = body["deliveries"].as_array().unwrap();
    let by_route = |name: &str| deliveries.iter().find(|d| d["route"] == name).unwrap().clone();
    assert_eq!((by_route("ops")["delivered"].as_bool(), by_route("ops")["attempts"].as_i64()), (Some(true), Some(2)));
    let dead = by_route("dead");
    assert_eq!((dead["delivered"].as_bool(), dead["attempts"].as_i64()), (Some(false), Some(3)));
    assert!(dead["last_error"].as_str().unwrap().contains("onnection refused"), "{dead}");
    // Each attempt is a row of its own, with its result.
    let attempts: Vec<(String, i64, bool)> = body["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["target"].as_str().unwrap().to_owned(), a["attempt"].as_i64().unwrap(), a["ok"].as_bool().unwrap()))
        .collect();
    let of = |t: &str| attempts.iter().filter(|a| a.0 == t).map(|a| (a.1, a.2)).collect::<Vec<_>>();
    assert_eq!(of("ops"), [(1, false), (2, true)], "{attempts:?}");
    assert_eq!(of("dead"), [(1, false), (2, false), (3, false)], "{attempts:?}");
    let first_ops = body["attempts"].as_array().unwrap().iter().find(|a| a["target"] == "ops").unwrap().clone();
    assert_eq!(first_ops["error"], "HTTP 500 Internal Server Error", "{first_ops}");
    let (_, page) = app.get(&format!("/alerts/{id}")).await;
    assert!(page.contains("FAILED") && page.contains("dead"), "the failure shows on the alert");
    assert!(page.contains("HTTP 500 Internal Server Error"), "each failed attempt shows on the alert");
    let (_, ops) = app.get("/ops").await;
    let notifications = &ops[ops.find("<h2>Notifications</h2>").expect("/ops has a Notifications section")..];
    assert!(
        notifications.contains(">dead</th>") && notifications.contains("onnection refused"),
        "/ops names the failing route"
    );
    assert!(!notifications.contains(">ops</th>"), "a route that delivered is not failing");
    assert_eq!(notify_all(&app, &mut runner, &hooks).await, 0, "each transition is delivered once");

    // The resolution reaches the route that was told of the failure.
    report(&app, "fs/glade", "ok", 600).await;
    // and the raise, the notifier's start, its two decisions, the report, the change
    crate::helpers::wait_for_events(&app, 9).await;
    notify_all(&app, &mut runner, &hooks).await;
    let got = received.lock().unwrap().clone();
    assert_eq!(got.iter().map(|m| m["transition"].as_str().unwrap()).collect::<Vec<_>>(), ["firing", "resolved"]);
    app.cleanup().await;
}

/// Slack, PagerDuty and Matrix receivers on loopback, each checking the body its service
/// documents: one alert fires, is acknowledged and resolves.
#[tokio::test]
async fn receivers_get_their_services_bodies_and_pagerduty_one_incident_from_trigger_to_resolve() {
    use axum::extract::Path;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{post, put};
    use axum::{Json, Router};
    use sitrep_services::alerting::Webhooks;
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<(String, Value)>>>;
    let seen: Seen = Arc::default();
    let (a, b, c) = (seen.clone(), seen.clone(), seen.clone());
    let services = Router::new()
        .route(
            "/slack/T0/B0/XXXX",
            post(move |Json(body): Json<Value>| async move {
                a.lock().unwrap().push(("slack".into(), body));
                StatusCode::OK
            }),
        )
        .route(
            "/custom",
            post({
                let d = seen.clone();
                move |headers: HeaderMap, body: String| async move {
                    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    let parsed: Value = serde_json::from_str(&body).unwrap_or(json!({"unparsed": body}));
                    d.lock().unwrap().push(("custom".into(), json!({"content_type": ct, "body": parsed})));
                    StatusCode::OK
                }
            }),
        )
        .route(
            "/v2/enqueue",
            post(move |Json(body): Json<Value>| async move {
                // What PagerDuty's Events API v2 refuses, this refuses too.
                let ok = body["routing_key"] == "R0UT1NGKEY"
                    && ["trigger", "acknowledge", "resolve"].contains(&body["event_action"].as_str().unwrap_or(""))
                    && body["dedup_key"].is_string()
                    && (body["event_action"] != "trigger"
                        || (body["payload"]["summary"].is_string()
                            && body["payload"]["source"].is_string()
                            && ["critical", "error", "warning", "info"]
                                .contains(&body["payload"]["severity"].as_str().unwrap_or(""))));
                b.lock().unwrap().push(("pagerduty".into(), body));
                if ok {
                    StatusCode::ACCEPTED
                } else {
                    StatusCode::BAD_REQUEST
                }
            }),
        )
        .route(
            "/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}",
            put(move |Path((room, txn)): Path<(String, String)>, headers: HeaderMap, Json(body): Json<Value>| async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                c.lock().unwrap().push(("matrix".into(), json!({"room": room, "txn": txn, "auth": auth, "body": body})));
                Json(json!({"event_id": "$x"}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, services).await });

    let key_file = std::env::temp_dir().join(format!("sitrep-pd-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&key_file, "R0UT1NGKEY\n").unwrap();
    let rules = format!(
        r#"{FS_FAILED}
[[receiver]]
name = "ops-chat"
kind = "slack"
url = "{base}/slack/T0/B0/XXXX"

[[receiver]]
name = "oncall"
kind = "pagerduty"
url = "{base}/v2/enqueue"
routing_key_file = "{key}"

[[receiver]]
name = "ops-room"
kind = "matrix"
url = "{base}"
token = "syt_secret"
room = "!ops:example.org"

[[receiver]]
name = "custom"
kind = "webhook"
url = "{base}/custom"
template = '{{"msg": "{{{{title}}}}", "where": "{{{{system}}}}/{{{{component}}}}"}}'

[[route]]
name = "critical"
receivers = ["ops-chat", "oncall", "ops-room", "custom"]
severity = ["critical"]
group_wait = "0s"
group_interval = "0s"
"#,
        key = key_file.display()
    );
    let app = crate::helpers::spawn_app_with_rules_without_projections(&rules).await;
    let set = sitrep_services::alerting::load_and_record_rules(&app.pool, &app.settings).await.unwrap();
    let receivers = sitrep_infra::alerts::load_receivers(app.settings.alerts_file.as_deref()).unwrap();
    let hooks = Webhooks::new(set.routes.clone(), vec![Duration::from_millis(10)]).unwrap().with_receivers(receivers);
    let mut runner = sitrep_services::alerting::PlanRunner::new(set.routes);

    report(&app, "fs/glade", "failed", 600).await;
    crate::helpers::wait_for_events(&app, 3).await;
    notify_all(&app, &mut runner, &hooks).await;
    let id = open_alert(&app, "firing").await["id"].as_str().unwrap().to_owned();
    let ana = app.sign_in("ana", Role::Operator).await;
    app.post_form(&ana, &format!("/alerts/{id}/acknowledge"), &[("comment", "on it")]).await;
    notify_all(&app, &mut runner, &hooks).await;
    report(&app, "fs/glade", "ok", 600).await;
    eventually("the alert resolved", || async {
        sitrep_projections::catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
        sitrep_projections::catch_up(&app.pool, &Alerts).await.unwrap();
        let (_, body) = app.get_json(&format!("/api/v1/alerts/{id}")).await;
        if body["alert"]["state"] == "resolved" {
            Ok(())
        } else {
            Err(body.to_string())
        }
    })
    .await;
    notify_all(&app, &mut runner, &hooks).await;

    let seen = seen.lock().unwrap().clone();
    let of = |kind: &str| seen.iter().filter(|(k, _)| k == kind).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let slack = of("slack");
    assert_eq!(slack.len(), 3, "{slack:?}");
    assert!(slack[0]["text"].as_str().unwrap().starts_with("[FIRING] CRITICAL derecho fs/glade: "), "{}", slack[0]);
    assert!(slack[1]["blocks"][1]["elements"][0]["text"].as_str().unwrap().contains("By ana: on it"), "{}", slack[1]);
    assert!(slack[2]["text"].as_str().unwrap().starts_with("[RESOLVED]"));
    let pd = of("pagerduty");
    let actions: Vec<&str> = pd.iter().map(|b| b["event_action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
    assert!(pd.iter().all(|b| b["dedup_key"] == id.as_str()), "{pd:?}");
    let matrix = of("matrix");
    assert_eq!(matrix.len(), 3);
    assert_eq!(
        (matrix[0]["room"].as_str(), matrix[0]["auth"].as_str()),
        (Some("!ops:example.org"), Some("Bearer syt_secret"))
    );
    assert_ne!(matrix[0]["txn"], matrix[1]["txn"], "each transition is its own Matrix transaction");
    let custom = of("custom");
    assert_eq!(custom.len(), 3);
    assert_eq!(custom[0]["content_type"], "application/json");
    assert!(
        custom[0]["body"]["msg"].as_str().unwrap().starts_with("[FIRING] CRITICAL derecho fs/glade"),
        "{}",
        custom[0]
    );
    assert_eq!(custom[0]["body"]["where"], "derecho/fs/glade");

    // Each delivery is on the alert, per receiver; no secret is on the rules page.
    let (_, body) = app.get_json(&format!("/api/v1/alerts/{id}")).await;
    let names: std::collections::BTreeSet<&str> =
        body["deliveries"].as_array().unwrap().iter().map(|d| d["route"].as_str().unwrap()).collect();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["custom", "oncall", "ops-chat", "ops-room"]);
    let (_, page) = app.get("/alerts/rules").await;
    assert!(page.contains("ops-chat") && page.contains("pagerduty"), "the receivers are listed");
    for secret in ["R0UT1NGKEY", "syt_secret", "/slack/T0/B0/XXXX"] {
        assert!(!page.contains(secret), "{secret} is shown on /alerts/rules");
    }
    let _ = std::fs::remove_file(key_file);
    app.cleanup().await;
}

/// An `email` receiver against a real SMTP server (aiosmtpd, from the test command's venv):
/// the message it stores has the alert as subject, a plain-text and an HTML part.
#[tokio::test]
async fn an_email_receiver_sends_a_text_and_html_message_that_a_real_smtp_server_takes() {
    use sitrep_services::alerting::Webhooks;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let python = root.join(".sitrep/venv/bin/python");
    assert!(python.exists(), "the SMTP server (aiosmtpd) is in .sitrep/venv: scripts/test installs it");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let maildir = std::env::temp_dir().join(format!("sitrep-mail-{}", uuid::Uuid::new_v4().simple()));
    let mut server = tokio::process::Command::new(&python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually("the SMTP server listening", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;

    let rules = format!(
        r#"{FS_FAILED}
[[receiver]]
name = "ops-mail"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
from = "sitrep@example.org"
to = ["hpc-ops@example.org", "oncall@example.org"]

[[route]]
name = "mail"
receivers = ["ops-mail"]
group_wait = "0s"
"#
    );
    let app = crate::helpers::spawn_app_with_rules_without_projections(&rules).await;
    let set = sitrep_services::alerting::load_and_record_rules(&app.pool, &app.settings).await.unwrap();
    let receivers = sitrep_infra::alerts::load_receivers(app.settings.alerts_file.as_deref()).unwrap();
    let hooks = Webhooks::new(set.routes.clone(), vec![Duration::from_millis(10)]).unwrap().with_receivers(receivers);
    let mut runner = sitrep_services::alerting::PlanRunner::new(set.routes);
    report(&app, "fs/glade", "failed", 600).await;
    crate::helpers::wait_for_events(&app, 3).await;
    assert_eq!(notify_all(&app, &mut runner, &hooks).await, 1);

    let stored = eventually("the message in the mailbox", || async {
        let dir = maildir.join("new");
        let files: Vec<_> =
            std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        match files.as_slice() {
            [one] => Ok(std::fs::read_to_string(one).unwrap()),
            other => Err(format!("{} messages in {}", other.len(), dir.display())),
        }
    })
    .await;
    let header = |name: &str| {
        stored
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {stored}"))
            .to_owned()
    };
    assert_eq!(header("Subject"), "[FIRING] CRITICAL derecho fs/glade: fs/glade on derecho is failed");
    assert_eq!(header("From"), "sitrep@example.org");
    assert_eq!(header("To"), "hpc-ops@example.org, oncall@example.org");
    assert!(stored.contains("multipart/alternative"), "{stored}");
    assert!(stored.contains("Content-Type: text/plain") && stored.contains("Content-Type: text/html"), "{stored}");
    assert!(stored.contains("Component: fs/glade"), "{stored}");
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&maildir);
    app.cleanup().await;
}

/// A chat receiver and a webhook receiver on loopback, recording what they get.
async fn recording_receivers() -> (String, std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>) {
    use axum::routing::post;
    use axum::{extract::Path, Json, Router};
    let seen: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>> = Default::default();
    let s = seen.clone();
    let app = Router::new().route(
        "/{name}",
        post(move |Path(name): Path<String>, Json(body): Json<Value>| async move {
            s.lock().unwrap().push((name, body));
            axum::http::StatusCode::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

/// Runs the evaluator until the log holds `n` alert events.
async fn alert_events(app: &TestApp, n: i64) {
    eventually(&format!("{n} alert events"), || async {
        sitrep_projections::catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
        let found = app.scalar("SELECT count(*) FROM events WHERE aggregate_type = 'alert'").await;
        if found == n {
            Ok(())
        } else {
            Err(format!("{found}"))
        }
    })
    .await;
}

fn grouped_rules(base: &str) -> String {
    format!(
        r#"{FS_FAILED}
[[receiver]]
name = "ops-chat"
kind = "slack"
url = "{base}/slack"

[[receiver]]
name = "ops-hook"
kind = "discord"
url = "{base}/discord"

[[route]]
name = "all"
receivers = ["ops-chat", "ops-hook"]
group_by = ["system"]
group_wait = "30s"
"#
    )
}

#[tokio::test]
async fn a_burst_of_50_failures_in_one_system_inside_group_wait_is_one_message_per_receiver() {
    use sitrep_services::alerting::{PlanRunner, Webhooks};
    let (base, seen) = recording_receivers().await;
    let app = crate::helpers::spawn_app_with_rules_without_projections(&grouped_rules(&base)).await;
    let set = sitrep_services::alerting::load_and_record_rules(&app.pool, &app.settings).await.unwrap();
    let receivers = sitrep_infra::alerts::load_receivers(app.settings.alerts_file.as_deref()).unwrap();
    let hooks = Webhooks::new(set.routes.clone(), vec![]).unwrap().with_receivers(receivers);
    let mut runner = PlanRunner::new(set.routes);

    let reports: Vec<Value> =
        (0..50).map(|i| json!({"component": format!("fs/pool{i:02}"), "status": "failed"})).collect();
    app.publish("derecho", json!({"system": "derecho", "reports": reports}).to_string()).await;
    alert_events(&app, 50).await;
    // Inside group_wait, nothing is decided; at its end, one decision per receiver.
    assert_eq!(notify_all(&app, &mut runner, &hooks).await, 0);
    assert!(seen.lock().unwrap().is_empty());
    let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(31);
    assert_eq!(runner.step(&app.pool, later).await.unwrap(), 2);
    let cancel = tokio_util::sync::CancellationToken::new();
    while sitrep_services::alerting::webhook_step(&app.pool, &hooks, &cancel).await.unwrap().1 {}

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let slack = &seen.iter().find(|(n, _)| n == "slack").unwrap().1;
    assert_eq!(slack["text"], "50 alerts on derecho: 50 firing");
    let discord = &seen.iter().find(|(n, _)| n == "discord").unwrap().1;
    assert!(discord["content"]
        .as_str()
        .unwrap()
        .starts_with("50 alerts on derecho: 50 firing\n[FIRING] CRITICAL derecho fs/pool"));
    // Every alert's page shows its delivery to both.
    let delivered = app.scalar("SELECT count(*) FROM alert_deliveries WHERE delivered").await;
    assert_eq!(delivered, 100);
    app.cleanup().await;
}

#[tokio::test]
async fn a_decision_recorded_before_a_restart_is_delivered_once_after_it() {
    use sitrep_services::alerting::{PlanRunner, Webhooks};
    let (base, seen) = recording_receivers().await;
    let rules = grouped_rules(&base).replace("group_wait = \"30s\"", "group_wait = \"0s\"");
    let app = crate::helpers::spawn_app_with_rules_without_projections(&rules).await;
    let set = sitrep_services::alerting::load_and_record_rules(&app.pool, &app.settings).await.unwrap();
    report(&app, "fs/glade", "failed", 600).await;
    alert_events(&app, 1).await;
    // The planner decides and records; sitrep stops before anything is delivered.
    let mut before = PlanRunner::new(set.routes.clone());
    assert_eq!(before.step(&app.pool, time::OffsetDateTime::now_utc()).await.unwrap(), 2);
    drop(before);
    assert!(seen.lock().unwrap().is_empty());

    // After the restart: a new planner folds the log and decides nothing again; delivery sends
    // each recorded decision once.
    let receivers = sitrep_infra::alerts::load_receivers(app.settings.alerts_file.as_deref()).unwrap();
    let hooks = Webhooks::new(set.routes.clone(), vec![]).unwrap().with_receivers(receivers);
    let mut after = PlanRunner::new(set.routes);
    assert_eq!(notify_all(&app, &mut after, &hooks).await, 2);
    assert_eq!(notify_all(&app, &mut after, &hooks).await, 0);
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(app.scalar("SELECT count(*) FROM events WHERE event_type = 'NotificationDecided'").await, 2);
    app.cleanup().await;
}

#[tokio::test]
async fn a_route_by_labels_takes_the_alerts_of_components_labelled_so_and_the_message_carries_them() {
    use sitrep_services::alerting::{PlanRunner, Webhooks};
    let (base, seen) = recording_receivers().await;
    let rules = grouped_rules(&base).replace(
        "[[route]]\nname = \"all\"\nreceivers = [\"ops-chat\", \"ops-hook\"]",
        "[[route]]\nname = \"storage\"\nreceivers = [\"ops-hook\"]\nlabels = { kind = \"file*\" }\ngroup_wait = \"0s\"\n\n\
         [[route]]\nname = \"all\"\nreceivers = [\"ops-chat\"]",
    );
    assert!(rules.contains("labels"), "{rules}");
    let rules = rules.replace("group_wait = \"30s\"", "group_wait = \"0s\"");
    let app = crate::helpers::spawn_app_with_rules_without_projections(&rules).await;
    let set = sitrep_services::alerting::load_and_record_rules(&app.pool, &app.settings).await.unwrap();
    let receivers = sitrep_infra::alerts::load_receivers(app.settings.alerts_file.as_deref()).unwrap();
    let hooks = Webhooks::new(set.routes.clone(), vec![]).unwrap().with_receivers(receivers);
    let mut runner = PlanRunner::new(set.routes);
    // The batch's labels and the report's own, merged; one report without labels.
    let batch = json!({"system": "derecho", "labels": {"site": "nwsc"}, "reports": [
        {"component": "fs/glade", "status": "failed", "labels": {"kind": "filesystem"}},
        {"component": "fs/scratch", "status": "failed"},
    ]});
    app.publish("derecho", batch.to_string()).await;
    alert_events(&app, 2).await;
    assert_eq!(notify_all(&app, &mut runner, &hooks).await, 2);

    let seen = seen.lock().unwrap().clone();
    let texts: Vec<(String, String)> = seen
        .iter()
        .map(|(n, body)| (n.clone(), body["text"].as_str().or(body["content"].as_str()).unwrap_or("").to_owned()))
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts.iter().any(|(n, t)| n == "discord" && t.contains("fs/glade") && !t.contains("fs/scratch")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|(n, t)| n == "slack" && t.contains("fs/scratch") && !t.contains("fs/glade")),
        "{texts:?}"
    );
    // The alert and its message carry the labels.
    let client = app.pool.get().await.unwrap();
    let decided: Value = client
        .query_one(
            "SELECT payload FROM events WHERE event_type = 'NotificationDecided' AND payload::text LIKE '%fs/glade%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    drop(client);
    assert_eq!(decided["NotificationDecided"]["messages"][0]["labels"], json!({"kind": "filesystem", "site": "nwsc"}));
    app.cleanup().await;
}

#[tokio::test]
async fn a_critical_alert_not_acknowledged_in_time_escalates_and_its_page_says_so() {
    use sitrep_services::alerting::{PlanRunner, Webhooks};
    let (base, seen) = recording_receivers().await;
    let rules = grouped_rules(&base).replace(
        "receivers = [\"ops-chat\", \"ops-hook\"]",
        "receivers = [\"ops-chat\"]\nescalate_after = \"10m\"\nescalate_to = \"ops-hook\"",
    );
    let rules = rules.replace("group_wait = \"30s\"", "group_wait = \"0s\"");
    assert!(rules.contains("escalate_to"), "{rules}");
    let app = crate::helpers::spawn_app_with_rules_without_projections(&rules).await;
    let set = sitrep_services::alerting::load_and_record_rules(&app.pool, &app.settings).await.unwrap();
    let receivers = sitrep_infra::alerts::load_receivers(app.settings.alerts_file.as_deref()).unwrap();
    let hooks = Webhooks::new(set.routes.clone(), vec![]).unwrap().with_receivers(receivers);
    let mut runner = PlanRunner::new(set.routes);
    report(&app, "fs/glade", "failed", 3600).await;
    alert_events(&app, 1).await;
    assert_eq!(notify_all(&app, &mut runner, &hooks).await, 1, "the chat hears of it at once");
    let id = open_alert(&app, "firing").await["id"].as_str().unwrap().to_owned();
    let (_, page) = app.get(&format!("/alerts/{id}")).await;
    assert!(!page.contains("<dt>Escalated</dt>"), "not escalated yet");

    // Ten minutes on, still not acknowledged: the next receiver gets it, once.
    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(10) + time::Duration::seconds(1);
    assert_eq!(runner.step(&app.pool, later).await.unwrap(), 1);
    assert_eq!(runner.step(&app.pool, later + time::Duration::minutes(30)).await.unwrap(), 0);
    let cancel = tokio_util::sync::CancellationToken::new();
    while sitrep_services::alerting::webhook_step(&app.pool, &hooks, &cancel).await.unwrap().1 {}
    let seen = seen.lock().unwrap().clone();
    let targets: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(targets, ["slack", "discord"]);
    let escalation = seen[1].1["content"].as_str().unwrap();
    assert!(escalation.starts_with("[ESCALATED] CRITICAL derecho fs/glade"), "{escalation}");
    let (_, page) = app.get(&format!("/alerts/{id}")).await;
    assert!(page.contains("<dt>Escalated</dt><dd>to ops-hook"), "the alert's page names the escalation");
    assert!(page.contains("<strong>escalation</strong>"), "and lists its delivery");
    app.cleanup().await;
}

/// Teams, Discord, ntfy, Gotify and Telegram on loopback: each request has the method, path,
/// headers and body its service documents.
#[tokio::test]
async fn chat_and_push_receivers_get_the_requests_their_services_document() {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use sitrep_services::alerting::{PlanRunner, Webhooks};
    use std::sync::{Arc, Mutex};

    /// Method, path, headers and body of each request.
    type Requests = Arc<Mutex<Vec<(String, String, HeaderMap, Bytes)>>>;
    let seen: Requests = Arc::default();
    let s = seen.clone();
    let services = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let s = s.clone();
        async move {
            s.lock().unwrap().push((method.to_string(), uri.path().to_owned(), headers, body));
            StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, services).await });
    let rules = format!(
        r#"{FS_FAILED}
[[receiver]]
name = "teams"
kind = "teams"
url = "{base}/workflows/abc"
[[receiver]]
name = "discord"
kind = "discord"
url = "{base}/api/webhooks/1/xyz"
[[receiver]]
name = "ntfy"
kind = "ntfy"
url = "{base}/hpc-ops"
[[receiver]]
name = "gotify"
kind = "gotify"
url = "{base}"
token = "AppToken"
[[receiver]]
name = "telegram"
kind = "telegram"
url = "{base}"
token = "123:abc"
chat_id = -1001

[[route]]
name = "all"
receivers = ["teams", "discord", "ntfy", "gotify", "telegram"]
group_wait = "0s"
"#
    );
    let app = crate::helpers::spawn_app_with_rules_without_projections(&rules).await;
    let set = sitrep_services::alerting::load_and_record_rules(&app.pool, &app.settings).await.unwrap();
    let receivers = sitrep_infra::alerts::load_receivers(app.settings.alerts_file.as_deref()).unwrap();
    let hooks = Webhooks::new(set.routes.clone(), vec![]).unwrap().with_receivers(receivers);
    let mut runner = PlanRunner::new(set.routes);
    report(&app, "fs/glade", "failed", 600).await;
    alert_events(&app, 1).await;
    assert_eq!(notify_all(&app, &mut runner, &hooks).await, 5);

    let seen = seen.lock().unwrap().clone();
    let at =
        |path: &str| seen.iter().find(|r| r.1 == path).unwrap_or_else(|| panic!("nothing at {path}: {seen:?}")).clone();
    let json = |b: &Bytes| serde_json::from_slice::<Value>(b).unwrap();
    let title = "[FIRING] CRITICAL derecho fs/glade: fs/glade on derecho is failed";

    let (method, _, _, body) = at("/workflows/abc");
    let teams = json(&body);
    assert_eq!((method.as_str(), teams["type"].as_str()), ("POST", Some("message")));
    let card = &teams["attachments"][0];
    assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(
        (card["content"]["type"].as_str(), card["content"]["version"].as_str()),
        (Some("AdaptiveCard"), Some("1.4"))
    );
    assert_eq!(card["content"]["body"][0]["text"], title);

    let (_, _, _, body) = at("/api/webhooks/1/xyz");
    assert!(json(&body)["content"].as_str().unwrap().starts_with(title));

    let (method, _, headers, body) = at("/hpc-ops");
    assert_eq!(method, "POST");
    assert_eq!(headers["title"], title);
    assert_eq!((headers["priority"].to_str().unwrap(), headers["tags"].to_str().unwrap()), ("5", "rotating_light"));
    assert!(String::from_utf8_lossy(&body).starts_with("Rule fs-failed (status)"));

    let (_, _, headers, body) = at("/message");
    assert_eq!(headers["x-gotify-key"], "AppToken");
    let gotify = json(&body);
    assert_eq!((gotify["title"].as_str(), gotify["priority"].as_i64()), (Some(title), Some(8)));

    let (_, _, _, body) = at("/bot123:abc/sendMessage");
    let telegram = json(&body);
    assert_eq!(telegram["chat_id"], "-1001");
    assert!(telegram["text"].as_str().unwrap().starts_with(title));
    app.cleanup().await;
}

#[tokio::test]
async fn sitrep_with_alerting_keeps_running_until_told_to_stop() {
    // Every part runs until cancelled; one that returned early would stop the whole process.
    for rules in ["", FS_FAILED] {
        let (mut settings, db_name) = crate::helpers::isolated_settings().await;
        settings.alerts_file = Some(crate::helpers::write_rules(&db_name, rules));
        let running = sitrep_services::app::start(settings.clone(), sitrep_services::app::Parts::ALL).await.unwrap();
        let started = tokio::time::Instant::now();
        running.run_until_stopped(tokio::time::sleep(Duration::from_secs(2))).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(2), "sitrep stopped by itself (rules: {rules:?})");
        crate::helpers::drop_isolated(&settings, &db_name).await;
    }
}

#[tokio::test]
async fn the_python_subscriber_in_the_docs_receives_a_failure_and_its_resolution() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let python = root.join(".sitrep/venv/bin/python");
    assert!(python.exists(), "the Python examples need nats-py in .sitrep/venv: scripts/test installs it");
    let app = spawn_app_with_rules(FS_FAILED).await;
    let subscriber = tokio::process::Command::new(&python)
        .arg(root.join("examples/alerts/subscriber.py"))
        .args(["--nats", &app.settings.nats_url, "--stream", &app.settings.alerts_stream])
        .args(["--subject", &app.settings.alert_subjects(), "--durable", "py-test", "--count", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    report(&app, "fs/glade", "failed", 600).await;
    open_alert(&app, "firing").await;
    report(&app, "fs/glade", "ok", 600).await;
    let out = tokio::time::timeout(crate::helpers::DEADLINE, subscriber.wait_with_output())
        .await
        .expect("the subscriber prints two transitions and exits")
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].contains("CRITICAL FIRING") && lines[0].contains("derecho/fs/glade: fs/glade on derecho is failed"),
        "{stdout}"
    );
    assert!(lines[1].contains("RESOLVED") && lines[1].contains("(status is now ok)"), "{stdout}");
    app.cleanup().await;
}

#[tokio::test]
async fn starting_without_a_rules_file_keeps_the_rules_in_force() {
    let app = spawn_app_with_rules(FS_FAILED).await;
    let recorded = || app.scalar("SELECT count(*) FROM events WHERE event_type = 'AlertRulesLoaded'");
    assert_eq!(recorded().await, 1);
    let mut elsewhere = app.settings.clone();
    elsewhere.alerts_file = None; // and the tests' working directory has no alerts.toml
    let rules = sitrep_services::alerting::load_and_record_rules(&app.pool, &elsewhere).await.unwrap();
    assert_eq!(rules.rules.len(), 1, "the recorded rules stay in force");
    assert_eq!(recorded().await, 1, "nothing new is recorded");
    // A configured file that is missing is an error that names it.
    elsewhere.alerts_file = Some("/nonexistent/alerts.toml".into());
    let e = sitrep_services::alerting::load_and_record_rules(&app.pool, &elsewhere).await.unwrap_err();
    assert!(format!("{e:#}").contains("reading the alert rules /nonexistent/alerts.toml"), "{e:#}");
    app.cleanup().await;
}

#[tokio::test]
async fn an_evaluator_whose_kept_state_is_behind_the_log_reads_the_saved_state_instead() {
    let app = evaluator_without_runners(FS_FAILED).await;
    let reports_stored = |n: i64| reports_stored(&app, n);
    let saved = || saved_evaluator_state(&app);

    // Given an evaluator that has kept its state in memory...
    let kept = AlertEvaluator::default();
    report(&app, "fs/glade", "ok", 600).await;
    reports_stored(1).await;
    sitrep_projections::catch_up(&app.pool, &kept).await.unwrap();
    // ...when another process moves the evaluator on past it (a failure, an alert raised)...
    report(&app, "fs/scratch", "failed", 600).await;
    reports_stored(2).await;
    sitrep_projections::catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
    assert_eq!(app.scalar("SELECT count(*) FROM events WHERE event_type = 'AlertRaised'").await, 1);
    // ...and the first one then takes the next events,
    report(&app, "fs/campaign", "ok", 600).await;
    reports_stored(3).await;
    sitrep_projections::catch_up(&app.pool, &kept).await.unwrap();

    // then it started from the saved snapshot and the events after it, not from its own state:
    // it knows the alert the other raised, though no snapshot since has it.
    let snapshot_at = app.scalar("SELECT position FROM alert_evaluator_state").await;
    let checkpoint = app.scalar("SELECT position FROM projection_checkpoints WHERE name = 'alert_evaluator'").await;
    assert!(snapshot_at < checkpoint, "the snapshot ({snapshot_at}) is older than the checkpoint ({checkpoint})");
    let state = saved().await;
    assert!(state["open"].get("fs-failed|derecho:fs/scratch").is_some(), "the open alert is in {state}");
    // And its state is what a fresh evaluator makes of the same log from the start.
    reset(&app.pool, &AlertEvaluator::default()).await.unwrap();
    sitrep_projections::catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
    assert_eq!(saved().await, state);
    app.cleanup().await;
}

#[tokio::test]
async fn an_evaluator_state_saved_whole_by_an_earlier_sitrep_is_split_into_component_rows_losing_nothing() {
    let app = evaluator_without_runners(FS_FAILED).await;
    let client = app.pool.get().await.unwrap();
    let stored = |n: i64| reports_stored(&app, n);
    let saved = || saved_evaluator_state(&app);
    report(&app, "fs/glade", "ok", 600).await;
    report(&app, "fs/scratch", "failed", 600).await;
    stored(2).await;
    sitrep_projections::catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
    let whole = saved().await;
    assert_eq!(whole["components"].as_object().map(|c| c.len()), Some(2), "{whole}");
    assert_eq!(app.scalar("SELECT count(*) FROM alert_evaluator_components").await, 2, "one row per component");
    let doc = app.scalar("SELECT count(*) FROM alert_evaluator_state WHERE state ? 'components'").await;
    assert_eq!(doc, 0, "the saved document holds everything but the components");

    // Given the state as an earlier sitrep saved it: one document with every component, no rows...
    // (as of its checkpoint, which is what migration V6 records for a state saved at every step)
    client
        .execute(
            "UPDATE alert_evaluator_state SET state = $1,
             position = (SELECT position FROM projection_checkpoints WHERE name = 'alert_evaluator')",
            &[&whole],
        )
        .await
        .unwrap();
    client.execute("DELETE FROM alert_evaluator_components", &[]).await.unwrap();
    // ...when a fresh evaluator goes on from it,
    report(&app, "fs/campaign", "ok", 600).await;
    stored(3).await;
    sitrep_projections::catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
    // then every component, touched or not, has its row, and the document lost its copy.
    assert_eq!(app.scalar("SELECT count(*) FROM alert_evaluator_components").await, 3);
    assert_eq!(app.scalar("SELECT count(*) FROM alert_evaluator_state WHERE state ? 'components'").await, 0);
    let after = saved().await;
    assert!(after["open"].get("fs-failed|derecho:fs/scratch").is_some(), "the open alert is kept: {after}");
    // And the state is what a fresh evaluator makes of the same log from the start.
    reset(&app.pool, &AlertEvaluator::default()).await.unwrap();
    sitrep_projections::catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
    assert_eq!(saved().await, after);
    app.cleanup().await;
}

#[tokio::test]
async fn the_evaluator_saves_its_state_every_so_many_events_and_a_restart_in_between_goes_on_exactly() {
    // A failed filesystem raises an alert at once, and another if it stays failed for an hour.
    let rules = format!("{FS_FAILED}\n[[rule]]\nname = \"fs-failed-long\"\nmatch = \"*:fs/*\"\nkind = \"status\"\nstatus = [\"failed\"]\nfor = \"1h\"\nseverity = \"warning\"\n");
    let app = evaluator_without_runners(&rules).await;
    let snapshot_at = || app.scalar("SELECT position FROM alert_evaluator_state");
    let checkpoint = || app.scalar("SELECT position FROM projection_checkpoints WHERE name = 'alert_evaluator'");
    let rows = || app.scalar("SELECT count(*) FROM alert_evaluator_components");
    let raised = || app.scalar("SELECT count(*) FROM events WHERE event_type = 'AlertRaised'");
    let rarely = || AlertEvaluator::snapshot_every(1_000_000);

    // Given an evaluator that saved a snapshot at its first step...
    let running = rarely();
    report(&app, "fs/glade", "ok", 600).await;
    reports_stored(&app, 1).await;
    sitrep_projections::catch_up(&app.pool, &running).await.unwrap();
    let first = snapshot_at().await;
    assert_eq!(first, checkpoint().await, "the first step saves a snapshot");
    assert_eq!(sitrep_services::alerting::tick_if_due(&app.pool, time::OffsetDateTime::now_utc()).await.unwrap(), None);
    // ...when a filesystem fails,
    report(&app, "fs/scratch", "failed", 600).await;
    reports_stored(&app, 2).await;
    sitrep_projections::catch_up(&app.pool, &running).await.unwrap();
    // (and takes in the alert it raised, so that it has seen the whole log)
    sitrep_projections::catch_up(&app.pool, &running).await.unwrap();
    // then it raises the alert but saves no snapshot: only when it is next due, for the clock.
    assert_eq!(raised().await, 1);
    assert_eq!(snapshot_at().await, first);
    assert!(checkpoint().await > first);
    assert_eq!(rows().await, 1, "only the first step's component has a row");
    let now = time::OffsetDateTime::now_utc();
    let due = sitrep_services::alerting::tick_if_due(&app.pool, now).await.unwrap().expect("due in an hour");
    assert!((due - now - time::Duration::HOUR).abs() < time::Duration::minutes(1), "due {due}, now {now}");

    // When it restarts (a new process) between snapshots and goes on,
    report(&app, "fs/campaign", "ok", 600).await;
    reports_stored(&app, 3).await;
    sitrep_projections::catch_up(&app.pool, &rarely()).await.unwrap();
    // then it applied the events after the snapshot again without deciding anything twice.
    assert_eq!(raised().await, 1, "no alert raised twice");
    assert_eq!(snapshot_at().await, first);
    // And when a snapshot is due, it saves every component touched since the last one,
    report(&app, "fs/other", "ok", 600).await;
    reports_stored(&app, 4).await;
    sitrep_projections::catch_up(&app.pool, &AlertEvaluator::snapshot_every(1)).await.unwrap();
    assert_eq!(snapshot_at().await, checkpoint().await);
    assert_eq!(rows().await, 4);
    // and the state is what a fresh evaluator makes of the same log from the start.
    let state = saved_evaluator_state(&app).await;
    assert!(state["open"].get("fs-failed|derecho:fs/scratch").is_some(), "the open alert is in {state}");
    reset(&app.pool, &AlertEvaluator::default()).await.unwrap();
    sitrep_projections::catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
    assert_eq!(saved_evaluator_state(&app).await, state);
    assert_eq!(raised().await, 1);
    app.cleanup().await;
}

/// Schedules maintenance window `pm` of derecho over fs/glade, from a minute ago to an hour from
/// now; or, with `move_off`, changes it to name another component instead.
async fn glade_maintenance(app: &TestApp, move_off: bool) {
    let now = time::OffsetDateTime::now_utc();
    let t = |d: time::Duration| (now + d).format(&time::format_description::well_known::Rfc3339).unwrap();
    let window = if move_off {
        json!({"system": "derecho", "action": "update", "id": "pm", "components": ["fs/home"]})
    } else {
        json!({"system": "derecho", "action": "schedule", "id": "pm", "kind": "maintenance",
               "title": "Filesystem upgrade", "components": ["fs/glade"],
               "starts_at": t(-time::Duration::MINUTE), "ends_at": t(time::Duration::HOUR)})
    };
    let subject = app.settings.subject(sitrep_domain::wire::MessageKind::Maintenance, "derecho");
    app.publish_to(&subject, window.to_string(), None).await;
}

#[tokio::test]
async fn an_alert_raised_in_maintenance_notifies_no_one_until_the_window_is_over() {
    let app = spawn_app_with_rules(FS_FAILED).await;
    let consumer = subscriber(&app).await;
    glade_maintenance(&app, false).await;
    eventually("the window in the read model", || async {
        let (_, api) = app.get_json("/api/v1/outages").await;
        if api["maintenance"].as_array().is_some_and(|a| !a.is_empty()) {
            Ok(())
        } else {
            Err(api.to_string())
        }
    })
    .await;

    // A filesystem inside the window fails: the alert is recorded, with the window, and the
    // bus hears of it, but not as something to page about.
    report(&app, "fs/glade", "failed", 600).await;
    let alert = open_alert(&app, "firing").await;
    assert_eq!(alert["maintenance"], "derecho/pm");
    let id = alert["id"].as_str().unwrap().to_owned();
    let (_, page) = app.get(&format!("/alerts/{id}")).await;
    assert!(page.contains("notifies no one until the window is over"), "{page}");
    let (_, list) = app.get("/alerts").await;
    assert!(list.contains("raised in maintenance derecho/pm, not notified"), "{list}");
    let firing = receive_until(&consumer, 1).await;
    assert_eq!((firing[0].2.transition.as_str(), firing[0].2.notify), ("firing", false));
    assert_eq!(firing[0].2.maintenance.as_deref(), Some("derecho/pm"));

    // The window no longer names the filesystem, which is still failed: now someone should look.
    // (A window that ends or is cancelled quiets its alerts for a grace of 5 minutes more.)
    glade_maintenance(&app, true).await;
    let ended = receive_until(&consumer, 1).await;
    assert_eq!((ended[0].2.transition.as_str(), ended[0].2.notify), ("maintenance_ended", true));
    assert_eq!(ended[0].2.alert_id.to_string(), id);
    let page = eventually("the page to show the end of the maintenance", || async {
        let (_, page) = app.get(&format!("/alerts/{id}")).await;
        if page.contains("which ended for it") {
            Ok(page)
        } else {
            Err(page)
        }
    })
    .await;
    assert!(page.contains("maintenance_ended"), "the timeline shows it");

    // Its resolution is notified like any other alert's.
    report(&app, "fs/glade", "ok", 600).await;
    let resolved = receive_until(&consumer, 1).await;
    assert_eq!((resolved[0].2.transition.as_str(), resolved[0].2.notify), ("resolved", true));

    // The evaluator run again from the start decides exactly the same.
    wait_caught_up(&app, &["alert_evaluator", "alerts"]).await;
    let events_before = app.scalar("SELECT count(*) FROM events").await;
    reset(&app.pool, &AlertEvaluator::default()).await.unwrap();
    wait_caught_up(&app, &["alert_evaluator"]).await;
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, events_before, "nothing decided anew");
    app.cleanup().await;
}

#[tokio::test]
async fn an_evaluator_restored_from_a_snapshot_still_knows_the_windows_scheduled_before_it() {
    let app = evaluator_without_runners(FS_FAILED).await;
    let in_maintenance = || {
        app.scalar(
            "SELECT count(*) FROM events
             WHERE event_type = 'AlertRaised' AND payload->'Raised'->'info'->>'maintenance' = 'derecho/pm'",
        )
    };
    // Given a snapshot saved after the window was scheduled,
    glade_maintenance(&app, false).await;
    report(&app, "fs/glade", "ok", 600).await;
    reports_stored(&app, 1).await;
    sitrep_projections::catch_up(&app.pool, &AlertEvaluator::snapshot_every(1)).await.unwrap();
    assert_eq!(
        app.scalar("SELECT position FROM alert_evaluator_state").await,
        app.scalar("SELECT max(position) FROM events").await,
        "the snapshot is past the window"
    );
    // when a new process restores it and the filesystem fails,
    report(&app, "fs/glade", "failed", 600).await;
    reports_stored(&app, 2).await;
    sitrep_projections::catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
    // then the alert is raised in the window.
    assert_eq!(app.scalar("SELECT count(*) FROM events WHERE event_type = 'AlertRaised'").await, 1);
    assert_eq!(in_maintenance().await, 1, "raised inside the window");
    app.cleanup().await;
}

/// An app whose projections do not run (the test steps the evaluator itself), with `rules`
/// recorded in the log.
async fn evaluator_without_runners(rules: &str) -> TestApp {
    use sitrep_domain::alert::{EvaluatorEvent, RuleSet};
    let app = crate::helpers::spawn_app_with_rules_without_projections(rules).await;
    let rules = RuleSet::parse_toml(rules, 600).unwrap();
    let mut client = app.pool.get().await.unwrap();
    sitrep_infra::alerts::record(&mut client, &EvaluatorEvent::RulesLoaded { rules, source: "test".into() })
        .await
        .unwrap();
    app
}

/// Waits until `n` reports are in the log.
async fn reports_stored(app: &TestApp, n: i64) {
    eventually(&format!("{n} reports stored"), || async {
        let found = app.scalar("SELECT count(*) FROM events WHERE event_type = 'StatusReported'").await;
        if found == n {
            Ok(())
        } else {
            Err(format!("{found}"))
        }
    })
    .await
}

/// The evaluator's saved state, as JSON.
async fn saved_evaluator_state(app: &TestApp) -> Value {
    let client = app.pool.get().await.unwrap();
    serde_json::to_value(sitrep_projections::alerts::evaluator_state(&**client).await.unwrap()).unwrap()
}

#[tokio::test]
async fn the_home_page_tile_shows_a_systems_worst_few_alerts_and_counts_the_rest() {
    // Arrange: seven filesystems of derecho fail, so seven critical alerts are open.
    let app = spawn_app_with_rules(FS_FAILED).await;
    for n in 0..7 {
        report(&app, &format!("fs/scratch{n}"), "failed", 600).await;
    }
    eventually("seven open alerts", || async {
        let open = app.scalar("SELECT count(*) FROM alerts WHERE state <> 'resolved'").await;
        (open == 7).then_some(()).ok_or(format!("{open} open"))
    })
    .await;

    // Act
    let (status, html) = app.get("/").await;

    // Assert: five on the tile (the most it shows), the other two counted, seven in all.
    assert_eq!(status, 200);
    let tile = &html[html.find("tile-alerts").expect("the tile lists alerts")..];
    let tile = &tile[..tile.find("tile-foot").expect("the tile's foot")];
    assert_eq!(tile.matches("class=\"firing sev-critical").count(), 5, "{tile}");
    assert!(tile.contains("and 2 more"), "{tile}");
    assert!(html.contains(">7 open alerts</a>"), "the total over every system");
}

#[tokio::test]
async fn an_alert_raised_while_its_system_has_a_major_outage_gives_way_to_it() {
    let app = spawn_app_with_rules(FS_FAILED).await;
    let subject = app.settings.subject(sitrep_domain::wire::MessageKind::Outage, "derecho");
    let declared = json!({"system": "derecho", "action": "declare", "id": "sched", "severity": "major",
                          "title": "Scheduler down"});
    app.publish_to(&subject, declared.to_string(), None).await;
    eventually("the outage in the log", || async {
        match app.scalar("SELECT count(*) FROM events WHERE event_type = 'OutageDeclared'").await {
            1 => Ok(()),
            n => Err(format!("{n}")),
        }
    })
    .await;
    report(&app, "fs/glade", "failed", 600).await;
    let alert = open_alert(&app, "firing").await;
    assert_eq!(alert["impacted_by"], "outage derecho/sched", "{alert}");
    let id = alert["id"].as_str().unwrap();
    let (_, page) = app.get(&format!("/alerts/{id}")).await;
    assert!(page.contains("The declared outage derecho/sched of its system was in force"), "the page says why");
    let notify = app.scalar("SELECT count(*) FROM alert_transitions WHERE notify").await;
    assert_eq!(notify, 0, "it notifies no one");
    app.cleanup().await;
}
