//! The command line every service binary shares: `serve` (the default), `migrate`, and the
//! operators' `dlq list` / `dlq replay`.

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
#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum ServiceCommand {
    /// Run the service until SIGTERM or SIGINT (the default).
    Serve,
    /// Create the service's schema and apply pending migrations, then exit. A release step:
    /// `serve` never migrates.
    Migrate,
    /// Inspect or replay the messages in the service's dead-letter queues (`{queue}.dlq`).
    Dlq {
        /// What to do with them.
        #[command(subcommand)]
        command: DlqCommand,
    },
}

/// `dlq` subcommands.
#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum DlqCommand {
    /// Print one line per dead letter (message id, type, routing key, age, reason),
    /// oldest first, without removing anything.
    List(DlqArgs),
    /// Put dead letters back into the queue they died in (keeping their routing key); each
    /// leaves the DLQ only once the broker confirmed its copy. Exits non-zero if any could
    /// not be replayed (those stay in the DLQ).
    Replay(DlqArgs),
}

/// Which dead letters a `dlq` subcommand works on.
#[derive(Debug, Clone, clap::Args, PartialEq, Eq)]
pub struct DlqArgs {
    /// The consumer queue whose DLQ to use; every queue of the service when omitted.
    #[arg(long)]
    pub queue: Option<String>,
    /// At most this many messages per queue (`list`: 100 when omitted; `replay`: all the
    /// messages present when it starts).
    #[arg(long)]
    pub limit: Option<usize>,
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
        self.command.clone().unwrap_or(ServiceCommand::Serve)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ServiceCommand {
        ServiceCli::try_parse_from(args).unwrap().subcommand()
    }

    #[test]
    fn no_subcommand_means_serve() {
        assert_eq!(parse(&["svc"]), ServiceCommand::Serve);
    }

    #[test]
    fn dlq_subcommands_take_a_queue_and_a_limit() {
        assert_eq!(
            parse(&[
                "svc",
                "dlq",
                "list",
                "--queue",
                "svc.scores",
                "--limit",
                "5"
            ]),
            ServiceCommand::Dlq {
                command: DlqCommand::List(DlqArgs {
                    queue: Some("svc.scores".into()),
                    limit: Some(5),
                })
            }
        );
        assert_eq!(
            parse(&["svc", "dlq", "replay"]),
            ServiceCommand::Dlq {
                command: DlqCommand::Replay(DlqArgs {
                    queue: None,
                    limit: None,
                })
            }
        );
        assert!(ServiceCli::try_parse_from(["svc", "dlq", "list", "--limit", "many"]).is_err());
    }
}
