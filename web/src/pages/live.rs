//! Live pages: `/live?page=home` and `/live?page=system&system=…` are server-sent event
//! streams. An open page connects with htmx's SSE extension (vendored) and swaps in the
//! fragments it is sent, rendered by the same partials as the page (`home_live`,
//! `system_live`, and `outage_banners` for the banners above every page). Without JavaScript
//! the page reloads itself instead (`<noscript>` refresh).
//!
//! One task per process looks twice a second, while any live page is open, at what the pages
//! depend on (the latest-status, alerts and outages checkpoints, the open-alert count) and shares
//! it with every stream. When that changed, or 15 s have passed (so ages stay true), a stream
//! sends its fragment, then a `status` event saying when the page last changed.

use crate::pages::home;
use crate::state::AppState;
use crate::view;
use crate::view::error::{Format, WebError};
use crate::view::templates::{self, LivePage};
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Html;
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::state::LiveVersion as Version;

/// Starts the one task that watches [`version`] for every live page, until the server stops.
/// It asks the database only while some page is open (a receiver besides its own).
fn watch_versions(state: AppState) -> watch::Receiver<Option<Version>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        while !state.shutdown.is_cancelled() {
            if tx.receiver_count() > 1 {
                match version(&state).await {
                    Ok(v) => {
                        tx.send_if_modified(|seen| {
                            let changed = *seen != Some(v);
                            *seen = Some(v);
                            changed
                        });
                    }
                    Err(e) => tracing::debug!(error = format!("{e:#}"), "live pages could not look for changes"),
                }
            }
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
        }
    });
    rx
}

/// How often the watcher looks for changes.
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// Fragments are sent at least this often, so "12 s ago" stays true.
const REFRESH_EVERY: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    pub page: String,
    pub system: Option<String>,
}

#[derive(Clone)]
enum Page {
    Home,
    System(String),
    /// The public status page (`/status`, its first page).
    Status,
}

/// What a live page depends on: when this changes, the page has changed.
pub(crate) async fn version(state: &AppState) -> anyhow::Result<Version> {
    let client = state.pool.get().await?;
    let row = client
        .query_one(
            // Checkpoints, not max(last_position) over the read models: one indexed row each,
            // and they move in the same transaction as every change to their tables.
            "SELECT (SELECT coalesce(max(position), 0) FROM projection_checkpoints WHERE name = 'latest_status'),
                    (SELECT coalesce(max(position), 0) FROM projection_checkpoints WHERE name = 'alerts'),
                    (SELECT count(*) FROM alerts WHERE state <> 'resolved'),
                    (SELECT coalesce(max(position), 0) FROM projection_checkpoints WHERE name = 'outages'),
                    (SELECT count(*) FROM maintenance_windows
                      WHERE starts_at <= now() AND ends_at > now() AND cancelled_at IS NULL)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
}

async fn fragment(state: &AppState, page: &Page) -> Result<(&'static str, String), WebError> {
    let now = state.now();
    match page {
        Page::Home => {
            let view = home::home_view(state, now, None).await?;
            Ok(("home", templates::render(home::HomePage::LIVE, &view).map_err(WebError::page)?))
        }
        Page::System(system) => {
            let view = home::system_view(state, now, None, system).await?;
            Ok(("system", templates::render(home::SystemPage::LIVE, &view).map_err(WebError::page)?))
        }
        Page::Status => {
            // The same for every open status page: rendered once a second at most, for all.
            let render = {
                let state = state.clone();
                async move {
                    let view = crate::pages::status::status_view(&state, state.now(), 1).await?;
                    templates::render(crate::pages::status::StatusPage::LIVE, &view).map(Html).map_err(WebError::page)
                }
            };
            let Html(html) = crate::view::pagecache::page(state, "status-live".into(), render).await?;
            Ok(("public", String::from_utf8_lossy(&html).into_owned()))
        }
    }
}

/// The outage banners every page carries (`outage_banners`), for a live page to swap in: a new
/// outage shows on an open page, and a resolved one goes. Never empty, so the event is always
/// delivered (browsers drop an event without data).
async fn banners(state: &AppState) -> Option<String> {
    let outages = crate::read::notices::banners(state)
        .await
        .map_err(|e| tracing::debug!(error = format!("{e:#}"), "live pages could not read the outage banners"))
        .ok()?;
    templates::render("outage_banners", &serde_json::json!({ "outages": outages }))
        .map_err(|e| tracing::warn!(error = %e, "rendering the outage banners failed"))
        .ok()
}

struct Watch {
    state: AppState,
    page: Page,
    versions: watch::Receiver<Option<Version>>,
    seen: Option<Version>,
    sent: Instant,
    changed: time::OffsetDateTime,
    first: bool,
}

/// `GET /live`.
pub async fn live(
    State(state): State<AppState>,
    Query(q): Query<LiveQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, WebError> {
    let page = match (q.page.as_str(), q.system) {
        ("home", _) => Page::Home,
        ("system", Some(system)) if !system.is_empty() => Page::System(system),
        ("system", _) => return Err(WebError::bad_request(Format::Json, "system", "the system page needs ?system=")),
        (other, _) => {
            return Err(WebError::bad_request(
                Format::Json,
                "page",
                format!("{other:?} is not a live page; use home or system"),
            ))
        }
    };
    stream(state, page).await
}

/// `GET /status/live`: the public status page's stream, open to all like the page.
pub async fn status_live(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, WebError> {
    stream(state, Page::Status).await
}

async fn stream(state: AppState, page: Page) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, WebError> {
    let seen = version(&state).await.map_err(WebError::api)?;
    let shutdown = state.shutdown.clone();
    let mut versions = state.live_versions.get_or_init(|| async { watch_versions(state.clone()) }).await.clone();
    versions.borrow_and_update();
    let now = state.now();
    let watch = Watch { state, page, versions, seen: Some(seen), sent: Instant::now(), changed: now, first: true };
    let stream = futures::stream::unfold(watch, |mut w| async move {
        loop {
            if w.first {
                // Say the page is live; its content is as fresh as the page just rendered.
                w.first = false;
                return Some((vec![status(&w)], w));
            }
            tokio::select! {
                moved = w.versions.changed() => {
                    if moved.is_err() {
                        return None; // the watcher stopped: the server is stopping
                    }
                }
                _ = tokio::time::sleep_until(w.sent + REFRESH_EVERY) => {}
            }
            let now_version = *w.versions.borrow_and_update();
            let changed = now_version.is_some() && now_version != w.seen;
            if !changed && w.sent.elapsed() < REFRESH_EVERY {
                continue;
            }
            // The banners go out only when an outage changed, so a screen reader announces
            // them (`role="alert"`) then and not at every update; their ages are as of that.
            // Never to the public page: operators' banners name what is not public.
            let outages_moved =
                changed && now_version.map(|v| v.3) != w.seen.map(|v| v.3) && !matches!(w.page, Page::Status);
            let Ok((name, html)) = fragment(&w.state, &w.page).await else {
                // Not now (the system has no reports, the database is away): try again later.
                w.sent = Instant::now();
                continue;
            };
            if changed {
                w.seen = now_version;
                w.changed = w.state.now();
            }
            w.sent = Instant::now();
            let mut events = vec![Event::default().event(name).data(html)];
            if outages_moved {
                if let Some(banners) = banners(&w.state).await {
                    events.push(Event::default().event("banners").data(banners));
                }
            }
            events.push(status(&w));
            return Some((events, w));
        }
    });
    let shutdown = shutdown.cancelled_owned();
    let events = futures::StreamExt::take_until(
        futures::StreamExt::flat_map(stream, |batch| futures::stream::iter(batch.into_iter().map(Ok))),
        shutdown,
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn status(w: &Watch) -> Event {
    let at = view::age(w.changed, w.changed, false);
    Event::default().event("status").data(format!(
        "<span class=\"live-dot\" aria-hidden=\"true\">●</span> Live: last changed <time datetime=\"{}\">{}</time>.",
        at.iso, at.exact
    ))
}
