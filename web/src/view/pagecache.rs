//! `/` and system pages, as a signed-out viewer sees them now, rendered once and served again
//! for up to [`FRESH_FOR`] (one second): a page is never more than that behind the read models,
//! and the ages on it ("3 s ago") are off by at most as much. A kept page costs no query at all
//! (the outage banner is rendered into it, see `auth::with_outage_banners`), so a wall of
//! dashboards reloading, or a read model changing many times a second, costs one render per page
//! per second. A request that finds its page older than [`RENDER_AGAIN_AFTER`] is served the
//! kept page and starts rendering it again in the background, so with steady traffic no request
//! waits for a render (a system page of many components takes a good part of a second). With
//! none, requests missing the same page render it once between them; while one renders it
//! again, the others get the kept one, up to twice [`FRESH_FOR`] old. Open pages also get
//! changes pushed live (`crate::pages::live`).
//!
//! Pages for signed-in viewers (their name, their role, and the outages or alerts they just
//! acted on) and past instants (`?at=`) are rendered every time.

use crate::state::AppState;
use crate::view::error::WebError;
use axum::response::Html;
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a rendered page is served again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// A kept page older than this is rendered again in the background by the next request that
/// finds it, and served meanwhile: a render that ends within the rest of [`FRESH_FOR`] replaces
/// it before anyone has to wait.
pub const RENDER_AGAIN_AFTER: Duration = Duration::from_millis(600);
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
        self.kept(key).filter(|(_, a)| *a < age).map(|(html, _)| html)
    }

    /// The page `key` and how long ago it was rendered.
    fn kept(&self, key: &str) -> Option<(Bytes, Duration)> {
        let pages = self.0.pages.lock().expect("the page cache");
        pages.get(key).map(|k| (k.html.clone(), k.rendered.elapsed()))
    }

    fn put(&self, key: String, rendered: Instant, html: Bytes) {
        let mut pages = self.0.pages.lock().expect("the page cache");
        if pages.len() >= MOST_PAGES && !pages.contains_key(&key) {
            pages.clear();
        }
        pages.insert(key, Kept { rendered, html });
    }

    /// Renders the page `key` again in a task of its own and keeps it, unless a render of it is
    /// already under way. The render sees no viewer: kept pages are those of signed-out viewers.
    fn render_in_background<F>(&self, key: String, render: F)
    where
        F: Future<Output = Result<Html<String>, WebError>> + Send + 'static,
    {
        let Ok(rendering) = self.render_lock(&key).try_lock_owned() else { return };
        let cache = self.clone();
        tokio::spawn(async move {
            let _rendering = rendering;
            let started = Instant::now();
            match render.await {
                Ok(Html(html)) => cache.put(key, started, Bytes::from(html)),
                // The next request past FRESH_FOR renders it itself and shows the error.
                Err(e) => tracing::warn!(page = key, error = ?e, "rendering a kept page again failed"),
            }
        });
    }

    fn render_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.rendering.lock().expect("the page cache's locks");
        if locks.len() >= MOST_PAGES && !locks.contains_key(key) {
            locks.clear();
        }
        locks.entry(key.to_owned()).or_default().clone()
    }
}

/// The page `key` now: the kept one if it is fresh (rendered again in the background once it is
/// older than [`RENDER_AGAIN_AFTER`]), else made by `render` (and kept when the viewer is signed
/// out). Requests that miss the same page wait for one of them to render it.
pub async fn page<F>(state: &AppState, key: String, render: F) -> Result<Html<Bytes>, WebError>
where
    F: Future<Output = Result<Html<String>, WebError>> + Send + 'static,
{
    if crate::guard::auth::chrome().user.is_some() {
        return render.await.map(|Html(html)| Html(Bytes::from(html)));
    }
    if let Some((html, age)) = state.pages.kept(&key).filter(|(_, age)| *age < FRESH_FOR) {
        if age >= RENDER_AGAIN_AFTER {
            state.pages.render_in_background(key, render);
        }
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

    #[tokio::test]
    async fn a_page_past_render_again_after_is_served_at_once_and_rendered_again_in_the_background() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let state = crate::pages::home::tests::state();
        state.pages.put("home".into(), Instant::now() - RENDER_AGAIN_AFTER, Bytes::from("old"));
        let renders = Arc::new(AtomicUsize::new(0));
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let counted = renders.clone();
        let slow = async move {
            counted.fetch_add(1, Ordering::SeqCst);
            finished.await.ok();
            Ok(Html("new".to_string()))
        };
        // Served the kept page without waiting for the render (which waits for `finish`).
        let Html(first) = page(&state, "home".into(), slow).await.unwrap();
        assert_eq!(&first[..], b"old");
        // A second request while that render is under way starts no other.
        let counted = renders.clone();
        let other = async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(Html("other".to_string()))
        };
        let Html(second) = page(&state, "home".into(), other).await.unwrap();
        assert_eq!(&second[..], b"old");
        finish.send(()).unwrap();
        let mut kept = None;
        for _ in 0..200 {
            kept = state.pages.get_within("home", RENDER_AGAIN_AFTER);
            if kept.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(kept.as_deref(), Some(&b"new"[..]), "the background render replaced the kept page");
        assert_eq!(renders.load(Ordering::SeqCst), 1, "one render between the two requests");
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
