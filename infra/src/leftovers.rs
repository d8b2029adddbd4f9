//! What tests and benchmarks that were stopped before their cleanup left behind: databases and
//! JetStream streams named with the second they started, removed once they are over an hour old
//! (younger ones may belong to a run going on now).

use crate::{bus, db, Settings};
use async_nats::jetstream;

/// How old a leftover must be before it is removed.
const MIN_AGE_SECS: u64 = 3600;

/// Drops databases named `<db_prefix><secs>[_…]` and deletes streams named
/// `<stream_prefix><secs>[_…]_REPORTS` or `…_ALERTS` that started over an hour ago. Best effort:
/// what cannot be reached or removed is left.
pub async fn remove(settings: &Settings, db_prefix: &str, stream_prefix: &str) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let too_old =
        |id: &str| id.split('_').next().and_then(|s| s.parse::<u64>().ok()).is_some_and(|t| t + MIN_AGE_SECS < now);
    if let Ok(mut admin) = db::parse_url(settings.database_url.expose()) {
        admin.dbname("postgres");
        if let Ok(client) = db::connect(&admin).await {
            let rows = client.query("SELECT datname FROM pg_database", &[]).await.unwrap_or_default();
            for row in rows {
                let name: String = row.get(0);
                if name.strip_prefix(db_prefix).is_some_and(too_old) {
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                }
            }
        }
    }
    if let Ok(nats) = bus::connect(&settings.nats_url).await {
        use futures::StreamExt;
        let js = jetstream::new(nats);
        let names: Vec<String> = js.stream_names().filter_map(|n| async move { n.ok() }).collect().await;
        for name in names {
            let id = name
                .strip_prefix(stream_prefix)
                .and_then(|n| n.strip_suffix("_REPORTS").or_else(|| n.strip_suffix("_ALERTS")));
            if id.is_some_and(too_old) {
                let _ = js.delete_stream(&name).await;
            }
        }
    }
}
