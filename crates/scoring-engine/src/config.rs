//! `scoring-engine` settings: the common sections plus the service's own.

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
port = 8083

[outbox]
# Events of an org rescore come in thousands: publish them in large confirmed batches.
batch_size = 1000

[scoring]
queue = "scoring-engine.crm"
rescore_interval_secs = 86400
schedule_poll_ms = 60000
# Each batch is a transaction holding the org lock (shared) for about 0.4 s at this size;
# the million-customer rescore took 24.0 s with 5,000 and 22.3 s with 10,000 (20,000: no
# faster).
batch_size = 10000
# Connections rescoring (and previewing) one org side by side, each through its own key
# range: while one waits on PostgreSQL another scores. On two cores the million-customer
# rescore took 22.9 s with 2, 21.5 s with 3 and 21.1 s with 4.
rescore_lanes = 3
config_rescore_wait_ms = 10000
"#;

/// The `[scoring]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct ScoringSettings {
    /// The quorum queue consuming `crm.changed.{contact,company,deal}` and `sync.completed`.
    pub queue: String,
    /// How often every org is rescored so that time (recency, activity windows) moves
    /// scores: daily by default; hourly (3600) is affordable.
    pub rescore_interval_secs: u64,
    /// How often the scheduler looks for orgs whose rescore is due.
    pub schedule_poll_ms: u64,
    /// Customers read, scored and written per transaction in a whole-org rescore.
    pub batch_size: i64,
    /// Connections (each with a task of its own) that rescore or preview one org side by
    /// side, each through its own range of the org's customers; at least 1. A whole-org
    /// rescore holds one more (its lock).
    pub rescore_lanes: usize,
    /// How long `PUT /api/v1/scoring/config` waits for the org's rescore before answering
    /// 202 with the rescore still running (under auth-gateway's upstream timeout).
    pub config_rescore_wait_ms: u64,
}

impl ScoringSettings {
    /// `rescore_interval_secs` as a duration (saturating).
    pub fn rescore_interval(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.rescore_interval_secs).unwrap_or(i64::MAX / 2))
    }
}

/// Everything `scoring-engine` is configured with.
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
    /// Scoring: queue, schedule, batch size.
    pub scoring: ScoringSettings,
}
