//! The gateway's calls to HubSpot: validating a credential (account details), live checks,
//! and the OAuth token endpoint (exchange, refresh, revoke) with retries on 429 and 5xx.
//! Tokens travel only in headers and form bodies; errors never carry them.

use std::sync::Arc;
use std::time::Duration;

use hubspot_client::AccountDetails;
use hubspot_client::{
    ClientConfig, HubSpotClient, HubSpotError, OAuthApp, OAuthClient, StaticToken,
};
use secrecy::ExposeSecret as _;

use crate::config::{HubSpotSettings, OAuthSettings};
use crate::error::ApiError;

/// How the gateway reaches HubSpot.
#[derive(Debug, Clone)]
pub struct HubSpot {
    config: ClientConfig,
    oauth: OAuthClient,
    token_attempts: u32,
}

impl HubSpot {
    /// From `[hubspot]` and `[oauth]`.
    pub fn new(settings: &HubSpotSettings, oauth: &OAuthSettings) -> anyhow::Result<Self> {
        let mut config = ClientConfig::for_base_url(&settings.api_base_url);
        config.oauth_base_url = settings.oauth_base_url.clone();
        config.request_timeout_ms = settings.request_timeout_ms;
        // A person waits for validation: fail fast instead of backing off for long.
        config.retry.max_retries = 1;
        let app = OAuthApp {
            client_id: oauth.client_id.clone(),
            client_secret: oauth.client_secret.expose_secret().to_owned(),
            redirect_uri: oauth.redirect_uri.clone(),
        };
        let oauth = OAuthClient::new(config.clone(), app)?;
        Ok(Self {
            config,
            oauth,
            token_attempts: settings.token_endpoint_attempts.max(1),
        })
    }

    /// A client calling HubSpot with `token`.
    pub fn client(&self, token: &str) -> Result<HubSpotClient, ApiError> {
        HubSpotClient::builder(self.config.clone(), Arc::new(StaticToken::new(token)))
            .build()
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("building a client")))
    }

    /// Checks `token` against HubSpot and reads the portal's details.
    pub async fn account_details(&self, token: &str) -> Result<AccountDetails, ApiError> {
        self.client(token)?
            .account_details()
            .await
            .map_err(credential_error)
    }

    /// A private app's tier and whether it bought the API limit increase, read from its
    /// daily quota (250,000 starter, 625,000 professional, 1,000,000 enterprise, plus
    /// 1,000,000 per increase). `None` when the quota cannot be read.
    pub async fn private_app_tier(&self, token: &str) -> Option<(&'static str, bool)> {
        let usage = match self.client(token).ok()?.daily_usage().await {
            Ok(usage) => usage,
            Err(error) => {
                tracing::warn!(error = %error, "could not read the private app's daily quota");
                return None;
            }
        };
        tier_of_daily_limit(usage.first()?.usage_limit?)
    }

    /// The consent page URL.
    pub fn authorize_url(&self, required: &[String], optional: &[String], state: &str) -> String {
        let required: Vec<&str> = required.iter().map(String::as_str).collect();
        let optional: Vec<&str> = optional.iter().map(String::as_str).collect();
        self.oauth.authorize_url(&required, &optional, Some(state))
    }

    /// Exchanges an authorization code (not retried: codes are single-use).
    pub async fn exchange_code(
        &self,
        code: &str,
    ) -> Result<hubspot_client::TokenResponse, HubSpotError> {
        self.oauth.exchange_code(code).await
    }

    /// A new access token from `refresh_token`, retrying 429s, 5xx and transport errors.
    pub async fn refresh(
        &self,
        refresh_token: &str,
    ) -> Result<hubspot_client::TokenResponse, HubSpotError> {
        let mut attempt = 1;
        loop {
            match self.oauth.refresh(refresh_token).await {
                Err(error) if error.is_retryable() && attempt < self.token_attempts => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Metadata of an access token: portal and granted scopes.
    pub async fn token_info(
        &self,
        access_token: &str,
    ) -> Result<hubspot_client::TokenInfo, HubSpotError> {
        self.oauth.token_info(access_token, "access_token").await
    }

    /// Revokes a refresh token.
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), HubSpotError> {
        self.oauth.revoke(refresh_token).await
    }
}

/// Maps a failure to validate a credential to what the caller sees.
pub fn credential_error(error: HubSpotError) -> ApiError {
    match error {
        HubSpotError::Unauthorized { .. } => {
            ApiError::InvalidCredential("HubSpot refused the access token".to_owned())
        }
        HubSpotError::MissingScopes { required } => ApiError::MissingScopes(format!(
            "the token lacks the scopes {}",
            required.join(", ")
        )),
        HubSpotError::Forbidden { .. } => {
            ApiError::InvalidCredential("HubSpot refused the call with this token".to_owned())
        }
        other if other.is_retryable() => {
            tracing::warn!(error = %other, "HubSpot unavailable while validating a credential");
            ApiError::HubSpotUnavailable("HubSpot did not answer; try again later".to_owned())
        }
        other => {
            tracing::warn!(error = %other, "unexpected HubSpot answer while validating a credential");
            ApiError::HubSpotUnavailable(
                "HubSpot gave an unexpected answer; try again later".to_owned(),
            )
        }
    }
}

/// The tier and API-limit increase a private app's daily quota implies.
pub fn tier_of_daily_limit(limit: u64) -> Option<(&'static str, bool)> {
    match (limit % 1_000_000, limit / 1_000_000) {
        (250_000, increases) => Some(("starter", increases > 0)),
        (625_000, increases) => Some(("professional", increases > 0)),
        (0, millions) if millions >= 1 => Some(("enterprise", millions > 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::tier_of_daily_limit;

    #[test]
    fn the_daily_quota_names_the_tier_and_the_limit_increase() {
        assert_eq!(tier_of_daily_limit(250_000), Some(("starter", false)));
        assert_eq!(tier_of_daily_limit(625_000), Some(("professional", false)));
        assert_eq!(tier_of_daily_limit(1_000_000), Some(("enterprise", false)));
        assert_eq!(tier_of_daily_limit(1_250_000), Some(("starter", true)));
        assert_eq!(tier_of_daily_limit(1_625_000), Some(("professional", true)));
        assert_eq!(tier_of_daily_limit(2_000_000), Some(("enterprise", true)));
        assert_eq!(tier_of_daily_limit(123), None);
    }
}
