//! The request loop every typed call goes through: budget, bearer token (or, for the app's
//! developer API, the developer key), send, classify, retry. It is the only place that talks
//! HTTP to the API host.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;

use crate::budget::{BudgetKind, PortalLimiter};
use crate::config::ClientConfig;
use crate::error::{HubSpotError, RateLimitPolicy, classify, parse_retry_after};
use crate::metrics::ClientMetrics;
use crate::token::{AccessToken, TokenSource};

/// A typed HubSpot client for one portal. Cheap to clone; clones share the limiter.
#[derive(Clone)]
pub struct HubSpotClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    auth: Auth,
    limiter: Option<Arc<PortalLimiter>>,
    metrics: ClientMetrics,
}

/// How the client authenticates.
#[derive(Clone)]
enum Auth {
    /// As a portal: its access token as the bearer, refreshed once on a 401.
    Token(Arc<dyn TokenSource>),
    /// As the OAuth app: its developer API key, which HubSpot takes only as the `hapikey`
    /// query parameter. The URL then carries the key, so nothing here ever shows a URL: errors
    /// keep only the endpoint label and `reqwest` errors without their URL.
    DeveloperKey(SecretString),
}

/// Builds a [`HubSpotClient`].
pub struct ClientBuilder {
    config: ClientConfig,
    tokens: Arc<dyn TokenSource>,
    limiter: Option<Arc<PortalLimiter>>,
    metrics: Option<ClientMetrics>,
}

impl ClientBuilder {
    /// Draw every request from this portal budget. Without one the client only retries,
    /// which is fine for one-off tools but not for services.
    pub fn limiter(mut self, limiter: Arc<PortalLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Record into these series (otherwise into an unregistered set).
    pub fn metrics(mut self, metrics: ClientMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The client.
    pub fn build(self) -> Result<HubSpotClient, HubSpotError> {
        HubSpotClient::with_auth(
            self.config,
            Auth::Token(self.tokens),
            self.limiter,
            self.metrics,
        )
    }
}

/// One API call as the request loop sees it.
pub(crate) struct Call {
    /// Low-cardinality label for metrics, e.g. `objects.list`.
    pub endpoint: &'static str,
    pub method: Method,
    /// Path below the API base URL, starting with `/`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub kind: BudgetKind,
    /// Safe to send twice: reads, updates that set the same values again, upserts by a
    /// unique property. Only these are resent when HubSpot may have acted on the request
    /// (5xx, 423, 477, a connection lost after sending, an unreadable answer); every call is
    /// resent after answers that say HubSpot did nothing (429, one 401, connection refused).
    pub idempotent: bool,
    /// A 404 after this call was resent following an unclear answer means the first attempt
    /// did the work (deletes).
    pub gone_is_done: bool,
}

impl Call {
    pub(crate) fn get(endpoint: &'static str, path: String) -> Self {
        Self {
            endpoint,
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
            kind: BudgetKind::Burst,
            idempotent: true,
            gone_is_done: false,
        }
    }

    pub(crate) fn post<B: serde::Serialize>(
        endpoint: &'static str,
        path: String,
        body: &B,
    ) -> Result<Self, HubSpotError> {
        let body = serde_json::to_vec(body).map_err(|e| HubSpotError::Decode {
            endpoint,
            message: e.to_string(),
        })?;
        Ok(Self {
            endpoint,
            method: Method::POST,
            path,
            query: Vec::new(),
            body: Some(body),
            kind: BudgetKind::Burst,
            idempotent: false,
            gone_is_done: false,
        })
    }

    pub(crate) fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    pub(crate) fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// A delete: idempotent, and a 404 after a resend of an unclear attempt is success.
    pub(crate) fn delete(mut self) -> Self {
        self.method = Method::DELETE;
        self.idempotent = true;
        self.gone_is_done = true;
        self
    }

    pub(crate) fn search(mut self) -> Self {
        self.kind = BudgetKind::Search;
        self.idempotent = true;
        self
    }

    pub(crate) fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl HubSpotClient {
    /// Starts a client for the hosts in `config`, authenticating with `tokens`.
    pub fn builder(config: ClientConfig, tokens: Arc<dyn TokenSource>) -> ClientBuilder {
        ClientBuilder {
            config,
            tokens,
            limiter: None,
            metrics: None,
        }
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A client calling as the OAuth app with its developer API key (no portal, no rate
    /// budget, no token refresh): see [`crate::DeveloperClient`].
    pub(crate) fn for_developer_key(
        config: ClientConfig,
        key: SecretString,
    ) -> Result<HubSpotClient, HubSpotError> {
        Self::with_auth(config, Auth::DeveloperKey(key), None, None)
    }

    /// The same client recording into `metrics` (the HTTP connection pool is shared).
    pub(crate) fn with_metrics(&self, metrics: ClientMetrics) -> HubSpotClient {
        let inner = &*self.inner;
        HubSpotClient {
            inner: Arc::new(Inner {
                http: inner.http.clone(),
                config: inner.config.clone(),
                auth: inner.auth.clone(),
                limiter: inner.limiter.clone(),
                metrics,
            }),
        }
    }

    fn with_auth(
        config: ClientConfig,
        auth: Auth,
        limiter: Option<Arc<PortalLimiter>>,
        metrics: Option<ClientMetrics>,
    ) -> Result<HubSpotClient, HubSpotError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .build()
            .map_err(HubSpotError::transport)?;
        Ok(HubSpotClient {
            inner: Arc::new(Inner {
                http,
                config,
                auth,
                limiter,
                metrics: metrics.unwrap_or_else(ClientMetrics::unregistered),
            }),
        })
    }

    /// The limiter, when the client has one.
    pub fn limiter(&self) -> Option<&Arc<PortalLimiter>> {
        self.inner.limiter.as_ref()
    }

    /// Sends `call` and decodes a 2xx body as `T` (an empty body decodes as JSON `null`).
    /// Returns the status too, since 207 means partial success.
    ///
    /// What is retried, and why, is described in the crate docs ("Retries"): everything HubSpot
    /// certainly did not process (429, 401 once, connection refused), and the rest only for
    /// calls that are safe to send twice (`call.idempotent`).
    pub(crate) async fn execute<T: DeserializeOwned>(
        &self,
        call: &Call,
    ) -> Result<(u16, T), HubSpotError> {
        let inner = &*self.inner;
        let policy = &inner.config.retry;
        let url = format!(
            "{}{}",
            inner.config.api_base_url.trim_end_matches('/'),
            call.path
        );
        let mut backoff = policy.backoff();
        let mut refreshed: Option<AccessToken> = None;
        let mut token_was_refreshed = false;
        // Whether an attempt that HubSpot may have carried out was sent again.
        let mut resent_unclear = false;
        loop {
            // Asked on every attempt: a source that refreshes ahead of expiry hands a retry
            // that waited a long Retry-After a token that is still good.
            let token = match (&inner.auth, refreshed.take()) {
                (Auth::Token(_), Some(token)) => Some(token),
                (Auth::Token(tokens), None) => Some(tokens.access_token().await?),
                (Auth::DeveloperKey(_), _) => None,
            };
            if let Some(limiter) = &inner.limiter {
                limiter.acquire(call.kind, &inner.metrics).await?;
            }
            let mut request = inner.http.request(call.method.clone(), &url);
            if let Some(token) = &token {
                request = request.bearer_auth(token.secret());
            }
            if let Auth::DeveloperKey(key) = &inner.auth {
                request = request.query(&[("hapikey", key.expose_secret())]);
            }
            if !call.query.is_empty() {
                request = request.query(&call.query);
            }
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
                    inner.metrics.retry(call.endpoint, "transport");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            inner.metrics.response(call.endpoint, status);
            self.observe_headers(response.headers());
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
                    inner.metrics.retry(call.endpoint, "transport");
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
                    Ok(value) => return Ok((status, value)),
                    Err(error) if call.idempotent => {
                        let Some(wait) = backoff.next() else {
                            return Err(HubSpotError::Decode {
                                endpoint: call.endpoint,
                                message: error.to_string(),
                            });
                        };
                        tracing::warn!(endpoint = call.endpoint, %error, "undecodable HubSpot response, retrying");
                        inner.metrics.retry(call.endpoint, "decode");
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
                // A developer key is not refreshed: a 401 is a wrong key, or another app's.
                HubSpotError::Unauthorized { .. } if !token_was_refreshed && token.is_some() => {
                    // Once only: a second 401 with a fresh token means revoked, not expired.
                    // HubSpot processes nothing it answers 401, so every call may go again.
                    token_was_refreshed = true;
                    inner.metrics.retry(call.endpoint, "unauthorized");
                    if let (Auth::Token(tokens), Some(token)) = (&inner.auth, &token) {
                        refreshed = Some(tokens.refresh(token).await?);
                    }
                }
                HubSpotError::RateLimited {
                    policy: limit,
                    retry_after,
                } => {
                    // HubSpot processes nothing it answers 429, so every call may go again.
                    inner.metrics.rate_limited(limit.as_str());
                    if let Some(limiter) = &inner.limiter
                        && let Err(error) = limiter.rate_limited(&limit, retry_after).await
                    {
                        tracing::warn!(%error, "could not record the 429 in the shared budget");
                    }
                    // A Retry-After past the policy's patience goes to the caller, as for
                    // transient errors, rather than holding the call (and its worker) for hours.
                    let too_long = retry_after
                        .is_some_and(|d| d > Duration::from_millis(policy.max_retry_after_ms));
                    let next = if too_long { None } else { backoff.next() };
                    let Some(wait) = next else {
                        return Err(HubSpotError::RateLimited {
                            policy: limit,
                            retry_after,
                        });
                    };
                    inner.metrics.retry(call.endpoint, "rate_limited");
                    // With a shared budget the pause recorded above does the waiting; a short
                    // jittered sleep keeps retries from lining up. Without one, wait at least
                    // as long as the limit's own window needs to move.
                    let floor = match (&inner.limiter, &limit) {
                        (Some(_), _) => Duration::ZERO,
                        (None, RateLimitPolicy::Secondly) => Duration::from_secs(1),
                        (None, _) => Duration::from_secs(2),
                    };
                    tokio::time::sleep(retry_after.unwrap_or(wait).max(floor)).await;
                }
                HubSpotError::DailyQuotaExhausted { .. } => {
                    inner.metrics.rate_limited(RateLimitPolicy::Daily.as_str());
                    let until = match &inner.limiter {
                        Some(limiter) => limiter
                            .rate_limited(&RateLimitPolicy::Daily, None)
                            .await
                            .unwrap_or_default(),
                        None => None,
                    };
                    return Err(HubSpotError::DailyQuotaExhausted { until });
                }
                HubSpotError::Transient {
                    status,
                    retry_after,
                } => {
                    // A 5xx may come after HubSpot acted on the request (a gateway timing out
                    // on a create that went through): sending it again could do it twice.
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
                    inner.metrics.retry(call.endpoint, "transient");
                    // 423 means a ~2 s lock: waiting less is a wasted request.
                    let floor = if status == 423 {
                        Duration::from_secs(2)
                    } else {
                        Duration::ZERO
                    };
                    tokio::time::sleep(retry_after.unwrap_or(wait).max(floor)).await;
                }
                other => return Err(other),
            }
        }
    }

    fn observe_headers(&self, headers: &HeaderMap) {
        let Some(limiter) = &self.inner.limiter else {
            return;
        };
        let max =
            header_u64(headers, "x-hubspot-ratelimit-max").and_then(|v| u32::try_from(v).ok());
        let remaining = header_u64(headers, "x-hubspot-ratelimit-remaining")
            .and_then(|v| u32::try_from(v).ok());
        let daily_remaining = header_u64(headers, "x-hubspot-ratelimit-daily-remaining");
        if max.is_some() || daily_remaining.is_some() {
            limiter.observe(max, remaining, daily_remaining);
        }
    }
}
