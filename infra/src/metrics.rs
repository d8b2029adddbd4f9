//! Sitrep's own metrics, in one registry per process, served as Prometheus text at `/metrics`
//! by the web part. Ingest and the HTTP layer count as they go; projection lag is read from the
//! database when `/metrics` is scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `stored`, `duplicate` or `quarantined`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Request {
    pub method: String,
    /// The route as written in the router, such as `/systems/{system}`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Projection {
    pub projection: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    pub ingest_messages: Family<Outcome, Counter>,
    pub ingest_events: Counter,
    pub ingest_batches: Counter,
    pub ingest_batch_messages: Histogram,
    pub ingest_latency_seconds: Histogram,
    pub http_requests: Family<Request, Counter>,
    pub http_request_seconds: Histograms<Route>,
    pub projection_lag_events: Family<Projection, Gauge>,
    pub projection_lag_seconds: Family<Projection, Gauge<f64, AtomicU64>>,
    registry: Registry,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("sitrep");
    let m = Metrics {
        ingest_messages: Family::default(),
        ingest_events: Counter::default(),
        ingest_batches: Counter::default(),
        ingest_batch_messages: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
        ingest_latency_seconds: latency_histogram(),
        http_requests: Family::default(),
        http_request_seconds: Family::new_with_constructor(latency_histogram),
        projection_lag_events: Family::default(),
        projection_lag_seconds: Family::default(),
        registry: Registry::default(),
    };
    registry.register("ingest_messages", "NATS messages ingest finished with, by outcome", m.ingest_messages.clone());
    registry.register("ingest_events", "Events ingest appended", m.ingest_events.clone());
    registry.register(
        "ingest_batch_messages",
        "Messages per ingest batch (one transaction)",
        m.ingest_batch_messages.clone(),
    );
    registry.register(
        "ingest_latency_seconds",
        "From a report's publication to JetStream until its events committed",
        m.ingest_latency_seconds.clone(),
    );
    registry.register("http_requests", "HTTP requests answered, by route and status", m.http_requests.clone());
    registry.register(
        "http_request_seconds",
        "Time to answer an HTTP request, by route",
        m.http_request_seconds.clone(),
    );
    registry.register(
        "projection_lag_events",
        "Committed events a projection has not applied yet (read at scrape time)",
        m.projection_lag_events.clone(),
    );
    registry.register(
        "projection_lag_seconds",
        "Age of the oldest event a projection has not applied yet (0 when caught up)",
        m.projection_lag_seconds.clone(),
    );
    Metrics { registry, ..m }
});

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Everything in Prometheus text format (OpenMetrics flavour, as prometheus-client writes it).
pub fn render() -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &METRICS.registry).expect("writing to a String cannot fail");
    out
}
