//! `writeback-worker` settings: the common sections plus the service's own.

use hubspot_client::ClientConfig;
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
port = 8084

[hubspot]
api_base_url = "https://api.hubapi.com"

[gateway]
base_url = "http://127.0.0.1:8080"
service = "writeback-worker"
# DEVELOPMENT VALUE ONLY. Production sets HUBSCORE__GATEWAY__SECRET.
secret = "dev-only-writeback-worker-secret"

[writeback]
scores_queue = "writeback-worker.scores"
connections_queue = "writeback-worker.connections"
attributes_queue = "writeback-worker.attributes"
score_consumers = 256
batch_window_ms = 500
burst_window_ms = 2000
settle_ms = 100
max_in_flight = 8
retry_pause_ms = 5000
reauth_pause_ms = 60000
max_attempts = 5
retention_days = 30
private_app_tier = "starter"
api_limit_increase = false
"#;

/// Everything `writeback-worker` is configured with.
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
    /// Where HubSpot is and how patient the client is (`hubspot_client::ClientConfig`).
    pub hubspot: ClientConfig,
    /// auth-gateway's internal API, which hands out the connections' access tokens.
    pub gateway: GatewaySettings,
    /// Queues, batching and pacing of the writes.
    pub writeback: WritebackSettings,
    /// The OAuth app's timeline event templates (optional section; timeline events are off
    /// without it).
    #[serde(default)]
    pub timeline: TimelineSettings,
}

/// `[timeline]`: HubSpot keeps timeline event templates per OAuth app and manages them with
/// the app's developer API key, so sending timeline events needs both. No default: an
/// unset app id turns timeline events off (the status says so where a mapping asks for them).
#[derive(Clone, Default, Deserialize)]
pub struct TimelineSettings {
    /// The OAuth app's id (the one auth-gateway's client id belongs to); 0 = not set.
    #[serde(default)]
    pub app_id: u64,
    /// The app's developer API key; production sets `HUBSCORE__TIMELINE__DEVELOPER_API_KEY`.
    #[serde(default)]
    pub developer_api_key: String,
}

impl TimelineSettings {
    /// Both the app id and its key are set.
    pub fn configured(&self) -> bool {
        self.app_id != 0 && !self.developer_api_key.is_empty()
    }
}

impl std::fmt::Debug for TimelineSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimelineSettings")
            .field("app_id", &self.app_id)
            .field(
                "developer_api_key",
                &if self.developer_api_key.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .finish()
    }
}

/// Where and as whom the worker asks auth-gateway for access tokens.
#[derive(Clone, Deserialize)]
pub struct GatewaySettings {
    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// This service's name towards the gateway.
    pub service: String,
    /// This service's secret; production sets it through the environment.
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

/// The service's own section, `[writeback]`.
#[derive(Debug, Clone, Deserialize)]
pub struct WritebackSettings {
    /// Queue of `score.updated` messages.
    pub scores_queue: String,
    /// Queue of `connection.established` / `connection.closed` messages.
    pub connections_queue: String,
    /// Queue of `crm.changed.contact` / `crm.changed.company` messages (custom attribute
    /// values for the outbound attributes).
    pub attributes_queue: String,
    /// `score.updated` messages handled at once (by one subscription on one channel); what
    /// is in hand together is stored in one transaction.
    pub score_consumers: usize,
    /// A batch smaller than 100 records is written once its oldest score waited this long.
    pub batch_window_ms: u64,
    /// During a burst (a full batch went out within this time) a batch smaller than 100
    /// records waits this long instead, for the records still arriving.
    pub burst_window_ms: u64,
    /// A record is written once its score has not changed for this long, so a burst of
    /// changes to one record costs one write.
    pub settle_ms: u64,
    /// Batch requests one flusher keeps in flight for a connection (the rate budget paces them).
    pub max_in_flight: usize,
    /// Pause of a connection's writes after HubSpot was unavailable or refused for a while.
    pub retry_pause_ms: u64,
    /// Pause of a connection's writes after its credentials were refused; a new
    /// `connection.established` ends it at once.
    pub reauth_pause_ms: u64,
    /// Attempts for a record whose failure HubSpot called retryable, before it is recorded
    /// as failed and skipped.
    pub max_attempts: i32,
    /// Days the writeback log and sent timeline events are kept.
    pub retention_days: u32,
    /// Subscription tier assumed for private-app portals (sets their rate limit):
    /// `free`, `starter`, `professional` or `enterprise`.
    pub private_app_tier: String,
    /// Private-app portals have HubSpot's API limit increase.
    pub api_limit_increase: bool,
}

impl WritebackSettings {
    /// The configured private-app tier.
    pub fn tier(&self) -> anyhow::Result<hubspot_client::Tier> {
        use hubspot_client::Tier;
        Ok(match self.private_app_tier.as_str() {
            "free" => Tier::Free,
            "starter" => Tier::Starter,
            "professional" => Tier::Professional,
            "enterprise" => Tier::Enterprise,
            other => anyhow::bail!(
                "writeback.private_app_tier: {other:?} is not free, starter, professional or enterprise"
            ),
        })
    }
}
