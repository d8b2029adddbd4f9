//! What the layout shows around every page: its title, navigation, when it was made, whether
//! it refreshes or updates live, the time-travel form, and the chrome (who is signed in, the
//! forms' token, the outage banners).

use crate::view::{self, error::WebError, templates};
use axum::response::Html;
use serde::Serialize;
use time::OffsetDateTime;

/// Seconds between meta refreshes of a page.
pub const REFRESH_SECONDS: u32 = 30;

/// What the layout shows around every page.
#[derive(Debug, Serialize)]
pub struct Layout {
    pub title: String,
    pub nav: &'static str,
    pub generated: String,
    pub generated_iso: String,
    /// Seconds between refreshes; 0 for pages that do not refresh.
    pub refresh_seconds: u32,
    /// The time-travel form, on pages that can show the past.
    pub travel: Option<Travel>,
    /// The server-sent events URL of a page that updates itself live (see `web::live`).
    pub live: Option<String>,
    /// Who is signed in, the forms' token, and the outage banner (see `web::auth`).
    pub chrome: crate::guard::auth::Chrome,
}

/// The time-travel form and, when a page shows the past, the banner that says so.
#[derive(Debug, Serialize)]
pub struct Travel {
    /// Whether the page shows the past.
    pub active: bool,
    pub at_text: String,
    pub at_iso: String,
    /// The `datetime-local` input's value.
    pub input: String,
    /// The same page, now.
    pub now_url: String,
    /// Other query parameters the form keeps.
    pub hidden: Vec<Hidden>,
    /// When the instant shown is one whose raw reports `sitrep archive` moved out of the log:
    /// until when they are archived (the banner says states come from segments and rollups).
    pub archived_until: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Hidden {
    pub name: &'static str,
    pub value: String,
}

impl Layout {
    /// The layout of a page that refreshes itself.
    pub fn new(title: impl Into<String>, nav: &'static str, now: OffsetDateTime) -> Self {
        let age = view::age(now, now, false);
        Self {
            title: title.into(),
            nav,
            generated: age.exact,
            generated_iso: age.iso,
            refresh_seconds: REFRESH_SECONDS,
            travel: None,
            live: None,
            chrome: crate::guard::auth::chrome(),
        }
    }

    /// The layout of a page that can show the past: live at `now`, or still at `at`.
    pub fn travelling(
        title: impl Into<String>,
        nav: &'static str,
        now: OffsetDateTime,
        at: Option<OffsetDateTime>,
        now_url: String,
        hidden: Vec<Hidden>,
    ) -> Self {
        let shown = at.unwrap_or(now);
        let input_fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        let travel = Travel {
            active: at.is_some(),
            at_text: view::utc_text(shown),
            at_iso: view::age(shown, now, false).iso,
            input: shown.format(&input_fmt).unwrap_or_default(),
            now_url,
            hidden,
            archived_until: None,
        };
        let layout = if at.is_some() { Self::still(title, nav, now) } else { Self::new(title, nav, now) };
        Self { travel: Some(travel), ..layout }
    }

    /// Says, on a page that shows an instant at or before `until`, that raw reports up to
    /// `until` are archived.
    pub fn archived(mut self, at: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> Self {
        if let (Some(travel), Some(at), Some(until)) = (self.travel.as_mut(), at, until) {
            if at <= until {
                travel.archived_until = Some(view::utc_text(until));
            }
        }
        self
    }

    /// The same layout, updated live over server-sent events from `url` (unless it shows the past).
    pub fn live(self, url: String) -> Self {
        let past = self.travel.as_ref().is_some_and(|t| t.active);
        Self { live: (!past).then_some(url), ..self }
    }

    /// The layout of a page that does not refresh itself.
    pub fn still(title: impl Into<String>, nav: &'static str, now: OffsetDateTime) -> Self {
        Self { refresh_seconds: 0, ..Self::new(title, nav, now) }
    }
}

/// Renders page template `name` with its view model.
pub fn render<T: Serialize>(name: &str, page: &T) -> Result<Html<String>, WebError> {
    templates::render(name, page).map(Html).map_err(WebError::page)
}
