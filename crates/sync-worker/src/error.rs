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
    /// Anything unexpected; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
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
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        HttpResponse::build(self.status_code())
            .json(json!({"error": self.code(), "message": self.to_string()}))
    }
}
