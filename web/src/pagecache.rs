//! `/` and system pages, as a signed-out viewer sees them now, rendered once and served again
//! while nothing they show has changed. Before serving a kept page, a request reads the same
//! version the live pages watch ([`crate::live::version`]: latest-status, alert, outage and
//! window positions, open alerts, windows on now), so a change is shown on the very next request.
//! A page is kept at most [`FRESH_FOR`] after it was rendered, since its ages ("3 s ago") and
//! staleness move with the clock alone; while one request renders it again, the others get the
//! kept one, up to twice that old. Requests missing the same page render it once between them.
//! Pages for signed-in viewers (their name, their role) and past instants
//! (`?at=`) are rendered every time.

use crate::error::WebError;
use crate::live::{self, Version};
use crate::state::AppState;
use axum::response::Html;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a rendered page is served again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Pages kept at most (one per system, and the home page); past this the cache starts afresh.
const MOST_PAGES: usize = 256;

struct Kept {
    version: Version,
    rendered: Instant,
    html: Arc<str>,
}

/// The kept pages, shared by every request of the process.
#[derive(Default, Clone)]
pub struct PageCache(Arc<Inner>);

#[derive(Default)]
struct Inner {
    pages: Mutex<HashMap<String, Kept>>,
    /// One lock per page, so that requests missing the same page render it once between them
    /// instead of all at once.
    rendering: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PageCache {
    fn get(&self, key: &str, version: Version) -> Option<Arc<str>> {
        self.get_within(key, version, FRESH_FOR)
    }

    fn get_within(&self, key: &str, version: Version, age: Duration) -> Option<Arc<str>> {
        let pages = self.0.pages.lock().expect("the page cache");
        pages.get(key).filter(|k| k.version == version && k.rendered.elapsed() < age).map(|k| k.html.clone())
    }

    fn put(&self, key: String, version: Version, rendered: Instant, html: Arc<str>) {
        let mut pages = self.0.pages.lock().expect("the page cache");
        if pages.len() >= MOST_PAGES && !pages.contains_key(&key) {
            pages.clear();
        }
        pages.insert(key, Kept { version, rendered, html });
    }

    fn render_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.rendering.lock().expect("the page cache's locks");
        if locks.len() >= MOST_PAGES && !locks.contains_key(key) {
            locks.clear();
        }
        locks.entry(key.to_owned()).or_default().clone()
    }
}

/// The page `key` now: kept if nothing it shows has changed, else made by `render` (and kept
/// when the viewer is signed out). The version is read before rendering, so a kept page is never
/// older than the version it is kept under. Requests that miss the same page wait for one of
/// them to render it.
pub async fn page<F>(state: &AppState, key: String, render: F) -> Result<Html<String>, WebError>
where
    F: Future<Output = Result<Html<String>, WebError>>,
{
    if crate::auth::chrome().user.is_some() {
        return render.await;
    }
    let Ok(version) = live::version(state).await else { return render.await };
    if let Some(html) = state.pages.get(&key, version) {
        return Ok(Html(html.to_string()));
    }
    let lock = state.pages.render_lock(&key);
    let (_rendering, version) = match lock.try_lock() {
        // Nobody else is rendering it: the version read above stands.
        Ok(guard) => (guard, version),
        Err(_) => {
            // Nothing changed but the clock while another request renders it: the page kept a
            // moment longer is still right but for its ages.
            if let Some(html) = state.pages.get_within(&key, version, 2 * FRESH_FOR) {
                return Ok(Html(html.to_string()));
            }
            let guard = lock.lock().await;
            // The other request has kept it by now, unless things changed meanwhile.
            let Ok(version) = live::version(state).await else { return render.await };
            if let Some(html) = state.pages.get(&key, version) {
                return Ok(Html(html.to_string()));
            }
            (guard, version)
        }
    };
    let Html(html) = render.await?;
    state.pages.put(key, version, Instant::now(), Arc::from(html.as_str()));
    Ok(Html(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_page_is_served_only_for_its_version_and_while_fresh() {
        let cache = PageCache::default();
        let v = (1, 2, 3, 4, 5);
        cache.put("home".into(), v, Instant::now(), Arc::from("<p>one</p>"));
        assert_eq!(cache.get("home", v).as_deref(), Some("<p>one</p>"));
        assert!(cache.get("home", (2, 2, 3, 4, 5)).is_none(), "a newer report: rendered again");
        assert!(cache.get("system/derecho", v).is_none());
        cache.put("home".into(), v, Instant::now() - FRESH_FOR, Arc::from("<p>old</p>"));
        assert!(cache.get("home", v).is_none(), "older than FRESH_FOR: rendered again");
    }

    #[test]
    fn the_cache_starts_afresh_rather_than_growing_without_bound() {
        let cache = PageCache::default();
        for n in 0..MOST_PAGES + 10 {
            cache.put(format!("system/s{n}"), (0, 0, 0, 0, 0), Instant::now(), Arc::from("x"));
        }
        assert!(cache.0.pages.lock().unwrap().len() <= MOST_PAGES);
    }
}
