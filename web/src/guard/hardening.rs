//! What every request and response passes through, whatever its route.
//!
//! - [`refuse_control_bytes`] and [`refuse_nul_in_forms`]: a NUL byte (`%00`) in the path, in a
//!   query parameter or in a posted form's field is refused with a `400` that names where it
//!   was, before any handler runs. (Postgres cannot hold NUL in text: the handler's query would
//!   fail, as a `500`.) The path and query parameters may hold no other control character
//!   either: none of them is more than a line of text, and some end up in headers (`?next=`
//!   becomes a `Location`). Form fields may (a description is several lines).
//! - [`cache_control`]: what caches may keep. Pages for a signed-in browser carry its form
//!   token and its user's name: `private, no-store`. Other pages and the API are live data:
//!   `no-cache`. Static assets: `public`, for a day (or five minutes for the stylesheet).
//!
//! JSON bodies (`POST /api/v1/...`) are checked where they are decoded (`sitrep_domain::wire`).

use crate::view::error::{Format, WebError};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The most a form body may be: axum's default body limit, which `Form` applies too.
pub const FORM_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The middleware for every request: refuses a NUL or other control character in the path or
/// a query parameter with a `400` naming the path or the parameter.
pub async fn refuse_control_bytes(req: Request, next: Next) -> Response {
    let format = format_of(&req);
    if let Some(bad) = control_byte(&percent_decoded(req.uri().path()), |_| true) {
        return bad_input(format, "path", format!("the path holds {}", describe(bad)));
    }
    if let Some(query) = req.uri().query() {
        if let Err(e) = check_pairs(query.as_bytes(), "query parameter", |_| true) {
            return e.answer(format);
        }
    }
    next.run(req).await
}

/// The middleware for routes (innermost, so a client over its rate limit is refused before its
/// body is read): refuses a posted form with a NUL in a field with a `400` naming the field.
/// The body is read here (forms are small: at most [`FORM_BODY_LIMIT`]) and passed on whole.
pub async fn refuse_nul_in_forms(req: Request, next: Next) -> Response {
    if req.method() != Method::POST || !is_form(req.headers()) {
        return next.run(req).await;
    }
    let format = format_of(&req);
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_BODY_LIMIT).await else {
        // Over the limit (or cut off, when no one is left to read this).
        return WebError::TooLarge { what: format!("the form is over {FORM_BODY_LIMIT} bytes") }.into_response();
    };
    // Only NUL: a form's text fields may hold line breaks and tabs.
    if let Err(e) = check_pairs(&bytes, "form field", |b| b == 0) {
        return e.answer(format);
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn format_of(req: &Request) -> Format {
    if req.uri().path().starts_with("/api/") {
        Format::Json
    } else {
        Format::Html
    }
}

/// Whether a request's body is an HTML form (`application/x-www-form-urlencoded`).
fn is_form(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// A parameter or field that holds a byte it may not.
struct Refused {
    /// The parameter or field, as it can be shown (`None` when its name is at fault).
    name: Option<String>,
    byte: u8,
    /// `query parameter` or `form field`.
    place: &'static str,
}

impl Refused {
    fn answer(self, format: Format) -> Response {
        match self.name {
            Some(name) => {
                let what = format!("the {} {name:?} holds {}", self.place, describe(self.byte));
                bad_input(format, name, what)
            }
            None => {
                let what = format!("the name of a {} holds {}", self.place, describe(self.byte));
                bad_input(format, self.place.replace(' ', "_"), what)
            }
        }
    }
}

/// Checks the decoded names and values of `name=value&...` (a query or a form body, decoded as
/// `Query` and `Form` decode them) for a byte `refused` picks out of the control characters.
fn check_pairs(encoded: &[u8], place: &'static str, refused: impl Fn(u8) -> bool + Copy) -> Result<(), Refused> {
    // Decoding cannot fail: bytes that are not UTF-8 become U+FFFD, as for the extractors.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(encoded).unwrap_or_default();
    for (name, value) in &pairs {
        if let Some(byte) = control_byte(name.as_bytes(), refused) {
            return Err(Refused { name: None, byte, place });
        }
        if let Some(byte) = control_byte(value.as_bytes(), refused) {
            return Err(Refused { name: Some(shown(name)), byte, place });
        }
    }
    Ok(())
}

/// The first C0 control character or DEL in `bytes` that `refused` picks.
fn control_byte(bytes: &[u8], refused: impl Fn(u8) -> bool) -> Option<u8> {
    bytes.iter().copied().find(|&b| (b < 0x20 || b == 0x7f) && refused(b))
}

fn describe(byte: u8) -> String {
    match byte {
        0 => "a NUL byte (%00)".to_owned(),
        b => format!("a control character (%{b:02X})"),
    }
}

/// A name as an error may show it: at most 64 characters.
fn shown(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_owned(),
    }
}

fn bad_input(format: Format, field: impl Into<String>, what: String) -> Response {
    WebError::BadInput { format, field: field.into(), what }.into_response()
}

/// `%XX` decoded, as the router decodes a path's segments (a `%` not followed by two hex
/// digits stays as it is).
fn percent_decoded(raw: &str) -> Vec<u8> {
    let raw = raw.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (raw[i], raw.get(i + 1).copied().and_then(hex), raw.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The middleware: sets `Cache-Control` on every response whose handler did not set its own
/// (`/live`'s event stream does).
pub async fn cache_control(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let signed_in = crate::guard::auth::session_token(req.headers()).is_some();
    let mut response = next.run(req).await;
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        let sets_cookie = response.headers().contains_key(header::SET_COOKIE);
        let policy = cache_policy(&path, response.status(), signed_in, sets_cookie);
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    response
}

/// What caches may do with a response to `path`.
fn cache_policy(path: &str, status: StatusCode, signed_in: bool, sets_cookie: bool) -> &'static str {
    if sets_cookie {
        // A cookie is for one browser: a cache must not hand it to another.
        "private, no-store"
    } else if status.is_success() && path == "/static/sitrep.css" {
        // Its name carries no version, so after an upgrade browsers must get the new one soon;
        // five minutes of the old styles is harmless, and sparing every page view a fetch of it
        // (there is no validator to revalidate `no-cache` against) is worth it.
        "public, max-age=300"
    } else if status.is_success() && path.starts_with("/static/") {
        // htmx and its extension: the version is in the name, so the bytes never change.
        "public, max-age=86400"
    } else if signed_in || path == "/sign-in" {
        // The page carries this browser's form token, and the user's name.
        "private, no-store"
    } else {
        // Live data: a cache may keep it but must ask again before showing it.
        "no-cache"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use axum::Router;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/systems/{system}", get(|| async { "page" }))
            .route("/api/v1/status/{system}", get(|| async { "json" }))
            .route("/sign-in", post(|body: String| async move { body }))
            .route_layer(axum::middleware::from_fn(refuse_nul_in_forms))
            .layer(axum::middleware::from_fn(refuse_control_bytes))
    }

    async fn send(req: Request) -> (StatusCode, String) {
        let resp = app().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get_path(uri: &str) -> (StatusCode, String) {
        send(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    async fn post_form(body: &'static str) -> (StatusCode, String) {
        let req = Request::post("/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        send(req).await
    }

    #[tokio::test]
    async fn a_nul_in_a_query_parameter_is_refused_naming_the_parameter() {
        let (status, body) = get_path("/systems/x?at=&system=x%00").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("the query parameter &quot;system&quot; holds a NUL byte"), "{body}");

        let (status, body) = get_path("/api/v1/status/x?at=a%00b").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["field"], "at");
        assert_eq!(json["error"], "the query parameter \"at\" holds a NUL byte (%00)");
    }

    #[tokio::test]
    async fn a_nul_or_control_character_in_the_path_is_refused_naming_the_path() {
        let (status, body) = get_path("/api/v1/status/x%00").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["field"], "path");
        assert_eq!(json["error"], "the path holds a NUL byte (%00)");

        let (status, body) = get_path("/systems/a%0d%0ab").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("the path holds a control character (%0D)"), "{body}");
    }

    #[tokio::test]
    async fn a_line_break_in_a_query_parameter_is_refused_but_one_in_a_form_field_is_not() {
        let (status, body) = get_path("/systems/x?next=/a%0d%0aSet-Cookie:x").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("&quot;next&quot; holds a control character (%0D)"), "{body}");

        let (status, body) = post_form("description=two%0D%0Alines&title=a+b").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "description=two%0D%0Alines&title=a+b", "the handler gets the body as it was sent");
    }

    #[tokio::test]
    async fn a_nul_in_a_form_field_is_refused_naming_the_field() {
        let (status, body) = post_form("csrf=x&name=ad%00min").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("the form field &quot;name&quot; holds a NUL byte"), "{body}");

        let (status, body) = post_form("na%00me=admin").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("the name of a form field holds a NUL byte"), "{body}");
    }

    #[tokio::test]
    async fn ordinary_requests_pass_untouched() {
        assert_eq!(get_path("/systems/derecho?at=2026-11-22T10:00&x=%ff%2e%2e").await.0, StatusCode::OK);
        assert_eq!(get_path("/systems/100%25").await.0, StatusCode::OK);
        assert_eq!(post_form("name=ops&password=p%C3%A4ss+word").await.1, "name=ops&password=p%C3%A4ss+word");
    }

    #[test]
    fn percent_decoding_decodes_only_whole_escapes() {
        assert_eq!(percent_decoded("/a%00b%2Fc"), b"/a\0b/c");
        assert_eq!(percent_decoded("/100%"), b"/100%");
        assert_eq!(percent_decoded("/%zz%4"), b"/%zz%4");
        assert_eq!(percent_decoded("/%ff"), [b'/', 0xff]);
    }

    #[test]
    fn long_names_are_shortened_when_shown() {
        assert_eq!(shown("system"), "system");
        assert_eq!(shown(&"x".repeat(10_000)).chars().count(), 65);
    }

    #[test]
    fn signed_in_pages_are_not_stored_and_assets_are_cached() {
        let ok = StatusCode::OK;
        assert_eq!(cache_policy("/alerts", ok, true, false), "private, no-store");
        assert_eq!(cache_policy("/api/v1/status", ok, true, false), "private, no-store");
        assert_eq!(cache_policy("/alerts", ok, false, false), "no-cache");
        assert_eq!(cache_policy("/api/v1/status", ok, false, false), "no-cache");
        assert_eq!(cache_policy("/sign-in", ok, false, false), "private, no-store");
        assert_eq!(cache_policy("/", ok, false, true), "private, no-store");
        assert_eq!(cache_policy("/static/htmx-2.0.11.min.js", ok, true, false), "public, max-age=86400");
        assert_eq!(cache_policy("/static/sitrep.css", ok, false, false), "public, max-age=300");
        assert_eq!(cache_policy("/static/nothing.js", StatusCode::NOT_FOUND, false, false), "no-cache");
        assert_eq!(cache_policy("/static/sitrep.css", ok, false, true), "private, no-store");
    }

    #[tokio::test]
    async fn a_cache_control_the_handler_set_is_kept() {
        let app = Router::new()
            .route("/live", get(|| async { ([(header::CACHE_CONTROL, "no-cache")], "stream") }))
            .route("/ops", get(|| async { "page" }))
            .layer(axum::middleware::from_fn(cache_control));
        let signed_in =
            |uri: &str| Request::get(uri).header(header::COOKIE, "sitrep_session=abc").body(Body::empty()).unwrap();
        let live = app.clone().oneshot(signed_in("/live")).await.unwrap();
        assert_eq!(live.headers()[header::CACHE_CONTROL], "no-cache");
        let ops = app.oneshot(signed_in("/ops")).await.unwrap();
        assert_eq!(ops.headers()[header::CACHE_CONTROL], "private, no-store");
    }
}
