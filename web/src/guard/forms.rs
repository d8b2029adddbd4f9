//! What every form post shares: it must come from this dashboard's own pages.

use crate::view::error::WebError;
use axum::http::{header, HeaderMap};

/// Refuses a form posted from another site: a browser always says where a post came from
/// (`Origin`, or `Sec-Fetch-Site`), and only this dashboard's own pages may act on alerts.
pub fn same_origin(headers: &HeaderMap) -> Result<(), WebError> {
    let get = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if get(header::HeaderName::from_static("sec-fetch-site")).is_some_and(|s| s != "same-origin" && s != "none") {
        return Err(WebError::Forbidden {
            format: crate::view::error::Format::Html,
            what: "This form was posted from another site.".into(),
        });
    }
    if let (Some(origin), Some(host)) = (get(header::ORIGIN), get(header::HOST)) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        // Behind a reverse proxy that rewrites Host, the host the browser used is forwarded.
        let forwarded = get(header::HeaderName::from_static("x-forwarded-host"));
        if origin_host != host && forwarded != Some(origin_host) {
            return Err(WebError::Forbidden {
                format: crate::view::error::Format::Html,
                what: format!("This form was posted from {origin}, not from this dashboard."),
            });
        }
    }
    Ok(())
}
