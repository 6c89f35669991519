//! Custom object schemas (`/crm/v3/schemas`, also `/crm-object-schemas/v3/schemas`).
//! The simulator's portals have no custom objects, so the list is empty; a client that
//! discovers object types gets HubSpot's answer rather than a 404.

use serde_json::json;

use crate::http::{ApiError, ApiResult, Ctx, json_response};

/// The scope that reads custom object schemas.
pub const READ_SCOPE: &str = "crm.schemas.custom.read";

/// `GET /crm/v3/schemas`: 200 `{"results": []}`.
pub(crate) fn list(ctx: &Ctx) -> ApiResult {
    ctx.require_any(&[READ_SCOPE])?;
    Ok(json_response(200, &json!({"results": []})))
}

/// `GET /crm/v3/schemas/{objectType}`: no custom object exists, so 404.
pub(crate) fn get(ctx: &Ctx, name: &str) -> ApiResult {
    ctx.require_any(&[READ_SCOPE])?;
    Err(ApiError::not_found(format!(
        "Unable to find object schema for {name}"
    )))
}
