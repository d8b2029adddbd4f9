//! `sitrep simulate`: realistic collector traffic over NATS in wire format v1, for demos and
//! load. It models an HPC centre: Derecho (login nodes, the glade, campaign and scratch
//! filesystems, and its PBS nodes, queues and server), Casper (its PBS node types and queues),
//! JupyterHub, and the platform services an operator watches.
//!
//! Derecho and Casper go through the real `pbs` source: each round the simulator prints what
//! `pbsnodes` and `qstat` would print for the clusters' moving load, and `sitrep_collect::pbs`
//! reads it, as `sitrep collect pbs` does on a real server. Incidents follow a centre's pace:
//! a component is healthy for hours (`--incident-hours`, 4 on average) and an incident lasts
//! minutes (`--incident-minutes`, 6); `--churn` gives the old per-round chance, for load and
//! page tests. [`demo_notices`] are the outage, maintenance and reservation the demo posts.

use anyhow::Context;
use async_nats::jetstream;
use serde_json::{json, Map, Value};
use sitrep_collect::pbs;
use sitrep_domain::wire::MessageKind;
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
    /// Chance per component per round that its status changes (0 to 1), for load and page
    /// tests. Without it, incidents follow --incident-hours and --incident-minutes.
    #[arg(long)]
    pub churn: Option<f64>,
    /// Mean hours between two incidents of one component: most parts are healthy for hours.
    #[arg(long, default_value_t = 4.0)]
    pub incident_hours: f64,
    /// Mean minutes an incident lasts.
    #[arg(long, default_value_t = 6.0)]
    pub incident_minutes: f64,
}

impl Default for SimulateArgs {
    fn default() -> Self {
        Self { rate: 20.0, rounds: 0, seed: None, churn: None, incident_hours: 4.0, incident_minutes: 6.0 }
    }
}

/// The chances, per component and round, that an incident starts and that one ends.
#[derive(Debug, Clone, Copy)]
struct Chances {
    start: f64,
    end: f64,
}

impl Chances {
    fn of(args: &SimulateArgs, round_secs: f64) -> Self {
        match args.churn {
            Some(c) => Chances { start: c, end: (c * 4.0).min(1.0) },
            None => Chances {
                start: (round_secs / (args.incident_hours.max(0.001) * 3600.0)).min(1.0),
                end: (round_secs / (args.incident_minutes.max(0.01) * 60.0)).min(1.0),
            },
        }
    }
}

/// A metric that wanders between bounds.
#[derive(Debug, Clone)]
struct Metric {
    name: &'static str,
    value: f64,
    /// The usual level it returns to.
    mean: f64,
    min: f64,
    max: f64,
    step: f64,
    whole: bool,
}

impl Metric {
    fn new(name: &'static str, value: f64, min: f64, max: f64, step: f64, whole: bool) -> Self {
        Self { name, value, mean: value, min, max, step, whole }
    }
    /// A step of noise, pulled back towards where it started, so that over hours a metric stays
    /// near its usual level instead of drifting to its bounds.
    fn wander(&mut self, rng: &mut fastrand::Rng) {
        let pull = (self.mean - self.value) * 0.02;
        self.value = (self.value + (rng.f64() * 2.0 - 1.0) * self.step + pull).clamp(self.min, self.max);
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

/// A group of identical PBS nodes.
#[derive(Debug, Clone)]
struct NodeGroup {
    name: &'static str,
    prefix: &'static str,
    nodes: usize,
    ncpus: u32,
    ngpus: u32,
    /// The share of working nodes running jobs.
    load: Metric,
    /// Nodes down or offline in an incident (a rack, a cooling loop), else none.
    incident: Option<(usize, &'static str)>,
}

/// A PBS queue.
#[derive(Debug, Clone)]
struct Queue {
    name: &'static str,
    route: bool,
    running: Metric,
    queued: Metric,
    held: Metric,
    enabled: bool,
}

/// A PBS cluster, published through the real `pbs` source: each round the simulator prints what
/// `pbsnodes -a -F json`, `qstat -Q -f -F json` and `qstat -B -f -F json` would print for its
/// state, in the shape of the recorded outputs (collect/tests/fixtures/hpc/), and
/// `sitrep_collect::pbs` reads them, exactly as `sitrep collect pbs` does on a real server.
#[derive(Debug, Clone)]
struct Cluster {
    system: &'static str,
    server: &'static str,
    /// The node attribute the source groups nodes by (`sitrep collect pbs --group-by`).
    group_by: Option<&'static str>,
    groups: Vec<NodeGroup>,
    queues: Vec<Queue>,
    scheduling: bool,
}

fn clusters() -> Vec<Cluster> {
    use Metric as M;
    let group = |name, prefix, nodes, ncpus, ngpus, load| NodeGroup {
        name,
        prefix,
        nodes,
        ncpus,
        ngpus,
        load: M::new("load", load, 0.2, 1.0, 0.02, false),
        incident: None,
    };
    let queue = |name, route, running: f64, queued: f64| Queue {
        name,
        route,
        running: M::new("running", running, 0.0, running * 2.0, running * 0.03 + 1.0, true),
        queued: M::new("queued", queued, 0.0, queued * 3.0 + 5.0, queued * 0.05 + 1.0, true),
        held: M::new("held", queued / 10.0, 0.0, queued + 5.0, queued * 0.01 + 0.5, true),
        enabled: true,
    };
    vec![
        Cluster {
            system: "derecho",
            server: "desched1",
            group_by: None,
            groups: vec![group("cpu", "dec", 2488, 128, 0, 0.88), group("gpu", "deg", 82, 64, 4, 0.75)],
            queues: vec![
                queue("main", true, 0.0, 40.0),
                queue("cpu", false, 1200.0, 900.0),
                queue("gpu", false, 60.0, 80.0),
                queue("preempt", false, 150.0, 40.0),
                queue("develop", false, 30.0, 5.0),
            ],
            scheduling: true,
        },
        Cluster {
            system: "casper",
            server: "casper-pbs",
            group_by: Some("resources_available.nodetype"),
            groups: vec![
                group("standard", "crhtc", 64, 36, 0, 0.7),
                group("bigmem", "crbig", 8, 36, 0, 0.5),
                group("gpu-mi100", "crmi", 2, 48, 4, 0.4),
                group("gpu-v100", "crv", 10, 36, 8, 0.8),
                group("gpu-a100", "cra", 8, 64, 4, 0.85),
            ],
            queues: vec![
                queue("casper", false, 400.0, 130.0),
                queue("gpudev", false, 12.0, 4.0),
                queue("htc", false, 900.0, 300.0),
            ],
            scheduling: true,
        },
    ]
}

const NODE_TROUBLE: &[&str] =
    &["node down: communication closed", "cooling loop failure in the rack", "offline by admin: memory errors"];

impl Cluster {
    fn step(&mut self, rng: &mut fastrand::Rng, chances: Chances) {
        for g in &mut self.groups {
            g.load.wander(rng);
            match g.incident {
                None if rng.f64() < chances.start => {
                    // A rack or a cooling loop: enough nodes to degrade the group.
                    let n = ((g.nodes as f64) * (0.11 + rng.f64() * 0.15)).ceil() as usize;
                    g.incident = Some((n.min(g.nodes), NODE_TROUBLE[rng.usize(..NODE_TROUBLE.len())]));
                }
                Some(_) if rng.f64() < chances.end => g.incident = None,
                _ => {}
            }
        }
        for q in &mut self.queues {
            q.running.wander(rng);
            q.queued.wander(rng);
            q.held.wander(rng);
            if q.enabled && rng.f64() < chances.start / 2.0 {
                q.enabled = false;
            } else if !q.enabled && rng.f64() < chances.end {
                q.enabled = true;
            }
        }
        if self.scheduling && rng.f64() < chances.start / 4.0 {
            self.scheduling = false;
        } else if !self.scheduling && rng.f64() < chances.end {
            self.scheduling = true;
        }
    }

    /// What `pbsnodes -a -F json` would print.
    fn pbsnodes(&self) -> String {
        let mut nodes = Map::new();
        for g in &self.groups {
            // A few nodes are always out for repair, as on any real cluster.
            let baseline = (g.nodes / 250).max(usize::from(g.nodes >= 50));
            let (down, trouble) = g.incident.map_or((baseline, NODE_TROUBLE[0]), |(n, t)| (n, t));
            let working = g.nodes.saturating_sub(down);
            let busy = (working as f64 * g.load.value).round() as usize;
            for i in 0..g.nodes {
                let name = format!("{}{:04}", g.prefix, i + 1);
                let (state, comment) = if i < down {
                    if trouble.starts_with("offline") {
                        ("offline", Some(trouble))
                    } else {
                        ("down", Some(trouble))
                    }
                } else if i < down + busy {
                    ("job-exclusive", None)
                } else {
                    ("free", None)
                };
                let used = state == "job-exclusive";
                let mut node = json!({
                    "Mom": format!("{name}.hpc.example.org"),
                    "ntype": "PBS",
                    "state": state,
                    "pcpus": g.ncpus,
                    "resources_available": {"host": name, "vnode": name, "ncpus": g.ncpus, "ngpus": g.ngpus, "nodetype": g.name},
                    "resources_assigned": if used { json!({"ncpus": g.ncpus, "ngpus": g.ngpus}) } else { json!({}) },
                    "resv_enable": "True",
                    "sharing": "default_shared",
                });
                if let Some(c) = comment {
                    node["comment"] = json!(c);
                }
                nodes.insert(name, node);
            }
        }
        json!({"pbs_version": "2024.1.2", "pbs_server": self.server, "nodes": nodes}).to_string()
    }

    fn counts(q: &Queue) -> (i64, i64, i64) {
        (q.running.value.round() as i64, q.queued.value.round() as i64, q.held.value.round() as i64)
    }

    /// What `qstat -Q -f -F json` would print.
    fn qstat_queues(&self) -> String {
        let queues: Map<String, Value> = self
            .queues
            .iter()
            .map(|q| {
                let (r, qd, h) = Self::counts(q);
                let (r, qd) = if q.route { (0, qd) } else { (r, qd) };
                let queue = json!({
                    "queue_type": if q.route { "Route" } else { "Execution" },
                    "total_jobs": r + qd + h,
                    "state_count": format!("Transit:0 Queued:{qd} Held:{h} Waiting:0 Running:{r} Exiting:0 Begun:0 "),
                    "enabled": if q.enabled { "True" } else { "False" },
                    "started": "True",
                });
                (q.name.to_owned(), queue)
            })
            .collect();
        json!({"pbs_version": "2024.1.2", "pbs_server": self.server, "Queue": queues}).to_string()
    }

    /// What `qstat -B -f -F json` would print.
    fn qstat_server(&self) -> String {
        let (r, q, h) = self.queues.iter().map(Self::counts).fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
        json!({"pbs_version": "2024.1.2", "pbs_server": self.server, "Server": {self.server: {
            "server_state": if self.scheduling { "Scheduling" } else { "Idle" },
            "scheduling": if self.scheduling { "True" } else { "False" },
            "total_jobs": r + q + h,
            "state_count": format!("Transit:0 Queued:{q} Held:{h} Waiting:0 Running:{r} Exiting:0 Begun:0 "),
            "pbs_version": "2024.1.2",
        }}})
        .to_string()
    }

    /// The round's reports, read from the printed outputs by the real `pbs` source.
    fn reports(&self) -> Vec<Value> {
        let outputs = pbs::Outputs {
            nodes: Ok(self.pbsnodes()),
            queues: Ok(self.qstat_queues()),
            server: Ok(self.qstat_server()),
        };
        let opts = pbs::Options { group_by: self.group_by.map(str::to_owned), ..pbs::Options::default() };
        let (readings, problems) = pbs::readings(&outputs, &opts);
        debug_assert!(problems.is_empty(), "{problems:?}");
        readings.iter().map(sitrep_collect::Reading::to_wire).collect()
    }
}

const TROUBLE: &[(&str, &str)] = &[
    ("degraded", "responding slowly"),
    ("degraded", "running at reduced capacity"),
    ("failed", "not responding to health checks"),
    ("failed", "service down"),
    ("starting", "restarting after maintenance"),
    ("unknown", "collector could not determine state"),
];

fn step(p: &mut Part, rng: &mut fastrand::Rng, chances: Chances) {
    for m in &mut p.metrics {
        m.wander(rng);
    }
    if p.status == "ok" {
        if rng.f64() < chances.start {
            let (status, message) = TROUBLE[rng.usize(..TROUBLE.len())];
            p.status = status;
            p.message = message.to_string();
        }
    } else if rng.f64() < chances.end {
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
    let mut clusters = clusters();
    let per_round = (parts.len() + clusters.iter().map(|c| c.reports().len()).sum::<usize>()) as f64;
    let round_every = Duration::from_secs_f64((per_round / args.rate.max(0.001)).max(0.001));
    let chances = Chances::of(args, round_every.as_secs_f64());
    let mut ticker = tokio::time::interval(round_every);
    let mut published = 0u64;
    let mut round = 0u64;
    tracing::info!(components = per_round, every_ms = round_every.as_millis() as u64, "simulating");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = OffsetDateTime::now_utc().format(&Rfc3339)?;
        for p in &mut parts {
            step(p, &mut rng, chances);
        }
        let mut acks = Vec::new();
        for c in &mut clusters {
            c.step(&mut rng, chances);
            let reports = c.reports();
            published += reports.len() as u64;
            let batch = json!({"system": c.system, "observed_at": now, "ttl_seconds": 120, "reports": reports});
            acks.push(js.publish(settings.report_subject(c.system), serde_json::to_vec(&batch)?.into()).await?);
        }
        let mut systems: Vec<&str> = parts.iter().map(|p| p.system).collect();
        systems.dedup();
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

/// An outage or maintenance message to publish: its kind, system and JSON.
pub type Notice = (MessageKind, &'static str, Value);

/// What a centre's operators post, for the demo:
/// - an outage of Derecho's campaign storage, declared 40 minutes ago, with two updates;
/// - maintenance on Derecho's GPU nodes, on now;
/// - a reservation of Casper's A100 nodes for a class tomorrow.
///
/// Ids carry `stamp`, so each demo run posts its own. `earlier` are (kind, system, id) of an
/// earlier run's that are still open: they are resolved or cancelled first, so a demo started
/// again shows one of each.
pub fn demo_notices(now: OffsetDateTime, stamp: &str, earlier: &[(MessageKind, String, String)]) -> Vec<Notice> {
    let at = |minutes: i64| (now + time::Duration::minutes(minutes)).format(&Rfc3339).unwrap_or_default();
    let system_of = |s: &str| if s == "casper" { "casper" } else { "derecho" };
    let mut notices: Vec<Notice> = earlier
        .iter()
        .map(|(kind, system, id)| match kind {
            MessageKind::Outage => (
                *kind,
                system_of(system),
                json!({"system": system, "action": "resolve", "id": id, "message": "Closed when the demo was started again"}),
            ),
            _ => (
                *kind,
                system_of(system),
                json!({"system": system, "action": "cancel", "id": id, "message": "Superseded when the demo was started again"}),
            ),
        })
        .collect();
    let outage = format!("demo-{stamp}-campaign");
    notices.extend([
        (
            MessageKind::Outage,
            "derecho",
            json!({"system": "derecho", "action": "declare", "id": outage, "severity": "minor",
                "title": "Campaign storage: slow file operations",
                "description": "Listing and creating files on /glade/campaign takes seconds. Running jobs are not affected.",
                "components": ["fs/campaign"], "started_at": at(-40), "estimated_resolution": at(80), "observed_at": at(-38)}),
        ),
        (
            MessageKind::Outage,
            "derecho",
            json!({"system": "derecho", "action": "update", "id": outage, "observed_at": at(-25),
                "message": "Investigating: one metadata server answers slowly."}),
        ),
        (
            MessageKind::Outage,
            "derecho",
            json!({"system": "derecho", "action": "update", "id": outage, "observed_at": at(-6),
                "message": "The metadata server is failing over to its partner; the vendor is on site."}),
        ),
        (
            MessageKind::Maintenance,
            "derecho",
            json!({"system": "derecho", "action": "schedule", "id": format!("demo-{stamp}-gpu-firmware"), "kind": "maintenance",
                "title": "GPU firmware update", "description": "The GPU nodes take no jobs while their firmware is updated.",
                "starts_at": at(-20), "ends_at": at(100), "partition": "gpu", "components": ["nodes/gpu", "queue/gpu"]}),
        ),
        (
            MessageKind::Maintenance,
            "casper",
            json!({"system": "casper", "action": "schedule", "id": format!("demo-{stamp}-class"), "kind": "reservation",
                "title": "Training class: GPU programming", "starts_at": at(24 * 60), "ends_at": at(24 * 60 + 240),
                "nodes": 4, "partition": "gpu-a100"}),
        ),
    ]);
    notices
}

/// The demo's outages and windows that an earlier run left open, from the read model.
pub async fn open_demo_notices(db: &tokio_postgres::Client) -> anyhow::Result<Vec<(MessageKind, String, String)>> {
    let mut open = Vec::new();
    for row in db.query("SELECT system, id FROM outages WHERE id LIKE 'demo-%' AND resolved_at IS NULL", &[]).await? {
        open.push((MessageKind::Outage, row.get(0), row.get(1)));
    }
    let windows = "SELECT system, id FROM maintenance_windows \
                   WHERE id LIKE 'demo-%' AND cancelled_at IS NULL AND ends_at > now()";
    for row in db.query(windows, &[]).await? {
        open.push((MessageKind::Maintenance, row.get(0), row.get(1)));
    }
    Ok(open)
}

/// Publishes outage and maintenance messages, in order, each confirmed by JetStream.
pub async fn post_notices(js: &jetstream::Context, settings: &Settings, notices: &[Notice]) -> anyhow::Result<()> {
    for (kind, system, body) in notices {
        js.publish(settings.subject(*kind, system), serde_json::to_vec(body)?.into())
            .await?
            .await
            .context("JetStream did not confirm an outage or maintenance message")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitrep_domain::wire;

    const PAGE_TEST: Chances = Chances { start: 0.3, end: 1.0 };

    #[test]
    fn every_simulated_report_is_valid_wire_format() {
        let now = OffsetDateTime::now_utc();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut parts = centre();
        let mut clusters = clusters();
        for _ in 0..50 {
            for p in &mut parts {
                step(p, &mut rng, PAGE_TEST);
                let payload = serde_json::to_vec(&report(p, true)).unwrap();
                let decoded = wire::decode(p.system, &payload, now).unwrap();
                assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
            }
            for c in &mut clusters {
                c.step(&mut rng, PAGE_TEST);
                let batch = json!({"system": c.system, "reports": c.reports()});
                let decoded = wire::decode(c.system, &serde_json::to_vec(&batch).unwrap(), now).unwrap();
                assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
            }
        }
    }

    #[test]
    fn the_centre_covers_derecho_casper_jupyterhub_and_platform_services() {
        let mut components: Vec<String> = centre().into_iter().map(|p| p.component).collect();
        for c in clusters() {
            components.extend(c.reports().iter().map(|r| r["component"].as_str().unwrap().to_owned()));
        }
        for needle in [
            "login/derecho1",
            "nodes/cpu",
            "nodes/gpu",
            "queue/main",
            "server",
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
            assert!(components.iter().any(|c| c == needle), "{needle}");
        }
    }

    #[test]
    fn the_pbs_clusters_read_back_through_the_pbs_source_with_their_real_sizes() {
        let derecho = &clusters()[0];
        let reports = derecho.reports();
        let nodes = |name: &str| reports.iter().find(|r| r["component"] == name).unwrap().clone();
        let cpu = nodes("nodes/cpu");
        assert_eq!(cpu["metrics"]["nodes_total"], 2488.0);
        assert_eq!(cpu["metrics"]["cpus_total"], 2488.0 * 128.0);
        // A few nodes out for repair do not make the group degraded.
        assert_eq!(cpu["metrics"]["nodes_down"], 9.0);
        assert_eq!(cpu["status"], "ok");
        assert_eq!(nodes("nodes/gpu")["metrics"]["gpus_total"], 82.0 * 4.0);
        assert_eq!(nodes("queue/main")["labels"]["queue_type"], "Route");
    }

    #[test]
    fn a_node_incident_degrades_its_group_and_ends() {
        let mut derecho = clusters().remove(0);
        let mut rng = fastrand::Rng::with_seed(1);
        derecho.step(&mut rng, Chances { start: 1.0, end: 0.0 });
        let reports = derecho.reports();
        let cpu = reports.iter().find(|r| r["component"] == "nodes/cpu").unwrap();
        assert_eq!(cpu["status"], "degraded", "{cpu}");
        assert!(reports.iter().any(|r| r["status"] == "stopped"), "a queue was disabled");
        derecho.step(&mut rng, Chances { start: 0.0, end: 1.0 });
        assert!(derecho.reports().iter().all(|r| r["status"] == "ok"), "{:?}", derecho.reports());
    }

    #[test]
    fn by_default_a_component_is_healthy_for_hours_and_an_incident_lasts_minutes() {
        // At the demo's pace (a round every 2 s), per component.
        let c = Chances::of(&SimulateArgs::default(), 2.0);
        assert!((1.0 / c.start * 2.0 / 3600.0 - 4.0).abs() < 1e-9, "{c:?}");
        assert!((1.0 / c.end * 2.0 / 60.0 - 6.0).abs() < 1e-9, "{c:?}");
        let churn = Chances::of(&SimulateArgs { churn: Some(0.3), ..SimulateArgs::default() }, 2.0);
        assert_eq!((churn.start, churn.end), (0.3, 1.0));
    }

    #[test]
    fn the_demo_notices_are_valid_and_close_an_earlier_runs_first() {
        let now = OffsetDateTime::now_utc();
        let earlier = [(MessageKind::Outage, "derecho".to_owned(), "demo-1-campaign".to_owned())];
        let notices = demo_notices(now, "2", &earlier);
        assert_eq!(notices[0].2["action"], "resolve");
        assert_eq!(notices.iter().filter(|n| n.2["action"] == "update").count(), 2);
        for (kind, system, body) in &notices {
            let decoded = sitrep_domain::notice::decode(*kind, system, &serde_json::to_vec(body).unwrap(), now);
            assert!(decoded.is_ok(), "{body}: {decoded:?}");
        }
    }
}
