//! The SLA report over a known month (November 2026), whose figures were worked out by hand:
//! reports with a failure, a degraded stretch and a stale gap, a maintenance window over a
//! second failure, and a declared outage while the reports said ok. The same month under two
//! policies, and the same figures in JSON, CSV and HTML; the component page's uptime with the
//! maintenance excluded.

use crate::helpers::{eventually, TestApp};
use serde_json::{json, Value};
use sitrep_infra::auth::Role;

/// `[sla]` as the docs' example writes it, with one public group per component kind.
const STATUS_DEFAULT: &str = r#"
[status_page]
title = "Test centre status"

[[status_page.group]]
name = "Derecho: filesystems"
system = "derecho"
components = ["fs/*"]
target = 99.5

[[status_page.group]]
name = "Derecho: queues"
system = "derecho"
components = ["queue/*"]
"#;

/// The stricter policy: degraded and stale count as down, major outages count.
const STRICT: &str = r#"
[sla]
version = "strict-2"
degraded = "down"
stale = "down"
outages = ["major", "critical"]
target = 99.0
"#;

fn at(day: u8, hour: u8) -> String {
    format!("2026-11-{day:02}T{hour:02}:00:00Z")
}

async fn report(app: &TestApp, component: &str, status: &str, observed_at: String, ttl: u32) {
    let payload = json!({"system": "derecho", "component": component, "status": status,
                         "observed_at": observed_at, "ttl_seconds": ttl});
    app.publish("derecho", payload.to_string()).await;
}

/// The known month, published as collectors and operators would have, in order.
async fn november(app: &TestApp) {
    const MONTH: u32 = 30 * 24 * 3600;
    // fs/glade: failed 120 min on the 10th; degraded 360 min on the 20th; failed again on the
    // 15th from 01:00 to 03:00, inside the maintenance window 00:00–04:00.
    for (component, status, time, ttl) in [
        ("fs/glade", "ok", at(1, 0), MONTH),
        ("fs/glade", "failed", at(10, 0), MONTH),
        ("fs/glade", "ok", at(10, 2), MONTH),
        ("fs/glade", "failed", at(15, 1), MONTH),
        ("fs/glade", "ok", at(15, 3), MONTH),
        ("fs/glade", "degraded", at(20, 0), MONTH),
        ("fs/glade", "ok", at(20, 6), MONTH),
        // queue/main: its collector stops after the first day (ttl one day) and comes back
        // on the 5th: stale from the 2nd to the 5th, 4,320 minutes.
        ("queue/main", "ok", at(1, 0), 86_400),
        ("queue/main", "ok", at(5, 0), MONTH),
    ] {
        report(app, component, status, time, ttl).await;
    }
    let maintenance = app.settings.subject(sitrep_domain::wire::MessageKind::Maintenance, "derecho");
    let window = json!({"system": "derecho", "action": "schedule", "id": "glade-pm", "kind": "maintenance",
                        "title": "Glade firmware", "components": ["fs/glade"],
                        "starts_at": at(15, 0), "ends_at": at(15, 4), "observed_at": at(14, 0)});
    app.publish_to(&maintenance, window.to_string(), None).await;
    // A major outage of queue/main for an hour on the 25th, while its reports said ok.
    let outages = app.settings.subject(sitrep_domain::wire::MessageKind::Outage, "derecho");
    let declared = json!({"system": "derecho", "action": "declare", "id": "sched", "severity": "major",
                          "title": "Scheduler not starting jobs", "components": ["queue/main"],
                          "started_at": at(25, 0), "observed_at": at(25, 0)});
    app.publish_to(&outages, declared.to_string(), None).await;
    let resolved = json!({"system": "derecho", "action": "resolve", "id": "sched", "observed_at": at(25, 1)});
    app.publish_to(&outages, resolved.to_string(), None).await;
}

fn write(app: &TestApp, name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("sitrep-test-{}-{name}", app.db_name));
    std::fs::write(&path, text).unwrap();
    path
}

/// `sitrep report sla` with `status.toml` holding `text`, in `format`.
async fn cli(app: &TestApp, status: &str, format: sitrep_services::report::ReportFormat) -> String {
    let mut settings = app.settings.clone();
    settings.status_file = Some(write(app, &format!("{format:?}-{}.toml", status.len()), status));
    let args = sitrep_services::report::SlaArgs {
        month: Some(sitrep_web::read::sla_report::ReportMonth::parse("2026-11").unwrap()),
        system: None,
        components: true,
        format,
        out: None,
        base_url: None,
    };
    let mut out = Vec::new();
    sitrep_services::report::sla(&settings, &args, &mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

fn component<'a>(system: &'a Value, name: &str) -> &'a Value {
    system["components"].as_array().unwrap().iter().find(|c| c["component"] == name).unwrap()
}

fn figures(v: &Value) -> (f64, f64, f64, f64, f64, i64) {
    (
        v["availability_pct"].as_f64().unwrap(),
        v["down_minutes"].as_f64().unwrap(),
        v["degraded_minutes"].as_f64().unwrap(),
        v["maintenance_minutes"].as_f64().unwrap(),
        v["unknown_minutes"].as_f64().unwrap(),
        v["incidents"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn a_known_month_gives_the_hand_worked_figures_under_two_policies_in_every_format() {
    let app = crate::helpers::spawn_app_with(|s| {
        let path = std::env::temp_dir().join(format!("sitrep-test-{}-status.toml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, STATUS_DEFAULT).unwrap();
        s.status_file = Some(path);
    })
    .await;
    november(&app).await;
    // Everything is in the read models once the last report's segment is.
    let operator = app.sign_in("ana", Role::Operator).await;
    let json_url = "/reports/sla?month=2026-11&components=1&format=json";
    let report: Value = eventually("the month in the read models", || async {
        let (status, body) = app.get_as(&operator, json_url).await;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status} {e}: {body}"))?;
        let systems = v["systems"].as_array().cloned().unwrap_or_default();
        let ready = systems.first().is_some_and(|s| {
            s["components"].as_array().is_some_and(|c| c.len() == 2)
                && s["maintenance_minutes"].as_f64() == Some(120.0)
                && s["incidents"].as_i64() == Some(1)
        });
        if ready {
            Ok(v)
        } else {
            Err(body)
        }
    })
    .await;

    // The default policy: failed is down, degraded up, stale and unknown neither, maintenance
    // excluded; outages count only through the reports.
    assert_eq!(report["month"], "2026-11");
    assert_eq!(report["policy"]["version"], "1");
    let derecho = &report["systems"][0];
    assert_eq!(derecho["system"], "derecho");
    // fs/glade: 43,200 minutes; 240 in maintenance (its failure inside is excluded); 120 down.
    assert_eq!(figures(component(derecho, "fs/glade")), (99.721, 120.0, 360.0, 240.0, 0.0, 1));
    // queue/main: stale 4,320 minutes, counted neither way; the outage does not count.
    assert_eq!(figures(component(derecho, "queue/main")), (100.0, 0.0, 0.0, 0.0, 4320.0, 0));
    // The system: the mean of its components' minutes; 40,860 up of 40,920 counted.
    assert_eq!(figures(derecho), (99.853, 60.0, 180.0, 120.0, 2160.0, 1));
    assert_eq!(derecho["mttr_minutes"], 120.0);
    let groups = derecho["groups"].as_array().unwrap();
    assert_eq!(groups[0]["group"], "Derecho: filesystems");
    assert_eq!(groups[0]["availability_pct"], 99.721);
    assert_eq!(groups[0]["budget"]["target_pct"], 99.5);
    // 0.5 % of 42,960 counted minutes is 214.8 allowed; 120 used.
    assert_eq!(
        (groups[0]["budget"]["allowed_minutes"].as_f64(), groups[0]["budget"]["left_minutes"].as_f64()),
        (Some(214.8), Some(94.8))
    );
    let longest = &derecho["longest"][0];
    assert_eq!(
        (longest["component"].as_str(), longest["minutes"].as_f64(), longest["cause"].as_str()),
        (Some("fs/glade"), Some(120.0), Some("failed"))
    );
    let evidence = longest["evidence"].as_str().expect("the incident links its report");
    let (_, event) = app.get_json(&format!("/api/v1{evidence}")).await;
    assert_eq!(event["payload"]["StatusReported"]["status"], "failed", "{event}");
    assert_eq!(derecho["daily"].as_array().unwrap().len(), 30);
    assert_eq!(derecho["daily"][9]["availability_pct"], 95.833, "the 10th: 120 of 1,440 minutes down for one of two");

    // A stricter policy, and the same log: degraded and stale are down, the major outage too.
    let strict: Value =
        serde_json::from_str(&cli(&app, STRICT, sitrep_services::report::ReportFormat::Json).await).unwrap();
    let d = &strict["systems"][0];
    assert_eq!(strict["policy"]["version"], "strict-2");
    assert_eq!(figures(component(d, "fs/glade")), (98.883, 480.0, 360.0, 240.0, 0.0, 2));
    assert_eq!(figures(component(d, "queue/main")), (89.861, 4380.0, 0.0, 0.0, 0.0, 2));
    assert_eq!(figures(d), (94.359, 2430.0, 180.0, 120.0, 0.0, 4));
    assert!(strict["policy"]["text"].as_array().unwrap().iter().any(|l| l == "DEGRADED counts as down."));
    let outage =
        d["longest"].as_array().unwrap().iter().find(|l| l["cause"] == "outage").expect("the outage's incident");
    assert_eq!(outage["evidence"], "/systems/derecho/outages/sched", "an outage's evidence is the outage");

    // The same figures in CSV and HTML as in JSON.
    let csv = cli(&app, STRICT, sitrep_services::report::ReportFormat::Csv).await;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("month,policy_version,system,group,component,availability_pct,down_minutes"));
    assert!(lines.contains(&"2026-11,strict-2,derecho,,,94.359,2430,180,120,0,4,1215,10162.5,99,-1999.2"), "{csv}");
    assert!(lines.contains(&"2026-11,strict-2,derecho,,fs/glade,98.883,480,360,240,0,2,240,21240,,"), "{csv}");
    let html = cli(&app, STRICT, sitrep_services::report::ReportFormat::Html).await;
    for needle in
        ["94.359 %", "98.883 %", "89.861 %", "DEGRADED counts as down.", "Policy version strict-2.", "<style>"]
    {
        assert!(html.contains(needle), "the HTML report lacks {needle}");
    }
    // The PDF, read back with pdftotext: the same figures and the policy.
    let mut settings = app.settings.clone();
    settings.status_file = Some(write(&app, "strict-pdf.toml", STRICT));
    let pdf_path = std::env::temp_dir().join(format!("sitrep-test-{}-sla.pdf", app.db_name));
    let args = sitrep_services::report::SlaArgs {
        month: Some(sitrep_web::read::sla_report::ReportMonth::parse("2026-11").unwrap()),
        system: None,
        components: true,
        format: sitrep_services::report::ReportFormat::Pdf,
        out: Some(pdf_path.clone()),
        base_url: None,
    };
    sitrep_services::report::sla(&settings, &args, &mut Vec::new()).await.unwrap();
    let text = std::process::Command::new("pdftotext")
        .args(["-layout", &pdf_path.to_string_lossy(), "-"])
        .output()
        .expect("pdftotext (poppler-utils; scripts/test installs it)");
    assert!(text.status.success(), "pdftotext refused the PDF: {}", String::from_utf8_lossy(&text.stderr));
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "SLA report 2026-11",
        "Policy version strict-2.",
        "DEGRADED counts as down.",
        "derecho: 94.359 %",
        "98.883 %",
        "89.861 %",
        "2430",
        "-1999.2",
        "Availability per day",
        "queue/main: 4320 min",
    ] {
        assert!(text.contains(needle), "the PDF lacks {needle:?}:\n{text}");
    }
    let (status, pdf) = app.get_as(&operator, "/reports/sla?month=2026-11&format=pdf").await;
    assert_eq!(status, 200);
    assert!(pdf.starts_with("%PDF-"), "the page serves the PDF too");
    let (status, page) = app.get_as(&operator, "/reports/sla?month=2026-11").await;
    assert_eq!(status, 200);
    for needle in ["99.853 %", "99.721 %", "Derecho: filesystems", "Policy version 1.", "href=\"/events/"] {
        assert!(page.contains(needle), "the report page lacks {needle}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_report_needs_signing_in_and_names_a_bad_month_or_system() {
    let app = crate::helpers::spawn_app().await;
    let (status, _) = app.get("/reports/sla?month=2026-11").await;
    assert_eq!(status, 401, "signed out");
    let viewer = app.sign_in("vic", Role::Viewer).await;
    let (status, _) = app.get_as(&viewer, "/reports/sla").await;
    assert_eq!(status, 200, "a viewer (a manager) may read it");
    let operator = app.sign_in("ana", Role::Operator).await;
    let (status, body) = app.get_as(&operator, "/reports/sla?month=2026-13").await;
    assert_eq!(status, 400);
    assert!(body.contains("month") && body.contains("not a month such as 2026-11"), "{body}");
    let (status, body) = app.get_as(&operator, "/reports/sla?month=2026-11").await;
    assert_eq!(status, 200);
    assert!(body.contains("No system reported anything in 2026-11"), "{body}");
    let (status, body) = app.get_as(&operator, "/reports/sla?month=2099-01").await;
    assert_eq!(status, 400);
    assert!(body.contains("2099-01 has not begun yet"), "{body}");
    let (status, body) = app.get_as(&operator, "/reports/sla?month=2026-11&system=nosuch&format=json").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"systems\":[]"), "an unknown system is no row of zeros: {body}");
    app.cleanup().await;
}

#[tokio::test]
async fn the_component_page_excludes_maintenance_from_uptime() {
    let app = crate::helpers::spawn_app().await;
    let now = time::OffsetDateTime::now_utc();
    let t = |minutes: i64| {
        (now - time::Duration::minutes(minutes)).format(&time::format_description::well_known::Rfc3339).unwrap()
    };
    // Failed from 120 to 60 minutes ago, ok since; a maintenance window over the first half
    // hour of the failure.
    report(&app, "fs/glade", "failed", t(120), 3600).await;
    report(&app, "fs/glade", "ok", t(60), 3600).await;
    let maintenance = app.settings.subject(sitrep_domain::wire::MessageKind::Maintenance, "derecho");
    let window = json!({"system": "derecho", "action": "schedule", "id": "pm", "kind": "maintenance",
                        "title": "Glade firmware", "components": ["fs/glade"],
                        "starts_at": t(120), "ends_at": t(90), "observed_at": t(130)});
    app.publish_to(&maintenance, window.to_string(), None).await;
    let uptime: Value = eventually("uptime with the window", || async {
        let (_, body) = app.get_json("/api/v1/uptime/derecho").await;
        let day = body["components"][0]["windows"]["24h"].clone();
        if day["maintenance_seconds"].as_f64() == Some(1800.0) && day["up_seconds"].as_f64().is_some_and(|u| u > 3500.0)
        {
            Ok(day)
        } else {
            Err(body.to_string())
        }
    })
    .await;
    // 30 minutes excluded, 30 down, about 60 up: two thirds.
    assert_eq!(uptime["down_seconds"], 1800.0);
    let pct = uptime["uptime_pct"].as_f64().unwrap();
    assert!((66.0..67.0).contains(&pct), "{uptime}");
    let (_, page) = app.get("/systems/derecho/components/fs/glade").await;
    assert!(
        page.contains("<th scope=\"col\" class=\"num\">Maintenance</th>") && page.contains("30 min"),
        "the page shows the excluded time"
    );
    assert!(page.contains("Time inside a maintenance window or reservation that names the component is excluded."));
    app.cleanup().await;
}
