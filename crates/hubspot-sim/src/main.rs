//! The `hubspot-sim` binary: runs the simulator standalone (the local demo,
//! benchmarks against a separate process) and optionally seeds a demo portal with
//! known credentials at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use hubspot_sim::seed::SeedRequest;
use hubspot_sim::state::{Fault, NewPortal, Sim};
use hubspot_sim::webhooks::{SignatureVersion, parse_subscription};
use hubspot_sim::{SimConfig, spawn};

/// A faithful HubSpot API, OAuth and webhook simulator.
///
/// Serves the HubSpot API surface (CRM objects, search, properties, associations,
/// owners, pipelines, account info, timeline events and event templates), OAuth, and the `/_sim`
/// control API on one port. Flags override the optional TOML config file, whose
/// keys are the long flag names with underscores (e.g. `demo_contacts = 1000`).
#[derive(Debug, Parser, Default, serde::Deserialize)]
#[command(name = "hubspot-sim", version, after_help = CONFIG_FILE_HELP)]
#[serde(default, deny_unknown_fields)]
struct Args {
    /// TOML config file with the same keys as the flags (flags win).
    #[arg(long, env = "HUBSPOT_SIM_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "HUBSPOT_SIM_HOST")]
    host: Option<String>,
    /// Port to listen on (default 8090; 0 picks a free one).
    #[arg(long, env = "HUBSPOT_SIM_PORT")]
    port: Option<u16>,
    /// OAuth access-token lifetime in seconds (default 1800).
    #[arg(long)]
    access_token_ttl_secs: Option<u64>,
    /// First webhook retry delay in ms; later retries double it (default 1000).
    #[arg(long)]
    webhook_retry_base_ms: Option<u64>,
    /// Webhook delivery attempts per batch (default 11 = 1 + 10 retries).
    #[arg(long)]
    webhook_max_attempts: Option<u32>,
    /// Webhook receiver timeout in ms (default 5000).
    #[arg(long)]
    webhook_timeout_ms: Option<u64>,
    /// How long changes are gathered into one webhook delivery, in ms (default 200).
    #[arg(long)]
    webhook_batch_window_ms: Option<u64>,
    /// Associations embedded per type in a v3 object read, past which the list is cut
    /// and carries paging (default: nothing is cut)
    #[arg(long)]
    embedded_associations_limit: Option<usize>,
    /// Create a demo portal at start.
    #[arg(long)]
    demo: bool,
    /// Demo portal id (default 9990001).
    #[arg(long)]
    demo_portal_id: Option<u64>,
    /// Demo portal tier: free, starter, professional or enterprise (default professional).
    #[arg(long)]
    demo_tier: Option<String>,
    /// Known private-app token for the demo portal (pat-na1-...).
    #[arg(long, env = "HUBSPOT_SIM_DEMO_TOKEN")]
    demo_token: Option<String>,
    /// Known OAuth client id for the demo portal.
    #[arg(long)]
    demo_client_id: Option<String>,
    /// Known OAuth client secret (also the webhook signing secret) for the demo portal.
    #[arg(long, env = "HUBSPOT_SIM_DEMO_CLIENT_SECRET")]
    demo_client_secret: Option<String>,
    /// Known developer API key (`hapikey`) of the demo portal's app, for its timeline event
    /// templates. A development value.
    #[arg(long, env = "HUBSPOT_SIM_DEMO_DEVELOPER_API_KEY")]
    demo_developer_api_key: Option<String>,
    /// Known id of the demo portal's OAuth app (default 30000 + portal id mod 10000).
    #[arg(long)]
    demo_app_id: Option<u64>,
    /// Webhook target URL for the demo portal.
    #[arg(long)]
    demo_webhook_target: Option<String>,
    /// Seed for the demo data (default 42).
    #[arg(long)]
    demo_seed: Option<u64>,
    /// Demo contacts (default 1000).
    #[arg(long)]
    demo_contacts: Option<usize>,
    /// Demo companies (default 200).
    #[arg(long)]
    demo_companies: Option<usize>,
    /// Demo deals (default 400).
    #[arg(long)]
    demo_deals: Option<usize>,
    /// Demo owners (default 10).
    #[arg(long)]
    demo_owners: Option<usize>,
    /// Start a random change stream on the demo portal at this many changes per second.
    #[arg(long)]
    demo_changes_per_second: Option<f64>,
    /// More portals to create at start (config file only: `[[portals]]`).
    #[arg(skip)]
    portals: Vec<PortalConfig>,
    /// Faults active from the start (config file only: `[[faults]]`).
    #[arg(skip)]
    faults: Vec<Fault>,
}

const CONFIG_FILE_HELP: &str = "\
Config file only (TOML), besides the flags' keys:
  [[portals]]  a portal created at start: portal_id, tier, api_limit_increase, time_zone,
               private_app_token, client_id, client_secret, app_id, developer_api_key
               (the app's; portals sharing an app_id share it), oauth_scopes,
               private_app_scopes, webhook_target_url, webhook_subscriptions,
               webhook_duplicate_rate, webhook_shuffle, webhook_signature_version
               (\"v1\" or \"v2\"), changes_per_second, and a
               [portals.seed] table: seed, contacts, companies, deals, owners, anchor_ms
  [[faults]]   a fault active from the start: path_prefix, latency_ms, error_rate,
               error_first, error_status, rate_limit_storm, truncate_body,
               slow_body_ms, portal_id
Everything else is changed at run time through the /_sim control API (see the README).";

/// A portal the simulator creates at start: its credentials and tier, its seed data,
/// its webhook switches and its change stream.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct PortalConfig {
    /// Id, tier, time zone and known credentials.
    #[serde(flatten)]
    portal: NewPortal,
    /// Data to seed; none when absent.
    seed: Option<SeedRequest>,
    /// Subscriptions (`contact.creation`, `deal.propertyChange:dealstage`, `object.creation`, ...);
    /// all legacy contact, company and deal types when absent.
    webhook_subscriptions: Option<Vec<String>>,
    /// Probability that a webhook batch is delivered twice.
    webhook_duplicate_rate: f64,
    /// Deliver webhook events out of order.
    webhook_shuffle: bool,
    /// What `X-HubSpot-Signature` carries: `v1` (the default) or `v2`.
    webhook_signature_version: SignatureVersion,
    /// Random changes per second; no stream when absent.
    changes_per_second: Option<f64>,
}

/// Creates, seeds and configures one portal.
fn start_portal(sim: &Arc<Sim>, config: PortalConfig) -> anyhow::Result<()> {
    let (portal, _) = sim
        .create_portal(config.portal)
        .context("creating a portal")?;
    {
        let mut hooks = portal.hooks.lock();
        hooks.duplicate_rate = config.webhook_duplicate_rate.clamp(0.0, 1.0);
        hooks.shuffle = config.webhook_shuffle;
        hooks.signature_version = config.webhook_signature_version;
        if let Some(list) = &config.webhook_subscriptions {
            hooks.subscriptions = list
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    parse_subscription(2000 + i as u64, text)
                        .with_context(|| format!("unknown webhook subscription {text:?}"))
                })
                .collect::<anyhow::Result<_>>()?;
        }
    }
    let counts = config
        .seed
        .as_ref()
        .map(|request| hubspot_sim::seed::seed(&mut portal.data.write(), request));
    // Credentials stay out of the log: read them with GET /_sim/portals/{id}.
    tracing::info!(
        hubspot.portal_id = portal.id, tier = ?portal.tier, client_id = %portal.client_id,
        app_id = portal.app_id,
        contacts = counts.as_ref().map_or(0, |c| c.contacts),
        companies = counts.as_ref().map_or(0, |c| c.companies),
        deals = counts.as_ref().map_or(0, |c| c.deals),
        "portal ready"
    );
    if let Some(rate) = config.changes_per_second {
        let seed = config.seed.as_ref().map_or(42, |s| s.seed);
        hubspot_sim::changes::start(sim, &portal, rate, seed);
    }
    Ok(())
}

impl Args {
    /// Fills unset flags from the config file.
    fn merge(mut self, file: Args) -> Args {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = file.$f; } )* };
        }
        fill!(
            host,
            port,
            access_token_ttl_secs,
            webhook_retry_base_ms,
            webhook_max_attempts,
            webhook_timeout_ms,
            webhook_batch_window_ms,
            embedded_associations_limit,
            demo_portal_id,
            demo_tier,
            demo_token,
            demo_client_id,
            demo_client_secret,
            demo_developer_api_key,
            demo_app_id,
            demo_webhook_target,
            demo_seed,
            demo_contacts,
            demo_companies,
            demo_deals,
            demo_owners,
            demo_changes_per_second
        );
        self.demo |= file.demo;
        self.portals = file.portals;
        self.faults = file.faults;
        self
    }
}

#[tokio::main]
async fn main() {
    // One clear line and exit 1, like the services: anyhow's Debug form would print a
    // backtrace whenever RUST_BACKTRACE is set.
    if let Err(e) = run().await {
        eprintln!("hubspot-sim: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut args = Args::parse();
    if let Some(path) = &args.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: Args =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        args = args.merge(file);
    }
    let defaults = SimConfig::default();
    let host = args.host.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
    let bind: SocketAddr = format!("{host}:{}", args.port.unwrap_or(8090))
        .parse()
        .context("parsing host and port")?;
    let config = SimConfig {
        bind,
        access_token_ttl_secs: args
            .access_token_ttl_secs
            .unwrap_or(defaults.access_token_ttl_secs),
        webhook_retry_base_ms: args
            .webhook_retry_base_ms
            .unwrap_or(defaults.webhook_retry_base_ms),
        webhook_max_attempts: args
            .webhook_max_attempts
            .unwrap_or(defaults.webhook_max_attempts),
        webhook_timeout_ms: args
            .webhook_timeout_ms
            .unwrap_or(defaults.webhook_timeout_ms),
        webhook_batch_window_ms: args
            .webhook_batch_window_ms
            .unwrap_or(defaults.webhook_batch_window_ms),
        workers: 2,
        embedded_associations_limit: args.embedded_associations_limit,
    };
    let running = spawn(config).await?;
    tracing::info!(base_url = %running.base_url(), "hubspot-sim listening");
    let sim = running.sim();
    sim.faults.write().extend(args.faults.drain(..));
    let mut portals = std::mem::take(&mut args.portals);
    if args.demo {
        let seed = args.demo_seed.unwrap_or(42);
        portals.insert(
            0,
            PortalConfig {
                portal: NewPortal {
                    portal_id: Some(args.demo_portal_id.unwrap_or(9_990_001)),
                    tier: Some(
                        args.demo_tier
                            .clone()
                            .unwrap_or_else(|| "professional".to_owned()),
                    ),
                    webhook_target_url: args.demo_webhook_target.clone(),
                    private_app_token: args.demo_token.clone(),
                    client_id: args.demo_client_id.clone(),
                    client_secret: args.demo_client_secret.clone(),
                    developer_api_key: args.demo_developer_api_key.clone(),
                    app_id: args.demo_app_id,
                    ..NewPortal::default()
                },
                seed: Some(SeedRequest {
                    seed,
                    contacts: args.demo_contacts.unwrap_or(1000),
                    companies: args.demo_companies.unwrap_or(200),
                    deals: args.demo_deals.unwrap_or(400),
                    owners: args.demo_owners.unwrap_or(10),
                    anchor_ms: None,
                }),
                changes_per_second: args.demo_changes_per_second,
                ..PortalConfig::default()
            },
        );
    }
    for portal in portals {
        start_portal(&sim, portal)?;
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    running.stop().await;
    Ok(())
}
