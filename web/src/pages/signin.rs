//! `/sign-in` and `/sign-out`.

use crate::guard::auth::{self as web_auth, Viewer, SESSION_COOKIE};
use crate::state::AppState;
use crate::view;
use crate::view::error::WebError;
use crate::view::layout::{render, Layout};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use sitrep_infra::auth;

/// The sign-in page; `error` after a failed attempt.
#[derive(Debug, Serialize)]
pub struct SignInPage {
    pub layout: Layout,
    pub next: String,
    pub name: String,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Next {
    pub next: Option<String>,
}

/// Where to go after signing in: a path on this dashboard, never another site. It must start
/// with a single `/` (not `//` or `/\`, which browsers read as another host) and hold no control
/// characters, also once percent-decoded (`/%09/other-host` is `/<TAB>/other-host`, which
/// browsers also read as another host; CR, LF or NUL could not even go in a header).
fn safe_next(next: Option<&str>) -> String {
    let Some(n) = next else { return "/".to_owned() };
    let decoded = percent_encoding::percent_decode_str(n).decode_utf8_lossy();
    let bad = |p: &str| {
        !p.starts_with('/')
            || p.starts_with("//")
            || p.starts_with("/\\")
            || p.contains('\\')
            || p.chars().any(|c| c.is_control())
    };
    if bad(n) || bad(&decoded) {
        "/".to_owned()
    } else {
        n.to_owned()
    }
}

impl SignInPage {
    fn new(state: &AppState, next: String, name: String, error: Option<String>) -> Self {
        Self { layout: Layout::still("Sign in", "", state.now()), next, name, error }
    }
}

pub async fn page(State(state): State<AppState>, Query(q): Query<Next>) -> Result<Response, WebError> {
    let page = SignInPage::new(&state, safe_next(q.next.as_deref()), String::new(), None);
    Ok(render("sign_in", &page)?.into_response())
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub csrf: String,
    pub next: Option<String>,
}

#[tracing::instrument(skip_all, fields(user = %form.name))]
pub async fn sign_in(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, WebError> {
    crate::guard::forms::same_origin(&headers)?;
    viewer.check_token(&form.csrf)?;
    let next = safe_next(form.next.as_deref());
    let name = form.name.trim();
    // The database connection goes back to the pool before the password is checked: a flood of
    // sign-ins must not hold connections the dashboard needs while hashes run.
    let (refused, user) = {
        let client = state.pool.get().await.map_err(WebError::page)?;
        match auth::begin_sign_in(&**client, name).await.map_err(WebError::page)? {
            Some(refused) => (Some(refused), None),
            None => (None, auth::find_user(&**client, &state.auth.users_file, name).await.map_err(WebError::page)?),
        }
    };
    if let Some(refused) = refused {
        tracing::warn!("sign-in refused: too many failed sign-ins for this name");
        let wait = refused.wait_seconds;
        let error = format!(
            "Too many failed sign-ins for this name ({} in {} minutes). Try again after {} (in {} min).",
            auth::SIGN_IN_FAILURES,
            auth::SIGN_IN_WINDOW.whole_minutes(),
            view::utc_text(refused.until),
            (wait + 59) / 60
        );
        let page = SignInPage::new(&state, next, form.name.clone(), Some(error));
        let retry = [(header::RETRY_AFTER, wait.to_string())];
        return Ok((StatusCode::TOO_MANY_REQUESTS, retry, render("sign_in", &page)?).into_response());
    }
    // Hash even for an unknown name, so the answer takes as long either way; at most half the
    // cores hash at once (limits.rs).
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = form.password.clone();
    let ok = state
        .limits
        .hash(move || match hash {
            Some(h) => auth::verify_password(&h, &password),
            None => {
                let _ = auth::hash_password(&password);
                false
            }
        })
        .await?;
    let Some(user) = user.filter(|_| ok) else {
        // The attempt's row, recorded before the check, stays as the failure.
        tracing::info!("sign-in refused");
        let page = SignInPage::new(&state, next, form.name, Some("That name and password do not match.".into()));
        return Ok((StatusCode::UNAUTHORIZED, render("sign_in", &page)?).into_response());
    };
    let client = state.pool.get().await.map_err(WebError::page)?;
    auth::forget_sign_in_failures(&**client, name).await.map_err(WebError::page)?;
    let (token, session) =
        auth::start_session(&**client, &user, state.auth.session_length).await.map_err(WebError::page)?;
    tracing::info!(role = session.role.as_str(), "signed in");
    let cookie = web_auth::set_cookie(&state, SESSION_COOKIE, token, Some(state.auth.session_length));
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Result<Response, WebError> {
    crate::guard::forms::same_origin(&headers)?;
    viewer.check_token(&form.csrf)?;
    if let Some(token) = web_auth::session_token(&headers) {
        let client = state.pool.get().await.map_err(WebError::page)?;
        auth::end_session(&**client, &token).await.map_err(WebError::page)?;
    }
    let gone = web_auth::set_cookie(&state, SESSION_COOKIE, String::new(), Some(time::Duration::ZERO));
    Ok(([(header::SET_COOKIE, gone)], Redirect::to("/")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_signing_in_only_pages_of_this_dashboard_are_followed() {
        assert_eq!(safe_next(Some("/alerts?state=open")), "/alerts?state=open");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil",
            "alerts",
            "/\t/other-host/",
            "/%09/other-host/",
            "/%2F/other-host",
            "/%5Cother-host",
            "/x\r\nSet-Cookie: a=b",
            "/x%0d%0aSet-Cookie:%20a=b",
            "/x\0",
            "/x%00",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(
            safe_next(Some("/systems/derecho?at=2026-12-07T10%3A00%3A00Z")),
            "/systems/derecho?at=2026-12-07T10%3A00%3A00Z"
        );
    }
}
