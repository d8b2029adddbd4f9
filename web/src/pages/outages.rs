//! Outages and maintenance windows on the web: the banner every page carries while an outage is
//! on, `/outages` (what is on and what is coming, with the forms to declare and schedule), each
//! outage's page (timeline, update and resolve forms), each window's page (update and cancel),
//! and their JSON.
//!
//! A form is turned into the same JSON a collector would publish and decoded by the same code
//! (`domain::notice`), so the rules and the field errors are the same; the command then runs on
//! the aggregate through cqrs-es, recorded with the operator's name.

use crate::guard::auth::Viewer;
use crate::read::notices::{Notices, OutageRow, OutageView, WindowRow, WindowView, OUTAGE_COLUMNS, WINDOW_COLUMNS};
use crate::state::AppState;
use crate::view::error::{Format, WebError};
use crate::view::layout::{render, Layout};
use crate::view::{self, Age};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sitrep_domain::maintenance::Maintenance;
use sitrep_domain::notice::{self, Notice, NoticeId};
use sitrep_domain::outage::{Outage, OutageSeverity, Target};
use sitrep_domain::wire::{FieldError, MessageKind};
use sitrep_domain::SystemName;
use sitrep_infra::alerts::operator_metadata;
use sitrep_infra::auth::Role;
use sitrep_infra::event_store::PgEventRepository;
use std::time::Duration;
use time::OffsetDateTime;

// --------------------------------------------------------------------------------------- pages

/// `/outages`: outages in force and lately resolved, windows on and coming, and the forms.
#[derive(Debug, Serialize)]
pub struct OutagesPage {
    pub layout: Layout,
    pub active: Vec<OutageView>,
    pub resolved: Vec<OutageView>,
    pub windows: Vec<WindowView>,
    /// Systems to choose from in the forms (those that have reported).
    pub systems: Vec<String>,
    pub severities: [&'static str; 3],
}

async fn known_systems(state: &AppState) -> anyhow::Result<Vec<String>> {
    let client = state.pool.get().await?;
    let rows = client.query("SELECT DISTINCT system FROM latest_status ORDER BY system", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub async fn list_page(State(state): State<AppState>) -> Result<Html<String>, WebError> {
    let now = state.now();
    let notices = Notices::at(&state, None, None).await.map_err(WebError::page)?;
    let client = state.pool.get().await.map_err(WebError::page)?;
    let resolved = client
        .query(
            &format!(
                "SELECT {OUTAGE_COLUMNS} FROM outages WHERE resolved_at IS NOT NULL ORDER BY resolved_at DESC LIMIT 20"
            ),
            &[],
        )
        .await
        .map_err(|e| WebError::page(sitrep_infra::InfraError::from(e)))?;
    let page = OutagesPage {
        layout: Layout::new("Outages and maintenance", "outages", now),
        active: notices.outages.iter().map(|o| OutageView::of(o, now)).collect(),
        resolved: resolved.iter().map(|r| OutageView::of(&OutageRow::from_row(r), now)).collect(),
        windows: notices.windows.iter().map(|w| WindowView::of(w, now)).collect(),
        systems: known_systems(&state).await.map_err(WebError::page)?,
        severities: OutageSeverity::NAMES,
    };
    render("outages", &page)
}

/// `/systems/{system}/outages/{id}`: one outage, its timeline, and the update and resolve forms.
#[derive(Debug, Serialize)]
pub struct OutagePage {
    pub layout: Layout,
    pub outage: OutageView,
    pub timeline: Vec<TimelineEntry>,
    pub severities: [&'static str; 3],
}

#[derive(Debug, Serialize)]
pub struct TimelineEntry {
    pub at: Age,
    pub kind: String,
    pub severity: Option<String>,
    pub message: String,
    pub by: String,
    pub event_url: String,
}

async fn one_outage(state: &AppState, system: &str, id: &str) -> Result<OutageRow, WebError> {
    let client = state.pool.get().await.map_err(WebError::page)?;
    client
        .query_opt(&format!("SELECT {OUTAGE_COLUMNS} FROM outages WHERE system = $1 AND id = $2"), &[&system, &id])
        .await
        .map_err(|e| WebError::page(sitrep_infra::InfraError::from(e)))?
        .map(|r| OutageRow::from_row(&r))
        .ok_or_else(|| {
            WebError::not_found(
                Format::Html,
                format!("No outage {id} on {system}."),
                "See /outages for the outages there are.",
            )
        })
}

pub async fn outage_page(
    State(state): State<AppState>,
    Path((system, id)): Path<(String, String)>,
) -> Result<Html<String>, WebError> {
    let now = state.now();
    let outage = one_outage(&state, &system, &id).await?;
    let client = state.pool.get().await.map_err(WebError::page)?;
    let rows = client
        .query(
            "SELECT position, at, kind, severity, message, by FROM outage_updates WHERE system = $1 AND id = $2 ORDER BY position",
            &[&system, &id],
        )
        .await
        .map_err(|e| WebError::page(sitrep_infra::InfraError::from(e)))?;
    let timeline = rows
        .iter()
        .map(|r| TimelineEntry {
            event_url: format!("/events/{}", r.get::<_, i64>(0)),
            at: view::age(r.get(1), now, false),
            kind: r.get(2),
            severity: r.get(3),
            message: r.get::<_, Option<String>>(4).unwrap_or_default(),
            by: r.get(5),
        })
        .collect();
    let page = OutagePage {
        layout: Layout::new(format!("Outage: {}", outage.title), "outages", now),
        outage: OutageView::of(&outage, now),
        timeline,
        severities: OutageSeverity::NAMES,
    };
    render("outage", &page)
}

/// `/systems/{system}/maintenance/{id}`: one window, with the update and cancel forms.
#[derive(Debug, Serialize)]
pub struct WindowPage {
    pub layout: Layout,
    pub window: WindowView,
    pub starts_input: String,
    pub ends_input: String,
}

pub async fn window_page(
    State(state): State<AppState>,
    Path((system, id)): Path<(String, String)>,
) -> Result<Html<String>, WebError> {
    let now = state.now();
    let client = state.pool.get().await.map_err(WebError::page)?;
    let w = client
        .query_opt(
            &format!("SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE system = $1 AND id = $2"),
            &[&system, &id],
        )
        .await
        .map_err(|e| WebError::page(sitrep_infra::InfraError::from(e)))?
        .map(|r| WindowRow::from_row(&r))
        .ok_or_else(|| {
            WebError::not_found(
                Format::Html,
                format!("No window {id} on {system}."),
                "See /outages for the windows there are.",
            )
        })?;
    let page = WindowPage {
        layout: Layout::new(format!("{}: {}", w.kind, w.title), "outages", now),
        starts_input: datetime_input(w.starts_at),
        ends_input: datetime_input(w.ends_at),
        window: WindowView::of(&w, now),
    };
    render("window", &page)
}

fn datetime_input(t: OffsetDateTime) -> String {
    t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]")).unwrap_or_default()
}

// ------------------------------------------------------------------------------------------ API

#[derive(Debug, Deserialize)]
pub struct ApiFilter {
    pub system: Option<String>,
}

/// `GET /api/v1/outages`: outages in force and the windows not over, now.
pub async fn api(State(state): State<AppState>, Query(f): Query<ApiFilter>) -> Result<Json<Value>, WebError> {
    let notices = Notices::at(&state, None, f.system.as_deref()).await.map_err(WebError::api)?;
    Ok(Json(json!({"outages": notices.outages, "maintenance": notices.windows})))
}

// ---------------------------------------------------------------------------------------- forms

/// A form's fields, as posted.
type Fields = std::collections::HashMap<String, String>;

/// A `datetime-local` value (UTC, as every page says) as RFC 3339; empty is absent.
fn form_time(fields: &Fields, name: &str) -> Result<Option<String>, WebError> {
    let Some(raw) = fields.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) else { return Ok(None) };
    let with_seconds = if raw.len() == 16 { format!("{raw}:00") } else { raw.to_owned() };
    let t = time::PrimitiveDateTime::parse(
        &with_seconds,
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    )
    .map_err(|_| {
        WebError::bad_request(Format::Html, name, format!("{raw:?} is not a time such as 2026-11-22T10:00 (UTC)"))
    })?;
    Ok(Some(t.assume_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()))
}

/// The message a form stands for: its text fields as they are, components split on commas and
/// white space, times made RFC 3339, and empty fields left out.
fn message_of(fields: &Fields, system: &str, action: &str, id: &str, times: &[&str]) -> Result<Vec<u8>, WebError> {
    let mut obj = Map::new();
    obj.insert("system".into(), system.into());
    obj.insert("action".into(), action.into());
    obj.insert("id".into(), id.into());
    for (k, v) in fields {
        let v = v.trim();
        if k == "csrf" || v.is_empty() || times.contains(&k.as_str()) {
            continue;
        }
        let value = match k.as_str() {
            "components" => {
                json!(v.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).collect::<Vec<_>>())
            }
            "nodes" => v.parse::<u64>().map(Value::from).unwrap_or_else(|_| v.into()),
            _ => v.into(),
        };
        obj.insert(k.clone(), value);
    }
    for name in times {
        if let Some(t) = form_time(fields, name)? {
            obj.insert((*name).into(), t.into());
        }
    }
    Ok(serde_json::to_vec(&obj).unwrap_or_default())
}

/// The id a new outage or window gets when the form leaves it empty: the date and the title.
fn new_id(fields: &Fields, now: OffsetDateTime) -> String {
    if let Some(id) = fields.get("id").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        return id.to_owned();
    }
    let slug: String = fields
        .get("title")
        .map(String::as_str)
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let date = now.format(time::macros::format_description!("[year][month][day]-[hour][minute]")).unwrap_or_default();
    let mut id = format!("{date}-{slug}");
    id.truncate(notice::MAX_ID_LEN);
    id.trim_end_matches('-').to_owned()
}

fn rejected(e: FieldError) -> WebError {
    WebError::bad_request(Format::Html, e.field, e.reason)
}

/// Runs an operator's command on an outage or window, recorded with their name, then waits
/// (up to 3 s) for the read model, so the page they land on already shows it.
async fn execute(state: &AppState, notice: Notice, by: &str) -> Result<String, WebError> {
    let (_, agg_id) = notice.target();
    fn store<A: Aggregate>(state: &AppState) -> PersistedEventStore<PgEventRepository, A> {
        PersistedEventStore::new_event_store(PgEventRepository::new(state.pool.clone()))
    }
    let (system, id, url) = match notice {
        Notice::Outage { system, id, command } => {
            let url = format!("/systems/{system}/outages/{id}", system = system.as_str());
            let cqrs = CqrsFramework::new(store(state), vec![], Target { system: system.clone(), id: id.clone() });
            run::<Outage>(cqrs, &agg_id, command, by).await?;
            (system, id, url)
        }
        Notice::Maintenance { system, id, command } => {
            let url = format!("/systems/{system}/maintenance/{id}", system = system.as_str());
            let cqrs = CqrsFramework::new(store(state), vec![], Target { system: system.clone(), id: id.clone() });
            run::<Maintenance>(cqrs, &agg_id, command, by).await?;
            (system, id, url)
        }
    };
    wait_for_read_model(state, &agg_id).await?;
    tracing::info!(system = system.as_str(), id = id.as_str(), by, "operator command stored");
    Ok(url)
}

async fn run<A>(
    cqrs: CqrsFramework<A, PersistedEventStore<PgEventRepository, A>>,
    agg_id: &str,
    command: A::Command,
    by: &str,
) -> Result<(), WebError>
where
    A: Aggregate,
{
    match cqrs.execute_with_metadata(agg_id, command, operator_metadata(by)).await {
        Ok(()) => Ok(()),
        Err(AggregateError::UserError(e)) => Err(WebError::Conflict { what: e.to_string() }),
        Err(AggregateError::AggregateConflict) => {
            Err(WebError::Conflict { what: "It changed at the same moment; look at it again.".into() })
        }
        Err(e) => Err(WebError::page(anyhow::anyhow!("{e}"))),
    }
}

async fn wait_for_read_model(state: &AppState, agg_id: &str) -> Result<(), WebError> {
    let client = state.pool.get().await.map_err(WebError::page)?;
    let db = |e: tokio_postgres::Error| WebError::page(sitrep_infra::InfraError::from(e));
    let last: i64 = client
        .query_one("SELECT coalesce(max(position), 0) FROM events WHERE aggregate_id = $1 AND aggregate_type IN ('outage', 'maintenance')", &[&agg_id])
        .await
        .map_err(db)?
        .get(0);
    for _ in 0..60 {
        let at: Option<i64> = client
            .query_opt("SELECT position FROM projection_checkpoints WHERE name = 'outages'", &[])
            .await
            .map_err(db)?
            .map(|r| r.get(0));
        if at.is_some_and(|p| p >= last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Checks the form, decodes it as a message of `kind`, and runs it.
async fn act(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    fields: &Fields,
    kind: MessageKind,
    (system, action, id): (&str, &str, &str),
    times: &[&str],
) -> Result<Response, WebError> {
    let session = viewer.check_form(headers, fields.get("csrf").map(String::as_str).unwrap_or(""), Role::Operator)?;
    SystemName::parse(system).map_err(|r| WebError::bad_request(Format::Html, "system", r))?;
    NoticeId::parse(id).map_err(|r| WebError::bad_request(Format::Html, "id", r))?;
    let payload = message_of(fields, system, action, id, times)?;
    let notice = notice::decode(kind, system, &payload, state.now()).map_err(rejected)?;
    let url = execute(state, notice, &session.user).await?;
    Ok(Redirect::to(&url).into_response())
}

const OUTAGE_TIMES: [&str; 2] = ["started_at", "estimated_resolution"];
const WINDOW_TIMES: [&str; 2] = ["starts_at", "ends_at"];

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields.get(name).map(|s| s.trim()).unwrap_or("")
}

/// `POST /outages`: declare.
pub async fn declare(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Result<Response, WebError> {
    let id = new_id(&f, state.now());
    act(&state, &viewer, &headers, &f, MessageKind::Outage, (field(&f, "system"), "declare", &id), &OUTAGE_TIMES).await
}

/// `POST /systems/{system}/outages/{id}/update` and `/resolve`.
pub async fn update_outage(
    state: State<AppState>,
    path: Path<(String, String, String)>,
    viewer: Viewer,
    headers: HeaderMap,
    form: Form<Fields>,
) -> Result<Response, WebError> {
    change(state, path, viewer, headers, form, MessageKind::Outage, ["update", "resolve"]).await
}

/// `POST /maintenance`: schedule.
pub async fn schedule(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Result<Response, WebError> {
    let id = new_id(&f, state.now());
    act(&state, &viewer, &headers, &f, MessageKind::Maintenance, (field(&f, "system"), "schedule", &id), &WINDOW_TIMES)
        .await
}

/// `POST /systems/{system}/maintenance/{id}/update` and `/cancel`.
pub async fn update_window(
    state: State<AppState>,
    path: Path<(String, String, String)>,
    viewer: Viewer,
    headers: HeaderMap,
    form: Form<Fields>,
) -> Result<Response, WebError> {
    change(state, path, viewer, headers, form, MessageKind::Maintenance, ["update", "cancel"]).await
}

/// An action on an outage or window that exists: one of `actions`, from the forms on its page.
async fn change(
    State(state): State<AppState>,
    Path((system, id, action)): Path<(String, String, String)>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<Fields>,
    kind: MessageKind,
    actions: [&str; 2],
) -> Result<Response, WebError> {
    if !actions.contains(&action.as_str()) {
        return Err(WebError::not_found(
            Format::Html,
            format!("No such action {action:?}."),
            format!("Use the forms on the {} page.", if kind == MessageKind::Outage { "outage's" } else { "window's" }),
        ));
    }
    let times: &[&str] = if kind == MessageKind::Outage { &OUTAGE_TIMES } else { &WINDOW_TIMES };
    act(&state, &viewer, &headers, &f, kind, (&system, &action, &id), times).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_form_becomes_the_message_a_collector_would_send() {
        let f: Fields = [
            ("csrf", "x"),
            ("severity", "major"),
            ("title", "Glade down"),
            ("components", "fs/glade, fs/campaign\nlogin/a"),
            ("estimated_resolution", "2026-11-22T14:00"),
            ("description", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let bytes = message_of(&f, "derecho", "declare", "g1", &OUTAGE_TIMES).unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["components"], json!(["fs/glade", "fs/campaign", "login/a"]));
        assert_eq!(v["estimated_resolution"], "2026-11-22T14:00:00Z");
        assert!(v.get("csrf").is_none() && v.get("description").is_none());
        let notice = notice::decode(MessageKind::Outage, "derecho", &bytes, datetime!(2026-11-22 10:00 UTC)).unwrap();
        assert!(matches!(notice, Notice::Outage { .. }));

        let bad: Fields = [("estimated_resolution".to_owned(), "tomorrow".to_owned())].into_iter().collect();
        assert!(matches!(
            message_of(&bad, "derecho", "declare", "g1", &OUTAGE_TIMES),
            Err(WebError::BadRequest { field, .. }) if field == "estimated_resolution"
        ));
    }

    fn outage(resolved: bool) -> OutageRow {
        OutageRow {
            system: "derecho".into(),
            id: "glade-1".into(),
            severity: "major".into(),
            title: "Glade <b>down</b>".into(),
            description: Some("OSS nodes".into()),
            components: vec!["fs/glade".into()],
            started_at: datetime!(2026-11-22 09:00 UTC),
            estimated_resolution: Some(datetime!(2026-11-22 14:00 UTC)),
            resolved_at: resolved.then_some(datetime!(2026-11-22 11:00 UTC)),
        }
    }

    fn window(starts: OffsetDateTime) -> WindowRow {
        WindowRow {
            system: "derecho".into(),
            id: "pm-1".into(),
            kind: "maintenance".into(),
            title: "Scheduler upgrade".into(),
            description: None,
            components: vec!["queue/main".into()],
            nodes: Some(128),
            partition: Some("cpu".into()),
            starts_at: starts,
            ends_at: starts + time::Duration::hours(4),
            cancelled_at: None,
            message: None,
        }
    }

    /// Every page of this module renders with realistic data and with none, collector text escaped.
    #[test]
    fn the_outage_and_maintenance_pages_render_full_and_empty() {
        use crate::view::templates;
        let now = datetime!(2026-11-22 10:00 UTC);
        let full = OutagesPage {
            layout: Layout::new("Outages and maintenance", "outages", now),
            active: vec![OutageView::of(&outage(false), now)],
            resolved: vec![OutageView::of(&outage(true), now)],
            windows: vec![
                WindowView::of(&window(now - time::Duration::hours(1)), now),
                WindowView::of(&window(now + time::Duration::days(1)), now),
            ],
            systems: vec!["derecho".into()],
            severities: OutageSeverity::NAMES,
        };
        let html = templates::render("outages", &full).unwrap();
        for needle in [
            "MAJOR OUTAGE",
            "Glade &lt;b&gt;down&lt;/b&gt;",
            "ON NOW",
            "scheduled",
            "128 nodes",
            "Sign in</a> to declare",
        ] {
            assert!(html.contains(needle), "lacks {needle}");
        }
        let empty = OutagesPage { active: vec![], resolved: vec![], windows: vec![], systems: vec![], ..full };
        let html = templates::render("outages", &empty).unwrap();
        assert!(html.contains("None. Collectors and tools declare outages") && html.contains("None scheduled."));

        let page = OutagePage {
            layout: Layout::new("Outage", "outages", now),
            outage: OutageView::of(&outage(false), now),
            timeline: vec![TimelineEntry {
                at: view::age(now, now, false),
                kind: "declared".into(),
                severity: Some("major".into()),
                message: "<script>x</script>".into(),
                by: "nats".into(),
                event_url: "/events/7".into(),
            }],
            severities: OutageSeverity::NAMES,
        };
        let html = templates::render("outage", &page).unwrap();
        assert!(
            html.contains("&lt;script&gt;")
                && html.contains("/events/7")
                && html.contains("Sign in</a> as an operator")
        );
        let page = OutagePage { timeline: vec![], outage: OutageView::of(&outage(true), now), ..page };
        assert!(templates::render("outage", &page).unwrap().contains("Resolved"));

        let w = WindowPage {
            layout: Layout::new("Window", "outages", now),
            window: WindowView::of(&window(now), now),
            starts_input: "2026-11-22T10:00".into(),
            ends_input: "2026-11-22T14:00".into(),
        };
        assert!(templates::render("window", &w).unwrap().contains("Scheduler upgrade"));
        let signin = crate::pages::signin::SignInPage {
            layout: Layout::still("Sign in", "", now),
            next: "/".into(),
            name: String::new(),
            error: Some("That name and password do not match.".into()),
        };
        assert!(templates::render("sign_in", &signin).unwrap().contains("do not match"));
    }

    #[test]
    fn a_new_id_comes_from_the_time_and_the_title_unless_one_is_given() {
        let now = datetime!(2026-11-22 10:05 UTC);
        let f: Fields = [("title".to_owned(), "Glade: OSTs down!".to_owned())].into_iter().collect();
        assert_eq!(new_id(&f, now), "20261122-1005-glade-osts-down");
        let f: Fields = [("id".to_owned(), "mine".to_owned())].into_iter().collect();
        assert_eq!(new_id(&f, now), "mine");
        assert!(NoticeId::parse(&new_id(&[("title".to_owned(), "x".repeat(200))].into_iter().collect(), now)).is_ok());
    }
}
