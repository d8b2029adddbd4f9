//! The `sitrep` binary: parse the command line and hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = sitrep_services::cli::Cli::parse();
    match sitrep_services::cli::main(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sitrep: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
