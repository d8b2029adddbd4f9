//! The sign-in flood: what `--flood-clients` clients, each signing in with made-up names as fast
//! as they can, do to the dashboard and to HTTP ingest.
//!
//! Every attempt comes with a fresh random `X-Forwarded-For` (the child trusts the bench's own
//! address as a proxy), so each looks like a new client and no per-address limit holds it back:
//! the worst case, a flood from many addresses. What protects the rest is the bound on password
//! hashes at once, and no database connection held while one runs. Beside the flood, one
//! probe reads `/api/v1/status/<system>` and posts one report over HTTP ingest every 50 ms; the
//! same probe runs first with no flood, for the idle figures.

use super::load::quantile;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Latencies of the probes, in milliseconds.
#[derive(Debug, Default)]
pub struct Probed {
    pub status_ms: Vec<f64>,
    pub ingest_ms: Vec<f64>,
}

/// What the flood measured.
#[derive(Debug)]
pub struct Flood {
    pub idle: Probed,
    pub flood: Probed,
    /// How the flood's sign-in attempts were answered, by status code.
    pub answers: BTreeMap<u16, u64>,
}

impl Flood {
    /// The median of `f`'s values in flood and idle, and their ratio.
    pub fn medians(&mut self, f: fn(&mut Probed) -> &mut Vec<f64>) -> (f64, f64, f64) {
        let idle = quantile(f(&mut self.idle), 0.5);
        let flood = quantile(f(&mut self.flood), 0.5);
        (idle, flood, flood / idle)
    }
}

async fn probe(addr: SocketAddr, path: &str, key: &str, system: &str, seconds: f64) -> anyhow::Result<Probed> {
    let http = reqwest::Client::new();
    let mut probed = Probed::default();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut i = 0u64;
    while Instant::now() < deadline {
        tick.tick().await;
        let t = Instant::now();
        let resp = http.get(format!("http://{addr}{path}")).send().await?;
        anyhow::ensure!(resp.status().is_success(), "{path} answered {}", resp.status());
        resp.bytes().await?;
        probed.status_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        i += 1;
        let report = serde_json::json!({"system": system, "component": "bench/flood-probe", "status": "ok",
            "metrics": {"i": i}});
        let t = Instant::now();
        let resp = http.post(format!("http://{addr}/api/v1/reports")).bearer_auth(key).json(&report).send().await?;
        anyhow::ensure!(resp.status().as_u16() == 202, "HTTP ingest answered {}", resp.status());
        probed.ingest_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(probed)
}

/// One flooding client: sign-in after sign-in with a made-up name, from a made-up address.
async fn flood_client(addr: SocketAddr, deadline: Instant) -> anyhow::Result<BTreeMap<u16, u64>> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let page = http.get(format!("http://{addr}/sign-in")).send().await?;
    let csrf = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("sitrep_csrf=").map(|rest| rest.split(';').next().unwrap_or("").to_owned()))
        .ok_or_else(|| anyhow::anyhow!("the sign-in page set no CSRF cookie"))?;
    let mut answers = BTreeMap::new();
    let mut rng = fastrand::Rng::new();
    while Instant::now() < deadline {
        let name = format!("nobody{}", rng.u64(..));
        let password = format!("guess {}", rng.u64(..));
        let from = format!("10.{}.{}.{}", rng.u8(..), rng.u8(..), rng.u8(1..255));
        let resp = http
            .post(format!("http://{addr}/sign-in"))
            .header("Origin", format!("http://{addr}"))
            .header("Cookie", format!("sitrep_csrf={csrf}"))
            .header("X-Forwarded-For", from)
            .form(&[("name", name.as_str()), ("password", &password), ("csrf", &csrf), ("next", "/")])
            .send()
            .await?;
        *answers.entry(resp.status().as_u16()).or_insert(0) += 1;
    }
    Ok(answers)
}

/// Measures the probes idle, then beside `clients` flooding clients for `seconds`.
pub async fn measure(
    pool: &deadpool_postgres::Pool,
    addr: SocketAddr,
    system: &str,
    clients: u32,
    seconds: u32,
) -> anyhow::Result<Flood> {
    let key = sitrep_infra::auth::create_key(&**pool.get().await?, "bench-flood-probe", &[system.to_owned()]).await?;
    let path = format!("/api/v1/status/{system}");
    let idle = probe(addr, &path, &key, system, 5.0).await?;
    let deadline = Instant::now() + Duration::from_secs(seconds.into());
    let flooders: Vec<_> = (0..clients).map(|_| tokio::spawn(flood_client(addr, deadline))).collect();
    // The flood takes a moment to build up; the probe starts once it has.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flood = probe(addr, &path, &key, system, f64::from(seconds) - 1.0).await?;
    let mut answers = BTreeMap::new();
    for f in flooders {
        for (status, n) in f.await?? {
            *answers.entry(status).or_insert(0) += n;
        }
    }
    Ok(Flood { idle, flood, answers })
}
