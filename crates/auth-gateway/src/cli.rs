//! The operator subcommands next to the shared `serve` and `migrate`: `issue-token` mints a
//! caller token with the development key, `rotate-keys` re-seals every secret under the
//! newest vault key.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use diesel_async::AsyncConnection as _;
use uuid::Uuid;

use crate::Settings;
use crate::caller::Role;
use crate::vault::{Field, Vault};

/// The subcommands this module handles.
pub const TOOL_COMMANDS: [&str; 2] = ["issue-token", "rotate-keys"];

/// True when the command line asks for one of [`TOOL_COMMANDS`].
pub fn is_tool_command(args: &[String]) -> bool {
    args.iter()
        .skip(1)
        .any(|a| TOOL_COMMANDS.contains(&a.as_str()))
}

#[derive(Debug, Parser)]
#[command(name = "auth-gateway")]
struct ToolCli {
    /// A TOML file whose values override the built-in defaults.
    #[arg(long, env = "HUBSCORE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Tool,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Mint a caller token with caller_jwt.hs256_secret (development mode only) and print it.
    IssueToken {
        /// The organization (UUID).
        #[arg(long)]
        org: Uuid,
        /// The user id.
        #[arg(long)]
        sub: String,
        /// owner, admin or member.
        #[arg(long)]
        role: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Re-encrypt every stored secret under the newest vault key, in batches; safe to
    /// interrupt and run again.
    RotateKeys,
}

/// Runs `issue-token` or `rotate-keys`; errors are one line on stderr and exit code 1.
pub async fn run_tool() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "auth-gateway: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = ToolCli::parse();
    let settings: Settings =
        platform::config::load(crate::config::DEFAULTS, cli.config.as_deref())?;
    match cli.command {
        Tool::IssueToken {
            org,
            sub,
            role,
            ttl,
        } => {
            anyhow::ensure!(
                settings.runtime.development,
                "issue-token works only in development mode (runtime.development = true, \
                 HUBSCORE__RUNTIME__DEVELOPMENT=true)"
            );
            let role: Role = role
                .parse()
                .map_err(|()| anyhow::anyhow!("--role must be owner, admin or member"))?;
            let token = crate::caller::mint_dev_token(
                &settings.caller_jwt,
                &sub,
                org,
                role,
                Duration::from_secs(ttl),
            )?;
            writeln!(std::io::stdout(), "{token}")?;
            Ok(())
        }
        Tool::RotateKeys => {
            settings.check_secrets()?;
            crate::platform_telemetry(&settings)?;
            let count = rotate_keys(&settings).await?;
            writeln!(std::io::stdout(), "re-encrypted {count} secrets")?;
            Ok(())
        }
    }
}

/// Re-seals every secret not sealed under the newest key, `vault.rotate_batch_size` per
/// transaction; returns how many were re-sealed.
pub async fn rotate_keys(settings: &Settings) -> anyhow::Result<u64> {
    let vault = Vault::from_keyring(&settings.vault.keyring)?;
    let pool = platform::db::connect_pool(&settings.database, crate::startup::SCHEMA)?;
    let mut conn = pool.get().await.context("connecting to the database")?;
    let newest = vault.newest_key_id().to_owned();
    let batch = settings.vault.rotate_batch_size.max(1);
    let mut total = 0_u64;
    loop {
        let done = conn
            .transaction::<u64, anyhow::Error, _>(async |conn| {
                let rows = crate::db::secrets_under_old_keys(conn, &newest, batch).await?;
                let now = chrono::Utc::now();
                for row in &rows {
                    let field = Field::parse(&row.field)
                        .with_context(|| format!("unknown field {:?}", row.field))?;
                    let sealed = vault
                        .reseal(row.connection_id, field, &row.sealed)
                        .with_context(|| {
                            format!("secret {} of connection {}", row.field, row.connection_id)
                        })?;
                    crate::db::put_secret(conn, row.connection_id, field, &sealed, now).await?;
                }
                Ok(u64::try_from(rows.len()).unwrap_or_default())
            })
            .await?;
        if done == 0 {
            break;
        }
        total += done;
        tracing::info!(vault.key_id = %newest, secrets = total, "re-encrypted a batch");
    }
    Ok(total)
}
