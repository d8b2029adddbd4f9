//! Reads of the latest-status read model. (Reads of the past are in `history`.)

use anyhow::Context;
use deadpool_postgres::Pool;
use serde_json::{Map, Value};
use sitrep_domain::Status;
use time::OffsetDateTime;

/// One row of `latest_status`.
#[derive(Debug, Clone)]
pub struct ComponentState {
    pub system: String,
    pub component: String,
    pub status: Status,
    pub message: Option<String>,
    pub metrics: Map<String, Value>,
    pub labels: Map<String, Value>,
    pub ttl_seconds: Option<u32>,
    pub observed_at: OffsetDateTime,
    pub received_at: OffsetDateTime,
    pub status_since: OffsetDateTime,
}

/// The columns [`from_row`] reads, in order; other reads alias theirs to match.
pub(crate) const COLUMNS: &str =
    "system, component, status, message, metrics, labels, ttl_seconds, observed_at, received_at, status_since";

pub(crate) fn from_row(r: &tokio_postgres::Row) -> anyhow::Result<ComponentState> {
    let status: String = r.get(2);
    let object = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    Ok(ComponentState {
        system: r.get(0),
        component: r.get(1),
        status: Status::parse(&status).map_err(anyhow::Error::msg).context("latest_status.status")?,
        message: r.get(3),
        metrics: object(r.get(4)),
        labels: object(r.get(5)),
        ttl_seconds: r.get::<_, Option<i32>>(6).map(|t| t as u32),
        observed_at: r.get(7),
        received_at: r.get(8),
        status_since: r.get(9),
    })
}

/// Every component of every system, ordered by system and component.
pub async fn all_components(pool: &Pool) -> anyhow::Result<Vec<ComponentState>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(&format!("SELECT {COLUMNS} FROM latest_status ORDER BY system, component"), &[])
        .await
        .context("reading latest_status")?;
    rows.iter().map(from_row).collect()
}

/// Every component of one system (empty if the system has never reported).
pub async fn system_components(pool: &Pool, system: &str) -> anyhow::Result<Vec<ComponentState>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(&format!("SELECT {COLUMNS} FROM latest_status WHERE system = $1 ORDER BY component"), &[&system])
        .await
        .context("reading latest_status")?;
    rows.iter().map(from_row).collect()
}

/// One component's latest state, if it has ever reported.
pub async fn component(pool: &Pool, system: &str, component: &str) -> anyhow::Result<Option<ComponentState>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM latest_status WHERE system = $1 AND component = $2"),
            &[&system, &component],
        )
        .await
        .context("reading latest_status")?;
    row.as_ref().map(from_row).transpose()
}
