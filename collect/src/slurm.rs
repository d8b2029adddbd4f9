//! Slurm: one reading per partition, from `scontrol show nodes --json`, `scontrol show partitions --json`
//! and `squeue --json`, or from `sinfo`/`squeue` text where Slurm has no JSON plugin.
//!
//! # Contract
//! Every partition becomes `partition/<name>` with the metrics `nodes_total`, `nodes_idle`,
//! `nodes_allocated`, `nodes_mixed`, `nodes_down`, `nodes_drain`, `cpus_total`, `cpus_allocated`,
//! `gpus_total`, `gpus_allocated`, `utilisation_pct` (allocated CPUs of all CPUs), `running_jobs` and
//! `pending_jobs`, and the labels `kind=partition` plus `data_parser` (`v0.0.42`) and `slurm_version`
//! (`24.11.5`) when the JSON's `meta` says them.
//!
//! No data_parser version is pinned: objects are read by shape, so v0.0.37 (Slurm 21.08) to v0.0.44
//! (25.11) all work. States may be a string (`"idle"`, v0.0.37, flags in `state_flags`) or a list
//! (`["IDLE","DRAIN"]`), in any case; numbers may be plain or `{"set","infinite","number"}`.
//!
//! - A node counts in every partition its own `partitions` list names (every version has it). The
//!   partition's `nodes.configured` hostlist is not expanded; it is only quoted when no node names
//!   the partition.
//! - A node is *down* when its states include `DOWN` or `NOT_RESPONDING`, *drained* when they include
//!   `DRAIN`, `DRAINING`, `DRAINED`, `FAIL` or `FAILING` and it is not down. `nodes_idle`,
//!   `nodes_allocated` and `nodes_mixed` count by base state (the first word) *only the nodes that
//!   are neither down nor drained*, so an `IDLE+DRAIN` node is in `nodes_drain` alone and the six
//!   counts add up to `nodes_total` but for nodes in other base states (`FUTURE`, `UNKNOWN`).
//! - CPUs are `cpus` and `alloc_cpus` summed over all the partition's nodes, whatever their state.
//! - GPUs are the `gpu` entries of `gres` (total) and `gres_used` (allocated), MIG slices included.
//! - A job counts by its base state (`RUNNING`, or `CONFIGURING` while its nodes boot; `PENDING`) in
//!   every partition of its `partition` field (`"a,b"` for a job pending in two). Jobs in partitions
//!   that are not published are ignored.
//! - Status: `failed` when the partition is not `UP` or none of its nodes can run jobs (all down or
//!   drained, or no node at all); `degraded` when the share of its nodes down or drained reaches
//!   [`Options::degraded_share`]; `ok` otherwise. The message always summarises the figures.
//!
//! # Failure is data
//! The runner hands over each command's result as `Result<String, String>` (`Err` already names the
//! command). [`readings`] returns the readings it can make and, separately, the problems (each naming
//! its command) for the runner's own `collector/slurm` component:
//! - partitions unreadable but nodes readable: the partitions are taken from the nodes' lists;
//! - a partition whose health depends on a command that failed (nodes, or its state) is `unknown`,
//!   with the problem in its message, unless it is certainly `failed` from what is known;
//! - `squeue` failing leaves the health alone (it does not depend on jobs): the job metrics are left
//!   out and the message says why;
//! - nothing known about partitions at all: no readings, only problems.
//!
//! # Text fallback
//! When Slurm was built without the JSON serializer, or is older than 23.02 (`scontrol` has no
//! `--json` before 23.02, only `sinfo` and `squeue` do), [`needs_text_fallback`] recognises the error;
//! then run [`SINFO_TEXT`] and [`SQUEUE_TEXT`] and give their results to [`readings_from_text`]. The
//! formats exist in Slurm 21.08 and later:
//! - `sinfo -h -N -O NodeList:0|,PartitionName:0|,Available:0|,StateComplete:0|,CPUsState:0|,Gres:0|,GresUsed:0`
//!   prints one line per node and partition (`-N`), every field unpadded (size `0`) and followed by
//!   `|`: `cn04|standard|up|idle+drain|0/0/64/64|(null)|gpu:0`. `StateComplete` is the base state and
//!   every flag (`idle+drain+not_responding`), `CPUsState` is allocated/idle/other/total CPUs,
//!   `GresUsed` exists only in `-O` form, `Available` is the partition's `up`/`down`/`drain`/`inactive`.
//!   A partition without nodes prints no line in `-N` mode, so it is not published by the fallback.
//! - `squeue -h -o %P|%T` prints `partition|STATE` per job (`a,b|PENDING` for a job pending in two
//!   partitions). Where squeue shows a state flag instead of the base state (`COMPLETING`,
//!   `REQUEUED`, ...) the job is not counted; `CONFIGURING` counts as running, as in the JSON path.

use crate::reading::{self, Reading};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use sitrep_domain::status::Status;
use std::collections::BTreeMap;

/// The node list, with every node's state, partitions, CPUs and GRES.
pub const NODES: &[&str] = &["scontrol", "show", "nodes", "--json"];
/// The partition list, with every partition's state.
pub const PARTITIONS: &[&str] = &["scontrol", "show", "partitions", "--json"];
/// The job list (pending, running and recently finished jobs).
pub const JOBS: &[&str] = &["squeue", "--json"];
/// The text fallback for [`NODES`] and [`PARTITIONS`]: one `|`-separated line per node and partition.
pub const SINFO_TEXT: &[&str] = &[
    "sinfo",
    "-h",
    "-N",
    "-O",
    "NodeList:0|,PartitionName:0|,Available:0|,StateComplete:0|,CPUsState:0|,Gres:0|,GresUsed:0",
];
/// The text fallback for [`JOBS`]: `partition|STATE` per job.
pub const SQUEUE_TEXT: &[&str] = &["squeue", "-h", "-o", "%P|%T"];

/// How partitions are judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// A partition is `degraded` when at least this share (0 to 1) of its nodes is down or drained,
    /// and at least one is. Default 0.10.
    pub degraded_share: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self { degraded_share: 0.10 }
    }
}

/// What the three JSON commands printed (`Ok`), or why one gave nothing to read (`Err`, naming it).
#[derive(Debug, Clone)]
pub struct Outputs {
    /// [`NODES`]
    pub nodes: Result<String, String>,
    /// [`PARTITIONS`]
    pub partitions: Result<String, String>,
    /// [`JOBS`]
    pub jobs: Result<String, String>,
}

/// Readings from the JSON commands' outputs, and the problems met (each naming its command).
pub fn readings(out: &Outputs, opts: &Options) -> (Vec<Reading>, Vec<String>) {
    let mut problems = Vec::new();
    let mut versions = Versions::default();
    let nodes = parse_nodes(&out.nodes, &mut problems, &mut versions);
    let partitions = parse_partitions(&out.partitions, &mut problems, &mut versions);
    let jobs = parse_jobs(&out.jobs, &mut problems, &mut versions);
    (assemble(&partitions, &nodes, &jobs, &versions, opts), problems)
}

/// Readings from the text fallback ([`SINFO_TEXT`], [`SQUEUE_TEXT`]), and the problems met.
pub fn readings_from_text(
    sinfo: &Result<String, String>,
    squeue: &Result<String, String>,
    opts: &Options,
) -> (Vec<Reading>, Vec<String>) {
    let mut problems = Vec::new();
    let parsed = match sinfo {
        Ok(text) => parse_sinfo_text(text, &mut problems),
        Err(why) => Err(why.clone()),
    };
    let (partitions, nodes) = match parsed {
        Ok(both) => both,
        Err(why) => {
            problems.push(why);
            return (Vec::new(), problems);
        }
    };
    let jobs = match squeue {
        Ok(text) => parse_squeue_text(text),
        Err(why) => Err(why.clone()),
    };
    if let Err(why) = &jobs {
        problems.push(why.clone());
    }
    (assemble(&Ok(partitions), &Ok(nodes), &jobs, &Versions::default(), opts), problems)
}

/// Whether a JSON command's output or error says Slurm cannot print JSON here (the serializer or
/// data_parser plugin is missing, or the command predates `--json`), so the text fallback is needed.
pub fn needs_text_fallback(output_or_error: &str) -> bool {
    let text = output_or_error.trim_start();
    if text.starts_with('{') {
        return false; // JSON, even if broken: that is a different problem
    }
    let lower = text.to_ascii_lowercase();
    lower.contains("serializer")
        || lower.contains("data_parser")
        || lower.contains("application/json")
        || (lower.contains("unrecognized option") && lower.contains("--json"))
}

// ---------------------------------------------------------------------------------------------
// The model every input is read into

/// One node, as far as partitions care.
#[derive(Debug, Clone, Default, PartialEq)]
struct Node {
    /// Upper-case state words, the base state first (`["IDLE", "DRAIN"]`).
    states: Vec<String>,
    partitions: Vec<String>,
    cpus: f64,
    alloc_cpus: f64,
    gpus: f64,
    gpus_used: f64,
}

impl Node {
    fn has(&self, words: &[&str]) -> bool {
        self.states.iter().any(|s| words.contains(&s.as_str()))
    }

    fn is_down(&self) -> bool {
        self.has(&["DOWN", "NOT_RESPONDING"])
    }

    fn is_drained(&self) -> bool {
        !self.is_down() && self.has(&["DRAIN", "DRAINING", "DRAINED", "FAIL", "FAILING"])
    }

    fn base(&self) -> &str {
        self.states.first().map_or("", String::as_str)
    }
}

/// One partition.
#[derive(Debug, Clone, PartialEq)]
struct Partition {
    name: String,
    /// Upper-case state words (`["UP"]`); empty when not reported, which is taken as up.
    state: Vec<String>,
    /// The partition's own node list (`cn[1-4]`, 4 nodes), quoted when no node names the partition.
    configured: Option<String>,
}

/// Running and pending jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct JobCount {
    running: u64,
    pending: u64,
}

/// Jobs per partition, and over all partitions (a job in two partitions counts once there).
#[derive(Debug, Clone, Default, PartialEq)]
struct Jobs {
    by_partition: BTreeMap<String, JobCount>,
    total: JobCount,
}

impl Jobs {
    /// Counts one job by its state words (base first) in each partition of `partitions` (`"a,b"`).
    fn add(&mut self, partitions: &str, states: &[String]) {
        let (running, pending) = match states.first().map(String::as_str) {
            Some("RUNNING" | "CONFIGURING") => (1, 0),
            Some("PENDING") => (0, 1),
            _ => return,
        };
        self.total.running += running;
        self.total.pending += pending;
        let mut seen: Vec<&str> = Vec::new();
        for name in partitions.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let count = self.by_partition.entry(name.to_owned()).or_default();
            count.running += running;
            count.pending += pending;
        }
    }
}

/// The data_parser and Slurm versions the JSON's `meta` names.
#[derive(Debug, Clone, Default, PartialEq)]
struct Versions {
    data_parser: Option<String>,
    slurm: Option<String>,
}

impl Versions {
    /// Fills in what is still unknown from one output's `meta`: `plugin.data_parser` (v0.0.40+),
    /// `plugins.data_parser` (v0.0.39) or `plugin.type` `openapi/v0.0.37`; `slurm.release` (v0.0.40+)
    /// or `Slurm.release` (v0.0.37 to v0.0.39), else `version.{major,minor,micro}`.
    fn learn(&mut self, meta: &Value) {
        let plugin = meta.get("plugin").or_else(|| meta.get("plugins"));
        if self.data_parser.is_none() {
            let from_parser = plugin
                .and_then(|p| p.get("data_parser"))
                .and_then(Value::as_str)
                .map(|s| s.rsplit('/').next().unwrap_or(s).trim());
            let from_type = plugin
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str)
                .and_then(|t| t.strip_prefix("openapi/"))
                .filter(|v| v.starts_with("v0."));
            self.data_parser = from_parser.filter(|v| !v.is_empty()).or(from_type).map(str::to_owned);
        }
        if self.slurm.is_none() {
            let slurm = meta.get("slurm").or_else(|| meta.get("Slurm"));
            let release = slurm.and_then(|s| s.get("release")).and_then(Value::as_str).map(str::trim);
            self.slurm = release.filter(|r| !r.is_empty()).map(str::to_owned).or_else(|| {
                let version = slurm?.get("version")?;
                let part = |k: &str| version.get(k).and_then(reading::number).filter(|n| *n >= 0.0);
                Some(format!("{}.{:02}.{}", part("major")?, part("minor")? as u64, part("micro")?))
            });
        }
    }

    fn label(&self, reading: Reading) -> Reading {
        let reading = match &self.data_parser {
            Some(v) => reading.label("data_parser", v.as_str()),
            None => reading,
        };
        match &self.slurm {
            Some(v) => reading.label("slurm_version", v.as_str()),
            None => reading,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON: only the fields used are kept (squeue --json prints kilobytes per job), each as a Value so
// that any shape is accepted and read tolerantly below.

#[derive(Deserialize, Default)]
#[serde(default)]
struct NodesDoc {
    meta: Value,
    errors: Value,
    nodes: Option<Vec<NodeJson>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NodeJson {
    state: Value,
    state_flags: Value,
    partitions: Value,
    cpus: Value,
    alloc_cpus: Value,
    alloc_idle_cpus: Value,
    idle_cpus: Value,
    gres: Value,
    gres_used: Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PartitionsDoc {
    meta: Value,
    errors: Value,
    partitions: Option<Vec<PartitionJson>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PartitionJson {
    name: Value,
    /// v0.0.37/38: `"UP"`.
    state: Value,
    /// v0.0.39+: `{"state": ["UP"]}`.
    partition: Value,
    /// v0.0.37/38: `"cn[1-4]"`; v0.0.39+: `{"configured": "cn[1-4]", "total": 4}`.
    nodes: Value,
    total_nodes: Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JobsDoc {
    meta: Value,
    errors: Value,
    jobs: Option<Vec<JobJson>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JobJson {
    job_state: Value,
    partition: Value,
}

fn command_line(argv: &[&str]) -> String {
    argv.join(" ")
}

/// Decodes one command's JSON output; the error names the command and says what was printed.
fn decode<D: DeserializeOwned>(argv: &[&str], out: &Result<String, String>) -> Result<D, String> {
    let text = out.as_ref().map_err(Clone::clone)?;
    serde_json::from_str(text).map_err(|e| {
        let why = if e.is_data() {
            format!("printed JSON of an unexpected shape: {e}")
        } else {
            reading::parse_json(text).err().map_or_else(|| e.to_string(), |p| p.0)
        };
        format!("`{}` {why}", command_line(argv))
    })
}

/// The list a document should hold, or why it cannot be used. Errors Slurm reported beside a
/// usable list become problems too.
fn checked_list<T>(
    argv: &[&str],
    key: &str,
    list: Option<Vec<T>>,
    errors: &Value,
    problems: &mut Vec<String>,
) -> Result<Vec<T>, String> {
    let reported = slurm_errors(errors).map(|e| format!("`{}` reported: {e}", command_line(argv)));
    match (list, reported) {
        (Some(list), None) => Ok(list),
        // An empty list beside an error is the error (access denied, controller down...).
        (Some(list), Some(reported)) if !list.is_empty() => {
            problems.push(reported);
            Ok(list)
        }
        (_, Some(reported)) => Err(reported),
        (None, None) => Err(format!("`{}` printed JSON without a \"{key}\" list", command_line(argv))),
    }
}

/// The `errors` Slurm listed, in words (at most three), or None.
fn slurm_errors(errors: &Value) -> Option<String> {
    let list = errors.as_array()?;
    let words: Vec<String> = list
        .iter()
        .map(|e| {
            ["description", "error"]
                .iter()
                .filter_map(|k| e.get(*k).and_then(Value::as_str))
                .find(|s| !s.trim().is_empty())
                .map_or_else(|| e.to_string(), |s| s.trim().to_owned())
        })
        .take(3)
        .collect();
    (!words.is_empty()).then(|| words.join("; "))
}

fn parse_nodes(
    out: &Result<String, String>,
    problems: &mut Vec<String>,
    versions: &mut Versions,
) -> Result<Vec<Node>, String> {
    let result = decode::<NodesDoc>(NODES, out).and_then(|doc| {
        versions.learn(&doc.meta);
        checked_list(NODES, "nodes", doc.nodes, &doc.errors, problems)
    });
    let list = result.inspect_err(|why| problems.push(why.clone()))?;
    Ok(list.iter().map(node_from_json).collect())
}

fn node_from_json(n: &NodeJson) -> Node {
    let mut states = state_words(&n.state);
    states.extend(state_words(&n.state_flags));
    let cpus = reading::number(&n.cpus).unwrap_or(0.0);
    let alloc_cpus = reading::number(&n.alloc_cpus)
        .or_else(|| Some(cpus - reading::number(&n.alloc_idle_cpus).or_else(|| reading::number(&n.idle_cpus))?))
        .unwrap_or(0.0)
        .max(0.0);
    Node {
        states,
        partitions: names(&n.partitions),
        cpus,
        alloc_cpus,
        gpus: gpus(n.gres.as_str().unwrap_or("")),
        gpus_used: gpus(n.gres_used.as_str().unwrap_or("")),
    }
}

fn parse_partitions(
    out: &Result<String, String>,
    problems: &mut Vec<String>,
    versions: &mut Versions,
) -> Result<Vec<Partition>, String> {
    let result = decode::<PartitionsDoc>(PARTITIONS, out).and_then(|doc| {
        versions.learn(&doc.meta);
        checked_list(PARTITIONS, "partitions", doc.partitions, &doc.errors, problems)
    });
    let list = result.inspect_err(|why| problems.push(why.clone()))?;
    let mut partitions: Vec<Partition> = Vec::new();
    for p in &list {
        let Some(name) = p.name.as_str().map(str::trim).filter(|n| !n.is_empty()) else { continue };
        if partitions.iter().any(|known| known.name == name) {
            continue;
        }
        let state = match p.partition.get("state") {
            Some(state) => state_words(state),
            None => state_words(&p.state),
        };
        let hosts = p.nodes.get("configured").unwrap_or(&p.nodes).as_str().map(str::trim).filter(|h| !h.is_empty());
        let total = p.nodes.get("total").and_then(reading::number).or_else(|| reading::number(&p.total_nodes));
        let configured = match (hosts, total) {
            (Some(h), Some(t)) => Some(format!("{h}, {t} nodes")),
            (Some(h), None) => Some(h.to_owned()),
            (None, Some(t)) => Some(format!("{t} nodes")),
            (None, None) => None,
        };
        partitions.push(Partition { name: name.to_owned(), state, configured });
    }
    Ok(partitions)
}

fn parse_jobs(
    out: &Result<String, String>,
    problems: &mut Vec<String>,
    versions: &mut Versions,
) -> Result<Jobs, String> {
    let result = decode::<JobsDoc>(JOBS, out).and_then(|doc| {
        versions.learn(&doc.meta);
        checked_list(JOBS, "jobs", doc.jobs, &doc.errors, problems)
    });
    let list = result.inspect_err(|why| problems.push(why.clone()))?;
    let mut jobs = Jobs::default();
    for job in &list {
        jobs.add(job.partition.as_str().unwrap_or(""), &state_words(&job.job_state));
    }
    Ok(jobs)
}

/// State words from a string (`"idle"`, `"idle+drain"`, `"down*"`) or a list of them, upper case.
/// sinfo's compact suffixes are dropped, `*` (not responding) becoming `NOT_RESPONDING`.
fn state_words(v: &Value) -> Vec<String> {
    let mut words = Vec::new();
    let mut push = |s: &str| {
        for word in s.split(|c: char| c == '+' || c == ',' || c.is_whitespace()) {
            let bare = word.trim_end_matches(|c: char| "*~#!%$@^-".contains(c));
            if !bare.is_empty() {
                words.push(bare.to_ascii_uppercase());
            }
            if word.ends_with('*') {
                words.push("NOT_RESPONDING".to_owned());
            }
        }
    };
    match v {
        Value::String(s) => push(s),
        Value::Array(list) => list.iter().filter_map(Value::as_str).for_each(push),
        _ => {}
    }
    words
}

/// Names from a list of strings or a comma-separated string, without blanks.
fn names(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !out.iter().any(|known| known == name) {
                out.push(name.to_owned());
            }
        }
    };
    match v {
        Value::String(s) => push(s),
        Value::Array(list) => list.iter().filter_map(Value::as_str).for_each(push),
        _ => {}
    }
    out
}

// ---------------------------------------------------------------------------------------------
// GRES

/// The number of GPUs a GRES string names: the sum of the counts of its `gpu` entries, whatever
/// their type (`gpu:4`, `gpu:a100:4(S:0-1)`, `gpu:1g.5gb:7` MIG slices, `gpu:h100:0(IDX:N/A)`).
/// Other resources (`shard`, `mps`), `(null)` and `N/A` count nothing; `gpu` or `gpu:<type>` without a
/// count is one GPU, as in slurm.conf.
fn gpus(gres: &str) -> f64 {
    top_level_entries(gres).map(gpu_entry).sum()
}

/// Splits on the commas that are not inside parentheses (`gpu:a100:3(IDX:0,2-3),shard:0`).
fn top_level_entries(s: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0usize;
    s.split(move |c: char| {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        c == ',' && depth == 0
    })
}

fn gpu_entry(entry: &str) -> f64 {
    // Drop the trailing "(S:0-1)" / "(IDX:0-1)": it starts at the first '(' right after a digit,
    // which keeps a "(null)" type in "gpu:(null):0(IDX:N/A)".
    let mut cut = entry.len();
    let mut previous = ' ';
    for (i, c) in entry.char_indices() {
        if c == '(' && previous.is_ascii_digit() {
            cut = i;
            break;
        }
        previous = c;
    }
    let entry = entry.get(..cut).unwrap_or(entry).trim();
    let mut fields = entry.split(':').map(str::trim);
    if !fields.next().is_some_and(|name| name.eq_ignore_ascii_case("gpu")) {
        return 0.0;
    }
    match fields.next_back() {
        None => 1.0,
        Some(last) => count(last).unwrap_or(1.0), // a type without a count is one
    }
}

/// A GRES count: digits with an optional binary multiplier (`2`, `4K`).
fn count(s: &str) -> Option<f64> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = (s.get(..digits_end)?, s.get(digits_end..)?);
    let n: f64 = digits.parse().ok()?;
    let scale = match suffix.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * scale).filter(|n| n.is_finite())
}

// ---------------------------------------------------------------------------------------------
// Text fallback

/// Partitions (in order of appearance) and nodes from [`SINFO_TEXT`]'s output.
fn parse_sinfo_text(text: &str, problems: &mut Vec<String>) -> Result<(Vec<Partition>, Vec<Node>), String> {
    let cmd = command_line(SINFO_TEXT);
    let mut partitions: Vec<Partition> = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut skipped: Vec<&str> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [name, partition, avail, state, cpus, gres, gres_used, ..] = fields.as_slice() else {
            skipped.push(line);
            continue;
        };
        if name.eq_ignore_ascii_case("NODELIST") {
            continue; // a header, if -h was dropped
        }
        // `%P` and `-O Partition` mark the default partition with `*`; `PartitionName` does not.
        let partition = &partition.trim_end_matches('*');
        let cpu_fields: Vec<f64> = cpus.split('/').filter_map(|n| n.trim().parse().ok()).collect();
        let ([alloc_cpus, _, _, total_cpus], false, false) =
            (cpu_fields.as_slice(), name.is_empty(), partition.is_empty())
        else {
            skipped.push(line);
            continue;
        };
        if !partitions.iter().any(|p| p.name == *partition) {
            let state = if avail.eq_ignore_ascii_case("n/a") { Vec::new() } else { state_words(&Value::from(*avail)) };
            partitions.push(Partition { name: (*partition).to_owned(), state, configured: None });
        }
        match index.get(*name) {
            // The same node in another partition: one more partition for it.
            Some(&i) => {
                if let Some(node) = nodes.get_mut(i) {
                    if !node.partitions.iter().any(|p| p == partition) {
                        node.partitions.push((*partition).to_owned());
                    }
                }
            }
            None => {
                index.insert((*name).to_owned(), nodes.len());
                nodes.push(Node {
                    states: state_words(&Value::from(*state)),
                    partitions: vec![(*partition).to_owned()],
                    cpus: *total_cpus,
                    alloc_cpus: *alloc_cpus,
                    gpus: gpus(gres),
                    gpus_used: gpus(gres_used),
                });
            }
        }
    }
    if nodes.is_empty() {
        return Err(match skipped.first() {
            Some(line) => format!("`{cmd}` printed no line in the expected format: {:?}", reading::first_line(line)),
            None => format!("`{cmd}` printed no nodes"),
        });
    }
    if let Some(line) = skipped.first() {
        problems.push(format!(
            "`{cmd}` printed {} line(s) not in the expected format, e.g. {:?}",
            skipped.len(),
            reading::first_line(line)
        ));
    }
    Ok((partitions, nodes))
}

/// Jobs from [`SQUEUE_TEXT`]'s output (empty output: no jobs).
fn parse_squeue_text(text: &str) -> Result<Jobs, String> {
    let mut jobs = Jobs::default();
    let mut understood = 0usize;
    let mut first_bad: Option<&str> = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match line.split_once('|') {
            Some((partition, state)) if !partition.trim().eq_ignore_ascii_case("PARTITION") => {
                understood += 1;
                jobs.add(partition, &state_words(&Value::from(state.trim_end_matches('|'))));
            }
            Some(_) => {} // a header
            None => {
                first_bad.get_or_insert(line);
            }
        }
    }
    match first_bad {
        Some(line) if understood == 0 => Err(format!(
            "`{}` printed no line in the expected format: {:?}",
            command_line(SQUEUE_TEXT),
            reading::first_line(line)
        )),
        _ => Ok(jobs),
    }
}

// ---------------------------------------------------------------------------------------------
// Judging partitions

/// One partition's node figures.
///
/// `idle`, `allocated` and `mixed` count nodes by their base state (the first state word) *only
/// among nodes that are neither down nor drained*: an `IDLE+DRAIN` node counts in `drain` alone and
/// a `DOWN` node in `down` alone, so idle + allocated + mixed + down + drain + other = nodes, where
/// `other` is any other base state (`FUTURE`, `UNKNOWN`...). CPUs and GPUs are summed over all
/// nodes, whatever their state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Tally {
    nodes: u64,
    idle: u64,
    allocated: u64,
    mixed: u64,
    other: u64,
    down: u64,
    drain: u64,
    cpus: f64,
    alloc_cpus: f64,
    gpus: f64,
    gpus_used: f64,
}

impl Tally {
    fn add(&mut self, node: &Node) {
        self.nodes += 1;
        if node.is_down() {
            self.down += 1;
        } else if node.is_drained() {
            self.drain += 1;
        } else {
            match node.base() {
                "IDLE" => self.idle += 1,
                "ALLOCATED" => self.allocated += 1,
                "MIXED" => self.mixed += 1,
                _ => self.other += 1,
            }
        }
        self.cpus += node.cpus;
        self.alloc_cpus += node.alloc_cpus;
        self.gpus += node.gpus;
        self.gpus_used += node.gpus_used;
    }

    fn unusable(&self) -> u64 {
        self.down + self.drain
    }

    /// `6 nodes: 2 idle, 1 mixed, 1 down, 2 drained`.
    fn summary(&self) -> String {
        let noun = if self.nodes == 1 { "node" } else { "nodes" };
        let counts: Vec<String> = [
            (self.idle, "idle"),
            (self.allocated, "allocated"),
            (self.mixed, "mixed"),
            (self.other, "in other states"),
            (self.down, "down"),
            (self.drain, "drained"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, word)| format!("{n} {word}"))
        .collect();
        if counts.is_empty() {
            format!("{} {noun}", self.nodes)
        } else {
            format!("{} {noun}: {}", self.nodes, counts.join(", "))
        }
    }
}

/// One reading per partition. The partitions are those listed, else the nodes' own lists.
fn assemble(
    partitions: &Result<Vec<Partition>, String>,
    nodes: &Result<Vec<Node>, String>,
    jobs: &Result<Jobs, String>,
    versions: &Versions,
    opts: &Options,
) -> Vec<Reading> {
    let tallies: Option<BTreeMap<&str, Tally>> = nodes.as_ref().ok().map(|nodes| {
        let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
        for node in nodes {
            for p in &node.partitions {
                tallies.entry(p.as_str()).or_default().add(node);
            }
        }
        tallies
    });
    let derived: Vec<Partition>;
    let list: &[Partition] = match (partitions, nodes) {
        (Ok(list), _) => list,
        (Err(_), Ok(nodes)) => {
            let mut names: Vec<&str> = Vec::new();
            for p in nodes.iter().flat_map(|n| &n.partitions) {
                if !names.contains(&p.as_str()) {
                    names.push(p);
                }
            }
            derived = names
                .into_iter()
                .map(|name| Partition { name: name.to_owned(), state: Vec::new(), configured: None })
                .collect();
            &derived
        }
        (Err(_), Err(_)) => return Vec::new(),
    };
    list.iter()
        .map(|p| {
            let tally = tallies.as_ref().map(|t| t.get(p.name.as_str()).copied().unwrap_or_default());
            let job_count = jobs.as_ref().map(|j| j.by_partition.get(&p.name).copied().unwrap_or_default());
            judge(p, tally, partitions.as_ref().err(), nodes.as_ref().err(), job_count, versions, opts)
        })
        .collect()
}

/// One partition's reading. `tally` is None when the nodes are unknown (`nodes_problem` says why);
/// `state_problem` is set when the partition's state is unknown.
fn judge(
    p: &Partition,
    tally: Option<Tally>,
    state_problem: Option<&String>,
    nodes_problem: Option<&String>,
    jobs: Result<JobCount, &String>,
    versions: &Versions,
    opts: &Options,
) -> Reading {
    let not_up = state_problem.is_none() && p.state.first().is_some_and(|s| s != "UP");
    let (status, why) = if not_up {
        (Status::Failed, format!("partition state is {}", p.state.join("+")))
    } else if tally.is_some_and(|t| t.nodes == 0) {
        let why = match &p.configured {
            Some(configured) => format!("no node lists this partition (configured: {configured})"),
            None => "the partition has no nodes".to_owned(),
        };
        (Status::Failed, why)
    } else if let Some(t) = tally.filter(|t| t.unusable() == t.nodes) {
        let why = if t.nodes == 1 {
            "no node can run jobs: its only node is down or drained".to_owned()
        } else {
            format!("no node can run jobs: all {} are down or drained", t.nodes)
        };
        (Status::Failed, why)
    } else if let Some(why) = nodes_problem {
        (Status::Unknown, format!("node figures unknown: {why}"))
    } else if let Some(why) = state_problem {
        (Status::Unknown, format!("partition state unknown: {why}"))
    } else if let Some(t) =
        tally.filter(|t| t.unusable() > 0 && t.unusable() as f64 / t.nodes as f64 >= opts.degraded_share)
    {
        (Status::Degraded, format!("{} of {} nodes down or drained", t.unusable(), t.nodes))
    } else {
        (Status::Ok, String::new())
    };

    let mut message = vec![why];
    let mut reading = Reading::new("partition", &p.name).label("kind", "partition");
    if let Some(t) = tally.filter(|t| t.nodes > 0) {
        message.push(t.summary());
    }
    if let Some(t) = tally {
        reading = reading
            .metric("nodes_total", t.nodes as f64)
            .metric("nodes_idle", t.idle as f64)
            .metric("nodes_allocated", t.allocated as f64)
            .metric("nodes_mixed", t.mixed as f64)
            .metric("nodes_down", t.down as f64)
            .metric("nodes_drain", t.drain as f64)
            .metric("cpus_total", t.cpus)
            .metric("cpus_allocated", t.alloc_cpus)
            .metric("gpus_total", t.gpus)
            .metric("gpus_allocated", t.gpus_used)
            .metric("utilisation_pct", reading::pct(t.alloc_cpus, t.cpus));
    }
    match jobs {
        Ok(c) => {
            message.push(format!("{} running, {} pending jobs", c.running, c.pending));
            reading = reading.metric("running_jobs", c.running as f64).metric("pending_jobs", c.pending as f64);
        }
        Err(why) => message.push(format!("jobs unknown: {why}")),
    }
    let message: Vec<String> = message.into_iter().filter(|m| !m.is_empty()).collect();
    versions.label(reading).status(status, message.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    macro_rules! fixture {
        ($file:literal) => {
            include_str!(concat!("../tests/fixtures/hpc/", $file))
        };
    }

    const V37_NODES: &str = fixture!("slurm-sinfo-v0.0.37-rivosinc-21.08.5.json");
    const V37_JOBS: &str = fixture!("slurm-squeue-v0.0.37-rivosinc-21.08.5.json");
    const V39_SINFO_N: &str = fixture!("slurm-sinfo-N-v0.0.39-rivosinc-23.02.5.json");
    const V40_NODES: &str = fixture!("slurmrestd-nodes-v0.0.40-slurmweb-23.11.10.json");
    const V40_PARTITIONS: &str = fixture!("slurmrestd-partitions-v0.0.40-slurmweb-23.11.10.json");
    const V40_JOBS: &str = fixture!("slurmrestd-jobs-v0.0.40-slurmweb-23.11.10.json");
    const V41_NODES: &str = fixture!("slurmrestd-nodes-v0.0.41-slurmweb-24.11.5.json");
    const V41_PARTITIONS: &str = fixture!("slurmrestd-partitions-v0.0.41-slurmweb-24.11.5.json");
    const V41_JOBS: &str = fixture!("slurmrestd-jobs-v0.0.41-slurmweb-24.11.5-truncated.json");
    const V42_NODES: &str = fixture!("slurmrestd-nodes-v0.0.42-slurmweb-24.11.5.json");
    const V42_PARTITIONS: &str = fixture!("slurmrestd-partitions-v0.0.42-slurmweb-24.11.5.json");
    const V42_JOBS: &str = fixture!("slurmrestd-jobs-v0.0.42-slurmweb-24.11.5-truncated.json");
    const V42_SQUEUE_U: &str = fixture!("slurm-squeue-u-v0.0.42-slurminal-ozstar-24.11.6.json");
    const V42_SQUEUE_ALL: &str = fixture!("slurm-squeue-all-v0.0.42-slurminal-ozstar-24.11.6-TRIMMED-BY-AUTHOR.json");
    const V43_NODES: &str = fixture!("slurmrestd-nodes-v0.0.43-slurmweb-25.05.4.json");
    const V43_PARTITIONS: &str = fixture!("slurmrestd-partitions-v0.0.43-slurmweb-25.05.4.json");
    const V43_JOBS: &str = fixture!("slurmrestd-jobs-v0.0.43-slurmweb-25.05.4-truncated.json");
    const V44_NODES: &str = fixture!("slurmrestd-nodes-v0.0.44-slurmweb-25.11.0.json");
    const V44_PARTITIONS: &str = fixture!("slurmrestd-partitions-v0.0.44-slurmweb-25.11.0.json");
    const V44_JOBS: &str = fixture!("slurmrestd-jobs-v0.0.44-slurmweb-25.11.0-truncated.json");
    const NO_SERIALIZER: &str = fixture!("slurm-squeue-json-ERROR-no-serializer-rohanboard.txt");

    /// HAND-WRITTEN (no real capture exists): `scontrol show partitions --json` of Slurm 21.08 for the
    /// cluster of the v0.0.37 node fixture, in the shape of src/plugins/openapi/v0.0.37/partitions.c
    /// (state a plain string, nodes a hostlist string, total_nodes).
    const V37_PARTITIONS_HAND_WRITTEN: &str = r#"{
      "meta": {"plugin": {"type": "openapi/v0.0.37", "name": "Slurm OpenAPI v0.0.37"},
               "Slurm": {"version": {"major": 21, "micro": 5, "minor": 8}, "release": "21.08.5"}},
      "errors": [],
      "partitions": [
        {"flags": ["default"], "preemption_mode": ["disabled"], "allowed_allocation_nodes": "",
         "allowed_accounts": "", "allowed_groups": "", "allowed_qos": "", "alternative": "",
         "billing_weights": "", "default_memory_per_cpu": 0, "default_time_limit": null,
         "denied_accounts": "", "denied_qos": "", "preemption_grace_time": 0,
         "maximum_cpus_per_node": -1, "maximum_memory_per_node": 0, "maximum_nodes_per_job": -1,
         "max_time_limit": -1, "min nodes per job": 1, "name": "hw",
         "nodes": "cs[2-5].example.company.com", "over_time_limit": null, "priority_job_factor": 1,
         "priority_tier": 1, "qos": "", "state": "UP", "total_cpus": 256, "total_nodes": 4,
         "tres": "cpu=256,mem=2000000M,node=4,billing=256"}
      ]
    }"#;

    const METRICS: [&str; 13] = [
        "nodes_total",
        "nodes_idle",
        "nodes_allocated",
        "nodes_mixed",
        "nodes_down",
        "nodes_drain",
        "cpus_total",
        "cpus_allocated",
        "gpus_total",
        "gpus_allocated",
        "utilisation_pct",
        "running_jobs",
        "pending_jobs",
    ];

    fn ok(text: &str) -> Result<String, String> {
        Ok(text.to_owned())
    }

    fn run(
        nodes: Result<String, String>,
        partitions: Result<String, String>,
        jobs: Result<String, String>,
    ) -> (Vec<Reading>, Vec<String>) {
        readings(&Outputs { nodes, partitions, jobs }, &Options::default())
    }

    fn find<'a>(readings: &'a [Reading], partition: &str) -> &'a Reading {
        let component = format!("partition/{partition}");
        readings.iter().find(|r| r.component == component).unwrap_or_else(|| panic!("no {component} in {readings:#?}"))
    }

    /// The figures in [`METRICS`] order; a missing metric reads NaN so it never equals a figure.
    fn figures(r: &Reading) -> Vec<f64> {
        METRICS.iter().map(|m| r.metrics.get(*m).copied().unwrap_or(f64::NAN)).collect()
    }

    fn assert_figures(r: &Reading, expected: [f64; 13]) {
        assert_eq!(figures(r), expected.to_vec(), "{} ({:?}), metrics in order {METRICS:?}", r.component, r.message);
    }

    fn names(readings: &[Reading]) -> Vec<&str> {
        readings.iter().map(|r| r.component.as_str()).collect()
    }

    // ---- JSON fixtures, one test per data_parser version. Expected figures were computed
    // independently with a Python script reading the same files.

    #[test]
    fn v0_0_37_nodes_without_partitions_give_the_partitions_the_nodes_name() {
        let (rs, problems) =
            run(ok(V37_NODES), Err("`scontrol show partitions --json` exited with status 1".into()), ok(V37_JOBS));
        assert_eq!(names(&rs), ["partition/hw"]);
        let hw = find(&rs, "hw");
        // cs2 mixed (4 of 64 CPUs), cs3 idle, cs4 allocated (alloc_cpus 0!), cs5 down. The two jobs
        // run in hw-l and hw-m, which are not partitions of these nodes.
        assert_figures(hw, [4., 1., 1., 1., 1., 0., 256., 4., 0., 0., 1.6, 0., 0.]);
        assert_eq!(hw.status, Status::Unknown);
        assert_eq!(
            hw.message,
            "partition state unknown: `scontrol show partitions --json` exited with status 1; \
             4 nodes: 1 idle, 1 allocated, 1 mixed, 1 down; 0 running, 0 pending jobs"
        );
        assert_eq!(hw.labels["data_parser"], "v0.0.37");
        assert_eq!(hw.labels["slurm_version"], "21.08.5");
        assert_eq!(hw.labels["kind"], "partition");
        assert_eq!(problems, ["`scontrol show partitions --json` exited with status 1"]);
    }

    #[test]
    fn v0_0_37_partitions_with_a_plain_string_state_are_read() {
        let (rs, problems) = run(ok(V37_NODES), ok(V37_PARTITIONS_HAND_WRITTEN), ok(V37_JOBS));
        assert!(problems.is_empty(), "{problems:?}");
        let hw = find(&rs, "hw");
        assert_figures(hw, [4., 1., 1., 1., 1., 0., 256., 4., 0., 0., 1.6, 0., 0.]);
        assert_eq!(hw.status, Status::Degraded);
        assert_eq!(
            hw.message,
            "1 of 4 nodes down or drained; 4 nodes: 1 idle, 1 allocated, 1 mixed, 1 down; 0 running, 0 pending jobs"
        );
    }

    #[test]
    fn v0_0_40_partition_that_no_node_lists_is_failed_and_quotes_its_configuration() {
        // The fixture's partition list (normal = cn[1-4]) and node list (cn1-4 in "standard", ia1-2
        // in "ia") come from different captures: no node names "normal".
        let (rs, problems) = run(ok(V40_NODES), ok(V40_PARTITIONS), ok(V40_JOBS));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(names(&rs), ["partition/normal"]);
        let normal = find(&rs, "normal");
        assert_figures(normal, [0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0.]);
        assert_eq!(normal.status, Status::Failed);
        assert_eq!(
            normal.message,
            "no node lists this partition (configured: cn[1-4], 4 nodes); 0 running, 0 pending jobs"
        );
        assert_eq!(normal.labels["data_parser"], "v0.0.40");
        assert_eq!(normal.labels["slurm_version"], "23.11.10");
    }

    #[test]
    fn v0_0_40_nodes_give_the_figures_of_their_own_partitions() {
        let (rs, _) =
            run(ok(V40_NODES), Err("`scontrol show partitions --json` did not finish within 30s".into()), ok(V40_JOBS));
        assert_eq!(names(&rs), ["partition/standard", "partition/ia"]);
        // cn1 IDLE+DRAIN, cn2 MIXED 45, cn3 ALLOCATED 64, cn4 DOWN; gres "" with gres_used "gpu:0".
        assert_figures(find(&rs, "standard"), [4., 0., 1., 1., 1., 1., 256., 109., 0., 0., 42.6, 5., 2.]);
        // ia1-2: gres gpu:h100:2,gpu:h200:4 each.
        assert_figures(find(&rs, "ia"), [2., 2., 0., 0., 0., 0., 64., 0., 12., 0., 0., 0., 0.]);
        assert!(rs.iter().all(|r| r.status == Status::Unknown));
    }

    #[test]
    fn v0_0_41_partitions_and_nodes_from_different_captures_fail_both_partitions() {
        let (rs, _) = run(ok(V41_NODES), ok(V41_PARTITIONS), ok(V41_JOBS));
        assert_eq!(names(&rs), ["partition/normal", "partition/gpu"]);
        assert_figures(find(&rs, "normal"), [0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 1., 1.]);
        assert_figures(find(&rs, "gpu"), [0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0.]);
        assert!(rs.iter().all(|r| r.status == Status::Failed));
        assert_eq!(
            find(&rs, "gpu").message,
            "no node lists this partition (configured: gpu[1-2], 2 nodes); 0 running, 0 pending jobs"
        );
        assert_eq!(find(&rs, "gpu").labels["data_parser"], "v0.0.41");
    }

    #[test]
    fn v0_0_41_nodes_give_the_figures_of_their_own_partitions() {
        let (rs, _) = run(ok(V41_NODES), Err("partitions failed".into()), ok(V41_JOBS));
        // cn1 DOWN, cn2 ALLOCATED 64, cn3 MIXED 20, cn4 IDLE+DRAIN.
        assert_figures(find(&rs, "standard"), [4., 0., 1., 1., 1., 1., 256., 84., 0., 0., 32.8, 0., 0.]);
        assert_figures(find(&rs, "ia"), [2., 2., 0., 0., 0., 0., 64., 0., 12., 0., 0., 0., 0.]);
    }

    #[test]
    fn v0_0_42_fixtures_give_a_degraded_standard_and_an_ok_ia_partition() {
        let (rs, problems) = run(ok(V42_NODES), ok(V42_PARTITIONS), ok(V42_JOBS));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(names(&rs), ["partition/standard", "partition/ia"]);
        let standard = find(&rs, "standard");
        assert_figures(standard, [4., 2., 0., 0., 1., 1., 256., 0., 0., 0., 0., 1., 2.]);
        assert_eq!(standard.status, Status::Degraded);
        assert_eq!(
            standard.message,
            "2 of 4 nodes down or drained; 4 nodes: 2 idle, 1 down, 1 drained; 1 running, 2 pending jobs"
        );
        // ia1 is ["IDLE","COMPLETING"]: still idle.
        let ia = find(&rs, "ia");
        assert_figures(ia, [2., 2., 0., 0., 0., 0., 64., 0., 12., 0., 0., 0., 0.]);
        assert_eq!(ia.status, Status::Ok);
        assert_eq!(ia.message, "2 nodes: 2 idle; 0 running, 0 pending jobs");
        assert_eq!(ia.labels["data_parser"], "v0.0.42");
        assert_eq!(ia.labels["slurm_version"], "24.11.5");
    }

    #[test]
    fn v0_0_43_fixtures_give_a_degraded_normal_and_an_ok_gpu_partition() {
        let (rs, problems) = run(ok(V43_NODES), ok(V43_PARTITIONS), ok(V43_JOBS));
        assert!(problems.is_empty(), "{problems:?}");
        assert_figures(find(&rs, "normal"), [4., 2., 0., 0., 1., 1., 256., 0., 0., 0., 0., 1., 2.]);
        assert_eq!(find(&rs, "normal").status, Status::Degraded);
        assert_figures(find(&rs, "gpu"), [2., 2., 0., 0., 0., 0., 64., 0., 8., 0., 0., 0., 0.]);
        assert_eq!(find(&rs, "gpu").status, Status::Ok);
        assert_eq!(find(&rs, "gpu").labels["slurm_version"], "25.05.4");
    }

    #[test]
    fn v0_0_44_fixtures_count_nodes_by_their_own_partition_list() {
        let (rs, problems) = run(ok(V44_NODES), ok(V44_PARTITIONS), ok(V44_JOBS));
        assert!(problems.is_empty(), "{problems:?}");
        // cn1 IDLE+DRAIN, cn2 DOWN, cn3 ALLOCATED 64, cn4 MIXED 46: 110 of 256 CPUs.
        let normal = find(&rs, "normal");
        assert_figures(normal, [4., 0., 1., 1., 1., 1., 256., 110., 0., 0., 43.0, 1., 1.]);
        assert_eq!(normal.status, Status::Degraded);
        // The partition says gpu[1-2] but gpu1-4 all list "gpu": the nodes win. gpu1-2 have
        // gpu:h100:4, gpu3-4 an untyped gpu:4.
        let gpu = find(&rs, "gpu");
        assert_figures(gpu, [4., 4., 0., 0., 0., 0., 128., 0., 16., 0., 0., 0., 0.]);
        assert_eq!(gpu.status, Status::Ok);
        assert_eq!(gpu.labels["data_parser"], "v0.0.44");
        assert_eq!(gpu.labels["slurm_version"], "25.11.0");
    }

    #[test]
    fn jobs_of_every_fixture_are_counted_by_base_state_and_partition() {
        let count = |text: &str| {
            let mut problems = Vec::new();
            let jobs = parse_jobs(&ok(text), &mut problems, &mut Versions::default()).unwrap();
            assert!(problems.is_empty(), "{problems:?}");
            let by: Vec<(String, u64, u64)> =
                jobs.by_partition.iter().map(|(p, c)| (p.clone(), c.running, c.pending)).collect();
            (jobs.total.running, jobs.total.pending, by)
        };
        let s = |p: &str| p.to_owned();
        assert_eq!(count(V37_JOBS), (1, 1, vec![(s("hw-l"), 1, 0), (s("hw-m"), 0, 1)]));
        assert_eq!(count(V40_JOBS), (5, 2, vec![(s("standard"), 5, 2)]));
        assert_eq!(count(V41_JOBS), (1, 1, vec![(s("normal"), 1, 1)]));
        assert_eq!(count(V42_JOBS), (1, 2, vec![(s("standard"), 1, 2)]));
        assert_eq!(count(V43_JOBS), (1, 2, vec![(s("normal"), 1, 2)]));
        assert_eq!(count(V44_JOBS), (1, 1, vec![(s("normal"), 1, 1)]));
        assert_eq!(count(V42_SQUEUE_U), (2, 0, vec![(s("milan"), 2, 0)]));
        // The author trimmed these jobs to six keys, partition not among them: counted in no partition.
        assert_eq!(count(V42_SQUEUE_ALL), (0, 20, vec![]));
    }

    #[test]
    fn versions_are_read_from_every_meta_shape() {
        let of = |text: &str| {
            let doc: NodesDoc = serde_json::from_str(text).unwrap();
            let mut v = Versions::default();
            v.learn(&doc.meta);
            (v.data_parser.unwrap_or_default(), v.slurm.unwrap_or_default())
        };
        assert_eq!(of(V37_NODES), ("v0.0.37".into(), "21.08.5".into()));
        assert_eq!(of(V39_SINFO_N), ("v0.0.39".into(), "23.02.5".into()));
        assert_eq!(of(V42_SQUEUE_U), ("v0.0.42".into(), "24.11.6".into()));
        let mut v = Versions::default();
        v.learn(&json!({"slurm": {"version": {"major": "24", "minor": "05", "micro": "5"}}}));
        assert_eq!(v.slurm.as_deref(), Some("24.05.5"));
        v = Versions::default();
        v.learn(&json!("nonsense"));
        assert_eq!(v, Versions::default());
    }

    // ---- Hand-built JSON for the rules

    /// A v0.0.42-shaped node.
    fn node(name: &str, state: &[&str], partitions: &[&str], cpus: u32, alloc: u32) -> Value {
        json!({"name": name, "state": state, "partitions": partitions,
               "cpus": cpus, "alloc_cpus": alloc, "gres": "", "gres_used": ""})
    }

    fn nodes_doc(nodes: Vec<Value>) -> Result<String, String> {
        Ok(json!({"nodes": nodes, "meta": {}, "errors": [], "warnings": []}).to_string())
    }

    fn partitions_doc(partitions: &[(&str, &[&str])]) -> Result<String, String> {
        let list: Vec<Value> = partitions
            .iter()
            .map(|(name, state)| json!({"name": name, "partition": {"state": state}, "nodes": {"configured": "", "total": 0}}))
            .collect();
        Ok(json!({"partitions": list, "meta": {}, "errors": []}).to_string())
    }

    fn jobs_doc(jobs: &[(&str, Value)]) -> Result<String, String> {
        let list: Vec<Value> = jobs.iter().map(|(p, state)| json!({"partition": p, "job_state": state})).collect();
        Ok(json!({"jobs": list, "meta": {}, "errors": []}).to_string())
    }

    fn five_nodes_one_drained() -> Result<String, String> {
        nodes_doc(vec![
            node("a1", &["IDLE"], &["batch"], 8, 0),
            node("a2", &["ALLOCATED"], &["batch"], 8, 8),
            node("a3", &["MIXED"], &["batch"], 8, 2),
            node("a4", &["MIXED", "DRAIN"], &["batch"], 8, 4),
            node("a5", &["IDLE"], &["batch"], 8, 0),
        ])
    }

    #[test]
    fn a_partition_with_1_of_5_nodes_drained_is_degraded_at_the_default_threshold() {
        let (rs, _) = run(five_nodes_one_drained(), partitions_doc(&[("batch", &["UP"])]), jobs_doc(&[]));
        let batch = find(&rs, "batch");
        assert_figures(batch, [5., 2., 1., 1., 0., 1., 40., 14., 0., 0., 35.0, 0., 0.]);
        assert_eq!(batch.status, Status::Degraded);
        assert_eq!(
            batch.message,
            "1 of 5 nodes down or drained; 5 nodes: 2 idle, 1 allocated, 1 mixed, 1 drained; 0 running, 0 pending jobs"
        );
        let out = Outputs {
            nodes: five_nodes_one_drained(),
            partitions: partitions_doc(&[("batch", &["UP"])]),
            jobs: jobs_doc(&[]),
        };
        let (rs, _) = readings(&out, &Options { degraded_share: 0.25 });
        assert_eq!(find(&rs, "batch").status, Status::Ok);
    }

    #[test]
    fn a_partition_in_state_down_is_failed() {
        let (rs, _) = run(five_nodes_one_drained(), partitions_doc(&[("batch", &["DOWN"])]), jobs_doc(&[]));
        let batch = find(&rs, "batch");
        assert_eq!(batch.status, Status::Failed);
        assert!(batch.message.starts_with("partition state is DOWN; 5 nodes:"), "{}", batch.message);
        // Lower case and a plain string are read alike.
        let (rs, _) = run(five_nodes_one_drained(), partitions_doc(&[("batch", &["inactive"])]), jobs_doc(&[]));
        assert_eq!(find(&rs, "batch").status, Status::Failed);
    }

    #[test]
    fn a_partition_whose_nodes_are_all_down_or_drained_is_failed() {
        let nodes = nodes_doc(vec![
            node("b1", &["DOWN"], &["x"], 4, 0),
            node("b2", &["IDLE", "NOT_RESPONDING"], &["x"], 4, 0),
            node("b3", &["ALLOCATED", "DRAIN"], &["x"], 4, 4),
            node("b4", &["DOWN", "DRAIN"], &["x", "y"], 4, 0),
        ]);
        let (rs, _) = run(nodes, partitions_doc(&[("x", &["UP"]), ("y", &["UP"])]), jobs_doc(&[]));
        let x = find(&rs, "x");
        // DOWN wins over DRAIN; NOT_RESPONDING is down.
        assert_figures(x, [4., 0., 0., 0., 3., 1., 16., 4., 0., 0., 25.0, 0., 0.]);
        assert_eq!(x.status, Status::Failed);
        assert_eq!(
            x.message,
            "no node can run jobs: all 4 are down or drained; 4 nodes: 3 down, 1 drained; 0 running, 0 pending jobs"
        );
        assert_eq!(
            find(&rs, "y").message,
            "no node can run jobs: its only node is down or drained; 1 node: 1 down; 0 running, 0 pending jobs"
        );
    }

    #[test]
    fn a_pending_job_in_two_partitions_counts_in_each() {
        let nodes = nodes_doc(vec![node("c1", &["IDLE"], &["a", "b"], 4, 0)]);
        let jobs = jobs_doc(&[
            ("a,b", json!(["PENDING"])),
            ("a", json!(["RUNNING"])),
            ("b", json!("CONFIGURING")),
            ("a", json!(["COMPLETED"])),
            ("gone", json!(["PENDING"])),
            ("a,a", json!("pending")),
        ]);
        let (rs, problems) = run(nodes, partitions_doc(&[("a", &["UP"]), ("b", &["UP"])]), jobs);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((find(&rs, "a").get("running_jobs"), find(&rs, "a").get("pending_jobs")), (1.0, 2.0));
        assert_eq!((find(&rs, "b").get("running_jobs"), find(&rs, "b").get("pending_jobs")), (1.0, 1.0));
        // A node in two partitions counts in both.
        assert_eq!((find(&rs, "a").get("nodes_total"), find(&rs, "b").get("nodes_total")), (1.0, 1.0));
        assert_eq!(names(&rs).len(), 2, "the job's partition \"gone\" is not published");
    }

    #[test]
    fn numbers_wrapped_as_set_infinite_number_are_read() {
        let nodes = nodes_doc(vec![json!({
            "state": "MIXED", "partitions": "p",
            "cpus": {"set": true, "infinite": false, "number": 16},
            "alloc_cpus": {"set": true, "infinite": false, "number": 4},
            "gres": "gpu:a100:4(S:0-1)", "gres_used": "gpu:a100:2(IDX:0-1)"})]);
        let (rs, _) = run(nodes, partitions_doc(&[("p", &["UP"])]), jobs_doc(&[]));
        assert_figures(find(&rs, "p"), [1., 0., 0., 1., 0., 0., 16., 4., 4., 2., 25.0, 0., 0.]);
    }

    #[test]
    fn truncated_json_is_a_problem_and_makes_the_partitions_unknown() {
        let half = |s: &str| s.get(..s.len() / 2).unwrap_or_default().to_owned();
        let (rs, problems) = run(Ok(half(V42_NODES)), ok(V42_PARTITIONS), ok(V42_JOBS));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("`scontrol show nodes --json` printed invalid JSON: EOF while parsing"),
            "{problems:?}"
        );
        let standard = find(&rs, "standard");
        assert_eq!(standard.status, Status::Unknown);
        assert!(standard
            .message
            .starts_with("node figures unknown: `scontrol show nodes --json` printed invalid JSON: EOF"));
        assert!(standard.message.ends_with("; 1 running, 2 pending jobs"), "{}", standard.message);
        assert_eq!(standard.get("running_jobs"), 1.0);
        assert!(!standard.metrics.contains_key("nodes_total"), "node figures are left out, not zero");

        // squeue cut in half: the partitions keep their health, the job figures are left out.
        let (rs, problems) = run(ok(V42_NODES), ok(V42_PARTITIONS), Ok(half(V42_JOBS)));
        assert!(problems[0].starts_with("`squeue --json` printed invalid JSON: EOF"), "{problems:?}");
        let standard = find(&rs, "standard");
        assert_eq!(standard.status, Status::Degraded);
        assert!(
            standard.message.contains("; jobs unknown: `squeue --json` printed invalid JSON: EOF"),
            "{}",
            standard.message
        );
        assert!(!standard.metrics.contains_key("running_jobs"));
        assert_eq!(standard.get("nodes_total"), 4.0);

        // Nothing known about partitions: no readings, both problems.
        let (rs, problems) = run(Ok(half(V42_NODES)), Ok(half(V42_PARTITIONS)), ok(V42_JOBS));
        assert!(rs.is_empty());
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn the_no_serializer_error_asks_for_the_text_fallback() {
        assert!(needs_text_fallback(NO_SERIALIZER));
        assert!(needs_text_fallback(&format!("`squeue --json` exited with status 1: {}", NO_SERIALIZER.trim())));
        assert!(needs_text_fallback("scontrol: error: data_parser_g_new: unable to find plugin data_parser/v0.0.40"));
        assert!(needs_text_fallback("squeue: fatal: serializer_g_init: Unable to load serializer plugins"));
        // scontrol before 23.02 has no --json (squeue and sinfo have it from 21.08).
        assert!(needs_text_fallback(
            "`scontrol show nodes --json` exited with status 1: scontrol: unrecognized option '--json' / \
             Try \"scontrol --help\" for more information"
        ));
        assert!(!needs_text_fallback(V42_JOBS));
        assert!(!needs_text_fallback(V42_JOBS.get(..100).unwrap()));
        assert!(!needs_text_fallback("`squeue --json` did not finish within 30s"));
        assert!(!needs_text_fallback("squeue: error: Invalid user for SlurmUser slurm, ignored"));
        assert!(!needs_text_fallback(""));
    }

    #[test]
    fn the_no_serializer_error_printed_as_output_is_a_clear_problem() {
        let (rs, problems) = run(ok(V42_NODES), ok(V42_PARTITIONS), ok(NO_SERIALIZER));
        assert_eq!(
            problems,
            [
                r#"`squeue --json` printed no JSON: "squeue: error: load_plugins: unable to find plugin: serializer/json""#
            ]
        );
        assert_eq!(find(&rs, "ia").status, Status::Ok);
        assert!(find(&rs, "ia").message.ends_with(&format!("; jobs unknown: {}", problems[0])));
    }

    #[test]
    fn json_without_the_expected_list_is_a_problem() {
        // sinfo -N --json (v0.0.39) has a "sinfo" list, not "nodes".
        let (rs, problems) = run(ok(V39_SINFO_N), ok(V42_PARTITIONS), ok(V42_JOBS));
        assert_eq!(problems, [r#"`scontrol show nodes --json` printed JSON without a "nodes" list"#]);
        assert!(rs.iter().all(|r| r.status == Status::Unknown));
        // A list of the wrong type.
        let (_, problems) = run(ok(r#"{"nodes": {"a": 1}}"#), ok(V42_PARTITIONS), ok(V42_JOBS));
        assert!(
            problems[0]
                .starts_with("`scontrol show nodes --json` printed JSON of an unexpected shape: invalid type: map"),
            "{problems:?}"
        );
    }

    #[test]
    fn errors_slurm_reports_are_problems_and_an_empty_list_beside_them_is_not_trusted() {
        let denied = r#"{"nodes": [], "errors": [{"description": "Access denied", "error_number": 1, "error": "x", "source": "y"}]}"#;
        let (rs, problems) = run(ok(denied), ok(V42_PARTITIONS), ok(V42_JOBS));
        assert_eq!(problems, ["`scontrol show nodes --json` reported: Access denied"]);
        assert!(rs.iter().all(|r| r.status == Status::Unknown), "{rs:#?}");
        // Beside a usable list, an error is reported and the list used.
        let mut jobs: Value = serde_json::from_str(V42_JOBS).unwrap();
        jobs["errors"] = json!([{"error": "Job 7 vanished"}]);
        let (rs, problems) = run(ok(V42_NODES), ok(V42_PARTITIONS), Ok(jobs.to_string()));
        assert_eq!(problems, ["`squeue --json` reported: Job 7 vanished"]);
        assert_eq!(find(&rs, "standard").get("pending_jobs"), 2.0);
    }

    // ---- GRES

    #[test]
    fn gpus_are_summed_over_every_gpu_entry_of_a_gres_string() {
        assert_eq!(gpus("gpu:4"), 4.0);
        assert_eq!(gpus("gpu:a100:4(S:0-1)"), 4.0);
        assert_eq!(gpus("gpu:nvidia_a100_3g.20gb:2,gpu:a100:1"), 3.0);
        assert_eq!(gpus("gpu:h100:2,gpu:h200:4"), 6.0);
        assert_eq!(gpus("gpu:a100:2(IDX:0-1),gpu:a100:0(IDX:N/A)"), 2.0);
        assert_eq!(gpus("gpu:a100:3(IDX:0,2-3),shard:0"), 3.0, "commas inside parentheses");
        assert_eq!(gpus("gpu:a100:4(S:0,1),gpu:v100:2(S:0)"), 6.0);
        assert_eq!(gpus("gpu:0"), 0.0);
        assert_eq!(gpus("GPU:2"), 2.0);
        assert_eq!(gpus("gpu:(null):2(IDX:0-1)"), 2.0);
    }

    #[test]
    fn mig_slices_count_as_gpus() {
        assert_eq!(gpus("gpu:1g.5gb:7"), 7.0);
        assert_eq!(gpus("gpu:1g.10gb:4(S:0),gpu:2g.20gb:2(S:1),gpu:a100:1"), 7.0);
        assert_eq!(gpus("gpu:1g.5gb:3(IDX:0-2)"), 3.0);
    }

    #[test]
    fn resources_that_are_not_gpus_count_nothing() {
        assert_eq!(gpus(""), 0.0);
        assert_eq!(gpus("(null)"), 0.0);
        assert_eq!(gpus("N/A"), 0.0);
        assert_eq!(gpus("shard:8,mps:100"), 0.0);
        assert_eq!(gpus("gpu:a100:2,shard:8(S:0),mps:200"), 2.0);
        assert_eq!(gpus("gpus:3,vgpu:2"), 0.0);
    }

    #[test]
    fn a_gpu_entry_without_a_count_is_one_gpu_and_odd_strings_do_not_break() {
        assert_eq!(gpus("gpu"), 1.0);
        assert_eq!(gpus("gpu:tesla"), 1.0);
        assert_eq!(gpus("gpu:2K"), 2048.0);
        assert_eq!(gpus("gpu:a100:4(S:0-1"), 4.0, "an unclosed parenthesis");
        for odd in [
            "(",
            ")",
            "((((",
            "gpu:",
            "gpu::",
            ",,,",
            ":::",
            "gpu:(",
            "gpu:4)",
            "gpu:ä:2",
            "gpu:99999999999999999999999999",
        ] {
            assert!(gpus(odd).is_finite(), "{odd}");
        }
    }

    // ---- Text fallback

    /// HAND-WRITTEN sample of SINFO_TEXT's output (no real capture exists): partitions cpu (up),
    /// gpu (up) and mig (down); gn01 is in cpu and gpu, so it prints two lines.
    const SINFO_SAMPLE: &str = "\
cn01|cpu|up|allocated|64/0/0/64|(null)|(null)
cn02|cpu|up|mixed|20/44/0/64|(null)|(null)
cn03|cpu|up|idle|0/64/0/64|(null)|(null)
cn04|cpu|up|idle+drain|0/0/64/64|(null)|(null)
cn05|cpu|up|down+not_responding|0/0/64/64|(null)|(null)
gn01|cpu|up|mixed|8/24/0/32|gpu:a100:4(S:0-1)|gpu:a100:2(IDX:0-1)
gn01|gpu|up|mixed|8/24/0/32|gpu:a100:4(S:0-1)|gpu:a100:2(IDX:0-1)
gn02|gpu|up|idle+completing|0/32/0/32|gpu:nvidia_a100_3g.20gb:2,gpu:a100:1|gpu:nvidia_a100_3g.20gb:0(IDX:N/A),gpu:a100:0(IDX:N/A)
mig01|mig|down|idle|0/16/0/16|gpu:1g.5gb:7,shard:14|gpu:1g.5gb:3(IDX:0-2),shard:0
";

    /// HAND-WRITTEN sample of SQUEUE_TEXT's output.
    const SQUEUE_SAMPLE: &str = "\
cpu|RUNNING
cpu|RUNNING
gpu|RUNNING
cpu,gpu|PENDING
gpu|PENDING
cpu|CONFIGURING
debug|PENDING
cpu|COMPLETING
";

    #[test]
    fn the_text_fallback_gives_the_same_figures_from_sinfo_and_squeue() {
        let (rs, problems) = readings_from_text(&ok(SINFO_SAMPLE), &ok(SQUEUE_SAMPLE), &Options::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(names(&rs), ["partition/cpu", "partition/gpu", "partition/mig"]);
        let cpu = find(&rs, "cpu");
        assert_figures(cpu, [6., 1., 1., 2., 1., 1., 352., 92., 4., 2., 26.1, 3., 1.]);
        assert_eq!(cpu.status, Status::Degraded);
        assert_eq!(
            cpu.message,
            "2 of 6 nodes down or drained; 6 nodes: 1 idle, 1 allocated, 2 mixed, 1 down, 1 drained; 3 running, 1 pending jobs"
        );
        let gpu = find(&rs, "gpu");
        assert_figures(gpu, [2., 1., 0., 1., 0., 0., 64., 8., 7., 2., 12.5, 1., 2.]);
        assert_eq!(gpu.status, Status::Ok);
        let mig = find(&rs, "mig");
        assert_figures(mig, [1., 1., 0., 0., 0., 0., 16., 0., 7., 3., 0., 0., 0.]);
        assert_eq!(mig.status, Status::Failed);
        assert!(mig.message.starts_with("partition state is DOWN; 1 node: 1 idle"), "{}", mig.message);
        assert_eq!(cpu.labels.keys().collect::<Vec<_>>(), ["kind"], "no versions from text");
    }

    #[test]
    fn text_and_json_agree_on_the_same_cluster() {
        // HAND-WRITTEN: what SINFO_TEXT and SQUEUE_TEXT would print for the v0.0.44 fixtures' nodes
        // and running/pending jobs.
        let sinfo = "\
cn1|normal|up|idle+drain|0/0/64/64|(null)|(null)
cn2|normal|up|down|0/0/64/64|(null)|(null)
cn3|normal|up|allocated|64/0/0/64|(null)|(null)
cn4|normal|up|mixed|46/18/0/64|(null)|(null)
gpu1|gpu|up|idle|0/32/0/32|gpu:h100:4|gpu:h100:0(IDX:N/A)
gpu2|gpu|up|idle|0/32/0/32|gpu:h100:4|gpu:h100:0(IDX:N/A)
gpu3|gpu|up|idle|0/32/0/32|gpu:4|gpu:0
gpu4|gpu|up|idle|0/32/0/32|gpu:4|gpu:0
";
        let squeue = "normal|RUNNING\nnormal|PENDING\n";
        let (text, _) = readings_from_text(&ok(sinfo), &ok(squeue), &Options::default());
        let (json, _) = run(ok(V44_NODES), ok(V44_PARTITIONS), ok(V44_JOBS));
        for (t, j) in text.iter().zip(&json) {
            assert_eq!(
                (&t.component, t.status, &t.message, &t.metrics),
                (&j.component, j.status, &j.message, &j.metrics)
            );
        }
        assert_eq!(text.len(), json.len());
    }

    #[test]
    fn text_fallback_failures_are_problems() {
        let (rs, problems) =
            readings_from_text(&Err("`sinfo ...` was not found on PATH".into()), &ok(""), &Options::default());
        assert!(rs.is_empty());
        assert_eq!(problems, ["`sinfo ...` was not found on PATH"]);

        let (rs, problems) = readings_from_text(
            &ok(SINFO_SAMPLE),
            &Err("`squeue -h -o %P|%T` exited with status 1".into()),
            &Options::default(),
        );
        assert_eq!(problems, ["`squeue -h -o %P|%T` exited with status 1"]);
        assert_eq!(find(&rs, "cpu").status, Status::Degraded);
        assert!(find(&rs, "cpu").message.ends_with("; jobs unknown: `squeue -h -o %P|%T` exited with status 1"));

        // An empty squeue is no jobs; an empty sinfo is no nodes.
        let (rs, problems) = readings_from_text(&ok(SINFO_SAMPLE), &ok(""), &Options::default());
        assert!(problems.is_empty());
        assert_eq!(find(&rs, "gpu").get("pending_jobs"), 0.0);
        let (rs, problems) = readings_from_text(&ok("\n"), &ok(""), &Options::default());
        assert!(rs.is_empty());
        assert!(problems[0].ends_with("printed no nodes"), "{problems:?}");

        // The default sinfo format instead of ours.
        let default =
            "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\ncpu*         up   infinite      5  idle cn[01-05]\n";
        let (rs, problems) = readings_from_text(&ok(default), &ok("x"), &Options::default());
        assert!(rs.is_empty());
        assert!(problems[0].contains("printed no line in the expected format: \"PARTITION AVAIL"), "{problems:?}");

        // A few bad lines among good ones are reported, the rest used; a header is skipped.
        let mixed = format!("NODELIST|PARTITION|AVAIL|STATECOMPLETE|CPUS(A/I/O/T)|GRES|GRES_USED\n{SINFO_SAMPLE}garbage\ncn9|cpu|up|idle|x/y|(null)|(null)\n");
        let (rs, problems) =
            readings_from_text(&ok(&mixed), &ok("PARTITION|STATE\ncpu|PENDING\nnonsense\n"), &Options::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("printed 2 line(s) not in the expected format, e.g. \"garbage\""), "{problems:?}");
        assert_eq!(find(&rs, "cpu").get("nodes_total"), 6.0);
        assert_eq!(find(&rs, "cpu").get("pending_jobs"), 1.0);
    }

    // ---- Nothing may panic

    /// Cuts `text` at `n` places spread over its length (on character boundaries).
    fn cuts(text: &str, n: usize) -> Vec<&str> {
        (0..n)
            .map(|k| {
                let mut at = text.len() * k / n;
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.get(..at).unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn truncated_fixtures_never_panic_and_always_give_a_problem() {
        let all = [
            V37_NODES,
            V37_JOBS,
            V39_SINFO_N,
            V40_NODES,
            V40_PARTITIONS,
            V40_JOBS,
            V41_NODES,
            V41_PARTITIONS,
            V41_JOBS,
            V42_NODES,
            V42_PARTITIONS,
            V42_JOBS,
            V42_SQUEUE_U,
            V42_SQUEUE_ALL,
            V43_NODES,
            V43_PARTITIONS,
            V43_JOBS,
            V44_NODES,
            V44_PARTITIONS,
            V44_JOBS,
            V37_PARTITIONS_HAND_WRITTEN,
        ];
        for text in all {
            for cut in cuts(text, 37) {
                for slot in 0..3 {
                    let mut out = Outputs { nodes: ok(V42_NODES), partitions: ok(V42_PARTITIONS), jobs: ok(V42_JOBS) };
                    let target = [&mut out.nodes, &mut out.partitions, &mut out.jobs].into_iter().nth(slot).unwrap();
                    *target = ok(cut);
                    let (_, problems) = readings(&out, &Options::default());
                    assert!(!problems.is_empty(), "a cut of {} bytes gave no problem", cut.len());
                }
                assert!(!needs_text_fallback(cut), "a cut of JSON is broken JSON, not a missing plugin");
            }
        }
    }

    #[test]
    fn truncated_or_garbled_text_never_panics() {
        let garbage =
            ["|||||||", "a|b|c|d|1/2/3/4|gpu:(|gpu:)", "x|y|up|idle|1/1/1/1/1|gpu|gpu", "\u{0}|\u{feff}|é|||||"];
        for text in cuts(SINFO_SAMPLE, 41).into_iter().chain(garbage) {
            let _ = readings_from_text(&ok(text), &ok(text), &Options::default());
        }
        for text in cuts(SQUEUE_SAMPLE, 23).into_iter().chain(garbage) {
            let _ = readings_from_text(&ok(SINFO_SAMPLE), &ok(text), &Options::default());
        }
        let opts = Options { degraded_share: f64::NAN };
        let _ = readings_from_text(&ok(SINFO_SAMPLE), &ok(SQUEUE_SAMPLE), &opts);
    }
}
