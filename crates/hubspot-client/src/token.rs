//! Where the client gets its bearer token. Services plug in auth-gateway (which owns refresh
//! tokens); tests and private apps use a fixed token. Tokens never appear in `Debug` output.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::Mutex;

use crate::error::HubSpotError;
use crate::oauth::OAuthClient;

/// A bearer token. `Debug` prints only a short fingerprint so logs stay clean.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token string.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for the `Authorization` header only.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken(***{} chars)", self.0.len())
    }
}

/// Gives the client the current access token, and a fresh one when HubSpot rejected one.
/// Object-safe so clients can hold `Arc<dyn TokenSource>`.
pub trait TokenSource: Send + Sync {
    /// The token to use now.
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, HubSpotError>>;
    /// A fresh token after HubSpot answered 401 to `rejected`. Implementations should not
    /// refresh again if another caller already replaced `rejected`.
    fn refresh<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<AccessToken, HubSpotError>>;
}

/// A token that never changes: private-app tokens, and tests.
#[derive(Debug, Clone)]
pub struct StaticToken(AccessToken);

impl StaticToken {
    /// Always answers `token`.
    pub fn new(token: impl Into<String>) -> Self {
        Self(AccessToken::new(token))
    }
}

impl TokenSource for StaticToken {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, HubSpotError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }

    fn refresh<'a>(
        &'a self,
        _rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<AccessToken, HubSpotError>> {
        // Nothing fresher exists; the retry will see the same 401 and report it.
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// An OAuth token pair refreshed in-process with the app's credentials. For tools and tests;
/// services use auth-gateway, which stores refresh tokens encrypted and shares them.
pub struct RefreshingToken {
    oauth: OAuthClient,
    state: Mutex<(AccessToken, String)>,
}

impl RefreshingToken {
    /// Starts from a token pair obtained by a code exchange.
    pub fn new(oauth: OAuthClient, access_token: AccessToken, refresh_token: String) -> Arc<Self> {
        Arc::new(Self {
            oauth,
            state: Mutex::new((access_token, refresh_token)),
        })
    }
}

impl TokenSource for RefreshingToken {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, HubSpotError>> {
        Box::pin(async move { Ok(self.state.lock().await.0.clone()) })
    }

    fn refresh<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<AccessToken, HubSpotError>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            if &state.0 != rejected {
                return Ok(state.0.clone());
            }
            let response = self.oauth.refresh(&state.1).await?;
            if let Some(refresh_token) = response.refresh_token.clone() {
                state.1 = refresh_token;
            }
            state.0 = AccessToken::new(response.access_token.clone());
            Ok(state.0.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_show_in_debug_output() {
        let token = AccessToken::new("pat-na1-secret-value");
        let shown = format!("{token:?} {:?}", StaticToken::new("pat-na1-secret-value"));
        assert!(!shown.contains("secret"), "{shown}");
    }
}
