//! OAuth 2.0 against HubSpot: the consent URL, code exchange, refresh, introspection and
//! revocation. Not portal-bound, so not rate-budgeted. Tokens travel only in form bodies,
//! never in URLs, so they cannot leak into access logs or error texts.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ClientConfig;
use crate::error::{HubSpotError, classify, parse_retry_after};

/// The app's OAuth credentials.
#[derive(Clone)]
pub struct OAuthApp {
    /// Public client id.
    pub client_id: String,
    /// Client secret (also signs webhooks). Never logged.
    pub client_secret: String,
    /// Where HubSpot sends the user back with `?code=`.
    pub redirect_uri: String,
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// A token endpoint answer.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The bearer token (30 minutes).
    pub access_token: String,
    /// The long-lived refresh token (absent for client credentials). Store what comes back.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// `bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// The portal the token is for.
    #[serde(default)]
    pub hub_id: Option<i64>,
    /// The installing user.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// Granted scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("hub_id", &self.hub_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// What HubSpot knows about a token (v3 introspection).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct TokenInfo {
    /// Still usable.
    pub active: bool,
    /// Portal id.
    pub hub_id: Option<i64>,
    /// User id.
    pub user_id: Option<i64>,
    /// User email.
    pub user: Option<String>,
    /// Portal domain.
    pub hub_domain: Option<String>,
    /// App id.
    pub app_id: Option<i64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Seconds left (access tokens).
    pub expires_in: Option<i64>,
    /// `access_token` or `refresh_token`.
    pub token_use: Option<String>,
}

/// OAuth calls for one app.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    config: ClientConfig,
    app: OAuthApp,
}

impl OAuthClient {
    /// A client for `app` talking to the hosts in `config`.
    pub fn new(config: ClientConfig, app: OAuthApp) -> Result<Self, HubSpotError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .build()
            .map_err(HubSpotError::transport)?;
        Ok(Self { http, config, app })
    }

    /// The hosts and settings it was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The consent page URL: scopes space-separated as HubSpot's SDKs send them.
    pub fn authorize_url(
        &self,
        scopes: &[&str],
        optional_scopes: &[&str],
        state: Option<&str>,
    ) -> String {
        let mut url = format!(
            "{}/oauth/authorize",
            self.config.oauth_base_url.trim_end_matches('/')
        );
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("client_id", &self.app.client_id);
        query.append_pair("redirect_uri", &self.app.redirect_uri);
        query.append_pair("scope", &scopes.join(" "));
        if !optional_scopes.is_empty() {
            query.append_pair("optional_scope", &optional_scopes.join(" "));
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        // form_urlencoded writes spaces as '+'; HubSpot's SDKs use RFC 3986 (%20).
        url.push('?');
        url.push_str(&query.finish().replace('+', "%20"));
        url
    }

    fn token_path(&self) -> String {
        let version = if self.config.legacy_paths() {
            "v3"
        } else {
            self.config.api_version_segment.as_str()
        };
        format!(
            "{}/oauth/{version}/token",
            self.config.api_base_url.trim_end_matches('/')
        )
    }

    /// Exchanges the `code` from the redirect for a token pair.
    pub async fn exchange_code(&self, code: &str) -> Result<TokenResponse, HubSpotError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.app.redirect_uri),
            ("client_id", &self.app.client_id),
            ("client_secret", &self.app.client_secret),
        ];
        self.post_form(&self.token_path(), &form).await
    }

    /// A new access token from a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, HubSpotError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &self.app.client_id),
            ("client_secret", &self.app.client_secret),
        ];
        self.post_form(&self.token_path(), &form).await
    }

    /// Metadata of an access or refresh token (`token_type_hint` = `access_token` | `refresh_token`).
    pub async fn token_info(
        &self,
        token: &str,
        token_type_hint: &str,
    ) -> Result<TokenInfo, HubSpotError> {
        let url = format!(
            "{}/oauth/v3/token/introspect",
            self.config.api_base_url.trim_end_matches('/')
        );
        let form = [
            ("client_id", self.app.client_id.as_str()),
            ("client_secret", &self.app.client_secret),
            ("token_type_hint", token_type_hint),
            ("token", token),
        ];
        self.post_form(&url, &form).await
    }

    /// Revokes a refresh token (access tokens minted from it live until they expire).
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), HubSpotError> {
        let url = format!(
            "{}/oauth/v3/token/revoke",
            self.config.api_base_url.trim_end_matches('/')
        );
        let form = [
            ("client_id", self.app.client_id.as_str()),
            ("client_secret", &self.app.client_secret),
            ("token_type_hint", "refresh_token"),
            ("token", refresh_token),
        ];
        let response = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(HubSpotError::transport)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(());
        }
        let retry_after = parse_retry_after(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        let body = response.bytes().await.map_err(HubSpotError::transport)?;
        Err(classify(status, &body, retry_after))
    }

    async fn post_form<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<T, HubSpotError> {
        let response = self
            .http
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(HubSpotError::transport)?;
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        let body = response.bytes().await.map_err(HubSpotError::transport)?;
        if !(200..300).contains(&status) {
            return Err(classify(status, &body, retry_after));
        }
        serde_json::from_slice(&body).map_err(|e| HubSpotError::Decode {
            endpoint: "oauth",
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_urls_join_scopes_with_encoded_spaces() {
        let app = OAuthApp {
            client_id: "cid".into(),
            client_secret: "s3cret".into(),
            redirect_uri: "https://h.example/cb?x=1".into(),
        };
        let client = OAuthClient::new(ClientConfig::for_base_url("http://sim"), app).unwrap();
        let url = client.authorize_url(&["oauth", "crm.objects.contacts.read"], &[], Some("st"));
        assert_eq!(
            url,
            "http://sim/oauth/authorize?client_id=cid&redirect_uri=https%3A%2F%2Fh.example%2Fcb%3Fx%3D1&scope=oauth%20crm.objects.contacts.read&state=st"
        );
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
