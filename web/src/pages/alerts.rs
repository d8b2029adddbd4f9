//! Alerts on the web: the list with filters and counts, each alert's page (timeline, evidence,
//! deliveries, acknowledge and silence forms), the rules in force, and their JSON.
//!
//! Reads come from the `alerts` read model; acknowledging and silencing are commands on the
//! alert aggregate through cqrs-es, so they land in the same event log as everything else.

use crate::guard::auth::Viewer;
use crate::read::alerts::{severity_str, state_word};
use crate::state::AppState;
use crate::view::error::{Format, WebError};
use crate::view::layout::{render, Layout};
use crate::view::{self, Age};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework};
use serde::{Deserialize, Serialize};
use sitrep_domain::alert::{Alert, AlertCommand, AlertError, Severity};
use sitrep_infra::auth::Role;
use sitrep_infra::event_store::PgEventRepository;
use sitrep_infra::{alerts as store, InfraError};
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

/// The states an operator can filter on; `open` is firing, acknowledged and silenced.
const STATES: [&str; 6] = ["open", "firing", "acknowledged", "silenced", "resolved", "all"];

/// Alerts listed per page.
const LIST_LIMIT: i64 = 200;

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    pub state: Option<String>,
    pub severity: Option<String>,
    pub system: Option<String>,
}

impl Filter {
    fn check(&self, format: Format) -> Result<(String, Option<Severity>, Option<String>), WebError> {
        let state = self.state.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "open".into());
        if !STATES.contains(&state.as_str()) {
            return Err(WebError::bad_request(
                format,
                "state",
                format!("{state:?} is not one of {}", STATES.join(", ")),
            ));
        }
        let severity = match self.severity.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(Severity::parse(s).map_err(|e| WebError::bad_request(format, "severity", e))?),
        };
        Ok((state, severity, self.system.clone().filter(|s| !s.is_empty())))
    }
}

/// One alert as lists show it.
#[derive(Debug, Serialize)]
pub struct AlertRow {
    pub id: Uuid,
    pub url: String,
    pub rule: String,
    pub kind: String,
    pub severity: &'static str,
    pub state: String,
    pub state_label: &'static str,
    pub state_icon: &'static str,
    pub system: String,
    pub component: String,
    pub component_url: String,
    pub summary: String,
    /// A failed parent `system:component`, or `outage system/id`: a grave outage of its system.
    pub impacted_by: Option<String>,
    /// Why it notifies no one, in words, when it is impacted.
    pub impacted_reason: Option<String>,
    /// `system/id` of the maintenance window it was raised in, and where that window's page is.
    pub maintenance: Option<String>,
    pub maintenance_url: Option<String>,
    /// When that window's maintenance ended for it.
    pub maintenance_ended: Option<Age>,
    /// Raised in maintenance that has not ended for it: nothing of it notifies.
    pub in_maintenance: bool,
    pub since: Age,
    pub raised: Age,
    pub acknowledged_by: Option<String>,
    pub silenced_until: Option<String>,
    pub resolved: Option<Age>,
    pub resolved_reason: Option<String>,
}

/// Why an impacted alert notifies no one, in words.
fn impacted_reason(by: &str) -> String {
    match by.strip_prefix("outage ") {
        Some(outage) => format!(
            "The declared outage {outage} of its system was in force when it was raised, so this alert is recorded but notifies no one."
        ),
        None => format!("{by} had failed, so this alert is recorded but notifies no one."),
    }
}

const ROW_COLUMNS: &str = "alert_id, rule, kind, severity, state, system, component, summary, impacted_by, since, \
                           raised_at, acknowledged_by, silenced_until, resolved_at, resolved_reason, maintenance, \
                           maintenance_ended_at";

fn row(r: &Row, now: OffsetDateTime) -> AlertRow {
    let id: Uuid = r.get(0);
    let state: String = r.get(4);
    let (state_label, state_icon) = state_word(&state);
    let (system, component): (String, String) = (r.get(5), r.get(6));
    let (maintenance, maintenance_ended): (Option<String>, Option<OffsetDateTime>) = (r.get(15), r.get(16));
    AlertRow {
        url: format!("/alerts/{id}"),
        id,
        rule: r.get(1),
        kind: r.get(2),
        severity: severity_str(r.get(3)),
        state_label,
        state_icon,
        state,
        component_url: format!("/systems/{system}/components/{component}"),
        system,
        component,
        summary: r.get(7),
        impacted_reason: r.get::<_, Option<String>>(8).map(|by| impacted_reason(&by)),
        impacted_by: r.get(8),
        since: view::age(r.get(9), now, false),
        raised: view::age(r.get(10), now, false),
        acknowledged_by: r.get(11),
        silenced_until: r.get::<_, Option<OffsetDateTime>>(12).map(view::utc_text),
        resolved: r.get::<_, Option<OffsetDateTime>>(13).map(|t| view::age(t, now, false)),
        resolved_reason: r.get(14),
        maintenance_url: maintenance.as_deref().and_then(maintenance_url),
        in_maintenance: maintenance.is_some() && maintenance_ended.is_none(),
        maintenance,
        maintenance_ended: maintenance_ended.map(|t| view::age(t, now, false)),
    }
}

/// The page of the maintenance window called `system/id`.
fn maintenance_url(window: &str) -> Option<String> {
    let (system, id) = window.split_once('/')?;
    Some(format!("/systems/{system}/maintenance/{id}"))
}

fn state_clause(state: &str) -> &'static str {
    match state {
        "open" => "state <> 'resolved'",
        "firing" => "state = 'firing'",
        "acknowledged" => "state = 'acknowledged'",
        "silenced" => "state = 'silenced'",
        "resolved" => "state = 'resolved'",
        _ => "true",
    }
}

/// Alerts matching the filter, worst and newest first.
async fn list(
    state: &AppState,
    which: &str,
    severity: Option<Severity>,
    system: Option<&str>,
) -> anyhow::Result<Vec<AlertRow>> {
    let client = state.pool.get().await?;
    let sev = severity.map(Severity::as_str);
    let rows = client
        .query(
            &format!(
                "SELECT {ROW_COLUMNS} FROM alerts
                 WHERE {} AND ($1::text IS NULL OR severity = $1) AND ($2::text IS NULL OR system = $2)
                 ORDER BY (state = 'resolved'), (impacted_by IS NOT NULL),
                          array_position(ARRAY['critical','warning','info'], severity), raised_at DESC
                 LIMIT $3",
                state_clause(which)
            ),
            &[&sev, &system, &LIST_LIMIT],
        )
        .await?;
    let now = state.now();
    Ok(rows.iter().map(|r| row(r, now)).collect())
}

/// How many alerts are in each state (with the severity and system filters applied).
async fn state_counts(
    state: &AppState,
    severity: Option<Severity>,
    system: Option<&str>,
) -> anyhow::Result<HashMap<String, i64>> {
    let client = state.pool.get().await?;
    let sev = severity.map(Severity::as_str);
    let rows = client
        .query(
            "SELECT state, count(*) FROM alerts
             WHERE ($1::text IS NULL OR severity = $1) AND ($2::text IS NULL OR system = $2) GROUP BY state",
            &[&sev, &system],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

// ------------------------------------------------------------------------------------ the list

/// `/alerts`: alerts by state, with filters and counts.
#[derive(Debug, Serialize)]
pub struct AlertsPage {
    pub layout: Layout,
    pub tabs: Vec<Tab>,
    pub state: String,
    pub severity: String,
    pub system: String,
    pub severities: Vec<&'static str>,
    pub alerts: Vec<AlertRow>,
    pub limited: bool,
    pub rule_count: usize,
}

#[derive(Debug, Serialize)]
pub struct Tab {
    pub name: &'static str,
    pub url: String,
    pub count: i64,
    pub current: bool,
}

fn query_string(state: &str, severity: Option<Severity>, system: Option<&str>) -> String {
    let mut parts = vec![("state", state)];
    if let Some(s) = severity {
        parts.push(("severity", s.as_str()));
    }
    if let Some(s) = system {
        parts.push(("system", s));
    }
    serde_urlencoded::to_string(parts).unwrap_or_default()
}

#[tracing::instrument(skip_all)]
pub async fn list_page(State(state): State<AppState>, Query(f): Query<Filter>) -> Result<Html<String>, WebError> {
    let (which, severity, system) = f.check(Format::Html)?;
    let alerts = list(&state, &which, severity, system.as_deref()).await.map_err(WebError::page)?;
    let counts = state_counts(&state, severity, system.as_deref()).await.map_err(WebError::page)?;
    let count = |s: &str| match s {
        "open" => counts.iter().filter(|(k, _)| k.as_str() != "resolved").map(|(_, v)| v).sum(),
        "all" => counts.values().sum(),
        other => counts.get(other).copied().unwrap_or(0),
    };
    let rules = rules_in_force(&state).await.map_err(WebError::page)?;
    let page = AlertsPage {
        layout: Layout::new("Alerts", "alerts", state.now()),
        tabs: STATES
            .iter()
            .map(|s| Tab {
                name: s,
                url: format!("/alerts?{}", query_string(s, severity, system.as_deref())),
                count: count(s),
                current: *s == which,
            })
            .collect(),
        limited: alerts.len() as i64 >= LIST_LIMIT,
        alerts,
        state: which,
        severity: severity.map(Severity::as_str).unwrap_or_default().to_owned(),
        system: system.unwrap_or_default(),
        severities: Severity::ALL.iter().map(|s| s.as_str()).collect(),
        rule_count: rules.rules.len(),
    };
    render("alerts", &page)
}

/// `GET /api/v1/alerts`: the same list as JSON.
pub async fn list_api(
    State(state): State<AppState>,
    Query(f): Query<Filter>,
) -> Result<Json<serde_json::Value>, WebError> {
    let (which, severity, system) = f.check(Format::Json)?;
    let alerts = list(&state, &which, severity, system.as_deref()).await.map_err(WebError::api)?;
    let counts = state_counts(&state, severity, system.as_deref()).await.map_err(WebError::api)?;
    Ok(Json(serde_json::json!({ "state": which, "counts": counts, "alerts": alerts })))
}

// ------------------------------------------------------------------------------- one alert

/// `/alerts/{id}`: one alert, its timeline with the evidence, deliveries, and actions.
#[derive(Debug, Serialize)]
pub struct AlertPage {
    pub layout: Layout,
    pub alert: AlertRow,
    pub open: bool,
    pub silenced: bool,
    pub acknowledged: bool,
    pub transitions: Vec<TransitionRow>,
    pub deliveries: Vec<DeliveryRow>,
    /// Every delivery attempt that carried this alert, oldest first (the latest [`ATTEMPTS_SHOWN`]).
    pub attempts: Vec<AttemptRow>,
    /// When the alert was escalated, and to whom: the first escalation sent.
    pub escalated: Option<AttemptRow>,
    pub silence_choices: [&'static str; 6],
}

/// How many delivery attempts an alert's page lists, the latest.
pub const ATTEMPTS_SHOWN: i64 = 200;

/// One attempt to deliver a notification that carried the alert.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    pub target: String,
    pub route: String,
    /// changes, repeat or escalation.
    pub reason: String,
    pub attempt: i32,
    pub ok: bool,
    pub error: Option<String>,
    /// The decision's position in the log.
    pub position: i64,
    pub at: Age,
}

#[derive(Debug, Serialize)]
pub struct TransitionRow {
    pub position: i64,
    pub transition: String,
    pub state_label: &'static str,
    pub state_icon: &'static str,
    pub at: Age,
    pub by: Option<String>,
    pub comment: Option<String>,
    pub cause: i64,
    pub cause_url: String,
    pub notify: bool,
}

#[derive(Debug, Serialize)]
pub struct DeliveryRow {
    pub route: String,
    pub position: i64,
    pub attempts: i32,
    pub delivered: bool,
    pub last_error: Option<String>,
    pub at: Age,
}

fn parse_id(raw: &str, format: Format) -> Result<Uuid, WebError> {
    Uuid::parse_str(raw).map_err(|_| WebError::bad_request(format, "id", format!("{raw:?} is not an alert id")))
}

/// One alert and what happened to it: its transitions, its outcome per receiver, and each
/// delivery attempt.
struct Detail {
    alert: AlertRow,
    transitions: Vec<TransitionRow>,
    deliveries: Vec<DeliveryRow>,
    attempts: Vec<AttemptRow>,
}

async fn one(state: &AppState, id: Uuid, format: Format) -> Result<Detail, WebError> {
    let internal = |e: tokio_postgres::Error| WebError::Internal { format, source: e.into() };
    let client = state.pool.get().await.map_err(|e| WebError::Internal { format, source: e.into() })?;
    let now = state.now();
    let found = client
        .query_opt(&format!("SELECT {ROW_COLUMNS} FROM alerts WHERE alert_id = $1"), &[&id])
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            WebError::not_found(format, format!("No alert {id}."), "See /alerts for the alerts there are.")
        })?;
    let transitions = client
        .query(
            "SELECT position, transition, state, at, by_whom, comment, cause, notify FROM alert_transitions
             WHERE alert_id = $1 ORDER BY position",
            &[&id],
        )
        .await
        .map_err(internal)?
        .iter()
        .map(|r| {
            let (state_label, state_icon) = state_word(r.get(2));
            let cause: i64 = r.get(6);
            TransitionRow {
                position: r.get(0),
                transition: r.get(1),
                state_label,
                state_icon,
                at: view::age(r.get(3), now, false),
                by: r.get(4),
                comment: r.get::<_, Option<String>>(5).filter(|c| !c.is_empty()),
                cause,
                cause_url: format!("/events/{cause}"),
                notify: r.get(7),
            }
        })
        .collect();
    let deliveries = client
        .query(
            "SELECT route, position, attempts, delivered, last_error, updated_at FROM alert_deliveries
             WHERE alert_id = $1 ORDER BY position, route",
            &[&id],
        )
        .await
        .map_err(internal)?
        .iter()
        .map(|r| DeliveryRow {
            route: r.get(0),
            position: r.get(1),
            attempts: r.get(2),
            delivered: r.get(3),
            last_error: r.get(4),
            at: view::age(r.get(5), now, false),
        })
        .collect();
    let mut attempts: Vec<AttemptRow> = client
        .query(
            "SELECT target, route, reason, attempt, ok, error, position, at FROM notification_attempts
             WHERE alert_ids @> ARRAY[$1::uuid] ORDER BY at DESC, id DESC LIMIT $2",
            &[&id, &ATTEMPTS_SHOWN],
        )
        .await
        .map_err(internal)?
        .iter()
        .map(|r| AttemptRow {
            target: r.get(0),
            route: r.get(1),
            reason: r.get(2),
            attempt: r.get(3),
            ok: r.get(4),
            error: r.get(5),
            position: r.get(6),
            at: view::age(r.get(7), now, false),
        })
        .collect();
    attempts.reverse();
    Ok(Detail { alert: row(&found, now), transitions, deliveries, attempts })
}

#[tracing::instrument(skip_all, fields(alert = %id))]
pub async fn alert_page(State(state): State<AppState>, Path(id): Path<String>) -> Result<Html<String>, WebError> {
    let id = parse_id(&id, Format::Html)?;
    let Detail { alert, transitions, deliveries, attempts } = one(&state, id, Format::Html).await?;
    let page = AlertPage {
        // Not self-refreshing: a reload would throw away a comment being typed in the forms.
        layout: Layout::still(format!("Alert: {}", alert.summary), "alerts", state.now()),
        open: alert.state != "resolved",
        silenced: alert.state == "silenced",
        acknowledged: alert.acknowledged_by.is_some(),
        alert,
        transitions,
        deliveries,
        escalated: attempts.iter().find(|a| a.reason == "escalation").cloned(),
        attempts,
        silence_choices: ["30m", "1h", "2h", "4h", "8h", "24h"],
    };
    render("alert", &page)
}

/// `GET /api/v1/alerts/{id}`: one alert with its transitions, deliveries and delivery attempts.
pub async fn alert_api(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, WebError> {
    let id = parse_id(&id, Format::Json)?;
    let Detail { alert, transitions, deliveries, attempts } = one(&state, id, Format::Json).await?;
    Ok(Json(serde_json::json!({
        "alert": alert, "transitions": transitions, "deliveries": deliveries, "attempts": attempts,
    })))
}

// --------------------------------------------------------------------------------- actions

#[derive(Debug, Deserialize)]
pub struct AckForm {
    /// The browser's form token (see `web::auth`).
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Deserialize)]
pub struct SilenceForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub comment: String,
    /// How long, such as `2h` or `90m`.
    #[serde(default, rename = "for")]
    pub for_: String,
}

type AlertCqrs = CqrsFramework<Alert, PersistedEventStore<PgEventRepository, Alert>>;

/// Runs an operator's command on the alert aggregate, then waits (up to 3 s) for the read model
/// to show it, so the page the operator lands on already does.
async fn command(state: &AppState, id: Uuid, by: &str, cmd: AlertCommand) -> Result<(), WebError> {
    let cqrs: AlertCqrs = CqrsFramework::new(
        PersistedEventStore::new_event_store(PgEventRepository::new(state.pool.clone())),
        vec![],
        (),
    );
    let before = last_position(state, id).await?;
    match cqrs.execute_with_metadata(&id.to_string(), cmd, store::operator_metadata(by)).await {
        Ok(()) => {}
        Err(AggregateError::UserError(AlertError::NotRaised)) => {
            return Err(WebError::not_found(
                Format::Html,
                format!("No alert {id}."),
                "See /alerts for the alerts there are.",
            ))
        }
        Err(AggregateError::UserError(e)) => return Err(WebError::Conflict { what: e.to_string() }),
        Err(AggregateError::AggregateConflict) => {
            return Err(WebError::Conflict { what: "The alert changed at the same moment; look at it again.".into() })
        }
        Err(e) => return Err(WebError::page(anyhow::anyhow!("{e}"))),
    }
    for _ in 0..60 {
        if last_position(state, id).await? > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn last_position(state: &AppState, id: Uuid) -> Result<i64, WebError> {
    let client = state.pool.get().await.map_err(WebError::page)?;
    let row = client
        .query_opt("SELECT last_position FROM alerts WHERE alert_id = $1", &[&id])
        .await
        .map_err(|e| WebError::page(InfraError::from(e)))?;
    Ok(row.map_or(0, |r| r.get(0)))
}

fn comment(text: &str) -> Result<String, WebError> {
    if text.len() > 2000 {
        return Err(WebError::bad_request(Format::Html, "comment", "keep it under 2,000 characters"));
    }
    Ok(text.trim().to_owned())
}

#[tracing::instrument(skip_all, fields(alert = %id))]
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<AckForm>,
) -> Result<Response, WebError> {
    let by = viewer.check_form(&headers, &form.csrf, Role::Operator)?.user.clone();
    let id = parse_id(&id, Format::Html)?;
    let cmd = AlertCommand::Acknowledge { by: by.clone(), comment: comment(&form.comment)?, at: state.now() };
    command(&state, id, &by, cmd).await?;
    Ok(Redirect::to(&format!("/alerts/{id}")).into_response())
}

#[tracing::instrument(skip_all, fields(alert = %id))]
pub async fn silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<SilenceForm>,
) -> Result<Response, WebError> {
    let by = viewer.check_form(&headers, &form.csrf, Role::Operator)?.user.clone();
    let id = parse_id(&id, Format::Html)?;
    let length = humantime::parse_duration(form.for_.trim())
        .ok()
        .filter(|d| *d >= Duration::from_secs(60) && *d <= Duration::from_secs(30 * 86_400))
        .ok_or_else(|| {
            WebError::bad_request(
                Format::Html,
                "for",
                format!("{:?} is not a duration from 1m to 30d, such as 2h", form.for_),
            )
        })?;
    let now = state.now();
    let until = now + time::Duration::try_from(length).unwrap_or(time::Duration::HOUR);
    let cmd = AlertCommand::Silence { by: by.clone(), comment: comment(&form.comment)?, until, at: now };
    command(&state, id, &by, cmd).await?;
    Ok(Redirect::to(&format!("/alerts/{id}")).into_response())
}

// ----------------------------------------------------------------------------------- rules

/// The rules in force: the last set recorded in the log.
async fn rules_in_force(state: &AppState) -> anyhow::Result<sitrep_domain::alert::RuleSet> {
    let client = state.pool.get().await?;
    Ok(store::recorded_rules(&**client).await?.unwrap_or_default())
}

/// `/alerts/rules`: the rules, dependencies and routes in force, read-only.
#[derive(Debug, Serialize)]
pub struct RulesPage {
    pub layout: Layout,
    pub rules: Vec<RuleRow>,
    pub dependencies: Vec<(String, String)>,
    pub routes: Vec<RouteRow>,
    pub receivers: Vec<ReceiverRow>,
}

/// A receiver as the rules page shows it: where its endpoint and secrets come from, never
/// what they are.
#[derive(Debug, Serialize)]
pub struct ReceiverRow {
    pub name: String,
    pub kind: &'static str,
    pub endpoint: String,
    pub secret: String,
    /// What the receiver would get for a sample alert (a critical failure of derecho fs/glade),
    /// with its secrets left out: to check a message's shape before it is needed.
    pub preview: String,
}

impl ReceiverRow {
    pub fn of(r: &sitrep_domain::alert::receivers::Receiver) -> Self {
        use sitrep_domain::alert::receivers::Secret;
        ReceiverRow {
            name: r.name.clone(),
            kind: r.kind.as_str(),
            endpoint: match (&r.url, &r.smtp) {
                (_, Some(smtp)) => format!(
                    "smtp://{}:{} ({}) from {} to {}",
                    smtp.host,
                    smtp.port,
                    format!("{:?}", smtp.tls).to_ascii_lowercase(),
                    smtp.from,
                    smtp.to.join(", ")
                ),
                (Some(Secret::Inline(url)), _) => masked_url(url),
                (Some(other), _) => other.describe(),
                (None, _) => format!("{} (the service's own)", r.default_url().unwrap_or_default()),
            },
            secret: r.token.as_ref().map(|t| t.describe()).unwrap_or_default(),
            preview: preview(r),
        }
    }
}

/// The sample alert as `r` would get it, secrets shown as `(hidden)`.
fn preview(r: &sitrep_domain::alert::receivers::Receiver) -> String {
    use sitrep_domain::alert::receivers::{self, Body, Resolved};
    let sample = receivers::sample(&r.name, time::macros::datetime!(2026-01-01 00:00 UTC));
    if r.smtp.is_some() {
        let mail = receivers::email(&sample);
        return format!("Subject: {}\n\n{}", mail.subject, mail.text);
    }
    let hidden = Resolved { url: String::new(), token: Some("(hidden)".into()) };
    match receivers::request(r, &hidden, &sample) {
        None => String::new(),
        Some(req) => {
            if let Some(t) = &r.template {
                let receivers::TemplateSource::Inline(source) = &t.source else { return String::new() };
                return match crate::view::templates::render_body(source, &t.content_type, &sample) {
                    Ok(body) => format!("POST Content-Type: {}\n\n{body}", t.content_type),
                    Err(e) => format!("The template does not render: {e}"),
                };
            }
            let headers: String = req
                .headers
                .iter()
                .filter(|(name, _)| !matches!(*name, "Authorization" | "X-Gotify-Key"))
                .map(|(name, value)| format!("{name}: {value}\n"))
                .collect();
            let body = match req.body {
                Body::Json(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
                Body::Text(t) => t,
            };
            format!("{} {headers}\n{body}", req.method).replace(" \n\n", "\n\n")
        }
    }
}

fn grouping(r: &sitrep_domain::alert::rules::Route) -> String {
    let d = |secs: u64| humantime::format_duration(std::time::Duration::from_secs(secs)).to_string();
    if r.group_wait_secs == 0
        && r.group_interval_secs == 0
        && r.group_by.is_empty()
        && r.rules.is_empty()
        && r.labels.is_empty()
    {
        return if r.continue_ {
            "each transition at once; then the next routes too"
        } else {
            "each transition at once"
        }
        .into();
    }
    let mut words = vec![
        if r.group_by.is_empty() { "one group".to_owned() } else { format!("by {}", r.group_by.join(", ")) },
        format!("wait {}, then every {}", d(r.group_wait_secs), d(r.group_interval_secs)),
    ];
    if let Some(repeat) = r.repeat_interval_secs {
        words.push(format!("reminds every {}", d(repeat)));
    }
    if let (Some(after), Some(to)) = (r.escalate_after_secs, &r.escalate_to) {
        words.push(format!("escalates to {to} after {}", d(after)));
    }
    if !r.rules.is_empty() {
        words.push(format!("rules {}", r.rules.join(", ")));
    }
    if !r.labels.is_empty() {
        let each: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={}", v.as_str())).collect();
        words.push(format!("labels {}", each.join(", ")));
    }
    if r.continue_ {
        words.push("then the next routes too".into());
    }
    words.join("; ")
}

/// A URL with only its scheme and host: the path and query of a webhook often hold its token.
pub fn masked_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    if rest.len() > host.len() {
        format!("{scheme}://{host}/… (the rest hidden)")
    } else {
        format!("{scheme}://{host}")
    }
}

#[derive(Debug, Serialize)]
pub struct RuleRow {
    pub name: String,
    pub kind: &'static str,
    pub matches: String,
    pub severity: &'static str,
    pub condition: String,
    pub summary: String,
}

#[derive(Debug, Serialize)]
pub struct RouteRow {
    pub name: String,
    /// The route's own webhook URL, masked; empty when it names receivers.
    pub url: String,
    pub receivers: String,
    /// How it groups, waits, reminds and escalates, in words.
    pub grouping: String,
    pub severities: String,
    pub matches: String,
}

impl RulesPage {
    pub fn of(
        set: &sitrep_domain::alert::RuleSet,
        receivers: &[sitrep_domain::alert::receivers::Receiver],
        now: OffsetDateTime,
    ) -> Self {
        RulesPage {
            layout: Layout::still("Alert rules", "alerts", now),
            rules: set
                .rules
                .iter()
                .map(|r| RuleRow {
                    name: r.name.clone(),
                    kind: r.condition.kind(),
                    matches: r.matches.as_str().to_owned(),
                    severity: r.severity.as_str(),
                    condition: r.condition.describe(),
                    summary: r.summary.clone(),
                })
                .collect(),
            dependencies: set.dependencies.iter().map(|d| (d.matches.as_str().to_owned(), d.parent.clone())).collect(),
            routes: set
                .routes
                .iter()
                .map(|r| RouteRow {
                    name: r.name.clone(),
                    url: if r.url.is_empty() { String::new() } else { masked_url(&r.url) },
                    receivers: r.receivers.join(", "),
                    grouping: grouping(r),
                    severities: r.severities.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                    matches: r.matches.as_str().to_owned(),
                })
                .collect(),
            receivers: receivers.iter().map(ReceiverRow::of).collect(),
        }
    }
}

pub async fn rules_page(State(state): State<AppState>) -> Result<Html<String>, WebError> {
    let set = rules_in_force(&state).await.map_err(WebError::page)?;
    render("alert_rules", &RulesPage::of(&set, &state.receivers, state.now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::home::tests::NOW;
    use crate::view::templates;

    fn alert_row(state: &str, impacted_by: Option<&str>) -> AlertRow {
        let (state_label, state_icon) = state_word(state);
        AlertRow {
            id: Uuid::nil(),
            url: format!("/alerts/{}", Uuid::nil()),
            rule: "fs-failed".into(),
            kind: "status".into(),
            severity: "critical",
            state: state.into(),
            state_label,
            state_icon,
            system: "derecho".into(),
            component: "fs/glade".into(),
            component_url: "/systems/derecho/components/fs/glade".into(),
            summary: "derecho fs/glade is <failed>".into(),
            impacted_by: impacted_by.map(str::to_owned),
            impacted_reason: impacted_by.map(impacted_reason),
            maintenance: None,
            maintenance_url: None,
            maintenance_ended: None,
            in_maintenance: false,
            since: view::age(NOW - time::Duration::minutes(5), NOW, false),
            raised: view::age(NOW - time::Duration::minutes(3), NOW, false),
            acknowledged_by: (state == "acknowledged").then(|| "ana".into()),
            silenced_until: None,
            resolved: (state == "resolved").then(|| view::age(NOW, NOW, false)),
            resolved_reason: (state == "resolved").then(|| "status is now ok".into()),
        }
    }

    fn list_page(alerts: Vec<AlertRow>, rule_count: usize) -> AlertsPage {
        AlertsPage {
            layout: Layout::new("Alerts", "alerts", NOW),
            tabs: STATES
                .iter()
                .map(|s| Tab { name: s, url: format!("/alerts?state={s}"), count: 1, current: *s == "open" })
                .collect(),
            state: "open".into(),
            severity: String::new(),
            system: String::new(),
            severities: vec!["critical", "warning", "info"],
            limited: false,
            alerts,
            rule_count,
        }
    }

    #[test]
    fn the_alert_list_renders_with_alerts_and_empty() {
        let html = templates::render(
            "alerts",
            &list_page(vec![alert_row("firing", None), alert_row("acknowledged", Some("derecho:fs/home"))], 3),
        )
        .unwrap();
        for needle in ["CRITICAL", "FIRING", "ACKNOWLEDGED", "by ana", "impacted by derecho:fs/home", "&lt;failed&gt;"]
        {
            assert!(html.contains(needle), "lacks {needle}");
        }
        let empty = templates::render("alerts", &list_page(vec![], 0)).unwrap();
        assert!(empty.contains("No open alerts") && empty.contains("No alert rules are in force"));
        let watching = templates::render("alerts", &list_page(vec![], 2)).unwrap();
        assert!(watching.contains("The rules are watching"));
    }

    #[test]
    fn an_alert_page_renders_open_with_actions_and_resolved_without() {
        let transition = |position, transition: &str, by: Option<&str>| TransitionRow {
            position,
            transition: transition.into(),
            state_label: "FIRING",
            state_icon: "●",
            at: view::age(NOW, NOW, false),
            by: by.map(str::to_owned),
            comment: by.map(|_| "on it".into()),
            cause: if by.is_some() { position } else { 7 },
            cause_url: format!("/api/v1/events/{position}"),
            notify: true,
        };
        let operator = crate::guard::auth::Chrome {
            user: Some("ana".into()),
            role: Some("operator"),
            can_act: true,
            csrf: "token-123".into(),
            outages: vec![],
        };
        let page = |state: &str, deliveries: Vec<DeliveryRow>| AlertPage {
            layout: Layout { chrome: operator.clone(), ..Layout::new("Alert", "alerts", NOW) },
            open: state != "resolved",
            silenced: false,
            acknowledged: state == "acknowledged",
            alert: alert_row(state, None),
            transitions: vec![transition(9, "firing", None), transition(12, "acknowledged", Some("ana"))],
            deliveries,
            attempts: vec![],
            escalated: None,
            silence_choices: ["30m", "1h", "2h", "4h", "8h", "24h"],
        };
        let failed = DeliveryRow {
            route: "ops".into(),
            position: 9,
            attempts: 5,
            delivered: false,
            last_error: Some("HTTP 502 Bad Gateway".into()),
            at: view::age(NOW, NOW, false),
        };
        let html = templates::render("alert", &page("firing", vec![failed])).unwrap();
        for needle in [
            "/alerts/00000000-0000-0000-0000-000000000000/acknowledge",
            "/silence",
            "event 7",
            "HTTP 502",
            "FAILED",
            "value=\"token-123\"",
        ] {
            assert!(html.contains(needle), "lacks {needle}");
        }
        let signed_out = templates::render(
            "alert",
            &AlertPage { layout: Layout::new("Alert", "alerts", NOW), ..page("firing", vec![]) },
        )
        .unwrap();
        assert!(
            !signed_out.contains("/acknowledge\"") && signed_out.contains("Sign in</a> to acknowledge"),
            "{signed_out}"
        );
        let resolved = templates::render("alert", &page("resolved", vec![])).unwrap();
        assert!(!resolved.contains("/acknowledge") && resolved.contains("status is now ok"));
        assert!(resolved.contains("None yet: no route takes this alert"));
        // Attempts, once there are any, are listed one by one; an escalation is named on top.
        let attempt = |target: &str, reason: &str, n: i32, error: Option<&str>| AttemptRow {
            target: target.into(),
            route: "page".into(),
            reason: reason.into(),
            attempt: n,
            ok: error.is_none(),
            error: error.map(str::to_owned),
            position: 40,
            at: view::age(NOW, NOW, false),
        };
        let escalation = attempt("oncall-lead", "escalation", 1, None);
        let with_attempts = AlertPage {
            attempts: vec![
                attempt("oncall", "changes", 1, Some("HTTP 503 Service Unavailable")),
                attempt("oncall", "changes", 2, None),
                escalation.clone(),
            ],
            escalated: Some(escalation),
            ..page("firing", vec![])
        };
        let html = templates::render("alert", &with_attempts).unwrap();
        for needle in [
            "HTTP 503 Service Unavailable",
            "DELIVERED",
            "<dt>Escalated</dt><dd>to oncall-lead",
            "<strong>escalation</strong>",
            "href=\"/events/40\"",
        ] {
            assert!(html.contains(needle), "lacks {needle}");
        }
    }

    #[test]
    fn the_rules_page_renders_with_rules_and_empty() {
        let set = sitrep_domain::alert::RuleSet::parse_toml(include_str!("../../../alerts.toml"), 600).unwrap();
        let receivers = sitrep_domain::alert::receivers::parse(
            "[[receiver]]\nname='ops-chat'\nkind='slack'\nurl='https://hooks.slack.com/services/T0/B0/SECRET'\n\
             [[receiver]]\nname='oncall'\nkind='pagerduty'\nrouting_key_env='PD_KEY'",
        )
        .unwrap();
        let page = |set: &sitrep_domain::alert::RuleSet| RulesPage::of(set, &receivers, NOW);
        let html = templates::render("alert_rules", &page(&set)).unwrap();
        for needle in [
            "filesystem-full",
            "used_pct &gt; 90 for 10m; clears at ≤ 85",
            "derecho:fs/glade",
            "ops-chat",
            "https://hooks.slack.com/… (the rest hidden)",
            "from the environment variable PD_KEY",
            "https://events.pagerduty.com/v2/enqueue (the service&#x27;s own)",
            "What <strong>oncall</strong> gets for a sample alert",
            "&quot;event_action&quot;: &quot;trigger&quot;",
            "&quot;routing_key&quot;: &quot;(hidden)&quot;",
        ] {
            assert!(html.contains(needle), "lacks {needle}");
        }
        assert!(!html.contains("SECRET"), "a webhook's token is shown");
        let empty = templates::render("alert_rules", &RulesPage::of(&Default::default(), &[], NOW)).unwrap();
        assert!(empty.contains("No alert rules are in force"));
    }
}
