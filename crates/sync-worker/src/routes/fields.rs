//! Field discovery and inbound custom mappings:
//! `GET /api/v1/connections/{id}/properties/{object_type}` (`?refresh=true` reads them
//! from HubSpot first), `GET` and `PUT /api/v1/connections/{id}/mappings`.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use platform::caller::Caller;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::context::Context;
use crate::db::connections::{self, Connection};
use crate::db::fields;
use crate::db::mirror::RecordType;
use crate::error::ApiError;
use crate::hubspot::Purpose;

async fn owned(ctx: &Context, caller: &Caller, id: &str) -> Result<Connection, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::NotFound("connection"))?;
    let mut conn = ctx
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("no database connection: {e}")))?;
    connections::find_in_org(&mut conn, caller.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("connection"))
}

/// Query of the properties route.
#[derive(Debug, Deserialize)]
pub struct PropertiesQuery {
    /// Read the definitions from HubSpot before answering.
    #[serde(default)]
    refresh: bool,
}

/// `GET /api/v1/connections/{id}/properties/{object_type}`.
pub async fn properties(
    ctx: web::Data<Arc<Context>>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<PropertiesQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, object_type) = path.into_inner();
    let connection = owned(&ctx, &caller, &id).await?;
    let record_type = RecordType::parse(&object_type).ok_or_else(|| {
        ApiError::BadRequest(
            "unknown_object_type",
            format!("{object_type:?} is not contact, company or deal"),
        )
    })?;
    if query.refresh {
        if !connection.is_active() {
            return Err(ApiError::Conflict(
                "disconnected",
                "the connection is closed".to_owned(),
            ));
        }
        let client = ctx
            .clients
            .client(&connection, Purpose::Changes)
            .map_err(ApiError::Internal)?;
        crate::sync::discover_properties(&ctx, &client, &connection, &[record_type])
            .await
            .map_err(|error| {
                tracing::warn!(%error, "field discovery failed");
                ApiError::HubSpotUnavailable
            })?;
    }
    let mut conn = ctx
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("no database connection: {e}")))?;
    let (found, refreshed_at) =
        fields::properties(&mut conn, connection.connection_id, record_type.name()).await?;
    Ok(HttpResponse::Ok().json(json!({
        "object_type": record_type.name(),
        "refreshed_at": refreshed_at,
        "properties": found,
    })))
}

/// `GET /api/v1/connections/{id}/mappings`.
pub async fn mappings(
    ctx: web::Data<Arc<Context>>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let connection = owned(&ctx, &caller, &path).await?;
    let mut conn = ctx
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("no database connection: {e}")))?;
    let configs = fields::mappings(&mut conn, connection.connection_id).await?;
    Ok(HttpResponse::Ok().json(json!({ "mappings": configs })))
}

/// Body of `PUT .../mappings`.
#[derive(Debug, Deserialize)]
pub struct MappingsBody {
    /// One config per object type.
    mappings: Vec<domain::custom::MappingConfig>,
}

/// `PUT /api/v1/connections/{id}/mappings`: validated by `domain` against the discovered
/// properties; every problem is answered at once (422 `invalid_mapping` with `errors`).
pub async fn put_mappings(
    ctx: web::Data<Arc<Context>>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<MappingsBody>,
) -> Result<HttpResponse, ApiError> {
    if caller.require_writer().is_err() {
        return Err(ApiError::Forbidden);
    }
    let connection = owned(&ctx, &caller, &path).await?;
    let mut conn = ctx
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("no database connection: {e}")))?;
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for config in &body.mappings {
        let name = match config.object_type {
            domain::ids::ObjectType::Contact => "contact",
            domain::ids::ObjectType::Company => "company",
            domain::ids::ObjectType::Deal => "deal",
        };
        if !seen.insert(name) {
            return Err(ApiError::BadRequest(
                "duplicate_object_type",
                format!("two mappings for {name}"),
            ));
        }
        let (found, _) = fields::properties(&mut conn, connection.connection_id, name).await?;
        if found.is_empty() {
            return Err(ApiError::Conflict(
                "properties_unknown",
                format!("the {name} properties have not been discovered yet"),
            ));
        }
        let definitions: Vec<domain::custom::PropertyDefinition> =
            found.into_iter().map(|p| p.definition).collect();
        if let Err(invalid) = config.validate(&definitions) {
            errors.push(json!({ "object_type": name, "problems": invalid }));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::InvalidMapping(json!(errors)));
    }
    let changed = fields::replace_mappings(&mut conn, &connection, &body.mappings).await?;
    Ok(HttpResponse::Ok().json(json!({
        "mappings": body.mappings,
        // A changed mapping changes what stored records mean: offer a re-sync
        // (POST /api/v1/connections/{id}/syncs at auth-gateway).
        "resync_recommended": changed,
    })))
}
