//! Badges of public systems and components, in the style of shields.io:
//! `/badge/<system>[/<component>]/status.svg`, `…/uptime-30d.svg`, and `…/shields.json` for
//! shields.io's endpoint badges. Each SVG has a text alternative (`<title>`, `aria-label`).
//! Only what `status.toml` makes public has one; anything else is 404, as if it did not exist.

use crate::read::notices::Notices;
use crate::read::public::{self, PublicState};
use crate::state::AppState;
use crate::view::error::{Format, WebError};
use crate::view::templates::escape;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use sitrep_domain::Status;
use sitrep_projections::sla::{self, Summary};
use time::Duration;

/// How long a badge may be cached: README pages fetch them often.
const CACHE: &str = "public, max-age=60";

/// One badge: its left and right text and colour (a shields.io colour name).
#[derive(Debug, Clone, PartialEq)]
pub struct Badge {
    pub label: String,
    pub message: String,
    pub color: &'static str,
}

fn hex(color: &str) -> &'static str {
    match color {
        "brightgreen" => "#4c1",
        "green" => "#97ca00",
        "yellow" => "#dfb317",
        "orange" => "#fe7d37",
        "red" => "#e05d44",
        "blue" => "#007ec6",
        _ => "#9f9f9f",
    }
}

/// Width of `text` in Verdana 11 px, near enough for a badge.
fn text_width(text: &str) -> usize {
    text.chars().map(|c| if c.is_ascii_uppercase() || c == 'm' || c == 'w' { 8 } else { 7 }).sum::<usize>()
}

impl Badge {
    /// A flat badge as SVG.
    pub fn svg(&self) -> String {
        let (lw, mw) = (text_width(&self.label) + 10, text_width(&self.message) + 10);
        let w = lw + mw;
        let (label, message) = (escape(&self.label), escape(&self.message));
        format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{mw}" height="20" fill="{color}"/><rect width="{w}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{mx}" y="14">{message}</text></g></svg>"##,
            color = hex(self.color),
            lx = lw / 2,
            mx = lw + mw / 2,
        )
    }

    /// The shields.io endpoint JSON (schemaVersion 1).
    pub fn shields(&self) -> serde_json::Value {
        serde_json::json!({
            "schemaVersion": 1,
            "label": self.label,
            "message": self.message,
            "color": self.color,
            "cacheSeconds": 300,
        })
    }
}

fn state_color(s: PublicState) -> &'static str {
    match s {
        PublicState::Operational => "brightgreen",
        PublicState::Degraded => "yellow",
        PublicState::PartialOutage => "orange",
        PublicState::MajorOutage => "red",
        PublicState::Maintenance => "blue",
        PublicState::NoData => "lightgrey",
    }
}

fn uptime_badge(label: String, pct: Option<f64>) -> Badge {
    let color = match pct {
        None => "lightgrey",
        Some(p) if p >= 99.9 => "brightgreen",
        Some(p) if p >= 99.0 => "green",
        Some(p) if p >= 95.0 => "yellow",
        Some(p) if p >= 90.0 => "orange",
        Some(_) => "red",
    };
    Badge { message: crate::view::uptime::percent_text(pct), label, color }
}

/// What `/badge/<system>/<rest>` asks for.
enum Ask {
    Status,
    Uptime,
    Shields,
}

fn not_found() -> WebError {
    WebError::not_found(
        Format::Json,
        "No such public badge.".to_owned(),
        "Badges exist for what the status page shows.",
    )
}

/// The badge of `system` (and `component`), if they are public.
async fn badge(state: &AppState, system: &str, component: Option<&str>, ask: &Ask) -> Result<Badge, WebError> {
    let config = &state.public;
    if !config.is_public(system, component) {
        return Err(not_found());
    }
    let now = state.now();
    let label = match component {
        Some(c) => format!("{system} {c}"),
        None => system.to_owned(),
    };
    let live = crate::read::queries::system_components(&state.pool, system).await.map_err(WebError::api)?;
    let public: Vec<&crate::read::queries::ComponentState> =
        live.iter().filter(|c| config.groups_of(system).any(|g| g.includes(system, &c.component))).collect();
    match ask {
        Ask::Uptime => {
            let from = now - Duration::days(30);
            let facts = crate::read::sla::system_facts(&state.pool, system, from, now).await.map_err(WebError::api)?;
            let policy = &config.policy;
            let figures: Vec<sla::Figures> = facts
                .segments
                .keys()
                .filter(|c| match component {
                    Some(only) => c.as_str() == only,
                    None => config.is_public(system, Some(c)),
                })
                .map(|c| sla::component(&facts.input(c), policy, from, now))
                .collect();
            Ok(uptime_badge(format!("{label} uptime 30d"), Summary::of(&figures).availability_pct))
        }
        Ask::Status | Ask::Shields => {
            let notices = Notices::at(state, None, Some(system)).await.map_err(WebError::api)?;
            let s = match component {
                None => config
                    .groups_of(system)
                    .map(|g| public::group_state(g, &live, &notices, state.default_ttl_seconds, now))
                    .min()
                    .unwrap_or(PublicState::NoData),
                Some(c) => {
                    let Some(row) = public.iter().find(|r| r.component == c) else { return Err(not_found()) };
                    if notices.in_maintenance(system, c, now) {
                        PublicState::Maintenance
                    } else if crate::view::is_stale(
                        row.observed_at,
                        row.ttl_seconds.unwrap_or(state.default_ttl_seconds),
                        now,
                    ) {
                        PublicState::NoData
                    } else {
                        match row.status {
                            Status::Ok => PublicState::Operational,
                            Status::Degraded => PublicState::Degraded,
                            Status::Failed => PublicState::MajorOutage,
                            _ => PublicState::NoData,
                        }
                    }
                }
            };
            Ok(Badge { label, message: s.words().to_lowercase(), color: state_color(s) })
        }
    }
}

/// `GET /badge/{system}/{*rest}`: `status.svg`, `uptime-30d.svg` or `shields.json`, after a
/// component's name or alone (the system's).
pub async fn get(
    State(state): State<AppState>,
    Path((system, rest)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (component, ask) =
        [("status.svg", Ask::Status), ("uptime-30d.svg", Ask::Uptime), ("shields.json", Ask::Shields)]
            .into_iter()
            .find_map(|(file, ask)| {
                if rest == file {
                    Some((None, ask))
                } else {
                    rest.strip_suffix(file)
                        .and_then(|c| c.strip_suffix('/'))
                        .filter(|c| !c.is_empty())
                        .map(|c| (Some(c.to_owned()), ask))
                }
            })
            .ok_or_else(not_found)?;
    let b = badge(&state, &system, component.as_deref(), &ask).await?;
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static(CACHE));
    Ok(match ask {
        Ask::Shields => ([cache], axum::Json(b.shields())).into_response(),
        _ => ([cache, (header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml; charset=utf-8"))], b.svg())
            .into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_badge_is_an_svg_with_a_text_alternative_and_escaped_text() {
        let b = Badge { label: "derecho <x>".into(), message: "operational".into(), color: "brightgreen" };
        let svg = b.svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("<title>derecho &lt;x&gt;: operational</title>"));
        assert!(svg.contains("aria-label=\"derecho &lt;x&gt;: operational\""));
        assert!(svg.contains("fill=\"#4c1\""));
        assert_eq!(b.shields()["schemaVersion"], 1);
    }

    #[test]
    fn uptime_badges_are_coloured_by_their_figure() {
        assert_eq!(uptime_badge("x".into(), Some(99.95)).color, "brightgreen");
        assert_eq!(uptime_badge("x".into(), Some(97.0)).color, "yellow");
        assert_eq!(uptime_badge("x".into(), None).message, "no data");
    }
}
