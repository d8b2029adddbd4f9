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
