//! What availability is computed from, read for one system and a window: its components'
//! status segments, its maintenance windows and reservations, and its declared outages. The
//! arithmetic is `sitrep_projections::sla` (pure); this is the I/O around it, shared by the
//! component page, the uptime API and the SLA report.

use crate::read::history;
use anyhow::Context;
use deadpool_postgres::Pool;
use sitrep_projections::sla::{Input, Outage, Span};
use sitrep_projections::timeline::Segment;
use std::collections::HashMap;
use time::OffsetDateTime;

/// One system's facts over a window.
#[derive(Debug, Default)]
pub struct SystemFacts {
    pub segments: HashMap<String, Vec<Segment>>,
    /// Maintenance windows and reservations: the components they name, and when they were on.
    pub maintenance: Vec<(Vec<String>, Span)>,
    /// Declared outages: the components they name (none: the whole system), their severity and
    /// when they lasted (to the window's end while still open).
    pub outages: Vec<(Vec<String>, Outage)>,
}

impl SystemFacts {
    /// The maintenance spans that name `component`.
    pub fn maintenance_of(&self, component: &str) -> Vec<Span> {
        self.maintenance.iter().filter(|(names, _)| names.iter().any(|c| c == component)).map(|(_, s)| *s).collect()
    }

    /// What `component`'s figures are computed from.
    pub fn input<'a>(&'a self, component: &str) -> Input<'a> {
        Input {
            segments: self.segments.get(component).map(Vec::as_slice).unwrap_or_default(),
            maintenance: self.maintenance_of(component),
            outages: self
                .outages
                .iter()
                .filter(|(names, _)| names.is_empty() || names.iter().any(|c| c == component))
                .map(|(_, o)| o.clone())
                .collect(),
        }
    }
}

/// The maintenance windows (and reservations) of `system` that were on during `[from, to)`,
/// each from its start to its end, or to its cancellation if it was cancelled while on.
pub async fn maintenance(
    pool: &Pool,
    system: &str,
    component: Option<&str>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> anyhow::Result<Vec<(Vec<String>, Span)>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT components, starts_at, LEAST(ends_at, COALESCE(cancelled_at, ends_at)) FROM maintenance_windows
             WHERE system = $1 AND ($2::text IS NULL OR $2 = ANY(components))
               AND starts_at < $4 AND LEAST(ends_at, COALESCE(cancelled_at, ends_at)) > GREATEST(starts_at, $3)
             ORDER BY starts_at",
            &[&system, &component, &from, &to],
        )
        .await
        .context("reading maintenance_windows")?;
    Ok(rows.iter().map(|r| (r.get(0), Span { from: r.get(1), to: r.get(2) })).collect())
}

/// The declared outages of `system` that lasted into `[from, to)`.
pub async fn outages(
    pool: &Pool,
    system: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> anyhow::Result<Vec<(Vec<String>, Outage)>> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let rows = client
        .query(
            "SELECT components, severity, started_at, COALESCE(resolved_at, $3), id FROM outages
             WHERE system = $1 AND started_at < $3 AND (resolved_at IS NULL OR resolved_at > $2)
             ORDER BY started_at",
            &[&system, &from, &to],
        )
        .await
        .context("reading outages")?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), Outage { id: r.get(4), severity: r.get(1), span: Span { from: r.get(2), to: r.get(3) } }))
        .collect())
}

/// Everything `system`'s availability over `[from, to)` is computed from.
pub async fn system_facts(
    pool: &Pool,
    system: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> anyhow::Result<SystemFacts> {
    Ok(SystemFacts {
        segments: history::by_component(history::segments(pool, system, None, from, to).await?),
        maintenance: maintenance(pool, system, None, from, to).await?,
        outages: outages(pool, system, from, to).await?,
    })
}
