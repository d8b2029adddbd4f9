//! Outages (with their timelines) and maintenance windows, as operators declared and scheduled
//! them. Whether a window is on depends on the time shown, so the read side compares; this read
//! model only records what was said.

use crate::runner::Projection;
use deadpool_postgres::Transaction;
use sitrep_domain::maintenance::{self, MaintenanceEvent};
use sitrep_domain::outage::{self, OutageEvent};
use sitrep_domain::ComponentName;
use sitrep_infra::event_store::StoredEvent;

#[derive(Clone, Copy)]
pub struct Outages;

/// Who said it: the operator for a form, else the API key it came with over HTTP, else `nats`.
fn said_by(e: &StoredEvent) -> String {
    let get = |k: &str| e.metadata.get(k).and_then(|v| v.as_str());
    match (get("by"), get("api_key")) {
        (Some(by), _) => by.to_owned(),
        (None, Some(key)) => format!("key {key}"),
        (None, None) => get("source").unwrap_or("nats").to_owned(),
    }
}

fn names(components: &[ComponentName]) -> Vec<&str> {
    components.iter().map(ComponentName::as_str).collect()
}

impl Projection for Outages {
    type Step = ();

    fn name(&self) -> &'static str {
        "outages"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["outages", "outage_updates", "maintenance_windows"]
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[outage::AGGREGATE_TYPE, maintenance::AGGREGATE_TYPE]
    }

    async fn apply(&self, tx: &Transaction<'_>, events: &[StoredEvent], _: &mut ()) -> anyhow::Result<()> {
        for e in events {
            match e.aggregate_type.as_str() {
                outage::AGGREGATE_TYPE => apply_outage(tx, e, e.payload.decode::<OutageEvent>()?).await?,
                maintenance::AGGREGATE_TYPE => apply_window(tx, e, e.payload.decode::<MaintenanceEvent>()?).await?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// What a declaration or an update set (`None`: left as it was), kept with it in
/// `outage_updates` so that pages in the past show the outage as it was then.
#[derive(Default)]
struct Set<'a> {
    severity: Option<&'a str>,
    title: Option<&'a str>,
    components: Option<Vec<&'a str>>,
    estimated_resolution: Option<time::OffsetDateTime>,
}

async fn apply_outage(tx: &Transaction<'_>, e: &StoredEvent, event: OutageEvent) -> anyhow::Result<()> {
    let by = said_by(e);
    let (system, id, at, kind, set, message) = match &event {
        OutageEvent::Declared { system, id, outage: o, at } => {
            tx.execute(
                "INSERT INTO outages (system, id, severity, title, description, components, started_at,
                                      estimated_resolution, declared_position, updated_position)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                &[
                    &system.as_str(),
                    &id.as_str(),
                    &o.severity.as_str(),
                    &o.title,
                    &o.description,
                    &names(&o.components),
                    &o.started_at,
                    &o.estimated_resolution,
                    &e.position,
                ],
            )
            .await?;
            let set = Set {
                severity: Some(o.severity.as_str()),
                title: Some(o.title.as_str()),
                components: Some(names(&o.components)),
                estimated_resolution: o.estimated_resolution,
            };
            (system, id, at, "declared", set, o.description.as_deref())
        }
        OutageEvent::Updated { system, id, change: c, at } => {
            tx.execute(
                "UPDATE outages SET severity = coalesce($3, severity), title = coalesce($4, title),
                        description = coalesce($5, description), components = coalesce($6, components),
                        estimated_resolution = coalesce($7, estimated_resolution), updated_position = $8
                 WHERE system = $1 AND id = $2",
                &[
                    &system.as_str(),
                    &id.as_str(),
                    &c.severity.map(|s| s.as_str()),
                    &c.title,
                    &c.description,
                    &c.components.as_deref().map(names),
                    &c.estimated_resolution,
                    &e.position,
                ],
            )
            .await?;
            let set = Set {
                severity: c.severity.map(|s| s.as_str()),
                title: c.title.as_deref(),
                components: c.components.as_deref().map(names),
                estimated_resolution: c.estimated_resolution,
            };
            (system, id, at, "updated", set, Some(c.message.as_str()))
        }
        OutageEvent::Resolved { system, id, message, at } => {
            tx.execute(
                "UPDATE outages SET resolved_at = $3, updated_position = $4 WHERE system = $1 AND id = $2",
                &[&system.as_str(), &id.as_str(), at, &e.position],
            )
            .await?;
            (system, id, at, "resolved", Set::default(), message.as_deref())
        }
    };
    tx.execute(
        "INSERT INTO outage_updates (position, system, id, at, kind, severity, title, components,
                                     estimated_resolution, message, by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &e.position,
            &system.as_str(),
            &id.as_str(),
            at,
            &kind,
            &set.severity,
            &set.title,
            &set.components,
            &set.estimated_resolution,
            &message,
            &by,
        ],
    )
    .await?;
    Ok(())
}

async fn apply_window(tx: &Transaction<'_>, e: &StoredEvent, event: MaintenanceEvent) -> anyhow::Result<()> {
    match event {
        MaintenanceEvent::Scheduled { system, id, window: w, .. } => {
            tx.execute(
                "INSERT INTO maintenance_windows (system, id, kind, title, description, components, nodes, partition,
                                                  starts_at, ends_at, scheduled_position, updated_position)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
                &[
                    &system.as_str(),
                    &id.as_str(),
                    &w.kind.as_str(),
                    &w.title,
                    &w.description,
                    &names(&w.components),
                    &w.nodes.map(|n| n as i32),
                    &w.partition,
                    &w.starts_at,
                    &w.ends_at,
                    &e.position,
                ],
            )
            .await?;
        }
        MaintenanceEvent::Updated { system, id, change: c, .. } => {
            tx.execute(
                "UPDATE maintenance_windows SET title = coalesce($3, title), description = coalesce($4, description),
                        components = coalesce($5, components), nodes = coalesce($6, nodes),
                        partition = coalesce($7, partition), starts_at = coalesce($8, starts_at),
                        ends_at = coalesce($9, ends_at), message = coalesce($10, message), updated_position = $11
                 WHERE system = $1 AND id = $2",
                &[
                    &system.as_str(),
                    &id.as_str(),
                    &c.title,
                    &c.description,
                    &c.components.as_deref().map(names),
                    &c.nodes.map(|n| n as i32),
                    &c.partition,
                    &c.starts_at,
                    &c.ends_at,
                    &c.message,
                    &e.position,
                ],
            )
            .await?;
        }
        MaintenanceEvent::Cancelled { system, id, message, at } => {
            tx.execute(
                "UPDATE maintenance_windows SET cancelled_at = $3, message = coalesce($4, message), updated_position = $5
                 WHERE system = $1 AND id = $2",
                &[&system.as_str(), &id.as_str(), &at, &message, &e.position],
            )
            .await?;
        }
    }
    Ok(())
}
