//! Access tokens from auth-gateway's internal API, for the workers.
//!
//! Only auth-gateway holds HubSpot credentials and refreshes OAuth tokens. A worker asks it
//! for a connection's current access token with its own service credentials (HTTP Basic),
//! keeps the answer until shortly before it expires, and after HubSpot answered 401 asks
//! again naming the rejected token (by SHA-256, never the token itself), so the gateway
//! refreshes it once for every worker. The contract is in `docs/internal-api.md`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

use crate::error::HubSpotError;
use crate::token::{AccessToken, TokenSource};

/// How long before `expires_at` a cached token is no longer handed out.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Where and as whom a worker calls auth-gateway's internal API.
#[derive(Clone)]
pub struct GatewayCredentials {
    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// The calling service's name, e.g. `sync-worker`.
    pub service: String,
    /// The calling service's secret.
    pub secret: String,
}

impl std::fmt::Debug for GatewayCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayCredentials")
            .field("base_url", &self.base_url)
            .field("service", &self.service)
            .field("secret", &"***")
            .finish()
    }
}

/// A connection's access token, fetched from auth-gateway and cached until near expiry.
pub struct GatewayTokenSource {
    http: reqwest::Client,
    credentials: GatewayCredentials,
    connection_id: String,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    token: AccessToken,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct TokenRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_token_sha256: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, Default)]
struct ErrorAnswer {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

impl GatewayTokenSource {
    /// A source for `connection_id`, calling the gateway with `credentials`.
    pub fn new(
        http: reqwest::Client,
        credentials: GatewayCredentials,
        connection_id: impl Into<String>,
    ) -> Self {
        Self {
            http,
            credentials,
            connection_id: connection_id.into(),
            cached: Mutex::new(None),
        }
    }

    async fn fetch(&self, rejected: Option<&AccessToken>) -> Result<Cached, HubSpotError> {
        let url = format!(
            "{}/internal/v1/connections/{}/access-token",
            self.credentials.base_url.trim_end_matches('/'),
            self.connection_id
        );
        let body = TokenRequest {
            rejected_token_sha256: rejected.map(|t| hex_sha256(t.secret())),
        };
        let response = self
            .http
            .post(url)
            .basic_auth(&self.credentials.service, Some(&self.credentials.secret))
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                HubSpotError::TokenUnavailable(format!(
                    "auth-gateway unreachable: {}",
                    e.without_url()
                ))
            })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            HubSpotError::TokenUnavailable(format!(
                "auth-gateway answer unreadable: {}",
                e.without_url()
            ))
        })?;
        if status.is_success() {
            let answer: TokenAnswer =
                serde_json::from_slice(&bytes).map_err(|e| HubSpotError::Decode {
                    endpoint: "auth-gateway access-token",
                    message: e.to_string(),
                })?;
            return Ok(Cached {
                token: AccessToken::new(answer.access_token),
                expires_at: answer.expires_at,
            });
        }
        let error: ErrorAnswer = serde_json::from_slice(&bytes).unwrap_or_default();
        Err(match (status.as_u16(), error.error.as_str()) {
            (409, "reauth_required" | "disconnected") | (404, _) => HubSpotError::Unauthorized {
                expired: false,
                message: format!(
                    "connection {} cannot be used ({}): {}",
                    self.connection_id, error.error, error.message
                ),
            },
            (status, _) if status >= 500 => HubSpotError::Transient {
                status,
                retry_after: None,
            },
            (status, _) => HubSpotError::TokenUnavailable(format!(
                "auth-gateway answered {status} {}: {}",
                error.error, error.message
            )),
        })
    }
}

fn hex_sha256(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fresh(cached: &Cached) -> bool {
    match cached.expires_at {
        None => true,
        Some(at) => {
            let margin = chrono::Duration::from_std(EXPIRY_MARGIN).unwrap_or_default();
            Utc::now() + margin < at
        }
    }
}

impl TokenSource for GatewayTokenSource {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, HubSpotError>> {
        Box::pin(async move {
            // Held across the call so concurrent callers wait for one fetch, not each make one.
            let mut cached = self.cached.lock().await;
            if let Some(current) = cached.as_ref().filter(|c| fresh(c)) {
                return Ok(current.token.clone());
            }
            let fetched = self.fetch(None).await?;
            let token = fetched.token.clone();
            *cached = Some(fetched);
            Ok(token)
        })
    }

    fn refresh<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<AccessToken, HubSpotError>> {
        Box::pin(async move {
            let mut cached = self.cached.lock().await;
            if let Some(current) = cached.as_ref().filter(|c| &c.token != rejected && fresh(c)) {
                return Ok(current.token.clone());
            }
            let fetched = self.fetch(Some(rejected)).await?;
            let token = fetched.token.clone();
            *cached = Some(fetched);
            Ok(token)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_tokens_are_named_by_their_sha256_only() {
        let digest = hex_sha256("abc");
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn credentials_never_show_their_secret_in_debug_output() {
        let credentials = GatewayCredentials {
            base_url: "http://127.0.0.1:8080".into(),
            service: "sync-worker".into(),
            secret: "s3cr3t-value".into(),
        };
        assert!(!format!("{credentials:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_token_close_to_expiry_is_not_fresh() {
        let soon = Cached {
            token: AccessToken::new("t"),
            expires_at: Some(Utc::now() + chrono::Duration::seconds(30)),
        };
        let later = Cached {
            token: AccessToken::new("t"),
            expires_at: Some(Utc::now() + chrono::Duration::minutes(10)),
        };
        assert!(!fresh(&soon));
        assert!(fresh(&later));
    }
}
