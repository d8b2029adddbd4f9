//! Passwords and keys never reach the logs: the real `sitrep run`, logging at debug level (as an
//! operator chasing a problem would set it), goes through sign-ins (right and wrong password),
//! HTTP ingest (a valid and an unknown key), signed-in pages and a database URL with a password;
//! none of those secrets appears in what it logged.

use sitrep_infra::auth::{self, Role, User};
use sitrep_infra::settings::Secret;
use sitrep_infra::{db, devservices, Settings};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn passwords_keys_and_session_tokens_are_never_logged_even_at_debug_level() {
    let mut settings = Settings::from_env();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    devservices::ensure(&mut settings, &root).expect("Postgres and NATS");
    let id = format!(
        "{}_{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let db_name = format!("sitrep_test_{id}");
    let base_url = settings.database_url.expose().to_owned();
    // The configured URL's password if it has one; else a made-up one, which Postgres's trust
    // authentication of local connections accepts. Either way it must never be logged.
    let mut url = db::parse_url(&db::url_of_database(&base_url, &db_name).unwrap()).unwrap();
    let db_password = match url.get_password() {
        Some(p) => String::from_utf8_lossy(p).into_owned(),
        None => format!("db-pw-{}", uuid::Uuid::new_v4().simple()),
    };
    url.password(db_password.as_bytes());
    let with_password = format!(
        "postgres://{}:{db_password}@{}:{}/{db_name}",
        url.get_user().unwrap_or("postgres"),
        match url.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        },
        url.get_ports().first().copied().unwrap_or(5432)
    );
    settings.database_url = Secret::new(with_password.clone());
    db::migrate(&url).await.unwrap();

    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let unknown_key = format!("sitrep_{}", uuid::Uuid::new_v4().simple());
    let client = db::connect(&url).await.unwrap();
    auth::put_user(
        &client,
        &User { name: "ops".into(), role: Role::Operator, password_hash: auth::hash_password(&password).unwrap() },
    )
    .await
    .unwrap();
    let key = auth::create_key(&client, "collector", &["derecho".to_owned()]).await.unwrap();

    let log_path = std::env::temp_dir().join(format!("sitrep-secrets-{id}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let http =
        format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let mut sitrep = Killed(
        Command::new(env!("CARGO_BIN_EXE_sitrep"))
            .arg("run")
            .env("SITREP_DATABASE_URL", &with_password)
            .env("SITREP_NATS_URL", &settings.nats_url)
            .env("SITREP_SUBJECT_PREFIX", format!("t{id}"))
            .env("SITREP_REPORTS_STREAM", format!("T{id}_REPORTS").to_uppercase())
            .env("SITREP_ALERTS_STREAM", format!("T{id}_ALERTS").to_uppercase())
            .env("SITREP_HTTP_ADDR", &http)
            .env("SITREP_SELF_REPORT_SECONDS", "0")
            .env("SITREP_ALERTS_FILE", root.join("alerts.toml"))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    sitrep_services::alerting::install_tls_provider();
    let web = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let base = format!("http://{http}");
    let started = Instant::now();
    while !web.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "sitrep did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sign_in = |pw: String| {
        let (web, base) = (web.clone(), base.clone());
        async move {
            let page = web.get(format!("{base}/sign-in")).send().await.unwrap();
            let csrf = cookie(&page, "sitrep_csrf").expect("the sign-in page sets the CSRF cookie");
            web.post(format!("{base}/sign-in"))
                .header("Origin", &base)
                .header("Cookie", format!("sitrep_csrf={csrf}"))
                .form(&[("name", "ops"), ("password", pw.as_str()), ("csrf", &csrf), ("next", "/")])
                .send()
                .await
                .unwrap()
        }
    };
    assert_ne!(sign_in(wrong.clone()).await.status(), 303, "a wrong password does not sign in");
    let signed_in = sign_in(password.clone()).await;
    assert_eq!(signed_in.status(), 303, "the right password signs in");
    let session = cookie(&signed_in, "sitrep_session").expect("a session cookie");
    for path in ["/", "/alerts", "/ops", "/outages"] {
        let resp = web.get(format!("{base}{path}")).header("Cookie", format!("sitrep_session={session}")).send().await;
        assert_eq!(resp.unwrap().status(), 200, "{path} as the signed-in operator");
    }
    let report = r#"{"system":"derecho","component":"node/n1","status":"ok"}"#;
    for (k, want) in [(&key, 202), (&unknown_key, 401)] {
        let resp = web
            .post(format!("{base}/api/v1/reports"))
            .bearer_auth(k)
            .header("content-type", "application/json")
            .body(report)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "POST /api/v1/reports");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = Command::new("kill").args(["-TERM", &sitrep.0.id().to_string()]).status();
    let _ = sitrep.0.wait();
    let logged = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    drop(client);
    db::drop_database(&base_url, &db_name).await.unwrap();
    if let Ok(nats) = sitrep_infra::bus::connect(&settings.nats_url).await {
        let js = async_nats::jetstream::new(nats);
        let _ = js.delete_stream(format!("T{id}_REPORTS").to_uppercase()).await;
        let _ = js.delete_stream(format!("T{id}_ALERTS").to_uppercase()).await;
    }

    // The log is real and detailed: it saw the requests and the database work.
    assert!(logged.lines().count() > 50, "sitrep logged at debug level:\n{logged}");
    assert!(logged.contains("DEBUG"), "debug lines were logged");
    for (what, secret) in [
        ("the password", password.as_str()),
        ("a wrong password", wrong.as_str()),
        ("the API key", key.as_str()),
        ("an unknown API key", unknown_key.as_str()),
        ("the database password", db_password.as_str()),
        ("the session token", session.as_str()),
    ] {
        let line = logged.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "{what} was logged: {}", line.unwrap_or_default());
    }
}

/// The child process, killed if the test fails before stopping it.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}="))?.split(';').next().map(str::to_owned))
}
