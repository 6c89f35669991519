//! The one error type of the HTTP API: `{"error": code, "message": ...}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::model::FieldError;

/// What an API request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such customer in the caller's org (another org's ids look the same).
    #[error("no such customer")]
    NotFound,
    /// A query parameter or body is malformed.
    #[error("{message}")]
    BadRequest {
        /// The field or parameter at fault, when one is.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A config that fails validation: every problem, each naming its field.
    #[error("the scoring config is invalid")]
    InvalidConfig(Vec<FieldError>),
    /// The caller may not do this.
    #[error(transparent)]
    Caller(#[from] platform::caller::CallerError),
    /// Anything else; the cause is logged, never returned.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 400 naming a field.
    pub fn bad(field: &str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl From<crate::engine::RescoreError> for ApiError {
    fn from(error: crate::engine::RescoreError) -> Self {
        Self::Internal(error.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Caller(error) => error.status_code(),
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::NotFound => HttpResponse::build(status)
                .json(json!({"error": "not_found", "message": self.to_string()})),
            Self::BadRequest { field, message } => HttpResponse::build(status)
                .json(json!({"error": "bad_request", "message": message, "field": field})),
            Self::InvalidConfig(errors) => {
                let message = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                HttpResponse::build(status)
                    .json(json!({"error": "invalid_config", "message": message, "fields": errors}))
            }
            Self::Caller(error) => error.error_response(),
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                HttpResponse::build(status)
                    .json(json!({"error": "internal", "message": "internal error"}))
            }
        }
    }
}
