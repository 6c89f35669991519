//! The `/api/v1` routes this service owns (reached through auth-gateway, which forwards
//! the caller's identity as an internal token read by [`platform::caller::Caller`]).

pub mod customers;
pub mod scoring;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/customers", web::get().to(customers::list))
        .route("/api/v1/customers/{id}", web::get().to(customers::get))
        .route(
            "/api/v1/scoring/distribution",
            web::get().to(scoring::distribution),
        )
        .route("/api/v1/scoring/config", web::get().to(scoring::get_config))
        .route("/api/v1/scoring/config", web::put().to(scoring::put_config))
        .route(
            "/api/v1/scoring/config/preview",
            web::post().to(scoring::preview),
        );
}
