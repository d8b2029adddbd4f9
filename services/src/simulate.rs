//! `sitrep simulate`: realistic collector traffic over NATS in wire format v1, for demos and
//! load. It models an HPC centre: Derecho (login nodes, CPU and GPU partitions, queues, the
//! glade, campaign and scratch filesystems), Casper (its node types and queues), JupyterHub,
//! and the platform services an operator watches. Now and then a part degrades, fails or
//! recovers.

use anyhow::Context;
use async_nats::jetstream;
use serde_json::{json, Map, Value};
use sitrep_infra::{bus, Settings};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Reports per second to publish, across all systems.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Rounds to publish (each component reports once per round); 0 runs until stopped.
    #[arg(long, default_value_t = 0)]
    pub rounds: u64,
    /// Seed for the random choices, for repeatable traffic.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Chance per component per round that its status changes (0 to 1).
    #[arg(long, default_value_t = 0.02)]
    pub churn: f64,
}

/// A metric that wanders between bounds.
#[derive(Debug, Clone)]
struct Metric {
    name: &'static str,
    value: f64,
    min: f64,
    max: f64,
    step: f64,
    whole: bool,
}

impl Metric {
    fn new(name: &'static str, value: f64, min: f64, max: f64, step: f64, whole: bool) -> Self {
        Self { name, value, min, max, step, whole }
    }
    fn wander(&mut self, rng: &mut fastrand::Rng) {
        self.value = (self.value + (rng.f64() * 2.0 - 1.0) * self.step).clamp(self.min, self.max);
    }
    fn json(&self) -> Value {
        if self.whole {
            json!(self.value.round() as i64)
        } else {
            json!((self.value * 10.0).round() / 10.0)
        }
    }
}

#[derive(Debug, Clone)]
struct Part {
    system: &'static str,
    component: String,
    kind: &'static str,
    labels: Vec<(&'static str, String)>,
    metrics: Vec<Metric>,
    status: &'static str,
    message: String,
    /// Login nodes publish one report per message; the rest are batched per system.
    single: bool,
}

fn part(system: &'static str, component: impl Into<String>, kind: &'static str, metrics: Vec<Metric>) -> Part {
    Part {
        system,
        component: component.into(),
        kind,
        labels: vec![],
        metrics,
        status: "ok",
        message: String::new(),
        single: false,
    }
}

/// The simulated centre.
fn centre() -> Vec<Part> {
    use Metric as M;
    let mut parts = Vec::new();
    for i in 1..=8 {
        let gpu = i > 6;
        let mut p = part(
            "derecho",
            format!("login/derecho{i}"),
            "login_node",
            vec![
                M::new("users", 40.0, 0.0, 120.0, 6.0, true),
                M::new("load_1m", 3.0, 0.0, 64.0, 1.5, false),
                M::new("mem_used_pct", 40.0, 5.0, 99.0, 4.0, false),
            ],
        );
        p.labels.push(("node_type", if gpu { "gpu".into() } else { "cpu".into() }));
        p.single = true;
        parts.push(p);
    }
    for (name, total) in [("cpu", 2488.0), ("gpu", 82.0)] {
        parts.push(part(
            "derecho",
            format!("partition/{name}"),
            "partition",
            vec![
                M::new("nodes_total", total, total, total, 0.0, true),
                M::new("nodes_available", total * 0.95, total * 0.7, total, total * 0.01, true),
                M::new("nodes_down", total * 0.01, 0.0, total * 0.1, total * 0.005, true),
                M::new("nodes_reserved", total * 0.02, 0.0, total * 0.2, total * 0.005, true),
                M::new("utilisation_pct", 88.0, 30.0, 100.0, 3.0, false),
            ],
        ));
    }
    for (q, running, pending) in [("main", 1200.0, 900.0), ("preempt", 150.0, 40.0), ("develop", 30.0, 5.0)] {
        parts.push(part(
            "derecho",
            format!("queue/{q}"),
            "queue",
            vec![
                M::new("running_jobs", running, 0.0, running * 2.0, running * 0.05 + 1.0, true),
                M::new("pending_jobs", pending, 0.0, pending * 3.0, pending * 0.08 + 1.0, true),
                M::new("active_users", running / 6.0, 0.0, running, running * 0.02 + 1.0, true),
            ],
        ));
    }
    for (fs, cap, used) in [("glade", 20_000.0, 71.0), ("campaign", 120_000.0, 84.0), ("scratch", 60_000.0, 62.0)] {
        let mut p = part(
            "derecho",
            format!("fs/{fs}"),
            "filesystem",
            vec![M::new("capacity_tb", cap, cap, cap, 0.0, true), M::new("used_pct", used, 20.0, 99.5, 0.3, false)],
        );
        p.labels.push(("mount", format!("/glade/{fs}")));
        parts.push(p);
    }
    for (name, total, cores, mem, gpus) in [
        ("standard", 64.0, "36", "384", "0"),
        ("bigmem", 8.0, "36", "1536", "0"),
        ("gpu-mi100", 2.0, "48", "512", "4"),
        ("gpu-v100", 10.0, "36", "768", "8"),
        ("gpu-a100", 8.0, "64", "1024", "4"),
    ] {
        let mut p = part(
            "casper",
            format!("nodes/{name}"),
            "node_type",
            vec![
                M::new("nodes_total", total, total, total, 0.0, true),
                M::new("nodes_available", total, 0.0, total, 1.0, true),
                M::new("nodes_down", 0.0, 0.0, total, 0.4, true),
                M::new("utilisation_pct", 70.0, 0.0, 100.0, 5.0, false),
            ],
        );
        p.labels.extend([("cores", cores.to_string()), ("memory_gb", mem.to_string()), ("gpus", gpus.to_string())]);
        parts.push(p);
    }
    for (q, running) in [("casper", 400.0), ("gpudev", 12.0), ("htc", 900.0)] {
        parts.push(part(
            "casper",
            format!("queue/{q}"),
            "queue",
            vec![
                M::new("running_jobs", running, 0.0, running * 2.0, running * 0.05 + 1.0, true),
                M::new("pending_jobs", running / 3.0, 0.0, running * 2.0, running * 0.05 + 1.0, true),
                M::new("active_users", running / 8.0, 0.0, running, running * 0.02 + 1.0, true),
            ],
        ));
    }
    parts.push(part(
        "jupyterhub",
        "hub/main",
        "hub",
        vec![
            M::new("active_users", 210.0, 0.0, 800.0, 15.0, true),
            M::new("active_sessions", 260.0, 0.0, 900.0, 18.0, true),
            M::new("spawn_failures", 0.0, 0.0, 20.0, 1.0, true),
        ],
    ));
    for target in ["casper", "derecho"] {
        parts.push(part(
            "jupyterhub",
            format!("spawner/{target}"),
            "spawner",
            vec![
                M::new("active_sessions", 120.0, 0.0, 500.0, 10.0, true),
                M::new("spawn_p95_ms", 8000.0, 1000.0, 60000.0, 1500.0, true),
            ],
        ));
    }
    for (component, kind) in [
        ("db/postgres-main", "database"),
        ("db/mysql-accounting", "database"),
        ("broker/nats", "broker"),
        ("broker/rabbitmq", "broker"),
        ("web/portal", "web_service"),
        ("auth/ldap", "directory"),
        ("monitoring/prometheus", "monitoring"),
        ("license/matlab", "license_server"),
    ] {
        parts.push(part(
            "platform",
            component,
            kind,
            vec![
                M::new("latency_ms", 12.0, 1.0, 2000.0, 4.0, false),
                M::new("connections", 80.0, 0.0, 1000.0, 10.0, true),
            ],
        ));
    }
    parts
}

const TROUBLE: &[(&str, &str)] = &[
    ("degraded", "responding slowly"),
    ("degraded", "running at reduced capacity"),
    ("failed", "not responding to health checks"),
    ("failed", "service down"),
    ("starting", "restarting after maintenance"),
    ("unknown", "collector could not determine state"),
];

fn step(p: &mut Part, rng: &mut fastrand::Rng, churn: f64) {
    for m in &mut p.metrics {
        m.wander(rng);
    }
    if rng.f64() < churn {
        if p.status == "ok" {
            let (status, message) = TROUBLE[rng.usize(..TROUBLE.len())];
            p.status = status;
            p.message = message.to_string();
        } else {
            p.status = "ok";
            p.message.clear();
        }
    } else if p.status != "ok" && rng.f64() < churn * 4.0 {
        // Troubles do not last: recover faster than they start.
        p.status = "ok";
        p.message.clear();
    }
    if p.status == "ok" {
        p.message = ok_message(p);
    }
}

fn ok_message(p: &Part) -> String {
    let get = |n: &str| p.metrics.iter().find(|m| m.name == n).map(|m| m.value.round() as i64);
    match p.kind {
        "login_node" => format!("{} users", get("users").unwrap_or(0)),
        "queue" => {
            format!("{} running, {} pending", get("running_jobs").unwrap_or(0), get("pending_jobs").unwrap_or(0))
        }
        "filesystem" => format!("{}% used", get("used_pct").unwrap_or(0)),
        _ => String::new(),
    }
}

fn report(p: &Part, with_system: bool) -> Value {
    let mut obj = Map::new();
    if with_system {
        obj.insert("system".into(), json!(p.system));
    }
    obj.insert("component".into(), json!(p.component));
    obj.insert("status".into(), json!(p.status));
    if !p.message.is_empty() {
        obj.insert("message".into(), json!(p.message));
    }
    obj.insert("metrics".into(), Value::Object(p.metrics.iter().map(|m| (m.name.to_string(), m.json())).collect()));
    let mut labels: Map<String, Value> = p.labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    labels.insert("kind".into(), json!(p.kind));
    obj.insert("labels".into(), Value::Object(labels));
    Value::Object(obj)
}

/// Publishes simulated traffic until `rounds` are done or `cancel` fires. Returns how many
/// reports it published.
pub async fn run(
    nats: async_nats::Client,
    settings: &Settings,
    args: &SimulateArgs,
    cancel: CancellationToken,
) -> anyhow::Result<u64> {
    let js = jetstream::new(nats);
    bus::ensure_reports_stream(&js, settings).await?;
    let mut rng = args.seed.map(fastrand::Rng::with_seed).unwrap_or_default();
    let mut parts = centre();
    let per_round = parts.len() as f64;
    let round_every = Duration::from_secs_f64((per_round / args.rate.max(0.001)).max(0.001));
    let mut ticker = tokio::time::interval(round_every);
    let mut published = 0u64;
    let mut round = 0u64;
    tracing::info!(components = parts.len(), every_ms = round_every.as_millis() as u64, "simulating");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = OffsetDateTime::now_utc().format(&Rfc3339)?;
        for p in &mut parts {
            step(p, &mut rng, args.churn);
        }
        let mut systems: Vec<&str> = parts.iter().map(|p| p.system).collect();
        systems.dedup();
        let mut acks = Vec::new();
        for system in systems {
            let subject = settings.report_subject(system);
            let (singles, batched): (Vec<&Part>, Vec<&Part>) =
                parts.iter().filter(|p| p.system == system).partition(|p| p.single);
            for p in singles {
                let mut r = report(p, true);
                r["observed_at"] = json!(now);
                r["ttl_seconds"] = json!(120);
                acks.push(js.publish(subject.clone(), serde_json::to_vec(&r)?.into()).await?);
            }
            if !batched.is_empty() {
                let batch = json!({
                    "system": system,
                    "observed_at": now,
                    "ttl_seconds": 120,
                    "reports": batched.iter().map(|p| report(p, false)).collect::<Vec<_>>(),
                });
                acks.push(js.publish(subject.clone(), serde_json::to_vec(&batch)?.into()).await?);
            }
        }
        for ack in acks {
            ack.await.context("JetStream did not confirm a report")?;
        }
        published += parts.len() as u64;
        round += 1;
        if args.rounds > 0 && round >= args.rounds {
            break;
        }
    }
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitrep_domain::wire;

    #[test]
    fn every_simulated_report_is_valid_wire_format() {
        let now = OffsetDateTime::now_utc();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut parts = centre();
        for _ in 0..50 {
            for p in &mut parts {
                step(p, &mut rng, 0.3);
                let payload = serde_json::to_vec(&report(p, true)).unwrap();
                let decoded = wire::decode(p.system, &payload, now).unwrap();
                assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
            }
        }
    }

    #[test]
    fn the_centre_covers_derecho_casper_jupyterhub_and_platform_services() {
        let parts = centre();
        for needle in [
            "login/derecho1",
            "partition/gpu",
            "queue/main",
            "fs/glade",
            "fs/campaign",
            "fs/scratch",
            "nodes/gpu-a100",
            "nodes/bigmem",
            "queue/gpudev",
            "queue/htc",
            "hub/main",
            "broker/nats",
        ] {
            assert!(parts.iter().any(|p| p.component == needle), "{needle}");
        }
    }
}
