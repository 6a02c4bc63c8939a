//! The `switchyard` binary: parse the command line, hand over to `cli` (which
//! sets up logging: `cli/logging.rs`).

use clap::Parser;
use switchyard::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match Cli::parse().execute().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", switchyard::cli::one_line(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}
