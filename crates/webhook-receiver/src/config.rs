//! `webhook-receiver` settings: the common sections plus the service's own.

use platform::amqp::AmqpSettings;
use platform::config::{HttpSettings, RuntimeSettings, TelemetrySettings};
use platform::jwt::InternalJwtSettings;
use serde::Deserialize;

/// Built-in defaults; the common ones (database, broker, logging) are in
/// `platform::config::COMMON_DEFAULTS`.
pub const DEFAULTS: &str = r#"
[http]
port = 8081
"#;

/// Everything `webhook-receiver` is configured with.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Where the HTTP server listens.
    pub http: HttpSettings,
    /// RabbitMQ.
    pub amqp: AmqpSettings,
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// Development or production mode.
    pub runtime: RuntimeSettings,
    /// Verifying (and, in auth-gateway, minting) internal service tokens.
    pub internal_jwt: InternalJwtSettings,
}
