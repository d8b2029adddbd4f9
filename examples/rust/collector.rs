//! A collector in Rust: reports the host it runs on to sitrep over NATS JetStream, as
//! component `host/<short hostname>` of a system (see docs/collectors.md).
//!
//! ```sh
//! cargo run --example collector -- --system derecho --once
//! SITREP_SYSTEM=derecho cargo run --example collector -- --interval 60
//! ```
//!
//! It reads the load from `/proc/loadavg` and the root filesystem's use from `df -P -k /`. The
//! status is failed when the root filesystem is at least 95% full, degraded at 90% or when the
//! 1-minute load is above twice the CPUs, else ok. Each report is published with a JetStream
//! publish (which waits for the server's ack) and a `Nats-Msg-Id` unique per report, so a retry
//! is stored once. Settings also come from `SITREP_SYSTEM`, `SITREP_NATS_URL` and
//! `SITREP_SUBJECT_PREFIX`.

use anyhow::Context;
use serde_json::json;
use std::time::Duration;

/// What the collector is told to do.
struct Args {
    system: String,
    nats_url: String,
    prefix: String,
    once: bool,
    interval: Duration,
}

fn args() -> anyhow::Result<Args> {
    let env = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.to_owned());
    let mut a = Args {
        system: env("SITREP_SYSTEM", ""),
        nats_url: env("SITREP_NATS_URL", "nats://127.0.0.1:4222"),
        prefix: env("SITREP_SUBJECT_PREFIX", "sitrep"),
        once: false,
        interval: Duration::from_secs(60),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--system" => a.system = value("--system")?,
            "--nats-url" => a.nats_url = value("--nats-url")?,
            "--subject-prefix" => a.prefix = value("--subject-prefix")?,
            "--interval" => {
                a.interval = Duration::from_secs(value("--interval")?.parse().context("--interval: seconds")?)
            }
            "--once" => a.once = true,
            "-h" | "--help" => {
                println!("collector --system NAME [--once] [--interval SECONDS] [--nats-url URL] [--subject-prefix P]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown option {other:?} (see --help)"),
        }
    }
    anyhow::ensure!(!a.system.is_empty(), "say which system this host belongs to: --system NAME or SITREP_SYSTEM");
    Ok(a)
}

fn short_hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
    let short = name.trim().split('.').next().unwrap_or("localhost").to_owned();
    short.chars().map(|c| if c.is_ascii_alphanumeric() || "._@+-".contains(c) { c } else { '-' }).collect()
}

/// The host's report as wire format v1 JSON.
fn observe(system: &str, ttl_seconds: u64) -> anyhow::Result<serde_json::Value> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    let load: Vec<f64> = loadavg.split_whitespace().take(3).map(|v| v.parse().unwrap_or(0.0)).collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let df = std::process::Command::new("df").args(["-P", "-k", "/"]).output().context("running df")?;
    let root_used_pct: f64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|p| p.trim_end_matches('%').parse().ok())
        .context("reading the use of / from df")?;
    let (status, message) = if root_used_pct >= 95.0 {
        ("failed", format!("/ is {root_used_pct}% full"))
    } else if root_used_pct >= 90.0 {
        ("degraded", format!("/ is {root_used_pct}% full"))
    } else if load[0] > 2.0 * cpus {
        ("degraded", format!("load {} on {cpus} CPUs", load[0]))
    } else {
        ("ok", format!("load {} on {cpus} CPUs, / {root_used_pct}% full", load[0]))
    };
    Ok(json!({
        "system": system,
        "component": format!("host/{}", short_hostname()),
        "status": status,
        "message": message,
        "metrics": {"load_1m": load[0], "load_5m": load[1], "load_15m": load[2], "cpus": cpus,
                    "root_used_pct": root_used_pct},
        "labels": {"kind": "host"},
        "ttl_seconds": ttl_seconds,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let nats =
        async_nats::connect(&a.nats_url).await.with_context(|| format!("connecting to NATS at {}", a.nats_url))?;
    let js = async_nats::jetstream::new(nats);
    let subject = format!("{}.report.{}", a.prefix, a.system);
    loop {
        let report = observe(&a.system, 3 * a.interval.as_secs().max(1))?;
        let mut headers = async_nats::HeaderMap::new();
        let id =
            format!("{}-rust-collector-{}", short_hostname(), time::OffsetDateTime::now_utc().unix_timestamp_nanos());
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let ack = js
            .publish_with_headers(subject.clone(), headers, serde_json::to_vec(&report)?.into())
            .await
            .with_context(|| format!("publishing on {subject}"))?
            .await
            .with_context(|| format!("no JetStream stream captures {subject}; is sitrep ingest running?"))?;
        println!(
            "published {} status={} to {subject} (stream {} seq {})",
            report["component"].as_str().unwrap_or(""),
            report["status"].as_str().unwrap_or(""),
            ack.stream,
            ack.sequence
        );
        if a.once {
            return Ok(());
        }
        tokio::time::sleep(a.interval).await;
    }
}
