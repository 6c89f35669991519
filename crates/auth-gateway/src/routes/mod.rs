//! HTTP routes: the public `/api/v1` API and the services' `/internal/v1` API.

pub mod audit;
pub mod connections;
pub mod internal;
pub mod oauth;
pub mod openapi;
pub mod proxy;

use actix_web::{HttpRequest, web};

use crate::error::ApiError;

/// The request id a caller sent (`X-Request-Id`), if it is a sane token.
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        })
        .map(str::to_owned)
}

/// A JSON body error without echoing values from the body (they may be secrets).
fn json_error(error: &actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError;
    let message = match error {
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            let text = e.to_string();
            if text.starts_with("missing field") {
                text
            } else {
                "the JSON body does not have the expected shape".to_owned()
            }
        }
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            "the body is too large".to_owned()
        }
        JsonPayloadError::ContentType => "send the body as application/json".to_owned(),
        _ => "the body is not valid JSON".to_owned(),
    };
    ApiError::InvalidRequest(message)
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|error, _| json_error(&error).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|_, _| ApiError::NotFound("not found".to_owned()).into()),
    )
    .service(
        web::scope("/internal/v1")
            .route(
                "/connections/{id}/access-token",
                web::post().to(internal::access_token),
            )
            .route(
                "/connections/{id}/webhook-secrets",
                web::get().to(internal::webhook_secrets),
            )
            .route(
                "/portals/{portal_id}/connections",
                web::get().to(internal::portal_connections),
            ),
    )
    .service(
        web::scope("/api/v1")
            .route("/connections/hubspot/oauth", web::post().to(oauth::start))
            .route("/oauth/hubspot/callback", web::get().to(oauth::callback))
            .route("/connections", web::get().to(connections::list))
            .route("/connections", web::post().to(connections::create))
            .route("/connections/{id}", web::get().to(connections::get))
            .route("/connections/{id}", web::delete().to(connections::delete))
            .route(
                "/connections/{id}/syncs",
                web::post().to(connections::request_sync),
            )
            .route(
                "/connections/{id}/credentials",
                web::put().to(connections::replace_credentials),
            )
            .route(
                "/connections/{id}/webhook-secret",
                web::put().to(connections::replace_webhook_secret),
            )
            .route("/connections/{id}/test", web::post().to(connections::test))
            .route("/audit", web::get().to(audit::list))
            .route("/openapi.json", web::get().to(openapi::openapi_json))
            .configure(proxy::configure),
    );
}
