//! Where HubSpot lives and how patient the client is. Nothing here is hard-coded to
//! HubSpot's hosts except the documented defaults, so tests point everything at the simulator.

use std::time::Duration;

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

/// Exponential backoff with jitter for transient failures and burst 429s.
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
    /// How long to wait before retry number `retry` (1-based): the server's `Retry-After`
    /// when sent, else `base * 2^(retry-1)` capped, with "equal jitter" (half fixed, half
    /// random) so that many clients retrying at once spread out.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after;
        }
        let exp = self
            .base_delay_ms
            .saturating_mul(1u64 << retry.saturating_sub(1).min(20));
        let capped = exp.min(self.max_delay_ms);
        let half = capped / 2;
        let jitter = if half > 0 {
            rand::random_range(0..=half)
        } else {
            0
        };
        Duration::from_millis(half + jitter)
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
    fn backoff_grows_stays_capped_and_defers_to_retry_after() {
        let policy = RetryPolicy {
            max_retries: 5,
            base_delay_ms: 100,
            max_delay_ms: 1_000,
            max_retry_after_ms: 5_000,
        };
        for _ in 0..50 {
            let first = policy.delay(1, None).as_millis();
            assert!((50..=100).contains(&first), "{first}");
            let tenth = policy.delay(10, None).as_millis();
            assert!((500..=1_000).contains(&tenth), "{tenth}");
        }
        assert_eq!(
            policy.delay(3, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
