//! The `sitrep` binary: parse the command line and hand over to the library.

use clap::Parser;

// sitrep allocates and frees many small buffers per message (JSON values, strings); with glibc's
// allocator that was nearly half of the process's CPU time under load (docs/performance.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
