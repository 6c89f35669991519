//! `sync-worker` settings: the common sections plus the service's own (`[sync]`,
//! `[hubspot]`, `[gateway]`).

use platform::amqp::AmqpSettings;
use platform::config::{HttpSettings, RuntimeSettings, TelemetrySettings};
use platform::db::DatabaseSettings;
use platform::jwt::InternalJwtSettings;
use platform::outbox::RelaySettings;
use serde::Deserialize;

/// Built-in defaults; the common ones (database, broker, logging) are in
/// `platform::config::COMMON_DEFAULTS`.
pub const DEFAULTS: &str = r#"
[http]
port = 8082

[sync]
commands_queue = "sync-worker.commands"
webhooks_queue = "sync-worker.webhooks"
max_concurrent_runs = 4
poll_interval_ms = 1000
progress_interval_ms = 2000
publish_batch_size = 200
inline_associations = true
webhook_deliveries_in_hand = 32
reconcile_interval_secs = 3600
reconcile_lookback_secs = 600
archived_check_interval_secs = 86400

[hubspot]
api_base_url = "https://api.hubapi.com"
tier = "starter"
pace_slices = 10
sync_pace_slices = 1
sync_reserve_percent = 10

[gateway]
base_url = "http://127.0.0.1:8080"
service = "sync-worker"
# DEVELOPMENT VALUE ONLY. Production sets HUBSCORE__GATEWAY__SECRET.
secret = "dev-only-sync-worker-secret"
"#;

/// Everything `sync-worker` is configured with.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Where the HTTP server listens.
    pub http: HttpSettings,
    /// PostgreSQL; the service keeps its tables in its own schema.
    pub database: DatabaseSettings,
    /// RabbitMQ.
    pub amqp: AmqpSettings,
    /// How the outbox relay polls and how long it keeps sent entries (optional section).
    #[serde(default)]
    pub outbox: RelaySettings,
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// Development or production mode.
    pub runtime: RuntimeSettings,
    /// Verifying (and, in auth-gateway, minting) internal service tokens.
    pub internal_jwt: InternalJwtSettings,
    /// How syncs run.
    pub sync: SyncSettings,
    /// Where HubSpot is and how the portals' rate budget is sized.
    pub hubspot: HubSpotSettings,
    /// auth-gateway's internal API, where access tokens come from.
    pub gateway: GatewaySettings,
}

/// The `[sync]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct SyncSettings {
    /// The queue bound to `connection.established`, `connection.closed` and
    /// `sync.requested`.
    pub commands_queue: String,
    /// The queue bound to `webhook.batch`.
    pub webhooks_queue: String,
    /// Sync runs this replica executes at once (each for a different connection).
    pub max_concurrent_runs: usize,
    /// How often the runner looks for queued runs and runs orphaned by a dead replica.
    pub poll_interval_ms: u64,
    /// Least time between two `sync.progress` messages of a run.
    pub progress_interval_ms: u64,
    /// Records per `crm.changed` message.
    pub publish_batch_size: i64,
    /// A full sync reads contacts' and deals' associations embedded in their list pages
    /// (no separate requests); off, it reads them afterwards with v4 batch reads of 1,000
    /// ids. A run keeps the way it started with.
    pub inline_associations: bool,
    /// `webhook.batch` deliveries taken at once; those waiting together are applied
    /// together, with one set of HubSpot reads.
    pub webhook_deliveries_in_hand: usize,
    /// How often each active connection is reconciled (modified-since search); 0 disables
    /// the schedule (on-demand reconciliation still works).
    pub reconcile_interval_secs: u64,
    /// How far before the last reconciled instant the next window starts, because
    /// HubSpot's search index lags writes.
    pub reconcile_lookback_secs: u64,
    /// How often the recycle bin is compared with the mirror to catch missed deletions.
    pub archived_check_interval_secs: u64,
}

/// The `[hubspot]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct HubSpotSettings {
    /// HubSpot's API host (the simulator's in tests and the demo).
    pub api_base_url: String,
    /// The portals' subscription tier for sizing the rate budget: `free`, `starter`,
    /// `professional` or `enterprise`. Unknown to the connection messages, so configured.
    pub tier: TierSetting,
    /// How the portal's burst budget is spent: at most a `pace_slices`-th of it in any
    /// `pace_slices`-th of its window. 10 (the default) spreads requests, so other callers
    /// of the portal never wait long; 1 spends whole windows at once, which ends a full
    /// sync sooner while others may wait up to a window (10 s) behind it.
    pub pace_slices: std::num::NonZeroU32,
    /// The same for sync runs (full, object type, records, reconciliation). 1 (the
    /// default) spends whole windows at once, so a full sync takes as few windows as its
    /// requests need.
    pub sync_pace_slices: std::num::NonZeroU32,
    /// Per cent of every window's burst budget sync runs leave to this portal's other
    /// calls (webhook reads, field discovery, writeback), so that those wait at most about
    /// a pace slice after a sync's burst ends. 0 to 50; 10 by default.
    pub sync_reserve_percent: ReservePercent,
}

/// A share of the rate budget kept back, in per cent: 0 to 50.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct ReservePercent(u32);

impl ReservePercent {
    /// The per cent.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for ReservePercent {
    type Error = String;

    fn try_from(percent: u32) -> Result<Self, Self::Error> {
        if percent > 50 {
            return Err(format!(
                "{percent} is more than 50: sync runs would get less than half of the budget"
            ));
        }
        Ok(Self(percent))
    }
}

/// A HubSpot subscription tier as written in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierSetting {
    /// Free.
    Free,
    /// Starter.
    Starter,
    /// Professional.
    Professional,
    /// Enterprise.
    Enterprise,
}

/// The `[gateway]` section: how this service calls auth-gateway's internal API.
#[derive(Clone, Deserialize)]
pub struct GatewaySettings {
    /// auth-gateway's base URL.
    pub base_url: String,
    /// This service's name in the gateway's `internal_clients`.
    pub service: String,
    /// This service's secret (development value in the defaults only).
    pub secret: String,
}

impl std::fmt::Debug for GatewaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySettings")
            .field("base_url", &self.base_url)
            .field("service", &self.service)
            .field("secret", &"***")
            .finish()
    }
}

impl TierSetting {
    /// The client's tier.
    pub fn tier(self) -> hubspot_client::Tier {
        match self {
            TierSetting::Free => hubspot_client::Tier::Free,
            TierSetting::Starter => hubspot_client::Tier::Starter,
            TierSetting::Professional => hubspot_client::Tier::Professional,
            TierSetting::Enterprise => hubspot_client::Tier::Enterprise,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Settings, platform::config::ConfigError> {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        platform::config::load_with_env(DEFAULTS, None, env)
    }

    #[test]
    fn pace_slices_default_to_ten_take_one_and_refuse_zero_naming_the_key() {
        assert_eq!(load(&[]).unwrap().hubspot.pace_slices.get(), 10);
        let bursts = load(&[("HUBSCORE__HUBSPOT__PACE_SLICES", "1")]).unwrap();
        assert_eq!(bursts.hubspot.pace_slices.get(), 1);
        let Err(error) = load(&[("HUBSCORE__HUBSPOT__PACE_SLICES", "0")]) else {
            panic!("a pace of 0 slices was taken");
        };
        let error = error.to_string();
        assert!(error.contains("hubspot.pace_slices"), "{error}");
    }

    #[test]
    fn sync_runs_burst_and_leave_a_tenth_by_default_and_a_reserve_over_half_is_refused() {
        let settings = load(&[]).unwrap();
        assert_eq!(settings.hubspot.sync_pace_slices.get(), 1);
        assert_eq!(settings.hubspot.sync_reserve_percent.get(), 10);
        let Err(error) = load(&[("HUBSCORE__HUBSPOT__SYNC_RESERVE_PERCENT", "60")]) else {
            panic!("a reserve of 60 % was taken");
        };
        let error = error.to_string();
        assert!(error.contains("hubspot.sync_reserve_percent"), "{error}");
        assert!(error.contains("60"), "{error}");
    }
}
