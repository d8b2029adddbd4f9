//! Hostile input on every route of `web/src/router.rs`: path segments, query parameters, form
//! fields and ingest bodies holding NUL bytes, dot segments, invalid UTF-8, markup, bidi
//! controls, line breaks and 10 kB values, anonymously and as an operator with a valid form
//! token. None may get a 5xx (or no answer at all), and the server must still answer afterwards.
//!
//! Requests go out as raw HTTP/1.1, byte for byte: an HTTP client would resolve `..` and
//! `%2e%2e` before sending, and these are exactly what must reach the router.

use crate::helpers::{cookie_of, spawn_app, wait_for_components};
use futures::StreamExt;
use sitrep_infra::auth::Role;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Values as they appear in a URL or a form body (already percent-encoded where they must be).
fn hostile() -> Vec<String> {
    let mut values: Vec<String> = [
        "%00",
        "x%00y",
        "..",
        "%2e%2e",
        "%ff%fe",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "%E2%80%AEevil%E2%80%AC",
        "%0d%0aSet-Cookie:%20x=1",
        "%27%3B--",
        "-1",
        "99999999999999999999999",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    values.push("a".repeat(10_000));
    values
}

/// GET routes with `{}` for each path parameter, and a valid value for each.
const GET_PATHS: &[(&str, &[&str])] = &[
    ("/systems/{}", &["derecho"]),
    ("/systems/{}/components/{}", &["derecho", "fs/glade"]),
    ("/events/{}", &["1"]),
    ("/alerts/{}", &["00000000-0000-0000-0000-000000000000"]),
    ("/systems/{}/outages/{}", &["derecho", "o1"]),
    ("/systems/{}/maintenance/{}", &["derecho", "m1"]),
    ("/api/v1/status/{}", &["derecho"]),
    ("/api/v1/history/{}/{}", &["derecho", "fs/glade"]),
    ("/api/v1/uptime/{}", &["derecho"]),
    ("/api/v1/alerts/{}", &["00000000-0000-0000-0000-000000000000"]),
    ("/api/v1/events/{}", &["1"]),
    ("/{}", &["nothing"]),
    ("/static/{}", &["sitrep.css"]),
    ("/api/v1/{}", &["status"]),
];

/// POST routes with path parameters, and a valid value for each.
const POST_PATHS: &[(&str, &[&str])] = &[
    ("/quarantine/{}/resubmit", &["1"]),
    ("/quarantine/{}/discard", &["1"]),
    ("/alerts/{}/acknowledge", &["00000000-0000-0000-0000-000000000000"]),
    ("/alerts/{}/silence", &["00000000-0000-0000-0000-000000000000"]),
    ("/systems/{}/outages/{}/{}", &["derecho", "o1", "update"]),
    ("/systems/{}/maintenance/{}/{}", &["derecho", "m1", "cancel"]),
];

/// Each GET route (with valid path parameters) and the query parameters its handler reads.
const QUERIES: &[(&str, &[&str])] = &[
    ("/", &["at"]),
    ("/systems/derecho", &["at"]),
    ("/systems/derecho/components/fs/glade", &["at", "range"]),
    ("/events", &["before", "system", "component", "type"]),
    ("/alerts", &["state", "severity", "system"]),
    ("/alerts/rules", &["x"]),
    ("/outages", &["x"]),
    ("/quarantine", &["x"]),
    ("/ops", &["x"]),
    ("/sign-in", &["next"]),
    ("/api/v1/status", &["at"]),
    ("/api/v1/status/derecho", &["at"]),
    ("/api/v1/uptime/derecho", &["at"]),
    ("/api/v1/history/derecho/fs/glade", &["metric", "from", "to", "step", "format"]),
    ("/api/v1/alerts", &["state", "severity", "system"]),
    ("/api/v1/outages", &["system"]),
    ("/api/v1/quarantine", &["x"]),
    ("/live?page=system", &["system"]),
    ("/live", &["page"]),
];

/// Form routes and the fields their handlers read (besides `csrf`).
const FORMS: &[(&str, &[&str])] = &[
    (
        "/outages",
        &["system", "severity", "title", "description", "components", "started_at", "estimated_resolution", "id"],
    ),
    ("/maintenance", &["system", "kind", "title", "starts_at", "ends_at", "components", "nodes", "partition", "id"]),
    ("/systems/derecho/outages/o1/update", &["message", "severity", "title", "components", "estimated_resolution"]),
    ("/systems/derecho/maintenance/m1/cancel", &["message"]),
    ("/alerts/00000000-0000-0000-0000-000000000000/acknowledge", &["comment"]),
    ("/alerts/00000000-0000-0000-0000-000000000000/silence", &["comment", "for"]),
    ("/quarantine/1/resubmit", &[]),
    ("/quarantine/1/discard", &[]),
    ("/sign-in", &["name", "password", "next"]),
];

/// One request, and who sends it.
struct Probe {
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Probe {
    fn get(target: String, cookie: &str) -> Self {
        Self { method: "GET", target, headers: vec![("Cookie", cookie.to_owned())], body: Vec::new() }
    }

    fn form(target: String, who: &Who, fields: &str) -> Self {
        let body = format!("{fields}&csrf={}", who.csrf).into_bytes();
        let headers = vec![
            ("Cookie", who.cookie.clone()),
            ("Origin", who.origin.clone()),
            ("Content-Type", "application/x-www-form-urlencoded".to_owned()),
        ];
        Self { method: "POST", target, headers, body }
    }

    fn json(target: &str, key: &str, body: &str) -> Self {
        let headers = vec![("Authorization", format!("Bearer {key}")), ("Content-Type", "application/json".to_owned())];
        Self { method: "POST", target: target.to_owned(), headers, body: body.as_bytes().to_vec() }
    }
}

/// A browser: its cookie, its forms' token and the dashboard's origin.
struct Who {
    cookie: String,
    csrf: String,
    origin: String,
}

/// `template` with `values` in its `{}`s, the `i`th replaced by `hostile`.
fn fill(template: &str, values: &[&str], i: usize, hostile: &str) -> String {
    let mut out = String::new();
    for (n, part) in template.split("{}").enumerate() {
        if n > 0 {
            out.push_str(if n - 1 == i { hostile } else { values[n - 1] });
        }
        out.push_str(part);
    }
    out
}

/// Sends one request as raw HTTP/1.1 and returns the status (`None` when no answer came) and
/// the start of the body. An event stream is not read past its headers.
fn send(addr: SocketAddr, probe: &Probe) -> (Option<u16>, String) {
    let Ok(mut stream) = TcpStream::connect(addr) else { return (None, "could not connect".into()) };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n", probe.method, probe.target);
    for (name, value) in &probe.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !probe.body.is_empty() || probe.method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", probe.body.len()));
    }
    head.push_str("\r\n");
    if stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&probe.body)).is_err() {
        return (None, "the server closed the connection while the request was sent".into());
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            if text[..end].to_ascii_lowercase().contains("content-type: text/event-stream") {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|s| s.parse().ok());
    // What an error page says is in its <main>; the layout before it says nothing.
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let body = body.find("<main>").map_or(body, |i| &body[i..]);
    (status, body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(300).collect())
}

#[tokio::test]
async fn no_hostile_path_query_or_form_gets_a_server_error_and_the_server_answers_afterwards() {
    // Arrange: a component, an outage and a window, so handlers get past "not found".
    let app = spawn_app().await;
    app.publish("derecho", r#"{"system":"derecho","component":"fs/glade","status":"ok","metrics":{"used_pct":50}}"#)
        .await;
    wait_for_components(&app, 1).await;
    let ana = app.sign_in("ana", Role::Operator).await;
    let declared = app
        .post_form(&ana, "/outages", &[("system", "derecho"), ("severity", "minor"), ("title", "Slow"), ("id", "o1")])
        .await;
    assert_eq!(declared.status(), 200, "the outage is declared");
    let scheduled = app
        .post_form(
            &ana,
            "/maintenance",
            &[
                ("system", "derecho"),
                ("kind", "maintenance"),
                ("title", "Upgrade"),
                ("starts_at", "2030-01-01T00:00"),
                ("ends_at", "2030-01-01T04:00"),
                ("id", "m1"),
            ],
        )
        .await;
    assert_eq!(scheduled.status(), 200, "the window is scheduled");
    let key = {
        let client = app.pool.get().await.unwrap();
        sitrep_infra::auth::create_key(&**client, "fuzz", &["derecho".to_owned()]).await.unwrap()
    };
    let origin = app.origin();
    let operator = Who { cookie: ana.cookie.clone(), csrf: ana.csrf.clone(), origin: origin.clone() };
    let anonymous = {
        let page = app.http.get(app.url("/sign-in")).send().await.unwrap();
        let csrf = cookie_of(&page, "sitrep_csrf").expect("the sign-in page sets the CSRF cookie");
        Who { cookie: format!("sitrep_csrf={csrf}"), csrf, origin }
    };

    // Paths as the operator (pages show more to someone who may act), query parameters
    // anonymously, forms both ways. First, a sign-in that succeeds with a `next` that must not
    // become a header (the password is the one `helpers::sign_in` gives).
    let mut probes = vec![Probe::form(
        "/sign-in".into(),
        &anonymous,
        "name=ana&password=a+long+test+password&next=/x%0d%0aSet-Cookie:+a=b",
    )];
    for value in hostile() {
        for (template, values) in GET_PATHS {
            for i in 0..values.len() {
                probes.push(Probe::get(fill(template, values, i, &value), &operator.cookie));
            }
        }
        for (template, values) in POST_PATHS {
            for i in 0..values.len() {
                probes.push(Probe::form(fill(template, values, i, &value), &operator, "message=x&comment=x&for=1h"));
            }
        }
        for (path, params) in QUERIES {
            let sep = if path.contains('?') { '&' } else { '?' };
            for param in *params {
                probes.push(Probe::get(format!("{path}{sep}{param}={value}"), &anonymous.cookie));
            }
        }
        for (path, fields) in FORMS {
            let body: Vec<String> = fields.iter().map(|f| format!("{f}={value}")).collect();
            let body = body.join("&");
            probes.push(Probe::form((*path).to_owned(), &anonymous, &body));
            if *path != "/sign-in" {
                probes.push(Probe::form((*path).to_owned(), &operator, &body));
            }
        }
        probes.push(Probe::get("/".into(), &format!("sitrep_session={value}")));
    }
    // Ingest: the JSON fields get the same treatment where they are decoded.
    for body in [
        r#"{"system":"derecho","component":"../../../ops","status":"ok"}"#,
        r#"{"system":"derecho","component":"fs/glade","status":"ok","message":"a\u0000b"}"#,
        r#"{"system":"derecho\u0000","component":"x","status":"ok"}"#,
        r#"{"system":"derecho","component":"x\u202e","status":"ok"}"#,
        r#"{"system":"derecho","component":"fs/glade","status":"ok","labels":{"k\u0000":"v"}}"#,
        r#"{"system":"derecho","reports":[{"component":".","status":"ok"},{"component":"a","status":"\u0000"}]}"#,
        r#"{"system":"derecho","component":"x","status":"ok""#,
        "\u{0}",
    ] {
        probes.push(Probe::json("/api/v1/reports", &key, body));
    }
    for action in ["declare", "update", "resolve"] {
        for body in [
            format!(
                r#"{{"system":"derecho","id":"o2","action":"{action}","severity":"minor","title":"\u202eevil","components":["../ops"]}}"#
            ),
            format!(r#"{{"system":"derecho","id":"o\u0000","action":"{action}","title":"x","message":"\u0000"}}"#),
        ] {
            probes.push(Probe::json("/api/v1/outages", &key, &body));
            probes.push(Probe::json("/api/v1/maintenance", &key, &body.replace("severity", "kind")));
        }
    }

    // Act: a few at a time.
    let addr = app.addr.expect("web is running");
    let total = probes.len();
    let answers: Vec<(Probe, (Option<u16>, String))> = futures::stream::iter(probes)
        .map(|probe| async move {
            tokio::task::spawn_blocking(move || {
                let answer = send(addr, &probe);
                (probe, answer)
            })
            .await
            .unwrap()
        })
        .buffer_unordered(6)
        .collect()
        .await;

    // Assert: no 5xx, no dropped connection, and the server still answers.
    let mut by_status = std::collections::BTreeMap::<Option<u16>, usize>::new();
    for (_, (status, _)) in &answers {
        *by_status.entry(*status).or_default() += 1;
    }
    println!("{total} requests; answers by status: {by_status:?}");
    let failures: Vec<String> = answers
        .iter()
        .filter(|(_, (status, _))| status.is_none_or(|s| s >= 500))
        .map(|(probe, (status, body))| {
            let target: String = probe.target.chars().take(200).collect();
            let sent = String::from_utf8_lossy(&probe.body).chars().take(200).collect::<String>();
            format!("{} {target} [{sent}] -> {status:?}: {body}", probe.method)
        })
        .collect();
    assert!(failures.is_empty(), "{} of {total} requests failed:\n{}", failures.len(), failures.join("\n"));
    let (status, body) = app.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"), "the server answers after {total} hostile requests");
    app.cleanup().await;
}
