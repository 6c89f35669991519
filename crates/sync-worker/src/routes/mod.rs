//! HTTP routes under `/api/v1`, reached through auth-gateway with the caller's identity.

pub mod fields;
pub mod syncs;

use actix_web::web;

/// Registers every route.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/api/v1/connections/{id}/syncs", web::get().to(syncs::list))
        .route(
            "/api/v1/connections/{id}/syncs/latest",
            web::get().to(syncs::latest),
        )
        .route(
            "/api/v1/connections/{id}/properties/{object_type}",
            web::get().to(fields::properties),
        )
        .route(
            "/api/v1/connections/{id}/mappings",
            web::get().to(fields::mappings),
        )
        .route(
            "/api/v1/connections/{id}/mappings",
            web::put().to(fields::put_mappings),
        );
}
