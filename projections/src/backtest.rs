//! Backtesting candidate rules on the stored log (`sitrep rules backtest`,
//! `/alerts/rules/backtest`): reads the range's reports and maintenance windows and runs
//! [`sitrep_domain::alert::backtest`] over them in memory. It writes nothing and publishes
//! nothing: every query here is a read.
//!
//! The evaluator starts a warm-up before the range (the rules' longest `for` or flapping
//! window, at most a day), from each component's last report before that and every
//! maintenance window and outage before it. A condition already holding when the range begins
//! has its true start; an alert firing when the range begins is reported with the time it was
//! raised, before the range. The range ends at now at the latest.

use anyhow::Context;
use deadpool_postgres::Pool;
use serde::Serialize;
use sitrep_domain::alert::backtest::{self, Actual, Backtest, Difference, RuleTotals, WouldBe};
use sitrep_domain::alert::{Condition, Input, RuleSet};
use sitrep_domain::component::{ComponentEvent, AGGREGATE_TYPE as COMPONENT};
use sitrep_domain::maintenance::{MaintenanceEvent, AGGREGATE_TYPE as MAINTENANCE};
use sitrep_domain::outage::{OutageEvent, AGGREGATE_TYPE as OUTAGE};
use sitrep_infra::event_store::{self, Metadata, StoredEvent};
use time::OffsetDateTime;

/// Events read at once.
const BATCH: i64 = 10_000;

/// What a backtest found.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestReport {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// Every alert the candidate rules would have raised, oldest first.
    pub alerts: Vec<WouldBe>,
    /// The alerts the rules in force raised that were firing in the range.
    pub actual: Vec<Actual>,
    pub difference: Difference,
    pub totals: Vec<RuleTotals>,
    /// Reports and maintenance events read from the log, the range's and those before it that
    /// set where the evaluator starts.
    pub events: u64,
}

/// The first position recorded at or after `t` (one past the head when none is), found by
/// bisecting positions, which follow recording time.
async fn position_at(client: &deadpool_postgres::Client, t: OffsetDateTime) -> anyhow::Result<i64> {
    let head = event_store::head(&***client).await?;
    let (mut lo, mut hi) = (1_i64, head + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let row = client
            .query_opt(
                "SELECT position, recorded_at FROM events WHERE position >= $1 ORDER BY position LIMIT 1",
                &[&mid],
            )
            .await?;
        match row {
            Some(r) if r.get::<_, OffsetDateTime>(1) < t => lo = r.get::<_, i64>(0) + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

fn feed(b: &mut Backtest, e: &StoredEvent) -> anyhow::Result<bool> {
    match e.aggregate_type.as_str() {
        COMPONENT if e.event_type == ComponentEvent::STATUS_REPORTED => {
            if let ComponentEvent::StatusReported(r) = e.payload.decode::<ComponentEvent>()? {
                b.feed(e.position, Input::Reported(&r));
                return Ok(true);
            }
        }
        MAINTENANCE => {
            b.feed(e.position, Input::Maintenance(&e.payload.decode::<MaintenanceEvent>()?));
            return Ok(true);
        }
        OUTAGE => {
            b.feed(e.position, Input::Outage(&e.payload.decode::<OutageEvent>()?));
            return Ok(true);
        }
        _ => {}
    }
    Ok(false)
}

/// How long before the range the evaluator starts reading, so that a condition already
/// holding when the range begins has its true start: the longest `for` or flapping window of
/// the rules, at most a day.
fn warm_up(rules: &RuleSet) -> time::Duration {
    let longest = rules
        .rules
        .iter()
        .map(|r| match r.condition {
            Condition::Status { for_seconds, .. } | Condition::Threshold { for_seconds, .. } => for_seconds,
            Condition::Flapping { within_seconds, .. } => within_seconds,
            Condition::Stale { .. } => 0,
        })
        .max()
        .unwrap_or(0);
    time::Duration::seconds(i64::try_from(longest).unwrap_or(i64::MAX).min(86_400)) + time::Duration::MINUTE
}

/// Runs `rules` over the log between `from` and `to` (at most now: time that has not passed
/// would make every component look quiet).
pub async fn run(
    pool: &Pool,
    rules: RuleSet,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> anyhow::Result<BacktestReport> {
    let to = to.min(OffsetDateTime::now_utc());
    anyhow::ensure!(from < to, "--from ({from}) must be before --to ({to}) and before now");
    let client = pool.get().await.context("connecting to Postgres")?;
    // Reading starts a warm-up before the range; what it raises and resolves before the range
    // is left out below.
    let first = position_at(&client, from - warm_up(&rules)).await?;
    let end = position_at(&client, to).await? - 1;
    let mut b = Backtest::new(rules);
    let mut events = 0_u64;
    // Where the evaluator starts: the windows scheduled before the range, then each
    // component's last report before it.
    let windows = client
        .query(
            &format!(
                "SELECT {} FROM events WHERE aggregate_type = ANY($1) AND position < $2 ORDER BY position",
                event_store::STORED_COLUMNS
            ),
            &[&[MAINTENANCE, OUTAGE].as_slice(), &first],
        )
        .await?;
    let seeds = client
        .query(
            &format!(
                "SELECT e.* FROM latest_status l CROSS JOIN LATERAL (
                    SELECT {} FROM events
                    WHERE aggregate_id = l.system || ':' || l.component AND observed_at IS NOT NULL
                      AND position < $1
                    ORDER BY observed_at DESC, position DESC LIMIT 1) e
                 ORDER BY e.position",
                event_store::STORED_COLUMNS
            ),
            &[&first],
        )
        .await
        .context("reading each component's last report before the range")?;
    let mut before: Vec<StoredEvent> = windows.iter().chain(&seeds).map(StoredEvent::from_row).collect();
    before.sort_by_key(|e| e.position);
    for e in &before {
        events += u64::from(feed(&mut b, e)?);
    }
    // A stretch of positions at a time: each read scans only its stretch, whatever plan
    // Postgres picks for the type filter.
    let mut after = first - 1;
    while after < end {
        let through = end.min(after + BATCH);
        let batch = event_store::read_types_between(
            &**client,
            &[COMPONENT, MAINTENANCE, OUTAGE],
            after,
            through,
            BATCH,
            Metadata::Skip,
        )
        .await?;
        for e in &batch {
            events += u64::from(feed(&mut b, e)?);
        }
        after = through;
    }
    let mut alerts = b.finish(to);
    alerts.retain(|a| a.resolved_at.is_none_or(|r| r > from));
    alerts.sort_by(|a, b| a.raised_at.cmp(&b.raised_at).then(a.rule.cmp(&b.rule)).then(a.component.cmp(&b.component)));
    let actual: Vec<Actual> = client
        .query(
            "SELECT rule, system, component, raised_at, resolved_at, severity FROM alerts
             WHERE raised_at < $2 AND (resolved_at IS NULL OR resolved_at >= $1) ORDER BY raised_at, rule, component",
            &[&from, &to],
        )
        .await
        .context("reading the alerts the rules in force raised")?
        .iter()
        .map(|r| Actual {
            rule: r.get(0),
            system: r.get(1),
            component: r.get(2),
            raised_at: r.get(3),
            resolved_at: r.get(4),
            severity: r.get(5),
        })
        .collect();
    Ok(BacktestReport {
        difference: backtest::compare(&alerts, &actual, to),
        totals: backtest::totals(&alerts, from, to),
        from,
        to,
        alerts,
        actual,
        events,
    })
}
