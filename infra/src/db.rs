//! The Postgres pool, creating the database on first use, and migrations.
//!
//! Migrations are the numbered SQL files in `infra/migrations`, embedded in the binary and never
//! edited once landed. They run at start-up of every service (`sitrep migrate` runs them alone)
//! under an advisory lock, so processes starting together apply them once.

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{Client, Config, NoTls};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Lock key for migrations (any constant shared by all sitrep processes).
const MIGRATION_LOCK: i64 = 0x5172_6570_0001;

/// Parses a Postgres URL.
pub fn parse_url(url: &str) -> anyhow::Result<Config> {
    url.parse::<Config>().context("SITREP_DATABASE_URL is not a valid Postgres URL")
}

/// Connects one client outside the pool (migrations, LISTEN). The connection task ends when the
/// client is dropped.
pub async fn connect(config: &Config) -> anyhow::Result<Client> {
    let (client, connection) = config.connect(NoTls).await.with_context(|| {
        format!(
            "connecting to Postgres at {}:{} (database {:?})",
            config.get_hosts().first().map(host_name).unwrap_or_default(),
            config.get_ports().first().copied().unwrap_or(5432),
            config.get_dbname().unwrap_or("")
        )
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

fn host_name(h: &tokio_postgres::config::Host) -> String {
    match h {
        tokio_postgres::config::Host::Tcp(s) => s.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    }
}

/// Creates the database named in `config` if it does not exist, connecting to the `postgres`
/// maintenance database to do it.
pub async fn ensure_database(config: &Config) -> anyhow::Result<()> {
    let name = config.get_dbname().context("SITREP_DATABASE_URL names no database")?.to_owned();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let client = connect(&admin).await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .context("looking for the database")?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match client.batch_execute(&format!("CREATE DATABASE {quoted}")).await {
            Ok(()) => tracing::info!(database = %name, "created database"),
            // Another process created it between our look and our create.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(e).with_context(|| format!("creating database {name}")),
        }
    }
    Ok(())
}

/// Creates the database if needed and applies every pending migration.
pub async fn migrate(config: &Config) -> anyhow::Result<usize> {
    ensure_database(config).await?;
    let mut client = connect(config).await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.context("taking the migration lock")?;
    let report = embedded::migrations::runner().run_async(&mut client).await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await.ok();
    let report = report.context("applying migrations")?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m, "applied migration");
    }
    Ok(report.applied_migrations().len())
}

/// How long a pooled connection is used before it is closed and replaced. A connection keeps
/// its buffers as large as the largest statement or result it has carried (a projection step of
/// thousands of rows, say), so over time every pooled connection would hold the largest; closing
/// connections after a while gives that memory back.
pub const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(20);

/// Builds the connection pool. Connections are opened lazily; call [`check`] to fail early.
/// A connection older than [`CONNECTION_LIFETIME`] is closed when it comes back to be reused.
pub fn pool(config: &Config, max_size: usize) -> anyhow::Result<Pool> {
    pool_with_lifetime(config, max_size, CONNECTION_LIFETIME)
}

/// [`pool`], with connections replaced after `lifetime`.
pub fn pool_with_lifetime(config: &Config, max_size: usize, lifetime: std::time::Duration) -> anyhow::Result<Pool> {
    let manager =
        Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(max_size)
        .post_recycle(deadpool_postgres::Hook::sync_fn(move |_, metrics| {
            if metrics.age() < lifetime {
                Ok(())
            } else {
                Err(deadpool_postgres::HookError::message("replaced after its lifetime"))
            }
        }))
        .build()
        .context("building the Postgres pool")
}

/// Checks that the pool can reach the database.
pub async fn check(pool: &Pool) -> anyhow::Result<()> {
    let client = pool.get().await.context("connecting to Postgres")?;
    client.simple_query("SELECT 1").await.context("querying Postgres")?;
    Ok(())
}

/// Whether the server runs autovacuum. sitrep's read models are upserted at every step, and
/// without vacuum their tables and indexes keep every row version that leaves.
pub async fn autovacuum(pool: &Pool) -> anyhow::Result<bool> {
    let client = pool.get().await.context("connecting to Postgres")?;
    let row =
        client.query_one("SELECT current_setting('autovacuum')::bool", &[]).await.context("reading autovacuum")?;
    Ok(row.get(0))
}

/// The URL of database `name` on the same server, as the same user, as `url` (for tests and
/// benchmarks that each work in a database of their own).
pub fn url_of_database(url: &str, name: &str) -> anyhow::Result<String> {
    let config = parse_url(url)?;
    let user = config.get_user().unwrap_or("postgres").to_owned();
    let (host, port) = match (config.get_hosts().first(), config.get_ports().first()) {
        (Some(tokio_postgres::config::Host::Tcp(h)), Some(p)) => (h.clone(), *p),
        _ => ("127.0.0.1".into(), 5432),
    };
    Ok(format!("postgres://{user}@{host}:{port}/{name}"))
}

/// Drops database `name` on the server of `url` (closing its connections).
pub async fn drop_database(url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = parse_url(url)?;
    admin.dbname("postgres");
    let client = connect(&admin).await?;
    client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
    Ok(())
}
