//! `/events`: the event log itself, newest first, paged by position, with filters; and
//! `/events/{position}`: one event with its JSON, its metadata and the message it came from.

use crate::state::AppState;
use crate::view::error::{Format, WebError};
use crate::view::layout::Layout;
use crate::view::templates;
use crate::view::{self, Age};
use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde::{Deserialize, Serialize};
use sitrep_infra::event_store::{self, StoredEvent};

/// The event types sitrep records, for the filter (reading them from the log would scan it).
pub const EVENT_TYPES: [&str; 16] = [
    "StatusReported",
    "StatusChanged",
    "AlertRaised",
    "AlertAcknowledged",
    "AlertSilenced",
    "AlertSilenceExpired",
    "AlertMaintenanceEnded",
    "AlertResolved",
    "AlertRulesLoaded",
    "AlertClockTicked",
    "OutageDeclared",
    "OutageUpdated",
    "OutageResolved",
    "MaintenanceScheduled",
    "MaintenanceUpdated",
    "MaintenanceCancelled",
];

/// Events per page.
pub const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    /// Show events before this position (the next page).
    pub before: Option<String>,
    pub system: Option<String>,
    pub component: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

#[derive(Debug, Serialize)]
pub struct EventRow {
    pub position: i64,
    pub url: String,
    pub recorded: Age,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    /// Where it came from: a NATS subject and message, an operator, or sitrep itself.
    pub source: String,
    pub payload: String,
    pub metadata: String,
}

fn source_of(e: &StoredEvent) -> String {
    let m = &e.metadata;
    let text = |k: &str| m.get(k).and_then(|v| v.as_str());
    match (text("source"), text("by")) {
        (Some("nats"), _) => {
            let seq = m.get("stream_seq").and_then(|v| v.as_u64()).unwrap_or(0);
            let id = text("msg_id").map(|i| format!(", Nats-Msg-Id {i}")).unwrap_or_default();
            format!("NATS {} (stream sequence {seq}{id})", text("subject").unwrap_or("?"))
        }
        (_, Some("evaluator")) => "the alert evaluator".into(),
        (_, Some(who)) => format!("operator {who}"),
        _ if e.aggregate_type == sitrep_domain::alert::EvaluatorEvent::AGGREGATE_TYPE => "sitrep (alerting)".into(),
        _ => "sitrep".into(),
    }
}

fn row(e: StoredEvent, now: time::OffsetDateTime) -> EventRow {
    EventRow {
        position: e.position,
        url: format!("/events/{}", e.position),
        recorded: view::age(e.recorded_at, now, false),
        source: source_of(&e),
        aggregate_type: e.aggregate_type,
        aggregate_id: e.aggregate_id,
        event_type: e.event_type,
        payload: serde_json::to_string_pretty(&e.payload.to_value()).unwrap_or_default(),
        metadata: serde_json::to_string_pretty(&e.metadata).unwrap_or_default(),
    }
}

/// `/events`: newest first.
#[derive(Debug, Serialize)]
pub struct EventsPage {
    pub layout: Layout,
    pub events: Vec<EventRow>,
    pub system: String,
    pub component: String,
    pub event_type: String,
    pub types: Vec<String>,
    /// The next (older) page, if there is one.
    pub older_url: Option<String>,
    pub newest_url: Option<String>,
    pub head: i64,
}

#[tracing::instrument(skip_all)]
pub async fn list(State(state): State<AppState>, Query(f): Query<Filter>) -> Result<Html<String>, WebError> {
    let before = match nonempty(&f.before) {
        None => i64::MAX,
        Some(raw) => raw
            .parse::<i64>()
            .map_err(|_| WebError::bad_request(Format::Html, "before", format!("{raw:?} is not an event position")))?,
    };
    let (system, component, event_type) = (nonempty(&f.system), nonempty(&f.component), nonempty(&f.event_type));
    if component.is_some() && system.is_none() {
        return Err(WebError::bad_request(Format::Html, "component", "give the system too"));
    }
    // One component: its aggregate id exactly. A whole system: the ids that start with it.
    let exact = system.zip(component).map(|(s, c)| format!("{s}:{c}"));
    let prefix = match (system, component) {
        (Some(s), None) => Some(format!("{}:%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))),
        _ => None,
    };
    let client = state.pool.get().await.map_err(WebError::page)?;
    let rows = client
        .query(
            "SELECT position FROM events
             WHERE position < $1 AND ($2::text IS NULL OR aggregate_id = $2) AND ($3::text IS NULL OR aggregate_id LIKE $3)
               AND ($4::text IS NULL OR event_type = $4)
             ORDER BY position DESC LIMIT $5",
            &[&before, &exact, &prefix, &event_type, &PAGE],
        )
        .await
        .map_err(|e| WebError::page(sitrep_infra::InfraError::from(e)))?;
    let now = state.now();
    let mut events = Vec::with_capacity(rows.len());
    for r in &rows {
        if let Some(e) = event_store::at(&**client, r.get(0)).await.map_err(WebError::page)? {
            events.push(row(e, now));
        }
    }
    let types: Vec<String> = EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect();
    let head = event_store::head(&**client).await.map_err(WebError::page)?;
    let keep = |extra: String| {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = system {
            q.push(("system", s));
        }
        if let Some(c) = component {
            q.push(("component", c));
        }
        if let Some(t) = event_type {
            q.push(("type", t));
        }
        let mut qs = serde_urlencoded::to_string(q).unwrap_or_default();
        if !extra.is_empty() {
            qs = if qs.is_empty() { extra } else { format!("{qs}&{extra}") };
        }
        if qs.is_empty() {
            "/events".to_owned()
        } else {
            format!("/events?{qs}")
        }
    };
    let page = EventsPage {
        layout: Layout::still("Event log", "events", now),
        older_url: (events.len() as i64 == PAGE)
            .then(|| keep(format!("before={}", events.last().map_or(0, |e| e.position)))),
        newest_url: (before != i64::MAX).then(|| keep(String::new())),
        events,
        system: system.unwrap_or_default().to_owned(),
        component: component.unwrap_or_default().to_owned(),
        event_type: event_type.unwrap_or_default().to_owned(),
        types,
        head,
    };
    templates::render("events", &page).map(Html).map_err(WebError::page)
}

/// `/events/{position}`.
#[derive(Debug, Serialize)]
pub struct EventPage {
    pub layout: Layout,
    pub event: EventRow,
    /// Where to see the thing the event is about.
    pub subject_url: Option<String>,
}

#[tracing::instrument(skip_all, fields(position = %position))]
pub async fn one(State(state): State<AppState>, Path(position): Path<String>) -> Result<Html<String>, WebError> {
    let n: i64 = position.parse().map_err(|_| {
        WebError::bad_request(Format::Html, "position", format!("{position:?} is not an event position"))
    })?;
    let client = state.pool.get().await.map_err(WebError::page)?;
    let Some(e) = event_store::at(&**client, n).await.map_err(WebError::page)? else {
        return Err(WebError::missing_event(&client, Format::Html, n).await);
    };
    let subject_url = match e.aggregate_type.as_str() {
        sitrep_domain::component::AGGREGATE_TYPE => {
            e.aggregate_id.split_once(':').map(|(s, c)| format!("/systems/{s}/components/{c}"))
        }
        sitrep_domain::alert::AGGREGATE_TYPE => Some(format!("/alerts/{}", e.aggregate_id)),
        _ => None,
    };
    let page = EventPage {
        layout: Layout::still(format!("Event {n}"), "events", state.now()),
        event: row(e, state.now()),
        subject_url,
    };
    templates::render("event", &page).map(Html).map_err(WebError::page)
}
