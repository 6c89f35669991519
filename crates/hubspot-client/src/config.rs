//! Where HubSpot lives and how patient the client is. Nothing here is hard-coded to
//! HubSpot's hosts except the documented defaults, so tests point everything at the simulator.

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use serde::Deserialize;

/// Connection settings for one [`crate::HubSpotClient`] or [`crate::OAuthClient`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClientConfig {
    /// API host, e.g. `https://api.hubapi.com` (no trailing slash needed).
    pub api_base_url: String,
    /// Host serving the user-facing consent page, e.g. `https://app.hubspot.com`.
    /// Token endpoints live on the API host, as HubSpot documents them.
    pub oauth_base_url: String,
    /// `v3` for the legacy path family (`/crm/v3/...`, associations on `v4`) or a
    /// date version such as `2026-03` (`/crm/objects/2026-03/...`).
    pub api_version_segment: String,
    /// Time allowed to open a connection.
    pub connect_timeout_ms: u64,
    /// Time allowed for one whole request, body included.
    pub request_timeout_ms: u64,
    /// When and how often failed requests are tried again.
    pub retry: RetryPolicy,
    /// How long before an OAuth access token expires [`crate::RefreshingToken`] replaces it
    /// (at most half the token's lifetime), so that no request goes out with a token about
    /// to expire and is answered 401.
    pub token_refresh_margin_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            api_base_url: "https://api.hubapi.com".to_owned(),
            oauth_base_url: "https://app.hubspot.com".to_owned(),
            api_version_segment: "v3".to_owned(),
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            retry: RetryPolicy::default(),
            token_refresh_margin_ms: 300_000,
        }
    }
}

impl ClientConfig {
    /// The defaults with both hosts pointed at `base_url` (the simulator serves everything).
    pub fn for_base_url(base_url: &str) -> Self {
        let base = base_url.trim_end_matches('/').to_owned();
        Self {
            api_base_url: base.clone(),
            oauth_base_url: base,
            ..Self::default()
        }
    }

    /// True when paths use the legacy `v3`/`v4` family rather than a date version.
    pub(crate) fn legacy_paths(&self) -> bool {
        self.api_version_segment.starts_with('v')
    }

    /// A path in one API family: `legacy` (e.g. `/crm/v3/objects`) in legacy mode, else
    /// `dated_prefix/<segment>` (e.g. `/crm/objects/2026-03`).
    pub(crate) fn family(&self, legacy: &str, dated_prefix: &str) -> String {
        if self.legacy_paths() {
            legacy.to_owned()
        } else {
            format!("{dated_prefix}/{}", self.api_version_segment)
        }
    }
}

/// Exponential backoff with jitter for transient failures and burst 429s, computed by the
/// `backon` crate.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Attempts after the first one; 0 disables retries.
    pub max_retries: u32,
    /// First backoff; doubles on each retry.
    pub base_delay_ms: u64,
    /// Upper bound on one backoff.
    pub max_delay_ms: u64,
    /// A `Retry-After` longer than this (477 can say hours) is returned to the caller
    /// instead of being slept through.
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            base_delay_ms: 200,
            max_delay_ms: 10_000,
            max_retry_after_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// The waits before each retry of one call, `max_retries` of them: retry `n` (1-based)
    /// waits `base * 2^(n-1)`, capped at `max_delay_ms`, with "equal jitter" (half of it fixed,
    /// half random) so that many clients retrying at once spread out. A server's
    /// `Retry-After` replaces the wait but still uses up one retry.
    pub fn backoff(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let base = Duration::from_millis(self.base_delay_ms);
        let cap = Duration::from_millis(self.max_delay_ms.max(self.base_delay_ms));
        // backon's jitter adds up to 100 % of the delay, so halving both bounds gives
        // delays in [d/2, d): equal jitter.
        ExponentialBuilder::new()
            .with_min_delay(base / 2)
            .with_max_delay(cap / 2)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(usize::try_from(self.max_retries).unwrap_or(usize::MAX))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_versions_move_the_segment_behind_the_family_name() {
        let mut config = ClientConfig::for_base_url("http://sim/");
        assert_eq!(config.api_base_url, "http://sim");
        assert_eq!(
            config.family("/crm/v3/objects", "/crm/objects"),
            "/crm/v3/objects"
        );
        config.api_version_segment = "2026-03".to_owned();
        assert_eq!(
            config.family("/crm/v3/objects", "/crm/objects"),
            "/crm/objects/2026-03"
        );
    }

    #[test]
    fn backoff_grows_stays_capped_and_ends_after_max_retries() {
        let policy = RetryPolicy {
            max_retries: 10,
            base_delay_ms: 100,
            max_delay_ms: 1_000,
            max_retry_after_ms: 5_000,
        };
        for _ in 0..50 {
            let delays: Vec<u128> = policy.backoff().map(|d| d.as_millis()).collect();
            assert_eq!(delays.len(), 10, "{delays:?}");
            assert!((50..=100).contains(&delays[0]), "{delays:?}");
            assert!((100..=200).contains(&delays[1]), "{delays:?}");
            assert!((500..=1_000).contains(&delays[9]), "{delays:?}");
        }
        let none = RetryPolicy {
            max_retries: 0,
            ..policy
        };
        assert_eq!(none.backoff().count(), 0);
    }
}
