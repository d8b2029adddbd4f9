//! The fault suite: real `sitrep ingest` and `sitrep project` processes against the real Postgres
//! and NATS (private servers where a scenario stops them), with faults injected while collectors
//! publish. The first five scenarios publish a known set of reports, some of them invalid, and end
//! by counting: each accepted report is in the event log and in history exactly once, and each
//! rejected one is in quarantine. The sixth kills sitrep while it delivers a notification and
//! counts what a loopback receiver took.
//!
//! Run it with `scripts/test-faults` (`scripts/test` runs it after the other tests); it prints
//! one line of counts per scenario. It is `test = false` in Cargo.toml so that a plain
//! `cargo test` does not run it in parallel with everything else.

use async_nats::jetstream;
use sitrep_infra::settings::Secret;
use sitrep_infra::{bus, db, devservices, Settings};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Scenarios run one at a time even without `--test-threads=1`: they kill and restart servers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a scenario waits for every report to settle. Ingest's ack wait is 30 s: a batch a
/// killed ingest held comes back after it.
const SETTLE: Duration = Duration::from_secs(120);

/// Alert rules for the scenarios: a failed component raises an alert at once.
const RULES: &str = r#"
[[rule]]
name = "down"
kind = "status"
status = ["failed"]
severity = "critical"
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A NATS server this test started (and may kill).
struct Nats {
    name: String,
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Nats {
    /// A standalone JetStream server with its store under `dir`.
    fn standalone(dir: &Path) -> Self {
        let port = free_port();
        let store = dir.join("nats");
        let args = vec!["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd", &store.to_string_lossy()]
            .into_iter()
            .map(String::from)
            .collect();
        let mut n = Nats { name: "nats".into(), port, args, child: None };
        n.start();
        n
    }

    /// A three-node JetStream cluster on loopback ports.
    fn cluster(dir: &Path) -> Vec<Self> {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes = ports.iter().map(|(_, c)| format!("nats://127.0.0.1:{c}")).collect::<Vec<_>>().join(",");
        let mut nodes: Vec<Nats> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, cluster))| {
                let name = format!("n{}", i + 1);
                let store = dir.join(&name);
                let args = [
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-n",
                    &name,
                    "-js",
                    "-sd",
                    &store.to_string_lossy(),
                    "--cluster_name",
                    "sitrep-faults",
                    "--cluster",
                    &format!("nats://127.0.0.1:{cluster}"),
                    "--routes",
                    &routes,
                ]
                .into_iter()
                .map(String::from)
                .collect();
                Nats { name, port: *port, args, child: None }
            })
            .collect();
        for n in &mut nodes {
            n.start();
        }
        nodes
    }

    fn start(&mut self) {
        let bin = devservices::find_binary("nats-server").expect("nats-server is installed");
        let child = Command::new(bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        wait_for_port(self.port, "nats-server");
    }

    fn kill(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
            child.wait().unwrap();
        }
    }

    fn url(nodes: &[Nats]) -> String {
        nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill("-KILL");
    }
}

fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while !devservices::answers("127.0.0.1", port) {
        assert!(started.elapsed() < Duration::from_secs(30), "{what} did not listen on {port} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Postgres server this test started (and may restart), with its data under `dir`.
struct Postgres {
    data: PathBuf,
    port: u16,
}

impl Postgres {
    fn start(dir: &Path) -> Self {
        let pg = Postgres { data: dir.join("postgres"), port: free_port() };
        devservices::start_postgres_at(&pg.data, pg.port).expect("start a private Postgres");
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = devservices::stop_postgres_at(&self.data);
    }
}

/// A `sitrep` process of one role.
struct Proc {
    role: &'static str,
    child: Child,
}

/// One scenario's sitrep: its own database, streams, subjects and processes.
struct Rig {
    tag: &'static str,
    settings: Settings,
    admin_url: String,
    db_name: String,
    dir: PathBuf,
    procs: Vec<Proc>,
    starts: usize,
}

/// Where the scenario's private servers and logs live, and the shared servers' URLs.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sitrep-faults-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The configured (or project-local) Postgres and NATS, for scenarios that do not stop them.
fn shared_services() -> Settings {
    let mut settings = Settings::from_env();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    devservices::ensure(&mut settings, &root).expect("Postgres and NATS");
    settings
}

impl Rig {
    async fn new(tag: &'static str, dir: PathBuf, pg_url: &str, nats_url: &str, replicas: u8) -> Rig {
        let id = format!("{}_{}", now_secs(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let db_name = format!("sitrep_test_{id}");
        let mut settings = Settings::from_env();
        settings.database_url = Secret::new(db::url_of_database(pg_url, &db_name).unwrap());
        settings.nats_url = nats_url.to_owned();
        settings.subject_prefix = format!("t{id}");
        settings.reports_stream = format!("T{id}_REPORTS").to_uppercase();
        settings.alerts_stream = format!("T{id}_ALERTS").to_uppercase();
        settings.ingest_consumer = "ingest".into();
        settings.self_report_seconds = 0;
        settings.stream_replicas = replicas;
        let rules = dir.join("alerts.toml");
        std::fs::write(&rules, RULES).unwrap();
        settings.alerts_file = Some(rules);
        db::migrate(&db::parse_url(settings.database_url.expose()).unwrap()).await.unwrap();
        // The streams, before any process: a new cluster takes a few seconds to elect its leaders.
        let js = jetstream::new(bus::connect(nats_url).await.unwrap());
        let started = Instant::now();
        loop {
            let made = async {
                bus::ensure_reports_stream(&js, &settings).await?;
                bus::ensure_alerts_stream(&js, &settings).await
            };
            match made.await {
                Ok(_) => break,
                Err(e) if started.elapsed() < Duration::from_secs(60) => {
                    eprintln!("  ({tag}: streams not ready yet: {e:#})");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => panic!("creating the streams: {e:#}"),
            }
        }
        Rig { tag, settings, admin_url: pg_url.to_owned(), db_name, dir, procs: vec![], starts: 0 }
    }

    /// Starts `sitrep <role>`; returns its index. Its log is `<dir>/<role>-<n>.log`.
    fn spawn(&mut self, role: &'static str) -> usize {
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("{role}-{}.log", self.starts))).unwrap();
        let s = &self.settings;
        let child = Command::new(env!("CARGO_BIN_EXE_sitrep"))
            .arg(role)
            .env("SITREP_DATABASE_URL", s.database_url.expose())
            .env("SITREP_NATS_URL", &s.nats_url)
            .env("SITREP_SUBJECT_PREFIX", &s.subject_prefix)
            .env("SITREP_REPORTS_STREAM", &s.reports_stream)
            .env("SITREP_ALERTS_STREAM", &s.alerts_stream)
            .env("SITREP_INGEST_CONSUMER", &s.ingest_consumer)
            .env("SITREP_STREAM_REPLICAS", s.stream_replicas.to_string())
            .env("SITREP_SELF_REPORT_SECONDS", "0")
            .env("SITREP_ALERTS_FILE", s.alerts_file.as_ref().unwrap())
            .env("SITREP_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sitrep");
        self.procs.push(Proc { role, child });
        self.procs.len() - 1
    }

    /// `kill -9`, then start the same role again in its place.
    fn kill9_and_restart(&mut self, i: usize) {
        self.kill9(i);
        let role = self.procs[i].role;
        let j = self.spawn(role);
        self.procs.swap(i, j);
        self.procs.pop();
    }

    fn kill9(&mut self, i: usize) {
        let child = &mut self.procs[i].child;
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Every process still runs (none gave up on a fault).
    fn assert_all_running(&mut self) {
        for p in &mut self.procs {
            if let Some(status) = p.child.try_wait().unwrap() {
                panic!("{} exited ({status}) during {}; see the logs in {}", p.role, self.tag, self.dir.display());
            }
        }
    }

    async fn client(&self) -> tokio_postgres::Client {
        db::connect(&db::parse_url(self.settings.database_url.expose()).unwrap()).await.unwrap()
    }

    /// Stops every process (SIGTERM, then SIGKILL after 15 s) and removes the database and
    /// streams; returns the scratch folder, to be removed once the private servers are stopped.
    async fn finish(mut self, js: &jetstream::Context) -> PathBuf {
        for p in &mut self.procs {
            let _ = Command::new("kill").args(["-TERM", &p.child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(p.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.procs.clear();
        let _ = db::drop_database(&self.admin_url, &self.db_name).await;
        let _ = js.delete_stream(&self.settings.reports_stream).await;
        let _ = js.delete_stream(&self.settings.alerts_stream).await;
        self.dir.clone()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// Message `i` of a scenario. Every tenth is invalid (alternately a bad status and broken
/// JSON); the others carry their number as the metric `seq`. Now and then every component
/// fails for a round, which raises alerts and then resolves them.
fn message(i: usize) -> (bool, String) {
    if i % 10 == 7 {
        let body = if i % 20 == 7 {
            r#"{"system":"derecho","component":"node/bad","status":"bogus"}"#.to_owned()
        } else {
            "{not json".to_owned()
        };
        return (false, body);
    }
    let status = if (i / 20) % 25 == 24 { "failed" } else { "ok" };
    (
        true,
        format!(r#"{{"system":"derecho","component":"node/n{}","status":"{status}","metrics":{{"seq":{i}}}}}"#, i % 20),
    )
}

/// Publishes messages `range` the way a careful collector does: each with its `Nats-Msg-Id`,
/// retried until JetStream acks it (so NATS restarts and failovers lose nothing).
async fn publish(nats_url: String, subject: String, range: std::ops::Range<usize>, pace: Duration) -> usize {
    let js = jetstream::new(bus::connect(&nats_url).await.unwrap());
    for i in range.clone() {
        let (_, body) = message(i);
        let started = Instant::now();
        loop {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("m{i}").as_str());
            let sent = async { js.publish_with_headers(subject.clone(), headers, body.clone().into()).await?.await };
            match tokio::time::timeout(Duration::from_secs(5), sent).await {
                Ok(Ok(_)) => break,
                _ => {
                    assert!(started.elapsed() < Duration::from_secs(120), "message {i} not accepted for 2 minutes");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
    range.len()
}

/// A scenario's counts.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    published: usize,
    stored: usize,
    quarantined: usize,
    duplicates: usize,
    missing: usize,
}

async fn tally(client: &tokio_postgres::Client, sql: &str) -> HashMap<String, i64> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, Option<String>>(0).unwrap_or_default(), r.get(1)))
        .collect()
}

/// Counts messages `0..published` in the event log, history's rollups and quarantine.
async fn count(client: &tokio_postgres::Client, published: usize) -> Counts {
    let events = tally(
        client,
        "SELECT metadata->>'msg_id', count(*) FROM events WHERE event_type = 'StatusReported' GROUP BY 1",
    )
    .await;
    // History keeps rollups, not a copy of each report: every valid message's `seq` is counted
    // once in the daily rollups (more is a duplicate, fewer a message history missed), and
    // their sum is the sum of the valid messages' numbers (so a duplicate and a loss do not
    // cancel out).
    let row = client
        .query_one(
            "SELECT coalesce(sum(count), 0)::int8, coalesce(sum(sum), 0)::int8 FROM metric_rollups
             WHERE resolution = 'day' AND metric = 'seq'",
            &[],
        )
        .await
        .unwrap();
    let (history, history_sum): (i64, i64) = (row.get(0), row.get(1));
    let quarantine = tally(client, "SELECT split_part(source_key, ':', 3), count(*) FROM quarantine GROUP BY 1").await;
    let (valid, invalid): (Vec<usize>, Vec<usize>) = (0..published).partition(|i| message(*i).0);
    let id = |i: &usize| format!("m{i}");
    let valid: HashSet<String> = valid.iter().map(id).collect();
    let invalid: HashSet<String> = invalid.iter().map(id).collect();
    let misplaced: Vec<&String> = events
        .keys()
        .filter(|k| !valid.contains(*k))
        .chain(quarantine.keys().filter(|k| !invalid.contains(*k)))
        .collect();
    assert!(
        misplaced.is_empty(),
        "{} messages where they do not belong, such as {:?}",
        misplaced.len(),
        &misplaced[..misplaced.len().min(10)]
    );
    let extra = |m: &HashMap<String, i64>| m.values().map(|n| (n - 1) as usize).sum::<usize>();
    let absent = |m: &HashMap<String, i64>, want: &HashSet<String>| want.iter().filter(|k| !m.contains_key(*k)).count();
    let want_sum: i64 = (0..published).filter(|i| message(*i).0).map(|i| i as i64).sum();
    let (history_extra, history_absent) = match history - valid.len() as i64 {
        0 if history_sum != want_sum => (1, 1),
        d => (d.max(0) as usize, (-d).max(0) as usize),
    };
    Counts {
        published,
        stored: events.len(),
        quarantined: quarantine.len(),
        duplicates: extra(&events) + history_extra + extra(&quarantine),
        missing: absent(&events, &valid) + history_absent + absent(&quarantine, &invalid),
    }
}

/// Waits until every message is accounted for and ingest has acked everything (so a batch a
/// killed ingest stored but never acked has come back and been dropped as a duplicate), or
/// until [`SETTLE`] passes; then prints the scenario's counts and checks them.
async fn settle_and_check(rig: &Rig, js: &jetstream::Context, published: usize) -> Counts {
    let client = rig.client().await;
    let started = Instant::now();
    loop {
        let counts = count(&client, published).await;
        let unacked = unacked(js, &rig.settings).await;
        if (counts.missing == 0 && unacked == Some(0)) || started.elapsed() > SETTLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Anything the last acked batch made the projections do.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = count(&client, published).await;
    let valid = (0..published).filter(|i| message(*i).0).count();
    println!(
        "fault scenario {:<34} published {:>5}  stored {:>5}  quarantined {:>4}  duplicates {}  missing {}",
        rig.tag, counts.published, counts.stored, counts.quarantined, counts.duplicates, counts.missing
    );
    let want = Counts { published, stored: valid, quarantined: published - valid, duplicates: 0, missing: 0 };
    assert_eq!(counts, want, "{}: the logs are in {}", rig.tag, rig.dir.display());
    counts
}

/// Messages ingest's consumer has not acked yet (delivered or not); `None` if JetStream cannot
/// say just now (a node is down).
async fn unacked(js: &jetstream::Context, settings: &Settings) -> Option<u64> {
    let info = consumer_info(js, settings).await?;
    Some(info.num_pending + info.num_ack_pending as u64)
}

async fn consumer_info(js: &jetstream::Context, settings: &Settings) -> Option<jetstream::consumer::Info> {
    let stream = js.get_stream(&settings.reports_stream).await.ok()?;
    let mut consumer: jetstream::consumer::PullConsumer = stream.get_consumer(&settings.ingest_consumer).await.ok()?;
    consumer.info().await.ok().cloned()
}

/// Every alert event in the log is on the alert stream exactly once; prints and checks that.
/// Compared once the evaluator and the publisher have both reached the head of the log.
async fn check_alerts_published_once(rig: &Rig, js: &jetstream::Context) {
    let client = rig.client().await;
    let started = Instant::now();
    loop {
        let row = client
            .query_one(
                "SELECT (SELECT coalesce(max(position), 0) FROM events),
                        (SELECT coalesce(min(position), 0) FROM projection_checkpoints
                         WHERE name IN ('alert_evaluator', 'alert_publisher'))",
                &[],
            )
            .await
            .unwrap();
        let (head, slowest): (i64, i64) = (row.get(0), row.get(1));
        if slowest >= head || started.elapsed() > SETTLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (expected, got) = loop {
        let expected: HashSet<String> = client
            .query(
                "SELECT event_id::text FROM events WHERE aggregate_type = $1",
                &[&sitrep_domain::alert::AGGREGATE_TYPE],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let got = alert_ids_on_stream(js, &rig.settings.alerts_stream).await;
        let all_there = expected.iter().all(|id| got.iter().any(|g| g == id));
        if all_there || started.elapsed() > SETTLE {
            break (expected, got);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let distinct: HashSet<&String> = got.iter().collect();
    let duplicates = got.len() - distinct.len();
    let missing = expected.iter().filter(|id| !distinct.contains(id)).count();
    println!(
        "fault scenario {:<34} alert transitions {:>4}  on the bus {:>4}  duplicates {duplicates}  missing {missing}",
        rig.tag,
        expected.len(),
        got.len()
    );
    assert!(!expected.is_empty(), "{}: the scenario raised no alerts, so it tested nothing", rig.tag);
    assert_eq!((duplicates, missing, got.len()), (0, 0, expected.len()), "{}: alert transitions on the bus", rig.tag);
}

/// The `event_id` of every message on the alert stream, in order.
async fn alert_ids_on_stream(js: &jetstream::Context, stream: &str) -> Vec<String> {
    let Ok(mut stream) = js.get_stream(stream).await else { return vec![] };
    let Ok(info) = stream.info().await else { return vec![] };
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut ids = Vec::new();
    if info.state.messages == 0 {
        return ids;
    }
    for seq in first..=last {
        if let Ok(m) = stream.get_raw_message(seq).await {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
            ids.push(v["event_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    ids
}

/// Every job's worker pids, from the lock connections' names (exactly one each while a process
/// works on it).
async fn workers(client: &tokio_postgres::Client) -> HashMap<String, Vec<u32>> {
    let rows = client
        .query(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
               AND a.application_name LIKE 'sitrep worker %'",
            &[],
        )
        .await
        .unwrap();
    let mut out: HashMap<String, Vec<u32>> = HashMap::new();
    for r in rows {
        let name: String = r.get(0);
        // "sitrep worker <job> pid <pid>"
        let parts: Vec<&str> = name.split(' ').collect();
        if let [_, _, job, "pid", pid] = parts[..] {
            out.entry(job.to_owned()).or_default().push(pid.parse().unwrap());
        }
    }
    out
}

/// The jobs every `sitrep project` competes for.
const JOBS: [&str; 9] = [
    "latest_status",
    "outages",
    "history",
    "history_retention",
    "alert_evaluator",
    "alerts",
    "alert_clock",
    "alert_publisher",
    "alert_webhooks",
];

/// Scenario 1: `kill -9` ingest mid-batch, again and again, while collectors publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_ingest_again_and_again_while_publishing() {
    let _serial = SERIAL.lock().await;
    let shared = shared_services();
    let dir = scratch("kill9");
    let mut rig = Rig::new("kill -9 ingest (8 times)", dir, shared.database_url.expose(), &shared.nats_url, 1).await;
    let js = jetstream::new(bus::connect(&shared.nats_url).await.unwrap());
    rig.spawn("project");
    let ingest = rig.spawn("ingest");
    let n = 6000;
    // Paced so that publishing lasts through all eight kills.
    let publisher = tokio::spawn(publish(
        rig.settings.nats_url.clone(),
        rig.settings.report_subject("derecho"),
        0..n,
        Duration::from_millis(1),
    ));
    let mut mid_batch = 0;
    for k in 0..8 {
        tokio::time::sleep(Duration::from_millis(400 + 150 * k)).await;
        // Messages delivered and not yet acked: the ingest about to die holds them.
        let held = consumer_info(&js, &rig.settings).await.map_or(0, |i| i.num_ack_pending);
        mid_batch += usize::from(held > 0);
        rig.kill9_and_restart(ingest);
    }
    let published = publisher.await.unwrap();
    settle_and_check(&rig, &js, published).await;
    // Deliveries beyond one per message: what the killed processes held came round again.
    let redelivered = consumer_info(&js, &rig.settings)
        .await
        .map_or(0, |i| i.delivered.consumer_sequence.saturating_sub(i.delivered.stream_sequence));
    println!(
        "fault scenario {:<34} kills with messages in hand: {mid_batch} of 8; messages redelivered: {redelivered}",
        rig.tag
    );
    assert!(mid_batch > 0 && redelivered > 0, "no kill caught ingest holding messages, so nothing was tested");
    rig.assert_all_running();
    let dir = rig.finish(&js).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Scenario 2: Postgres restarts during ingest. Ingest and the projections retry with backoff
/// and resume; NATS holds the backlog meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_during_ingest_pauses_it_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let shared = shared_services();
    let dir = scratch("pg");
    let pg = Postgres::start(&dir);
    let mut rig = Rig::new("Postgres restarts (twice)", dir, &pg.url(), &shared.nats_url, 1).await;
    let js = jetstream::new(bus::connect(&shared.nats_url).await.unwrap());
    rig.spawn("project");
    rig.spawn("ingest");
    let n = 4000;
    let publisher = tokio::spawn(publish(
        rig.settings.nats_url.clone(),
        rig.settings.report_subject("derecho"),
        0..n,
        Duration::from_micros(500),
    ));
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let data = pg.data.clone();
        tokio::task::spawn_blocking(move || devservices::stop_postgres_at(&data)).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (data, port) = (pg.data.clone(), pg.port);
        tokio::task::spawn_blocking(move || devservices::start_postgres_at(&data, port)).await.unwrap().unwrap();
    }
    let published = publisher.await.unwrap();
    settle_and_check(&rig, &js, published).await;
    check_alerts_published_once(&rig, &js).await;
    rig.assert_all_running();
    let dir = rig.finish(&js).await;
    drop(pg);
    let _ = std::fs::remove_dir_all(dir);
}

/// Scenario 3: the NATS server restarts during ingest, and again while alert transitions are
/// being published. Every client reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarting_during_ingest_and_alert_publishing_loses_and_repeats_nothing() {
    let _serial = SERIAL.lock().await;
    let shared = shared_services();
    let dir = scratch("nats");
    let mut nats = Nats::standalone(&dir);
    let url = Nats::url(std::slice::from_ref(&nats));
    let mut rig = Rig::new("NATS restarts (twice)", dir, shared.database_url.expose(), &url, 1).await;
    rig.spawn("project");
    rig.spawn("ingest");
    let n = 4000;
    let publisher =
        tokio::spawn(publish(url.clone(), rig.settings.report_subject("derecho"), 0..n, Duration::from_micros(500)));
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        nats.kill("-TERM");
        tokio::time::sleep(Duration::from_secs(2)).await;
        nats.start();
    }
    let published = publisher.await.unwrap();
    let js = jetstream::new(bus::connect(&url).await.unwrap());
    settle_and_check(&rig, &js, published).await;
    check_alerts_published_once(&rig, &js).await;
    rig.assert_all_running();
    let dir = rig.finish(&js).await;
    drop(nats);
    let _ = std::fs::remove_dir_all(dir);
}

/// Scenario 4: a three-node JetStream cluster with both streams at three replicas; the report
/// stream's leader is killed mid-ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_of_a_three_node_cluster_loses_and_repeats_nothing() {
    let _serial = SERIAL.lock().await;
    let shared = shared_services();
    let dir = scratch("cluster");
    let mut nodes = Nats::cluster(&dir);
    let url = Nats::url(&nodes);
    let mut rig = Rig::new("3-node cluster, leader killed", dir, shared.database_url.expose(), &url, 3).await;
    let js = jetstream::new(bus::connect(&url).await.unwrap());
    rig.spawn("project");
    rig.spawn("ingest");
    let n = 4000;
    let publisher =
        tokio::spawn(publish(url.clone(), rig.settings.report_subject("derecho"), 0..n, Duration::from_micros(500)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut stream = js.get_stream(&rig.settings.reports_stream).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3, "the report stream has three replicas");
    let leader = info.cluster.as_ref().and_then(|c| c.leader.clone()).expect("the stream has a leader");
    let node = nodes.iter_mut().find(|n| n.name == leader).expect("the leader is one of ours");
    node.kill("-KILL");
    let published = publisher.await.unwrap();
    settle_and_check(&rig, &js, published).await;
    check_alerts_published_once(&rig, &js).await;
    rig.assert_all_running();
    let dir = rig.finish(&js).await;
    drop(nodes);
    let _ = std::fs::remove_dir_all(dir);
}

/// Scenario 5: two ingest and two project processes at once. Each projection has exactly one
/// worker; killing the process that works hands every job to the other within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_and_two_project_processes_share_the_work_and_hand_over_when_one_dies() {
    let _serial = SERIAL.lock().await;
    let shared = shared_services();
    let dir = scratch("scale");
    let mut rig =
        Rig::new("2 ingest + 2 project, one of each killed", dir, shared.database_url.expose(), &shared.nats_url, 1)
            .await;
    let js = jetstream::new(bus::connect(&shared.nats_url).await.unwrap());
    let first_project = rig.spawn("project");
    let first_ingest = rig.spawn("ingest");
    rig.spawn("ingest");
    let client = rig.client().await;
    // The first project process takes every job; the second, started after, stands by.
    let started = Instant::now();
    while workers(&client).await.len() < JOBS.len() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the first project process took its jobs: {:?}",
            workers(&client).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.spawn("project");
    let n = 6000;
    let publisher = tokio::spawn(publish(
        rig.settings.nats_url.clone(),
        rig.settings.report_subject("derecho"),
        0..n,
        Duration::from_micros(500),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = workers(&client).await;
    let active = rig.procs[first_project].child.id();
    for job in JOBS {
        assert_eq!(before.get(job), Some(&vec![active]), "{job} has exactly one worker, the first process: {before:?}");
    }
    rig.kill9(first_project);
    rig.kill9(first_ingest);
    let killed = Instant::now();
    let after = loop {
        let now = workers(&client).await;
        if JOBS.iter().all(|j| now.get(*j).is_some_and(|p| p.len() == 1 && p[0] != active)) {
            break now;
        }
        assert!(killed.elapsed() < Duration::from_secs(20), "jobs not handed over within 20 s: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let handed_over = killed.elapsed();
    let standby = after[JOBS[0]][0];
    assert!(JOBS.iter().all(|j| after[*j] == vec![standby]), "one process took every job: {after:?}");
    let published = publisher.await.unwrap();
    settle_and_check(&rig, &js, published).await;
    check_alerts_published_once(&rig, &js).await;
    println!("fault scenario {:<34} handover after kill -9: {} ms", rig.tag, handed_over.as_millis());
    let rows: i64 = client.query_one("SELECT count(*) FROM latest_status", &[]).await.unwrap().get(0);
    // node/n7 and node/n17 only ever get invalid messages (every tenth, i % 10 == 7).
    assert_eq!(rows, 18, "one latest-status row per component");
    // The killed ones stay dead; the survivors must still run.
    rig.procs.remove(first_ingest.max(first_project));
    rig.procs.remove(first_ingest.min(first_project));
    rig.assert_all_running();
    let dir = rig.finish(&js).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A webhook receiver on loopback that answers 503 while `failing` is set and 200 otherwise,
/// recording each request's transition (`event_id`) and whether it was taken.
struct Receiver {
    url: String,
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>,
}

impl Receiver {
    async fn start() -> Self {
        use axum::{http::StatusCode, routing::post, Json, Router};
        use std::sync::atomic::Ordering;
        let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let seen: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>> = Default::default();
        let (f, s) = (failing.clone(), seen.clone());
        let app = Router::new().route(
            "/hook",
            post(move |Json(body): Json<serde_json::Value>| async move {
                let taken = !f.load(Ordering::SeqCst);
                s.lock().unwrap().push((body["event_id"].as_str().unwrap_or("?").to_owned(), taken));
                if taken {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, failing, seen }
    }

    fn seen(&self) -> Vec<(String, bool)> {
        self.seen.lock().unwrap().clone()
    }

    /// How many times each transition was taken (answered 200).
    fn taken(&self) -> HashMap<String, usize> {
        let mut taken = HashMap::new();
        for (id, ok) in self.seen() {
            if ok {
                *taken.entry(id).or_insert(0) += 1;
            }
        }
        taken
    }
}

/// Scenario 6: `kill -9` of sitrep after it recorded a notification decision and while it was
/// delivering it (the receiver answered 503 and sitrep was waiting to retry). After a restart the
/// decision is delivered, and taken exactly once; a second kill after delivery sends nothing
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_sitrep_between_a_notification_decision_and_its_delivery_delivers_it_once_after_restart() {
    use std::sync::atomic::Ordering;
    let _serial = SERIAL.lock().await;
    let shared = shared_services();
    let dir = scratch("notify");
    let receiver = Receiver::start().await;
    let mut rig =
        Rig::new("kill -9 between decision and delivery", dir, shared.database_url.expose(), &shared.nats_url, 1).await;
    let rules = format!(
        "{RULES}\n[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\n\
         [[route]]\nname = \"all\"\nreceivers = [\"hook\"]\ngroup_wait = \"0s\"\n",
        receiver.url
    );
    std::fs::write(rig.settings.alerts_file.as_ref().unwrap(), rules).unwrap();
    let js = jetstream::new(bus::connect(&shared.nats_url).await.unwrap());
    rig.spawn("ingest");
    let project = rig.spawn("project");
    let client = rig.client().await;
    let scalar = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    // Three components fail in one batch.
    let nats = bus::connect(&rig.settings.nats_url).await.unwrap();
    let batch = r#"{"system":"derecho","reports":[{"component":"node/a","status":"failed"},
        {"component":"node/b","status":"failed"},{"component":"node/c","status":"failed"}]}"#;
    nats.publish(rig.settings.report_subject("derecho"), batch.into()).await.unwrap();
    nats.flush().await.unwrap();

    // The receiver refuses the first request: sitrep has decided and is waiting to retry.
    let started = Instant::now();
    while receiver.seen().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no delivery attempt within 60 s; logs in {}",
            rig.dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // sitrep records the refused attempt as it ends, then waits a second before retrying: kill
    // it in that wait.
    let refused = Instant::now();
    while scalar("SELECT count(*) FROM notification_attempts").await == 0 {
        assert!(refused.elapsed() < Duration::from_secs(5), "the refused attempt was not recorded within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rig.kill9(project);
    let decided = scalar("SELECT count(*) FROM events WHERE event_type = 'NotificationDecided'").await;
    let delivered_before = scalar("SELECT count(*) FROM alert_deliveries").await;
    let attempts_before = scalar("SELECT count(*) FROM notification_attempts").await;
    assert!(decided >= 1, "the decision was recorded before the kill");
    assert_eq!(delivered_before, 0, "the kill came before the delivery was recorded");
    assert!(attempts_before >= 1, "the refused attempt was recorded as it ended");

    // Restarted, with the receiver answering again: each transition is taken once.
    receiver.failing.store(false, Ordering::SeqCst);
    let project = rig.spawn("project");
    let started = Instant::now();
    while scalar("SELECT count(*) FROM alert_deliveries WHERE delivered").await < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not delivered within 60 s of the restart; logs in {}",
            rig.dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A kill after delivery, and a restart: nothing is sent again.
    rig.kill9(project);
    rig.spawn("project");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let taken = receiver.taken();
    let requests = receiver.seen().len();
    let decided_after = scalar("SELECT count(*) FROM events WHERE event_type = 'NotificationDecided'").await;
    println!(
        "fault scenario {:<34} decisions {decided_after}  requests {requests}  transitions taken {}  taken twice {}",
        rig.tag,
        taken.len(),
        taken.values().filter(|n| **n > 1).count()
    );
    assert_eq!(taken.len(), 3, "each of the three firing transitions was taken: {taken:?}");
    assert!(taken.values().all(|n| *n == 1), "none was taken twice: {taken:?}");
    assert_eq!(decided_after, decided, "the restarts decided nothing again");
    // The two killed project processes stay dead; ingest and the last project must still run.
    rig.procs.remove(2);
    rig.procs.remove(1);
    rig.assert_all_running();
    let dir = rig.finish(&js).await;
    let _ = std::fs::remove_dir_all(dir);
}
