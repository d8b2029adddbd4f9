//! `sitrep replay` and `sitrep verify` against live read models.

use crate::helpers::{eventually, spawn_app, wait_for_components, TestApp};
use sitrep_services::replay::{replay, verify, Which};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub(crate) async fn publish_round(app: &TestApp, round: usize) {
    let statuses = ["ok", "degraded", "failed", "ok"];
    let batch = serde_json::json!({
        "system": "derecho",
        "reports": (0..5).map(|i| serde_json::json!({
            "component": format!("login/derecho{i}"),
            "status": statuses[(round + i) % statuses.len()],
            "metrics": {"users": (round * 7 + i) % 50, "load_1m": round as f64 / 3.0},
        })).collect::<Vec<_>>(),
    });
    app.publish("derecho", batch.to_string().into_bytes()).await;
}

async fn caught_up(app: &TestApp) {
    eventually("the read models to catch up", || async {
        let head = app.scalar("SELECT coalesce(max(position), 0) FROM events").await;
        // A read model whose runner has not made its first step has no checkpoint row yet.
        let behind = 3 - app
            .scalar(&format!(
                "SELECT count(*) FROM projection_checkpoints WHERE name IN ('latest_status', 'history', 'alerts') AND position >= {head}"
            ))
            .await;
        if behind == 0 { Ok(()) } else { Err(format!("{behind} behind {head}")) }
    })
    .await;
}

pub(crate) async fn run_verify(app: &TestApp, which: Which) -> (anyhow::Result<()>, String) {
    let mut out = Vec::new();
    let result = verify(&app.settings, which, &mut out).await;
    (result, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn verify_names_a_difference_made_behind_a_projections_back_and_replay_repairs_it() {
    let app = spawn_app().await;
    for round in 0..6 {
        publish_round(&app, round).await;
    }
    wait_for_components(&app, 5).await;
    caught_up(&app).await;
    let (ok, said) = run_verify(&app, Which::All).await;
    assert!(ok.is_ok(), "{said}");
    assert!(
        said.contains("latest_status: identical")
            && said.contains("history: identical")
            && said.contains("alerts: identical"),
        "{said}"
    );

    // Someone edits the read model behind sitrep's back.
    let client = app.pool.get().await.unwrap();
    client
        .execute("UPDATE latest_status SET message = 'edited by hand' WHERE component = 'login/derecho3'", &[])
        .await
        .unwrap();
    client.execute("DELETE FROM status_segments WHERE component = 'login/derecho1'", &[]).await.unwrap();
    let (failed, said) = run_verify(&app, Which::All).await;
    let e = failed.expect_err("verify fails");
    assert!(format!("{e:#}").contains("latest_status, history differ"), "{e:#}");
    assert!(
        said.contains("latest_status: DIFFERS")
            && said.contains("table latest_status: 1 rows only in the live table, 1 only in the rebuild"),
        "{said}"
    );
    assert!(said.contains("edited by hand"), "the differing row is shown: {said}");
    assert!(said.contains("table status_segments: 0 rows only in the live table"), "{said}");

    let indexes_before = public_indexes(&app).await;
    assert!(indexes_before.iter().any(|i| i.starts_with("metric_rollups_retention ")), "{indexes_before:#?}");
    let mut out = Vec::new();
    replay(&app.settings, Which::All, &mut out).await.unwrap();
    let said = String::from_utf8(out).unwrap();
    assert!(said.contains("latest_status: rebuilt from") && said.contains("swapped in at position"), "{said}");
    let (ok, said) = run_verify(&app, Which::All).await;
    assert!(ok.is_ok(), "after replay: {said}");
    // Every index is back, under the migrations' names: those a rebuild builds at the end (history's
    // deferred ones) and those it keeps up to date all along.
    assert_eq!(public_indexes(&app).await, indexes_before, "the swapped-in tables have the migrations' indexes");
    assert_eq!(app.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'sitrep_shadow' AND tablename <> 'projection_checkpoints'").await, 0);
    let (_, body) = app.get_json("/api/v1/status/derecho").await;
    assert!(!body.to_string().contains("edited by hand"));

    // A second replay straight after rebuilds from the whole log again, not from where the
    // first one left off.
    let events = app.scalar("SELECT count(*) FROM events").await;
    let mut out = Vec::new();
    replay(&app.settings, Which::History, &mut out).await.unwrap();
    let said = String::from_utf8(out).unwrap();
    let built: i64 = said
        .strip_prefix("history: rebuilt from ")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("a line saying how many events: {said}"));
    assert!(built >= events, "rebuilt from {built} events, but the log holds {events}: {said}");
    assert_eq!(public_indexes(&app).await, indexes_before);
    assert!(run_verify(&app, Which::History).await.0.is_ok());
    app.cleanup().await;
}

/// Every index of the public schema, as "name definition", sorted.
async fn public_indexes(app: &TestApp) -> Vec<String> {
    let client = app.pool.get().await.unwrap();
    let rows = client
        .query("SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1", &[])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn replay_while_reports_keep_arriving_fails_no_page_and_equals_a_rebuild() {
    let app = Arc::new(spawn_app().await);
    publish_round(&app, 0).await;
    wait_for_components(&app, 5).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (requests, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    let publisher = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            let mut round = 1;
            while !stop.load(Ordering::Relaxed) {
                publish_round(&app, round).await;
                round += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    let reader = {
        let (app, stop, requests, failures) = (app.clone(), stop.clone(), requests.clone(), failures.clone());
        tokio::spawn(async move {
            let paths =
                ["/", "/systems/derecho", "/api/v1/status", "/systems/derecho/components/login/derecho1", "/alerts"];
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for path in paths {
                    let (status, body) = app.get(path).await;
                    requests.fetch_add(1, Ordering::Relaxed);
                    if status != 200 {
                        failures.fetch_add(1, Ordering::Relaxed);
                        seen.push(format!("{path}: {status} {}", &body[..body.len().min(200)]));
                    }
                }
            }
            seen
        })
    };
    let mut out = Vec::new();
    replay(&app.settings, Which::All, &mut out).await.unwrap();
    replay(&app.settings, Which::All, &mut out).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    let seen = reader.await.unwrap();
    assert_eq!(failures.load(Ordering::Relaxed), 0, "{seen:?}");
    assert!(requests.load(Ordering::Relaxed) >= 10, "pages were requested throughout");

    caught_up(&app).await;
    let (ok, said) = run_verify(&app, Which::All).await;
    assert!(ok.is_ok(), "the swapped-in read models equal a rebuild from scratch: {said}");
    Arc::try_unwrap(app).ok().expect("the tasks are done").cleanup().await;
}
