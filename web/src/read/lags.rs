//! How far each read model and side effect is behind the event log, from the checkpoints.

/// The checkpoints that make the dashboard right: the read models and the alert evaluator.
/// (The alert publisher and webhooks are side effects; a dead webhook receiver must not make
/// the dashboard unready.)
pub const READ_MODELS: [&str; 5] = ["latest_status", "history", "alerts", "outages", "alert_evaluator"];

/// How far behind (in seconds of the oldest unapplied event) a read model may be for `/readyz`.
pub const READY_LAG_SECONDS: f64 = 10.0;

/// One read model's distance behind the log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Lag {
    pub projection: String,
    pub position: i64,
    pub events: i64,
    pub seconds: f64,
}

/// Every checkpoint's lag behind the head of the log, from the database.
pub async fn lags(pool: &deadpool_postgres::Pool) -> anyhow::Result<Vec<Lag>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT c.name, c.position, h.head - c.position,
                    coalesce(extract(epoch FROM now() - (SELECT recorded_at FROM events e WHERE e.position > c.position
                                                          ORDER BY e.position LIMIT 1))::float8, 0)
             FROM projection_checkpoints c, (SELECT coalesce(max(position), 0) AS head FROM events) h
             ORDER BY c.name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Lag {
            projection: r.get(0),
            position: r.get(1),
            events: r.get::<_, i64>(2).max(0),
            seconds: r.get::<_, f64>(3).max(0.0),
        })
        .collect())
}
