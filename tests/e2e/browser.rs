//! Every page rendered in headless Chromium, as an operator's browser would, with a screenshot
//! kept in `target/screenshots/` to look at.

use crate::helpers::{spawn_app, wait_for_components, wait_for_quarantined, TestApp};
use sitrep_services::simulate::{self, SimulateArgs};
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio_util::sync::CancellationToken;

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("Chromium is needed for the browser tests: the README's test command installs it (apt-get install chromium)")
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium on `url`: returns the DOM it built and writes a screenshot.
fn render(url: &str, png: &Path, width: u32, height: u32) -> String {
    let profile = tempdir();
    let common = |cmd: &mut Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"));
    };
    let mut shot = Command::new(chromium());
    common(&mut shot);
    let out = shot.arg(format!("--screenshot={}", png.display())).arg(url).output().expect("run chromium");
    assert!(png.exists(), "no screenshot of {url}: {}", String::from_utf8_lossy(&out.stderr));
    let mut dom = Command::new(chromium());
    common(&mut dom);
    let out = dom.arg("--dump-dom").arg(url).output().expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A headless Chromium driven through chromedriver's WebDriver API (plain HTTP and JSON), for
/// tests that must keep a page open and watch it change.
struct Driver {
    process: std::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    profile: PathBuf,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver is needed for live-page tests: the README's test command installs chromium-driver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        crate::helpers::eventually("chromedriver to start", || async {
            http.get(format!("{base}/status")).send().await.map(|_| ()).map_err(|e| e.to_string())
        })
        .await;
        let profile = tempdir();
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": chromium(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", profile.display()), "--window-size=1400,1000"]
        }}}});
        let created: serde_json::Value =
            http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session =
            created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_owned();
        Driver { process, base, session, http, profile }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: serde_json::Value) -> serde_json::Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let resp = self.http.request(method, url).json(&body).send().await.unwrap();
        let value: serde_json::Value = resp.json().await.unwrap();
        value["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", serde_json::json!({"url": url})).await;
    }

    /// Runs `script` in the page and returns what it returns.
    async fn run(&self, script: &str) -> serde_json::Value {
        self.call(reqwest::Method::POST, "/execute/sync", serde_json::json!({"script": script, "args": []})).await
    }

    async fn stop(mut self) {
        let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send().await;
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sitrep-chromium-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn with_simulated_centre() -> TestApp {
    with_simulated_centre_and_rules("").await
}

async fn with_simulated_centre_and_rules(rules: &str) -> TestApp {
    let app = if rules.is_empty() { spawn_app().await } else { crate::helpers::spawn_app_with_rules(rules).await };
    let nats = sitrep_infra::bus::connect(&app.settings.nats_url).await.unwrap();
    let args = SimulateArgs { rate: 10_000.0, rounds: 1, seed: Some(3), churn: Some(0.3), ..SimulateArgs::default() };
    let published = simulate::run(nats, &app.settings, &args, CancellationToken::new()).await.unwrap();
    wait_for_components(&app, published as usize).await;
    // Collector text that must be shown as text, and a message for quarantine.
    let hostile = r#"{"system":"derecho","component":"svc/x","status":"degraded","message":"<script>alert(1)</script> {{x}}","labels":{"kind":"<b>odd</b>"}}"#;
    app.publish("derecho", hostile.as_bytes().to_vec()).await;
    app.publish("derecho", br#"{"system":"derecho","component":"x","status":"<script>alert(2)</script>"}"#.to_vec())
        .await;
    wait_for_components(&app, published as usize + 1).await;
    wait_for_quarantined(&app, 1).await;
    app
}

#[tokio::test]
async fn every_page_renders_in_headless_chromium_with_a_screenshot() {
    let app = with_simulated_centre().await;
    let pages: &[(&str, &str, &[&str])] = &[
        ("home", "/", &["derecho", "casper", "jupyterhub", "platform", "components"]),
        (
            "system-derecho",
            "/systems/derecho",
            &[
                "login/derecho1",
                "nodes/cpu",
                "fs/glade",
                "queue/main",
                "Last report",
                "&lt;script&gt;alert(1)",
                "{{x}}",
            ],
        ),
        ("system-casper", "/systems/casper", &["nodes/gpu-a100", "queue/htc"]),
        ("quarantine", "/quarantine", &["Quarantine", "is not a status"]),
        ("not-found", "/systems/nowhere", &["No reports yet from nowhere", "docs/collectors.md"]),
    ];
    for (name, path, needles) in pages {
        let dom = shoot(&app, name, path, 1000, needles).await;
        assert!(!dom.contains("<script>alert"), "{path}: collector text must be escaped");
        assert!(!dom.contains("<b>odd</b>"), "{path}: labels must be escaped");
    }
    app.cleanup().await;
}

/// Rules that fire at once on the simulator's troubles, with a dependency and a route.
const BROWSER_RULES: &str = r#"
[[rule]]
name = "failed"
kind = "status"
status = ["failed"]
severity = "critical"
[[rule]]
name = "filesystem-full"
match = "*:fs/*"
kind = "threshold"
metric = "used_pct"
above = 1
clear = 0.5
[[rule]]
name = "silent"
kind = "stale"
[[dependency]]
match = "derecho:nodes/*"
parent = "derecho:fs/glade"
[[route]]
name = "nowhere"
url = "http://127.0.0.1:9/hook"
severity = ["info"]
"#;

#[tokio::test]
async fn alert_pages_render_in_headless_chromium_with_a_screenshot() {
    let app = with_simulated_centre_and_rules(BROWSER_RULES).await;
    let id = crate::helpers::eventually("filesystem alerts", || async {
        let (_, body) = app.get_json("/api/v1/alerts?state=open").await;
        let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
        match alerts.iter().find(|a| a["rule"] == "filesystem-full" && a["component"] == "fs/glade") {
            Some(a) => Ok(a["id"].as_str().unwrap().to_owned()),
            None => Err(body.to_string()),
        }
    })
    .await;
    // An outage and a reservation, as operators' tools would declare them, for the banner and lists.
    let outage = app.settings.subject(sitrep_domain::wire::MessageKind::Outage, "derecho");
    let declare = serde_json::json!({"system": "derecho", "action": "declare", "id": "glade-1", "severity": "major",
        "title": "Glade is unavailable", "components": ["fs/glade"]});
    app.publish_to(&outage, declare.to_string(), None).await;
    let update =
        serde_json::json!({"system": "derecho", "action": "update", "id": "glade-1", "message": "Vendor on site"});
    app.publish_to(&outage, update.to_string(), None).await;
    let now = time::OffsetDateTime::now_utc();
    let t = |h: i64| (now + time::Duration::hours(h)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let window = serde_json::json!({"system": "derecho", "action": "schedule", "id": "resv-class", "kind": "reservation",
        "title": "Training class", "starts_at": t(20), "ends_at": t(23), "nodes": 16, "partition": "cpu"});
    app.publish_to(
        &app.settings.subject(sitrep_domain::wire::MessageKind::Maintenance, "derecho"),
        window.to_string(),
        None,
    )
    .await;
    crate::helpers::eventually("the outage and window in the read model", || async {
        let (_, api) = app.get_json("/api/v1/outages").await;
        if api["maintenance"].as_array().is_some_and(|a| !a.is_empty())
            && api["outages"].as_array().is_some_and(|a| !a.is_empty())
        {
            Ok(())
        } else {
            Err(api.to_string())
        }
    })
    .await;
    crate::helpers::eventually("the outage update in its timeline", || async {
        let (_, page) = app.get("/systems/derecho/outages/glade-1").await;
        if page.contains("Vendor on site") {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;
    let pages: Vec<(&str, String, Vec<&str>)> = vec![
        ("alerts", "/alerts".into(), vec!["filesystem-full", "FIRING", "WARNING", "open"]),
        ("alert", format!("/alerts/{id}"), vec!["Sign in</a> to acknowledge or silence", "Timeline", "event "]),
        (
            "outages",
            "/outages".into(),
            vec!["MAJOR OUTAGE", "Glade is unavailable", "Training class", "Sign in</a> to declare"],
        ),
        ("outage", "/systems/derecho/outages/glade-1".into(), vec!["declared", "Vendor on site", "Timeline"]),
        (
            "system-with-outage",
            "/systems/derecho".into(),
            vec!["class=\"outage-banner", "Maintenance and reservations", "Training class"],
        ),
        ("sign-in", "/sign-in".into(), vec!["Password", "sitrep users add"]),
        (
            "alert-rules",
            "/alerts/rules".into(),
            vec!["filesystem-full", "used_pct &gt; 1", "derecho:fs/glade", "nowhere"],
        ),
        (
            "alerts-resolved-empty",
            "/alerts?state=resolved&system=nowhere".into(),
            vec!["No resolved alerts", "on nowhere"],
        ),
        ("home-with-alerts", "/".into(), vec!["FIRING: filesystem-full</strong> fs/glade"]),
    ];
    for (name, path, needles) in pages {
        shoot(&app, name, &path, 1000, &needles).await;
    }
    app.cleanup().await;
}

/// Screenshots `path` wide (1400 × `height`) and phone-sized as `<name>.png` and
/// `<name>-phone.png`, checks the DOM Chromium built holds every needle, and returns it.
async fn shoot(app: &TestApp, name: &str, path: &str, height: u32, needles: &[&str]) -> String {
    let dir = screenshot_dir();
    let (wide, narrow) = (dir.join(format!("{name}.png")), dir.join(format!("{name}-phone.png")));
    // Chromium runs on a blocking thread so the test's runtime keeps serving its requests.
    let url = app.url(path);
    let (wide2, narrow2) = (wide.clone(), narrow.clone());
    let dom = tokio::task::spawn_blocking(move || {
        let dom = render(&url, &wide2, 1400, height);
        render(&url, &narrow2, 390, 844);
        dom
    })
    .await
    .unwrap();
    for needle in needles {
        assert!(dom.contains(needle), "{path} in Chromium lacks {needle:?}");
    }
    for png in [&wide, &narrow] {
        let size = std::fs::metadata(png).unwrap().len();
        assert!(size > 5_000, "{} is only {size} bytes", png.display());
    }
    dom
}

/// Publishes a day of reports every 10 minutes for three components, with a failure in the middle.
async fn with_a_day_of_history() -> TestApp {
    let app = spawn_app().await;
    let now = time::OffsetDateTime::now_utc();
    let steps = 144;
    for i in 0..=steps {
        let at = now - time::Duration::minutes(10 * (steps - i));
        let x = i as f64 / steps as f64;
        let used = 60.0 + 35.0 * x;
        let glade = if (60..70).contains(&i) {
            "failed"
        } else if used > 90.0 {
            "degraded"
        } else {
            "ok"
        };
        let batch = serde_json::json!({
            "system": "derecho",
            "observed_at": at.format(&time::format_description::well_known::Rfc3339).unwrap(),
            "ttl_seconds": 900,
            "reports": [
                {"component": "fs/glade", "status": glade, "metrics": {"used_pct": used, "capacity_tb": 20000}},
                {"component": "queue/main", "status": "ok", "metrics": {"pending_jobs": (900.0 + 400.0 * (x * 9.0).sin()).round(), "running_jobs": 1200}},
                {"component": "partition/cpu", "status": "ok", "metrics": {"utilisation_pct": 70.0 + 25.0 * (x * 5.0).cos()}},
            ]
        });
        app.publish("derecho", batch.to_string().into_bytes()).await;
    }
    // Status changes: glade ok, failed, ok, degraded; one each for the other two.
    crate::helpers::wait_for_events(&app, 3 * (steps + 1) + 4 + 2).await;
    crate::helpers::eventually("history to catch up", || async {
        let head = app.scalar("SELECT max(position) FROM events").await;
        let at =
            app.scalar("SELECT coalesce(max(position), 0) FROM projection_checkpoints WHERE name = 'history'").await;
        (at == head).then_some(()).ok_or(format!("history at {at} of {head}"))
    })
    .await;
    app
}

#[tokio::test]
async fn component_pages_draw_svg_charts_with_axes_and_a_status_timeline_in_headless_chromium() {
    let app = with_a_day_of_history().await;
    let past = (time::OffsetDateTime::now_utc() - time::Duration::hours(13))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let pages: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "component-fs-glade",
            "/systems/derecho/components/fs/glade".into(),
            vec!["<polyline class=\"line\"", "<g class=\"axis\">", "<text", "rect class=\"seg s-failed\"", "Uptime"],
        ),
        ("component-fs-glade-7d", "/systems/derecho/components/fs/glade?range=7d".into(), vec!["From hourly rollups"]),
        ("component-queue-main", "/systems/derecho/components/queue/main".into(), vec!["pending_jobs", "<polyline"]),
        ("system-derecho-sparklines", "/systems/derecho".into(), vec!["<svg class=\"spark\""]),
        ("system-derecho-past", format!("/systems/derecho?at={past}"), vec!["Showing the state at", "FAILED"]),
    ];
    for (name, path, needles) in pages {
        shoot(&app, name, &path, 1400, &needles).await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_open_home_page_changes_a_tile_without_reload_within_two_seconds_of_a_report() {
    let app = spawn_app().await;
    let report = |status: &str| format!(r#"{{"system":"derecho","component":"fs/glade","status":"{status}"}}"#);
    app.publish("derecho", report("failed").into_bytes()).await;
    wait_for_components(&app, 1).await;
    let driver = Driver::start().await;
    driver.open(&app.url("/")).await;
    let tile = "return document.querySelector('a[href=\"/systems/derecho\"] .tile-head').innerText";
    assert!(driver.run(tile).await.as_str().unwrap().contains("FAILED"));
    // Wait until the page says it is live, and mark this very page so a reload would show.
    crate::helpers::eventually("the page to go live", || async {
        let status = driver.run("return document.getElementById('live-status').innerText").await;
        if status.as_str().unwrap_or("").contains("Live") {
            Ok(())
        } else {
            Err(status.to_string())
        }
    })
    .await;
    driver.run("window.sitrepTestMark = 'same page'; return null").await;

    let published = std::time::Instant::now();
    app.publish("derecho", report("ok").into_bytes()).await;
    loop {
        let now = driver.run(tile).await;
        if now.as_str().unwrap_or("").contains("OK") {
            break;
        }
        assert!(
            published.elapsed() < std::time::Duration::from_secs(2),
            "the tile still says {now} 2 s after the report"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let took = published.elapsed();
    assert_eq!(driver.run("return window.sitrepTestMark").await, "same page", "the page was not reloaded");
    let status = driver.run("return document.getElementById('live-status').innerText").await;
    assert!(status.as_str().unwrap().contains("Live: last changed"), "{status}");
    eprintln!("the tile changed {} ms after the report was published", took.as_millis());

    // An outage declared while the page is open shows its banner without a reload, and the
    // banner goes when the outage is resolved.
    let outage = app.settings.subject(sitrep_domain::wire::MessageKind::Outage, "derecho");
    let banners = "return document.getElementById('outage-banners').innerText";
    let declare =
        r#"{"system":"derecho","action":"declare","id":"glade-9","severity":"major","title":"Glade is down"}"#;
    app.publish_to(&outage, declare, Some("live-declare")).await;
    crate::helpers::eventually("the banner on the open page", || async {
        let text = driver.run(banners).await;
        let shown = text.as_str().unwrap_or("").contains("MAJOR OUTAGE");
        shown.then_some(()).ok_or(text.to_string())
    })
    .await;
    let banner_text = driver.run(banners).await;
    assert!(banner_text.as_str().unwrap().contains("Glade is down"), "{banner_text}");
    let resolve = r#"{"system":"derecho","action":"resolve","id":"glade-9"}"#;
    app.publish_to(&outage, resolve, Some("live-resolve")).await;
    crate::helpers::eventually("the banner to go", || async {
        let text = driver.run(banners).await;
        let gone = !text.as_str().unwrap_or("OUTAGE").contains("OUTAGE");
        gone.then_some(()).ok_or(text.to_string())
    })
    .await;
    assert_eq!(driver.run("return window.sitrepTestMark").await, "same page", "the page was not reloaded");
    driver.stop().await;
    let pages: [(&str, &str, &[&str]); 4] = [
        ("live-home", "/", &["derecho", "id=\"live-status\""]),
        ("live-system", "/systems/derecho", &["fs/glade", "sse-swap=\"system\""]),
        ("live-alerts", "/alerts", &["No open alerts"]),
        ("ops", "/ops", &["latest_status", "Ingest consumer", "Largest tables"]),
    ];
    for (name, path, needles) in pages {
        shoot(&app, name, path, 1000, needles).await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_public_status_page_renders_in_headless_chromium_wide_and_on_a_phone() {
    let app = crate::status::spawn().await;
    crate::helpers::eventually("the status page with its incidents", || async {
        let (_, page) = app.get("/status").await;
        if page.contains("Scratch partly unavailable") && page.contains("Filesystem firmware upgrade") {
            Ok(())
        } else {
            Err(page)
        }
    })
    .await;
    let dom = shoot(
        &app,
        "status",
        "/status",
        1100,
        &["Test centre status", "Derecho: filesystems", "Partial outage", "Jobs not starting", "Atom feed"],
    )
    .await;
    for name in crate::status::INTERNAL {
        assert!(!dom.contains(name), "the status page shows the internal name {name:?}");
    }
    app.cleanup().await;
}
