//! Private-app connections' webhook secrets: where they come from (auth-gateway's
//! internal API, behind the [`SecretSource`] trait) and the short-lived cache in front.
//!
//! The receiver holds no credentials of its own beyond the public app's secret: it asks
//! `GET /internal/v1/connections/{id}/webhook-secrets` (HTTP Basic with its service
//! credentials, see `docs/internal-api.md`), keeps the answer for a short TTL, and asks
//! again when a signature matches none of the cached secrets (the admin may just have
//! rotated it), at most once per `refresh_min_interval_ms` per connection so forged
//! requests cannot make it hammer the gateway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use domain::ids::ConnectionId;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::config::AuthGatewaySettings;

/// A connection's valid webhook secrets and its portal.
#[derive(Clone)]
pub struct ConnectionSecrets {
    /// The HubSpot portal the connection is for.
    pub portal_id: i64,
    /// The current secret first, then the previous one during a rotation.
    pub secrets: Vec<SecretString>,
}

impl std::fmt::Debug for ConnectionSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSecrets")
            .field("portal_id", &self.portal_id)
            .field("secrets", &format_args!("[{} hidden]", self.secrets.len()))
            .finish()
    }
}

/// Why a connection's secrets could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretLookupError {
    /// The gateway knows no such connection (or it has no webhook secret).
    #[error("unknown connection")]
    NotFound,
    /// The gateway is unreachable or failed; HubSpot should retry later.
    #[error("auth-gateway unavailable: {0}")]
    Unavailable(String),
}

/// Where a connection's webhook secrets come from.
pub trait SecretSource: Send + Sync + 'static {
    /// The secrets of `connection`, fetched fresh.
    fn fetch(
        &self,
        connection: ConnectionId,
    ) -> BoxFuture<'_, Result<ConnectionSecrets, SecretLookupError>>;
}

/// The gateway's answer (`docs/internal-api.md`).
#[derive(Deserialize)]
struct SecretsAnswer {
    portal_id: i64,
    secrets: Vec<String>,
}

/// [`SecretSource`] backed by auth-gateway's internal API.
pub struct GatewaySecretSource {
    http: reqwest::Client,
    base_url: String,
    service_name: String,
    service_secret: SecretString,
}

impl GatewaySecretSource {
    /// A source calling the gateway configured in `settings`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(settings: &AuthGatewaySettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .build()?;
        Ok(Self {
            http,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            service_name: settings.service_name.clone(),
            service_secret: settings.service_secret.clone(),
        })
    }
}

impl SecretSource for GatewaySecretSource {
    fn fetch(
        &self,
        connection: ConnectionId,
    ) -> BoxFuture<'_, Result<ConnectionSecrets, SecretLookupError>> {
        Box::pin(async move {
            let url = format!(
                "{}/internal/v1/connections/{connection}/webhook-secrets",
                self.base_url
            );
            let response = self
                .http
                .get(url)
                .basic_auth(
                    &self.service_name,
                    Some(self.service_secret.expose_secret()),
                )
                .send()
                .await
                .map_err(|e| {
                    SecretLookupError::Unavailable(format!("unreachable: {}", e.without_url()))
                })?;
            let status = response.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Err(SecretLookupError::NotFound);
            }
            if !status.is_success() {
                // 401/403 are our own misconfiguration; to HubSpot it is an outage either way.
                return Err(SecretLookupError::Unavailable(format!(
                    "auth-gateway answered {status}"
                )));
            }
            let answer: SecretsAnswer = response.json().await.map_err(|e| {
                SecretLookupError::Unavailable(format!("unreadable answer: {}", e.without_url()))
            })?;
            Ok(ConnectionSecrets {
                portal_id: answer.portal_id,
                secrets: answer.secrets.into_iter().map(SecretString::from).collect(),
            })
        })
    }
}

struct Entry {
    secrets: ConnectionSecrets,
    fetched_at: Instant,
}

/// A TTL cache in front of a [`SecretSource`].
#[derive(Clone)]
pub struct SecretCache {
    source: Arc<dyn SecretSource>,
    entries: Arc<Mutex<HashMap<ConnectionId, Entry>>>,
    ttl: Duration,
    refresh_min_interval: Duration,
}

impl SecretCache {
    /// A cache keeping answers for `ttl`, refreshing on a miss at most every
    /// `refresh_min_interval`.
    pub fn new(
        source: Arc<dyn SecretSource>,
        ttl: Duration,
        refresh_min_interval: Duration,
    ) -> Self {
        Self {
            source,
            entries: Arc::new(Mutex::new(HashMap::new())),
            ttl,
            refresh_min_interval,
        }
    }

    /// The secrets of `connection`, from the cache while fresh.
    ///
    /// # Errors
    /// [`SecretLookupError`] from the source.
    pub async fn get(
        &self,
        connection: ConnectionId,
    ) -> Result<ConnectionSecrets, SecretLookupError> {
        if let Some(secrets) = self.cached(connection, self.ttl) {
            return Ok(secrets);
        }
        self.fetch(connection).await
    }

    /// Fresh secrets after a signature matched none of the cached ones; `None` when the
    /// cached ones are younger than the refresh interval (nothing new to try).
    ///
    /// # Errors
    /// [`SecretLookupError`] from the source.
    pub async fn refresh(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<ConnectionSecrets>, SecretLookupError> {
        if self.cached(connection, self.refresh_min_interval).is_some() {
            return Ok(None);
        }
        self.fetch(connection).await.map(Some)
    }

    fn cached(&self, connection: ConnectionId, max_age: Duration) -> Option<ConnectionSecrets> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&connection)
            .filter(|e| e.fetched_at.elapsed() < max_age)
            .map(|e| e.secrets.clone())
    }

    async fn fetch(
        &self,
        connection: ConnectionId,
    ) -> Result<ConnectionSecrets, SecretLookupError> {
        let result = self.source.fetch(connection).await;
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(secrets) => {
                entries.insert(
                    connection,
                    Entry {
                        secrets: secrets.clone(),
                        fetched_at: Instant::now(),
                    },
                );
            }
            // A deleted connection must stop verifying at once.
            Err(SecretLookupError::NotFound) => {
                entries.remove(&connection);
            }
            Err(SecretLookupError::Unavailable(_)) => {}
        }
        result
    }
}
