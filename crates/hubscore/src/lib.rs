//! `hubscore`: the command-line tool for people and scripts working with a hubscore
//! deployment. It talks to auth-gateway's public API (`/api/v1`) with the caller's bearer
//! token, and to RabbitMQ for tailing events. Every command prints a table for people or,
//! with `--json`, the API's JSON for scripts; an error is one line on stderr and a non-zero
//! exit.
//!
//! It holds no state and no secrets of its own: the token comes from `--token` or
//! `HUBSCORE_TOKEN` and is sent only to the gateway.

pub mod api;
pub mod cli;
mod commands;
pub mod output;

use clap::Parser as _;

/// The whole of `main`: parse, run, and turn an error into one line and exit code 1.
pub async fn run_main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hubscore: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
