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
    let servers: Vec<&str> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    async_nats::ConnectOptions::new()
        .name("sitrep")
        .connection_timeout(Duration::from_secs(5))
        .connect(servers)
        .await
        .with_context(|| format!("connecting to NATS at {url} (set SITREP_NATS_URL)"))
}

/// Creates the report stream if it is missing, and returns it. It captures reports, outages and
/// maintenance messages; a stream made by an earlier sitrep that captured only reports gets the
/// other subjects added.
pub async fn ensure_reports_stream(js: &jetstream::Context, settings: &Settings) -> anyhow::Result<stream::Stream> {
    let what = || format!("creating the JetStream stream {} (is JetStream enabled?)", settings.reports_stream);
    let subjects = settings.report_subjects();
    let mut stream = js
        .get_or_create_stream(stream::Config {
            name: settings.reports_stream.clone(),
            subjects: subjects.clone(),
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: settings.stream_replicas.into(),
            ..Default::default()
        })
        .await
        .with_context(what)?;
    let current = stream.info().await.with_context(what)?.config.clone();
    if subjects.iter().any(|s| !current.subjects.contains(s)) {
        tracing::info!(
            stream = settings.reports_stream,
            ?subjects,
            "adding outage and maintenance subjects to the report stream"
        );
        let mut all = current.subjects.clone();
        all.extend(subjects.into_iter().filter(|s| !current.subjects.contains(s)));
        js.update_stream(stream::Config { subjects: all, ..current })
            .await
            .with_context(|| format!("updating the JetStream stream {}", settings.reports_stream))?;
        stream = js.get_stream(&settings.reports_stream).await.with_context(what)?;
    }
    Ok(stream)
}

/// How long the alert stream remembers a transition's `Nats-Msg-Id`: a publisher that restarts
/// within this window never publishes a transition twice.
pub const ALERT_DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Creates the alert stream if it is missing, and returns it. An existing stream with a shorter
/// duplicate window (made by hand, or by another tool) gets sitrep's, since exactly-once
/// publishing after a restart depends on it.
pub async fn ensure_alerts_stream(js: &jetstream::Context, settings: &Settings) -> anyhow::Result<stream::Stream> {
    let config = stream::Config {
        name: settings.alerts_stream.clone(),
        subjects: vec![settings.alert_subjects()],
        storage: stream::StorageType::File,
        duplicate_window: ALERT_DUPLICATE_WINDOW,
        num_replicas: settings.stream_replicas.into(),
        ..Default::default()
    };
    let what = || format!("creating the JetStream stream {} (is JetStream enabled?)", settings.alerts_stream);
    let mut stream = js.get_or_create_stream(config).await.with_context(what)?;
    let current = stream.info().await.with_context(what)?.config.clone();
    if current.duplicate_window < ALERT_DUPLICATE_WINDOW {
        tracing::info!(stream = settings.alerts_stream, "widening the alert stream's duplicate window to 24 h");
        js.update_stream(stream::Config { duplicate_window: ALERT_DUPLICATE_WINDOW, ..current })
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
