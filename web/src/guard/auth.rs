//! Who is looking, and what they may do.
//!
//! - Operators sign in at `/sign-in` (users from `SITREP_USERS_FILE` or `sitrep users add`); the
//!   session cookie `sitrep_session` holds a random token whose SHA-256 is the session's key.
//! - Every form carries a CSRF token: the session's, or for a browser not signed in (the sign-in
//!   form itself), the random one in the `sitrep_csrf` cookie. A post whose token does not match,
//!   or that comes from another site, is refused with 403.
//! - Acting needs a role ([`Viewer::require`]); viewing needs one only when
//!   `SITREP_VIEW_REQUIRES_SIGN_IN` is set.
//! - [`layer`] works this out once per request and also gathers what every page's layout shows
//!   besides its content ([`Chrome`]: who is signed in, the token, active outages).

use crate::state::AppState;
use crate::view::error::{Format, WebError};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::Serialize;
use sitrep_infra::auth::{self, Role, Session};

pub const SESSION_COOKIE: &str = "sitrep_session";
pub const CSRF_COOKIE: &str = "sitrep_csrf";

/// Who made a request.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub session: Option<Session>,
    /// The token this browser's forms carry.
    pub csrf: String,
}

impl Viewer {
    /// The signed-in operator, if they have at least `role`.
    pub fn require(&self, role: Role, format: Format) -> Result<&Session, WebError> {
        match &self.session {
            None => Err(WebError::SignInNeeded { format }),
            Some(s) if s.role < role => Err(WebError::Forbidden {
                format,
                what: format!("{} may not do this: it needs the {} role.", s.user, role.as_str()),
            }),
            Some(s) => Ok(s),
        }
    }

    /// Checks a posted form: from this dashboard, with this browser's token, by someone with
    /// at least `role`. Returns who it was.
    pub fn check_form(&self, headers: &HeaderMap, token: &str, role: Role) -> Result<&Session, WebError> {
        crate::guard::forms::same_origin(headers)?;
        if self.session.is_none() {
            return Err(WebError::SignInNeeded { format: Format::Html });
        }
        self.check_token(token)?;
        self.require(role, Format::Html)
    }

    /// The form's token must be this browser's.
    pub fn check_token(&self, token: &str) -> Result<(), WebError> {
        if self.csrf.is_empty() || !auth::same_secret(token, &self.csrf) {
            return Err(WebError::Forbidden {
                format: Format::Html,
                what: "This form's security token is missing or out of date.".into(),
            });
        }
        Ok(())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Viewer>().cloned().unwrap_or_default())
    }
}

/// What every page shows besides its own content.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Chrome {
    /// The signed-in operator and their role.
    pub user: Option<String>,
    pub role: Option<&'static str>,
    /// Whether they may act (operator or admin): forms are shown, not a sign-in link.
    pub can_act: bool,
    /// The token this page's forms carry.
    pub csrf: String,
    /// Outages in force now, worst first: a banner on every page.
    pub outages: Vec<crate::read::notices::Banner>,
}

tokio::task_local! {
    static CHROME: Chrome;
}

/// The current request's [`Chrome`] (empty outside a request, as in template tests).
pub fn chrome() -> Chrome {
    CHROME.try_with(Clone::clone).unwrap_or_default()
}

/// Paths anyone may reach even when viewing needs signing in: signing in itself, assets,
/// probes, and the write endpoints collectors reach with API keys.
fn open_to_all(path: &str) -> bool {
    path == "/sign-in"
        || path.starts_with("/static/")
        // The public face: what status.toml makes public, for a centre's users.
        || path == "/status"
        || path.starts_with("/status/")
        || path.starts_with("/badge/")
        || matches!(path, "/healthz" | "/readyz" | "/metrics")
        || matches!(path, "/api/v1/reports" | "/api/v1/outages" | "/api/v1/maintenance")
}

/// A page (as opposed to the API, assets, probes or the live stream): gets the outage banner.
/// `/` and system pages load theirs when they render ([`with_outage_banners`]), since a page
/// kept between requests ([`crate::view::pagecache`]) is served with the banner it was rendered with.
fn needs_outage_banners(method: &Method, path: &str) -> bool {
    method == Method::GET
        && !(path.starts_with("/api/")
            || path.starts_with("/static/")
            || matches!(path, "/live" | "/healthz" | "/readyz" | "/metrics")
            // The public face shows no operator banners.
            || path == "/status"
            || path.starts_with("/status/")
            || path.starts_with("/badge/")
            || renders_own_banners(path))
}

/// `/` and `/systems/{system}`: the pages that load their outage banners as they render.
fn renders_own_banners(path: &str) -> bool {
    path == "/" || path.strip_prefix("/systems/").is_some_and(|system| !system.is_empty() && !system.contains('/'))
}

/// Runs `render` with the outages in force now in its [`Chrome`], for the pages that load
/// them as they render (see [`needs_outage_banners`]).
pub async fn with_outage_banners<F: std::future::Future>(state: &AppState, render: F) -> F::Output {
    let chrome = Chrome { outages: outage_banners(state).await, ..chrome() };
    CHROME.scope(chrome, render).await
}

async fn outage_banners(state: &AppState) -> Vec<crate::read::notices::Banner> {
    crate::read::notices::banners(state).await.unwrap_or_else(|e| {
        tracing::warn!(error = format!("{e:#}"), "reading active outages for the banner failed");
        Vec::new()
    })
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` for one of sitrep's cookies: HttpOnly, SameSite=Lax, whole site.
pub fn set_cookie(state: &AppState, name: &'static str, value: String, max_age: Option<time::Duration>) -> HeaderValue {
    let mut c = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.auth.secure_cookies);
    if let Some(age) = max_age {
        c = c.max_age(age);
    }
    HeaderValue::from_str(&c.build().to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session cookie's token, if the browser sent one.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, SESSION_COOKIE)
}

/// Works out the [`Viewer`] and the [`Chrome`], turns away viewers who must sign in first,
/// and gives a browser without one its CSRF cookie.
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let session = match session_token(headers) {
        None => None,
        Some(token) => match state.pool.get().await {
            Ok(client) => auth::session(&**client, &state.auth.users_file, &token).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading a session failed; treating the request as signed out");
                None
            }),
            Err(e) => {
                tracing::warn!(error = %e, "reading a session failed; treating the request as signed out");
                None
            }
        },
    };
    let mut minted = None;
    let csrf = match (&session, cookie_value(headers, CSRF_COOKIE)) {
        (Some(s), _) => s.csrf.clone(),
        (None, Some(c)) if c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()) => c,
        (None, _) => {
            let c = auth::anonymous_csrf();
            minted = Some(c.clone());
            c
        }
    };
    let path = req.uri().path().to_owned();
    if state.auth.view_requires_sign_in && session.is_none() && !open_to_all(&path) {
        let format = if path.starts_with("/api/") { Format::Json } else { Format::Html };
        if format == Format::Html && req.method() == Method::GET {
            let back = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let to = format!("/sign-in?{}", serde_urlencoded::to_string([("next", back)]).unwrap_or_default());
            return with_cookie(&state, Redirect::to(&to).into_response(), minted);
        }
        return with_cookie(&state, WebError::SignInNeeded { format }.into_response(), minted);
    }
    let outages = if needs_outage_banners(req.method(), &path) { outage_banners(&state).await } else { Vec::new() };
    let chrome = Chrome {
        user: session.as_ref().map(|s| s.user.clone()),
        role: session.as_ref().map(|s| s.role.as_str()),
        can_act: session.as_ref().is_some_and(|s| s.role >= Role::Operator),
        csrf: csrf.clone(),
        outages,
    };
    req.extensions_mut().insert(Viewer { session, csrf });
    let response = CHROME.scope(chrome, next.run(req)).await;
    // Only pages carry forms: the API, static files and probes get no cookie (so curl and
    // Prometheus see the caching headers docs/operations.md promises, and no Set-Cookie).
    let page = !["/api/", "/static/", "/healthz", "/readyz", "/metrics", "/live"].iter().any(|p| path.starts_with(p));
    with_cookie(&state, response, minted.filter(|_| page))
}

fn with_cookie(state: &AppState, mut response: Response, minted: Option<String>) -> Response {
    if let Some(c) = minted {
        response.headers_mut().append(header::SET_COOKIE, set_cookie(state, CSRF_COOKIE, c, None));
    }
    response
}
