//! HTTP routes (behind auth-gateway; every one needs a caller and is scoped to its org).

pub mod writeback;

use actix_web::web;

/// Registers every route of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    writeback::configure(cfg);
}
