//! The public face: `/status`, its feeds and badges show only what `status.toml` makes public,
//! signed out even when viewing the dashboard needs signing in, and never an internal
//! component name. Feeds pass feedparser; badges are SVG and shields.io endpoint JSON.

use crate::helpers::{eventually, TestApp};
use serde_json::{json, Value};

const STATUS: &str = r#"
[status_page]
title = "Test centre status"
description = "What our users see."

[[status_page.group]]
name = "Derecho: filesystems"
description = "Glade and scratch"
system = "derecho"
components = ["fs/*"]

[[status_page.group]]
name = "Derecho: batch queues"
system = "derecho"
components = ["queue/*"]
"#;

/// Names that are not public and must never show.
pub(crate) const INTERNAL: [&str; 5] = ["fs/glade", "fs/scratch", "queue/main", "login/", "secret"];

fn python() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let python = root.join(".sitrep/venv/bin/python");
    assert!(python.exists(), "feedparser and jsonschema are in .sitrep/venv: scripts/test installs them");
    python
}

/// Runs `script` in the test venv with `args`; returns what it printed.
async fn run_python(script: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(python()).arg("-c").arg(script).args(args).output().await.unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn temp(app: &TestApp, name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("sitrep-test-{}-{name}", app.db_name));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

async fn publish(app: &TestApp, kind: sitrep_domain::wire::MessageKind, body: Value) {
    let subject = app.settings.subject(kind, "derecho");
    app.publish_to(&subject, body.to_string(), None).await;
}

async fn a_centre(app: &TestApp) {
    use sitrep_domain::wire::MessageKind::{Maintenance, Outage};
    let now = time::OffsetDateTime::now_utc();
    let t = |d: time::Duration| (now + d).format(&time::format_description::well_known::Rfc3339).unwrap();
    let batch = json!({"system": "derecho", "reports": [
        {"component": "fs/glade", "status": "ok"},
        {"component": "fs/scratch", "status": "failed", "message": "OST0004 unreachable"},
        {"component": "queue/main", "status": "ok"},
        {"component": "login/secret-node1", "status": "failed"},
    ]});
    app.publish("derecho", batch.to_string()).await;
    // An incident of the public queues, resolved, with an update between.
    publish(
        app,
        Outage,
        json!({"system": "derecho", "action": "declare", "id": "sched", "severity": "major",
        "title": "Jobs not starting", "description": "The scheduler stopped dispatching.",
        "components": ["queue/main"], "started_at": t(-time::Duration::hours(3))}),
    )
    .await;
    publish(
        app,
        Outage,
        json!({"system": "derecho", "action": "update", "id": "sched",
        "message": "Restarted the scheduler; watching."}),
    )
    .await;
    publish(
        app,
        Outage,
        json!({"system": "derecho", "action": "resolve", "id": "sched",
        "message": "Jobs start normally again."}),
    )
    .await;
    // An ongoing one of the filesystems, and one of an internal component only.
    publish(
        app,
        Outage,
        json!({"system": "derecho", "action": "declare", "id": "scratch", "severity": "minor",
        "title": "Scratch partly unavailable", "components": ["fs/scratch"]}),
    )
    .await;
    publish(
        app,
        Outage,
        json!({"system": "derecho", "action": "declare", "id": "hidden", "severity": "critical",
        "title": "secret login trouble", "components": ["login/secret-node1"]}),
    )
    .await;
    // Maintenance ahead on a filesystem; a reservation of an internal component.
    publish(
        app,
        Maintenance,
        json!({"system": "derecho", "action": "schedule", "id": "glade-fw", "kind": "maintenance",
        "title": "Filesystem firmware upgrade", "components": ["fs/glade"],
        "starts_at": t(time::Duration::days(2)), "ends_at": t(time::Duration::days(2) + time::Duration::hours(4))}),
    )
    .await;
    publish(
        app,
        Maintenance,
        json!({"system": "derecho", "action": "schedule", "id": "secret-res", "kind": "reservation",
        "title": "secret reservation", "components": ["login/secret-node1"],
        "starts_at": t(time::Duration::days(1)), "ends_at": t(time::Duration::days(3))}),
    )
    .await;
}

/// A centre with public and internal parts, outages, and maintenance (shared with browser.rs).
pub(crate) async fn spawn() -> TestApp {
    let app = crate::helpers::spawn_app_with(|s| {
        let path = std::env::temp_dir().join(format!("sitrep-test-{}-status.toml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, STATUS).unwrap();
        s.status_file = Some(path);
        s.view_requires_sign_in = true;
    })
    .await;
    a_centre(&app).await;
    app
}

#[tokio::test]
async fn the_status_page_shows_only_public_groups_signed_out_and_no_internal_names() {
    let app = spawn().await;
    assert_eq!(app.get("/api/v1/status").await.0, 401, "viewing the dashboard needs signing in");
    let (_, home) = app.get("/").await;
    assert!(home.contains("action=\"/sign-in\""), "/ sends a visitor to sign in");
    let page = eventually("the status page with everything", || async {
        let (status, page) = app.get("/status").await;
        let ready = status == 200
            && page.contains("Partial outage")
            && page.contains("Scratch partly unavailable")
            && page.contains("Jobs start normally again.")
            && page.contains("Filesystem firmware upgrade");
        if ready {
            Ok(page)
        } else {
            Err(format!("{status}: {page}"))
        }
    })
    .await;
    assert!(page.contains("<h1>Test centre status</h1>") && page.contains("What our users see."));
    assert!(
        page.contains("<h2>Partial outage: Derecho: filesystems</h2>"),
        "the overall state names the worst and where"
    );
    let filesystems = &page[page.find("id=\"derecho-filesystems\"").expect("the filesystems group")..];
    assert!(filesystems[..filesystems.find("</article>").unwrap()].contains("Partial outage"));
    let queues = &page[page.find("id=\"derecho-batch-queues\"").expect("the queues group")..];
    assert!(queues[..queues.find("</article>").unwrap()].contains(">Operational<"));
    assert_eq!(page.matches("<rect class=\"seg").count(), 2 * 90, "a 90-day bar per group");
    assert!(page.contains("Affects Derecho: batch queues.") && page.contains("Restarted the scheduler; watching."));
    for name in INTERNAL {
        assert!(!page.contains(name), "the status page shows the internal name {name:?}");
    }
    assert!(!page.contains("href=\"/alerts\""), "no operator navigation");
    assert!(page.contains("sse-connect=\"/status/live\""), "it updates live");
    app.cleanup().await;
}

#[tokio::test]
async fn feeds_pass_feedparser_and_badges_are_svg_and_shields_json_for_public_objects_only() {
    let app = spawn().await;
    eventually("the incidents in the feed", || async {
        let (_, atom) = app.get("/status/feed.atom").await;
        if atom.matches("<entry>").count() == 5 {
            Ok(())
        } else {
            Err(atom)
        }
    })
    .await;
    // Identified, the update and resolved of one incident; identified of the other; the window.
    let (_, atom) = app.get("/status/feed.atom").await;
    let (_, rss) = app.get("/status/feed.rss").await;
    for feed in [&atom, &rss] {
        for name in INTERNAL {
            assert!(!feed.contains(name), "a feed shows the internal name {name:?}");
        }
    }
    let check = r#"
import feedparser, sys
for path in sys.argv[1:]:
    f = feedparser.parse(path)
    assert not f.bozo, (path, f.bozo_exception)
    print(f.version, len(f.entries), sorted(e.title for e in f.entries)[0])
"#;
    let out = run_python(check, &[&temp(&app, "feed.atom", &atom), &temp(&app, "feed.rss", &rss)]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["atom10 5 Identified: Jobs not starting", "rss20 5 Identified: Jobs not starting"], "{out}");

    // Badges: the system and a public component; not an internal one, nor another system.
    let (status, svg) = app.get("/badge/derecho/status.svg").await;
    assert_eq!(status, 200);
    assert!(svg.contains("<title>derecho: partial outage</title>"), "{svg}");
    let (_, glade) = app.get("/badge/derecho/fs/glade/status.svg").await;
    assert!(glade.contains("derecho fs/glade: operational"), "{glade}");
    let (_, uptime) = app.get("/badge/derecho/uptime-30d.svg").await;
    assert!(uptime.contains("derecho uptime 30d: "), "{uptime}");
    for hidden in [
        "/badge/derecho/login/secret-node1/status.svg",
        "/badge/casper/status.svg",
        "/badge/derecho/fs/glade/other.svg",
    ] {
        assert_eq!(app.get(hidden).await.0, 404, "{hidden}");
    }
    let (_, shields) = app.get_json("/badge/derecho/fs/scratch/shields.json").await;
    assert_eq!((shields["message"].as_str(), shields["color"].as_str()), (Some("major outage"), Some("red")));
    let validate = r#"
import json, sys, jsonschema
import xml.etree.ElementTree as ET
schema = json.load(open(sys.argv[1]))
jsonschema.validate(json.load(open(sys.argv[2])), schema)
for path in sys.argv[3:]:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
    assert root.find("{http://www.w3.org/2000/svg}title").text
print("ok")
"#;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let schema = root.join("docs/schema/shields-endpoint.json");
    let out = run_python(
        validate,
        &[
            &schema.to_string_lossy(),
            &temp(&app, "shields.json", &shields.to_string()),
            &temp(&app, "status.svg", &svg),
            &temp(&app, "glade.svg", &glade),
            &temp(&app, "uptime.svg", &uptime),
        ],
    )
    .await;
    assert_eq!(out.trim(), "ok");
    app.cleanup().await;
}
