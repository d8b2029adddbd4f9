//! NATS JetStream: connecting, the report stream and the durable consumer ingest reads it with,
//! and the alert stream transitions are published to.

use crate::Settings;
use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use std::time::Duration;

/// How long JetStream remembers a `Nats-Msg-Id` to drop a publisher's retry.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Connects to NATS, failing with a clear error if no server can be reached. `url` may list
/// several servers of a cluster, separated by commas; the client fails over between them.
pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new().name("sitrep").connection_timeout(Duration::from_secs(5));
    let mut servers = Vec::new();
    for raw in url.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let addr: async_nats::ServerAddr =
            raw.parse().with_context(|| format!("{} is not a NATS URL (set SITREP_NATS_URL)", masked(raw)))?;
        // nats://user:password@host or nats://token@host: async-nats does not read them itself.
        if addr.has_user_pass() {
            let user = addr.username().unwrap_or_default().to_owned();
            options = match addr.password() {
                Some(pass) => options.user_and_password(user, pass.to_owned()),
                None => options.token(user),
            };
        }
        servers.push(addr);
    }
    options
        .connect(servers)
        .await
        .with_context(|| format!("connecting to NATS at {} (set SITREP_NATS_URL)", masked(url)))
}

/// A NATS URL (or several, comma-separated) with any password or token hidden, for messages.
pub fn masked(url: &str) -> String {
    url.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &u[scheme + 3..at];
                let shown = match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***"),
                    None => "***".to_owned(),
                };
                format!("{}{shown}{}", &u[..scheme + 3], &u[at..])
            }
            _ => u.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A stream's size limit in bytes as JetStream takes it: `-1` for none.
fn max_bytes(mb: u64) -> i64 {
    if mb == 0 {
        -1
    } else {
        i64::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX)
    }
}

/// A limit as the log and the pages print it.
fn describe_limits(max_age: Duration, max_bytes: i64) -> String {
    let age =
        if max_age.is_zero() { "no age limit".to_owned() } else { humantime::format_duration(max_age).to_string() };
    let size = if max_bytes <= 0 { "no size limit".to_owned() } else { format!("{} MiB", max_bytes / (1024 * 1024)) };
    format!("{age}, {size}")
}

/// The report stream as sitrep wants it: a work queue (a report leaves the stream once ingest
/// has stored it and acked it, so JetStream keeps no second copy of the log), bounded by
/// `SITREP_REPORTS_MAX_AGE` and `SITREP_REPORTS_MAX_MB`, and refusing new messages at the size
/// limit rather than discarding unstored ones.
pub fn reports_stream_config(settings: &Settings) -> stream::Config {
    stream::Config {
        name: settings.reports_stream.clone(),
        subjects: settings.report_subjects(),
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: settings.stream_replicas.into(),
        retention: stream::RetentionPolicy::WorkQueue,
        discard: stream::DiscardPolicy::New,
        max_age: settings.reports_max_age.into(),
        max_bytes: max_bytes(settings.reports_max_mb),
        ..Default::default()
    }
}

/// Creates the report stream if it is missing, and returns it. An existing stream is brought
/// to sitrep's subjects and limits, and the change is logged. JetStream cannot change a stream's
/// retention policy: a stream made by an earlier sitrep (limits retention) keeps it, with
/// discard-old at its limits (discard-new would refuse every report once stored ones filled it),
/// and a warning says how to move it to a work queue (docs/operations.md).
pub async fn ensure_reports_stream(js: &jetstream::Context, settings: &Settings) -> anyhow::Result<stream::Stream> {
    let what = || {
        format!(
            "creating the JetStream stream {} (is JetStream enabled, with room for SITREP_REPORTS_MAX_MB = {} MiB?)",
            settings.reports_stream, settings.reports_max_mb
        )
    };
    let wanted = reports_stream_config(settings);
    let mut stream = js.get_or_create_stream(wanted.clone()).await.with_context(what)?;
    let current = stream.info().await.with_context(what)?.config.clone();
    let mut next = current.clone();
    next.subjects.extend(wanted.subjects.iter().filter(|s| !current.subjects.contains(s)).cloned());
    next.max_age = wanted.max_age;
    next.max_bytes = wanted.max_bytes;
    if current.retention == stream::RetentionPolicy::WorkQueue {
        next.discard = stream::DiscardPolicy::New;
    } else {
        next.discard = stream::DiscardPolicy::Old;
        tracing::warn!(
            stream = settings.reports_stream,
            retention = ?current.retention,
            "the report stream keeps every report until its limits, since JetStream cannot change a stream's \
             retention policy; to make it a work queue, stop the collectors, wait until /ops shows no ingest \
             backlog, delete the stream (nats stream rm) and start sitrep again"
        );
    }
    if let Some(change) = config_change(&current, &next) {
        tracing::info!(stream = settings.reports_stream, change, "updating the report stream");
        js.update_stream(next)
            .await
            .with_context(|| format!("updating the JetStream stream {}", settings.reports_stream))?;
        stream = js.get_stream(&settings.reports_stream).await.with_context(what)?;
    }
    Ok(stream)
}

/// What differs between two configurations in the fields sitrep sets on existing streams, as a
/// log line says it; `None` when nothing does.
fn config_change(current: &stream::Config, next: &stream::Config) -> Option<String> {
    // JetStream reports "no size limit" as -1; a config not yet sent may say 0.
    let limit = |c: &stream::Config| (c.max_age, if c.max_bytes <= 0 { -1 } else { c.max_bytes });
    let mut changes = Vec::new();
    if current.subjects != next.subjects {
        changes.push(format!("subjects {:?} -> {:?}", current.subjects, next.subjects));
    }
    if limit(current) != limit(next) {
        changes.push(format!(
            "limits {} -> {}",
            describe_limits(current.max_age, current.max_bytes),
            describe_limits(next.max_age, next.max_bytes)
        ));
    }
    if current.discard != next.discard {
        changes.push(format!("discard {:?} -> {:?}", current.discard, next.discard));
    }
    if current.duplicate_window < next.duplicate_window {
        changes.push(format!("duplicate window {:?} -> {:?}", current.duplicate_window, next.duplicate_window));
    }
    (!changes.is_empty()).then(|| changes.join("; "))
}

/// How long the alert stream remembers a transition's `Nats-Msg-Id`: a publisher that restarts
/// within this window never publishes a transition twice.
pub const ALERT_DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Creates the alert stream if it is missing, and returns it. It keeps transitions for
/// subscribers to resume from, up to `SITREP_ALERTS_MAX_AGE` and `SITREP_ALERTS_MAX_MB`
/// (oldest first past them). An existing stream gets those limits, and sitrep's duplicate window
/// if its own is shorter (made by hand, or by another tool), since exactly-once publishing after
/// a restart depends on it; the change is logged.
pub async fn ensure_alerts_stream(js: &jetstream::Context, settings: &Settings) -> anyhow::Result<stream::Stream> {
    let config = stream::Config {
        name: settings.alerts_stream.clone(),
        subjects: vec![settings.alert_subjects()],
        storage: stream::StorageType::File,
        duplicate_window: ALERT_DUPLICATE_WINDOW,
        num_replicas: settings.stream_replicas.into(),
        max_age: settings.alerts_max_age.into(),
        max_bytes: max_bytes(settings.alerts_max_mb),
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    };
    let what = || {
        format!(
            "creating the JetStream stream {} (is JetStream enabled, with room for SITREP_ALERTS_MAX_MB = {} MiB?)",
            settings.alerts_stream, settings.alerts_max_mb
        )
    };
    let mut stream = js.get_or_create_stream(config.clone()).await.with_context(what)?;
    let current = stream.info().await.with_context(what)?.config.clone();
    let next = stream::Config {
        duplicate_window: current.duplicate_window.max(ALERT_DUPLICATE_WINDOW),
        max_age: config.max_age,
        max_bytes: config.max_bytes,
        discard: config.discard,
        ..current.clone()
    };
    if let Some(change) = config_change(&current, &next) {
        tracing::info!(stream = settings.alerts_stream, change, "updating the alert stream");
        js.update_stream(next)
            .await
            .with_context(|| format!("updating the JetStream stream {}", settings.alerts_stream))?;
        stream = js.get_stream(&settings.alerts_stream).await.with_context(what)?;
    }
    Ok(stream)
}

/// The durable pull consumer ingest reads the report stream with; created if missing, and
/// brought up to date if an earlier sitrep made it for reports alone.
pub async fn reports_consumer(stream: &stream::Stream, settings: &Settings) -> anyhow::Result<consumer::PullConsumer> {
    let config = consumer::pull::Config {
        durable_name: Some(settings.ingest_consumer.clone()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 20_000,
        filter_subjects: settings.report_subjects(),
        ..Default::default()
    };
    let what = || format!("creating the durable consumer {}", settings.ingest_consumer);
    let mut consumer: consumer::PullConsumer =
        stream.get_or_create_consumer(&settings.ingest_consumer, config.clone()).await.with_context(what)?;
    let current = consumer.info().await.with_context(what)?.config.clone();
    if current.filter_subjects != config.filter_subjects {
        tracing::info!(consumer = settings.ingest_consumer, "updating the ingest consumer's subjects");
        consumer = stream
            .update_consumer(consumer::pull::Config { filter_subject: String::new(), ..config })
            .await
            .with_context(|| format!("updating the durable consumer {}", settings.ingest_consumer))?;
    }
    Ok(consumer)
}

/// Share of a limit, in per cent, from which the backlog is a warning (`degraded`).
pub const BACKLOG_WARN_PCT: f64 = 50.0;
/// Share of a limit, in per cent, from which the backlog is critical (`failed`).
pub const BACKLOG_CRITICAL_PCT: f64 = 80.0;

/// How serious ingest's backlog is, as a status word for the self-report and the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BacklogLevel {
    Ok,
    Warning,
    Critical,
}

impl BacklogLevel {
    /// The status the self-report gives the `stream/reports` component.
    pub fn status(self) -> &'static str {
        match self {
            BacklogLevel::Ok => "ok",
            BacklogLevel::Warning => "degraded",
            BacklogLevel::Critical => "failed",
        }
    }
}

/// What the report stream holds that ingest has not stored, read off JetStream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamReading {
    /// Messages and bytes in the stream, stored or not.
    pub messages: u64,
    pub bytes: u64,
    /// Messages ingest has not acked (pending plus in flight).
    pub unstored: u64,
    /// When the oldest of them reached the stream.
    pub oldest_unstored_at: Option<time::OffsetDateTime>,
    /// A work queue holds unstored messages only; a limits stream holds stored ones as well.
    pub work_queue: bool,
    /// At the size limit, new messages are refused (else the oldest go).
    pub discard_new: bool,
    pub max_age: Duration,
    /// `-1` or `0`: none.
    pub max_bytes: i64,
}

/// Ingest's backlog against the report stream's limits: how close unstored reports are to
/// being discarded (age) or to new ones being refused (size), and what an operator should read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Backlog {
    pub messages: u64,
    pub bytes: u64,
    pub oldest_seconds: f64,
    /// The larger of the two shares of a limit the backlog has used, in per cent.
    pub used_pct: f64,
    pub level: BacklogLevel,
    pub message: String,
}

impl StreamReading {
    /// The backlog at `now`. Pure, so every threshold has a unit test.
    pub fn backlog(&self, now: time::OffsetDateTime) -> Backlog {
        let bytes = if self.work_queue || self.messages == 0 {
            self.bytes
        } else {
            (self.bytes as f64 * self.unstored.min(self.messages) as f64 / self.messages as f64) as u64
        };
        let bytes = if self.unstored == 0 { 0 } else { bytes };
        let oldest_seconds = match (self.unstored, self.oldest_unstored_at) {
            (0, _) | (_, None) => 0.0,
            (_, Some(t)) => (now - t).as_seconds_f64().max(0.0),
        };
        let age_pct = (!self.max_age.is_zero()).then(|| 100.0 * oldest_seconds / self.max_age.as_secs_f64());
        let size_pct = (self.max_bytes > 0).then(|| 100.0 * bytes as f64 / self.max_bytes as f64);
        let used_pct = age_pct.unwrap_or(0.0).max(size_pct.unwrap_or(0.0));
        let level = match used_pct {
            p if p >= BACKLOG_CRITICAL_PCT => BacklogLevel::Critical,
            p if p >= BACKLOG_WARN_PCT => BacklogLevel::Warning,
            _ => BacklogLevel::Ok,
        };
        let limits = describe_limits(self.max_age, self.max_bytes);
        let message = if self.unstored == 0 {
            format!("no reports waiting for ingest (limits: {limits})")
        } else {
            let mut parts = vec![format!(
                "{} reports waiting for ingest, {:.1} MiB, the oldest {} old",
                self.unstored,
                bytes as f64 / (1024.0 * 1024.0),
                humantime::format_duration(Duration::from_secs(oldest_seconds as u64))
            )];
            if let (Some(pct), Some(at)) = (age_pct, self.oldest_unstored_at) {
                let discard_at = (at + self.max_age).to_offset(time::UtcOffset::UTC);
                let when = discard_at
                    .format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"))
                    .unwrap_or_else(|_| discard_at.to_string());
                parts.push(format!("{pct:.0}% of the age limit: unstored reports are discarded from {when}"));
            }
            if let Some(pct) = size_pct {
                let then =
                    if self.discard_new { "new reports are refused" } else { "the oldest reports are discarded" };
                parts.push(format!("{pct:.0}% of the size limit: at it {then}"));
            }
            if level != BacklogLevel::Ok {
                parts.push("start ingest or raise SITREP_REPORTS_MAX_AGE / SITREP_REPORTS_MAX_MB".into());
            }
            parts.join("; ")
        };
        Backlog { messages: self.unstored, bytes, oldest_seconds, used_pct, level, message }
    }
}

/// The report stream and ingest's consumer, by name.
#[derive(Debug, Clone, Copy)]
pub struct StreamNames<'a> {
    pub reports_stream: &'a str,
    pub ingest_consumer: &'a str,
}

impl<'a> From<&'a Settings> for StreamNames<'a> {
    fn from(s: &'a Settings) -> Self {
        Self { reports_stream: &s.reports_stream, ingest_consumer: &s.ingest_consumer }
    }
}

/// Reads the report stream and ingest's consumer off JetStream. Before the consumer exists,
/// every message in the stream counts as unstored.
pub async fn read_report_stream(js: &jetstream::Context, names: StreamNames<'_>) -> anyhow::Result<StreamReading> {
    use consumer::pull;
    let mut stream = js
        .get_stream(names.reports_stream)
        .await
        .with_context(|| format!("the JetStream stream {}", names.reports_stream))?;
    let info = stream.info().await.context("stream info")?.clone();
    let (unstored, floor) = match stream.get_consumer::<pull::Config>(names.ingest_consumer).await {
        Ok(mut c) => {
            let ci = c.info().await.context("consumer info")?;
            (ci.num_pending + ci.num_ack_pending as u64, ci.ack_floor.stream_sequence)
        }
        Err(_) => (info.state.messages, 0),
    };
    let oldest_unstored_at = if unstored == 0 {
        None
    } else {
        // The first message past the ack floor is the oldest not stored (a work queue has
        // already dropped the stored ones before it).
        let seq = (floor + 1).max(info.state.first_sequence);
        Some(stream.get_raw_message(seq).await.map(|m| m.time).unwrap_or(info.state.first_timestamp))
    };
    Ok(StreamReading {
        messages: info.state.messages,
        bytes: info.state.bytes,
        unstored,
        oldest_unstored_at,
        work_queue: info.config.retention == stream::RetentionPolicy::WorkQueue,
        discard_new: info.config.discard == stream::DiscardPolicy::New,
        max_age: info.config.max_age,
        max_bytes: info.config.max_bytes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_nats_urls_password_or_token_never_shows_in_messages() {
        assert_eq!(masked("nats://collector:s3cret@nats1:4222"), "nats://collector:***@nats1:4222");
        assert_eq!(masked("nats://t0ken@nats1,nats://nats2"), "nats://***@nats1,nats://nats2");
        assert_eq!(masked("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }

    use super::*;
    use time::macros::datetime;

    const NOW: time::OffsetDateTime = datetime!(2026-12-07 12:00 UTC);

    fn reading(unstored: u64, bytes: u64, oldest_hours: i64) -> StreamReading {
        StreamReading {
            messages: unstored,
            bytes,
            unstored,
            oldest_unstored_at: Some(NOW - time::Duration::hours(oldest_hours)),
            work_queue: false,
            discard_new: true,
            max_age: Duration::from_secs(7 * 86_400),
            max_bytes: max_bytes(1024),
        }
    }

    #[test]
    fn an_empty_backlog_is_ok_and_says_the_limits() {
        let b = reading(0, 0, 0).backlog(NOW);
        assert_eq!((b.level, b.messages, b.bytes, b.used_pct), (BacklogLevel::Ok, 0, 0, 0.0));
        assert_eq!(b.message, "no reports waiting for ingest (limits: 7days, 1024 MiB)");
    }

    #[test]
    fn a_backlog_warns_from_half_of_the_age_limit_and_is_critical_from_four_fifths() {
        assert_eq!(reading(10, 1000, 83).backlog(NOW).level, BacklogLevel::Ok);
        let warn = reading(10, 1000, 84).backlog(NOW);
        assert_eq!(warn.level, BacklogLevel::Warning, "{warn:?}");
        assert!(
            warn.message.contains("50% of the age limit: unstored reports are discarded from 2026-12-11 00:00:00 UTC"),
            "{}",
            warn.message
        );
        assert!(warn.message.contains("SITREP_REPORTS_MAX_AGE"), "{}", warn.message);
        assert_eq!(reading(10, 1000, 135).backlog(NOW).level, BacklogLevel::Critical);
    }

    #[test]
    fn a_backlog_near_the_size_limit_says_new_reports_will_be_refused() {
        let b = reading(10, 900 * 1024 * 1024, 1).backlog(NOW);
        assert_eq!(b.level, BacklogLevel::Critical);
        assert!(b.message.contains("88% of the size limit: at it new reports are refused"), "{}", b.message);
    }

    #[test]
    fn on_a_limits_stream_only_the_unstored_share_of_its_bytes_counts() {
        let r = StreamReading { messages: 1000, unstored: 100, ..reading(100, 1_000_000, 1) };
        assert_eq!(r.backlog(NOW).bytes, 100_000);
        let queue = StreamReading { work_queue: true, ..r };
        assert_eq!(queue.backlog(NOW).bytes, 1_000_000, "a work queue holds only the backlog");
        let old = StreamReading { discard_new: false, ..reading(10, 900 * 1024 * 1024, 1) };
        let b = old.backlog(NOW);
        assert!(b.message.contains("the oldest reports are discarded"), "{}", b.message);
    }

    #[test]
    fn without_limits_a_backlog_is_never_a_warning() {
        let r = StreamReading { max_age: Duration::ZERO, max_bytes: -1, ..reading(10, u64::MAX / 2, 10_000) };
        let b = r.backlog(NOW);
        assert_eq!((b.level, b.used_pct), (BacklogLevel::Ok, 0.0));
        assert!(b.message.contains("10 reports waiting"), "{}", b.message);
    }

    #[test]
    fn limits_compare_as_jetstream_reports_them() {
        let a = stream::Config { max_bytes: 0, ..Default::default() };
        let b = stream::Config { max_bytes: -1, ..Default::default() };
        assert_eq!(config_change(&a, &b), None);
        let c = stream::Config { max_bytes: max_bytes(1), max_age: Duration::from_secs(60), ..Default::default() };
        assert_eq!(config_change(&b, &c).as_deref(), Some("limits no age limit, no size limit -> 1m, 1 MiB"));
    }
}
