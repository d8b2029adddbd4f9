//! `/reports/sla` (operators): the SLA report of `read::sla_report` as a page, CSV, JSON or PDF;
//! and the standalone HTML document `sitrep report sla` writes.

pub mod pdf;

use crate::read::sla_report::{build, csv, systems, Report, ReportMonth, Request};
use crate::state::AppState;
use crate::view::error::{Format, WebError};
use crate::view::layout::Layout;
use crate::view::templates;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sitrep_infra::auth::Role;
use time::OffsetDateTime;

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    pub month: Option<String>,
    pub system: Option<String>,
    pub components: Option<String>,
    pub format: Option<String>,
}

#[derive(Serialize)]
struct ReportPage<'a> {
    layout: Layout,
    served: bool,
    report: &'a Report,
    month: String,
    system: String,
    components: bool,
    previous_url: String,
    csv_url: String,
    json_url: String,
    pdf_url: String,
    systems: Vec<String>,
}

/// `GET /reports/sla?month=2026-11[&system=…][&components=1][&format=csv|json|pdf]` (operators).
pub async fn sla_page(
    State(state): State<AppState>,
    viewer: crate::guard::auth::Viewer,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    let format = match q.format.as_deref().unwrap_or("html") {
        "html" | "" => None,
        "csv" => Some("csv"),
        "json" => Some("json"),
        "pdf" => Some("pdf"),
        other => {
            return Err(WebError::bad_request(
                Format::Html,
                "format",
                format!("{other:?} is not a format; use html, csv, json or pdf"),
            ))
        }
    };
    let errors = if format == Some("json") { Format::Json } else { Format::Html };
    // Anyone signed in: viewers too (a manager needs no operator's powers to read it).
    viewer.require(Role::Viewer, errors)?;
    let now = state.now();
    let month = match q.month.as_deref().filter(|m| !m.trim().is_empty()) {
        None => ReportMonth::of(now).previous(),
        Some(m) => {
            ReportMonth::parse(m).and_then(|m| m.begun(now)).map_err(|e| WebError::bad_request(errors, "month", e))?
        }
    };
    let system = q.system.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(s) = &system {
        if sitrep_domain::SystemName::parse(s).is_err() {
            return Err(WebError::bad_request(errors, "system", format!("{s:?} is not a system name")));
        }
    }
    let components = q.components.as_deref().is_some_and(|v| matches!(v, "1" | "true" | "on" | "yes"));
    let req = Request { month, system: system.clone(), components };
    let report = build(&state.pool, &state.public, &req, now).await.map_err(|e| match errors {
        Format::Json => WebError::api(e),
        Format::Html => WebError::page(e),
    })?;
    match format {
        Some("csv") => {
            let name = format!("attachment; filename=\"sitrep-sla-{}.csv\"", report.month);
            Ok((
                [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, name)],
                csv(&report),
            )
                .into_response())
        }
        Some("pdf") => {
            let name = format!("attachment; filename=\"sitrep-sla-{}.pdf\"", report.month);
            // Evidence under the address the dashboard was asked at, as a reader of the paper needs it.
            let base = state.public.url.clone().unwrap_or_default();
            let body = pdf::pdf(&report, &crate::view::utc_text(now), &base);
            Ok(([(header::CONTENT_TYPE, "application/pdf".to_owned()), (header::CONTENT_DISPOSITION, name)], body)
                .into_response())
        }
        Some(_) => Ok(axum::Json(&report).into_response()),
        None => {
            let query = |m: &str, fmt: &str| {
                let mut q = format!("?month={m}");
                if let Some(s) = &system {
                    q.push_str(&format!("&system={s}"));
                }
                if components {
                    q.push_str("&components=1");
                }
                if !fmt.is_empty() {
                    q.push_str(&format!("&format={fmt}"));
                }
                format!("/reports/sla{q}")
            };
            let all = systems(&state.pool, month.start(), month.end()).await.map_err(WebError::page)?;
            let page = ReportPage {
                layout: Layout::still(format!("SLA report {}", report.month), "reports", now),
                served: true,
                month: report.month.clone(),
                system: system.clone().unwrap_or_default(),
                components,
                previous_url: query(&month.previous().label(), ""),
                csv_url: query(&report.month, "csv"),
                json_url: query(&report.month, "json"),
                pdf_url: query(&report.month, "pdf"),
                systems: all,
                report: &report,
            };
            let html = templates::render("sla_report", &page).map_err(|e| WebError::page(anyhow::anyhow!(e)))?;
            Ok(axum::response::Html(html).into_response())
        }
    }
}

#[derive(Serialize)]
struct ReportDocument<'a> {
    served: bool,
    report: &'a Report,
    month: &'a str,
    made_at: String,
    /// What the document's links (`/events/…`, component pages) are relative to.
    base: &'a str,
    css: &'static str,
}

/// The report as a standalone HTML document (its style inside), for `sitrep report sla`.
/// Links lead to the dashboard at `base`.
pub fn html_document(report: &Report, base: &str, now: OffsetDateTime) -> anyhow::Result<String> {
    let doc = ReportDocument {
        served: false,
        report,
        month: &report.month,
        made_at: crate::view::age(now, now, false).exact,
        base,
        css: templates::CSS,
    };
    templates::render("sla_document", &doc).map_err(|e| anyhow::anyhow!("rendering the report: {e}"))
}
