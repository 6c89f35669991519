//! The one error type of the HTTP API: a stable code and a safe message per client error,
//! one opaque 500 whose cause goes to the log only.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use platform::caller::CallerError;
use serde_json::json;

use crate::mapping::MappingProblem;

/// Everything a route can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or invalid caller, or a member asking to change something.
    #[error(transparent)]
    Caller(#[from] CallerError),
    /// No such connection in the caller's org (also for another org's connection).
    #[error("connection not found")]
    NotFound,
    /// The body is not a mapping.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// The mapping does not fit the portal's properties.
    #[error("the mapping is invalid")]
    InvalidMapping(Vec<MappingProblem>),
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// HubSpot refused the connection's credentials; an admin must reconnect.
    #[error("HubSpot refused the connection's credentials")]
    ReauthRequired,
    /// HubSpot could not be asked.
    #[error("HubSpot is unavailable: {0}")]
    HubSpotUnavailable(String),
    /// Anything else: logged, answered as an opaque 500.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database query"))
    }
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            Self::Caller(_) => "caller",
            Self::NotFound => "not_found",
            Self::InvalidBody(_) => "invalid_body",
            Self::InvalidMapping(_) => "invalid_mapping",
            Self::Closed => "connection_closed",
            Self::ReauthRequired => "reauth_required",
            Self::HubSpotUnavailable(_) => "hubspot_unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Caller(e) => e.status_code(),
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::InvalidBody(_) => StatusCode::BAD_REQUEST,
            Self::InvalidMapping(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Closed | Self::ReauthRequired => StatusCode::CONFLICT,
            Self::HubSpotUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Caller(e) => e.error_response(),
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                HttpResponse::InternalServerError()
                    .json(json!({"error": "internal", "message": "internal error"}))
            }
            Self::InvalidMapping(problems) => {
                let message = problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                HttpResponse::build(self.status_code()).json(json!({
                    "error": self.code(),
                    "message": message,
                    "problems": problems,
                }))
            }
            other => HttpResponse::build(other.status_code())
                .json(json!({"error": other.code(), "message": other.to_string()})),
        }
    }
}
