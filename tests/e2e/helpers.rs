//! `spawn_app()` and the waiting and publishing helpers every test uses.

use async_nats::jetstream;
use serde_json::Value;
use sitrep_infra::{db, devservices, Settings};
use sitrep_services::app::{self, Parts, Running};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::OnceCell;

/// How long a test waits for an effect before failing with what it saw last.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The Postgres and NATS URLs every test starts from: the configured ones, or project-local ones
/// started on first use when nothing answers (the same mechanism `sitrep demo` uses).
async fn base_settings() -> &'static Settings {
    static BASE: OnceCell<Settings> = OnceCell::const_new();
    BASE.get_or_init(|| async {
        init_tracing();
        let mut settings = Settings::from_env();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let s = tokio::task::spawn_blocking(move || {
            devservices::ensure(&mut settings, &root).expect("Postgres and NATS for the tests");
            settings
        })
        .await
        .unwrap();
        prune_leftovers(&s).await;
        s
    })
    .await
}

/// Seconds since the epoch: the first part of every test's id, so leftovers can be aged.
fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Drops databases and streams that tests older than an hour left behind (a test that panics
/// never reaches its cleanup).
async fn prune_leftovers(settings: &Settings) {
    sitrep_infra::leftovers::remove(settings, "sitrep_test_", "T").await;
}

fn init_tracing() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            sitrep_infra::telemetry::init(sitrep_infra::settings::LogFormat::Text, "info,sitrep=debug");
        }
    });
}

pub struct TestApp {
    pub settings: Settings,
    pub addr: Option<SocketAddr>,
    pub pool: deadpool_postgres::Pool,
    pub js: jetstream::Context,
    pub http: reqwest::Client,
    pub db_name: String,
    running: Option<Running>,
    ingest: Option<Running>,
}

/// Settings for a fresh, isolated test: its own database, stream, consumer and subjects.
pub async fn isolated_settings() -> (Settings, String) {
    let mut settings = base_settings().await.clone();
    let id = format!("{}_{}", now_secs(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let db_name = format!("sitrep_test_{id}");
    settings.database_url =
        sitrep_infra::settings::Secret::new(db::url_of_database(settings.database_url.expose(), &db_name).unwrap());
    settings.subject_prefix = format!("t{id}");
    settings.reports_stream = format!("T{id}_REPORTS").to_uppercase();
    settings.alerts_stream = format!("T{id}_ALERTS").to_uppercase();
    settings.ingest_consumer = "ingest".into();
    // JetStream reserves a stream's size limit on disk: small ones, as tests run side by side.
    settings.reports_max_mb = 64;
    settings.alerts_max_mb = 64;
    // No self-reports unless a test asks: they would add events to every test's log.
    settings.self_report_seconds = 0;
    // Tests sign in and post from one address many times; tests/e2e/limits.rs sets the limits
    // it checks.
    settings.sign_in_per_minute = 0;
    settings.ingest_per_second = 0;
    // No rules unless a test writes some (never the working directory's alerts.toml).
    settings.alerts_file = Some(write_rules(&id, ""));
    // No public groups and the default SLA policy unless a test writes a status.toml.
    let status = std::env::temp_dir().join(format!("sitrep-test-{id}-status.toml"));
    std::fs::write(&status, "").expect("writing the test's status.toml");
    settings.status_file = Some(status);
    settings.http_addr = "127.0.0.1:0".parse().unwrap();
    (settings, db_name)
}

/// Writes `rules` as a test's alerts.toml and returns its path.
pub fn write_rules(id: &str, rules: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("sitrep-test-{id}-alerts.toml"));
    std::fs::write(&path, rules).expect("writing the test's alerts.toml");
    path
}

/// Like [`spawn_app`], with these alert rules in force.
pub async fn spawn_app_with_rules(rules: &str) -> TestApp {
    let (mut settings, db_name) = isolated_settings().await;
    settings.alerts_file = Some(write_rules(&db_name, rules));
    spawn_with(settings, db_name, true).await
}

/// Like [`spawn_app_with_rules`], but with no projection runner or alerting: the test drives them.
pub async fn spawn_app_with_rules_without_projections(rules: &str) -> TestApp {
    let (mut settings, db_name) = isolated_settings().await;
    settings.alerts_file = Some(write_rules(&db_name, rules));
    spawn_with(settings, db_name, false).await
}

/// Like [`spawn_app`], with `change` made to its settings first.
pub async fn spawn_app_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    let (mut settings, db_name) = isolated_settings().await;
    change(&mut settings);
    spawn_with(settings, db_name, true).await
}

/// Starts web and projections, and ingest separately (so tests can stop and restart it).
pub async fn spawn_app() -> TestApp {
    spawn(true).await
}

/// Like [`spawn_app`], but with no projection runner: the test drives projections itself.
pub async fn spawn_app_without_projections() -> TestApp {
    spawn(false).await
}

async fn spawn(project: bool) -> TestApp {
    let (settings, db_name) = isolated_settings().await;
    spawn_with(settings, db_name, project).await
}

async fn spawn_with(settings: Settings, db_name: String, project: bool) -> TestApp {
    let running =
        app::start(settings.clone(), Parts { ingest: false, project, web: true }).await.expect("start sitrep");
    let ingest =
        app::start(settings.clone(), Parts { ingest: true, project: false, web: false }).await.expect("start ingest");
    let nats = sitrep_infra::bus::connect(&settings.nats_url).await.unwrap();
    TestApp {
        addr: running.http_addr,
        pool: running.pool.clone(),
        js: jetstream::new(nats),
        http: {
            sitrep_services::alerting::install_tls_provider();
            reqwest::Client::new()
        },
        settings,
        db_name,
        running: Some(running),
        ingest: Some(ingest),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr.expect("web is running"))
    }

    /// Publishes a payload on `<prefix>.report.<system>` and waits for JetStream's ack.
    pub async fn publish(&self, system: &str, payload: impl Into<Vec<u8>>) -> u64 {
        self.publish_to(&self.settings.report_subject(system), payload, None).await
    }

    /// Publishes with a `Nats-Msg-Id`.
    pub async fn publish_with_id(&self, system: &str, payload: impl Into<Vec<u8>>, id: &str) -> u64 {
        self.publish_to(&self.settings.report_subject(system), payload, Some(id)).await
    }

    pub async fn publish_to(&self, subject: &str, payload: impl Into<Vec<u8>>, id: Option<&str>) -> u64 {
        let payload: Vec<u8> = payload.into();
        let ack = match id {
            Some(id) => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
                self.js.publish_with_headers(subject.to_owned(), headers, payload.into()).await
            }
            None => self.js.publish(subject.to_owned(), payload.into()).await,
        };
        ack.expect("publish").await.expect("JetStream ack").sequence
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self.http.get(self.url(path)).send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path).await;
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}")))
    }

    /// Adds `name` with `role` and signs in through `/sign-in` as a browser would (its CSRF
    /// cookie, then the form), returning the session to post forms with.
    pub async fn sign_in(&self, name: &str, role: sitrep_infra::auth::Role) -> Browser {
        let password = "a long test password";
        let client = self.pool.get().await.unwrap();
        let user = sitrep_infra::auth::User {
            name: name.into(),
            role,
            password_hash: sitrep_infra::auth::hash_password(password).unwrap(),
        };
        sitrep_infra::auth::put_user(&**client, &user).await.unwrap();
        let resp = self.try_sign_in(name, password).await;
        assert_eq!(resp.status(), 303, "signing in redirects");
        let session = cookie_of(&resp, "sitrep_session").expect("signing in sets the session cookie");
        let csrf: String =
            client.query_one("SELECT csrf FROM sessions WHERE user_name = $1", &[&name]).await.unwrap().get(0);
        Browser { cookie: format!("sitrep_session={session}"), csrf }
    }

    /// Fills in and sends the sign-in form as a browser would; the answer is not followed.
    pub async fn try_sign_in(&self, name: &str, password: &str) -> reqwest::Response {
        let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let page = no_redirects.get(self.url("/sign-in")).send().await.unwrap();
        let csrf = cookie_of(&page, "sitrep_csrf").expect("the sign-in page sets the CSRF cookie");
        no_redirects
            .post(self.url("/sign-in"))
            .header("Origin", self.origin())
            .header("Cookie", format!("sitrep_csrf={csrf}"))
            .form(&[("name", name), ("password", password), ("csrf", &csrf), ("next", "/")])
            .send()
            .await
            .unwrap()
    }

    /// Gets a page as a signed-in browser.
    pub async fn get_as(&self, who: &Browser, path: &str) -> (u16, String) {
        let resp = self.http.get(self.url(path)).header("Cookie", &who.cookie).send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// This dashboard's origin, as a browser sends it with a form.
    pub fn origin(&self) -> String {
        self.url("").trim_end_matches('/').to_owned()
    }

    /// Posts a form as `who` from this dashboard's own page (cookie, origin and token).
    pub async fn post_form(&self, who: &Browser, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf", &who.csrf));
        self.http
            .post(self.url(path))
            .header("Origin", self.origin())
            .header("Cookie", &who.cookie)
            .form(&fields)
            .send()
            .await
            .unwrap()
    }

    /// How many messages the test's report stream holds.
    pub async fn stream_messages(&self) -> u64 {
        let mut stream = self.js.get_stream(&self.settings.reports_stream).await.expect("the report stream");
        stream.info().await.expect("stream info").state.messages
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        let client = self.pool.get().await.unwrap();
        client.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
    }

    /// The ingest consumer's state as JetStream sees it.
    pub async fn consumer_info(&self) -> Result<async_nats::jetstream::consumer::Info, String> {
        let stream = self.js.get_stream(&self.settings.reports_stream).await.map_err(|e| e.to_string())?;
        let mut consumer = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&self.settings.ingest_consumer)
            .await
            .map_err(|e| e.to_string())?;
        consumer.info().await.cloned().map_err(|e| e.to_string())
    }

    /// Stops the projections, alerting and web (sitrep down, except ingest).
    pub async fn stop_main(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// Starts the projections, alerting and web again (on a new port).
    pub async fn start_main(&mut self) {
        assert!(self.running.is_none(), "already running");
        let running = app::start(self.settings.clone(), Parts { ingest: false, project: true, web: true })
            .await
            .expect("start sitrep");
        self.addr = running.http_addr;
        self.running = Some(running);
    }

    /// Stops ingest (as a crash-free shutdown would) and waits for it to finish.
    pub async fn stop_ingest(&mut self) {
        if let Some(ingest) = self.ingest.take() {
            ingest.stop().await;
        }
    }

    pub async fn start_ingest(&mut self) {
        assert!(self.ingest.is_none(), "ingest is already running");
        self.ingest = Some(
            app::start(self.settings.clone(), Parts { ingest: true, project: false, web: false })
                .await
                .expect("start ingest"),
        );
    }

    /// Stops everything and removes the test's stream and database.
    pub async fn cleanup(mut self) {
        self.stop_ingest().await;
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        let _ = self.js.delete_stream(&self.settings.reports_stream).await;
        let _ = self.js.delete_stream(&self.settings.alerts_stream).await;
        if let Some(rules) = &self.settings.alerts_file {
            let _ = std::fs::remove_file(rules);
        }
        self.pool.close();
        let _ = db::drop_database(self.settings.database_url.expose(), &self.db_name).await;
    }
}

/// Drops what [`isolated_settings`] made for a test that started sitrep itself: its database and
/// streams.
pub async fn drop_isolated(settings: &Settings, db_name: &str) {
    db::drop_database(settings.database_url.expose(), db_name).await.unwrap();
    let js = jetstream::new(sitrep_infra::bus::connect(&settings.nats_url).await.unwrap());
    let _ = js.delete_stream(&settings.reports_stream).await;
    let _ = js.delete_stream(&settings.alerts_stream).await;
}

/// Polls `probe` until it returns `Ok`, failing after [`DEADLINE`] with the last thing it saw.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = tokio::time::Instant::now();
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(seen) if start.elapsed() > DEADLINE => panic!("timed out waiting for {what}; last saw: {seen}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until `/api/v1/status` lists `n` components, and returns the response.
pub async fn wait_for_components(app: &TestApp, n: usize) -> Value {
    eventually(&format!("{n} components in /api/v1/status"), || async {
        let (_, body) = app.get_json("/api/v1/status").await;
        let found = body["components"].as_array().map(Vec::len).unwrap_or(0);
        if found == n {
            Ok(body)
        } else {
            Err(format!("{found} components: {body}"))
        }
    })
    .await
}

/// Waits until the event log holds `n` events.
pub async fn wait_for_events(app: &TestApp, n: i64) {
    eventually(&format!("{n} events"), || async {
        let found = app.scalar("SELECT count(*) FROM events").await;
        if found == n {
            Ok(())
        } else {
            Err(format!("{found} events"))
        }
    })
    .await
}

/// Waits until quarantine holds `n` messages, and returns `/api/v1/quarantine`.
pub async fn wait_for_quarantined(app: &TestApp, n: i64) -> Value {
    eventually(&format!("{n} quarantined messages"), || async {
        let (_, q) = app.get_json("/api/v1/quarantine").await;
        if q["total"] == n {
            Ok(q)
        } else {
            Err(q.to_string())
        }
    })
    .await
}

/// Waits until ingest has acked every message in the stream.
pub async fn wait_until_all_acked(app: &TestApp) {
    eventually("every message to be acked", || async {
        let info = app.consumer_info().await?;
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            Ok(())
        } else {
            Err(format!("{info:?}"))
        }
    })
    .await
}

/// The component names in a `/api/v1/status` response, in its order.
pub fn component_names(body: &Value) -> Vec<String> {
    body["components"].as_array().unwrap().iter().map(|c| c["component"].as_str().unwrap().to_owned()).collect()
}

/// A signed-in browser: its session cookie and its forms' token.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

/// The value a response sets for cookie `name`.
pub fn cookie_of(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned()))
}
