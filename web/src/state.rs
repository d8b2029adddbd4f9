//! State shared by every handler.

use deadpool_postgres::Pool;
use sitrep_infra::auth::User;
use sitrep_projections::Retention;
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// What live pages depend on; when it changes, they have changed.
/// Latest-status, alerts and outages checkpoints, open alerts, windows on now.
pub type LiveVersion = (i64, i64, i64, i64, i64);

/// The shared watcher's receiver, made on first use.
pub type Versions = Arc<tokio::sync::OnceCell<tokio::sync::watch::Receiver<Option<LiveVersion>>>>;

/// Where "now" comes from, for ages and staleness; tests fix it.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    /// Freshness window for components whose reports carry no `ttl_seconds`.
    pub default_ttl_seconds: u32,
    /// The subject prefix collectors publish to, shown in empty states.
    pub subject_prefix: String,
    pub clock: Clock,
    /// How long raw history and hourly rollups are kept (where the past is read from).
    pub kept: Retention,
    /// JetStream, for `/ops` and re-submitting quarantined messages (absent in page tests).
    pub bus: Option<Bus>,
    /// Cancelled when the server stops, so long-lived responses (live pages) end and let the
    /// graceful shutdown finish.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// What live pages depend on, watched by one task for all of them (started by the first).
    pub live_versions: Versions,
    /// Who may sign in and how sessions behave.
    pub auth: AuthConfig,
    /// Rendered `/` and system pages, served again while nothing they show has changed.
    pub pages: crate::view::pagecache::PageCache,
    /// Signs the API key name HTTP ingest attaches to what it publishes.
    pub provenance: sitrep_infra::provenance::Provenance,
    /// Per-client limits on signing in and HTTP ingest, and on password hashes at once.
    pub limits: crate::guard::limits::Limits,
    /// The `[[receiver]]`s of this process's `alerts.toml`, for `/alerts/rules` (secrets unread).
    pub receivers: Arc<Vec<sitrep_domain::alert::receivers::Receiver>>,
    /// The text of this process's `alerts.toml`, to start a backtest from (empty without one).
    pub rules_text: Arc<String>,
    /// `status.toml`: the status page's groups and the SLA report's policy.
    pub public: Arc<crate::read::public::PublicConfig>,
}

/// Signing in: users from the users file, whether viewing needs it, how long it lasts.
#[derive(Clone)]
pub struct AuthConfig {
    /// Users from `SITREP_USERS_FILE` (others are in the `users` table).
    pub users_file: Arc<HashMap<String, User>>,
    pub view_requires_sign_in: bool,
    pub session_length: time::Duration,
    pub secure_cookies: bool,
    /// What `/metrics` requires as `Authorization: Bearer …`, if anything.
    pub metrics_token: Option<Arc<str>>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            users_file: Arc::default(),
            view_requires_sign_in: false,
            session_length: time::Duration::hours(12),
            secure_cookies: false,
            metrics_token: None,
        }
    }
}

/// How long `/readyz` and `/ops` wait for JetStream to say how large ingest's backlog is.
pub const BACKLOG_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

/// JetStream and the names sitrep uses in it.
#[derive(Clone)]
pub struct Bus {
    pub js: async_nats::jetstream::Context,
    pub reports_stream: String,
    pub ingest_consumer: String,
    pub alerts_stream: String,
    /// What subjects start with: HTTP ingest publishes on `<prefix>.report.<system>` and friends.
    pub subject_prefix: String,
}

impl Bus {
    /// Ingest's backlog against the report stream's limits, now. Gives up after
    /// [`BACKLOG_TIMEOUT`], so a slow NATS never holds up `/readyz` or `/ops`.
    pub async fn backlog(&self, now: OffsetDateTime) -> anyhow::Result<sitrep_infra::bus::Backlog> {
        let names = sitrep_infra::bus::StreamNames {
            reports_stream: &self.reports_stream,
            ingest_consumer: &self.ingest_consumer,
        };
        let reading = tokio::time::timeout(BACKLOG_TIMEOUT, sitrep_infra::bus::read_report_stream(&self.js, names))
            .await
            .map_err(|_| anyhow::anyhow!("JetStream did not answer within {BACKLOG_TIMEOUT:?}"))??;
        Ok(reading.backlog(now))
    }
}

impl AppState {
    pub fn new(pool: Pool, default_ttl_seconds: u32, subject_prefix: String) -> Self {
        Self {
            pool,
            default_ttl_seconds,
            subject_prefix,
            clock: Arc::new(OffsetDateTime::now_utc),
            kept: Retention::default(),
            bus: None,
            shutdown: tokio_util::sync::CancellationToken::new(),
            live_versions: Versions::default(),
            auth: AuthConfig::default(),
            pages: Default::default(),
            provenance: sitrep_infra::provenance::Provenance::ephemeral(),
            limits: crate::guard::limits::Limits::default(),
            receivers: Arc::default(),
            public: Arc::default(),
            rules_text: Arc::default(),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }
}
