//! The alerts read model as the other pages show it: the open alerts of system tiles and
//! component rows, and the words and ranks of states and severities.

use serde::Serialize;
use sitrep_domain::alert::Severity;
use std::collections::HashMap;
use uuid::Uuid;

/// An alert state's word and glyph.
pub fn state_word(state: &str) -> (&'static str, &'static str) {
    match state {
        "firing" => ("FIRING", "●"),
        "acknowledged" => ("ACKNOWLEDGED", "✔"),
        "silenced" => ("SILENCED", "◌"),
        "resolved" => ("RESOLVED", "○"),
        _ => ("UNKNOWN", "?"),
    }
}

/// Sorts critical first.
pub fn severity_rank(severity: &str) -> u8 {
    match severity {
        "critical" => 0,
        "warning" => 1,
        _ => 2,
    }
}

/// A stored severity, as one of the known ones.
pub fn severity_str(raw: &str) -> &'static str {
    Severity::parse(raw).map(Severity::as_str).unwrap_or("warning")
}

/// A firing (not resolved) alert, as system tiles and component rows name it.
#[derive(Debug, Clone, Serialize)]
pub struct Firing {
    pub url: String,
    pub severity: &'static str,
    pub state_label: &'static str,
    pub rule: String,
    pub component: String,
    pub summary: String,
    pub impacted: bool,
}

/// The columns [`firing`] reads, first in a query's select list.
const FIRING_COLUMNS: &str = "alert_id, system, component, severity, state, rule, summary, impacted_by IS NOT NULL";

/// An open alert from a row that starts with [`FIRING_COLUMNS`].
fn firing(r: &tokio_postgres::Row) -> Firing {
    let id: Uuid = r.get(0);
    Firing {
        url: format!("/alerts/{id}"),
        severity: severity_str(r.get(3)),
        state_label: state_word(r.get(4)).0,
        rule: r.get(5),
        component: r.get(2),
        summary: r.get(6),
        impacted: r.get(7),
    }
}

/// A system's open alerts by `(system, component)`.
pub async fn open_by_component(
    pool: &deadpool_postgres::Pool,
    system: &str,
) -> anyhow::Result<HashMap<(String, String), Vec<Firing>>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {FIRING_COLUMNS} FROM alerts
                 WHERE state <> 'resolved' AND system = $1
                 ORDER BY array_position(ARRAY['critical','warning','info'], severity), raised_at"
            ),
            &[&system],
        )
        .await?;
    let mut out: HashMap<(String, String), Vec<Firing>> = HashMap::new();
    for r in &rows {
        out.entry((r.get(1), r.get(2))).or_default().push(firing(r));
    }
    Ok(out)
}

/// Each system's `most` worst open alerts (those an outage explains last, then by severity,
/// oldest first), by `(system, component)`, and how many each system has open in all: what the
/// home page's tiles show, without reading every open alert (thousands, when many components
/// flap).
pub async fn worst_open_by_system(
    pool: &deadpool_postgres::Pool,
    most: i64,
) -> anyhow::Result<(HashMap<(String, String), Vec<Firing>>, HashMap<String, usize>)> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT * FROM (
                    SELECT {FIRING_COLUMNS},
                           row_number() OVER (PARTITION BY system ORDER BY impacted_by IS NOT NULL,
                               array_position(ARRAY['critical','warning','info'], severity), raised_at, alert_id) AS n,
                           count(*) OVER (PARTITION BY system) AS open
                    FROM alerts WHERE state <> 'resolved') a
                 WHERE n <= $1 ORDER BY system, n"
            ),
            &[&most],
        )
        .await?;
    let mut worst: HashMap<(String, String), Vec<Firing>> = HashMap::new();
    let mut open: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        worst.entry((r.get(1), r.get(2))).or_default().push(firing(r));
        open.insert(r.get(1), usize::try_from(r.get::<_, i64>(9)).unwrap_or(0));
    }
    Ok((worst, open))
}
