//! The benchmark's traffic: a fixed plan of reports spread over systems and components, published
//! by concurrent simulated collectors as fast as JetStream accepts them (the bulk run), or at a
//! fixed offered rate with probe reports whose publish-to-visible time is measured (the latency
//! run).

use super::BenchArgs;
use anyhow::Context;
use async_nats::jetstream::{self, context::PublishAckFuture};
use sitrep_infra::Settings;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Publish acks all collectors together wait for at most at once. async-nats holds a permit per
/// unawaited ack (5,000 by default) and makes `publish` wait for one, so a total above that
/// deadlocks collectors that each wait in `publish` before awaiting their own acks.
const IN_FLIGHT: usize = 4_000;
/// The system and component of the latency probes (a system of its own, so polling it is cheap).
pub const PROBE_SYSTEM: &str = "probe";
const PROBE_COMPONENT: &str = "bench/probe";

/// Which report is which: report `i` is for component `i % components`, in round
/// `i / components`; component `c` belongs to system `c % systems`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub systems: u32,
    pub components: u32,
    /// Systems are named this and their number: `sys00`, `sys01`, ...
    pub system_prefix: &'static str,
    /// Which reports say `degraded`.
    pub degraded: Degraded,
}

/// Which components are degraded when. Each `degraded` report is followed by an `ok` one, so
/// status changes, segments and alerts all have work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Degraded {
    /// About 1% of reports, a different set of components each round (the benchmark). Over many
    /// rounds every component changes status now and then, so alert state keeps growing: after
    /// 5 to 12 minutes every component has flapped (`flapping` rule: 4 changes in 30 minutes).
    Scattered,
    /// Every `n`-th component alternates `degraded` and `ok` from the first round; the rest are
    /// always `ok` (the soak). As many status changes per round as `Scattered` when `n` is 50,
    /// but the same components every time, so alert state is steady after a few rounds and
    /// memory that keeps growing means a leak, not more open alerts.
    EveryNth(u32),
}

impl Plan {
    pub fn new(args: &BenchArgs) -> Self {
        Self {
            systems: args.systems.max(1),
            components: args.components.max(1),
            system_prefix: "sys",
            degraded: Degraded::Scattered,
        }
    }

    pub fn system(&self, c: u32) -> String {
        format!("{}{:02}", self.system_prefix, c % self.systems)
    }

    /// Report `i` as wire-format JSON, with its system; [`Degraded`] says which say `degraded`.
    pub fn report(&self, i: u64) -> (String, String) {
        let c = (i % u64::from(self.components)) as u32;
        let round = i / u64::from(self.components);
        let system = self.system(c);
        let degraded = match self.degraded {
            Degraded::Scattered => (u64::from(c) * 7919 + round * 104_729) % 97 == 0,
            Degraded::EveryNth(n) => c % n.max(1) == 0 && round % 2 == 0,
        };
        let status = if degraded { "degraded" } else { "ok" };
        let load = (c % 64) as f64 / 8.0 + (round % 10) as f64 / 10.0;
        let mem = 20 + (c + round as u32) % 70;
        let payload = format!(
            r#"{{"system":"{system}","component":"node/c{c:05}","status":"{status}","metrics":{{"load_1m":{load:.2},"mem_used_pct":{mem}}},"ttl_seconds":600}}"#
        );
        (system, payload)
    }
}

/// Publishes reports `from..to` of the plan from `collectors` concurrent collectors, each
/// waiting for JetStream's acks with its share of [`IN_FLIGHT`] outstanding.
pub async fn publish_all(
    js: &jetstream::Context,
    settings: &Settings,
    plan: Plan,
    from: u64,
    to: u64,
    collectors: u32,
) -> anyhow::Result<()> {
    let collectors = u64::from(collectors.max(1));
    let window = (IN_FLIGHT / collectors as usize).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..collectors {
        let (js, settings) = (js.clone(), settings.clone());
        tasks.spawn(async move {
            let mut pending: VecDeque<PublishAckFuture> = VecDeque::with_capacity(window);
            let mut i = from + k;
            while i < to {
                let (system, payload) = plan.report(i);
                if pending.len() == window {
                    pending.pop_front().expect("a pending ack").await.context("JetStream refused a report")?;
                }
                let ack = js
                    .publish(settings.report_subject(&system), payload.into())
                    .await
                    .context("publishing a report")?;
                pending.push_back(ack);
                i += collectors;
            }
            for ack in pending {
                ack.await.context("JetStream refused a report")?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a collector task panicked")??;
    }
    Ok(())
}

/// Publish-to-visible latencies (ms) of probe reports sent among reports offered at `rate`
/// reports/s for `seconds`, and the rate actually offered.
pub struct Latency {
    pub millis: Vec<f64>,
    pub offered: f64,
}

/// Offers the plan's reports from `from` at `rate` reports/s for `seconds`, in ticks of 10 ms.
/// Every 50 ms one probe report (metric `seq`) goes out too; a poller reads
/// `/api/v1/status/probe` every 2 ms and notes when each `seq` first shows. A probe overtaken
/// by the next one before a poll saw it counts as visible when the later one was seen (an upper
/// bound).
pub async fn latency(
    js: &jetstream::Context,
    settings: &Settings,
    plan: Plan,
    from: u64,
    rate: u32,
    seconds: u32,
    addr: SocketAddr,
) -> anyhow::Result<Latency> {
    const TICK: Duration = Duration::from_millis(10);
    const PROBE_EVERY: u32 = 5;
    let ticks = seconds * 100;
    let per_tick = (f64::from(rate) / 100.0).round().max(1.0) as u64;
    let probes = (ticks / PROBE_EVERY) as usize;
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; probes]));
    let seen: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; probes]));

    // Acks are awaited off the publishing path, in order.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<PublishAckFuture>();
    let acker = tokio::spawn(async move {
        while let Some(ack) = ack_rx.recv().await {
            ack.await.context("JetStream refused a report")?;
        }
        anyhow::Ok(())
    });

    let poller = {
        let seen = seen.clone();
        let url = format!("http://{addr}/api/v1/status/{PROBE_SYSTEM}");
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(u64::from(seconds) + 30);
            let mut last: i64 = -1;
            while last + 1 < probes as i64 && Instant::now() < deadline {
                if let Ok(resp) = client.get(&url).send().await {
                    if let Ok(body) = resp.json::<serde_json::Value>().await {
                        let seq = body["components"][0]["metrics"]["seq"].as_f64().map_or(-1, |s| s as i64);
                        if seq > last {
                            let now = Instant::now();
                            let mut seen = seen.lock().expect("the seen list");
                            for s in (last + 1)..=seq.min(probes as i64 - 1) {
                                seen[s as usize] = Some(now);
                            }
                            last = seq;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let mut interval = tokio::time::interval(TICK);
    let started = Instant::now();
    let mut i = from;
    let mut offered = 0u64;
    for tick in 0..ticks {
        interval.tick().await;
        if tick % PROBE_EVERY == 0 {
            let seq = tick / PROBE_EVERY;
            let payload = format!(
                r#"{{"system":"{PROBE_SYSTEM}","component":"{PROBE_COMPONENT}","status":"ok","metrics":{{"seq":{seq}}}}}"#
            );
            sent.lock().expect("the sent list")[seq as usize] = Some(Instant::now());
            let ack = js.publish(settings.report_subject(PROBE_SYSTEM), payload.into()).await?;
            let _ = ack_tx.send(ack);
        }
        for _ in 0..per_tick {
            let (system, payload) = plan.report(i);
            let ack = js.publish(settings.report_subject(&system), payload.into()).await?;
            let _ = ack_tx.send(ack);
            i += 1;
            offered += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(ack_tx);
    acker.await.context("the ack task panicked")??;
    poller.await.context("the probe poller panicked")?;

    let sent = sent.lock().expect("the sent list");
    let seen = seen.lock().expect("the seen list");
    let mut millis = Vec::new();
    // The first second warms up (connections, caches) and is left out.
    for (s, v) in sent.iter().zip(seen.iter()).skip((100 / PROBE_EVERY) as usize) {
        match (s, v) {
            (Some(s), Some(v)) => millis.push(v.saturating_duration_since(*s).as_secs_f64() * 1000.0),
            (Some(_), None) => anyhow::bail!("a probe report never became visible in /api/v1/status/{PROBE_SYSTEM}"),
            _ => {}
        }
    }
    Ok(Latency { millis, offered: offered as f64 / elapsed })
}

/// The value at quantile `q` (0 to 1) of `values`, sorted in place.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let idx = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
    values[idx]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_spreads_reports_over_every_component_and_system_and_decodes() {
        let plan = Plan { systems: 20, components: 10_000, system_prefix: "sys", degraded: Degraded::Scattered };
        let (system, payload) = plan.report(10_007);
        assert_eq!(system, "sys07");
        let now = time::OffsetDateTime::now_utc();
        let decoded = sitrep_domain::wire::decode(&system, payload.as_bytes(), now).expect("a valid report");
        assert_eq!(decoded.reports[0].component.as_str(), "node/c00007");
        let degraded = (0..100_000).filter(|&i| plan.report(i).1.contains("degraded")).count();
        assert!((500..2000).contains(&degraded), "about 1% degraded, got {degraded}");
        assert_ne!(degraded_in(plan, 2), degraded_in(plan, 4), "a different set each round");
    }

    #[test]
    fn every_nth_degrades_the_same_components_every_other_round_and_nothing_else() {
        let plan = Plan { systems: 20, components: 10_000, system_prefix: "sys", degraded: Degraded::EveryNth(50) };
        let first = degraded_in(plan, 0);
        assert_eq!(first.len(), 200);
        assert!(first.iter().all(|c| c % 50 == 0));
        assert!(degraded_in(plan, 1).is_empty(), "the next round says ok again");
        assert_eq!(degraded_in(plan, 6), first, "the same components every time");
    }

    /// The components that say `degraded` in `round`.
    fn degraded_in(plan: Plan, round: u64) -> Vec<u64> {
        let n = u64::from(plan.components);
        (0..n).filter(|c| plan.report(round * n + c).1.contains("degraded")).collect()
    }

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut v, 1.0), 100.0);
        assert!(quantile(&mut [], 0.5).is_nan());
    }
}
