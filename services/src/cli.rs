//! The `sitrep` command line.

use crate::app::{self, Parts};
use crate::bench::{self, BenchArgs, SoakArgs};
use crate::simulate::{self, SimulateArgs};
use anyhow::Context;
use clap::{Parser, Subcommand};
use sitrep_infra::{bus, db, devservices, telemetry, Settings};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// sitrep: live and historical status of HPC systems and platform services, from collectors'
/// reports on NATS, kept as events in Postgres.
///
/// Every setting has a local default and a SITREP_* environment variable; the options below
/// override both.
#[derive(Debug, Parser)]
#[command(name = "sitrep", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run ingest, the projections, alerting and the web dashboard in one process.
    Run,
    /// Run only ingest: read reports from the JetStream stream, append events, ack.
    Ingest,
    /// Run only the projection workers, the alert evaluator and its clock, the alert publisher,
    /// and notifications (the planner that decides them and their delivery to receivers).
    Project,
    /// Run only the web dashboard and JSON API (reads the read models).
    Web,
    /// Create the database if needed and apply pending migrations, then exit.
    Migrate,
    /// Rebuild read models from the event log beside the live ones, then swap them in.
    ///
    /// The live tables keep serving while the rebuild runs (in the schema sitrep_shadow); the swap
    /// is one transaction. `all` rebuilds the read models side by side. An interrupted replay can
    /// simply be started again.
    Replay {
        /// Which read model.
        #[arg(value_enum)]
        projection: crate::replay::Which,
        /// The folder of `sitrep archive`'s files, read before the table (default: the folder
        /// the archive recorded).
        #[arg(long, value_name = "DIR")]
        archive: Option<PathBuf>,
    },
    /// Rebuild read models from the event log into shadow tables and compare them with the live
    /// ones; exits non-zero, showing the differing rows, when any differ.
    Verify {
        /// Which read model.
        #[arg(value_enum, default_value = "all")]
        projection: crate::replay::Which,
        /// The folder of `sitrep archive`'s files, read before the table (default: the folder
        /// the archive recorded).
        #[arg(long, value_name = "DIR")]
        archive: Option<PathBuf>,
    },
    /// Move old component events (reports and status changes) out of Postgres into compressed,
    /// checksummed files, one per day, that replay and verify read back.
    ///
    /// First it saves what the command side and the alert evaluator need to carry on without
    /// them (snapshots at the cut-off), then writes each file with its manifest, then deletes
    /// its events in small batches while ingest goes on. An interrupted run can simply be started
    /// again. Pages show times before the cut-off from status segments and rollups. See
    /// docs/operations.md.
    Archive(crate::archive::ArchiveArgs),
    /// Alert rules tried before they page anyone: `rules check [file]` validates a rules file,
    /// `rules test tests.toml` runs rule tests, and `rules backtest --rules candidate.toml`
    /// shows what candidate rules would have done over the stored log. See docs/alerts.md.
    #[command(subcommand)]
    Rules(crate::rules::RulesCommand),
    /// Try notifications: `notify test <receiver>` sends a sample alert to one receiver of the
    /// rules file and prints its answer.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Reports: `report sla --month 2026-11` gives a month's availability per system, public
    /// group and component, with maintenance excluded, under the policy in status.toml.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Manage collectors' API keys for HTTP ingest (POST /api/v1/reports and friends).
    #[command(subcommand)]
    Keys(crate::admin::KeysCommand),
    /// Manage the operators who may sign in to the dashboard.
    #[command(subcommand)]
    Users(crate::admin::UsersCommand),
    /// Run a ready-made collector: read the site's scheduler, filesystems, login nodes or
    /// JupyterHub and publish one batch report per round.
    ///
    /// Each source runs the site's own commands found on PATH (never as root), once with --once
    /// (for cron) or every --interval. Failure is data: what cannot be read is reported unknown,
    /// with the command and its error. See docs/collectors.md.
    #[command(subcommand)]
    Collect(crate::collect::SourceArgs),
    /// Publish realistic collector traffic (Derecho, Casper, JupyterHub, platform services).
    Simulate(SimulateArgs),
    /// Measure sitrep on this machine, in a database of its own, and print `BENCH` lines.
    ///
    /// Runs a real `sitrep run` end to end, then latency, the dashboard under `wrk` (which must be
    /// installed), replay, and the COPY and cqrs-es baselines, all in one run. At the defaults
    /// it takes 4.5 to 6.5 minutes here; `--reports 100000` about 1.5. Build with --release for
    /// meaningful figures (`scripts/bench` and `just bench` do). See docs/performance.md.
    Bench(BenchArgs),
    /// Hold a real `sitrep run` under steady load for a bounded time and show it holds up.
    ///
    /// Offers reports at a fixed rate while `--clients` dashboards each load a page once a
    /// second, in a database and streams of its own. Prints RSS, projection lag and ingest backlog every
    /// `--every` seconds, then the errors (which must be zero), the largest lag, whether RSS
    /// stayed flat, and `SOAK` lines. Fails if there were errors, RSS kept growing or ingest fell
    /// behind. See
    /// docs/operations.md.
    Soak(SoakArgs),
    /// Try sitrep: start everything with the simulator and print the dashboard's URL.
    ///
    /// Uses the Postgres and NATS at the configured URLs; when those are on this machine and
    /// nothing answers, starts project-local ones (data under <DIR>/.sitrep, ports 55432 and
    /// 54222) with the initdb/pg_ctl and nats-server binaries.
    Demo {
        /// Folder whose .sitrep/ holds the local services' data.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Reports per second the simulator publishes.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
    },
}

/// `sitrep notify`.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a sample alert (a critical failure of derecho fs/glade, marked as a test) to a
    /// `[[receiver]]` of the rules file, once, and print what it answered; exits 1 unless it
    /// answered with success.
    Test {
        /// The receiver's name.
        receiver: String,
    },
}

/// `sitrep report`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// A month's availability per system, per public group of status.toml and, with
    /// --components, per component: minutes down, degraded, in maintenance (excluded) and
    /// unknown; incidents, MTTR and MTBF; the longest incidents; the error budget against each
    /// objective. Computed from the log's read models under the `[sla]` policy, which it prints,
    /// so a changed policy gives new figures for any past month. See docs/status-page.md.
    Sla(crate::report::SlaArgs),
}

pub async fn main(cli: Cli) -> anyhow::Result<()> {
    let Cli { command, mut settings } = cli;
    // A collector under cron stays quiet unless something is wrong: cron mails whatever it prints.
    let default_filter = if matches!(command, Command::Collect(_)) {
        "warn"
    } else {
        "info,tower_http=warn,async_nats=warn,tokio_postgres=warn,refinery_core=warn"
    };
    telemetry::init(settings.log_format, default_filter);
    match command {
        Command::Run => serve(settings, Parts::ALL).await,
        Command::Ingest => serve(settings, Parts { ingest: true, project: false, web: false }).await,
        Command::Project => serve(settings, Parts { ingest: false, project: true, web: false }).await,
        Command::Web => serve(settings, Parts { ingest: false, project: false, web: true }).await,
        Command::Migrate => {
            let applied = db::migrate(&db::parse_url(settings.database_url.expose())?).await?;
            println!("database is up to date ({applied} migrations applied now)");
            Ok(())
        }
        Command::Replay { projection, archive } => {
            crate::replay::replay_with(&settings, projection, archive.as_deref(), &mut std::io::stdout()).await
        }
        Command::Verify { projection, archive } => {
            crate::replay::verify_with(&settings, projection, archive.as_deref(), &mut std::io::stdout()).await
        }
        Command::Archive(args) => crate::archive::command(&settings, &args, &mut std::io::stdout()).await,
        Command::Rules(c) => crate::rules::command(&settings, c, &mut std::io::stdout()).await,
        Command::Report(ReportCommand::Sla(args)) => crate::report::sla(&settings, &args, &mut std::io::stdout()).await,
        Command::Keys(c) => crate::admin::keys(&settings, c, &mut std::io::stdout()).await,
        Command::Users(c) => crate::admin::users(&settings, c, &mut std::io::stdout()).await,
        Command::Notify(NotifyCommand::Test { receiver }) => {
            crate::alerting::notify_test(&settings, &receiver, &mut std::io::stdout()).await
        }
        Command::Collect(source) => crate::collect::command(&settings, &source).await,
        Command::Simulate(args) => {
            let nats = bus::connect(&settings.nats_url).await?;
            let cancel = CancellationToken::new();
            let stop = cancel.clone();
            tokio::spawn(async move {
                app::shutdown_signal().await;
                stop.cancel();
            });
            let n = simulate::run(nats, &settings, &args, cancel).await?;
            println!("published {n} reports");
            Ok(())
        }
        Command::Bench(args) => {
            settings = local_services(settings, &args.dir).await?;
            bench::run(&settings, &args).await
        }
        Command::Soak(args) => {
            settings = local_services(settings, &args.dir).await?;
            bench::soak(&settings, &args).await
        }
        Command::Demo { dir, rate } => {
            settings = local_services(settings, &dir).await?;
            let running = app::start(settings.clone(), Parts::ALL).await?;
            let nats = bus::connect(&settings.nats_url).await?;
            let cancel = CancellationToken::new();
            let sim_cancel = cancel.clone();
            let sim_settings = settings.clone();
            let args = SimulateArgs { rate, ..SimulateArgs::default() };
            let simulator = tokio::spawn(async move { simulate::run(nats, &sim_settings, &args, sim_cancel).await });
            // The demo's operator, so its forms can be tried (a real install adds users with `sitrep users add`).
            let demo_user = sitrep_infra::auth::User {
                name: "demo".into(),
                role: sitrep_infra::auth::Role::Operator,
                password_hash: sitrep_infra::auth::hash_password(DEMO_PASSWORD)?,
            };
            sitrep_infra::auth::put_user(&**running.pool.get().await?, &demo_user).await?;
            // What a centre's operators post: an outage with updates, maintenance, a reservation.
            let earlier = simulate::open_demo_notices(&**running.pool.get().await?).await?;
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
            let notices = simulate::demo_notices(time::OffsetDateTime::now_utc(), &stamp, &earlier);
            let js = async_nats::jetstream::new(bus::connect(&settings.nats_url).await?);
            simulate::post_notices(&js, &settings, &notices).await?;
            if let Some(addr) = running.http_addr {
                println!("\nsitrep is running: open http://{addr}/   (Ctrl-C stops it)");
                println!("To acknowledge alerts or declare outages, sign in as demo / {DEMO_PASSWORD}");
            }
            let result = running.run_until_stopped(app::shutdown_signal()).await;
            cancel.cancel();
            if let Ok(Err(e)) = simulator.await {
                tracing::warn!(error = format!("{e:#}"), "simulator stopped with an error");
            }
            result
        }
    }
}

/// The password of the demo's operator `demo`.
const DEMO_PASSWORD: &str = "demo-operator";

/// The settings with project-local Postgres and NATS under `dir/.sitrep` when the configured
/// ones are on this machine and do not answer (started if need be; what was done is printed).
async fn local_services(settings: Settings, dir: &std::path::Path) -> anyhow::Result<Settings> {
    let dir = dir.to_path_buf();
    let mut settings = settings;
    let (said, settings) =
        tokio::task::spawn_blocking(move || devservices::ensure(&mut settings, &dir).map(|said| (said, settings)))
            .await
            .context("starting local services")??;
    for line in &said {
        println!("{line}");
    }
    Ok(settings)
}

async fn serve(settings: Settings, parts: Parts) -> anyhow::Result<()> {
    let running = app::start(settings, parts).await?;
    if let Some(addr) = running.http_addr {
        tracing::info!(%addr, "dashboard listening on http://{addr}/");
    }
    running.run_until_stopped(app::shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_explains_itself_in_help() {
        Cli::command().debug_assert();
        let cmd = Cli::command();
        for name in [
            "run", "ingest", "project", "web", "migrate", "replay", "verify", "keys", "users", "collect", "notify",
            "simulate", "bench", "soak", "demo",
        ] {
            let sub = cmd.find_subcommand(name).unwrap_or_else(|| panic!("no {name} command"));
            assert!(sub.get_about().is_some_and(|a| !a.to_string().is_empty()), "{name} has no help");
        }
    }

    #[test]
    fn settings_are_accepted_after_the_command() {
        let cli = Cli::try_parse_from([
            "sitrep",
            "run",
            "--database-url",
            "postgres://a@db/x",
            "--http-addr",
            "0.0.0.0:9000",
        ])
        .unwrap();
        assert_eq!(cli.settings.database_url.expose(), "postgres://a@db/x");
        assert_eq!(cli.settings.http_addr.port(), 9000);
        assert!(matches!(cli.command, Command::Run));
    }
}
