//! Typed settings. Every field has a default that works on a developer's machine and an
//! `SITREP_*` environment override; the command line can override both.

use clap::Args;
use std::fmt;
use std::net::SocketAddr;

/// A value that must never be printed (a URL with a password, a key).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// All of sitrep's settings.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Postgres URL. The database is created if it does not exist.
    #[arg(
        long,
        global = true,
        env = "SITREP_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/sitrep"
    )]
    pub database_url: Secret,

    /// NATS server URL (JetStream must be enabled).
    #[arg(long, global = true, env = "SITREP_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Address the web dashboard and API listen on.
    #[arg(long, global = true, env = "SITREP_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// First token(s) of every subject: reports arrive on `<prefix>.report.<system>`.
    #[arg(long, global = true, env = "SITREP_SUBJECT_PREFIX", default_value = "sitrep")]
    pub subject_prefix: String,

    /// JetStream stream that holds incoming reports.
    #[arg(long, global = true, env = "SITREP_REPORTS_STREAM", default_value = "SITREP_REPORTS")]
    pub reports_stream: String,

    /// Durable consumer name that ingest reads the report stream with.
    #[arg(long, global = true, env = "SITREP_INGEST_CONSUMER", default_value = "sitrep-ingest")]
    pub ingest_consumer: String,

    /// Most messages ingest takes in one batch (one transaction).
    #[arg(long, global = true, env = "SITREP_INGEST_BATCH", default_value_t = 1000)]
    pub ingest_batch: usize,

    /// Longest wait, in milliseconds, for a batch to fill before ingest commits what it has.
    #[arg(long, global = true, env = "SITREP_INGEST_WAIT_MS", default_value_t = 5)]
    pub ingest_wait_ms: u64,

    /// Freshness window, in seconds, for components whose reports carry no `ttl_seconds`.
    #[arg(long, global = true, env = "SITREP_DEFAULT_TTL_SECONDS", default_value_t = 600)]
    pub default_ttl_seconds: u32,

    /// Charts of windows that start within this many days show every report (read from the
    /// event log, the raw history); older windows show hourly or daily rollups. Nothing is deleted.
    #[arg(long, global = true, env = "SITREP_HISTORY_RAW_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub history_raw_days: u32,

    /// Days of hourly rollups to keep. Daily rollups are kept for ever.
    #[arg(long, global = true, env = "SITREP_HISTORY_HOURLY_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..))]
    pub history_hourly_days: u32,

    /// Alert rules file. Unset: `alerts.toml` in the working directory if it exists, else no rules.
    #[arg(long, global = true, env = "SITREP_ALERTS_FILE")]
    pub alerts_file: Option<std::path::PathBuf>,

    /// JetStream stream that alert transitions are published to, on `<prefix>.alert.<severity>.<system>`.
    #[arg(long, global = true, env = "SITREP_ALERTS_STREAM", default_value = "SITREP_ALERTS")]
    pub alerts_stream: String,

    /// Oldest message the report stream keeps, as `7d`, `36h` (`0` for no limit). The stream is a
    /// work queue: a report leaves it once ingest has stored it, so only a backlog of unstored
    /// reports ever ages. Past this age they are discarded: `/ops`, `/readyz` and the self-report
    /// warn from half of it (docs/operations.md).
    #[arg(long, global = true, env = "SITREP_REPORTS_MAX_AGE", default_value = "7d")]
    pub reports_max_age: humantime::Duration,

    /// Most megabytes (MiB) the report stream holds (`0` for no limit). When ingest's backlog
    /// reaches it, JetStream refuses new reports (publishers get an error) rather than discard
    /// unstored ones; the warnings start at half of it.
    #[arg(long, global = true, env = "SITREP_REPORTS_MAX_MB", default_value_t = 1024)]
    pub reports_max_mb: u64,

    /// How long the alert stream keeps transitions for subscribers to resume from (`0` for ever).
    #[arg(long, global = true, env = "SITREP_ALERTS_MAX_AGE", default_value = "30d")]
    pub alerts_max_age: humantime::Duration,

    /// Most megabytes (MiB) the alert stream holds (`0` for no limit); past it the oldest
    /// transitions go first.
    #[arg(long, global = true, env = "SITREP_ALERTS_MAX_MB", default_value_t = 1024)]
    pub alerts_max_mb: u64,

    /// Replicas of the report and alert streams when sitrep creates them: 1 for a single NATS
    /// server, 3 for a JetStream cluster (survives the loss of a node). Existing streams keep theirs.
    #[arg(long, global = true, env = "SITREP_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub stream_replicas: u8,

    /// Seconds between sitrep's reports on itself (system `sitrep`); 0 turns them off.
    #[arg(long, global = true, env = "SITREP_SELF_REPORT_SECONDS", default_value_t = 30)]
    pub self_report_seconds: u64,

    /// The public status page's groups and the SLA report's counting policy (docs/status-page.md).
    /// Unset: `status.toml` in the working directory if it exists, else no public groups and the
    /// default policy.
    #[arg(long, global = true, env = "SITREP_STATUS_FILE")]
    pub status_file: Option<std::path::PathBuf>,

    /// Operators who may sign in, besides those added with `sitrep users add` (a TOML file of
    /// `[[user]]` entries with `name`, `role` and `password_hash`; see docs/operators.md).
    #[arg(long, global = true, env = "SITREP_USERS_FILE")]
    pub users_file: Option<std::path::PathBuf>,

    /// Whether looking at the dashboard and the read API needs signing in. Acting (forms and
    /// write endpoints) always does.
    #[arg(long, global = true, env = "SITREP_VIEW_REQUIRES_SIGN_IN", default_value_t = false, action = clap::ArgAction::Set)]
    pub view_requires_sign_in: bool,

    /// A token that `/metrics` requires, as `Authorization: Bearer <token>` (in Prometheus,
    /// `authorization: {credentials: <token>}`). Unset, `/metrics` is open like `/healthz`.
    #[arg(long, global = true, env = "SITREP_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// Hours a sign-in lasts.
    #[arg(long, global = true, env = "SITREP_SESSION_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..))]
    pub session_hours: u32,

    /// Mark cookies `Secure` (set this when the dashboard is served over HTTPS).
    #[arg(long, global = true, env = "SITREP_SECURE_COOKIES", default_value_t = false, action = clap::ArgAction::Set)]
    pub secure_cookies: bool,

    /// Sign-in attempts one client address may make per minute (`0` for no limit); more get
    /// `429` with `Retry-After`. Failed sign-ins for one name are limited apart (5 in 15 minutes).
    #[arg(long, global = true, env = "SITREP_SIGN_IN_PER_MINUTE", default_value_t = 10)]
    pub sign_in_per_minute: u32,

    /// HTTP ingest requests (`POST /api/v1/reports`, `/outages`, `/maintenance`) one client
    /// address may make per second, with bursts of as many again (`0` for no limit); more get
    /// `429` with `Retry-After`. NATS publishers are not limited here.
    #[arg(long, global = true, env = "SITREP_INGEST_PER_SECOND", default_value_t = 50)]
    pub ingest_per_second: u32,

    /// Addresses of reverse proxies in front of the dashboard, comma-separated. Only for
    /// requests from these is `X-Forwarded-For` believed: the client is then its right-most
    /// address that is not a trusted proxy. Empty: the TCP peer is the client.
    #[arg(long, global = true, env = "SITREP_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Log format: `text` or `json`.
    #[arg(long, global = true, env = "SITREP_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    /// The defaults, with `SITREP_*` environment overrides applied; what a test starts from.
    pub fn from_env() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        <Only as clap::Parser>::parse_from(["sitrep"]).settings
    }

    /// The subject collectors publish reports for `system` on.
    pub fn report_subject(&self, system: &str) -> String {
        format!("{}.report.{system}", self.subject_prefix)
    }

    /// The subject an alert transition of `severity` for `system` is published on.
    pub fn alert_subject(&self, severity: &str, system: &str) -> String {
        format!("{}.alert.{severity}.{system}", self.subject_prefix)
    }

    /// The wildcard subject the alert stream captures.
    pub fn alert_subjects(&self) -> String {
        format!("{}.alert.>", self.subject_prefix)
    }

    /// The wildcard subjects the report stream captures: reports, outages and maintenance.
    pub fn report_subjects(&self) -> Vec<String> {
        sitrep_domain::wire::MessageKind::ALL.iter().map(|k| self.kind_subjects(*k)).collect()
    }

    /// The wildcard subject of one kind of message.
    pub fn kind_subjects(&self, kind: sitrep_domain::wire::MessageKind) -> String {
        format!("{}.{}.>", self.subject_prefix, kind.token())
    }

    /// The subject a message of `kind` for `system` is published on.
    pub fn subject(&self, kind: sitrep_domain::wire::MessageKind, system: &str) -> String {
        format!("{}.{}.{system}", self.subject_prefix, kind.token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("postgres://u:hunter2@db/x");
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert!(!format!("{:?}", Settings::from_env()).contains("postgres://"));
    }

    #[test]
    fn subjects_follow_the_prefix() {
        let mut s = Settings::from_env();
        s.subject_prefix = "t1.sitrep".into();
        assert_eq!(s.report_subject("derecho"), "t1.sitrep.report.derecho");
        assert_eq!(s.report_subjects(), ["t1.sitrep.report.>", "t1.sitrep.outage.>", "t1.sitrep.maintenance.>"]);
    }
}
