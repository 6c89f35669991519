//! Where the client gets its bearer token. Services plug in auth-gateway (which owns refresh
//! tokens); tests and private apps use a fixed token. Tokens never appear in `Debug` output.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// After a failed refresh of a token that still works, how long to keep using it before
/// trying again (rather than one refresh request per API call).
const REFRESH_RETRY: Duration = Duration::from_secs(10);

/// An OAuth token pair refreshed in-process with the app's credentials. For tools and tests;
/// services use auth-gateway, which stores refresh tokens encrypted and shares them.
///
/// The access token is replaced ahead of its expiry (`expires_in`), [`ClientConfig`]'s
/// `token_refresh_margin_ms` before it (at most half its lifetime before it), so requests do
/// not go out with a token about to expire. Concurrent callers share one refresh: the first
/// one refreshes while the others wait for its result. If a refresh fails while the current
/// token is still valid, that token keeps being used and the refresh is tried again 10 s later.
///
/// [`ClientConfig`]: crate::ClientConfig
pub struct RefreshingToken {
    oauth: OAuthClient,
    margin: Duration,
    state: Mutex<TokenState>,
}

struct TokenState {
    access: AccessToken,
    refresh_token: String,
    /// When HubSpot stops accepting `access` (counted from before it was asked for).
    expires_at: Instant,
    /// When to replace `access`.
    refresh_at: Instant,
}

impl TokenState {
    fn new(
        access: AccessToken,
        refresh_token: String,
        requested_at: Instant,
        expires_in_secs: i64,
        margin: Duration,
    ) -> Self {
        let lifetime = Duration::from_secs(u64::try_from(expires_in_secs).unwrap_or(0));
        let expires_at = requested_at + lifetime;
        Self {
            access,
            refresh_token,
            expires_at,
            refresh_at: expires_at - refresh_margin(lifetime, margin),
        }
    }
}

/// How long before expiry a token of `lifetime` is replaced: `margin`, but at most half the
/// lifetime, so that a margin longer than a (test) token's life does not refresh on every call.
fn refresh_margin(lifetime: Duration, margin: Duration) -> Duration {
    margin.min(lifetime / 2)
}

impl RefreshingToken {
    /// Starts from a token pair obtained by a code exchange (or a refresh) just now:
    /// `expires_in_secs` is the answer's `expires_in`. The refresh margin is the OAuth
    /// client's `token_refresh_margin_ms`.
    pub fn new(
        oauth: OAuthClient,
        access_token: AccessToken,
        refresh_token: String,
        expires_in_secs: i64,
    ) -> Arc<Self> {
        let margin = Duration::from_millis(oauth.config().token_refresh_margin_ms);
        Arc::new(Self {
            oauth,
            margin,
            state: Mutex::new(TokenState::new(
                access_token,
                refresh_token,
                Instant::now(),
                expires_in_secs,
                margin,
            )),
        })
    }

    /// Replaces the access token (the caller holds the lock, so concurrent callers wait for
    /// this one refresh instead of each sending their own).
    async fn renew(&self, state: &mut TokenState) -> Result<(), HubSpotError> {
        let requested_at = Instant::now();
        let response = self.oauth.refresh(&state.refresh_token).await?;
        // HubSpot may hand back a new refresh token; keep whatever comes back.
        let refresh_token = response
            .refresh_token
            .clone()
            .unwrap_or_else(|| state.refresh_token.clone());
        *state = TokenState::new(
            AccessToken::new(response.access_token.clone()),
            refresh_token,
            requested_at,
            response.expires_in,
            self.margin,
        );
        Ok(())
    }
}

impl TokenSource for RefreshingToken {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, HubSpotError>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let now = Instant::now();
            if now >= state.refresh_at
                && let Err(error) = self.renew(&mut state).await
            {
                if now >= state.expires_at {
                    return Err(error);
                }
                // The current token still works: use it, and try again a little later.
                tracing::warn!(%error, "could not refresh the HubSpot access token ahead of its expiry");
                state.refresh_at = now + REFRESH_RETRY;
            }
            Ok(state.access.clone())
        })
    }

    fn refresh<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<AccessToken, HubSpotError>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            if &state.access != rejected {
                return Ok(state.access.clone());
            }
            self.renew(&mut state).await?;
            Ok(state.access.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_replaced_the_margin_before_expiry_or_halfway_through_short_lives() {
        let five_minutes = Duration::from_secs(300);
        assert_eq!(
            refresh_margin(Duration::from_secs(1800), five_minutes),
            five_minutes
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(4), five_minutes),
            Duration::from_secs(2)
        );
        let now = Instant::now();
        let state = TokenState::new(AccessToken::new("a"), "r".into(), now, 1800, five_minutes);
        assert_eq!(state.expires_at - now, Duration::from_secs(1800));
        assert_eq!(state.refresh_at - now, Duration::from_secs(1500));
        let odd = TokenState::new(AccessToken::new("a"), "r".into(), now, -5, five_minutes);
        assert_eq!(
            (odd.expires_at, odd.refresh_at),
            (now, now),
            "negative means expired"
        );
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let token = AccessToken::new("pat-na1-secret-value");
        let shown = format!("{token:?} {:?}", StaticToken::new("pat-na1-secret-value"));
        assert!(!shown.contains("secret"), "{shown}");
    }
}
