//! `webhook-receiver` settings: the common sections plus the service's own.

use platform::amqp::AmqpSettings;
use platform::config::{HttpSettings, RuntimeSettings, TelemetrySettings};
use platform::jwt::InternalJwtSettings;
use secrecy::SecretString;
use serde::Deserialize;

use crate::signature::SignatureVersion;

/// Built-in defaults; the common ones (database, broker, logging) are in
/// `platform::config::COMMON_DEFAULTS`.
pub const DEFAULTS: &str = r#"
[http]
port = 8081

[webhooks]
# The scheme, host, port (and any path prefix a proxy in front strips) HubSpot calls;
# v2/v3 signatures cover the full URL, so this must be exactly what HubSpot was given.
public_base_url = "http://127.0.0.1:8081"
# The public app's client secret(s); two during a rotation. Empty: the public route
# refuses every delivery. Set with HUBSCORE__WEBHOOKS__APP_CLIENT_SECRETS.
app_client_secrets = []
accepted_signature_versions = ["v3"]
timestamp_tolerance_ms = 300000
max_body_bytes = 1048576
max_events = 100
confirm_timeout_ms = 2000
publisher_channels = 4
max_pending_publishes = 256
max_in_flight_deliveries = 512

[auth_gateway]
base_url = "http://127.0.0.1:8080"
service_name = "webhook-receiver"
# DEVELOPMENT VALUE ONLY. Production sets HUBSCORE__AUTH_GATEWAY__SERVICE_SECRET.
service_secret = "dev-only-webhook-receiver-secret"
request_timeout_ms = 1000
secrets_cache_ttl_secs = 60
refresh_min_interval_ms = 5000
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
    /// Verifying internal service tokens (the receiver serves no `/api` route today; the
    /// section is kept so every service reads the same configuration).
    pub internal_jwt: InternalJwtSettings,
    /// Intake of HubSpot deliveries.
    pub webhooks: WebhookSettings,
    /// auth-gateway's internal API, for private-app connections' webhook secrets.
    pub auth_gateway: AuthGatewaySettings,
}

/// The `[webhooks]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// `scheme://host[:port][/prefix]` HubSpot calls; the signed URL is this followed by
    /// the received path and query.
    pub public_base_url: String,
    /// The public app's client secrets (current first; a second during a rotation). A
    /// TOML list, or one comma-separated string (as an environment variable gives it).
    #[serde(deserialize_with = "list_of_secrets")]
    pub app_client_secrets: Vec<SecretString>,
    /// Which signature algorithms are accepted (`v1`, `v2`, `v3`); a list or a
    /// comma-separated string.
    #[serde(deserialize_with = "list_of_versions")]
    pub accepted_signature_versions: Vec<SignatureVersion>,
    /// How far `X-HubSpot-Request-Timestamp` may lie in the past or future.
    pub timestamp_tolerance_ms: i64,
    /// Largest body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Most events in one delivery; more get 400.
    pub max_events: usize,
    /// How long a delivery waits for the broker's publisher confirm before answering 503.
    pub confirm_timeout_ms: u64,
    /// Confirm channels publishes are spread over.
    pub publisher_channels: usize,
    /// Deliveries handed to the broker connection at once; more wait for a slot within
    /// `confirm_timeout_ms`, so a slow broker costs 503s, not memory.
    pub max_pending_publishes: usize,
    /// Deliveries handled at once, from reading the body to the answer; one more is
    /// answered 503 `overloaded` at once (HubSpot retries it later) instead of queueing
    /// behind the others and making every answer late.
    pub max_in_flight_deliveries: usize,
}

/// The `[auth_gateway]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthGatewaySettings {
    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// This service's name in the gateway's `internal_clients`.
    pub service_name: String,
    /// This service's secret (HTTP Basic password).
    pub service_secret: SecretString,
    /// Timeout of one call to the gateway.
    pub request_timeout_ms: u64,
    /// How long a connection's secrets are reused without asking again.
    pub secrets_cache_ttl_secs: u64,
    /// A signature miss refreshes a connection's secrets at most this often.
    pub refresh_min_interval_ms: u64,
}

/// A list, or one comma-separated string (environment variables cannot hold lists).
#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn items(self) -> Vec<String> {
        match self {
            StringOrList::One(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            StringOrList::Many(items) => items,
        }
    }
}

fn list_of_secrets<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SecretString>, D::Error> {
    Ok(StringOrList::deserialize(deserializer)?
        .items()
        .into_iter()
        .map(SecretString::from)
        .collect())
}

fn list_of_versions<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SignatureVersion>, D::Error> {
    StringOrList::deserialize(deserializer)?
        .items()
        .into_iter()
        .map(|item| match item.to_ascii_lowercase().as_str() {
            "v1" => Ok(SignatureVersion::V1),
            "v2" => Ok(SignatureVersion::V2),
            "v3" => Ok(SignatureVersion::V3),
            other => Err(serde::de::Error::custom(format!(
                "unknown signature version `{other}` (expected v1, v2 or v3)"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn load(env: &[(&str, &str)]) -> Settings {
        platform::config::load_with_env(
            DEFAULTS,
            None,
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .unwrap()
    }

    #[test]
    fn defaults_accept_v3_only_with_a_one_mebibyte_cap() {
        let s = load(&[]);
        assert_eq!(
            s.webhooks.accepted_signature_versions,
            vec![SignatureVersion::V3]
        );
        assert_eq!(s.webhooks.max_body_bytes, 1_048_576);
        assert_eq!(s.webhooks.max_events, 100);
        assert!(s.webhooks.app_client_secrets.is_empty());
    }

    #[test]
    fn environment_variables_set_two_secrets_and_several_versions() {
        let s = load(&[
            ("HUBSCORE__WEBHOOKS__APP_CLIENT_SECRETS", "new-one, old-one"),
            ("HUBSCORE__WEBHOOKS__ACCEPTED_SIGNATURE_VERSIONS", "v3,v1"),
        ]);
        let secrets: Vec<&str> = s
            .webhooks
            .app_client_secrets
            .iter()
            .map(|s| s.expose_secret())
            .collect();
        assert_eq!(secrets, vec!["new-one", "old-one"]);
        assert_eq!(
            s.webhooks.accepted_signature_versions,
            vec![SignatureVersion::V3, SignatureVersion::V1]
        );
    }

    #[test]
    fn debug_output_hides_every_secret() {
        let s = load(&[("HUBSCORE__WEBHOOKS__APP_CLIENT_SECRETS", "hunter2")]);
        let text = format!("{s:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("dev-only-webhook-receiver-secret"), "{text}");
    }
}
