//! The real `sitrep` binary stopped with SIGTERM under load loses nothing and stores nothing
//! twice. (This test lives with the binary because only its own package's tests can find it;
//! every other end-to-end test is in `tests/`.)

use async_nats::jetstream;
use sitrep_infra::{db, devservices, Settings};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const REPORTS: usize = 3000;

fn start(settings: &Settings, rules: &std::path::Path, http: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sitrep"))
        .arg("run")
        .env("SITREP_DATABASE_URL", settings.database_url.expose())
        .env("SITREP_NATS_URL", &settings.nats_url)
        .env("SITREP_SUBJECT_PREFIX", &settings.subject_prefix)
        .env("SITREP_REPORTS_STREAM", &settings.reports_stream)
        .env("SITREP_ALERTS_STREAM", &settings.alerts_stream)
        .env("SITREP_HTTP_ADDR", http)
        .env("SITREP_SELF_REPORT_SECONDS", "0")
        .env("SITREP_ALERTS_FILE", rules)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start sitrep")
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.map(|r| r.get(0)).unwrap_or(-1)
}

#[tokio::test]
async fn sigterm_under_load_loses_nothing_and_duplicates_nothing() {
    let mut settings = Settings::from_env();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    devservices::ensure(&mut settings, &root).expect("Postgres and NATS");
    let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let db_name = format!(
        "sitrep_test_{}_{id}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    );
    let base_url = settings.database_url.expose().to_owned();
    settings.database_url = sitrep_infra::settings::Secret::new(db::url_of_database(&base_url, &db_name).unwrap());
    let url = db::parse_url(settings.database_url.expose()).unwrap();
    settings.subject_prefix = format!("tsig{id}");
    settings.reports_stream = format!("TSIG{id}_REPORTS").to_uppercase();
    settings.alerts_stream = format!("TSIG{id}_ALERTS").to_uppercase();
    let rules = std::env::temp_dir().join(format!("sitrep-sigterm-{id}.toml"));
    std::fs::write(&rules, "").unwrap();
    db::migrate(&url).await.unwrap();

    let js = jetstream::new(sitrep_infra::bus::connect(&settings.nats_url).await.unwrap());
    sitrep_infra::bus::ensure_reports_stream(&js, &settings).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let http = format!("127.0.0.1:{port}");
    let mut sitrep = start(&settings, &rules, &http);
    let subject = settings.report_subject("derecho");
    // A dashboard left open on a live page holds a connection; stopping must not wait for it.
    sitrep_services::alerting::install_tls_provider();
    let live = tokio::spawn({
        let url = format!("http://{http}/live?page=home");
        async move {
            for _ in 0..100 {
                if let Ok(mut resp) = reqwest::get(&url).await {
                    while let Ok(Some(_)) = resp.chunk().await {}
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
    });
    let mut stopped = None;
    for i in 0..REPORTS {
        let body =
            format!(r#"{{"system":"derecho","component":"node/n{}","status":"ok","metrics":{{"i":{i}}}}}"#, i % 50);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("r{i}").as_str());
        js.publish_with_headers(subject.clone(), headers, body.into()).await.unwrap().await.unwrap();
        if i == REPORTS / 3 {
            // Stop it mid-stream, the way systemd and Kubernetes do.
            Command::new("kill").args(["-TERM", &sitrep.id().to_string()]).status().unwrap();
            let started = Instant::now();
            let status = loop {
                if let Some(status) = sitrep.try_wait().unwrap() {
                    break status;
                }
                assert!(started.elapsed() < Duration::from_secs(15), "sitrep did not stop within 15 s of SIGTERM");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert!(status.success(), "sitrep exited with {status} after SIGTERM");
            stopped = Some(started.elapsed());
        }
    }
    assert!(live.await.unwrap(), "the live page was served, and its stream ended when sitrep stopped");
    sitrep = start(&settings, &rules, &http);
    let (client, conn) = tokio_postgres::connect(settings.database_url.expose(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let started = Instant::now();
    loop {
        let n = count(&client, "SELECT count(*) FROM events WHERE event_type = 'StatusReported'").await;
        if n >= REPORTS as i64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "only {n} of {REPORTS} reports stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reports = count(&client, "SELECT count(*) FROM events WHERE event_type = 'StatusReported'").await;
    let messages =
        count(&client, "SELECT count(DISTINCT metadata->>'msg_id') FROM events WHERE event_type = 'StatusReported'")
            .await;
    let quarantined = count(&client, "SELECT count(*) FROM quarantine").await;
    let _ = Command::new("kill").args(["-TERM", &sitrep.id().to_string()]).status();
    let _ = sitrep.wait();
    drop(client);

    db::drop_database(&base_url, &db_name).await.unwrap();
    let _ = js.delete_stream(&settings.reports_stream).await;
    let _ = js.delete_stream(&settings.alerts_stream).await;
    let _ = std::fs::remove_file(&rules);

    assert_eq!((reports, messages, quarantined), (REPORTS as i64, REPORTS as i64, 0), "every report once, none lost");
    eprintln!("stopped {} ms after SIGTERM", stopped.unwrap().as_millis());
}
