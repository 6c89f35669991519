//! The command line every service binary shares: `serve` (the default) or `migrate`.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Parsed command line of a service binary.
#[derive(Debug, Parser)]
pub struct ServiceCli {
    /// A TOML file whose values override the built-in defaults. Environment variables
    /// `HUBSCORE__SECTION__KEY` override both (e.g. `HUBSCORE__HTTP__PORT=9000`).
    #[arg(long, env = "HUBSCORE_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<ServiceCommand>,
}

/// A service binary's subcommands.
#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
pub enum ServiceCommand {
    /// Run the service until SIGTERM or SIGINT (the default).
    Serve,
    /// Create the service's schema and apply pending migrations, then exit. A release step:
    /// `serve` never migrates.
    Migrate,
}

impl ServiceCli {
    /// Parses `std::env::args` with the service's own name and description in `--help`.
    pub fn parse_for(name: &'static str, about: &'static str) -> Self {
        let matches = <Self as CommandFactory>::command()
            .name(name)
            .about(about)
            .get_matches();
        match Self::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(error) => error.exit(),
        }
    }

    /// The subcommand to run.
    pub fn subcommand(&self) -> ServiceCommand {
        self.command.unwrap_or(ServiceCommand::Serve)
    }
}
