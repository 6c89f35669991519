//! What can go wrong talking to HubSpot, as variants a caller can act on, and the parsing of
//! HubSpot's error bodies into them. Messages carry HubSpot's own text but never a token.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::types::{CrmObject, StandardError};

/// Which HubSpot rate limit a 429 named.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateLimitPolicy {
    /// The per-portal burst limit over a rolling 10 seconds.
    TenSecondlyRolling,
    /// The search API's per-second limit.
    Secondly,
    /// The private-app daily quota.
    Daily,
    /// A policy name this client does not know.
    Other(String),
}

impl RateLimitPolicy {
    /// Maps HubSpot's `policyName` (falling back to the message text for search, which the
    /// official SDK matches on).
    pub fn from_body(policy_name: Option<&str>, message: Option<&str>) -> Self {
        match policy_name {
            Some("TEN_SECONDLY_ROLLING") => Self::TenSecondlyRolling,
            Some("SECONDLY") => Self::Secondly,
            Some("DAILY") => Self::Daily,
            Some(other) => Self::Other(other.to_owned()),
            None if message.is_some_and(|m| m.contains("secondly limit")) => Self::Secondly,
            None if message.is_some_and(|m| m.contains("daily limit")) => Self::Daily,
            None => Self::Other("unknown".to_owned()),
        }
    }

    /// The name HubSpot uses, for metrics labels.
    pub fn as_str(&self) -> &str {
        match self {
            Self::TenSecondlyRolling => "TEN_SECONDLY_ROLLING",
            Self::Secondly => "SECONDLY",
            Self::Daily => "DAILY",
            Self::Other(name) => name,
        }
    }
}

/// One per-field error inside a HubSpot error body (`errors[]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct FieldError {
    /// Human-readable text, e.g. `Property "x" does not exist`.
    pub message: String,
    /// Machine code such as `PROPERTY_DOESNT_EXIST`.
    pub code: Option<String>,
    /// Where the error is, when HubSpot says.
    #[serde(rename = "in")]
    pub location: Option<String>,
    /// Finer classification.
    pub sub_category: Option<String>,
    /// Extra detail, e.g. `{"propertyName": ["x"]}`.
    pub context: BTreeMap<String, Vec<String>>,
}

/// Inputs of a batch call that failed as a whole (not a 207). None of them was read or
/// written, except where `cause` is [`HubSpotError::OutcomeUnknown`] (HubSpot may have
/// created them) or [`HubSpotError::Decode`] (HubSpot did the work but its answer was
/// unreadable): look those up before creating them again.
#[derive(Debug)]
pub struct FailedChunk {
    /// Positions of these inputs in the slice the caller passed, e.g. `100..200`.
    pub inputs: Range<usize>,
    /// Their ids (record ids; for creates, their `objectWriteTraceId`s where set).
    pub ids: Vec<String>,
    /// Why the request failed, after the client's own retries.
    /// [`HubSpotError::is_retryable`] says whether sending these inputs again later makes sense.
    pub cause: HubSpotError,
}

/// Every failure of a HubSpot call.
#[derive(Debug, thiserror::Error)]
pub enum HubSpotError {
    /// 401: the token is expired (`expired`) or unknown/revoked; one refresh was already tried.
    #[error("HubSpot rejected the credentials (expired: {expired}): {message}")]
    Unauthorized {
        /// HubSpot said the token expired, as opposed to not recognising it.
        expired: bool,
        /// HubSpot's message (it names no token).
        message: String,
    },
    /// 403 `MISSING_SCOPES`: the token lacks a scope; `required` lists those HubSpot named.
    #[error("the token lacks the scopes {required:?}")]
    MissingScopes {
        /// Scopes any one of which would allow the call.
        required: Vec<String>,
    },
    /// 403 for another reason.
    #[error("HubSpot refused the call: {message}")]
    Forbidden {
        /// HubSpot's message.
        message: String,
    },
    /// 404: the object, property or path does not exist.
    #[error("not found: {message}")]
    NotFound {
        /// HubSpot's message.
        message: String,
    },
    /// 409, e.g. a contact with that email already exists.
    #[error("conflict: {message}")]
    Conflict {
        /// HubSpot's message (names the existing id for duplicate contacts).
        message: String,
    },
    /// 400 (and other 4xx carrying a validation body): the request was wrong.
    #[error("HubSpot rejected the request: {message}")]
    Validation {
        /// HubSpot's overall message.
        message: String,
        /// Per-field details.
        errors: Vec<FieldError>,
    },
    /// 429 on a short-window limit after retries ran out.
    #[error("rate limited by {policy:?}; retry after {retry_after:?}")]
    RateLimited {
        /// Which limit.
        policy: RateLimitPolicy,
        /// When trying again makes sense, if known.
        retry_after: Option<Duration>,
    },
    /// The private-app daily quota is used up; retrying before `until` is pointless.
    #[error("the portal's daily API quota is exhausted until {until:?}")]
    DailyQuotaExhausted {
        /// When the quota resets, if known.
        until: Option<DateTime<Utc>>,
    },
    /// 5xx, 423 or 477 after retries ran out (or with a Retry-After too long to wait).
    #[error("HubSpot is temporarily unavailable (status {status}); retry after {retry_after:?}")]
    Transient {
        /// HTTP status.
        status: u16,
        /// The server's `Retry-After`, if sent.
        retry_after: Option<Duration>,
    },
    /// A call that is not safe to send twice (a create, a merge, a timeline event) got no
    /// answer saying whether HubSpot acted on it: a 5xx, 423 or 477 (`status`), or the
    /// connection failed after the request was sent (`status` is `None`). It was not retried,
    /// since a retry could do it twice. Look the result up (e.g. by email, domain or
    /// `objectWriteTraceId`) before sending it again.
    #[error(
        "the outcome of {operation} is unknown (status {status:?}); check before sending it again"
    )]
    OutcomeUnknown {
        /// The endpoint label, e.g. `objects.batch_create`.
        operation: &'static str,
        /// HubSpot's status, when it answered.
        status: Option<u16>,
        /// The server's `Retry-After`, if sent.
        retry_after: Option<Duration>,
    },
    /// Inputs of a batch call that were never sent, because an earlier request of the same
    /// call ended in [`HubSpotError::OutcomeUnknown`] and the call stopped there. Nothing of
    /// them was written; sending them again is safe.
    #[error("not sent: an earlier request of this {operation} call had an unknown outcome")]
    NotSent {
        /// The endpoint label, e.g. `objects.batch_create`.
        operation: &'static str,
    },
    /// A batch call in which some inputs failed: HubSpot reported them in a 207, or the
    /// request carrying them (one chunk of 100) failed as a whole. Everything not named in
    /// `failed_ids`, `errors` or `failed_chunks` succeeded; see the batch methods for details.
    #[error(
        "batch partly failed: {} inputs reported failed by HubSpot, {} requests failed as a whole",
        errors.len(),
        failed_chunks.len()
    )]
    PartialBatch {
        /// Records written or read successfully, across all chunks.
        succeeded: Vec<CrmObject>,
        /// Ids (or objectWriteTraceIds for creates) that failed: those HubSpot named in 207
        /// responses, then those of the inputs in `failed_chunks`.
        failed_ids: Vec<String>,
        /// HubSpot's 207 error entries.
        errors: Vec<StandardError>,
        /// Requests that failed as a whole, with the inputs they carried and why.
        failed_chunks: Vec<FailedChunk>,
    },
    /// The OAuth server refused a grant (e.g. `invalid_grant` for a revoked refresh token).
    #[error("OAuth error {error}: {description}")]
    OAuth {
        /// RFC 6749 code, e.g. `invalid_grant`.
        error: String,
        /// HubSpot's description.
        description: String,
    },
    /// Another unexpected status.
    #[error("unexpected HubSpot status {status}: {message}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// HubSpot's message.
        message: String,
    },
    /// The request could not be sent or the response not read.
    #[error("transport error calling HubSpot")]
    Transport(#[source] reqwest::Error),
    /// The response body did not have the expected shape.
    #[error("unexpected response body from {endpoint}: {message}")]
    Decode {
        /// Endpoint label.
        endpoint: &'static str,
        /// What did not parse.
        message: String,
    },
    /// The shared rate budget could not be consulted (PostgreSQL down).
    #[error("rate budget unavailable: {0}")]
    Budget(String),
    /// A token source could not produce a token.
    #[error("no access token available: {0}")]
    TokenUnavailable(String),
}

impl HubSpotError {
    /// Transport errors whose text never includes the URL (token metadata URLs could).
    pub(crate) fn transport(error: reqwest::Error) -> Self {
        Self::Transport(error.without_url())
    }

    /// True when the failure is about what one request carried (a bad input, an unknown id,
    /// a duplicate, an odd response), so the other requests of a batch call may still succeed.
    /// False for failures every later request would meet too (credentials, scopes, quota,
    /// rate limits, HubSpot or the network down, no budget).
    pub(crate) fn concerns_only_this_request(&self) -> bool {
        matches!(
            self,
            Self::NotFound { .. }
                | Self::Conflict { .. }
                | Self::Validation { .. }
                | Self::Decode { .. }
                | Self::Unexpected { .. }
                | Self::PartialBatch { .. }
        )
    }

    /// True for failures worth retrying later as-is (rate limits, transient, transport, inputs
    /// never sent). False for [`HubSpotError::OutcomeUnknown`]: check what happened first.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Transient { .. }
                | Self::Transport(_)
                | Self::Budget(_)
                | Self::NotSent { .. }
        )
    }

    /// True when HubSpot may or may not have carried the call out
    /// ([`HubSpotError::OutcomeUnknown`]).
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown { .. })
    }
}

/// HubSpot's error body; every field optional, as its docs advise.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    pub category: Option<String>,
    pub policy_name: Option<String>,
    pub errors: Vec<FieldError>,
    pub context: BTreeMap<String, Vec<String>>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl ErrorBody {
    pub(crate) fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    fn message_or(&self, fallback: &str) -> String {
        self.message
            .clone()
            .or_else(|| self.error_description.clone())
            .unwrap_or_else(|| fallback.to_owned())
    }

    /// Scopes named in `errors[].context.requiredGranularScopes` (or top-level context).
    fn required_scopes(&self) -> Vec<String> {
        let keys = ["requiredGranularScopes", "requiredScopes"];
        let mut scopes: Vec<String> = self
            .errors
            .iter()
            .flat_map(|e| keys.iter().filter_map(|k| e.context.get(*k)).flatten())
            .chain(keys.iter().filter_map(|k| self.context.get(*k)).flatten())
            .cloned()
            .collect();
        scopes.dedup();
        scopes
    }
}

/// Maps a non-success status and body to the error a caller acts on. 429 and transient
/// statuses map to their final form here; the retry loop decides whether to wait first.
pub(crate) fn classify(status: u16, body: &[u8], retry_after: Option<Duration>) -> HubSpotError {
    let parsed = ErrorBody::parse(body);
    match status {
        401 => {
            let expired = parsed.category.as_deref() == Some("EXPIRED_AUTHENTICATION")
                || parsed
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("expired"));
            HubSpotError::Unauthorized {
                expired,
                message: parsed.message_or("unauthorized"),
            }
        }
        403 if parsed.category.as_deref() == Some("MISSING_SCOPES") => {
            HubSpotError::MissingScopes {
                required: parsed.required_scopes(),
            }
        }
        403 => HubSpotError::Forbidden {
            message: parsed.message_or("forbidden"),
        },
        404 => HubSpotError::NotFound {
            message: parsed.message_or("not found"),
        },
        409 => HubSpotError::Conflict {
            message: parsed.message_or("conflict"),
        },
        429 => {
            let policy = RateLimitPolicy::from_body(
                parsed.policy_name.as_deref(),
                parsed.message.as_deref(),
            );
            if policy == RateLimitPolicy::Daily {
                HubSpotError::DailyQuotaExhausted { until: None }
            } else {
                HubSpotError::RateLimited {
                    policy,
                    retry_after,
                }
            }
        }
        423 | 477 | 500..=599 => HubSpotError::Transient {
            status,
            retry_after,
        },
        400..=499 if parsed.error.is_some() && parsed.category.is_none() => HubSpotError::OAuth {
            error: parsed.error.clone().unwrap_or_default(),
            description: parsed.message_or(""),
        },
        400 | 405..=408 | 410..=422 | 424..=428 | 430..=499 => HubSpotError::Validation {
            message: parsed.message_or("bad request"),
            errors: parsed.errors,
        },
        _ => HubSpotError::Unexpected {
            status,
            message: parsed.message_or(""),
        },
    }
}

/// `Retry-After` in seconds (HubSpot documents seconds, for 477).
pub(crate) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let value = value?.trim();
    value
        .parse::<u64>()
        .map(Duration::from_secs)
        .ok()
        .or_else(|| {
            value
                .parse::<f64>()
                .ok()
                .filter(|s| *s >= 0.0 && s.is_finite())
                .map(Duration::from_secs_f64)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_scopes_name_the_scopes_hubspot_listed() {
        let body = br#"{"status":"error","message":"This app hasn't been granted all required scopes","category":"MISSING_SCOPES",
            "errors":[{"message":"One or more of the following scopes are required.","context":{"requiredGranularScopes":["crm.objects.deals.read"]}}],
            "links":{"scopes":"https://developers.hubspot.com/scopes"}}"#;
        let error = classify(403, body, None);
        assert!(
            matches!(&error, HubSpotError::MissingScopes { required } if required == &["crm.objects.deals.read"]),
            "{error:?}"
        );
    }

    #[test]
    fn expired_tokens_are_told_apart_from_unknown_ones() {
        let expired = br#"{"status":"error","message":"The OAuth token used to make this call expired 0 second(s) ago.","category":"EXPIRED_AUTHENTICATION"}"#;
        assert!(matches!(
            classify(401, expired, None),
            HubSpotError::Unauthorized { expired: true, .. }
        ));
        let unknown = br#"{"status":"error","message":"Authentication credentials not found.","category":"INVALID_AUTHENTICATION"}"#;
        assert!(matches!(
            classify(401, unknown, None),
            HubSpotError::Unauthorized { expired: false, .. }
        ));
    }

    #[test]
    fn rate_limit_bodies_say_which_policy_was_hit() {
        let burst = br#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"}"#;
        assert!(matches!(
            classify(429, burst, Some(Duration::from_secs(1))),
            HubSpotError::RateLimited {
                policy: RateLimitPolicy::TenSecondlyRolling,
                retry_after: Some(_)
            }
        ));
        let search = br#"{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT"}"#;
        assert!(matches!(
            classify(429, search, None),
            HubSpotError::RateLimited {
                policy: RateLimitPolicy::Secondly,
                ..
            }
        ));
        let daily = br#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","policyName":"DAILY"}"#;
        assert!(matches!(
            classify(429, daily, None),
            HubSpotError::DailyQuotaExhausted { .. }
        ));
    }

    #[test]
    fn validation_errors_keep_the_per_field_details() {
        let body = br#"{"status":"error","message":"Property values were not valid","category":"VALIDATION_ERROR",
            "errors":[{"message":"Property \"x\" does not exist","code":"PROPERTY_DOESNT_EXIST","context":{"propertyName":["x"]}}]}"#;
        match classify(400, body, None) {
            HubSpotError::Validation { errors, .. } => {
                assert_eq!(errors[0].code.as_deref(), Some("PROPERTY_DOESNT_EXIST"));
                assert_eq!(errors[0].context["propertyName"], vec!["x".to_owned()]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn locked_and_migrating_portals_are_transient_with_their_retry_after() {
        assert!(matches!(
            classify(477, b"", parse_retry_after(Some("30"))),
            HubSpotError::Transient { status: 477, retry_after: Some(d) } if d == Duration::from_secs(30)
        ));
        assert!(matches!(
            classify(423, b"not json", None),
            HubSpotError::Transient { status: 423, .. }
        ));
        assert!(matches!(
            classify(502, b"", None),
            HubSpotError::Transient { status: 502, .. }
        ));
    }

    #[test]
    fn oauth_errors_keep_the_rfc_code() {
        let body = br#"{"error":"invalid_grant","error_description":"refresh token is invalid, expired or revoked","status":"BAD_REFRESH_TOKEN","message":"refresh token is invalid, expired or revoked"}"#;
        assert!(
            matches!(classify(400, body, None), HubSpotError::OAuth { error, .. } if error == "invalid_grant")
        );
    }
}
