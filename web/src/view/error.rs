//! The one error type handlers return, and the one place errors become HTTP responses.
//!
//! Pages answer with the error page (through the same layout as every other page); the API
//! answers with JSON `{"error": ...}`. A 500 is logged with its whole cause chain and shows the
//! user only that something went wrong.

use crate::view::layout::Layout;
use crate::view::templates;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

/// Which kind of answer the caller expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// 400: a query parameter is wrong; `field` names it and `what` says how.
    #[error("{field}: {what}")]
    BadRequest { format: Format, field: String, what: String },
    /// 400: the path, a query parameter or a form field holds a byte no input may hold (a NUL,
    /// or a control character where only a line of text belongs); `field` names it (`path`, the
    /// parameter or the field) and `what` says where and which byte. See `crate::guard::hardening`.
    #[error("{what}")]
    BadInput { format: Format, field: String, what: String },
    /// 404: the thing asked for does not exist; `hint` says what to do.
    #[error("{what}")]
    NotFound { format: Format, what: String, hint: String },
    /// 403: a form posted from another site or without its token, a role that may not do
    /// this, or an API key used for a system it was not issued for.
    #[error("{what}")]
    Forbidden { format: Format, what: String },
    /// 401: acting (or, when so configured, viewing) needs signing in.
    #[error("sign in first")]
    SignInNeeded { format: Format },
    /// 401: an API request without a valid key (`what` says which).
    #[error("{what}")]
    BadKey { what: String },
    /// 400: a posted body is wrong; every field at fault is named (API only).
    #[error("{} field errors", errors.len())]
    Rejected { errors: Vec<sitrep_domain::wire::FieldError> },
    /// 413: a posted body is over the limit `what` names (API only).
    #[error("{what}")]
    TooLarge { what: String },
    /// 409: the outage or window, as it stands, refuses this message (API only).
    #[error("{what}")]
    Refused { what: String },
    /// 503: something sitrep needs for this is not reachable now (API only).
    #[error("{what}")]
    Unavailable { what: String },
    /// 409: the command does not fit the thing as it is now (pages only); `what` says why.
    #[error("{what}")]
    Conflict { what: String },
    /// 429: this client sent more sign-ins or reports than its limit, or too many sign-ins are
    /// being checked at once; `retry_after` (seconds) goes in `Retry-After`.
    #[error("{what}")]
    TooManyRequests { format: Format, what: String, retry_after: u64 },
    /// 500: something failed inside; logged, never shown.
    #[error("{source:#}")]
    Internal { format: Format, source: anyhow::Error },
}

impl WebError {
    pub fn bad_request(format: Format, field: impl Into<String>, what: impl Into<String>) -> Self {
        Self::BadRequest { format, field: field.into(), what: what.into() }
    }

    pub fn not_found(format: Format, what: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::NotFound { format, what: what.into(), hint: hint.into() }
    }

    /// 404 for a system that has never reported, saying where its collectors should publish.
    pub fn no_reports(format: Format, system: &str, subject_prefix: &str) -> Self {
        Self::not_found(format, format!("No reports yet from {system}."), publish_hint(system, subject_prefix))
    }

    /// 404 for a component that has never reported.
    pub fn no_component_reports(format: Format, system: &str, component: &str, subject_prefix: &str) -> Self {
        Self::not_found(
            format,
            format!("No reports yet from {system} / {component}."),
            publish_hint(system, subject_prefix),
        )
    }

    /// Wraps an internal failure for a page.
    pub fn page(source: impl Into<anyhow::Error>) -> Self {
        Self::Internal { format: Format::Html, source: source.into() }
    }

    /// Wraps an internal failure for the API.
    pub fn api(source: impl Into<anyhow::Error>) -> Self {
        Self::Internal { format: Format::Json, source: source.into() }
    }
}

fn publish_hint(system: &str, subject_prefix: &str) -> String {
    format!("Collectors publish to {subject_prefix}.report.{system}: see docs/collectors.md for the format.")
}

#[derive(Serialize)]
struct ErrorPage<'a> {
    layout: Layout,
    status: u16,
    message: &'a str,
    hint: &'a str,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let bad_request;
        let (status, format, message, hint) = match &self {
            WebError::BadRequest { format, field, what } => {
                bad_request = format!("{field}: {what}");
                (StatusCode::BAD_REQUEST, *format, bad_request.as_str(), "Fix the parameter named and try again.")
            }
            WebError::BadInput { format, what, .. } => {
                (StatusCode::BAD_REQUEST, *format, what.as_str(), "Take it out and try again.")
            }
            WebError::NotFound { format, what, hint } => (StatusCode::NOT_FOUND, *format, what.as_str(), hint.as_str()),
            WebError::Forbidden { format, what } => (
                StatusCode::FORBIDDEN,
                *format,
                what.as_str(),
                match format {
                    Format::Html => "Open the page on this dashboard, reload it, and use its form.",
                    Format::Json => "Use a key issued for this system (`sitrep keys create --system ...`).",
                },
            ),
            WebError::SignInNeeded { format } => (
                StatusCode::UNAUTHORIZED,
                *format,
                "Sign in first.",
                "Sign in at /sign-in with the name and password an admin gave you (with sitrep users add).",
            ),
            WebError::BadKey { what } => (
                StatusCode::UNAUTHORIZED,
                Format::Json,
                what.as_str(),
                "Send `Authorization: Bearer <key>` with a key from `sitrep keys create`: see docs/collectors.md.",
            ),
            WebError::Rejected { errors } => {
                bad_request = errors.first().map(ToString::to_string).unwrap_or_default();
                (StatusCode::BAD_REQUEST, Format::Json, bad_request.as_str(), "Fix the fields named and send it again.")
            }
            WebError::TooLarge { what } => {
                (StatusCode::PAYLOAD_TOO_LARGE, Format::Json, what.as_str(), "Split the batch into smaller messages.")
            }
            WebError::Refused { what } => (
                StatusCode::CONFLICT,
                Format::Json,
                what.as_str(),
                "Look at it first: GET /api/v1/outages, or its page under /systems/<system>/.",
            ),
            WebError::Unavailable { what } => {
                (StatusCode::SERVICE_UNAVAILABLE, Format::Json, what.as_str(), "Try again in a moment.")
            }
            WebError::Conflict { what } => {
                (StatusCode::CONFLICT, Format::Html, what.as_str(), "Go back, reload the page, and look again.")
            }
            WebError::TooManyRequests { format, what, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                *format,
                what.as_str(),
                "Wait for the time in the Retry-After header, then try again.",
            ),
            WebError::Internal { format, source } => {
                tracing::error!(error = format!("{source:#}"), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    *format,
                    "Something went wrong inside sitrep.",
                    "The error is in sitrep's log. Try again in a moment.",
                )
            }
        };
        let retry_after = match &self {
            WebError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let mut response = match format {
            Format::Json => {
                let mut body = serde_json::json!({"error": message, "hint": hint});
                match &self {
                    WebError::BadRequest { field, what, .. } | WebError::BadInput { field, what, .. } => {
                        body["field"] = field.as_str().into();
                        body["errors"] = serde_json::json!([{"field": field, "reason": what}]);
                    }
                    WebError::Rejected { errors } => body["errors"] = serde_json::json!(errors),
                    WebError::TooLarge { .. } => {
                        body["errors"] = serde_json::json!([{"field": "payload", "reason": message}]);
                    }
                    _ => {}
                }
                (status, axum::Json(body)).into_response()
            }
            Format::Html => {
                let title = status.canonical_reason().unwrap_or("Error");
                let layout = Layout::still(title, "", time::OffsetDateTime::now_utc());
                let page = ErrorPage { layout, status: status.as_u16(), message, hint };
                match templates::render("error", &page) {
                    Ok(body) => (status, Html(body)).into_response(),
                    Err(e) => {
                        tracing::error!(error = %e, "rendering the error page failed");
                        (status, message.to_owned()).into_response()
                    }
                }
            }
        };
        if let Some(secs) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl WebError {
    /// The 404 for a position the events table does not hold: one `sitrep archive` moved out names
    /// its file; any other is simply not there.
    pub async fn missing_event(client: &deadpool_postgres::Client, format: Format, n: i64) -> WebError {
        let file = client
            .query_opt("SELECT file, dir FROM archive_files WHERE $1 BETWEEN first_position AND last_position", &[&n])
            .await;
        match file {
            Ok(Some(f)) => Self::not_found(
                format,
                format!("Event {n} is archived, in {} (folder {}).", f.get::<_, String>(0), f.get::<_, String>(1)),
                "sitrep replay and verify read it from there; zcat shows the file's events, one JSON object a line.",
            ),
            Ok(None) => Self::not_found(format, format!("No event at position {n}."), "See /events for the log."),
            Err(e) => match format {
                Format::Html => Self::page(sitrep_infra::InfraError::from(e)),
                Format::Json => Self::api(sitrep_infra::InfraError::from(e)),
            },
        }
    }
}
