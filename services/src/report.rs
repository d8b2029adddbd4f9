//! `sitrep report sla`: the SLA report of `sitrep_web::report`, written as JSON, CSV, a
//! standalone HTML document or a PDF.

use anyhow::Context;
use clap::{Args, ValueEnum};
use sitrep_infra::{db, Settings};
use sitrep_web::read::public::PublicConfig;
use sitrep_web::read::sla_report::{self as report, ReportMonth, Request};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Html,
    Csv,
    Json,
    Pdf,
}

#[derive(Debug, Args)]
pub struct SlaArgs {
    /// The month, as 2026-11 (UTC). Default: last month.
    #[arg(long, value_parser = parse_month)]
    pub month: Option<ReportMonth>,
    /// Only this system.
    #[arg(long)]
    pub system: Option<String>,
    /// Also every component's figures.
    #[arg(long)]
    pub components: bool,
    #[arg(long, value_enum, default_value = "html")]
    pub format: ReportFormat,
    /// Write it to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The dashboard's address, which the HTML document's links and the PDF's evidence lead
    /// to. Default: the SITREP_HTTP_ADDR of these settings.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

fn parse_month(raw: &str) -> Result<ReportMonth, String> {
    ReportMonth::parse(raw).and_then(|m| m.begun(time::OffsetDateTime::now_utc()))
}

pub async fn sla(settings: &Settings, args: &SlaArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let config = PublicConfig::load(settings.status_file.as_deref())?;
    if let Some(s) = &args.system {
        sitrep_domain::SystemName::parse(s).map_err(|e| anyhow::anyhow!("--system: {e}"))?;
    }
    let pg = db::parse_url(settings.database_url.expose())?;
    db::migrate(&pg).await?;
    let pool = db::pool(&pg, 2)?;
    let now = time::OffsetDateTime::now_utc();
    let req = Request {
        month: args.month.unwrap_or_else(|| ReportMonth::of(now).previous()),
        system: args.system.clone(),
        components: args.components,
    };
    let r = report::build(&pool, &config, &req, now).await?;
    if let (Some(s), true) = (&args.system, r.systems.is_empty()) {
        anyhow::bail!("--system {s}: no status was reported for {s} in {}", r.month);
    }
    let base = args.base_url.clone().unwrap_or_else(|| format!("http://{}/", settings.http_addr));
    let bytes = match args.format {
        ReportFormat::Json => (serde_json::to_string_pretty(&r)? + "\n").into_bytes(),
        ReportFormat::Csv => report::csv(&r).into_bytes(),
        ReportFormat::Html => sitrep_web::pages::report::html_document(&r, &base, now)?.into_bytes(),
        ReportFormat::Pdf => sitrep_web::pages::report::pdf::pdf(&r, &sitrep_web::view::utc_text(now), &base),
    };
    match &args.out {
        Some(path) => std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?,
        None => out.write_all(&bytes)?,
    }
    Ok(())
}
