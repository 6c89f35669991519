//! `auth-gateway` settings: the common sections plus the service's own.
//!
//! Every secret the repository ships (vault key, caller-JWT secret, internal client
//! secrets, OAuth client secret) is a DEVELOPMENT value: [`Settings::check_secrets`]
//! refuses to use any of them unless `runtime.development` is true.

use std::collections::BTreeMap;

use platform::amqp::AmqpSettings;
use platform::config::{HttpSettings, RuntimeSettings, TelemetrySettings};
use platform::db::DatabaseSettings;
use platform::jwt::InternalJwtSettings;
use platform::outbox::RelaySettings;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

/// DEVELOPMENT ONLY vault keyring (`dev-1`, 32 bytes, base64).
pub const DEV_VAULT_KEYRING: &str = "dev-1:ZGV2LW9ubHktdmF1bHQta2V5LW5vdC1mb3ItcHJvZCE=";
/// DEVELOPMENT ONLY HS256 secret for caller tokens (and `issue-token`).
pub const DEV_CALLER_JWT_SECRET: &str = "dev-only-caller-jwt-secret-do-not-use-in-production";
/// DEVELOPMENT ONLY OAuth client secret (the local simulator's demo app uses it).
pub const DEV_OAUTH_CLIENT_SECRET: &str = "dev-only-oauth-client-secret";
/// DEVELOPMENT ONLY secrets of the internal clients: `(config key, service, secret)`.
pub const DEV_INTERNAL_CLIENT_SECRETS: [(&str, &str, &str); 3] = [
    ("sync_worker", "sync-worker", "dev-only-sync-worker-secret"),
    (
        "writeback_worker",
        "writeback-worker",
        "dev-only-writeback-worker-secret",
    ),
    (
        "webhook_receiver",
        "webhook-receiver",
        "dev-only-webhook-receiver-secret",
    ),
];

/// Built-in defaults; the common ones (database, broker, logging) are in
/// `platform::config::COMMON_DEFAULTS`.
pub const DEFAULTS: &str = concat!(
    r#"
[http]
port = 8080

[internal_jwt]
# DEVELOPMENT ONLY signing key, refused outside development mode. Production sets
# HUBSCORE__INTERNAL_JWT__PRIVATE_KEY (and the matching public key everywhere).
private_key = """"#,
    platform::development_internal_jwt_private_key!(),
    r#""""
[vault]
# DEVELOPMENT ONLY. Production sets HUBSCORE__VAULT__KEYRING = "<id>:<base64 32 bytes>,..." newest first.
keyring = "dev-1:ZGV2LW9ubHktdmF1bHQta2V5LW5vdC1mb3ItcHJvZCE="
rotate_batch_size = 100

[caller_jwt]
issuer = "hubscore-dev"
audience = "hubscore-api"
algorithm = "HS256"
# DEVELOPMENT ONLY. Production sets a public key, a JWKS URL or HUBSCORE__CALLER_JWT__HS256_SECRET.
hs256_secret = "dev-only-caller-jwt-secret-do-not-use-in-production"
leeway_secs = 30
jwks_refresh_secs = 300
sub_claim = "sub"
org_claim = "org_id"
role_claim = "role"

# DEVELOPMENT ONLY secrets; the values are SHA-256 of dev-only-<service>-secret.
[internal_clients.sync_worker]
secret_sha256 = "6f4ffc095980eab10ac73daf6754caa7fee972439cda96fbd160d6a00c395b9c"
routes = ["access_token"]

[internal_clients.writeback_worker]
secret_sha256 = "774ec4576a0a87d62b80b34304c09a20f92ea2a70a789d91c04285aafc4a8df5"
routes = ["access_token"]

[internal_clients.webhook_receiver]
secret_sha256 = "0d80007d9ed1d5890f2cbc4bbcbe968c9266d36031efffdbb8908c6c781cca76"
routes = ["webhook_secrets", "portal_connections"]

[hubspot]
api_base_url = "https://api.hubapi.com"
oauth_base_url = "https://app.hubspot.com"
request_timeout_ms = 10000
# Refresh OAuth access tokens this long before they expire.
refresh_margin_secs = 300
token_endpoint_attempts = 3

[oauth]
client_id = "hubscore-dev-client"
# DEVELOPMENT ONLY. Production sets HUBSCORE__OAUTH__CLIENT_SECRET.
client_secret = "dev-only-oauth-client-secret"
redirect_uri = "http://127.0.0.1:8080/api/v1/oauth/hubspot/callback"
required_scopes = ["oauth", "crm.objects.contacts.read", "crm.objects.companies.read", "crm.objects.deals.read"]
optional_scopes = ["crm.objects.contacts.write", "crm.schemas.contacts.write", "timeline"]
completion_redirect_url = "http://127.0.0.1:8080/connected"
state_ttl_secs = 600

[upstreams]
sync_worker = "http://127.0.0.1:8082"
scoring_engine = "http://127.0.0.1:8083"
writeback_worker = "http://127.0.0.1:8084"
timeout_ms = 15000
max_body_bytes = 1048576
"#
);

/// Everything `auth-gateway` is configured with.
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
    /// Verifying and minting internal service tokens (auth-gateway holds the signing key).
    pub internal_jwt: InternalJwtSettings,
    /// Development mode.
    pub runtime: RuntimeSettings,
    /// The token vault's keys.
    pub vault: VaultSettings,
    /// How callers' JWTs are verified.
    pub caller_jwt: CallerJwtSettings,
    /// Services allowed to call `/internal/v1`, by name with `-` written `_`.
    pub internal_clients: BTreeMap<String, InternalClientSettings>,
    /// Where HubSpot is.
    pub hubspot: HubSpotSettings,
    /// The public OAuth app.
    pub oauth: OAuthSettings,
    /// The services `/api/v1` routes are forwarded to.
    pub upstreams: UpstreamSettings,
}

/// `[vault]`.
#[derive(Debug, Clone, Deserialize)]
pub struct VaultSettings {
    /// `id:base64key,id:base64key,...`, newest first: the first encrypts, all decrypt.
    pub keyring: SecretString,
    /// Secrets re-encrypted per transaction by `rotate-keys`.
    pub rotate_batch_size: i64,
}

/// `[caller_jwt]`: the key material comes from configuration only, never from a token.
#[derive(Debug, Clone, Deserialize)]
pub struct CallerJwtSettings {
    /// The only accepted `iss`.
    pub issuer: String,
    /// The only accepted `aud`.
    pub audience: String,
    /// `HS256`, `RS256`, `ES256` or `EdDSA`: the one algorithm accepted.
    pub algorithm: String,
    /// The HMAC secret for `HS256`.
    #[serde(default)]
    pub hs256_secret: Option<SecretString>,
    /// A PEM public key for `RS256`, `ES256` or `EdDSA`.
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// An OIDC provider's JWKS URL (fetched at start and refreshed in the background).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How often the JWKS is fetched again.
    pub jwks_refresh_secs: u64,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Name of the claim holding the user id.
    pub sub_claim: String,
    /// Name of the claim holding the organization (UUID).
    pub org_claim: String,
    /// Name of the claim holding the role (`owner`, `admin`, `member`).
    pub role_claim: String,
}

/// One `[internal_clients.<service>]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct InternalClientSettings {
    /// Lower-case hex SHA-256 of the service's secret.
    pub secret_sha256: String,
    /// Internal routes it may call: `access_token`, `webhook_secrets`, `portal_connections`.
    pub routes: Vec<String>,
}

/// `[hubspot]`.
#[derive(Debug, Clone, Deserialize)]
pub struct HubSpotSettings {
    /// API host (token endpoints live here too).
    pub api_base_url: String,
    /// Host of the consent page.
    pub oauth_base_url: String,
    /// Time allowed for one HubSpot request.
    pub request_timeout_ms: u64,
    /// OAuth access tokens are refreshed when they expire within this margin.
    pub refresh_margin_secs: u64,
    /// Tries at the token endpoint when it answers 429 or 5xx.
    pub token_endpoint_attempts: u32,
}

/// `[oauth]`: the public app.
#[derive(Debug, Clone, Deserialize)]
pub struct OAuthSettings {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: SecretString,
    /// Where HubSpot sends the user back (this service's callback route).
    pub redirect_uri: String,
    /// Scopes a connection must have.
    pub required_scopes: Vec<String>,
    /// Scopes asked for but not required.
    pub optional_scopes: Vec<String>,
    /// Where the callback sends the user afterwards, with `outcome` (and `connection_id`
    /// or `error`) appended.
    pub completion_redirect_url: String,
    /// How long a `state` is accepted.
    pub state_ttl_secs: i64,
}

/// `[upstreams]`.
#[derive(Debug, Clone, Deserialize)]
pub struct UpstreamSettings {
    /// sync-worker's base URL.
    pub sync_worker: String,
    /// scoring-engine's base URL.
    pub scoring_engine: String,
    /// writeback-worker's base URL.
    pub writeback_worker: String,
    /// Time allowed for a forwarded request (answer 504 after it).
    pub timeout_ms: u64,
    /// Largest request body forwarded (413 above it).
    pub max_body_bytes: usize,
}

impl Settings {
    /// Refuses the built-in development secrets unless `runtime.development` is true, naming
    /// each offending key and the setting.
    pub fn check_secrets(&self) -> anyhow::Result<()> {
        if self.runtime.development {
            return Ok(());
        }
        let mut offending: Vec<String> = self
            .internal_jwt
            .development_values()
            .iter()
            .filter(|(_, is_development)| *is_development)
            .map(|(name, _)| (*name).to_owned())
            .collect();
        if self.vault.keyring.expose_secret() == DEV_VAULT_KEYRING {
            offending.push("vault.keyring".to_owned());
        }
        if self
            .caller_jwt
            .hs256_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret() == DEV_CALLER_JWT_SECRET)
        {
            offending.push("caller_jwt.hs256_secret".to_owned());
        }
        if self.oauth.client_secret.expose_secret() == DEV_OAUTH_CLIENT_SECRET {
            offending.push("oauth.client_secret".to_owned());
        }
        for (key, client) in &self.internal_clients {
            if DEV_INTERNAL_CLIENT_SECRETS.iter().any(|(_, _, secret)| {
                crate::internal_auth::sha256_hex(secret) == client.secret_sha256
            }) {
                offending.push(format!("internal_clients.{key}.secret_sha256"));
            }
        }
        anyhow::ensure!(
            offending.is_empty(),
            "development secrets configured outside development mode: {} (set real values, or \
             runtime.development = true / HUBSCORE__RUNTIME__DEVELOPMENT=true on a developer's machine)",
            offending.join(", ")
        );
        Ok(())
    }
}
