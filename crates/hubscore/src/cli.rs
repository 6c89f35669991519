//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// hubscore's command-line tool: connect HubSpot portals, follow syncs, read health scores
/// and their explanations, preview scoring changes, check writeback, and tail score events.
#[derive(Debug, Parser)]
#[command(name = "hubscore", version, about)]
pub struct Cli {
    /// Options every command shares.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command shares.
#[derive(Debug, Args)]
pub struct Global {
    /// auth-gateway's base URL.
    #[arg(
        long,
        env = "HUBSCORE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// The caller's bearer token (a JWT the gateway accepts; `auth-gateway issue-token`
    /// mints one in development).
    #[arg(long, env = "HUBSCORE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 30, global = true)]
    pub timeout_secs: u64,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// HubSpot connections of the caller's organization.
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// Syncs of a connection.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Customers with their health score, worst first by default.
    Scores(ScoresArgs),
    /// One customer's score, factor by factor, with history and what changed.
    Customer {
        /// The customer's id.
        id: String,
    },
    /// The organization's scoring model.
    #[command(subcommand)]
    Scoring(ScoringCommand),
    /// Writing scores back into HubSpot.
    #[command(subcommand)]
    Writeback(WritebackCommand),
    /// Print events from RabbitMQ as they arrive (`score.updated` by default).
    Tail(TailArgs),
}

/// `hubscore connections ...`
#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// List connections.
    List,
    /// Connect a portal with a private-app access token. A portal removed earlier is
    /// connected again under its old id and catches up instead of syncing everything.
    Add {
        /// A name for the connection, e.g. "production".
        #[arg(long)]
        name: String,
        /// The private app's access token (read from the environment to keep it out of
        /// shell history).
        #[arg(long, env = "HUBSPOT_ACCESS_TOKEN", hide_env_values = true)]
        access_token: String,
        /// The private app's webhook secret, if webhooks are set up.
        #[arg(long, env = "HUBSPOT_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
    },
    /// Show one connection.
    Show {
        /// Connection id.
        id: String,
    },
    /// Check a connection against HubSpot: what works, which scopes are missing.
    Test {
        /// Connection id.
        id: String,
    },
    /// Disconnect: revoke, stop syncing and writeback, keep the data.
    Remove {
        /// Connection id.
        id: String,
    },
}

/// `hubscore sync ...`
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Ask for a sync (full by default).
    Start {
        /// Connection id.
        id: String,
        /// Only this object type (contacts, companies, deals).
        #[arg(long)]
        object_type: Option<String>,
    },
    /// Follow the latest sync with a progress bar until it ends.
    Follow {
        /// Connection id.
        id: String,
        /// Seconds between polls.
        #[arg(long, default_value_t = 1.0)]
        every_secs: f64,
        /// How long to wait for a just-made connection's first sync to be recorded.
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
    },
    /// Past syncs of a connection.
    List {
        /// Connection id.
        id: String,
    },
}

/// `hubscore scores`
#[derive(Debug, Args)]
pub struct ScoresArgs {
    /// Only this risk level: healthy, at_risk, critical or none.
    #[arg(long)]
    pub risk: Option<String>,
    /// Lowest score.
    #[arg(long)]
    pub min: Option<u32>,
    /// Highest score.
    #[arg(long)]
    pub max: Option<u32>,
    /// Sort order, e.g. `score` or `-score`.
    #[arg(long, default_value = "score")]
    pub sort: String,
    /// How many.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

/// `hubscore scoring ...`
#[derive(Debug, Subcommand)]
pub enum ScoringCommand {
    /// The current configuration and its version.
    Show,
    /// What a proposed configuration would change, without saving it.
    Preview {
        /// A JSON file with the proposed configuration.
        file: PathBuf,
    },
    /// Save a new configuration; the org is rescored with it (a large org's rescore goes
    /// on after the answer, which then says "rescore": "running").
    Set {
        /// A JSON file with the configuration.
        file: PathBuf,
    },
    /// Customers per risk level, mean score and its change.
    Distribution,
}

/// `hubscore writeback ...`
#[derive(Debug, Subcommand)]
pub enum WritebackCommand {
    /// Written, skipped and failed counts, pending and the last error.
    Status {
        /// Connection id.
        id: String,
    },
    /// Write every current score again (after a mapping change or reconnect).
    Backfill {
        /// Connection id.
        id: String,
    },
    /// The outbound mapping (object types, properties, risk-level values, custom attributes,
    /// timeline events); `--set FILE` replaces it with a JSON file's, validated against the
    /// portal.
    Mapping {
        /// Connection id.
        id: String,
        /// A JSON file with the new mapping (keys left out take their defaults).
        #[arg(long)]
        set: Option<PathBuf>,
    },
}

/// `hubscore tail`
#[derive(Debug, Args)]
pub struct TailArgs {
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "HUBSCORE_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,
    /// The exchange hubscore publishes to.
    #[arg(long, default_value = "hubscore.events")]
    pub exchange: String,
    /// Routing key pattern to bind, e.g. `score.*` or `#`.
    #[arg(long, default_value = "score.updated")]
    pub key: String,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
}
