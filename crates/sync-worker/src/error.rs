//! The one error type of the HTTP API: `{"error": code, "message": ...}`; only the 500
//! hides its cause (which goes to the log).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// What a route can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Unknown id, or one of another organization.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request cannot be understood (stable code, safe message).
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// A mapping config failed `domain`'s validation; every problem is listed.
    #[error("the mappings are not valid")]
    InvalidMapping(serde_json::Value),
    /// The caller's role may not change this.
    #[error("this needs the owner or admin role")]
    Forbidden,
    /// The request needs something that is not there yet (e.g. discovered properties).
    #[error("{1}")]
    Conflict(&'static str, String),
    /// HubSpot could not be asked (rate limit, outage, credential).
    #[error("HubSpot could not be reached; try again later")]
    HubSpotUnavailable,
    /// Anything unexpected; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(code, _) | ApiError::Conflict(code, _) => code,
            ApiError::InvalidMapping(_) => "invalid_mapping",
            ApiError::Forbidden => "forbidden",
            ApiError::HubSpotUnavailable => "hubspot_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        ApiError::Internal(error.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(..) => StatusCode::BAD_REQUEST,
            ApiError::InvalidMapping(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::HubSpotUnavailable => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let mut body = json!({"error": self.code(), "message": self.to_string()});
        if let ApiError::InvalidMapping(errors) = self {
            body["errors"] = errors.clone();
        }
        HttpResponse::build(self.status_code()).json(body)
    }
}
