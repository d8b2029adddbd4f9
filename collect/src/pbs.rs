//! PBS Pro and OpenPBS: `pbsnodes -a -F json`, `qstat -Q -f -F json` and `qstat -B -f -F json`.
//!
//! What it publishes (the contract that docs/collectors.md documents):
//! - `queue/<name>` for every queue, Execution and Route alike: `running_jobs`, `queued_jobs`,
//!   `held_jobs`, `waiting_jobs` (from `state_count`) and `total_jobs`; label `queue_type`;
//!   `ok` when the queue is enabled and started, else `stopped` saying which.
//! - `nodes/<group>` for each group of nodes: `nodes_total`, `nodes_free`, `nodes_busy`,
//!   `nodes_down`, `nodes_offline`, `cpus_total`, `cpus_used`, `gpus_total`, `gpus_used` and
//!   `utilisation_pct` (CPUs used of total). The group is the configured resource (for example
//!   `resources_available.Qlist`; a comma list puts the node in each group), else the node's
//!   `partition`, else `gpu` or `cpu` by `ngpus`.
//! - `server`: the server's state, with its job counts.
//!
//! How nodes are counted:
//! - A multi-vnode host counts once: the vnodes of one `resources_available.host` are one node,
//!   whose CPUs and GPUs are the sum of its vnodes'. The parent entry that only marks the host
//!   (`in_multivnode_host`, no CPUs of its own) adds nothing when the host has vnodes.
//! - A node is down when its state has `down`, `state-unknown`, `stale` or `unresolvable`;
//!   offline when it has `offline` and is not down; busy when it has `job-busy`,
//!   `job-exclusive`, `resv-exclusive` or `busy`; free when it is `free`. A host is as bad as
//!   its worst vnode. Nodes in other states (provisioning, for example) count only in the total.
//! - Assigned counts below zero, as real servers print, are read as zero.
//! - A group is `degraded` when at least `degraded_share` of its nodes are down or offline, and
//!   `failed` when none of its nodes can take jobs.

use crate::reading::{self, number, pct, Reading};
use serde_json::{Map, Value};
use sitrep_domain::status::Status;
use std::collections::BTreeMap;

pub const NODES: &[&str] = &["pbsnodes", "-a", "-F", "json"];
pub const QUEUES: &[&str] = &["qstat", "-Q", "-f", "-F", "json"];
pub const SERVER: &[&str] = &["qstat", "-B", "-f", "-F", "json"];

/// How the source groups and judges nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The node attribute that names a node's group, as a dotted path such as
    /// `resources_available.Qlist` (matched without regard to case). None: `partition`, else
    /// `gpu`/`cpu`.
    pub group_by: Option<String>,
    /// The share of a group's nodes down or offline from which it is `degraded`.
    pub degraded_share: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self { group_by: None, degraded_share: 0.10 }
    }
}

/// What each command printed, or why it could not be run (the reason names the command).
#[derive(Debug, Clone)]
pub struct Outputs {
    pub nodes: Result<String, String>,
    pub queues: Result<String, String>,
    pub server: Result<String, String>,
}

/// The round's readings, and the problems (each naming its command) that kept some from being
/// read. A command that failed makes the components it alone knows of unknown: the `server`
/// when `qstat -B` fails; queues and node groups cannot be named without their command, so
/// they are only in the problems.
pub fn readings(out: &Outputs, opts: &Options) -> (Vec<Reading>, Vec<String>) {
    let mut readings = Vec::new();
    let mut problems = Vec::new();
    let mut take =
        |command: &[&str], result: &Result<String, String>, parse: &dyn Fn(&str) -> Result<Vec<Reading>, String>| {
            match result
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|text| parse(text).map_err(|why| format!("`{}` {why}", command.join(" "))))
            {
                Ok(r) => readings.extend(r),
                Err(why) => problems.push(why),
            }
        };
    take(QUEUES, &out.queues, &|t| queues(t).map_err(|e| e.0));
    let attribute_seen = std::cell::Cell::new(true);
    take(NODES, &out.nodes, &|t| {
        let (groups, seen) = nodes_grouped(t, opts).map_err(|e| e.0)?;
        attribute_seen.set(seen);
        Ok(groups)
    });
    take(SERVER, &out.server, &|t| server(t).map_err(|e| e.0));
    if let Some(why) = problems.iter().find(|p| p.contains(&SERVER.join(" "))) {
        readings.push(Reading::new("", "server").label("kind", "scheduler").status(Status::Unknown, why.clone()));
    }
    // A `group_by` that no node has is most likely misspelt: say so, rather than quietly group
    // by partition.
    if let (Some(attr), false) = (&opts.group_by, attribute_seen.get()) {
        problems.push(format!(
            "no node has the attribute {attr:?} (group_by): nodes are grouped by partition, else gpu/cpu"
        ));
    }
    (readings, problems)
}

/// `true`, `"True"`, `"true"` and `1` are true.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        Some(v) => number(v).is_some_and(|n| n != 0.0),
        None => false,
    }
}

/// The `Key:count` pairs of a `state_count` such as `"Transit:0 Queued:17 Held:8 Running:7 "`.
fn state_count(v: Option<&Value>) -> BTreeMap<String, f64> {
    v.and_then(Value::as_str)
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|pair| {
            let (k, n) = pair.split_once(':')?;
            Some((k.to_ascii_lowercase(), n.trim().parse::<f64>().ok()?.max(0.0)))
        })
        .collect()
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// The object under `key` of a top-level document (empty when a PBS document has nothing to
/// list), or an error naming the key.
fn section<'a>(doc: &'a Value, key: &str) -> Result<&'a Map<String, Value>, reading::ParseError> {
    match doc.get(key) {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(reading::ParseError::new(format!("printed JSON whose \"{key}\" is not an object"))),
        // PBS leaves the key out when there is nothing to list (a server with no queues).
        None if doc.get("pbs_server").is_some() || doc.get("pbs_version").is_some() => Ok(&EMPTY),
        None => Err(reading::ParseError::new(format!("printed JSON with no \"{key}\""))),
    }
}

/// `queue/<name>` for every queue in `qstat -Q -f -F json`.
pub fn queues(text: &str) -> Result<Vec<Reading>, reading::ParseError> {
    let doc = reading::parse_json(text)?;
    let queues = section(&doc, "Queue")?;
    Ok(queues
        .iter()
        .map(|(name, q)| {
            let counts = state_count(q.get("state_count"));
            let count = |k: &str| counts.get(k).copied().unwrap_or(0.0);
            let total = q.get("total_jobs").and_then(number).map_or_else(|| counts.values().sum(), |n| n.max(0.0));
            let enabled = truthy(q.get("enabled"));
            let started = truthy(q.get("started"));
            let (status, message) = match (enabled, started) {
                (true, true) => (
                    Status::Ok,
                    format!("{} running, {} queued, {} held", count("running"), count("queued"), count("held")),
                ),
                (false, true) => (Status::Stopped, "disabled: takes no new jobs (started)".to_owned()),
                (true, false) => (Status::Stopped, "not started: runs no jobs (enabled)".to_owned()),
                (false, false) => (Status::Stopped, "disabled and not started".to_owned()),
            };
            Reading::new("queue", name)
                .metric("running_jobs", count("running"))
                .metric("queued_jobs", count("queued"))
                .metric("held_jobs", count("held"))
                .metric("waiting_jobs", count("waiting"))
                .metric("total_jobs", total)
                .label("kind", "queue")
                .label("queue_type", q.get("queue_type").and_then(Value::as_str).unwrap_or(""))
                .status(status, message)
        })
        .collect())
}

/// The `server` component from `qstat -B -f -F json`.
pub fn server(text: &str) -> Result<Vec<Reading>, reading::ParseError> {
    let doc = reading::parse_json(text)?;
    let servers = section(&doc, "Server")?;
    let Some((name, s)) = servers.iter().next() else {
        return Err(reading::ParseError::new("printed no server"));
    };
    let state = s.get("server_state").and_then(Value::as_str).unwrap_or("unknown");
    let counts = state_count(s.get("state_count"));
    let count = |k: &str| counts.get(k).copied().unwrap_or(0.0);
    let scheduling = s.get("scheduling").is_none_or(|v| truthy(Some(v)));
    let (status, why) = match state.to_ascii_lowercase().as_str() {
        "active" | "scheduling" if scheduling => (Status::Ok, String::new()),
        "active" | "scheduling" | "idle" => (Status::Degraded, ": scheduling is off".to_owned()),
        "hot_start" => (Status::Starting, ": starting".to_owned()),
        s if s.starts_with("terminating") => (Status::Stopped, ": shutting down".to_owned()),
        _ => (Status::Unknown, ": a state this collector does not know".to_owned()),
    };
    let version = s.get("pbs_version").or_else(|| doc.get("pbs_version")).and_then(Value::as_str).unwrap_or("");
    Ok(vec![Reading::new("", "server")
        .metric("total_jobs", s.get("total_jobs").and_then(number).unwrap_or(0.0).max(0.0))
        .metric("running_jobs", count("running"))
        .metric("queued_jobs", count("queued"))
        .metric("held_jobs", count("held"))
        .label("kind", "scheduler")
        .label("server_state", state)
        .label("host", name.as_str())
        .label("pbs_version", version)
        .status(status, format!("{name} is {state}{why}"))])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum NodeState {
    Free,
    Other,
    Busy,
    Offline,
    Down,
}

fn node_state(raw: &str) -> NodeState {
    let words: Vec<String> = raw.split(',').map(|w| w.trim().to_ascii_lowercase()).collect();
    let has = |w: &[&str]| words.iter().any(|x| w.contains(&x.as_str()));
    if has(&["down", "state-unknown", "stale", "unresolvable"]) {
        NodeState::Down
    } else if has(&["offline"]) {
        NodeState::Offline
    } else if has(&["job-busy", "job-exclusive", "resv-exclusive", "busy"]) {
        NodeState::Busy
    } else if has(&["free"]) {
        NodeState::Free
    } else {
        NodeState::Other
    }
}

/// Looks up a dotted path (`resources_available.Qlist`) in a node, matching keys without
/// regard to case.
fn lookup<'a>(node: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(node, |v, key| v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One physical host, from its vnodes.
#[derive(Debug, Default)]
struct Host {
    state: Option<NodeState>,
    cpus: f64,
    cpus_used: f64,
    gpus: f64,
    gpus_used: f64,
    groups: Vec<String>,
    /// A down or offline vnode's name and comment, for the message.
    trouble: Option<String>,
}

/// `nodes/<group>` for every group in `pbsnodes -a -F json`.
pub fn nodes(text: &str, opts: &Options) -> Result<Vec<Reading>, reading::ParseError> {
    nodes_grouped(text, opts).map(|(groups, _)| groups)
}

/// [`nodes`], and whether some node has the `group_by` attribute (true when none is set or there
/// are no nodes).
fn nodes_grouped(text: &str, opts: &Options) -> Result<(Vec<Reading>, bool), reading::ParseError> {
    let doc = reading::parse_json(text)?;
    let nodes = section(&doc, "nodes")?;
    // Hosts that have vnodes of their own: their parent entry is only a marker.
    let host_of = |name: &str, n: &Value| {
        lookup(n, "resources_available.host")
            .and_then(Value::as_str)
            .map_or_else(|| name.split('[').next().unwrap_or(name).to_owned(), str::to_owned)
    };
    let mut with_vnodes = std::collections::BTreeSet::new();
    for (name, n) in nodes {
        if name.contains('[') {
            with_vnodes.insert(host_of(name, n));
        }
    }
    let mut attribute_seen = false;
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    for (name, n) in nodes {
        let host = host_of(name, n);
        let is_marker = !name.contains('[') && with_vnodes.contains(&host);
        if is_marker && lookup(n, "resources_available.ncpus").and_then(number).unwrap_or(0.0) == 0.0 {
            continue;
        }
        let state = node_state(n.get("state").and_then(Value::as_str).unwrap_or(""));
        let h = hosts.entry(host).or_default();
        let res = |path: &str| lookup(n, path).and_then(number).unwrap_or(0.0).max(0.0);
        h.cpus += res("resources_available.ncpus");
        h.cpus_used += res("resources_assigned.ncpus");
        h.gpus += res("resources_available.ngpus");
        h.gpus_used += res("resources_assigned.ngpus");
        if state >= NodeState::Offline && h.state.is_none_or(|s| state > s) {
            let comment = n.get("comment").and_then(Value::as_str).unwrap_or("");
            h.trouble = Some(if comment.is_empty() { name.clone() } else { format!("{name}: {comment}") });
        }
        h.state = Some(h.state.map_or(state, |s| s.max(state)));
        let by_attribute = opts.group_by.as_ref().and_then(|path| lookup(n, path)).and_then(value_text);
        attribute_seen |= by_attribute.is_some();
        let group = by_attribute.or_else(|| n.get("partition").and_then(value_text));
        for g in group.iter().flat_map(|g| g.split(',')).map(str::trim).filter(|g| !g.is_empty()) {
            if !h.groups.iter().any(|x| x == g) {
                h.groups.push(g.to_owned());
            }
        }
    }
    let mut groups: BTreeMap<String, Vec<&Host>> = BTreeMap::new();
    for h in hosts.values() {
        if h.groups.is_empty() {
            groups.entry(if h.gpus > 0.0 { "gpu" } else { "cpu" }.to_owned()).or_default().push(h);
        }
        for g in &h.groups {
            groups.entry(g.clone()).or_default().push(h);
        }
    }
    let readings = groups.into_iter().map(|(name, hosts)| group_reading(&name, &hosts, opts)).collect();
    Ok((readings, attribute_seen || opts.group_by.is_none() || nodes.is_empty()))
}

fn group_reading(name: &str, hosts: &[&Host], opts: &Options) -> Reading {
    let n = |s: NodeState| hosts.iter().filter(|h| h.state == Some(s)).count() as f64;
    let sum = |f: fn(&Host) -> f64| hosts.iter().map(|h| f(h)).sum::<f64>();
    let total = hosts.len() as f64;
    let (free, busy, down, offline) =
        (n(NodeState::Free), n(NodeState::Busy), n(NodeState::Down), n(NodeState::Offline));
    let (cpus, cpus_used) = (sum(|h| h.cpus), sum(|h| h.cpus_used).min(sum(|h| h.cpus)));
    let (gpus, gpus_used) = (sum(|h| h.gpus), sum(|h| h.gpus_used).min(sum(|h| h.gpus)));
    let mut message = format!("{total} nodes: {free} free, {busy} busy, {down} down, {offline} offline");
    let troubled: Vec<&str> = hosts.iter().filter_map(|h| h.trouble.as_deref()).take(3).collect();
    if !troubled.is_empty() {
        message.push_str(&format!(" ({})", troubled.join("; ")));
    }
    let status = if total == 0.0 || down + offline >= total {
        Status::Failed
    } else if (down + offline) / total >= opts.degraded_share {
        Status::Degraded
    } else {
        Status::Ok
    };
    if status == Status::Failed {
        message = format!("no node can take jobs: {message}");
    }
    Reading::new("nodes", name)
        .metric("nodes_total", total)
        .metric("nodes_free", free)
        .metric("nodes_busy", busy)
        .metric("nodes_down", down)
        .metric("nodes_offline", offline)
        .metric("cpus_total", cpus)
        .metric("cpus_used", cpus_used)
        .metric("gpus_total", gpus)
        .metric("gpus_used", gpus_used)
        .metric("utilisation_pct", pct(cpus_used, cpus))
        .label("kind", "node_group")
        .status(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLARIS_NODES: &str =
        include_str!("../tests/fixtures/hpc/pbs-pbsnodes-a-json-alcf-polaris-2022.1.1-excerpt.json");
    const GPU_NODE: &str = include_str!("../tests/fixtures/hpc/pbs-pbsnodes-av-json-0nebody-2025.2.0.json");
    const VNODES: &str = include_str!("../tests/fixtures/hpc/pbs-pbsnodes-av-json-vnodes-0nebody-2024.1.2.json");
    const BUGGY_SUMMARY: &str =
        include_str!("../tests/fixtures/hpc/pbs-pbsnodes-vSj-F-json-openpbs-issue1333-18.1.4-BUGGY.json");
    const AURORA_QUEUES: &str = include_str!("../tests/fixtures/hpc/pbs-qstat-Q-f-json-alcf-aurora-2022.1.7.json");
    const POLARIS_QUEUES: &str =
        include_str!("../tests/fixtures/hpc/pbs-qstat-Q-f-json-alcf-polaris-2022.1.1-excerpt.json");
    const AURORA_SERVER: &str = include_str!("../tests/fixtures/hpc/pbs-qstat-B-f-json-alcf-aurora-2022.1.7.json");

    fn find<'a>(rs: &'a [Reading], component: &str) -> &'a Reading {
        rs.iter().find(|r| r.component == component).unwrap_or_else(|| panic!("no {component} in {rs:#?}"))
    }

    fn metrics(r: &Reading, names: &[&str]) -> Vec<f64> {
        names.iter().map(|n| r.get(n)).collect()
    }

    const QUEUE_METRICS: &[&str] = &["running_jobs", "queued_jobs", "held_jobs", "waiting_jobs", "total_jobs"];
    const NODE_METRICS: &[&str] = &[
        "nodes_total",
        "nodes_free",
        "nodes_busy",
        "nodes_down",
        "nodes_offline",
        "cpus_total",
        "cpus_used",
        "gpus_total",
        "gpus_used",
        "utilisation_pct",
    ];

    #[test]
    fn every_polaris_queue_is_read_with_its_counts_type_and_state() {
        let rs = queues(POLARIS_QUEUES).unwrap();
        assert_eq!(rs.len(), 4);
        let debug = find(&rs, "queue/debug");
        assert_eq!(metrics(debug, QUEUE_METRICS), [7.0, 17.0, 8.0, 0.0, 32.0]);
        assert_eq!(debug.status, Status::Ok);
        assert_eq!(debug.labels["queue_type"], "Execution");
        let prod = find(&rs, "queue/prod");
        assert_eq!(metrics(prod, QUEUE_METRICS), [0.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(prod.labels["queue_type"], "Route");
        let small = find(&rs, "queue/small");
        assert_eq!(metrics(small, QUEUE_METRICS), [0.0, 8.0, 10.0, 0.0, 18.0]);
        let run_next = find(&rs, "queue/run_next");
        assert_eq!(run_next.status, Status::Stopped);
        assert_eq!(run_next.message, "disabled and not started");
    }

    #[test]
    fn every_aurora_queue_is_read_and_stopped_ones_say_why() {
        let rs = queues(AURORA_QUEUES).unwrap();
        assert_eq!(rs.len(), 34);
        assert_eq!(rs.iter().filter(|r| r.labels["queue_type"] == "Route").count(), 5);
        assert_eq!(metrics(find(&rs, "queue/tiny"), QUEUE_METRICS), [42.0, 16.0, 18.0, 0.0, 79.0]);
        assert_eq!(metrics(find(&rs, "queue/prod"), QUEUE_METRICS), [0.0, 73.0, 2.0, 0.0, 75.0]);
        assert_eq!(metrics(find(&rs, "queue/R5515331"), QUEUE_METRICS), [1.0, 0.0, 7.0, 0.0, 8.0]);
        let lustre = find(&rs, "queue/lustre_scaling");
        assert_eq!(
            (lustre.status, lustre.message.as_str()),
            (Status::Stopped, "disabled: takes no new jobs (started)")
        );
        let resv = find(&rs, "queue/R5822932");
        assert_eq!((resv.status, resv.message.as_str()), (Status::Stopped, "not started: runs no jobs (enabled)"));
        assert_eq!(rs.iter().filter(|r| r.status == Status::Stopped).count(), 4);
        assert_eq!(rs.iter().map(|r| r.get("total_jobs")).sum::<f64>(), 257.0);
    }

    #[test]
    fn polaris_nodes_without_partition_are_grouped_by_gpus_and_the_down_one_is_named() {
        let rs = nodes(POLARIS_NODES, &Options::default()).unwrap();
        assert_eq!(rs.len(), 1);
        let gpu = find(&rs, "nodes/gpu");
        assert_eq!(metrics(gpu, NODE_METRICS), [3.0, 1.0, 1.0, 1.0, 0.0, 192.0, 1.0, 12.0, 0.0, 0.5]);
        assert_eq!(gpu.status, Status::Degraded);
        assert_eq!(
            gpu.message,
            "3 nodes: 1 free, 1 busy, 1 down, 0 offline (x3009c0s19b0n0: node down: communication closed)"
        );
    }

    #[test]
    fn a_configured_resource_groups_nodes_and_a_list_puts_a_node_in_each_group() {
        let opts = Options { group_by: Some("resources_available.Qlist".into()), ..Options::default() };
        let rs = nodes(GPU_NODE, &opts).unwrap();
        let names: Vec<&str> = rs.iter().map(|r| r.component.as_str()).collect();
        assert_eq!(names, ["nodes/ded_gpu_b", "nodes/eb_build", "nodes/gpu_batch_exec"]);
        for r in &rs {
            assert_eq!(metrics(r, NODE_METRICS), [1.0, 1.0, 0.0, 0.0, 0.0, 168.0, 96.0, 4.0, 4.0, 57.1]);
            assert_eq!(r.status, Status::Ok);
        }
        let by_partition = nodes(GPU_NODE, &Options::default()).unwrap();
        assert_eq!(by_partition.len(), 1);
        assert_eq!(by_partition[0].component, "nodes/gpu_batch");
    }

    #[test]
    fn a_group_by_attribute_that_no_node_has_is_a_problem_not_a_silent_fallback() {
        let out = Outputs {
            nodes: Ok(POLARIS_NODES.into()),
            queues: Ok(POLARIS_QUEUES.into()),
            server: Ok(AURORA_SERVER.into()),
        };
        let opts = Options { group_by: Some("resources_available.Qlist".into()), ..Options::default() };
        let (rs, problems) = readings(&out, &opts);
        assert_eq!(problems, ["no node has the attribute \"resources_available.Qlist\" (group_by): nodes are grouped by partition, else gpu/cpu"]);
        assert!(rs.iter().any(|r| r.component == "nodes/gpu"));
        let fine = Options { group_by: Some("resources_available.gputype".into()), ..Options::default() };
        assert_eq!(readings(&out, &fine).1, Vec::<String>::new());
    }

    #[test]
    fn a_multi_vnode_host_counts_once_through_its_vnodes() {
        let rs = nodes(VNODES, &Options::default()).unwrap();
        assert_eq!(rs.len(), 1);
        let r = find(&rs, "nodes/cpu_inter");
        assert_eq!(metrics(r, NODE_METRICS), [1.0, 1.0, 0.0, 0.0, 0.0, 376.0, 42.0, 0.0, 0.0, 11.2]);
        let by_qlist =
            nodes(VNODES, &Options { group_by: Some("resources_available.qlist".into()), ..Options::default() })
                .unwrap();
        assert_eq!(by_qlist.len(), 2);
        assert_eq!(find(&by_qlist, "nodes/ded_cpu_i").get("nodes_total"), 1.0);
    }

    #[test]
    fn negative_assigned_counts_are_read_as_zero() {
        let text = r#"{"nodes": {"n1": {"state": "free", "resources_available": {"ncpus": 8, "host": "n1"},
            "resources_assigned": {"ncpus": -230256, "ngpus": -3}}}}"#;
        let rs = nodes(text, &Options::default()).unwrap();
        assert_eq!(metrics(&rs[0], &["cpus_used", "gpus_used", "utilisation_pct"]), [0.0, 0.0, 0.0]);
    }

    #[test]
    fn a_group_whose_nodes_are_all_down_or_offline_has_failed() {
        let text = r#"{"nodes": {"a": {"state": "down,offline", "partition": "p"}, "b": {"state": "offline", "partition": "p"}}}"#;
        let rs = nodes(text, &Options::default()).unwrap();
        assert_eq!(metrics(&rs[0], &["nodes_total", "nodes_down", "nodes_offline"]), [2.0, 1.0, 1.0]);
        assert_eq!(rs[0].status, Status::Failed);
        assert!(rs[0].message.starts_with("no node can take jobs: 2 nodes"), "{}", rs[0].message);
    }

    #[test]
    fn the_aurora_server_is_scheduling_with_its_job_counts() {
        let rs = server(AURORA_SERVER).unwrap();
        assert_eq!(rs[0].component, "server");
        assert_eq!(rs[0].status, Status::Ok);
        assert_eq!(
            metrics(&rs[0], &["total_jobs", "running_jobs", "queued_jobs", "held_jobs"]),
            [11247.0, 72.0, 150.0, 44.0]
        );
        assert_eq!(rs[0].message, "aurora-pbs-0001.hostmgmt.cm.aurora.alcf.anl.gov is Scheduling");
        assert_eq!(rs[0].labels["pbs_version"], "2022.1.7.20241004133957");
    }

    #[test]
    fn a_server_with_nothing_to_list_leaves_the_key_out_and_that_is_no_error() {
        let text = r#"{"timestamp": 1, "pbs_version": "2024.1.2", "pbs_server": "pbs"}"#;
        assert_eq!(queues(text).unwrap(), vec![]);
        assert!(queues(r#"{"something": "else"}"#).unwrap_err().0.contains("no \"Queue\""));
    }

    #[test]
    fn a_server_with_scheduling_off_is_degraded() {
        let text = r#"{"Server": {"pbs1": {"server_state": "Idle", "scheduling": "False", "total_jobs": 3}}}"#;
        let r = &server(text).unwrap()[0];
        assert_eq!((r.status, r.message.as_str()), (Status::Degraded, "pbs1 is Idle: scheduling is off"));
    }

    #[test]
    fn the_summary_json_of_pbsnodes_minus_s_gives_no_usable_figures_but_no_panic() {
        // Its keys are "State" and "ncpus f/t": the node is offline by "State" only; nothing is
        // made up from the summary columns.
        let rs = nodes(BUGGY_SUMMARY, &Options::default()).unwrap();
        assert_eq!(metrics(&rs[0], &["nodes_total", "cpus_total"]), [1.0, 0.0]);
    }

    #[test]
    fn output_with_unquoted_values_is_refused_with_where_it_broke() {
        let text = "{\n \"Queue\":{\n  \"workq\":{\n   \"queue_type\":Execution,\n   \"enabled\":True\n  }\n }\n}";
        let e = queues(text).unwrap_err();
        assert!(e.0.starts_with("printed invalid JSON: expected value at line 4"), "{e}");
    }

    #[test]
    fn a_failed_command_becomes_a_problem_and_the_server_unknown_while_the_rest_is_read() {
        let out = Outputs {
            nodes: Ok(POLARIS_NODES.into()),
            queues: Ok(AURORA_QUEUES[..AURORA_QUEUES.len() / 2].into()),
            server: Err("`qstat -B -f -F json` exited with status 1: cannot connect to server".into()),
        };
        let (rs, problems) = readings(&out, &Options::default());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("`qstat -Q -f -F json` printed invalid JSON: EOF"), "{problems:?}");
        assert_eq!(problems[1], "`qstat -B -f -F json` exited with status 1: cannot connect to server");
        let server = find(&rs, "server");
        assert_eq!((server.status, server.message.as_str()), (Status::Unknown, problems[1].as_str()));
        assert_eq!(find(&rs, "nodes/gpu").get("nodes_total"), 3.0);
    }

    #[test]
    fn no_truncation_of_any_fixture_panics() {
        for text in [POLARIS_NODES, GPU_NODE, VNODES, BUGGY_SUMMARY, AURORA_QUEUES, POLARIS_QUEUES, AURORA_SERVER] {
            for cut in (0..text.len()).step_by(97).filter(|&c| text.is_char_boundary(c)) {
                let t = &text[..cut];
                let _ = (nodes(t, &Options::default()), queues(t), server(t));
            }
        }
    }

    #[test]
    fn every_reading_is_valid_wire_format() {
        let mut all = queues(AURORA_QUEUES).unwrap();
        all.extend(nodes(VNODES, &Options::default()).unwrap());
        all.extend(server(AURORA_SERVER).unwrap());
        let batch =
            serde_json::json!({"system": "aurora", "reports": all.iter().map(Reading::to_wire).collect::<Vec<_>>()});
        let decoded = sitrep_domain::wire::decode(
            "aurora",
            &serde_json::to_vec(&batch).unwrap(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        assert_eq!(decoded.reports.len(), all.len());
    }
}
