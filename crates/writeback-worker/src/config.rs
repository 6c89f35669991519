//! `writeback-worker` settings: the common sections plus the service's own.

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
}
