//! History, rollups, uptime, CSV and time travel, from a known sequence of reports with
//! explicit `observed_at` times.

use crate::helpers::{eventually, spawn_app, TestApp};
use serde_json::{json, Value};
use sitrep_projections::timeline::Resolution;
use sitrep_projections::{history, reset, History, Retention};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

fn rfc(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// Waits until the history projection has applied every stored event; returns the head.
async fn history_caught_up(app: &TestApp, events: i64) -> i64 {
    eventually("history to apply every event", || async {
        let head = app.scalar("SELECT coalesce(max(position), 0) FROM events").await;
        let count = app.scalar("SELECT count(*) FROM events").await;
        let at =
            app.scalar("SELECT coalesce(max(position), 0) FROM projection_checkpoints WHERE name = 'history'").await;
        (count == events && at == head).then_some(head).ok_or(format!("{count} events, head {head}, history at {at}"))
    })
    .await
}

/// Every row of `name` as JSON text, in `order`.
pub(crate) async fn table(app: &TestApp, name: &str, order: &str) -> Vec<String> {
    let client = app.pool.get().await.unwrap();
    let rows = client.query(&format!("SELECT row_to_json(t)::text FROM {name} t ORDER BY {order}"), &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

async fn history_tables(app: &TestApp) -> Vec<Vec<String>> {
    vec![
        table(app, "status_segments", "system, component, started_at").await,
        table(app, "metric_rollups", "system, component, resolution, metric, bucket").await,
        table(app, "status_rollups", "system, component, resolution, bucket, status").await,
    ]
}

async fn publish(app: &TestApp, system: &str, component: &str, status: &str, at: OffsetDateTime, used: f64, ttl: u32) {
    let report = json!({"system": system, "component": component, "status": status, "observed_at": rfc(at),
                        "metrics": {"used_pct": used}, "ttl_seconds": ttl});
    app.publish(system, report.to_string().into_bytes()).await;
}

/// The status class of the one component row on a system page (`r-ok`, `r-failed`, ...).
fn row_class(html: &str) -> &str {
    let start = html.find("<tr class=\"r-").expect("a component row") + "<tr class=\"".len();
    &html[start..start + html[start..].find('"').unwrap()]
}

#[tokio::test]
async fn a_known_sequence_gives_exact_rollups_uptime_csv_and_past_states_and_rebuilds_identically() {
    // Arrange: ok, degraded at t1 (+20 min), failed at t2 (+40), ok at t3 (+70), silence past the
    // 30-minute window, ok again at +150; then a late report observed at +30.
    let app = spawn_app().await;
    let base = Resolution::Hour.bucket(OffsetDateTime::now_utc()) - Duration::hours(3);
    let m = |minutes: i64| base + Duration::minutes(minutes);
    let sequence = [
        ("ok", 0, 10.0),
        ("ok", 10, 20.0),
        ("degraded", 20, 50.0),
        ("failed", 40, 90.0),
        ("ok", 70, 30.0),
        ("ok", 80, 40.0),
        ("ok", 150, 60.0),
        ("failed", 30, 99.0),
    ];
    for (status, minute, used) in sequence {
        publish(&app, "derecho", "fs/glade", status, m(minute), used, 1800).await;
    }
    // An old component, beyond raw-history retention: time travel reads the event log for it.
    let old = Resolution::Hour.bucket(OffsetDateTime::now_utc()) - Duration::days(10);
    publish(&app, "archive", "tape/lib1", "ok", old, 5.0, 7200).await;
    publish(&app, "archive", "tape/lib1", "failed", old + Duration::hours(1), 6.0, 7200).await;
    // 10 reports; status changes: ok, degraded, failed, ok for glade and ok, failed for the old one.
    history_caught_up(&app, 16).await;

    // Assert: status seconds per hour (closed time only; the open ok segment is not a rollup yet).
    let client = app.pool.get().await.unwrap();
    let hourly = client
        .query(
            "SELECT bucket, status, seconds::float8 FROM status_rollups
             WHERE system = 'derecho' AND resolution = 'hour' ORDER BY bucket, status",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(OffsetDateTime, String, f64)> = hourly.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let h = |n: i64| base + Duration::hours(n);
    let want: Vec<(OffsetDateTime, String, f64)> = vec![
        (h(0), "degraded".into(), 1200.0),
        (h(0), "failed".into(), 1200.0),
        (h(0), "ok".into(), 1200.0),
        (h(1), "failed".into(), 600.0),
        (h(1), "ok".into(), 2400.0),
        (h(1), "stale".into(), 600.0),
        (h(2), "stale".into(), 1800.0),
    ];
    assert_eq!(got, want);
    let daily = client
        .query(
            "SELECT status, sum(seconds)::float8 FROM status_rollups
             WHERE system = 'derecho' AND resolution = 'day' GROUP BY status ORDER BY status",
            &[],
        )
        .await
        .unwrap();
    let daily: Vec<(String, f64)> = daily.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        daily,
        [("degraded".into(), 1200.0), ("failed".into(), 1800.0), ("ok".into(), 3600.0), ("stale".into(), 2400.0)]
    );

    // Metric rollups: the late 99 counts in min/max/avg but is not the last value.
    let metric = client
        .query(
            "SELECT bucket, min, max, (sum / count)::float8, last, count FROM metric_rollups
             WHERE system = 'derecho' AND resolution = 'hour' AND metric = 'used_pct' ORDER BY bucket",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(OffsetDateTime, f64, f64, f64, f64, i64)> =
        metric.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))).collect();
    assert_eq!(
        got,
        vec![(h(0), 10.0, 99.0, 53.8, 90.0, 5), (h(1), 30.0, 40.0, 35.0, 40.0, 2), (h(2), 60.0, 60.0, 60.0, 60.0, 1)]
    );

    // Uptime over 24 h: up = ok 90 min + degraded 20 min; down = failed 30 min (the late report
    // changes nothing).
    let (status, body) = app.get_json("/api/v1/uptime/derecho").await;
    assert_eq!(status, 200, "{body}");
    let day = &body["components"][0]["windows"]["24h"];
    assert_eq!((day["up_seconds"].as_f64(), day["down_seconds"].as_f64()), (Some(6600.0), Some(1800.0)), "{body}");
    let pct = day["uptime_pct"].as_f64().unwrap();
    assert!((pct - 100.0 * 6600.0 / 8400.0).abs() < 1e-9, "{pct}");

    // CSV: one row per hour bucket.
    let csv_url = format!(
        "/api/v1/history/derecho/fs/glade.csv?metric=used_pct&from={}&to={}&step=1h",
        rfc(h(0)).replace('+', "%2B"),
        rfc(h(3)).replace('+', "%2B")
    );
    let resp = app.http.get(app.url(&csv_url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(resp.headers()["content-disposition"].to_str().unwrap().contains("derecho_fs_glade.csv"));
    let csv = resp.text().await.unwrap();
    let want = format!(
        "time,metric,min,max,avg,last,count\n{},used_pct,10,99,53.8,90,5\n{},used_pct,30,40,35,40,2\n{},used_pct,60,60,60,60,1\n",
        rfc(h(0)),
        rfc(h(1)),
        rfc(h(2))
    );
    assert_eq!(csv, want);
    // The same range in raw 10-minute steps, as JSON.
    let json_url = format!("/api/v1/history/derecho/fs/glade?metric=used_pct&from={}&step=10m", rfc(h(0)));
    let (status, body) = app.get_json(&json_url).await;
    assert_eq!((status, body["resolution"].as_str(), body["step_seconds"].as_i64()), (200, Some("raw"), Some(600)));
    let points = body["series"][0]["points"].as_array().unwrap();
    let firsts: Vec<f64> = points.iter().map(|p| p["avg"].as_f64().unwrap()).collect();
    assert_eq!(firsts, [10.0, 20.0, 50.0, 99.0, 90.0, 30.0, 40.0, 60.0]);

    // A window in hourly rollups ending inside an hour takes that hour from raw reports, so
    // nothing observed after its end leaks in.
    let url = format!(
        "/api/v1/history/derecho/fs/glade?metric=&from={}&to={}&step=1h",
        rfc(h(0) - Duration::days(6)),
        rfc(m(25))
    );
    let (status, body) = app.get_json(&url).await;
    assert_eq!((status, body["resolution"].as_str()), (200, Some("hour")), "{body}");
    let last = body["series"][0]["points"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["count"].as_i64(), last["max"].as_f64()), (Some(3), Some(50.0)), "{body}");
    let (status, body) = app.get_json("/api/v1/history/derecho/fs/glade?metric=nosuch").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("metric:"), "{body}");
    let resp = app.http.get(app.url("/api/v1/history/derecho/fs/glade.csv?format=csv")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // The status API travels too.
    let (status, body) = app.get_json(&format!("/api/v1/status/derecho?at={}", rfc(m(50)))).await;
    assert_eq!((status, body["components"][0]["status"].as_str()), (200, Some("failed")), "{body}");

    // Time travel between the transitions, read from the raw history.
    for (minute, class) in [(15, "r-ok"), (30, "r-degraded"), (50, "r-failed"), (75, "r-ok"), (120, "r-stale")] {
        let (status, html) = app.get(&format!("/systems/derecho?at={}", rfc(m(minute)).replace('+', "%2B"))).await;
        assert_eq!(status, 200);
        assert_eq!(row_class(&html), class, "at +{minute} min");
        assert!(html.contains("Showing the state at") && html.contains("Back to now"));
    }
    let (_, html) = app.get(&format!("/systems/derecho/components/fs/glade?at={}", rfc(m(50)))).await;
    assert!(html.contains("fs/glade</span> <span class=\"badge s-failed\"") && html.contains("Showing the state at"));
    // Before the first report, the component had not reported yet.
    let (status, html) = app.get(&format!("/systems/derecho/components/fs/glade?at={}", rfc(m(-5)))).await;
    assert_eq!(status, 200);
    assert!(html.contains("had not reported yet"));
    // Beyond raw retention, from the event log.
    let (_, html) = app.get(&format!("/?at={}", rfc(old + Duration::minutes(30)))).await;
    assert!(html.contains("class=\"tile t-ok\"") && html.contains("archive") && !html.contains("derecho"), "{html}");
    let (_, html) =
        app.get(&format!("/systems/archive/components/tape/lib1?at={}", rfc(old + Duration::minutes(90)))).await;
    assert!(html.contains("tape/lib1</span> <span class=\"badge s-failed\""), "{html}");
    assert_eq!(html.matches("<tr><td class=\"num\"><time").count(), 2, "both old reports listed from the event log");

    // Pages and the API refuse a bad instant, naming the parameter.
    let (status, html) = app.get("/systems/derecho?at=yesterday").await;
    assert_eq!(status, 400);
    assert!(html.contains("at: &quot;yesterday&quot; is not a time"), "{html}");
    let (status, body) = app.get_json("/api/v1/history/derecho/fs/glade?from=soon").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("from")), "{body}");
    let (status, _) = app.get_json("/api/v1/history/derecho/fs/nope").await;
    assert_eq!(status, 404);

    // Act: rebuild history from zero while the runner is live.
    let before = history_tables(&app).await;
    reset(&app.pool, &History { default_ttl_seconds: 600 }).await.unwrap();
    history_caught_up(&app, 16).await;

    // Assert: identical tables.
    assert_eq!(history_tables(&app).await, before);

    // Retention deletes no report: the event log is the raw history (there is no copy table),
    // and the past is still shown from it; rollups and segments stay.
    let pruned = history::prune(&app.pool, OffsetDateTime::now_utc(), Retention::default()).await.unwrap();
    assert_eq!(pruned.hourly_rollups, 0);
    assert_eq!(app.scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'history_reports'").await, 0);
    let archive = "SELECT count(*) FROM events WHERE aggregate_id = 'archive:tape/lib1' AND observed_at IS NOT NULL";
    assert_eq!(app.scalar(archive).await, 2);
    assert_eq!(app.scalar("SELECT count(*) FROM status_segments WHERE system = 'archive'").await, 2);
    let (_, html) = app.get(&format!("/?at={}", rfc(old + Duration::minutes(30)))).await;
    assert!(html.contains("class=\"tile t-ok\""), "{html}");
    let body: Value = app.get_json("/api/v1/status").await.1;
    assert_eq!(body["components"].as_array().unwrap().len(), 2);
    app.cleanup().await;
}

/// A history built in steps of many batches at once (as the runner does under a backlog) is
/// identical to one built in small steps of a few events: the rollups and segments that a step
/// keeps in memory and writes once merge to the same rows.
#[tokio::test]
async fn history_built_in_large_steps_equals_history_built_a_few_events_at_a_time() {
    use sitrep_projections::rebuild::{self, SHADOW};
    use sitrep_projections::runner::{self, BATCH};
    let app = crate::helpers::spawn_app_without_projections().await;
    let statuses = ["ok", "ok", "ok", "degraded", "ok", "failed", "ok", "unknown"];
    let base = Resolution::Hour.bucket(OffsetDateTime::now_utc()) - Duration::days(2);
    let (rounds, components) = (300, 9);
    for round in 0..rounds {
        // Every 7 minutes, with two silences past the freshness window, and one component late.
        let at = base + Duration::minutes(7 * round) + Duration::hours(2 * (round / 100));
        let reports: Vec<Value> = (0..components)
            .map(|c| {
                let late = round % 13 == 0 && c == round % components;
                let observed = if late { at - Duration::minutes(20) } else { at };
                json!({"component": format!("node/n{c}"), "observed_at": rfc(observed),
                       "status": statuses[((round * 7 + c * 3) / 5 % 8) as usize],
                       "metrics": {"load": (round * c % 17) as f64 / 3.0, "temp": 40.0 + (round % 11) as f64}})
            })
            .collect();
        let batch = json!({"system": "derecho", "ttl_seconds": 1800, "reports": reports});
        app.publish("derecho", batch.to_string().into_bytes()).await;
    }
    // Two reports of one component at the same instant, the latest of their hour: `last` is
    // the later one's.
    let tied = base + Duration::minutes(7 * rounds) + Duration::hours(8);
    let twins: Vec<Value> = [2.5, -1.75]
        .iter()
        .map(
            |load| json!({"component": "node/n0", "observed_at": rfc(tied), "status": "ok", "metrics": {"load": load}}),
        )
        .collect();
    let batch = json!({"system": "derecho", "ttl_seconds": 1800, "reports": twins});
    app.publish("derecho", batch.to_string().into_bytes()).await;
    let want = rounds * components + 2;
    eventually("every report stored", || async {
        let n = app.scalar("SELECT count(*) FROM events WHERE event_type = 'StatusReported'").await;
        (n == want).then_some(()).ok_or(format!("{n} of {want}"))
    })
    .await;
    let head = app.scalar("SELECT max(position) FROM events").await;
    let history = History { default_ttl_seconds: 600 };

    // Act: the live tables in steps as large as the projection takes; the shadow tables in
    // steps of 1 to 37 events.
    let first = runner::step(&app.pool, &history).await.unwrap();
    assert!(first.applied > BATCH as usize, "one step spans several batches: {first:?}");
    sitrep_projections::catch_up(&app.pool, &history).await.unwrap();
    rebuild::prepare(&app.pool, &history).await.unwrap();
    let (mut until, mut steps) = (0, 0);
    while until < head {
        until += steps % 37 + 1;
        runner::step_until(&app.pool, &history, Some(SHADOW), until).await.unwrap();
        steps += 1;
    }

    // Assert: the same rows, and the log holds every report with its observed time.
    let (differences, position) = rebuild::compare(&app.pool, &history, None).await.unwrap();
    assert_eq!(position, head);
    assert!(differences.is_empty(), "{differences:#?}");
    // Equal numerics can differ in scale (1.5 and 1.50), which shows in averages: the sums'
    // text is the same too.
    let order = "system, component, resolution, metric, bucket";
    let sums = |schema: &str| format!("(SELECT {order}, sum FROM {schema}.metric_rollups)");
    let live = table(&app, &sums("public"), order).await;
    assert!(!live.is_empty());
    assert_eq!(live, table(&app, &sums(SHADOW), order).await);
    // So is the text of the seconds in each status.
    let order = "system, component, resolution, bucket, status";
    let seconds = |schema: &str| format!("(SELECT {order}, seconds::text AS seconds FROM {schema}.status_rollups)");
    let live = table(&app, &seconds("public"), order).await;
    assert!(!live.is_empty());
    assert_eq!(live, table(&app, &seconds(SHADOW), order).await);
    let order = "system, component, resolution, metric, bucket";
    // And the rollups are what Postgres makes of the raw reports by itself: the statement
    // history ran before it folded values in memory.
    let reference = "(SELECT split_part(h.aggregate_id, ':', 1) AS system,
                             substr(h.aggregate_id, strpos(h.aggregate_id, ':') + 1) AS component,
                             res.name AS resolution, m.key AS metric,
                             date_bin(res.width, h.observed_at, timestamptz 'epoch') AS bucket,
                             min(m.value::float8) AS min, max(m.value::float8) AS max,
                             sum(m.value::float8::numeric)::text AS sum, count(*) AS count,
                             (array_agg(m.value::float8 ORDER BY h.observed_at DESC, h.position DESC))[1] AS last,
                             max(h.observed_at) AS last_at
                      FROM events h CROSS JOIN jsonb_each_text(h.payload->'StatusReported'->'metrics') AS m
                      CROSS JOIN (VALUES ('hour', interval '1 hour'), ('day', interval '1 day')) AS res(name, width)
                      GROUP BY 1, 2, 3, 4, 5)";
    let folded =
        "(SELECT system, component, resolution, metric, bucket, min, max, sum::text AS sum, count, last, last_at
                   FROM metric_rollups)";
    assert_eq!(table(&app, folded, order).await, table(&app, reference, order).await);
    let last = "SELECT last::text FROM metric_rollups WHERE component = 'node/n0' AND resolution = 'hour' ORDER BY bucket DESC LIMIT 1";
    let client = app.pool.get().await.unwrap();
    assert_eq!(client.query_one(last, &[]).await.unwrap().get::<_, String>(0), "-1.75");
    drop(client);
    assert_eq!(app.scalar("SELECT count(*) FROM events WHERE observed_at IS NOT NULL").await, want);
    assert!(app.scalar("SELECT count(*) FROM status_rollups WHERE status = 'stale'").await > 0);
    rebuild::discard(&app.pool, &history).await.unwrap();
    app.cleanup().await;
}

#[tokio::test]
async fn a_live_sparkline_takes_the_current_hour_from_its_rollup_and_a_past_one_only_what_came_before() {
    // Arrange: two reports in the hour that holds now, and one in the hour before.
    let app = spawn_app().await;
    if OffsetDateTime::now_utc() - Resolution::Hour.bucket(OffsetDateTime::now_utc()) < Duration::seconds(5) {
        // Leave room for two distinct instants in this hour before now.
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    let now = OffsetDateTime::now_utc();
    let hour = Resolution::Hour.bucket(now);
    let before = hour - Duration::minutes(30);
    // The two in this hour: one at its start, one between it and now.
    let (first, second) = (hour, hour + (now - hour) / 2);
    publish(&app, "spark", "fs/home", "ok", before, 10.0, 7200).await;
    publish(&app, "spark", "fs/home", "ok", first, 40.0, 7200).await;
    publish(&app, "spark", "fs/home", "ok", second, 80.0, 7200).await;
    // Three reports and the first status.
    history_caught_up(&app, 4).await;
    let from = now - Duration::hours(24);
    let key = ("fs/home".to_owned(), "used_pct".to_owned());

    // Act: now, live (the rollups alone) and as a page of the past would ask (raw reports for
    // this hour); then at an instant between the two reports of this hour.
    let live = sitrep_web::read::history::sparklines(&app.pool, "spark", &["used_pct"], from, now, true).await.unwrap();
    let past =
        sitrep_web::read::history::sparklines(&app.pool, "spark", &["used_pct"], from, now, false).await.unwrap();
    let between = second - Duration::seconds(1);
    let earlier =
        sitrep_web::read::history::sparklines(&app.pool, "spark", &["used_pct"], from, between, false).await.unwrap();

    // Assert: the same points both ways up to now; before the second report only the first counts.
    assert_eq!(live[&key], [(hour - Duration::hours(1), 10.0), (hour, 60.0)]);
    assert_eq!(past[&key], live[&key]);
    assert_eq!(earlier[&key], [(hour - Duration::hours(1), 10.0), (hour, 40.0)]);
}

#[tokio::test]
async fn history_folds_metric_sums_as_postgres_sums_numeric_digit_for_digit_and_scale_for_scale() {
    use sitrep_projections::exact::{ExactSum, Numeric};
    // Arrange: awkward values (ties at the 15th digit, thirds, huge and tiny, signs) and random
    // ones, plain and from random bits, in groups of 1 to 40.
    let app = crate::helpers::spawn_app_without_projections().await;
    let mut values = vec![
        0.1,
        0.2,
        1.0 / 3.0,
        2.0 / 3.0,
        -0.0,
        0.0,
        123456789012345.5,
        123456789012344.5,
        1234567890123455.0,
        1234567890123445.0,
        1e-20,
        1.5e20,
        1e300,
        1e-300,
        -1e300,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        99.995,
        0.125,
        -7.25,
        1e15,
        1e16,
        123456789012345678.0,
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..20_000 {
        let r = next();
        let v = match i % 4 {
            0 => f64::from_bits(r),
            1 => (r % 100_000) as f64 / 100.0,
            2 => (r % 1_000_000) as f64 / ((r >> 40) % 997 + 1) as f64,
            _ => -((r % 10_000_000_000) as f64) * 10f64.powi((r >> 50) as i32 % 40 - 20),
        };
        if v.is_finite() {
            values.push(v);
        }
    }
    let mut groups = Vec::with_capacity(values.len());
    let (mut group, mut left) = (0i32, 1u64);
    for _ in &values {
        if left == 0 {
            group += 1;
            left = next() % 40 + 1;
        }
        groups.push(group);
        left -= 1;
    }

    // Act: Postgres sums each group; so does ExactSum.
    let client = app.pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT g, sum(v::numeric)::text FROM unnest($1::int4[], $2::float8[]) AS u(g, v) GROUP BY g ORDER BY g",
            &[&groups, &values],
        )
        .await
        .unwrap();
    let mut ours = vec![ExactSum::default(); group as usize + 1];
    for (g, v) in groups.iter().zip(&values) {
        ours[*g as usize].add(&Numeric::of(*v).unwrap());
    }

    // Assert: the same text, so the same digits and the same scale.
    assert_eq!(rows.len(), ours.len());
    let mismatches: Vec<String> = rows
        .iter()
        .zip(&ours)
        .filter(|(row, sum)| row.get::<_, String>(1) != sum.to_numeric())
        .map(|(row, sum)| {
            format!("group {}: postgres {} ours {}", row.get::<_, i32>(0), row.get::<_, String>(1), sum.to_numeric())
        })
        .take(5)
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    drop(client);
    app.cleanup().await;
}
