//! `/status/feed.atom` and `/status/feed.rss`: the public status page's incidents and
//! maintenance as feeds, one entry per update of an incident (identified, each update,
//! resolved) and one per maintenance window or reservation. Only what `status.toml` makes
//! public, in its groups' names. Written by Handlebars templates, whose escaping is XML's too.

use crate::read::notices::Notices;
use crate::read::public;
use crate::state::AppState;
use crate::view::error::WebError;
use crate::view::templates;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::OffsetDateTime;

/// Entries a feed carries at most, the newest.
pub const ENTRIES: usize = 50;
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5e1f_72e9_9c4a_4b8e_a1d2_6f03_a1e7_0f0d);

#[derive(Debug, Serialize)]
struct Entry {
    id: String,
    title: String,
    summary: String,
    /// Where on the status page it is: `/status?page=2#derecho-sched`.
    path: String,
    updated: String,
    rfc2822: String,
    #[serde(skip)]
    at: OffsetDateTime,
}

#[derive(Debug, Serialize)]
struct Feed {
    title: String,
    description: String,
    base: String,
    updated: String,
    rfc2822: String,
    entries: Vec<Entry>,
}

/// Only characters XML 1.0 allows: no control characters but tab and line breaks.
fn xml_text(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')).collect()
}

/// `text` ending as a sentence does, so the next one does not run on from it.
fn sentence(text: &str) -> String {
    let t = text.trim_end();
    if t.ends_with(['.', '!', '?', ':']) {
        t.to_owned()
    } else {
        format!("{t}.")
    }
}

/// When a maintenance window was scheduled or last changed, from the log.
async fn changed_at(state: &AppState, system: &str, id: &str) -> anyhow::Result<Option<OffsetDateTime>> {
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT e.recorded_at FROM maintenance_windows w JOIN events e ON e.position = w.updated_position
             WHERE w.system = $1 AND w.id = $2",
            &[&system, &id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

fn times(at: OffsetDateTime) -> (String, String) {
    (at.format(&Rfc3339).unwrap_or_default(), at.format(&Rfc2822).unwrap_or_default())
}

/// Where links lead: `[status_page] url`, else this request's host.
fn base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public.url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if state.auth.secure_cookies { "https" } else { "http" };
    format!("{scheme}://{host}")
}

async fn feed(state: &AppState, headers: &HeaderMap) -> Result<Feed, WebError> {
    let config = &state.public;
    let now = state.now();
    let mut entries = Vec::new();
    let mut outages = public::public_outages(state, config).await.map_err(WebError::page)?;
    outages.truncate(ENTRIES);
    public::with_updates(state, &mut outages).await.map_err(WebError::page)?;
    for (i, o) in outages.iter().enumerate() {
        let affects = format!("Affects {}.", o.groups.join(", "));
        // Where /status lists it: ten incidents a page, in this order.
        let page = i as i64 / crate::pages::status::INCIDENTS_PER_PAGE + 1;
        let path = if page == 1 {
            format!("/status#{}-{}", o.system, o.id)
        } else {
            format!("/status?page={page}#{}-{}", o.system, o.id)
        };
        for (position, at, kind, message) in &o.updates {
            let word = public::update_word(kind);
            let text = message.clone().or_else(|| (kind == "declared").then(|| o.description.clone()).flatten());
            let (updated, rfc2822) = times(*at);
            entries.push(Entry {
                id: format!(
                    "urn:uuid:{}",
                    uuid::Uuid::new_v5(&ID_NAMESPACE, format!("outage/{}/{}/{position}", o.system, o.id).as_bytes())
                ),
                title: xml_text(&format!("{word}: {}", o.title)),
                summary: xml_text(&match text {
                    Some(t) => format!("{} {affects}", sentence(&t)),
                    None => affects.clone(),
                }),
                path: path.clone(),
                updated,
                rfc2822,
                at: *at,
            });
        }
    }
    let mut notices = Notices::default();
    for system in public::systems(config) {
        notices.windows.extend(Notices::at(state, None, Some(system)).await.map_err(WebError::page)?.windows);
    }
    for (w, groups) in public::public_windows(config, &notices) {
        let kind = if w.kind == "reservation" { "Reservation" } else { "Maintenance" };
        // Dated when it was scheduled or last changed, so an entry stays put between polls.
        let changed =
            changed_at(state, &w.system, &w.id).await.map_err(WebError::page)?.unwrap_or(w.starts_at.min(now));
        let (updated, rfc2822) = times(changed);
        let mut summary = format!(
            "From {} to {}. Affects {}.",
            crate::view::utc_text(w.starts_at),
            crate::view::utc_text(w.ends_at),
            groups.join(", ")
        );
        if let Some(d) = &w.description {
            summary = format!("{} {summary}", sentence(d));
        }
        entries.push(Entry {
            id: format!(
                "urn:uuid:{}",
                uuid::Uuid::new_v5(
                    &ID_NAMESPACE,
                    format!("maintenance/{}/{}/{}/{}", w.system, w.id, w.starts_at, w.ends_at).as_bytes()
                )
            ),
            title: xml_text(&format!("{kind} {}: {}", if w.on_at(now) { "in progress" } else { "scheduled" }, w.title)),
            summary: xml_text(&summary),
            path: format!("/status#{}-{}", w.system, w.id),
            updated,
            rfc2822,
            at: changed,
        });
    }
    entries.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
    entries.truncate(ENTRIES);
    let latest = entries.first().map_or(now, |e| e.at);
    let (updated, rfc2822) = times(latest);
    Ok(Feed {
        title: xml_text(&format!("{}: incidents and maintenance", config.title)),
        description: xml_text(
            config.description.as_deref().unwrap_or("Incidents and maintenance, as the status page shows them."),
        ),
        base: base(state, headers),
        updated,
        rfc2822,
        entries,
    })
}

fn xml(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `GET /status/feed.atom`.
pub async fn atom(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, WebError> {
    let f = feed(&state, &headers).await?;
    let body = templates::render("feed_atom", &f).map_err(WebError::page)?;
    Ok(xml("application/atom+xml; charset=utf-8", body))
}

/// `GET /status/feed.rss`.
pub async fn rss(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, WebError> {
    let f = feed(&state, &headers).await?;
    let body = templates::render("feed_rss", &f).map_err(WebError::page)?;
    Ok(xml("application/rss+xml; charset=utf-8", body))
}
