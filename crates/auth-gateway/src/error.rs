//! The one error type of the HTTP API: a stable code and a safe message per cause, in the
//! shape `{"error": code, "message": ...}`. Only [`ApiError::Internal`] hides its cause,
//! which goes to the log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// Every way an API request fails.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no credential, or one that does not verify.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: the caller's role or service may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: nothing with this id in the caller's organization.
    #[error("{0}")]
    NotFound(String),
    /// 400: the request is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// 409: the portal is already connected in this organization.
    #[error("{0}")]
    AlreadyConnected(String),
    /// 409: the connection's refresh token was refused; an admin must reconnect.
    #[error("{0}")]
    ReauthRequired(String),
    /// 409: the connection was disconnected.
    #[error("{0}")]
    Disconnected(String),
    /// 422: HubSpot refused the credential given.
    #[error("{0}")]
    InvalidCredential(String),
    /// 422: the token lacks required scopes.
    #[error("{0}")]
    MissingScopes(String),
    /// 502: HubSpot failed or was unreachable.
    #[error("{0}")]
    HubSpotUnavailable(String),
    /// 502: an upstream service failed or was unreachable.
    #[error("{0}")]
    UpstreamUnavailable(String),
    /// 504: an upstream service did not answer in time.
    #[error("{0}")]
    UpstreamTimeout(String),
    /// 413: the request body is too large to forward.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 500: the cause is logged, never returned.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// The stable code of this cause.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::InvalidRequest(_) => "invalid_request",
            Self::AlreadyConnected(_) => "already_connected",
            Self::ReauthRequired(_) => "reauth_required",
            Self::Disconnected(_) => "disconnected",
            Self::InvalidCredential(_) => "invalid_credential",
            Self::MissingScopes(_) => "missing_scopes",
            Self::HubSpotUnavailable(_) => "hubspot_unavailable",
            Self::UpstreamUnavailable(_) => "upstream_unavailable",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Internal(_) => "internal",
        }
    }

    /// A 404 for a connection id the caller may not see (or that does not exist).
    pub fn connection_not_found() -> Self {
        Self::NotFound("no such connection".to_owned())
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Internal(anyhow::Error::new(error).context("database query"))
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Internal(anyhow::anyhow!("database pool: {error}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::AlreadyConnected(_) | Self::ReauthRequired(_) | Self::Disconnected(_) => {
                StatusCode::CONFLICT
            }
            Self::InvalidCredential(_) | Self::MissingScopes(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::HubSpotUnavailable(_) | Self::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        HttpResponse::build(self.status_code())
            .json(json!({"error": self.code(), "message": self.to_string()}))
    }
}
