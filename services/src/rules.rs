//! `sitrep rules check|test|backtest`: alert rules tried before they page anyone.
//!
//! - `check` validates a rules file as `sitrep run` would (rules, dependencies, routes,
//!   receivers and their templates), without reading secrets: the check CI runs before a rules
//!   change is deployed.
//! - `test` runs rule tests over synthetic reports (`sitrep_domain::alert::rule_tests`).
//! - `backtest` runs candidate rules over the stored log (`sitrep_projections::backtest`).

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use sitrep_domain::alert::receivers::{self, Resolved};
use sitrep_domain::alert::{rule_tests, RuleSet};
use sitrep_infra::{db, Settings};
use sitrep_projections::backtest::BacktestReport;
use std::io::Write;
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `sitrep rules`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate a rules file (default: SITREP_ALERTS_FILE, else ./alerts.toml): its rules,
    /// dependencies, routes, receivers and body templates, without reading secrets. Exits 1 with
    /// errors that name the rule and the field.
    Check {
        /// The rules file.
        file: Option<PathBuf>,
    },
    /// Run rule tests: input reports at offsets, and the alerts that should be firing at given
    /// offsets (see docs/alerts.md, "sitrep rules test"). Exits 1 when a test fails, with what was
    /// missing and what was not expected.
    Test {
        /// The tests file, such as alerts.test.toml.
        file: PathBuf,
    },
    /// What candidate rules would have done over a stretch of the stored log: every alert they
    /// would have raised, beside those the rules in force raised, and totals per rule. Writes
    /// nothing and publishes nothing.
    Backtest(BacktestArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BacktestFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The candidate rules file.
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// Start of the range: RFC 3339 (2026-11-30T00:00:00Z), or how long before now (7d).
    #[arg(long, value_parser = parse_instant, default_value = "7d")]
    pub from: Instant,
    /// End of the range, the same way; default now.
    #[arg(long, value_parser = parse_instant)]
    pub to: Option<Instant>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: BacktestFormat,
}

/// An instant, or how long before now.
#[derive(Debug, Clone, Copy)]
pub enum Instant {
    At(OffsetDateTime),
    Ago(time::Duration),
}

impl Instant {
    fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Instant::At(t) => t,
            Instant::Ago(d) => now - d,
        }
    }
}

fn parse_instant(raw: &str) -> Result<Instant, String> {
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(Instant::At(t));
    }
    humantime::parse_duration(raw).ok().and_then(|d| time::Duration::try_from(d).ok()).map(Instant::Ago).ok_or_else(
        || format!("{raw:?} is neither an RFC 3339 time (2026-11-30T00:00:00Z) nor a duration before now (7d)"),
    )
}

/// Reads and checks a rules file as `sitrep run` would, secrets aside.
fn check_file(path: &Path, default_ttl_seconds: u32) -> anyhow::Result<(RuleSet, usize)> {
    let rules = sitrep_infra::alerts::load_rules(Some(path), default_ttl_seconds)?.context("no rules file")?.0;
    let receivers = sitrep_infra::alerts::receivers_in_file(Some(path))?;
    // Templates are rendered against a sample, with stand-ins for the secrets.
    let stand_in = Resolved { url: "https://receiver.invalid/".into(), token: Some("(secret)".into()) };
    let pairs: Vec<(receivers::Receiver, Resolved)> = receivers.into_iter().map(|r| (r, stand_in.clone())).collect();
    crate::alerting::check_templates(&pairs)
        .with_context(|| format!("checking the templates in {}", path.display()))?;
    Ok((rules, pairs.len()))
}

pub async fn command(settings: &Settings, c: RulesCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match c {
        RulesCommand::Check { file } => {
            let path = file
                .or_else(|| settings.alerts_file.clone())
                .unwrap_or_else(|| PathBuf::from(sitrep_infra::alerts::DEFAULT_RULES_FILE));
            let (rules, receivers) = check_file(&path, settings.default_ttl_seconds)?;
            writeln!(
                out,
                "{}: ok: {} rules, {} dependencies, {} routes, {receivers} receivers",
                path.display(),
                rules.rules.len(),
                rules.dependencies.len(),
                rules.routes.len()
            )?;
            Ok(())
        }
        RulesCommand::Test { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let tests = rule_tests::parse(&text).with_context(|| format!("reading the tests in {}", file.display()))?;
            let rules_path =
                file.parent().unwrap_or(Path::new(".")).join(tests.rules.as_deref().unwrap_or("alerts.toml"));
            let (rules, _) = check_file(&rules_path, settings.default_ttl_seconds)?;
            let outcomes = rule_tests::run_all(&rules, &tests)
                .with_context(|| format!("running the tests in {}", file.display()))?;
            for o in &outcomes {
                writeln!(out, "{}", o.describe())?;
            }
            let failed = outcomes.iter().filter(|o| !o.passed()).count();
            writeln!(
                out,
                "{} tests of {}: {} passed, {failed} failed",
                outcomes.len(),
                rules_path.display(),
                outcomes.len() - failed
            )?;
            anyhow::ensure!(failed == 0, "{failed} of {} rule tests failed", outcomes.len());
            Ok(())
        }
        RulesCommand::Backtest(args) => {
            let (rules, _) = check_file(&args.rules, settings.default_ttl_seconds)?;
            let now = OffsetDateTime::now_utc();
            let (from, to) = (args.from.resolve(now), args.to.map_or(now, |t| t.resolve(now)));
            let pg = db::parse_url(settings.database_url.expose())?;
            let pool = db::pool(&pg, 2)?;
            let report = sitrep_projections::backtest::run(&pool, rules, from, to).await?;
            match args.format {
                BacktestFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
                BacktestFormat::Text => write!(out, "{}", text(&report, &args.rules))?,
            }
            Ok(())
        }
    }
}

fn when(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn span(seconds: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(seconds.max(0).unsigned_abs())).to_string()
}

fn span_f(seconds: f64) -> String {
    humantime::format_duration(std::time::Duration::from_millis((seconds * 1000.0).round() as u64)).to_string()
}

/// The report as text for a terminal.
pub fn text(r: &BacktestReport, rules: &Path) -> String {
    let mut s = format!(
        "Backtest of {} from {} to {} ({} reports and maintenance events read).\n\n",
        rules.display(),
        when(r.from),
        when(r.to),
        r.events
    );
    s.push_str(&format!("The candidate rules would have raised {} alerts:\n", r.alerts.len()));
    for a in &r.alerts {
        let until = a.resolved_at.map_or("still firing".to_owned(), |t| format!("until {}", when(t)));
        s.push_str(&format!(
            "  {}  {:<18} {}:{} ({}), {until}; {}\n",
            when(a.raised_at),
            a.rule,
            a.system,
            a.component,
            a.severity,
            match (a.raised_by, &a.impacted_by) {
                (Some(p), None) => format!("raised by event {p}"),
                (None, None) => format!("raised as time passed (condition since {})", when(a.since)),
                (Some(p), Some(i)) => format!("raised by event {p}; impacted by {i}, notifies no one"),
                (None, Some(i)) => format!("raised as time passed; impacted by {i}, notifies no one"),
            }
        ));
    }
    s.push_str(&format!("\nThe rules in force raised {} alerts firing in the range.\n", r.actual.len()));
    let d = &r.difference;
    s.push_str(&format!(
        "\nDifferences: {} new, {} no longer raised, {} earlier, {} later, {} at the same time.\n",
        d.new.len(),
        d.gone.len(),
        d.earlier.len(),
        d.later.len(),
        d.same
    ));
    for a in &d.new {
        s.push_str(&format!("  new:      {} {}:{} at {}\n", a.rule, a.system, a.component, when(a.raised_at)));
    }
    for a in &d.gone {
        s.push_str(&format!("  gone:     {} {}:{} raised at {}\n", a.rule, a.system, a.component, when(a.raised_at)));
    }
    for m in d.earlier.iter().chain(&d.later) {
        let word = if m.seconds < 0.0 { "earlier" } else { "later" };
        s.push_str(&format!(
            "  {word}:{} {} {}:{} by {} (at {} instead of {})\n",
            if m.seconds < 0.0 { "  " } else { "    " },
            m.rule,
            m.system,
            m.component,
            span_f(m.seconds.abs()),
            when(m.would_raise_at),
            when(m.actual_raised_at)
        ));
    }
    s.push_str("\nTotals per rule:\n");
    if r.totals.is_empty() {
        s.push_str("  (no alerts)\n");
    }
    for t in &r.totals {
        let flappiest = t.flappiest.as_ref().map(|(c, n)| format!("; flappiest {c} ({n})")).unwrap_or_default();
        s.push_str(&format!(
            "  {}: {} alerts, firing {} in all, longest {}{flappiest}\n",
            t.rule,
            t.alerts,
            span(t.firing_seconds),
            span(t.longest_seconds)
        ));
    }
    s
}
