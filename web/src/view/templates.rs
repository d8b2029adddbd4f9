//! The Handlebars registry. Templates and partials are compiled into the binary (operators'
//! networks are often closed, and the binary must serve everything it needs). Strict mode is on,
//! so a template that names a missing field fails loudly in the tests instead of rendering blank.
//!
//! Everything shown with `{{ }}` goes through [`escape`]: HTML escaping, and without the Unicode
//! bidirectional controls that would reverse the text around them.

use handlebars::{Context, Handlebars, RenderError, RenderErrorReason};
use serde::Serialize;
use serde_json::Value;
use std::sync::LazyLock;

/// `(name, source)` of every page template.
pub const PAGES: &[(&str, &str)] = &[
    ("home", include_str!("../../templates/home.hbs")),
    ("system", include_str!("../../templates/system.hbs")),
    ("component", include_str!("../../templates/component.hbs")),
    ("quarantine", include_str!("../../templates/quarantine.hbs")),
    ("alerts", include_str!("../../templates/alerts.hbs")),
    ("alert", include_str!("../../templates/alert.hbs")),
    ("alert_rules", include_str!("../../templates/alert_rules.hbs")),
    ("alert_backtest", include_str!("../../templates/alert_backtest.hbs")),
    ("events", include_str!("../../templates/events.hbs")),
    ("ops", include_str!("../../templates/ops.hbs")),
    ("event", include_str!("../../templates/event.hbs")),
    ("error", include_str!("../../templates/error.hbs")),
    ("sign_in", include_str!("../../templates/sign_in.hbs")),
    ("outages", include_str!("../../templates/outages.hbs")),
    ("outage", include_str!("../../templates/outage.hbs")),
    ("window", include_str!("../../templates/window.hbs")),
    ("sla_report", include_str!("../../templates/sla_report.hbs")),
    ("sla_document", include_str!("../../templates/sla_document.hbs")),
    ("status", include_str!("../../templates/status.hbs")),
    ("feed_atom", include_str!("../../templates/feeds/atom.hbs")),
    ("feed_rss", include_str!("../../templates/feeds/rss.hbs")),
];

/// `(name, source)` of every partial.
pub const PARTIALS: &[(&str, &str)] = &[
    ("layout", include_str!("../../templates/partials/layout.hbs")),
    ("sla_body", include_str!("../../templates/partials/sla_body.hbs")),
    ("status_live", include_str!("../../templates/partials/status_live.hbs")),
    ("status_badge", include_str!("../../templates/partials/status_badge.hbs")),
    ("age", include_str!("../../templates/partials/age.hbs")),
    ("metric", include_str!("../../templates/partials/metric.hbs")),
    ("system_tile", include_str!("../../templates/partials/system_tile.hbs")),
    ("component_row", include_str!("../../templates/partials/component_row.hbs")),
    ("home_live", include_str!("../../templates/partials/home_live.hbs")),
    ("system_live", include_str!("../../templates/partials/system_live.hbs")),
    ("alert_row", include_str!("../../templates/partials/alert_row.hbs")),
    ("alert_badges", include_str!("../../templates/partials/alert_badges.hbs")),
    ("firing", include_str!("../../templates/partials/firing.hbs")),
    ("chart", include_str!("../../templates/partials/chart.hbs")),
    ("timeline", include_str!("../../templates/partials/timeline.hbs")),
    ("sparkline", include_str!("../../templates/partials/sparkline.hbs")),
    ("outage_banners", include_str!("../../templates/partials/outage_banners.hbs")),
];

static REGISTRY: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut hbs = Handlebars::new();
    hbs.set_strict_mode(true);
    hbs.register_escape_fn(escape);
    for (name, source) in PARTIALS {
        hbs.register_partial(name, *source).unwrap_or_else(|e| panic!("partial {name}: {e}"));
    }
    for (name, source) in PAGES {
        hbs.register_template_string(name, *source).unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    hbs
});

/// Renders a webhook receiver's body template over a transition. Values are escaped for JSON
/// (a `{{summary}}` inside quotes stays valid JSON whatever the summary holds) when the
/// content type is JSON, and left as they are otherwise. Besides the transition's fields
/// (`system`, `component`, `summary`, `severity`, `state`, `transition`, `rule`, `alert_id`,
/// `since`, …), `title` is the one-line title the chat receivers use. A template that does not
/// compile, or names a field the transition does not have, is an error.
pub fn render_body(
    template: &str,
    content_type: &str,
    message: &sitrep_domain::alert::AlertMessage,
) -> Result<String, handlebars::RenderError> {
    let mut hbs = Handlebars::new();
    hbs.set_strict_mode(true);
    if content_type.contains("json") {
        hbs.register_escape_fn(|v| {
            let quoted = serde_json::Value::String(v.to_owned()).to_string();
            quoted[1..quoted.len() - 1].to_owned()
        });
    } else {
        hbs.register_escape_fn(handlebars::no_escape);
    }
    let mut data = serde_json::to_value(message).unwrap_or_default();
    data["title"] = sitrep_domain::alert::receivers::title(message).into();
    hbs.render_template(template, &data)
}

/// The bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069). One in
/// an outage title or a collector's message would reverse or reorder the text after it, in
/// every banner and row that shows it, and could make a title read as something else. (The
/// marks U+200E and U+200F only set the direction of neutral characters next to them, as a
/// right-to-left name needs, and are kept.)
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The escape of every `{{ }}`: Handlebars' HTML escaping, without bidirectional controls.
/// (The stored text keeps them, and the JSON API returns it as it was sent.)
pub fn escape(text: &str) -> String {
    if text.contains(is_bidi_control) {
        handlebars::html_escape(&text.replace(is_bidi_control, ""))
    } else {
        handlebars::html_escape(text)
    }
}

/// Renders a page template with its view model.
pub fn render<T: Serialize>(name: &str, data: &T) -> Result<String, handlebars::RenderError> {
    REGISTRY.render(name, data)
}

/// A page with a part that live updates replace (`/` and the system pages).
pub trait LivePage: Serialize {
    /// The page's template. It shows the live part, already rendered, as `{{{live}}}`.
    const PAGE: &'static str;
    /// The partial of the live part: what live updates send (`crate::pages::live`).
    const LIVE: &'static str;
    /// The fields of the model the page's template shows outside the live part.
    const FRAME: &'static [&'static str];
}

/// Renders a live page: its live part first, on its own, then the page around it, which gets
/// that HTML as `live` and only the [`LivePage::FRAME`] fields of the model. Handlebars starts
/// every partial from a copy of its context, so rendering the live part as a partial inside the
/// page would copy the whole model twice more (at `{{#> layout}}` and at the partial): most of
/// the render of a system page with 500 components. The HTML is safe to include unescaped: it
/// comes from our own templates, which escape what they show.
pub fn render_live<P: LivePage>(page: &P) -> Result<String, RenderError> {
    let mut model = Context::wraps(page)?;
    let live = REGISTRY.render_with_context(P::LIVE, &model)?;
    let Value::Object(all) = model.data_mut() else {
        return Err(RenderErrorReason::Other(format!("the {} page is not an object", P::PAGE)).into());
    };
    let mut frame: serde_json::Map<String, Value> =
        P::FRAME.iter().filter_map(|k| all.remove(*k).map(|v| ((*k).to_owned(), v))).collect();
    frame.insert("live".into(), Value::String(live));
    REGISTRY.render_with_context(P::PAGE, &Context::from(Value::Object(frame)))
}

/// htmx and its SSE extension, vendored (see `web/static/vendor/README.md`).
pub const HTMX: &str = include_str!("../../static/vendor/htmx-2.0.11.min.js");
pub const HTMX_SSE: &str = include_str!("../../static/vendor/htmx-ext-sse-2.2.4.js");

/// The stylesheet, served at `/static/sitrep.css`.
pub const CSS: &str = include_str!("../../static/sitrep.css");

#[cfg(test)]
mod tests {
    #[test]
    fn a_webhook_body_template_renders_valid_json_whatever_the_text_holds() {
        let mut m = sitrep_domain::alert::receivers::sample("t", time::OffsetDateTime::UNIX_EPOCH);
        m.summary = "a \"quoted\" summary\nwith a line break and <b>".into();
        let body = render_body(r#"{"text": "{{title}}", "where": "{{system}}:{{component}}"}"#, "application/json", &m)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["where"], "derecho:fs/glade");
        assert!(v["text"].as_str().unwrap().ends_with("a \"quoted\" summary\nwith a line break and <b>"));
        let plain = render_body("{{severity}}: {{summary}}", "text/plain", &m).unwrap();
        assert!(plain.starts_with("critical: a \"quoted\""));
        assert!(
            render_body("{{nosuchfield}}", "application/json", &m).is_err(),
            "strict: a wrong field name is an error"
        );
    }

    use super::*;
    use crate::read::notices::Banner;
    use crate::view::layout::Layout;
    use time::macros::datetime;

    #[test]
    fn a_title_with_bidi_controls_shows_without_them_and_html_is_still_escaped() {
        let now = datetime!(2026-11-22 10:00 UTC);
        let mut layout = Layout::still("Error", "", now);
        layout.chrome.outages = vec![Banner {
            system: "derecho".into(),
            severity: "major".into(),
            label: "MAJOR OUTAGE".into(),
            title: "GLADE \u{202E}enilno\u{202C} \u{2066}again\u{2069} <script>x</script>".into(),
            url: "/systems/derecho/outages/glade".into(),
            since: crate::view::age(now, now, false),
            estimate: None,
        }];
        let page = serde_json::json!({"layout": layout, "status": 400, "message": "a \u{202D}b & c", "hint": "h"});

        let html = render("error", &page).unwrap();

        for c in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2069}'] {
            assert!(!html.contains(c), "U+{:04X} is shown", c as u32);
        }
        assert!(html.contains("GLADE enilno again &lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(html.contains("a b &amp; c"), "{html}");
        assert!(!html.contains("<script>x"), "{html}");
    }

    #[test]
    fn the_escape_keeps_direction_marks_and_escapes_quotes() {
        assert_eq!(escape("\u{05D0}\u{200F} \"x\" 'y'"), "\u{05D0}\u{200F} &quot;x&quot; &#x27;y&#x27;");
        assert_eq!(escape("\u{2067}\u{2068}\u{202A}\u{202B}"), "");
        assert_eq!(escape("plain"), "plain");
    }
}
