//! The app-level developer API: calls made as the OAuth app with its developer API key
//! (`hapikey`), not as a portal. Today that is the app's timeline event templates, which every
//! portal that installed the app uses for its timeline events.
//!
//! HubSpot takes the key only in the query string, so it is in every request URL. It never
//! leaves this module in anything else: errors are built from the endpoint label, HubSpot's
//! answer and `reqwest` errors stripped of their URL, nothing here logs a URL, metrics are
//! labelled by endpoint only, and `Debug` prints `***` for the key.
//!
//! These calls are not portal calls, so they draw nothing from a portal's rate budget
//! ([`crate::PortalLimiter`]). They are retried like the portal calls (see the crate docs,
//! "Retries"): reads and deletes after 429, 5xx, 423, 477, lost connections and unreadable
//! answers; a create only after answers that say HubSpot did nothing (429, connection
//! refused), otherwise it fails with [`HubSpotError::OutcomeUnknown`]. A 401 is not retried:
//! unlike a portal's access token, the key is not refreshed.

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;

use crate::api::segment;
use crate::config::ClientConfig;
use crate::error::{HubSpotError, RateLimitPolicy, classify, parse_retry_after};
use crate::metrics::ClientMetrics;
use crate::types::{EventTemplate, NewEventTemplate, Page};

/// Calls made as the app with its developer API key (not as a portal).
#[derive(Clone)]
pub struct DeveloperClient {
    http: reqwest::Client,
    config: ClientConfig,
    app_id: u64,
    developer_api_key: SecretString,
    metrics: ClientMetrics,
}

impl fmt::Debug for DeveloperClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeveloperClient")
            .field("api_base_url", &self.config.api_base_url)
            .field("app_id", &self.app_id)
            .field("developer_api_key", &"***")
            .finish_non_exhaustive()
    }
}

/// One developer API call as the request loop sees it.
struct DevCall {
    /// Metrics label, e.g. `developer.event_templates.list`.
    endpoint: &'static str,
    method: Method,
    /// Path below the API base URL, starting with `/`.
    path: String,
    body: Option<Vec<u8>>,
    /// Safe to send twice (see [`crate::HubSpotClient`]'s `Call::idempotent`).
    idempotent: bool,
    /// A 404 after a resend of an attempt whose outcome was unknown means the first attempt
    /// did the work (deletes).
    gone_is_done: bool,
}

impl DevCall {
    fn get(endpoint: &'static str, path: String) -> Self {
        Self {
            endpoint,
            method: Method::GET,
            path,
            body: None,
            idempotent: true,
            gone_is_done: false,
        }
    }
}

impl DeveloperClient {
    /// A client for app `app_id` on the API host in `config`, authenticating with the app's
    /// developer API key. Retries follow `config.retry`.
    pub fn new(
        config: ClientConfig,
        app_id: u64,
        developer_api_key: SecretString,
    ) -> Result<Self, HubSpotError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .build()
            .map_err(HubSpotError::transport)?;
        Ok(Self {
            http,
            config,
            app_id,
            developer_api_key,
            metrics: ClientMetrics::unregistered(),
        })
    }

    /// Record into these series (`hubspot_requests_total` etc., with `developer.*` endpoint
    /// labels) instead of an unregistered set.
    pub fn with_metrics(mut self, metrics: ClientMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The app's id.
    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    fn templates_path(&self) -> String {
        // Only the v3 path exists: the date-versioned timeline is a different model.
        format!("/integrators/timeline/v3/{}/event-templates", self.app_id)
    }

    /// Every event template of the app.
    pub async fn list_event_templates(&self) -> Result<Vec<EventTemplate>, HubSpotError> {
        let call = DevCall::get("developer.event_templates.list", self.templates_path());
        let page: Page<EventTemplate> = self.execute(&call).await?;
        Ok(page.results)
    }

    /// One event template; [`HubSpotError::NotFound`] when the app has none with that id.
    pub async fn get_event_template(
        &self,
        template_id: &str,
    ) -> Result<EventTemplate, HubSpotError> {
        let path = format!("{}/{}", self.templates_path(), segment(template_id));
        self.execute(&DevCall::get("developer.event_templates.get", path))
            .await
    }

    /// Creates an event template. Not resent when HubSpot's answer leaves open whether it
    /// was created ([`HubSpotError::OutcomeUnknown`]): list the templates (by name) before
    /// creating it again. HubSpot allows 750 templates per app.
    pub async fn create_event_template(
        &self,
        template: &NewEventTemplate,
    ) -> Result<EventTemplate, HubSpotError> {
        let endpoint = "developer.event_templates.create";
        let body = serde_json::to_vec(template).map_err(|e| HubSpotError::Decode {
            endpoint,
            message: e.to_string(),
        })?;
        let call = DevCall {
            endpoint,
            method: Method::POST,
            path: self.templates_path(),
            body: Some(body),
            idempotent: false,
            gone_is_done: false,
        };
        self.execute(&call).await
    }

    /// Deletes an event template; [`HubSpotError::NotFound`] when the app has none with that
    /// id (unless an earlier attempt of this call, resent after an unclear answer, deleted it).
    pub async fn delete_event_template(&self, template_id: &str) -> Result<(), HubSpotError> {
        let call = DevCall {
            endpoint: "developer.event_templates.delete",
            method: Method::DELETE,
            path: format!("{}/{}", self.templates_path(), segment(template_id)),
            body: None,
            idempotent: true,
            gone_is_done: true,
        };
        self.execute(&call).await
    }

    /// Sends `call` with the key and decodes a 2xx body as `T` (an empty body as `null`).
    /// The same rules as the portal client's request loop, without a token refresh on 401
    /// and without a rate budget.
    async fn execute<T: DeserializeOwned>(&self, call: &DevCall) -> Result<T, HubSpotError> {
        let policy = &self.config.retry;
        let url = format!(
            "{}{}",
            self.config.api_base_url.trim_end_matches('/'),
            call.path
        );
        let mut backoff = policy.backoff();
        // Whether an attempt that HubSpot may have carried out was resent.
        let mut resent_unclear = false;
        loop {
            let mut request = self
                .http
                .request(call.method.clone(), &url)
                .query(&[("hapikey", self.developer_api_key.expose_secret())]);
            if let Some(body) = &call.body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    // A refused connection never reached HubSpot, so any call may go again;
                    // any other failure may have come after HubSpot acted on the request.
                    if !error.is_connect() && !call.idempotent {
                        return Err(HubSpotError::OutcomeUnknown {
                            operation: call.endpoint,
                            status: None,
                            retry_after: None,
                        });
                    }
                    let Some(wait) = backoff.next() else {
                        return Err(HubSpotError::transport(error));
                    };
                    resent_unclear |= !error.is_connect();
                    self.metrics.retry(call.endpoint, "transport");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            self.metrics.response(call.endpoint, status);
            let retry_after = parse_retry_after(
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
            );
            let body = match response.bytes().await {
                Ok(body) => Some(body),
                // An error status is still told by its status without its body.
                Err(_) if !(200..300).contains(&status) => None,
                Err(error) if call.idempotent => {
                    let Some(wait) = backoff.next() else {
                        return Err(HubSpotError::transport(error));
                    };
                    resent_unclear = true;
                    self.metrics.retry(call.endpoint, "transport");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(error) => {
                    // HubSpot did the work; only its answer was lost.
                    return Err(HubSpotError::Decode {
                        endpoint: call.endpoint,
                        message: format!(
                            "the response body could not be read: {}",
                            error.without_url()
                        ),
                    });
                }
            };
            let body = body.unwrap_or_default();
            if (200..300).contains(&status)
                || (status == 404 && call.gone_is_done && resent_unclear)
            {
                let text: &[u8] = if body.is_empty() || status == 404 {
                    b"null"
                } else {
                    &body
                };
                match serde_json::from_slice(text) {
                    Ok(value) => return Ok(value),
                    Err(error) if call.idempotent => {
                        let Some(wait) = backoff.next() else {
                            return Err(HubSpotError::Decode {
                                endpoint: call.endpoint,
                                message: error.to_string(),
                            });
                        };
                        tracing::warn!(endpoint = call.endpoint, %error, "undecodable HubSpot response, retrying");
                        self.metrics.retry(call.endpoint, "decode");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Err(error) => {
                        return Err(HubSpotError::Decode {
                            endpoint: call.endpoint,
                            message: error.to_string(),
                        });
                    }
                }
            }
            match classify(status, &body, retry_after) {
                HubSpotError::RateLimited {
                    policy: limit,
                    retry_after,
                } => {
                    // HubSpot processes nothing it answers 429, so every call may go again.
                    self.metrics.rate_limited(limit.as_str());
                    let too_long = retry_after
                        .is_some_and(|d| d > Duration::from_millis(policy.max_retry_after_ms));
                    let next = if too_long { None } else { backoff.next() };
                    let Some(wait) = next else {
                        return Err(HubSpotError::RateLimited {
                            policy: limit,
                            retry_after,
                        });
                    };
                    self.metrics.retry(call.endpoint, "rate_limited");
                    // No shared budget records the pause: wait at least as long as the
                    // limit's own window needs to move.
                    let floor = match limit {
                        RateLimitPolicy::Secondly => Duration::from_secs(1),
                        _ => Duration::from_secs(2),
                    };
                    tokio::time::sleep(retry_after.unwrap_or(wait).max(floor)).await;
                }
                HubSpotError::Transient {
                    status,
                    retry_after,
                } => {
                    // A 5xx may come after HubSpot acted on the request: sending a create
                    // again could create the template twice.
                    if !call.idempotent {
                        return Err(HubSpotError::OutcomeUnknown {
                            operation: call.endpoint,
                            status: Some(status),
                            retry_after,
                        });
                    }
                    let too_long = retry_after
                        .is_some_and(|d| d > Duration::from_millis(policy.max_retry_after_ms));
                    let next = if too_long { None } else { backoff.next() };
                    let Some(wait) = next else {
                        return Err(HubSpotError::Transient {
                            status,
                            retry_after,
                        });
                    };
                    resent_unclear = true;
                    self.metrics.retry(call.endpoint, "transient");
                    // 423 means a ~2 s lock: waiting less is a wasted request.
                    let floor = if status == 423 {
                        Duration::from_secs(2)
                    } else {
                        Duration::ZERO
                    };
                    tokio::time::sleep(retry_after.unwrap_or(wait).max(floor)).await;
                }
                // 401 included: a wrong key, or the key of another app; resending cannot help.
                other => return Err(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_key() {
        let client = DeveloperClient::new(
            ClientConfig::for_base_url("http://sim"),
            42,
            SecretString::from("k3y-s3cret"),
        )
        .unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("k3y-s3cret"), "{debug}");
        assert!(debug.contains("42"), "{debug}");
        assert_eq!(client.app_id(), 42);
    }
}
