//! `/healthz`, `/readyz` and `/metrics`.

use crate::helpers::{spawn_app, wait_for_components};

/// Parses OpenMetrics text with the reference parser (prometheus-client for Python, strict about
/// the format) and returns `name value` for every sample.
fn parse_openmetrics(text: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let python = root.join(".sitrep/venv/bin/python");
    assert!(python.exists(), "checking /metrics needs prometheus-client in .sitrep/venv: scripts/test installs it");
    let script = "import sys\n\
                  from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
                  for family in text_string_to_metric_families(sys.stdin.read()):\n\
                  \x20   for s in family.samples:\n\
                  \x20       print(s.name, dict(sorted(s.labels.items())), s.value)\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "/metrics is not valid OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn metrics_parse_as_openmetrics_and_count_ingest_http_and_lag() {
    let app = spawn_app().await;
    app.publish("derecho", br#"{"system":"derecho","component":"login/derecho1","status":"ok"}"#.to_vec()).await;
    wait_for_components(&app, 1).await;
    // Latest status shows the report; history's runner may not have taken its first step (and
    // made its checkpoint) yet.
    crate::helpers::eventually("every read model to have a checkpoint", || async {
        let n =
            app.scalar("SELECT count(*) FROM projection_checkpoints WHERE name IN ('latest_status', 'history')").await;
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} of 2"))
        }
    })
    .await;
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let samples = parse_openmetrics(&text);
    for needle in [
        "sitrep_ingest_messages_total {'outcome': 'stored'}",
        "sitrep_ingest_events_total",
        "sitrep_ingest_latency_seconds_bucket",
        "sitrep_ingest_batch_messages_count",
        "sitrep_http_requests_total {'method': 'GET', 'route': '/api/v1/status', 'status': '200'}",
        "sitrep_http_request_seconds_bucket",
        "sitrep_projection_lag_events {'projection': 'latest_status'}",
        "sitrep_projection_lag_seconds {'projection': 'history'}",
    ] {
        assert!(samples.contains(needle), "no {needle} in\n{samples}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn metrics_with_a_token_set_answer_only_requests_that_bear_it() {
    // As read from a file with its newline: spaces around the setting are ignored.
    let token = sitrep_infra::settings::Secret::new("s3cret-scrape\n");
    let app = crate::helpers::spawn_app_with(|s| s.metrics_token = Some(token)).await;
    let scrape = |auth: Option<&'static str>| {
        let mut req = app.http.get(app.url("/metrics"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        async move {
            let resp = req.send().await.unwrap();
            let challenge = resp.headers().get("WWW-Authenticate").map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), challenge, resp.text().await.unwrap())
        }
    };
    for wrong in [None, Some("Bearer nope"), Some("s3cret-scrape"), Some("Bearer s3cret-scrapeX")] {
        let (status, challenge, body) = scrape(wrong).await;
        assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")), "{wrong:?}: {body}");
        assert!(body.contains("SITREP_METRICS_TOKEN"), "the answer says what is needed: {body}");
    }
    for right in ["Bearer s3cret-scrape", "bearer  s3cret-scrape "] {
        let (status, _, body) = scrape(Some(right)).await;
        assert_eq!(status, 200, "{right:?}");
        assert!(body.contains("sitrep_projection_lag_events"), "{body}");
    }
    assert_eq!(app.get("/healthz").await.0, 200, "probes stay open");
    app.cleanup().await;
}

#[tokio::test]
async fn readyz_answers_once_connected_and_caught_up() {
    use sitrep_projections::{catch_up, AlertEvaluator, Alerts, History, LatestStatus};
    // No runners: this test moves the checkpoints itself.
    let app = crate::helpers::spawn_app_without_projections().await;
    assert_eq!(app.get("/healthz").await, (200, "ok".to_owned()));
    app.publish("derecho", br#"{"system":"derecho","component":"login/derecho1","status":"ok"}"#.to_vec()).await;
    crate::helpers::wait_for_events(&app, 2).await;
    let client = app.pool.get().await.unwrap();
    client.execute("UPDATE events SET recorded_at = now() - interval '1 hour'", &[]).await.unwrap();
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "no read model has a checkpoint yet, so none is behind: {body}");
    catch_up(&app.pool, &LatestStatus).await.unwrap();
    catch_up(&app.pool, &History { default_ttl_seconds: 600 }).await.unwrap();
    catch_up(&app.pool, &Alerts).await.unwrap();
    catch_up(&app.pool, &AlertEvaluator::default()).await.unwrap();
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!((status, &body["ready"]), (200, &serde_json::json!(true)), "{body}");

    client
        .execute("INSERT INTO projection_checkpoints (name, position) VALUES ('alert_webhooks', 0)", &[])
        .await
        .unwrap();
    assert_eq!(app.get_json("/readyz").await.0, 200, "a side effect behind (a dead webhook receiver) does not count");
    client.execute("UPDATE projection_checkpoints SET position = 0 WHERE name = 'history'", &[]).await.unwrap();
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["why"][0].as_str().unwrap().starts_with("history is 2 events"), "{body}");
    app.cleanup().await;
}
