//! The one error type of the HTTP routes: every refusal has a stable code and a safe
//! message (`{"error": code, "message": ...}`); 5xx only for our own outage.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::events::PayloadError;
use crate::signature::SignatureError;

/// Why a delivery was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is over the configured cap.
    #[error("the body is larger than {max_bytes} bytes")]
    PayloadTooLarge {
        /// The cap.
        max_bytes: usize,
    },
    /// `Content-Type` is not JSON.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// The signature check refused the request.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The body is not a valid delivery.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// A private-app delivery carries events of another portal than its connection's.
    #[error("the delivery carries events of a portal other than the connection's")]
    PortalMismatch,
    /// No such private-app connection.
    #[error("unknown connection")]
    UnknownConnection,
    /// The connection's secrets cannot be had right now (auth-gateway down).
    #[error("webhook secrets are unavailable; retry later")]
    SecretsUnavailable,
    /// The public app has no client secret configured.
    #[error("the receiver has no client secret configured for the public app")]
    NotConfigured,
    /// The broker did not confirm the batch in time (or is unreachable).
    #[error("the event broker did not take the delivery; retry later")]
    BrokerUnavailable,
    /// `webhooks.max_in_flight_deliveries` deliveries are being handled already.
    #[error("too many deliveries at once; retry later")]
    Overloaded,
}

impl ApiError {
    /// The stable code sent as `error` (also the metrics `outcome`).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Signature(e) => e.code(),
            ApiError::Payload(e) => e.code(),
            ApiError::PortalMismatch => "portal_mismatch",
            ApiError::UnknownConnection => "not_found",
            ApiError::SecretsUnavailable => "secrets_unavailable",
            ApiError::NotConfigured => "not_configured",
            ApiError::BrokerUnavailable => "broker_unavailable",
            ApiError::Overloaded => "overloaded",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Signature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Payload(_) | ApiError::PortalMismatch => StatusCode::BAD_REQUEST,
            ApiError::UnknownConnection => StatusCode::NOT_FOUND,
            ApiError::SecretsUnavailable
            | ApiError::NotConfigured
            | ApiError::BrokerUnavailable
            | ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .json(json!({"error": self.code(), "message": self.to_string()}))
    }
}
