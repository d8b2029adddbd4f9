//! `/` and system pages, as a signed-out viewer sees them now, rendered once and served again
//! for up to [`FRESH_FOR`] (one second): a page is never more than that behind the read models,
//! and the ages on it ("3 s ago") are off by at most as much. A kept page costs no query at all
//! (the outage banner is rendered into it, see `auth::with_outage_banners`), so a wall of
//! dashboards reloading, or a read model changing many times a second, costs one render per page
//! per second. Requests missing the same page render it once between them; while one renders
//! it again, the others get the kept one, up to twice that old. Open pages also get changes
//! pushed live (`crate::live`).
//!
//! Pages for signed-in viewers (their name, their role, and the outages or alerts they just
//! acted on) and past instants (`?at=`) are rendered every time.

use crate::error::WebError;
use crate::state::AppState;
use axum::response::Html;
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a rendered page is served again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Pages kept at most (one per system, and the home page); past this the cache starts afresh.
const MOST_PAGES: usize = 256;

struct Kept {
    rendered: Instant,
    html: Bytes,
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
    /// The page `key`, if it was rendered less than `age` ago.
    fn get_within(&self, key: &str, age: Duration) -> Option<Bytes> {
        let pages = self.0.pages.lock().expect("the page cache");
        pages.get(key).filter(|k| k.rendered.elapsed() < age).map(|k| k.html.clone())
    }

    fn put(&self, key: String, rendered: Instant, html: Bytes) {
        let mut pages = self.0.pages.lock().expect("the page cache");
        if pages.len() >= MOST_PAGES && !pages.contains_key(&key) {
            pages.clear();
        }
        pages.insert(key, Kept { rendered, html });
    }

    fn render_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.rendering.lock().expect("the page cache's locks");
        if locks.len() >= MOST_PAGES && !locks.contains_key(key) {
            locks.clear();
        }
        locks.entry(key.to_owned()).or_default().clone()
    }
}

/// The page `key` now: the kept one if it is fresh, else made by `render` (and kept when the
/// viewer is signed out). Requests that miss the same page wait for one of them to render it.
pub async fn page<F>(state: &AppState, key: String, render: F) -> Result<Html<Bytes>, WebError>
where
    F: Future<Output = Result<Html<String>, WebError>>,
{
    if crate::auth::chrome().user.is_some() {
        return render.await.map(|Html(html)| Html(Bytes::from(html)));
    }
    if let Some(html) = state.pages.get_within(&key, FRESH_FOR) {
        return Ok(Html(html));
    }
    let lock = state.pages.render_lock(&key);
    let _rendering = match lock.try_lock() {
        Ok(guard) => guard,
        Err(_) => {
            // Another request is rendering it: the kept page, a moment older, will do.
            if let Some(html) = state.pages.get_within(&key, 2 * FRESH_FOR) {
                return Ok(Html(html));
            }
            let guard = lock.lock().await;
            // The other request has kept it by now, unless its render failed.
            if let Some(html) = state.pages.get_within(&key, FRESH_FOR) {
                return Ok(Html(html));
            }
            guard
        }
    };
    // The page shows the read models as of the start of its render.
    let started = Instant::now();
    let Html(html) = render.await?;
    let html = Bytes::from(html);
    state.pages.put(key, started, html.clone());
    Ok(Html(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_page_is_served_only_while_fresh() {
        let cache = PageCache::default();
        cache.put("home".into(), Instant::now(), Bytes::from("<p>one</p>"));
        assert_eq!(cache.get_within("home", FRESH_FOR).as_deref(), Some(&b"<p>one</p>"[..]));
        assert!(cache.get_within("system/derecho", FRESH_FOR).is_none());
        cache.put("home".into(), Instant::now() - FRESH_FOR, Bytes::from("<p>old</p>"));
        assert!(cache.get_within("home", FRESH_FOR).is_none(), "older than FRESH_FOR: rendered again");
        assert!(cache.get_within("home", 2 * FRESH_FOR).is_some(), "while another request renders it");
    }

    #[test]
    fn the_cache_starts_afresh_rather_than_growing_without_bound() {
        let cache = PageCache::default();
        for n in 0..MOST_PAGES + 10 {
            cache.put(format!("system/s{n}"), Instant::now(), Bytes::from("x"));
        }
        assert!(cache.0.pages.lock().unwrap().len() <= MOST_PAGES);
    }
}
