//! Outages and maintenance windows as the read model has them: those in force at an instant
//! (now, or as they were), and the banners outages put above every page.

use crate::state::AppState;
use crate::view::{self, Age};
use serde::Serialize;
use sitrep_domain::outage::OutageSeverity;
use time::OffsetDateTime;
use tokio_postgres::Row;

// ------------------------------------------------------------------------------------- reading

/// An outage as the read model has it.
#[derive(Debug, Clone, Serialize)]
pub struct OutageRow {
    pub system: String,
    pub id: String,
    pub severity: String,
    pub title: String,
    pub description: Option<String>,
    pub components: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub estimated_resolution: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
}

pub(crate) const OUTAGE_COLUMNS: &str =
    "system, id, severity, title, description, components, started_at, estimated_resolution, resolved_at";

impl OutageRow {
    pub(crate) fn from_row(r: &Row) -> Self {
        Self {
            system: r.get(0),
            id: r.get(1),
            severity: r.get(2),
            title: r.get(3),
            description: r.get(4),
            components: r.get(5),
            started_at: r.get(6),
            estimated_resolution: r.get(7),
            resolved_at: r.get(8),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("/systems/{}/outages/{}", self.system, self.id)
    }

    pub(crate) fn rank(&self) -> OutageSeverity {
        OutageSeverity::parse(&self.severity).unwrap_or(OutageSeverity::Minor)
    }
}

/// A maintenance window or reservation as the read model has it.
#[derive(Debug, Clone, Serialize)]
pub struct WindowRow {
    pub system: String,
    pub id: String,
    pub kind: String,
    pub title: String,
    pub description: Option<String>,
    pub components: Vec<String>,
    pub nodes: Option<i32>,
    pub partition: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub cancelled_at: Option<OffsetDateTime>,
    pub message: Option<String>,
}

pub(crate) const WINDOW_COLUMNS: &str =
    "system, id, kind, title, description, components, nodes, partition, starts_at, ends_at, cancelled_at, message";

impl WindowRow {
    pub(crate) fn from_row(r: &Row) -> Self {
        Self {
            system: r.get(0),
            id: r.get(1),
            kind: r.get(2),
            title: r.get(3),
            description: r.get(4),
            components: r.get(5),
            nodes: r.get(6),
            partition: r.get(7),
            starts_at: r.get(8),
            ends_at: r.get(9),
            cancelled_at: r.get(10),
            message: r.get(11),
        }
    }

    /// Whether the window is on at `at`.
    pub fn on_at(&self, at: OffsetDateTime) -> bool {
        self.starts_at <= at && at < self.ends_at && self.cancelled_at.is_none_or(|c| c > at)
    }
}

/// The outages in force at `at` and the windows not over by then (not cancelled), for one
/// system or all. What the system pages and tiles show.
#[derive(Debug, Clone, Default)]
pub struct Notices {
    pub outages: Vec<OutageRow>,
    pub windows: Vec<WindowRow>,
}

impl Notices {
    /// Now (`at` is `None`), or as they were at a past instant.
    pub async fn at(state: &AppState, at: Option<OffsetDateTime>, system: Option<&str>) -> anyhow::Result<Self> {
        let when = match at {
            Some(at) => When::Then(at),
            None => When::Now(state.now()),
        };
        let client = state.pool.get().await?;
        let windows = client
            .query(
                &format!(
                    "SELECT {WINDOW_COLUMNS} FROM maintenance_windows
                     WHERE ends_at > $1 AND (cancelled_at IS NULL OR cancelled_at > $1)
                       AND ($2::text IS NULL OR system = $2)
                     ORDER BY starts_at, system, id LIMIT 500"
                ),
                &[&when.instant(), &system],
            )
            .await?;
        Ok(Self {
            outages: outages_at(&client, when, system).await?,
            windows: windows.iter().map(WindowRow::from_row).collect(),
        })
    }

    /// The worst outage of `system` in force.
    pub fn outage_of(&self, system: &str) -> Option<&OutageRow> {
        self.outages.iter().find(|o| o.system == system)
    }

    /// Whether `component` of `system` is inside a window that is on at `at`.
    pub fn in_maintenance(&self, system: &str, component: &str, at: OffsetDateTime) -> bool {
        self.windows.iter().any(|w| w.system == system && w.on_at(at) && w.components.iter().any(|c| c == component))
    }
}

/// Now, or a past instant: a page of the past shows outages as they were then.
#[derive(Debug, Clone, Copy)]
enum When {
    Now(OffsetDateTime),
    Then(OffsetDateTime),
}

impl When {
    fn instant(self) -> OffsetDateTime {
        match self {
            When::Now(t) | When::Then(t) => t,
        }
    }
}

/// The columns of an outage that its updates change, kept with each update in `outage_updates`.
const CHANGING_COLUMNS: [&str; 4] = ["severity", "title", "components", "estimated_resolution"];

/// An outage's `column` at the instant `$1`, from its updates in log order: each update counts
/// from the latest time said so far (so one stamped earlier than the one before it counts from
/// that one's time, as out-of-order reports do), and the last that counts by `$1` and sets it
/// gives it. Before any counts (between `started_at` and the declaration), the declared one; for
/// the expected end, which a declaration may leave out, none then.
fn column_then(column: &str) -> String {
    let latest = format!(
        "(SELECT e.{column} FROM (SELECT u.{column}, u.position, max(u.at) OVER (ORDER BY u.position) AS counts_from
                                  FROM outage_updates u WHERE u.system = o.system AND u.id = o.id) e
          WHERE e.{column} IS NOT NULL AND e.counts_from <= $1 ORDER BY e.position DESC LIMIT 1)"
    );
    let declared = format!(
        "(SELECT u.{column} FROM outage_updates u WHERE u.system = o.system AND u.id = o.id AND u.kind = 'declared')"
    );
    if column == "estimated_resolution" {
        format!("coalesce({latest}, {declared})")
    } else {
        format!("coalesce({latest}, {declared}, o.{column})")
    }
}

/// [`OUTAGE_COLUMNS`], with those that updates change as they were at the instant `$1`.
fn outage_columns_then() -> String {
    let columns = OUTAGE_COLUMNS.split(", ");
    columns
        .map(|c| if CHANGING_COLUMNS.contains(&c) { column_then(c) } else { c.to_owned() })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The outages in force at `when`, for one system or all, worst first. Now, each has its
/// current severity, title, components and expected end (the outage's own page shows the same);
/// at a past instant, those it had then ([`column_then`]).
async fn outages_at(
    client: &deadpool_postgres::Client,
    when: When,
    system: Option<&str>,
) -> anyhow::Result<Vec<OutageRow>> {
    let columns = match when {
        When::Now(_) => OUTAGE_COLUMNS.to_owned(),
        When::Then(_) => outage_columns_then(),
    };
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM outages o
                 WHERE started_at <= $1 AND (resolved_at IS NULL OR resolved_at > $1)
                   AND ($2::text IS NULL OR system = $2)
                 ORDER BY started_at DESC"
            ),
            &[&when.instant(), &system],
        )
        .await?;
    let mut outages: Vec<OutageRow> = rows.iter().map(OutageRow::from_row).collect();
    outages.sort_by_key(|o| o.rank());
    Ok(outages)
}

// -------------------------------------------------------------------------------------- banner

/// An outage as the banner on every page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Banner {
    pub system: String,
    pub severity: String,
    pub label: String,
    pub title: String,
    pub url: String,
    pub since: Age,
    pub estimate: Option<String>,
}

/// Outages in force now, worst first, for the banner.
pub async fn banners(state: &AppState) -> anyhow::Result<Vec<Banner>> {
    let now = state.now();
    let client = state.pool.get().await?;
    Ok(outages_at(&client, When::Now(now), None).await?.iter().map(|o| banner(o, now)).collect())
}

fn banner(o: &OutageRow, now: OffsetDateTime) -> Banner {
    Banner {
        system: o.system.clone(),
        severity: o.severity.clone(),
        label: format!("{} OUTAGE", o.severity.to_uppercase()),
        title: o.title.clone(),
        url: o.url(),
        since: view::age(o.started_at, now, false),
        estimate: o.estimated_resolution.map(view::utc_text),
    }
}

// ------------------------------------------------------------------------------ as pages show them

/// An outage as the pages list it.
#[derive(Debug, Serialize)]
pub struct OutageView {
    pub system: String,
    pub id: String,
    pub url: String,
    pub severity: String,
    pub label: String,
    pub title: String,
    pub description: String,
    pub components: Vec<String>,
    pub started: Age,
    pub estimate: Option<Age>,
    pub resolved: Option<Age>,
}

impl OutageView {
    pub fn of(o: &OutageRow, now: OffsetDateTime) -> Self {
        Self {
            system: o.system.clone(),
            id: o.id.clone(),
            url: o.url(),
            severity: o.severity.clone(),
            label: format!("{} OUTAGE", o.severity.to_uppercase()),
            title: o.title.clone(),
            description: o.description.clone().unwrap_or_default(),
            components: o.components.clone(),
            started: view::age(o.started_at, now, false),
            estimate: o.estimated_resolution.map(|t| view::age(t, now, false)),
            resolved: o.resolved_at.map(|t| view::age(t, now, false)),
        }
    }
}

/// A maintenance window or reservation as the pages list it.
#[derive(Debug, Serialize)]
pub struct WindowView {
    pub system: String,
    pub id: String,
    pub url: String,
    pub kind: String,
    pub title: String,
    pub description: String,
    pub components: Vec<String>,
    pub nodes: Option<i32>,
    pub partition: Option<String>,
    pub starts: Age,
    pub ends: Age,
    /// On now (else coming, or over, or cancelled).
    pub on: bool,
    pub state: &'static str,
    pub message: String,
}

impl WindowView {
    pub fn of(w: &WindowRow, now: OffsetDateTime) -> Self {
        let state = if w.cancelled_at.is_some() {
            "cancelled"
        } else if w.on_at(now) {
            "on now"
        } else if w.ends_at <= now {
            "over"
        } else {
            "scheduled"
        };
        Self {
            system: w.system.clone(),
            id: w.id.clone(),
            url: format!("/systems/{}/maintenance/{}", w.system, w.id),
            kind: w.kind.clone(),
            title: w.title.clone(),
            description: w.description.clone().unwrap_or_default(),
            components: w.components.clone(),
            nodes: w.nodes,
            partition: w.partition.clone(),
            starts: view::age(w.starts_at, now, false),
            ends: view::age(w.ends_at, now, false),
            on: w.on_at(now),
            state,
            message: w.message.clone().unwrap_or_default(),
        }
    }
}
