//! `sitrep collect <source>`: the ready-made collectors, run once (for cron) or every interval.
//!
//! Each round runs the site's commands (or checks its hosts and hub), turns what they printed into
//! readings with the pure parsers of `sitrep-collect`, adds the collector's own component
//! `collector/<source>`, and publishes one batch report in wire format v1: over NATS with a
//! `Nats-Msg-Id`, or over HTTP with an API key when `--http` is given. Failure is data: a command
//! that is missing, fails, hangs or prints nonsense makes its components `unknown`, and the round
//! still publishes. See docs/collectors.md ("Ready-made collectors").

use anyhow::Context;
use async_nats::jetstream;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::json;
use sitrep_collect::reading::Reading;
use sitrep_collect::{command, fs, jupyterhub, login, pbs, slurm};
use sitrep_domain::status::Status;
use sitrep_infra::Settings;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// `sitrep collect`'s sources.
#[derive(Debug, Clone, Subcommand)]
pub enum SourceArgs {
    /// PBS Pro and OpenPBS: queues, node groups and the server, from `pbsnodes -a -F json`,
    /// `qstat -Q -f -F json` and `qstat -B -f -F json`.
    Pbs {
        #[command(flatten)]
        common: Common,
        /// The node attribute that groups nodes, for example `resources_available.Qlist` (a comma
        /// list puts a node in each group). Default: the node's `partition`, else `gpu`/`cpu`.
        #[arg(long, value_name = "ATTRIBUTE")]
        group_by: Option<String>,
        /// The share of a group's nodes down or offline from which it is degraded [default: 0.1].
        #[arg(long, value_name = "SHARE")]
        degraded_share: Option<f64>,
    },
    /// Slurm: partitions, from `scontrol show nodes --json`, `scontrol show partitions --json`
    /// and `squeue --json` (data_parser v0.0.37 to v0.0.44), or `sinfo` and `squeue` text where
    /// the JSON plugin is missing.
    Slurm {
        #[command(flatten)]
        common: Common,
        /// The share of a partition's nodes down or drained from which it is degraded [default: 0.1].
        #[arg(long, value_name = "SHARE")]
        degraded_share: Option<f64>,
    },
    /// Filesystems: capacity and inodes of each mount, from `df -P`, `lfs df` or `mmdf -Y`.
    Fs {
        #[command(flatten)]
        common: Common,
        /// A mount to read: NAME=PATH, with the command as :df (the default), :lustre or
        /// :gpfs, and for GPFS the device as :gpfs:DEVICE. Repeat for more mounts.
        #[arg(long = "mount", value_name = "NAME=PATH[:KIND[:DEVICE]]")]
        mounts: Vec<String>,
        /// Percent used (space or inodes) from which a filesystem is degraded [default: 90].
        #[arg(long, value_name = "PERCENT")]
        degraded_pct: Option<f64>,
        /// Percent used (space or inodes) from which a filesystem has failed [default: 95].
        #[arg(long, value_name = "PERCENT")]
        failed_pct: Option<f64>,
    },
    /// Login nodes: a TCP connection to the SSH port, and its banner.
    Login {
        #[command(flatten)]
        common: Common,
        /// A login host: HOST, HOST:PORT or NAME=HOST[:PORT] (port 22 unless given). Repeat for
        /// more hosts.
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
    },
    /// JupyterHub: users, running servers and pending spawns, from its REST API.
    Jupyterhub {
        #[command(flatten)]
        common: Common,
        /// The hub's base URL, for example https://jupyter.example.org (the API is at /hub/api).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// An API token with the `list:users` and `read:users` scopes (`read:servers` for
        /// per-server figures).
        #[arg(long, env = "JUPYTERHUB_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The component's name: hub/<NAME> [default: main].
        #[arg(long)]
        name: Option<String>,
    },
}

/// Options every source takes.
#[derive(Debug, Clone, Default, Args)]
pub struct Common {
    /// The system the reports belong to, for example `derecho`.
    #[arg(long)]
    pub system: Option<String>,
    /// Run one round and exit (for cron): non-zero when publishing failed or nothing could be read.
    #[arg(long)]
    pub once: bool,
    /// Time between rounds; reports live three intervals (their ttl_seconds) [default: 60s].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub interval: Option<Duration>,
    /// How long one command or check may take before it is given up [default: 30s].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// A TOML file whose [collect.<source>] table holds these options; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Publish over HTTP to this sitrep (its base URL) instead of NATS; needs an API key.
    #[arg(long, value_name = "URL")]
    pub http: Option<String>,
    /// The API key for --http (from `sitrep keys create --system S --name N`).
    #[arg(long, env = "SITREP_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// A `[collect.<source>]` table. Every key is optional; which ones a source takes is checked
/// before this is read, so a misspelt key is an error that names it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTable {
    system: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    http: Option<String>,
    api_key: Option<String>,
    group_by: Option<String>,
    degraded_share: Option<f64>,
    degraded_pct: Option<f64>,
    failed_pct: Option<f64>,
    #[serde(default)]
    mount: Vec<FileMount>,
    #[serde(default)]
    host: Vec<String>,
    url: Option<String>,
    token: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMount {
    name: String,
    path: String,
    #[serde(default = "default_kind")]
    kind: fs::Kind,
    device: Option<String>,
    degraded_pct: Option<f64>,
    failed_pct: Option<f64>,
}

fn default_kind() -> fs::Kind {
    fs::Kind::Df
}

const COMMON_KEYS: &[&str] = &["system", "interval", "timeout", "http", "api_key"];

fn source_keys(source: &str) -> &'static [&'static str] {
    match source {
        "pbs" => &["group_by", "degraded_share"],
        "slurm" => &["degraded_share"],
        "fs" => &["mount", "degraded_pct", "failed_pct"],
        "login" => &["host"],
        "jupyterhub" => &["url", "token", "name"],
        _ => &[],
    }
}

/// Reads `[collect.<source>]` from the file; a missing table is an error (the file was given
/// for a reason), and so is a key the source does not take.
fn read_table(path: &std::path::Path, source: &str) -> anyhow::Result<FileTable> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let table = doc
        .get("collect")
        .and_then(|c| c.get(source))
        .with_context(|| format!("{} has no [collect.{source}] table", path.display()))?;
    let toml::Value::Table(t) = table else { anyhow::bail!("{}: collect.{source} is not a table", path.display()) };
    let allowed: Vec<&str> = COMMON_KEYS.iter().chain(source_keys(source)).copied().collect();
    for key in t.keys() {
        anyhow::ensure!(
            allowed.contains(&key.as_str()),
            "{}: [collect.{source}] has the unknown key {key:?}; it takes {}",
            path.display(),
            allowed.join(", ")
        );
    }
    table.clone().try_into().with_context(|| format!("{}: [collect.{source}]", path.display()))
}

/// What one source reads each round.
#[derive(Debug, Clone)]
pub enum Source {
    Pbs(pbs::Options),
    Slurm(slurm::Options),
    Fs(Vec<Mount>),
    Login(Vec<login::Host>),
    Jupyterhub { url: String, token: String, name: String },
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Source::Pbs(_) => "pbs",
            Source::Slurm(_) => "slurm",
            Source::Fs(_) => "fs",
            Source::Login(_) => "login",
            Source::Jupyterhub { .. } => "jupyterhub",
        }
    }
}

/// A filesystem mount to read.
#[derive(Debug, Clone)]
pub struct Mount {
    pub name: String,
    pub path: String,
    pub kind: fs::Kind,
    /// The GPFS device for `mmdf`; the name when not set.
    pub device: String,
    pub thresholds: fs::Thresholds,
}

impl Mount {
    /// `NAME=PATH[:KIND[:DEVICE]]`.
    fn parse(raw: &str, thresholds: fs::Thresholds) -> anyhow::Result<Self> {
        let (name, rest) =
            raw.split_once('=').with_context(|| format!("--mount {raw:?}: expected NAME=PATH[:KIND[:DEVICE]]"))?;
        let mut parts = rest.splitn(3, ':');
        let path = parts.next().unwrap_or_default();
        let kind =
            parts.next().map(str::parse).transpose().map_err(|e: String| anyhow::anyhow!("--mount {raw:?}: {e}"))?;
        let device = parts.next().unwrap_or(name);
        anyhow::ensure!(!name.is_empty() && path.starts_with('/'), "--mount {raw:?}: expected NAME=/absolute/path");
        Ok(Mount {
            name: name.to_owned(),
            path: path.to_owned(),
            kind: kind.unwrap_or(fs::Kind::Df),
            device: device.to_owned(),
            thresholds,
        })
    }
}

/// Where a round's batch goes.
#[derive(Debug, Clone)]
pub enum Sink {
    Nats,
    Http { url: String, key: String },
}

/// Everything a run needs, from flags over the file over defaults.
#[derive(Debug, Clone)]
pub struct Plan {
    pub source: Source,
    pub system: String,
    pub once: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub sink: Sink,
    /// The search path for the site's commands; None inherits this process's PATH.
    pub path: Option<std::ffi::OsString>,
}

fn duration(field: &str, raw: Option<&String>) -> anyhow::Result<Option<Duration>> {
    raw.map(|r| {
        humantime::parse_duration(r).with_context(|| format!("{field} = {r:?} is not a duration such as 60s or 5m"))
    })
    .transpose()
}

impl Plan {
    /// Resolves the command line (and the file it names) into a plan.
    pub fn from_args(args: &SourceArgs) -> anyhow::Result<Self> {
        let (common, name) = match args {
            SourceArgs::Pbs { common, .. } => (common, "pbs"),
            SourceArgs::Slurm { common, .. } => (common, "slurm"),
            SourceArgs::Fs { common, .. } => (common, "fs"),
            SourceArgs::Login { common, .. } => (common, "login"),
            SourceArgs::Jupyterhub { common, .. } => (common, "jupyterhub"),
        };
        let file = match &common.config {
            Some(path) => read_table(path, name)?,
            None => FileTable::default(),
        };
        let system = common.system.clone().or(file.system.clone()).with_context(|| {
            format!("say which system the reports belong to: --system NAME, or system = \"...\" in [collect.{name}]")
        })?;
        sitrep_domain::names::SystemName::parse(&system).map_err(|e| anyhow::anyhow!("the system name {e}"))?;
        let interval =
            common.interval.or(duration("interval", file.interval.as_ref())?).unwrap_or(Duration::from_secs(60));
        anyhow::ensure!(interval >= Duration::from_secs(1), "--interval must be at least 1s");
        let timeout = common.timeout.or(duration("timeout", file.timeout.as_ref())?).unwrap_or(Duration::from_secs(30));
        let sink = match common.http.clone().or(file.http.clone()) {
            Some(url) => {
                anyhow::ensure!(
                    url.starts_with("http://") || url.starts_with("https://"),
                    "--http {url:?}: give sitrep's base URL with its scheme, such as http://sitrep.example.org:8080"
                );
                let url = url.trim_end_matches('/');
                anyhow::ensure!(
                    !url.ends_with("/api/v1/reports"),
                    "--http {url:?}: give sitrep's base URL; the collector adds /api/v1/reports itself"
                );
                Sink::Http {
                key: common.api_key.clone().or(file.api_key.clone()).context(
                    "--http needs an API key: --api-key, SITREP_API_KEY or api_key in the file (make one with `sitrep keys create --system S --name N`)",
                )?,
                    url: url.to_owned(),
                }
            }
            None => Sink::Nats,
        };
        let share = |flag: Option<f64>, file: Option<f64>| -> anyhow::Result<f64> {
            let s = flag.or(file).unwrap_or(0.10);
            anyhow::ensure!((0.0..=1.0).contains(&s), "degraded_share must be between 0 and 1, not {s}");
            Ok(s)
        };
        let source = match args {
            SourceArgs::Pbs { group_by, degraded_share, .. } => Source::Pbs(pbs::Options {
                group_by: group_by.clone().or(file.group_by.clone()),
                degraded_share: share(*degraded_share, file.degraded_share)?,
            }),
            SourceArgs::Slurm { degraded_share, .. } => {
                Source::Slurm(slurm::Options { degraded_share: share(*degraded_share, file.degraded_share)? })
            }
            SourceArgs::Fs { mounts, degraded_pct, failed_pct, .. } => {
                let base = fs::Thresholds {
                    degraded_pct: degraded_pct.or(file.degraded_pct).unwrap_or(90.0),
                    failed_pct: failed_pct.or(file.failed_pct).unwrap_or(95.0),
                };
                let mut all: Vec<Mount> = mounts.iter().map(|m| Mount::parse(m, base)).collect::<Result<_, _>>()?;
                if all.is_empty() {
                    all = file
                        .mount
                        .iter()
                        .map(|m| Mount {
                            name: m.name.clone(),
                            path: m.path.clone(),
                            kind: m.kind,
                            device: m.device.clone().unwrap_or_else(|| m.name.clone()),
                            thresholds: fs::Thresholds {
                                degraded_pct: m.degraded_pct.unwrap_or(base.degraded_pct),
                                failed_pct: m.failed_pct.unwrap_or(base.failed_pct),
                            },
                        })
                        .collect();
                }
                anyhow::ensure!(
                    !all.is_empty(),
                    "say which mounts to read: --mount NAME=PATH, or [[collect.fs.mount]]"
                );
                for m in &all {
                    anyhow::ensure!(
                        m.thresholds.degraded_pct <= m.thresholds.failed_pct,
                        "mount {:?}: degraded_pct ({}) must not be above failed_pct ({})",
                        m.name,
                        m.thresholds.degraded_pct,
                        m.thresholds.failed_pct
                    );
                }
                let mut names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
                names.sort_unstable();
                if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                    anyhow::bail!("two mounts are named {:?}: each becomes fs/<name>, so names must differ", w[0]);
                }
                Source::Fs(all)
            }
            SourceArgs::Login { hosts, .. } => {
                let raw = if hosts.is_empty() { &file.host } else { hosts };
                let hosts: Vec<login::Host> = raw
                    .iter()
                    .map(|h| h.parse().map_err(|e: String| anyhow::anyhow!("--host {e}")))
                    .collect::<Result<_, _>>()?;
                anyhow::ensure!(!hosts.is_empty(), "say which login hosts to check: --host HOST, or host = [...]");
                let mut names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
                names.sort_unstable();
                if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                    anyhow::bail!(
                        "two hosts are named {:?}: each becomes login/<name>; name them apart with NAME=HOST[:PORT]",
                        w[0]
                    );
                }
                Source::Login(hosts)
            }
            SourceArgs::Jupyterhub { url, token, name, .. } => Source::Jupyterhub {
                url: url
                    .clone()
                    .or(file.url.clone())
                    .context("say where the hub is: --url https://jupyter.example.org, or url = \"...\"")?
                    .trim_end_matches('/')
                    .to_owned(),
                token: token
                    .clone()
                    .or(file.token.clone())
                    .context("the hub's API needs a token: --token, JUPYTERHUB_API_TOKEN, or token = \"...\"")?,
                name: name.clone().or(file.name.clone()).unwrap_or_else(|| "main".into()),
            },
        };
        Ok(Plan { source, system, once: common.once, interval, timeout, sink, path: None })
    }
}

/// One round's readings and what went wrong reading them.
#[derive(Debug, Default)]
pub struct Round {
    pub readings: Vec<Reading>,
    pub problems: Vec<String>,
}

impl Round {
    /// Whether anything was learned from the site (not only that it could not be read).
    pub fn read_something(&self) -> bool {
        self.readings
            .iter()
            .filter(|r| !r.component.starts_with("collector/"))
            .any(|r| r.status != Status::Unknown || !r.metrics.is_empty())
    }
}

/// Runs a command with the plan's timeout and search path, its error as text.
async fn run(plan: &Plan, argv: &[String]) -> Result<String, String> {
    command::run_in(argv, plan.timeout, plan.path.as_deref()).await.map_err(|e| e.to_string())
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// Reads the site once.
pub async fn round(plan: &Plan, http: &reqwest::Client) -> Round {
    let start = Instant::now();
    let mut round = Round::default();
    match &plan.source {
        Source::Pbs(opts) => {
            let (n, q, s) = (argv(pbs::NODES), argv(pbs::QUEUES), argv(pbs::SERVER));
            let (nodes, queues, server) = tokio::join!(run(plan, &n), run(plan, &q), run(plan, &s));
            (round.readings, round.problems) = pbs::readings(&pbs::Outputs { nodes, queues, server }, opts);
        }
        Source::Slurm(opts) => {
            let (n, p, j) = (argv(slurm::NODES), argv(slurm::PARTITIONS), argv(slurm::JOBS));
            let (nodes, partitions, jobs) = tokio::join!(run(plan, &n), run(plan, &p), run(plan, &j));
            let out = slurm::Outputs { nodes, partitions, jobs };
            let missing_plugin = [&out.nodes, &out.partitions, &out.jobs]
                .iter()
                .any(|r| slurm::needs_text_fallback(r.as_ref().unwrap_or_else(|e| e)));
            (round.readings, round.problems) = if missing_plugin {
                let (i, q) = (argv(slurm::SINFO_TEXT), argv(slurm::SQUEUE_TEXT));
                let (sinfo, squeue) = tokio::join!(run(plan, &i), run(plan, &q));
                slurm::readings_from_text(&sinfo, &squeue, opts)
            } else {
                slurm::readings(&out, opts)
            };
        }
        Source::Fs(mounts) => {
            let reads = futures::future::join_all(mounts.iter().map(|m| read_mount(plan, m))).await;
            for r in reads {
                match r {
                    Ok(reading) => round.readings.push(reading),
                    Err((reading, why)) => {
                        round.readings.push(reading);
                        round.problems.push(why);
                    }
                }
            }
        }
        Source::Login(hosts) => {
            let seen = futures::future::join_all(hosts.iter().map(|h| login::check(h, plan.timeout))).await;
            round.readings = hosts.iter().zip(&seen).map(|(h, s)| login::reading(h, s)).collect();
        }
        Source::Jupyterhub { url, token, name } => {
            let reading = read_hub(http, url, token, name, plan.timeout).await;
            if reading.status == Status::Unknown {
                round.problems.push(reading.message.clone());
            }
            round.readings.push(reading);
        }
    }
    round.readings.push(self_reading(plan.source.name(), &round, start.elapsed()));
    round
}

/// The collector's own component, `collector/<source>`: ok when everything could be read, else
/// unknown with each problem.
fn self_reading(source: &str, round: &Round, took: Duration) -> Reading {
    let r = Reading::new("collector", source)
        .metric("components", round.readings.len() as f64)
        .metric("problems", round.problems.len() as f64)
        .metric("duration_ms", took.as_millis() as f64)
        .label("kind", "collector");
    if round.problems.is_empty() {
        let n = round.readings.len();
        r.status(Status::Ok, format!("read {n} component{} in {} ms", if n == 1 { "" } else { "s" }, took.as_millis()))
    } else {
        r.status(Status::Unknown, round.problems.join("; "))
    }
}

/// Reads one mount: its reading, and the problem if part of it could not be read. When only
/// the inode command fails, the space figures still go out, with the problem in the message.
async fn read_mount(plan: &Plan, m: &Mount) -> Result<Reading, (Reading, String)> {
    let commands = m.kind.commands(&m.path, &m.device);
    let named =
        |argv: &[String], why: String| if why.starts_with('`') { why } else { format!("`{}` {why}", argv.join(" ")) };
    let fail = |why: String| {
        let r = Reading::unknown("fs", &m.name, why.clone()).label("kind", "filesystem").label("mount", m.path.clone());
        (r, why)
    };
    let space = run(plan, &commands[0]).await.map_err(|e| fail(named(&commands[0], e)))?;
    let inodes = match commands.get(1) {
        Some(argv) => Some(run(plan, argv).await.map_err(|e| named(argv, e))),
        None => None,
    };
    let mut inode_problem = None;
    let usage = match m.kind {
        fs::Kind::Df => fs::df(&space).map(|mut u| {
            let read = inodes.as_ref().map(|r| {
                r.as_ref().map_err(Clone::clone).and_then(|t| fs::df_inodes(t).map_err(|e| named(&commands[1], e.0)))
            });
            match read {
                Some(Ok(pct)) => u.inodes_used_pct = pct,
                Some(Err(why)) => inode_problem = Some(why),
                None => {}
            }
            u
        }),
        fs::Kind::Lustre => {
            let itext = match &inodes {
                Some(Ok(t)) => Some(t.as_str()),
                Some(Err(why)) => {
                    inode_problem = Some(why.clone());
                    None
                }
                None => None,
            };
            match fs::lustre(&space, itext) {
                Err(e) if itext.is_some() && fs::lustre(&space, None).is_ok() => {
                    inode_problem = Some(named(&commands[1], e.0));
                    fs::lustre(&space, None)
                }
                other => other,
            }
        }
        fs::Kind::Gpfs => fs::gpfs(&space),
    }
    .map_err(|e| fail(named(&commands[0], e.0)))?;
    let reading = fs::reading(&m.name, &m.path, m.kind, &usage, m.thresholds);
    match inode_problem {
        None => Ok(reading),
        Some(why) => {
            let message = format!("{}; inodes unknown: {why}", reading.message);
            Err((Reading { message, ..reading }, why))
        }
    }
}

/// Reads every page of the hub's user list.
async fn read_hub(http: &reqwest::Client, url: &str, token: &str, name: &str, timeout: Duration) -> Reading {
    let mut users = Vec::new();
    let mut offset = Some(0u64);
    let mut pages = 0;
    while let Some(at) = offset {
        pages += 1;
        if pages > 1000 {
            return jupyterhub::trouble(name, Some(200), "the user list has more than 1000 pages; stopped reading");
        }
        let endpoint = format!("{url}/hub/api/users?offset={at}");
        let resp = http
            .get(&endpoint)
            .header("Authorization", format!("token {token}"))
            .header("Accept", jupyterhub::PAGINATED)
            .timeout(timeout)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                return jupyterhub::trouble(name, None, format!("{endpoint} did not answer: {}", error_chain(&e)))
            }
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let why = match status.as_u16() {
                401 | 403 => "refused the token (it needs the list:users and read:users scopes)".to_owned(),
                _ => format!("answered {status}: {}", sitrep_collect::reading::first_line(&text)),
            };
            return jupyterhub::trouble(name, Some(status.as_u16()), format!("{endpoint} {why}"));
        }
        match jupyterhub::page(&text) {
            Ok((list, next)) => {
                // A hub that ignores the offset would send the same page forever.
                offset = next.filter(|n| *n > at && !list.is_empty());
                users.extend(list);
            }
            Err(e) => return jupyterhub::trouble(name, Some(200), format!("{endpoint} {e}")),
        }
    }
    jupyterhub::reading(name, &users, OffsetDateTime::now_utc())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The batch report of a round, in wire format v1.
pub fn batch(plan: &Plan, round: &Round, at: OffsetDateTime) -> anyhow::Result<Vec<u8>> {
    let ttl = (plan.interval.as_secs() * 3).clamp(60, sitrep_domain::wire::MAX_TTL_SECONDS);
    Ok(serde_json::to_vec(&json!({
        "system": plan.system,
        "observed_at": at.format(&Rfc3339)?,
        "ttl_seconds": ttl,
        "reports": round.readings.iter().map(Reading::to_wire).collect::<Vec<_>>(),
    }))?)
}

/// Publishes a round's batch; the message id is unique per round, so a retry is stored once.
async fn publish(
    plan: &Plan,
    settings: &Settings,
    js: Option<&jetstream::Context>,
    http: &reqwest::Client,
    payload: Vec<u8>,
    msg_id: &str,
) -> anyhow::Result<()> {
    match &plan.sink {
        Sink::Nats => {
            let js = js.context("no NATS connection")?;
            let subject = settings.report_subject(&plan.system);
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", msg_id);
            let ack = js
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .with_context(|| format!("publishing on {subject}"))?;
            ack.await.with_context(|| {
                format!("JetStream did not store the report on {subject} (is sitrep running, with its stream?)")
            })?;
        }
        Sink::Http { url, key } => {
            let endpoint = format!("{url}/api/v1/reports");
            let resp = http
                .post(&endpoint)
                .bearer_auth(key)
                .header("Content-Type", "application/json")
                .header("Idempotency-Key", msg_id)
                .timeout(plan.timeout)
                .body(payload)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("posting to {endpoint}: {}", error_chain(&e)))?;
            let status = resp.status();
            if !status.is_success() {
                let body = resp.text().await.unwrap_or_default();
                anyhow::bail!("{endpoint} answered {status}: {}", body.chars().take(500).collect::<String>());
            }
        }
    }
    Ok(())
}

/// Runs the plan: one round with `once`, else a round every interval until `cancel`. Returns the
/// number of reports published. With `once`, it fails when the round could not be published or
/// nothing could be read from the site (so cron mails the admin).
pub async fn run_plan(
    plan: &Plan,
    settings: &Settings,
    cancel: CancellationToken,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<u64> {
    crate::alerting::install_tls_provider();
    let http = reqwest::Client::builder().user_agent(concat!("sitrep-collect/", env!("CARGO_PKG_VERSION"))).build()?;
    let js = match plan.sink {
        Sink::Nats => Some(jetstream::new(sitrep_infra::bus::connect(&settings.nats_url).await?)),
        Sink::Http { .. } => None,
    };
    let source = plan.source.name();
    let mut published = 0u64;
    let mut ticker = tokio::time::interval(plan.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let at = OffsetDateTime::now_utc();
        let round = round(plan, &http).await;
        for p in &round.problems {
            tracing::warn!(source, system = %plan.system, problem = %p, "could not read part of the site");
        }
        let payload = batch(plan, &round, at)?;
        let msg_id = format!("collect-{source}-{}-{}", plan.system, uuid::Uuid::new_v4().simple());
        let n = round.readings.len() as u64;
        match publish(plan, settings, js.as_ref(), &http, payload, &msg_id).await {
            Ok(()) => {
                published += n;
                writeln!(
                    out,
                    "published {n} reports for {} ({source}){}",
                    plan.system,
                    if round.problems.is_empty() {
                        String::new()
                    } else {
                        format!(", {} problem(s): {}", round.problems.len(), round.problems.join("; "))
                    }
                )?;
            }
            Err(e) if plan.once => return Err(e),
            Err(e) => tracing::error!(
                source,
                error = format!("{e:#}"),
                "could not publish this round; trying again next round"
            ),
        }
        if plan.once {
            anyhow::ensure!(
                round.read_something(),
                "nothing could be read from the site ({}); the reports say unknown",
                round.problems.join("; ")
            );
            break;
        }
    }
    Ok(published)
}

/// `sitrep collect <source>`.
pub async fn command(settings: &Settings, args: &SourceArgs) -> anyhow::Result<()> {
    let plan = Plan::from_args(args)?;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        crate::app::shutdown_signal().await;
        stop.cancel();
    });
    run_plan(&plan, settings, cancel, &mut std::io::stdout()).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        source: SourceArgs,
    }

    fn plan(args: &[&str]) -> anyhow::Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("collect").chain(args.iter().copied()))?;
        Plan::from_args(&cli.source)
    }

    fn file(text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("sitrep-collect-{}.toml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let path =
            file("[collect.pbs]\nsystem = \"derecho\"\ninterval = \"5m\"\ngroup_by = \"resources_available.Qlist\"\n");
        let p = plan(&["pbs", "--config", path.to_str().unwrap(), "--interval", "2m"]).unwrap();
        assert_eq!(
            (p.system.as_str(), p.interval, p.timeout),
            ("derecho", Duration::from_secs(120), Duration::from_secs(30))
        );
        let Source::Pbs(opts) = &p.source else { panic!() };
        assert_eq!(opts.group_by.as_deref(), Some("resources_available.Qlist"));
        assert!(matches!(p.sink, Sink::Nats));
    }

    #[test]
    fn a_misspelt_key_in_the_file_is_named_with_the_keys_the_source_takes() {
        let path = file("[collect.fs]\nsystem = \"derecho\"\ngroup_by = \"x\"\n");
        let e = plan(&["fs", "--config", path.to_str().unwrap()]).unwrap_err().to_string();
        assert!(e.contains("has the unknown key \"group_by\"; it takes system, interval, timeout, http, api_key, mount, degraded_pct, failed_pct"), "{e}");
        let path = file("[collect.slurm]\nsystem = \"derecho\"\n");
        assert!(plan(&["pbs", "--config", path.to_str().unwrap()])
            .unwrap_err()
            .to_string()
            .contains("has no [collect.pbs] table"));
    }

    #[test]
    fn mounts_come_from_flags_or_from_the_file_with_their_own_thresholds() {
        let p = plan(&[
            "fs",
            "--system",
            "derecho",
            "--mount",
            "glade=/glade",
            "--mount",
            "scratch=/glade/derecho/scratch:lustre",
            "--mount",
            "proj=/fs/project:gpfs:project1",
        ])
        .unwrap();
        let Source::Fs(m) = &p.source else { panic!() };
        assert_eq!(
            m.iter().map(|m| (m.kind, m.device.as_str())).collect::<Vec<_>>(),
            [(fs::Kind::Df, "glade"), (fs::Kind::Lustre, "scratch"), (fs::Kind::Gpfs, "project1")]
        );
        let path = file("[collect.fs]\nsystem = \"casper\"\ndegraded_pct = 80\n[[collect.fs.mount]]\nname = \"glade\"\npath = \"/glade\"\nkind = \"lustre\"\nfailed_pct = 99\n");
        let p = plan(&["fs", "--config", path.to_str().unwrap()]).unwrap();
        let Source::Fs(m) = &p.source else { panic!() };
        assert_eq!(
            (m[0].kind, m[0].thresholds),
            (fs::Kind::Lustre, fs::Thresholds { degraded_pct: 80.0, failed_pct: 99.0 })
        );
        assert!(plan(&["fs", "--system", "x", "--mount", "glade"])
            .unwrap_err()
            .to_string()
            .contains("expected NAME=PATH"));
        assert!(plan(&["fs", "--system", "x", "--mount", "g=/g:zfs"])
            .unwrap_err()
            .to_string()
            .contains("\"zfs\" is not a filesystem kind"));
        assert!(plan(&["fs", "--system", "x"]).unwrap_err().to_string().contains("say which mounts to read"));
    }

    #[test]
    fn a_missing_system_or_key_is_explained() {
        assert!(plan(&["login", "--host", "a"]).unwrap_err().to_string().contains("--system NAME"));
        assert!(plan(&["login", "--system", "bad system", "--host", "a"]).is_err());
        let e = plan(&["pbs", "--system", "derecho", "--http", "http://sitrep:8080"]).unwrap_err().to_string();
        assert!(e.contains("--http needs an API key"), "{e}");
        assert!(plan(&["jupyterhub", "--system", "jh", "--token", "t"]).unwrap_err().to_string().contains("--url"));
    }

    #[test]
    fn a_round_is_one_valid_batch_with_the_collector_itself_in_it() {
        let p = plan(&["login", "--system", "derecho", "--host", "derecho1", "--interval", "5m"]).unwrap();
        let mut round = Round { readings: vec![Reading::new("login", "derecho1")], problems: vec![] };
        round.readings.push(self_reading("login", &round, Duration::from_millis(12)));
        let payload = batch(&p, &round, OffsetDateTime::now_utc()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["ttl_seconds"], 900);
        let decoded = sitrep_domain::wire::decode("derecho", &payload, OffsetDateTime::now_utc()).unwrap();
        assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        let me = decoded.reports.iter().find(|r| r.component.as_str() == "collector/login").unwrap();
        assert_eq!(me.message.as_deref(), Some("read 1 component in 12 ms"));
    }

    #[test]
    fn an_http_url_without_a_scheme_or_with_the_api_path_and_hosts_or_mounts_named_twice_are_refused() {
        let e = |args: &[&str]| plan(args).unwrap_err().to_string();
        assert!(e(&["pbs", "--system", "d", "--http", "127.0.0.1:8080", "--api-key", "k"]).contains("with its scheme"));
        assert!(e(&["pbs", "--system", "d", "--http", "http://s/api/v1/reports", "--api-key", "k"])
            .contains("adds /api/v1/reports"));
        assert!(e(&["login", "--system", "d", "--host", "127.0.0.1:22", "--host", "127.0.0.1:2222"])
            .contains("two hosts are named \"127.0.0.1\""));
        assert!(
            e(&["fs", "--system", "d", "--mount", "a=/a", "--mount", "a=/b"]).contains("two mounts are named \"a\"")
        );
        assert!(e(&["fs", "--system", "d", "--mount", "a=/a", "--degraded-pct", "96", "--failed-pct", "90"])
            .contains("must not be above"));
        assert!(e(&["pbs", "--system", "Derecho HPC"]).starts_with("the system name"));
    }

    #[test]
    fn a_round_that_read_figures_for_some_components_read_something() {
        let unknown_with_jobs = Reading::unknown("partition", "batch", "nodes unknown").metric("running_jobs", 3.0);
        let me = Reading::new("collector", "slurm").status(Status::Unknown, "x");
        assert!(Round { readings: vec![unknown_with_jobs, me.clone()], problems: vec!["x".into()] }.read_something());
        let nothing = Reading::unknown("partition", "batch", "nodes unknown");
        assert!(!Round { readings: vec![nothing, me], problems: vec!["x".into()] }.read_something());
    }
}
