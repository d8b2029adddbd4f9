//! Collectors' side end to end: HTTP ingest with API keys, outages and maintenance over NATS,
//! HTTP and forms, sessions, the published contract (schema and decoder agree on one corpus),
//! and the example collectors in three languages.

use crate::helpers::{eventually, spawn_app, wait_for_components, wait_for_events, wait_for_quarantined, TestApp};
use serde_json::{json, Value};
use sitrep_domain::wire::{self, MessageKind};
use sitrep_infra::auth::{self, Role};
use std::path::PathBuf;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

pub(crate) async fn key_for(app: &TestApp, name: &str, systems: &[&str]) -> String {
    let client = app.pool.get().await.unwrap();
    let systems: Vec<String> = systems.iter().map(|s| s.to_string()).collect();
    auth::create_key(&**client, name, &systems).await.unwrap()
}

async fn post_json(app: &TestApp, path: &str, key: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let mut req = app.http.post(app.url(path)).header("Content-Type", "application/json").body(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} answered {status} with non-JSON ({e}): {text}")),
    )
}

#[tokio::test]
async fn http_ingest_stores_what_a_key_may_send_and_refuses_the_rest_with_reasons() {
    let app = spawn_app().await;
    let casper = key_for(&app, "casper-collector", &["casper"]).await;
    let derecho = key_for(&app, "derecho-collector", &["derecho"]).await;
    let report = json!({"system": "derecho", "component": "login/derecho1", "status": "ok"}).to_string();

    // A key issued for casper may not speak for derecho: 403, and nothing reaches the stream.
    let (status, body) = post_json(&app, "/api/v1/reports", Some(&casper), report.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("casper-collector"), "{body}");
    // No key, a malformed header, an unknown key: 401.
    assert_eq!(post_json(&app, "/api/v1/reports", None, report.clone()).await.0, 401);
    let (status, body) = post_json(&app, "/api/v1/reports", Some("sitrep_not-a-key"), report.clone()).await;
    assert_eq!((status, body["error"].as_str().unwrap().contains("unknown or revoked")), (401, true), "{body}");
    // Wrong types: 400, naming each field.
    let (status, body) =
        post_json(&app, "/api/v1/reports", Some(&derecho), r#"{"system":"derecho","component":"x","status":"green"}"#)
            .await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (400, Some("status")), "{body}");
    let (status, body) = post_json(&app, "/api/v1/reports", Some(&derecho), "{not json").await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (400, Some("payload")), "{body}");
    // Over the 1 MiB a message may be: 413.
    let huge = format!(r#"{{"system":"derecho","component":"x","status":"ok","message":"{}"}}"#, "m".repeat(1_100_000));
    let (status, body) = post_json(&app, "/api/v1/reports", Some(&derecho), huge).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (413, Some("payload")), "{body}");
    assert_eq!(app.stream_messages().await, 0, "nothing refused was published");

    // The right key: 202, then stored through the same path as NATS.
    let (status, body) = post_json(&app, "/api/v1/reports", Some(&derecho), report.clone()).await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(1)), "{body}");
    // A batch with a bad item: the rest is accepted, the item named.
    let batch = json!({"system": "derecho", "reports": [
        {"component": "fs/glade", "status": "ok"}, {"component": "fs/campaign", "status": "sideways"}]});
    let (status, body) = post_json(&app, "/api/v1/reports", Some(&derecho), batch.to_string()).await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(1)), "{body}");
    assert_eq!(body["rejected"][0]["field"], "reports[1].status");
    let status = wait_for_components(&app, 2).await;
    assert_eq!(crate::helpers::component_names(&status), ["fs/glade", "login/derecho1"]);
    wait_for_quarantined(&app, 1).await;

    // A retried POST with the same Idempotency-Key is stored once.
    for _ in 0..2 {
        let resp = app
            .http
            .post(app.url("/api/v1/reports"))
            .bearer_auth(&derecho)
            .header("Idempotency-Key", "derecho1-2026-11-22T10:00")
            .body(json!({"system": "derecho", "component": "queue/main", "status": "ok"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
    }
    wait_for_components(&app, 3).await;
    assert_eq!(
        app.scalar(
            "SELECT count(*) FROM events WHERE aggregate_id = 'derecho:queue/main' AND event_type = 'StatusReported'"
        )
        .await,
        1
    );
    let via: String = app
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT metadata->>'api_key' FROM events WHERE aggregate_id = 'derecho:queue/main' LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(via, "derecho-collector", "the event records which key sent it");

    // A revoked key is refused from then on.
    let client = app.pool.get().await.unwrap();
    assert!(auth::revoke_key(&**client, "derecho-collector").await.unwrap());
    assert_eq!(post_json(&app, "/api/v1/reports", Some(&derecho), report).await.0, 401);
    app.cleanup().await;
}

/// The home page's tile for `system` (now, or at `?at=`).
fn tile<'a>(home: &'a str, system: &str) -> &'a str {
    let href = ["\"", "?at"]
        .iter()
        .find_map(|end| home.find(&format!("href=\"/systems/{system}{end}")))
        .expect("a tile for the system");
    let start = home[..href].rfind("<a ").expect("the tile's opening tag");
    let end = home[start..].find("</a>\n").map_or(home.len(), |e| start + e);
    &home[start..end]
}

#[tokio::test]
async fn an_outage_declared_over_nats_colours_its_tile_and_shows_a_banner_until_it_is_resolved() {
    let app = spawn_app().await;
    app.publish("derecho", r#"{"system":"derecho","component":"fs/glade","status":"ok"}"#).await;
    wait_for_components(&app, 1).await;
    let (_, home) = app.get("/").await;
    assert!(tile(&home, "derecho").contains("OK") && !home.contains("class=\"outage-banner"));

    let outage = app.settings.subject(MessageKind::Outage, "derecho");
    let declare = json!({"system": "derecho", "action": "declare", "id": "glade-1", "severity": "major",
                         "title": "Glade is unavailable", "components": ["fs/glade"]});
    app.publish_to(&outage, declare.to_string(), Some("o1")).await;
    let home = eventually("the tile to show the outage", || async {
        let (_, home) = app.get("/").await;
        if home.contains("MAJOR OUTAGE") {
            Ok(home)
        } else {
            Err("no outage on the home page yet".to_string())
        }
    })
    .await;
    let t = tile(&home, "derecho");
    assert!(t.contains("t-outage-major") && t.contains("Glade is unavailable"), "{t}");
    assert!(home.contains("class=\"outage-banner o-major\""), "the banner is on the home page");
    for page in ["/systems/derecho", "/alerts", "/events", "/systems/derecho/components/fs/glade"] {
        let (status, body) = app.get(page).await;
        assert_eq!(status, 200, "{page}");
        assert!(
            body.contains("class=\"outage-banner o-major\"") && body.contains("Glade is unavailable"),
            "{page} has the banner"
        );
    }

    let update = json!({"system": "derecho", "action": "update", "id": "glade-1", "message": "Vendor on site",
                        "severity": "critical"});
    app.publish_to(&outage, update.to_string(), Some("o2")).await;
    app.publish_to(
        &outage,
        json!({"system": "derecho", "action": "resolve", "id": "glade-1", "message": "Fixed"}).to_string(),
        Some("o3"),
    )
    .await;
    eventually("the outage to be resolved", || async {
        let (_, home) = app.get("/").await;
        if home.contains("OUTAGE") {
            Err("the outage still shows".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    let (_, home) = app.get("/").await;
    assert!(tile(&home, "derecho").contains("s-ok"), "back to what collectors say");
    let (status, page) = app.get("/systems/derecho/outages/glade-1").await;
    assert_eq!(status, 200);
    for needle in ["declared", "Vendor on site", "(critical)", "resolved", "Fixed"] {
        assert!(page.contains(needle), "the timeline keeps {needle}");
    }
    app.cleanup().await;
}

/// A page of the past shows an outage with the severity it had then, not the one it has now; an
/// update stamped earlier than the one before it counts from that one's time.
#[tokio::test]
async fn an_outage_in_the_past_shows_itself_as_it_was_then() {
    let app = spawn_app().await;
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::hours(2);
    let at = |minutes: i64| rfc3339(t0 + time::Duration::minutes(minutes));
    let report = json!({"system": "derecho", "component": "fs/glade", "status": "ok", "observed_at": at(-10)});
    app.publish("derecho", report.to_string()).await;
    wait_for_components(&app, 1).await;
    // Declared at minute 5 as having started at minute 0; critical at 15; a note without
    // severity, with a new title, another component and an expected end, at 40; then minor,
    // stamped 20 but sent after the note, so it counts from 40; resolved at 60.
    let outage = app.settings.subject(MessageKind::Outage, "derecho");
    let messages = [
        json!({"system": "derecho", "action": "declare", "id": "glade-1", "severity": "major", "title": "Glade is down",
               "components": ["fs/glade"], "started_at": at(0), "observed_at": at(5)}),
        json!({"system": "derecho", "action": "update", "id": "glade-1", "message": "Worse", "severity": "critical",
               "observed_at": at(15)}),
        json!({"system": "derecho", "action": "update", "id": "glade-1", "message": "Vendor on site",
               "title": "Glade controller replaced", "components": ["fs/glade", "fs/home"],
               "estimated_resolution": at(90), "observed_at": at(40)}),
        json!({"system": "derecho", "action": "update", "id": "glade-1", "message": "Better", "severity": "minor",
               "observed_at": at(20)}),
        json!({"system": "derecho", "action": "resolve", "id": "glade-1", "observed_at": at(60)}),
    ];
    for (i, m) in messages.iter().enumerate() {
        app.publish_to(&outage, m.to_string(), Some(&format!("past-{i}"))).await;
    }
    eventually("every outage message, and the report in history", || async {
        let n = app.scalar("SELECT count(*) FROM outage_updates").await;
        let reports = app.scalar("SELECT count(*) FROM status_segments").await;
        (n == messages.len() as i64 && reports == 1)
            .then_some(())
            .ok_or(format!("{n} of {}, {reports} report", messages.len()))
    })
    .await;
    let expected = [
        (2, "major", "Glade is down"),
        (10, "major", "Glade is down"),
        (25, "critical", "Glade is down"),
        (35, "critical", "Glade is down"),
        (45, "minor", "Glade controller replaced"),
        (65, "", ""),
    ];
    for (minute, severity, title) in expected {
        let (status, home) = app.get(&format!("/?at={}", at(minute))).await;
        assert_eq!(status, 200);
        let t = tile(&home, "derecho");
        let (_, system) = app.get(&format!("/systems/derecho?at={}", at(minute))).await;
        if severity.is_empty() {
            assert!(!t.contains("t-outage") && !system.contains("class=\"outage "), "minute {minute}: {t}");
        } else {
            assert!(t.contains(&format!("t-outage-{severity}")), "minute {minute}: {t}");
            assert!(system.contains(&format!("class=\"outage o-{severity}\"")), "minute {minute}: the system page");
            assert!(t.contains(title) && system.contains(title), "minute {minute}: the title then, {title}");
            let later = minute > 40;
            assert_eq!(system.contains("<code>fs/home</code>"), later, "minute {minute}: the components then");
            assert_eq!(system.contains("expected to end"), later, "minute {minute}: the expected end then");
        }
    }
    // The timeline that keeps these is a pure function of the log: a rebuild equals it.
    let (verified, said) = crate::replay::run_verify(&app, sitrep_services::replay::Which::Outages).await;
    assert!(verified.is_ok(), "{verified:?}: {said}");
    app.cleanup().await;
}

#[tokio::test]
async fn operators_declare_update_and_resolve_outages_and_schedule_and_cancel_maintenance_with_forms() {
    let app = spawn_app().await;
    app.publish("derecho", r#"{"system":"derecho","reports":[{"component":"queue/main","status":"ok"},{"component":"fs/glade","status":"ok"}]}"#)
        .await;
    wait_for_components(&app, 2).await;
    let ana = app.sign_in("ana", Role::Operator).await;
    let (_, page) = app.get("/outages").await;
    assert!(page.contains("Sign in</a> to declare"), "signed out: no forms, a way to sign in");

    let resp = app
        .post_form(
            &ana,
            "/outages",
            &[("system", "derecho"), ("severity", "minor"), ("title", "Slow logins"), ("components", "login/a")],
        )
        .await;
    assert_eq!(resp.status(), 200, "redirected to the outage");
    let url = resp.url().path().to_owned();
    assert!(url.starts_with("/systems/derecho/outages/") && url.ends_with("-slow-logins"), "{url}");
    let page = resp.text().await.unwrap();
    assert!(page.contains("MINOR OUTAGE") && page.contains("by ana"), "the operator is on the timeline");
    let resp = app.post_form(&ana, &format!("{url}/update"), &[("message", "Found it"), ("severity", "")]).await;
    assert_eq!(resp.status(), 200);
    // The same rules as over the wire, with the field named.
    let bad = app.post_form(&ana, &format!("{url}/update"), &[("message", "")]).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("message: is required"));
    let resp = app.post_form(&ana, &format!("{url}/resolve"), &[("message", "Restarted sssd")]).await;
    assert!(resp.text().await.unwrap().contains("Resolved"));
    let again = app.post_form(&ana, &format!("{url}/resolve"), &[]).await;
    assert_eq!(again.status(), 409, "resolving twice is refused");

    // Maintenance on queue/main, on now: it shows MAINTENANCE over its ok.
    let now = OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let (from, to) = (
        (now - time::Duration::hours(1)).format(&fmt).unwrap(),
        (now + time::Duration::hours(2)).format(&fmt).unwrap(),
    );
    let resp = app
        .post_form(
            &ana,
            "/maintenance",
            &[
                ("system", "derecho"),
                ("kind", "maintenance"),
                ("title", "Scheduler upgrade"),
                ("starts_at", &from),
                ("ends_at", &to),
                ("components", "queue/main"),
                ("nodes", "128"),
                ("partition", "cpu"),
                ("id", "pm-1"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.url().path().ends_with("/systems/derecho/maintenance/pm-1"));
    let (_, system) = app.get_as(&ana, "/systems/derecho").await;
    assert!(system.contains("Scheduler upgrade") && system.contains("128 nodes"), "the window is listed");
    let row =
        &system[system.find("queue/main</a>").expect("queue/main row") - 400..system.find("queue/main</a>").unwrap()];
    assert!(row.contains("MAINTENANCE"), "queue/main shows maintenance: {row}");
    let (_, api) = app.get_json("/api/v1/outages?system=derecho").await;
    assert_eq!(api["maintenance"][0]["id"], "pm-1");
    let bad = app
        .post_form(
            &ana,
            "/maintenance",
            &[("system", "derecho"), ("kind", "maintenance"), ("title", "x"), ("starts_at", &to), ("ends_at", &from)],
        )
        .await;
    assert_eq!(bad.status(), 400, "ends before it starts");
    let resp = app.post_form(&ana, "/systems/derecho/maintenance/pm-1/cancel", &[("message", "Postponed")]).await;
    assert!(resp.text().await.unwrap().contains("cancelled"));
    // The operator sees it at once (signed out, a page kept from before may show for a second).
    let (_, system) = app.get_as(&ana, "/systems/derecho").await;
    assert!(!system.contains("MAINTENANCE"), "cancelled: back to what collectors say");
    app.cleanup().await;
}

#[tokio::test]
async fn maintenance_over_http_and_bad_outage_messages_go_their_ways_without_blocking_the_next() {
    let app = spawn_app().await;
    let key = key_for(&app, "ops-tool", &["derecho"]).await;
    let now = OffsetDateTime::now_utc();
    let window = json!({"system": "derecho", "action": "schedule", "id": "resv-class", "kind": "reservation",
                        "title": "Training class", "starts_at": rfc3339(now + time::Duration::days(1)),
                        "ends_at": rfc3339(now + time::Duration::days(1) + time::Duration::hours(3)), "nodes": 16});
    let (status, body) = post_json(&app, "/api/v1/maintenance", Some(&key), window.to_string()).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = post_json(
        &app,
        "/api/v1/outages",
        Some(&key),
        json!({"system": "derecho", "action": "declare", "id": "x"}).to_string(),
    )
    .await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (400, Some("severity")), "{body}");
    // Over HTTP, what the outage as stored refuses is answered at once (409), and not published.
    let (status, body) = post_json(
        &app,
        "/api/v1/outages",
        Some(&key),
        json!({"system": "derecho", "action": "resolve", "id": "nope"}).to_string(),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("never declared"), "{body}");
    let backwards = json!({"system": "derecho", "action": "declare", "id": "b", "severity": "minor", "title": "B",
                           "started_at": rfc3339(now), "estimated_resolution": rfc3339(now - time::Duration::hours(1))});
    let (status, body) = post_json(&app, "/api/v1/outages", Some(&key), backwards.to_string()).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (400, Some("estimated_resolution")), "{body}");
    // Over NATS nobody answers, so a message for an outage never declared goes to quarantine
    // with the aggregate's reason, and the good one behind it is stored.
    let subject = app.settings.subject(MessageKind::Outage, "derecho");
    app.publish_to(&subject, json!({"system": "derecho", "action": "resolve", "id": "ghost"}).to_string(), None).await;
    app.publish_to(
        &subject,
        json!({"system": "derecho", "action": "declare", "id": "real", "severity": "minor", "title": "Real"})
            .to_string(),
        None,
    )
    .await;
    let q = wait_for_quarantined(&app, 1).await;
    assert!(
        q["messages"][0]["reason"].as_str().unwrap().contains("derecho/ghost: outage derecho/ghost was never declared"),
        "{q}"
    );
    wait_for_events(&app, 2).await;
    let (_, api) = eventually("the outage and the window in the read model", || async {
        let (s, api) = app.get_json("/api/v1/outages").await;
        let one = |k: &str| api[k].as_array().is_some_and(|a| a.len() == 1);
        if one("outages") && one("maintenance") {
            Ok((s, api))
        } else {
            Err(api.to_string())
        }
    })
    .await;
    assert_eq!(api["maintenance"][0]["nodes"], 16);
    let (_, page) = app.get("/outages").await;
    assert!(page.contains("Training class") && page.contains("scheduled"));
    app.cleanup().await;
}

#[tokio::test]
async fn a_session_ends_when_it_expires_or_its_user_signs_out() {
    let app = spawn_app().await;
    let ana = app.sign_in("ana", Role::Admin).await;
    let page = |cookie: String| {
        let req = app.http.get(app.url("/outages")).header("Cookie", cookie);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    assert!(page(ana.cookie.clone()).await.contains("ana <span class=\"muted\">(admin)"));
    let client = app.pool.get().await.unwrap();
    client.execute("UPDATE sessions SET expires_at = now() - interval '1 second'", &[]).await.unwrap();
    assert!(page(ana.cookie.clone()).await.contains("Sign in</a> to declare"), "an expired session is signed out");
    let bob = app.sign_in("bob", Role::Operator).await;
    assert_eq!(app.post_form(&bob, "/sign-out", &[]).await.status(), 200);
    assert!(page(bob.cookie).await.contains("Sign in</a> to declare"), "signed out");
    assert_eq!(app.scalar("SELECT count(*) FROM sessions WHERE user_name = 'bob'").await, 0);
    app.cleanup().await;
}

/// A name that failed to sign in too often lately is refused for a while, right password or
/// not, and so is a name no user has; signing in again after the window forgets the failures.
#[tokio::test]
async fn a_name_that_fails_to_sign_in_too_often_is_refused_for_a_while() {
    let app = spawn_app().await;
    app.sign_in("ana", Role::Operator).await; // creates ana with the helper's password
    let right = "a long test password";
    for attempt in 1..=auth::SIGN_IN_FAILURES {
        let resp = app.try_sign_in("ana", &format!("guess {attempt}")).await;
        assert_eq!(resp.status(), 401, "attempt {attempt}");
    }
    let resp = app.try_sign_in("ana", right).await;
    assert_eq!(resp.status(), 429, "refused even with the right password");
    let retry: i64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= auth::SIGN_IN_WINDOW.whole_seconds(), "Retry-After {retry}");
    let page = resp.text().await.unwrap();
    assert!(page.contains("Too many failed sign-ins for this name"), "{page}");
    assert!(page.contains("value=\"ana\""), "the form keeps the name");
    // Others are not held up, and a name no user has is counted the same way.
    app.sign_in("bob", Role::Viewer).await;
    for _ in 0..auth::SIGN_IN_FAILURES {
        assert_eq!(app.try_sign_in("nobody", "guess").await.status(), 401);
    }
    assert_eq!(app.try_sign_in("nobody", "guess").await.status(), 429);
    // `sitrep users unlock` lifts a refusal at once.
    let mut out = Vec::new();
    let unlock = sitrep_services::admin::UsersCommand::Unlock { name: "nobody".into() };
    sitrep_services::admin::users(&app.settings, unlock, &mut out).await.unwrap();
    let said = String::from_utf8(out).unwrap();
    assert!(said.contains("nobody may sign in again (5 failed sign-ins forgotten)"), "{said}");
    assert_eq!(app.try_sign_in("nobody", "guess").await.status(), 401);
    // Guesses sent all at once are counted as they arrive: no more than the limit are checked.
    app.sign_in("cara", Role::Viewer).await;
    let guesses = (0..20).map(|i| {
        let app = &app;
        async move { app.try_sign_in("cara", &format!("parallel guess {i}")).await.status().as_u16() }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|s| **s == 401).count() as i64;
    assert!(answers.iter().all(|s| *s == 401 || *s == 429), "{answers:?}");
    assert!(checked <= auth::SIGN_IN_FAILURES, "{checked} of 20 parallel guesses were checked: {answers:?}");
    assert_eq!(app.scalar("SELECT count(*) FROM sign_in_failures WHERE name = 'cara'").await, checked);
    // Once the failures are older than the window, ana signs in, and her failures are forgotten.
    let client = app.pool.get().await.unwrap();
    client
        .execute("UPDATE sign_in_failures SET at = at - interval '16 minutes' WHERE name = 'ana'", &[])
        .await
        .unwrap();
    assert_eq!(app.try_sign_in("ana", right).await.status(), 303);
    assert_eq!(app.scalar("SELECT count(*) FROM sign_in_failures WHERE name = 'ana'").await, 0);
    app.cleanup().await;
}

/// One case of the shared contract corpus (`docs/schema/corpus.json`).
struct Case {
    name: String,
    kind: String,
    payload: Value,
    valid: bool,
    field: Option<String>,
}

impl Case {
    fn of(v: &Value) -> Self {
        Case {
            name: v["name"].as_str().unwrap().to_owned(),
            kind: v["kind"].as_str().unwrap().to_owned(),
            payload: v["payload"].clone(),
            valid: v["valid"].as_bool().unwrap(),
            field: v["field"].as_str().map(str::to_owned),
        }
    }
}

#[tokio::test]
async fn the_json_schemas_and_the_decoder_accept_and_reject_the_same_corpus() {
    let corpus: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("docs/schema/corpus.json")).unwrap()).unwrap();
    let corpus: Vec<Case> = corpus.as_array().unwrap().iter().map(Case::of).collect();
    assert!(corpus.len() >= 40, "at least 40 cases");
    let received = time::macros::datetime!(2026-11-22 10:05:00 UTC);
    let mut wrong = Vec::new();
    for case in &corpus {
        let bytes = serde_json::to_vec(&case.payload).unwrap();
        let result = match case.kind.as_str() {
            "report" => wire::decode("derecho", &bytes, received).and_then(|d| match d.rejected.into_iter().next() {
                Some(e) => Err(e),
                None => Ok(()),
            }),
            "outage" => sitrep_domain::notice::decode(MessageKind::Outage, "derecho", &bytes, received).map(|_| ()),
            "maintenance" => {
                sitrep_domain::notice::decode(MessageKind::Maintenance, "derecho", &bytes, received).map(|_| ())
            }
            other => panic!("{}: unknown kind {other}", case.name),
        };
        match (&result, case.valid) {
            (Ok(()), true) => {}
            (Err(e), false) if Some(&e.field) == case.field.as_ref() => {}
            _ => wrong.push(format!(
                "{}: expected valid={} field={:?}, decoder said {result:?}",
                case.name, case.valid, case.field
            )),
        }
    }
    assert!(wrong.is_empty(), "the decoder disagrees with the corpus:\n{}", wrong.join("\n"));

    // The same corpus through the JSON Schemas, with the reference Python implementation.
    let python = root().join(".sitrep/venv/bin/python");
    assert!(python.exists(), "checking the schemas needs jsonschema in .sitrep/venv: scripts/test installs it");
    let out = std::process::Command::new(python).arg(root().join("docs/schema/check.py")).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the schemas disagree with the corpus:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains(&format!("schema: {} cases, 0 disagree", corpus.len())), "{said}");
}

#[tokio::test]
async fn the_python_shell_and_rust_example_collectors_show_up_on_the_dashboard() {
    let app = spawn_app().await;
    let host = std::process::Command::new("hostname")
        .arg("-s")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap();
    let component = format!("host/{host}");

    // Python, over NATS.
    let python = root().join(".sitrep/venv/bin/python");
    let out = tokio::process::Command::new(&python)
        .arg(root().join("examples/python/collector.py"))
        .args([
            "--once",
            "--system",
            "pyhosts",
            "--nats-url",
            &app.settings.nats_url,
            "--subject-prefix",
            &app.settings.subject_prefix,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python collector: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Shell, over HTTP with a key.
    let key = key_for(&app, "shell-collector", &["shellhosts"]).await;
    let out = tokio::process::Command::new("bash")
        .arg(root().join("examples/shell/collector.sh"))
        .env("SITREP_URL", app.url("").trim_end_matches('/'))
        .env("SITREP_API_KEY", &key)
        .env("SITREP_SYSTEM", "shellhosts")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "shell collector: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Rust, over NATS (built by `cargo test` as the services crate's example).
    let exe = std::env::current_exe().unwrap();
    let rust = exe.parent().unwrap().parent().unwrap().join("examples/collector");
    assert!(rust.exists(), "{} is missing: `cargo test --workspace` (scripts/test) builds it", rust.display());
    let out = tokio::process::Command::new(&rust)
        .args(["--once", "--system", "rusthosts"])
        .env("SITREP_NATS_URL", &app.settings.nats_url)
        .env("SITREP_SUBJECT_PREFIX", &app.settings.subject_prefix)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "rust collector: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let status = wait_for_components(&app, 3).await;
    for system in ["pyhosts", "shellhosts", "rusthosts"] {
        let c = status["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["system"] == system)
            .unwrap_or_else(|| panic!("{system} is not on the dashboard: {status}"));
        assert!(c["component"].as_str().unwrap().starts_with("host/"), "{c}");
        assert!(c["metrics"]["load_1m"].is_number(), "{system} reports the load: {c}");
    }
    let (status, page) = app.get("/systems/pyhosts").await;
    assert_eq!(status, 200);
    assert!(page.contains(&component), "the host is on its system page");
    app.cleanup().await;
}
