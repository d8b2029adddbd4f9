//! Web security: the headers every response carries, and pages that need no inline script or
//! style, so the Content-Security-Policy can forbid them.

use crate::helpers::{spawn_app, wait_for_components};
use sitrep_infra::auth::Role;

/// Every `<script>` has a `src`, and no element has a `style` or an `on…` handler attribute.
fn inline_code(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').unwrap_or(html.len() - i)];
        if !tag.contains(" src=") {
            found.push(tag.to_owned());
        }
    }
    for (i, _) in html.match_indices('<') {
        let tag = &html[i..i + html[i..].find('>').unwrap_or(html.len() - i)];
        let attrs = tag.split_whitespace().skip(1);
        for attr in attrs {
            let name = attr.split('=').next().unwrap_or_default().to_ascii_lowercase();
            if name == "style" || (name.starts_with("on") && name.len() > 2 && attr.contains('=')) {
                found.push(tag.to_owned());
            }
        }
    }
    found
}

#[tokio::test]
async fn every_response_forbids_inline_script_framing_and_sniffing_and_no_page_needs_inline_code() {
    let app = spawn_app().await;
    app.publish("derecho", r#"{"system":"derecho","component":"fs/glade","status":"degraded","message":"<script>x</script>","metrics":{"used_pct":91}}"#)
        .await;
    wait_for_components(&app, 1).await;
    let operator = app.sign_in("ops", Role::Operator).await;

    let paths = [
        "/",
        "/systems/derecho",
        "/systems/derecho/components/fs/glade",
        "/alerts",
        "/alerts/rules",
        "/events",
        "/outages",
        "/quarantine",
        "/ops",
        "/sign-in",
        "/no/such/page",
        "/api/v1/status",
        "/static/sitrep.css",
        "/healthz",
    ];
    for path in paths {
        let resp = app.http.get(app.url(path)).header("cookie", &operator.cookie).send().await.unwrap();
        let headers = resp.headers().clone();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let csp = header("content-security-policy");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp:?}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'"), "{path}: {csp:?}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let body = resp.text().await.unwrap();
        if header("content-type").starts_with("text/html") {
            assert_eq!(inline_code(&body), Vec::<String>::new(), "{path} would break under the policy");
        }
    }
    app.cleanup().await;
}

#[test]
fn inline_code_is_found() {
    assert_eq!(inline_code(r#"<p>a</p><script src="/x.js"></script>"#), Vec::<String>::new());
    assert_eq!(inline_code("<script>alert(1)</script>").len(), 1);
    assert_eq!(inline_code(r#"<div style="color:red">"#).len(), 1);
    assert_eq!(inline_code(r#"<a href="/" onclick="x()">"#).len(), 1);
    assert_eq!(inline_code("<p>one < two and onwards</p>"), Vec::<String>::new());
}

#[tokio::test]
async fn a_nul_byte_in_the_path_a_query_parameter_or_a_form_field_is_refused_naming_where_it_was() {
    let app = spawn_app().await;
    let operator = app.sign_in("ops", Role::Operator).await;

    let (status, page) = app.get("/events?system=x%00").await;
    assert_eq!(status, 400);
    assert!(page.contains("the query parameter &quot;system&quot; holds a NUL byte"), "{page}");
    let (status, body) = app.get_json("/api/v1/history/x%00/y").await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "path", "{body}");
    let (status, page) = app.get("/systems/x/components/a%00b").await;
    assert_eq!(status, 400);
    assert!(page.contains("the path holds a NUL byte"), "{page}");
    let resp = app.post_form(&operator, "/outages", &[("system", "derecho"), ("title", "a\0b")]).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("the form field &quot;title&quot; holds a NUL byte"));
    let resp = app.try_sign_in("ops\0", "a long test password").await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("the form field &quot;name&quot; holds a NUL byte"));
    app.cleanup().await;
}

#[tokio::test]
async fn signed_in_pages_are_never_stored_live_data_is_revalidated_and_assets_are_cached() {
    let app = spawn_app().await;
    let operator = app.sign_in("ops", Role::Operator).await;
    let cache_control = |resp: &reqwest::Response| {
        resp.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let get = |path: &str, signed_in: bool| {
        let req = app.http.get(app.url(path));
        // Signed out, as a browser that has its form token already (a response that gives one
        // out is for that browser only: `private, no-store`).
        let cookie = if signed_in { operator.cookie.clone() } else { format!("sitrep_csrf={}", "0".repeat(64)) };
        req.header("cookie", cookie).send()
    };

    for path in ["/", "/alerts", "/outages", "/api/v1/status"] {
        assert_eq!(cache_control(&get(path, true).await.unwrap()), "private, no-store", "{path}, signed in");
    }
    for path in ["/alerts", "/api/v1/status", "/healthz", "/no/such/page"] {
        assert_eq!(cache_control(&get(path, false).await.unwrap()), "no-cache", "{path}, signed out");
    }
    let first_visit = app.http.get(app.url("/alerts")).send().await.unwrap();
    assert_eq!(cache_control(&first_visit), "private, no-store", "it sets this browser's token cookie");
    assert_eq!(cache_control(&get("/sign-in", false).await.unwrap()), "private, no-store", "it carries a token");
    let htmx = get("/static/htmx-2.0.11.min.js", true).await.unwrap();
    assert_eq!(cache_control(&htmx), "public, max-age=86400");
    assert_eq!(cache_control(&get("/static/sitrep.css", false).await.unwrap()), "public, max-age=300");
    let live = get("/live?page=home", true).await.unwrap();
    assert_eq!(cache_control(&live), "no-cache", "the event stream keeps its own");
    drop(live);
    app.cleanup().await;
}
