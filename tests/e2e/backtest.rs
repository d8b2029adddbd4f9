//! Rules tried before they page anyone: `sitrep rules backtest` over a known log gives exact
//! would-be alerts at two thresholds, the same alerts the live evaluator raised when the
//! candidate is the rules in force, and writes and publishes nothing; `rules check` and
//! `rules test` fail with errors that name what is wrong.

use crate::helpers::{eventually, spawn_app_with_rules, TestApp};
use serde_json::{json, Value};
use sitrep_services::rules::{BacktestArgs, BacktestFormat, Instant, RulesCommand};

const IN_FORCE: &str = r#"
[[rule]]
name = "full"
match = "*:fs/*"
kind = "threshold"
metric = "used_pct"
above = 90
clear = 85
severity = "critical"
"#;

/// Filled to 95 %, down to 84 %, up to 96 %, down to 70 %: one report at a time.
const LEVELS: [f64; 8] = [70.0, 85.0, 95.0, 92.0, 84.0, 88.0, 96.0, 70.0];

async fn reports_stored(app: &TestApp, n: i64) {
    eventually(&format!("{n} reports"), || async {
        let found = app.scalar("SELECT count(*) FROM events WHERE event_type = 'StatusReported'").await;
        if found == n {
            Ok(())
        } else {
            Err(format!("{found}"))
        }
    })
    .await;
}

async fn backtest(app: &TestApp, rules: &str, from: time::OffsetDateTime) -> Value {
    let path = std::env::temp_dir().join(format!("sitrep-test-{}-candidate-{}.toml", app.db_name, rules.len()));
    std::fs::write(&path, rules).unwrap();
    let args = BacktestArgs {
        rules: path,
        from: Instant::At(from),
        to: Some(Instant::At(time::OffsetDateTime::now_utc() + time::Duration::SECOND)),
        format: BacktestFormat::Json,
    };
    let mut out = Vec::new();
    sitrep_services::rules::command(&app.settings, RulesCommand::Backtest(args), &mut out).await.unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn alerts(report: &Value) -> Vec<(String, i64, Option<i64>)> {
    report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["rule"].as_str().unwrap().to_owned(), a["raised_by"].as_i64().unwrap(), a["resolved_by"].as_i64()))
        .collect()
}

#[tokio::test]
async fn a_backtest_gives_exact_would_be_alerts_matches_the_live_evaluator_and_writes_nothing() {
    let app = spawn_app_with_rules(IN_FORCE).await;
    let from = time::OffsetDateTime::now_utc() - time::Duration::MINUTE;
    for (i, used) in LEVELS.iter().enumerate() {
        let report = json!({"system": "derecho", "component": "fs/glade", "status": "ok",
                            "metrics": {"used_pct": used}, "ttl_seconds": 3600});
        app.publish("derecho", report.to_string()).await;
        reports_stored(&app, i as i64 + 1).await;
    }
    // The positions of the eight reports, in order.
    let client = app.pool.get().await.unwrap();
    let positions: Vec<i64> = client
        .query("SELECT position FROM events WHERE event_type = 'StatusReported' ORDER BY position", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    drop(client);
    // The live evaluator raised two alerts (at 95 % and at 96 %) and resolved both.
    eventually("the live alerts resolved", || async {
        let resolved = app.scalar("SELECT count(*) FROM alerts WHERE resolved_at IS NOT NULL").await;
        if resolved == 2 {
            Ok(())
        } else {
            Err(format!("{resolved}"))
        }
    })
    .await;
    // Two raised and two resolved, all published, before anything is measured.
    let published_before = eventually("the four transitions published", || async {
        let n = app.js.get_stream(&app.settings.alerts_stream).await.unwrap().info().await.unwrap().state.messages;
        if n == 4 {
            Ok(n)
        } else {
            Err(format!("{n}"))
        }
    })
    .await;
    let events_before = app.scalar("SELECT count(*) FROM events").await;

    // The rules in force, backtested: the same two alerts, at the same reports.
    let same = backtest(&app, IN_FORCE, from).await;
    let p = |i: usize| positions[i];
    assert_eq!(alerts(&same), [("full".into(), p(2), Some(p(4))), ("full".into(), p(6), Some(p(7)))]);
    assert_eq!(same["difference"]["same"], 2, "{}", same["difference"]);
    for list in ["new", "gone", "earlier", "later"] {
        assert_eq!(same["difference"][list], json!([]), "{list}: {}", same["difference"]);
    }
    assert_eq!(same["actual"].as_array().unwrap().len(), 2);

    // A lower threshold: one longer alert from 85 % to 70 %.
    let lower = IN_FORCE.replace("above = 90", "above = 80").replace("clear = 85", "clear = 75");
    let low = backtest(&app, &lower, from).await;
    assert_eq!(alerts(&low), [("full".into(), p(1), Some(p(7)))]);
    // Raised at the 85 % report, milliseconds before the rules in force did at 95 %: within a
    // second is the same time (the live clock's own lag), so it pairs as "same".
    assert_eq!(low["difference"]["same"], 1, "{}", low["difference"]);
    assert_eq!(low["difference"]["gone"].as_array().unwrap().len(), 1, "the second alert is no longer raised");
    assert_eq!(low["totals"][0]["alerts"], 1);
    // A higher one: only the 96 % report, resolved at 70 %.
    let higher = IN_FORCE.replace("above = 90", "above = 95").replace("clear = 85", "clear = 90");
    let high = backtest(&app, &higher, from).await;
    assert_eq!(alerts(&high), [("full".into(), p(6), Some(p(7)))]);
    assert!(high["alerts"][0]["resolved_at"].is_string(), "resolved within the range");

    // The same on the web, for operators: the form starts from the rules file in force.
    let viewer = app.sign_in("vic", sitrep_infra::auth::Role::Viewer).await;
    assert_eq!(app.get_as(&viewer, "/alerts/rules/backtest").await.0, 403);
    let operator = app.sign_in("ana", sitrep_infra::auth::Role::Operator).await;
    let (status, form) = app.get_as(&operator, "/alerts/rules/backtest").await;
    assert_eq!(status, 200);
    assert!(
        form.contains("above &#x3D; 90") && form.contains("name=\"from\""),
        "the form holds the rules in force: {form}"
    );
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let range_to = (time::OffsetDateTime::now_utc() + time::Duration::MINUTE).format(&fmt).unwrap();
    let range_from = (from - time::Duration::MINUTE).format(&fmt).unwrap();
    let resp = app
        .post_form(&operator, "/alerts/rules/backtest", &[("rules", &lower), ("from", &range_from), ("to", &range_to)])
        .await;
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    for needle in [
        "Would raise 1 alerts",
        "The rules in force raised 2 alerts",
        "derecho:fs/glade",
        "would raise full (critical)",
        "<dt>Gone</dt><dd>1 were raised",
    ] {
        assert!(page.contains(needle), "the backtest page lacks {needle:?}");
    }
    let resp = app
        .post_form(
            &operator,
            "/alerts/rules/backtest",
            &[("rules", "[[rule]]\nname='x'\nkind='nope'"), ("from", &range_from), ("to", &range_to)],
        )
        .await;
    let page = resp.text().await.unwrap();
    assert!(page.contains("Not run:") && page.contains("rule[0] &quot;x&quot; field &quot;kind&quot;"), "{page}");

    // Nothing written, nothing published.
    assert_eq!(app.scalar("SELECT count(*) FROM events").await, events_before);
    let published_after =
        app.js.get_stream(&app.settings.alerts_stream).await.unwrap().info().await.unwrap().state.messages;
    assert_eq!(published_after, published_before);
    app.cleanup().await;
}

#[tokio::test]
async fn rules_check_and_rules_test_exit_1_with_errors_that_name_the_rule_and_field() {
    let app = crate::helpers::spawn_app_without_projections().await;
    let dir = std::env::temp_dir().join(format!("sitrep-test-{}-rules", app.db_name));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("alerts.toml"), IN_FORCE).unwrap();
    std::fs::write(dir.join("bad.toml"), IN_FORCE.replace("clear = 85", "clear = 95")).unwrap();
    let tests = r#"
rules = "alerts.toml"
[[test]]
name = "full at once"
[[test.report]]
at = "0s"
component = "derecho:fs/glade"
status = "ok"
metrics = { used_pct = 91.0 }
[[test.expect]]
at = "0s"
firing = ["full derecho:fs/glade"]
[[test]]
name = "wrong"
[[test.report]]
at = "0s"
component = "derecho:fs/glade"
status = "ok"
metrics = { used_pct = 50.0 }
[[test.expect]]
at = "1m"
firing = ["full derecho:fs/glade"]
"#;
    std::fs::write(dir.join("tests.toml"), tests).unwrap();
    // As `sitrep rules …` runs them; an error is what makes the command exit 1.
    let run = |c: RulesCommand| {
        let settings = app.settings.clone();
        async move {
            let mut out = Vec::new();
            let result = sitrep_services::rules::command(&settings, c, &mut out).await;
            (result.map_err(|e| format!("{e:#}")), String::from_utf8(out).unwrap())
        }
    };
    let (result, stdout) = run(RulesCommand::Check { file: Some(dir.join("alerts.toml")) }).await;
    assert!(result.is_ok());
    assert!(stdout.trim().ends_with("alerts.toml: ok: 1 rules, 0 dependencies, 0 routes, 0 receivers"), "{stdout}");
    let (result, _) = run(RulesCommand::Check { file: Some(dir.join("bad.toml")) }).await;
    let err = result.unwrap_err();
    assert!(err.contains("rule[0] \"full\" field \"clear\""), "{err}");
    let (result, stdout) = run(RulesCommand::Test { file: dir.join("tests.toml") }).await;
    assert!(stdout.contains("ok    full at once"), "{stdout}");
    assert!(
        stdout.contains("FAIL  wrong\n      at 1m:\n        - expected, not firing: full derecho:fs/glade"),
        "{stdout}"
    );
    assert!(stdout.contains("2 tests of"), "{stdout}");
    assert_eq!(result.unwrap_err(), "1 of 2 rule tests failed");
    app.cleanup().await;
}
