//! The ready-made collectors end to end: fake site commands on `PATH` print recorded outputs
//! (collect/tests/fixtures/hpc/), `sitrep collect <source> --once` runs against the real NATS,
//! and the reports appear in `/api/v1/status` with the figures the outputs say. Then every way a
//! command can fail: each is published as `unknown` with a message, and nothing panics.

use crate::helpers::{eventually, spawn_app, TestApp};
use clap::Parser;
use serde_json::Value;
use sitrep_services::cli::{Cli, Command};
use sitrep_services::collect::{self, Plan};
use std::ffi::OsString;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

fn fixture(name: &str) -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let path = root.join("collect/tests/fixtures/hpc").join(name);
    assert!(path.exists(), "no fixture {}", path.display());
    path
}

/// A folder of fake site commands, searched before the system's own folders.
struct FakeSite {
    dir: PathBuf,
}

impl FakeSite {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("sitrep-site-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    /// A command whose body is a `sh` script (it gets the arguments as `$*`).
    fn command(&self, name: &str, body: &str) -> &Self {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    fn path(&self) -> OsString {
        OsString::from(format!("{}:/usr/bin:/bin", self.dir.display()))
    }
}

impl Drop for FakeSite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `sitrep collect <args> --once` against the test's NATS, with the site's commands first on
/// PATH: what it printed, or its error.
async fn collect_once(app: &TestApp, site: &FakeSite, args: &[&str]) -> Result<String, String> {
    let argv = ["sitrep", "collect"].iter().chain(args).chain(&["--once"]).copied();
    let Command::Collect(source) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
    let mut plan = Plan::from_args(&source).unwrap();
    plan.path = Some(site.path());
    let mut out = Vec::new();
    collect::run_plan(&plan, &app.settings, CancellationToken::new(), &mut out)
        .await
        .map(|_| String::from_utf8(out).unwrap())
        .map_err(|e| format!("{e:#}"))
}

/// Waits until `system` has `n` components and returns them by name.
async fn components(app: &TestApp, system: &str, n: usize) -> std::collections::BTreeMap<String, Value> {
    eventually(&format!("{n} components of {system}"), || async {
        let (_, body) = app.get_json(&format!("/api/v1/status/{system}")).await;
        let list = body["components"].as_array().cloned().unwrap_or_default();
        if list.len() == n {
            Ok(list.into_iter().map(|c| (c["component"].as_str().unwrap().to_owned(), c)).collect())
        } else {
            Err(format!("{} components: {body}", list.len()))
        }
    })
    .await
}

fn metrics(c: &Value, names: &[&str]) -> Vec<f64> {
    names.iter().map(|n| c["metrics"][n].as_f64().unwrap_or_else(|| panic!("no metric {n} in {c}"))).collect()
}

fn cat(file: &str) -> String {
    format!("exec /bin/cat '{}'", fixture(file).display())
}

#[tokio::test]
async fn pbs_publishes_queues_node_groups_and_the_server_from_the_recorded_outputs() {
    let app = spawn_app().await;
    let site = FakeSite::new();
    site.command("pbsnodes", &cat("pbs-pbsnodes-a-json-alcf-polaris-2022.1.1-excerpt.json")).command(
        "qstat",
        &format!(
            "case \"$*\" in *-Q*) {} ;; *-B*) {} ;; *) exit 2 ;; esac",
            cat("pbs-qstat-Q-f-json-alcf-aurora-2022.1.7.json"),
            cat("pbs-qstat-B-f-json-alcf-aurora-2022.1.7.json")
        ),
    );

    let said = collect_once(&app, &site, &["pbs", "--system", "aurora"]).await.unwrap();

    // 34 queues, one node group, the server and the collector itself.
    assert_eq!(said, "published 37 reports for aurora (pbs)\n");
    let c = components(&app, "aurora", 37).await;
    let q = ["running_jobs", "queued_jobs", "held_jobs", "waiting_jobs", "total_jobs"];
    assert_eq!(metrics(&c["queue/tiny"], &q), [42.0, 16.0, 18.0, 0.0, 79.0]);
    assert_eq!(c["queue/prod"]["labels"]["queue_type"], "Route");
    assert_eq!(c["queue/lustre_scaling"]["status"], "stopped");
    let n = ["nodes_total", "nodes_free", "nodes_busy", "nodes_down", "cpus_total", "gpus_total"];
    assert_eq!(metrics(&c["nodes/gpu"], &n), [3.0, 1.0, 1.0, 1.0, 192.0, 12.0]);
    assert_eq!(c["nodes/gpu"]["status"], "degraded");
    assert_eq!(c["server"]["status"], "ok");
    assert_eq!(metrics(&c["server"], &["total_jobs"]), [11247.0]);
    assert_eq!(c["collector/pbs"]["status"], "ok");
    assert_eq!(c["queue/tiny"]["ttl_seconds"], 180);
    app.cleanup().await;
}

#[tokio::test]
async fn slurm_publishes_partitions_from_json_and_falls_back_to_text_without_the_json_plugin() {
    let app = spawn_app().await;
    let site = FakeSite::new();
    site.command(
        "scontrol",
        &format!(
            "case \"$*\" in *nodes*) {} ;; *partitions*) {} ;; esac",
            cat("slurmrestd-nodes-v0.0.44-slurmweb-25.11.0.json"),
            cat("slurmrestd-partitions-v0.0.44-slurmweb-25.11.0.json")
        ),
    )
    .command("squeue", &cat("slurmrestd-jobs-v0.0.44-slurmweb-25.11.0-truncated.json"));

    collect_once(&app, &site, &["slurm", "--system", "v44"]).await.unwrap();

    let c = components(&app, "v44", 3).await;
    let m = [
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
    assert_eq!(
        metrics(&c["partition/normal"], &m),
        [4.0, 0.0, 1.0, 1.0, 1.0, 1.0, 256.0, 110.0, 0.0, 0.0, 43.0, 1.0, 1.0]
    );
    assert_eq!(c["partition/normal"]["status"], "degraded");
    assert_eq!(metrics(&c["partition/gpu"], &m[..10]), [4.0, 4.0, 0.0, 0.0, 0.0, 0.0, 128.0, 0.0, 16.0, 0.0]);
    assert_eq!(c["partition/gpu"]["status"], "ok");

    // A Slurm built without the JSON serializer: sinfo and squeue text instead.
    let plain = FakeSite::new();
    let error = cat("slurm-squeue-json-ERROR-no-serializer-rohanboard.txt");
    plain
        .command("scontrol", &format!("{error} >&2; exit 1"))
        .command(
            "squeue",
            &format!("case \"$*\" in *--json*) {error} ;; *) printf 'batch|RUNNING\\nbatch|PENDING\\nbatch,debug|PENDING\\n' ;; esac"),
        )
        .command(
            "sinfo",
            "printf 'n1|batch*|up|allocated|64/0/0/64|gpu:a100:4|gpu:a100:4(IDX:0-3)\\n\
             n2|batch*|up|idle|0/64/0/64|gpu:a100:4|gpu:a100:0\\n\
             n2|debug|up|idle|0/64/0/64|gpu:a100:4|gpu:a100:0\\n'",
        );
    collect_once(&app, &plain, &["slurm", "--system", "plain"]).await.unwrap();
    let c = components(&app, "plain", 3).await;
    assert_eq!(
        metrics(&c["partition/batch"], &m),
        [2.0, 1.0, 1.0, 0.0, 0.0, 0.0, 128.0, 64.0, 8.0, 4.0, 50.0, 1.0, 2.0]
    );
    assert_eq!(metrics(&c["partition/debug"], &["nodes_total", "pending_jobs"]), [1.0, 1.0]);
    app.cleanup().await;
}

#[tokio::test]
async fn fs_publishes_df_lustre_and_gpfs_mounts_with_their_figures() {
    let app = spawn_app().await;
    let site = FakeSite::new();
    site.command(
        "df",
        "case \"$*\" in *-i*) printf 'Filesystem Inodes IUsed IFree IUse%% Mounted on\\nhome 1000 950 50 95%% /home\\n' ;; \
         *) printf 'Filesystem 1024-blocks Used Available Capacity Mounted on\\nhome 1000 500 500 50%% /home\\n' ;; esac",
    )
    .command(
        "lfs",
        &format!(
            "case \"$*\" in *-i*) {} ;; *) {} ;; esac",
            cat("fs-lustre-lfs-df-i-abci-groups-excerpt.txt"),
            cat("fs-lustre-lfs-df-ddn-exascaler-cloud.txt")
        ),
    )
    .command("mmdf", &cat("fs-gpfs-mmdf-Y-treydock-gpfs_exporter.txt"));

    collect_once(
        &app,
        &site,
        &[
            "fs",
            "--system",
            "storage",
            "--mount",
            "home=/home",
            "--mount",
            "exacloud=/mnt/exacloud:lustre",
            "--mount",
            "project=/fs/project:gpfs:project",
        ],
    )
    .await
    .unwrap();

    let c = components(&app, "storage", 4).await;
    let m = ["size_bytes", "used_bytes", "avail_bytes", "used_pct", "inodes_used_pct"];
    // Inodes at 95 % fail the home filesystem, though its space is half free.
    assert_eq!(metrics(&c["fs/home"], &m), [1024000.0, 512000.0, 512000.0, 50.0, 95.0]);
    assert_eq!(c["fs/home"]["status"], "failed");
    assert_eq!(
        metrics(&c["fs/exacloud"], &m),
        [12706795008.0 * 1024.0, 30348.0 * 1024.0, 12577522452.0 * 1024.0, 1.0, 35.0]
    );
    assert_eq!(c["fs/exacloud"]["labels"]["fullest_ost"], "OST0000");
    assert_eq!(metrics(&c["fs/project"], &["used_pct", "inodes_used_pct"]), [86.0, 32.3]);
    app.cleanup().await;
}

#[tokio::test]
async fn login_publishes_each_host_with_its_connect_time_or_why_it_failed() {
    let app = spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n").await;
        }
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    let up = format!("login1=127.0.0.1:{port}");
    let down = format!("login2=127.0.0.1:{closed}");
    collect_once(&app, &FakeSite::new(), &["login", "--system", "derecho", "--host", &up, "--host", &down])
        .await
        .unwrap();

    let c = components(&app, "derecho", 3).await;
    assert_eq!(c["login/login1"]["status"], "ok");
    assert!(c["login/login1"]["metrics"]["connect_ms"].as_f64().is_some());
    assert!(c["login/login1"]["message"].as_str().unwrap().ends_with("SSH-2.0-OpenSSH_9.2p1"));
    assert_eq!(c["login/login2"]["status"], "failed");
    assert!(c["login/login2"]["message"].as_str().unwrap().contains("cannot connect"), "{}", c["login/login2"]);
    app.cleanup().await;
}

#[tokio::test]
async fn jupyterhub_publishes_the_hub_read_page_by_page_from_its_api() {
    use axum::extract::Query;
    use axum::http::HeaderMap;
    let app = spawn_app().await;
    let hub = axum::Router::new().route(
        "/hub/api/users",
        axum::routing::get(|headers: HeaderMap, Query(q): Query<std::collections::HashMap<String, u64>>| async move {
            if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("token secret") {
                return (axum::http::StatusCode::FORBIDDEN, "{}".to_owned());
            }
            let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
            let offset = q.get("offset").copied().unwrap_or(0);
            let user = |name: &str, ready: bool, pending: Option<&str>| {
                serde_json::json!({"name": name, "last_activity": now,
                    "servers": {"": {"ready": ready, "pending": pending}}})
            };
            let body = if offset == 0 {
                serde_json::json!({"items": [user("a", true, None), user("b", false, Some("spawn"))],
                    "_pagination": {"offset": 0, "limit": 2, "total": 3, "next": {"offset": 2, "limit": 2}}})
            } else {
                serde_json::json!({"items": [user("c", true, None)],
                    "_pagination": {"offset": 2, "limit": 2, "total": 3, "next": null}})
            };
            (axum::http::StatusCode::OK, body.to_string())
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hub).await });

    collect_once(&app, &FakeSite::new(), &["jupyterhub", "--system", "jh", "--url", &url, "--token", "secret"])
        .await
        .unwrap();
    let c = components(&app, "jh", 2).await;
    assert_eq!(
        metrics(&c["hub/main"], &["active_users", "running_servers", "pending_spawns", "users_total"]),
        [3.0, 2.0, 1.0, 3.0]
    );

    // A refused token: the hub is unknown, and as nothing was read the run fails (cron mails).
    let e = collect_once(&app, &FakeSite::new(), &["jupyterhub", "--system", "jh2", "--url", &url, "--token", "wrong"])
        .await
        .unwrap_err();
    assert!(e.contains("nothing could be read"), "{e}");
    let c = components(&app, "jh2", 2).await;
    assert_eq!(c["hub/main"]["status"], "unknown");
    assert!(c["hub/main"]["message"].as_str().unwrap().contains("refused the token"));
    // No hub at all: failed.
    collect_once(
        &app,
        &FakeSite::new(),
        &["jupyterhub", "--system", "jh3", "--url", "http://127.0.0.1:9", "--token", "x"],
    )
    .await
    .unwrap();
    assert_eq!(components(&app, "jh3", 2).await["hub/main"]["status"], "failed");
    app.cleanup().await;
}

#[tokio::test]
async fn every_way_a_command_can_fail_is_published_as_unknown_with_a_message() {
    let app = spawn_app().await;
    let queues = cat("pbs-qstat-Q-f-json-alcf-polaris-2022.1.1-excerpt.json");
    let half = {
        let text = std::fs::read_to_string(fixture("pbs-qstat-B-f-json-alcf-aurora-2022.1.7.json")).unwrap();
        text[..text.len() / 2].to_owned()
    };
    let truncated = std::env::temp_dir().join(format!("sitrep-truncated-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&truncated, half).unwrap();
    // (system, the qstat -B body, what collector/pbs and server say)
    let cases = [
        ("missing", None, "`qstat -B -f -F json` was not found on PATH"),
        ("exits", Some("echo 'qstat: cannot connect to server pbs01 (errno=15010)' >&2; exit 1".to_owned()), "exited with status 1: qstat: cannot connect to server pbs01 (errno=15010)"),
        ("hangs", Some("exec sleep 30".to_owned()), "did not finish within 1s"),
        ("truncated", Some(format!("exec /bin/cat '{}'", truncated.display())), "printed invalid JSON: EOF while parsing"),
        (
            "unquoted",
            Some("printf '{\\n \"Server\":{\\n  \"pbs01\":{\\n   \"server_state\":Active,\\n   \"total_jobs\":3\\n  }\\n }\\n}\\n'".to_owned()),
            "printed invalid JSON: expected value at line 4",
        ),
        ("noserializer", Some(cat("slurm-squeue-json-ERROR-no-serializer-rohanboard.txt")), "printed no JSON: \"squeue: error: load_plugins"),
    ];
    for (system, server, expected) in cases {
        let site = FakeSite::new();
        site.command("pbsnodes", "exit 0");
        match &server {
            Some(body) => site.command("qstat", &format!("case \"$*\" in *-Q*) {queues} ;; *) {body} ;; esac")),
            None => site.command("qstat-Q-only", "exit 0"),
        };
        if server.is_none() {
            // qstat itself is missing: pbsnodes prints nothing either.
            std::fs::remove_file(site.dir.join("pbsnodes")).unwrap();
        }
        let result = collect_once(&app, &site, &["pbs", "--system", system, "--timeout", "1s"]).await;

        let n = if server.is_none() { 2 } else { 6 };
        let c = components(&app, system, n).await;
        let me = &c["collector/pbs"];
        assert_eq!(me["status"], "unknown", "{system}: {me}");
        assert!(me["message"].as_str().unwrap().contains(expected), "{system}: {me}");
        assert_eq!(c["server"]["status"], "unknown", "{system}");
        assert!(c["server"]["message"].as_str().unwrap().contains(expected), "{system}: {}", c["server"]);
        // Only the run that read nothing at all fails (so cron mails); the others read the queues.
        assert_eq!(result.is_err(), server.is_none(), "{system}: {result:?}");
    }
    let _ = std::fs::remove_file(truncated);
    app.cleanup().await;
}

#[tokio::test]
async fn a_failing_inode_command_keeps_the_space_figures_and_names_itself() {
    let app = spawn_app().await;
    let site = FakeSite::new();
    site.command(
        "df",
        "case \"$*\" in *-i*) echo 'df: -i is not supported here' >&2; exit 1 ;; \
         *) printf 'Filesystem 1024-blocks Used Available Capacity Mounted on\\nscratch 1000 930 70 93%% /scratch\\n' ;; esac",
    );
    let said = collect_once(&app, &site, &["fs", "--system", "inodes", "--mount", "scratch=/scratch"]).await.unwrap();
    assert!(said.contains("1 problem(s): `df -P -i /scratch` exited with status 1"), "{said}");
    let c = components(&app, "inodes", 2).await;
    let fs = &c["fs/scratch"];
    assert_eq!(fs["status"], "degraded", "{fs}");
    assert_eq!(metrics(fs, &["used_pct", "size_bytes"]), [93.0, 1024000.0]);
    assert!(fs["metrics"].get("inodes_used_pct").is_none());
    assert!(
        fs["message"].as_str().unwrap().contains("inodes unknown: `df -P -i /scratch` exited with status 1"),
        "{fs}"
    );
    assert_eq!(c["collector/fs"]["status"], "unknown");
    app.cleanup().await;
}
