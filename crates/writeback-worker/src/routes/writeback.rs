//! `/api/v1/connections/{id}/writeback`: the outbound mapping (GET, PUT), its status and a
//! backfill. Writers (owner, admin) only for PUT and POST.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use hubspot_client::HubSpotError;
use platform::caller::Caller;
use platform::db::Pool;
use serde::Serialize;
use uuid::Uuid;

use crate::db::{self, Connection, FailureReason, PropertyTarget};
use crate::error::ApiError;
use crate::hubspot::{Clients, ConnectionAccess};
use crate::mapping::{WritebackMapping, to_definition};

/// What the routes share.
#[derive(Clone)]
pub struct ApiState {
    /// The service's pool.
    pub pool: Pool,
    /// HubSpot clients, for reading property definitions.
    pub clients: Clients,
}

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/connections/{id}/writeback")
            .route(web::get().to(get_mapping))
            .route(web::put().to(put_mapping)),
    )
    .service(
        web::resource("/api/v1/connections/{id}/writeback/status").route(web::get().to(status)),
    )
    .service(
        web::resource("/api/v1/connections/{id}/writeback/backfill")
            .route(web::post().to(backfill)),
    );
}

async fn connection(state: &ApiState, caller: &Caller, id: &str) -> Result<Connection, ApiError> {
    // An id that is not a UUID names no connection.
    let id = Uuid::parse_str(id).map_err(|_| ApiError::NotFound)?;
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("no database connection: {e}"))?;
    db::connection_of_org(&mut conn, id, caller.org_id)
        .await?
        .ok_or(ApiError::NotFound)
}

async fn get_mapping(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let connection = connection(&state, &caller, &path).await?;
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("no database connection: {e}"))?;
    let mapping = db::mapping(&mut conn, connection.connection_id).await?;
    Ok(HttpResponse::Ok().json(mapping))
}

async fn put_mapping(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    caller.require_writer()?;
    let connection = connection(&state, &caller, &path).await?;
    let mapping: WritebackMapping =
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    if connection.status != "active" {
        return Err(ApiError::Closed);
    }
    let client = state
        .clients
        .client(ConnectionAccess {
            connection_id: connection.connection_id,
            portal_id: connection.portal_id,
            oauth: connection.auth_kind == "oauth",
        })
        .map_err(|e| anyhow::anyhow!("building a HubSpot client: {e}"))?;
    let mut definitions = BTreeMap::new();
    for target in mapping.targets() {
        let found = match client.list_properties(target.as_str()).await {
            Ok(list) => list.iter().map(to_definition).collect(),
            // Without the scope the properties cannot be read; preparing reports it.
            Err(HubSpotError::MissingScopes { .. }) => Vec::new(),
            Err(HubSpotError::Unauthorized { .. }) => return Err(ApiError::ReauthRequired),
            Err(other) => return Err(ApiError::HubSpotUnavailable(other.to_string())),
        };
        definitions.insert(target, found);
    }
    mapping
        .validate(&definitions)
        .map_err(ApiError::InvalidMapping)?;
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("no database connection: {e}"))?;
    db::save_mapping(&mut conn, connection.connection_id, caller.org_id, &mapping).await?;
    tracing::info!(connection_id = %connection.connection_id, "writeback mapping changed");
    Ok(HttpResponse::Ok().json(mapping))
}

/// `GET .../writeback/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    connection_id: Uuid,
    connection_status: String,
    enabled: bool,
    paused_until: Option<DateTime<Utc>>,
    paused_reason: Option<String>,
    written: i64,
    unchanged_skipped: i64,
    failed: i64,
    requests: i64,
    failures: Vec<FailureReason>,
    pending: i64,
    last_success_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
    properties: Vec<PropertyTarget>,
    problems: Vec<PropertyTarget>,
    backfill: Option<Backfill>,
    timeline: crate::timeline::Counts,
}

#[derive(Debug, Serialize)]
struct Backfill {
    requested_at: DateTime<Utc>,
    records: i64,
    remaining: i64,
}

async fn status(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let connection = connection(&state, &caller, &path).await?;
    let id = connection.connection_id;
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("no database connection: {e}"))?;
    // One snapshot for every count, so that they add up while a flush commits: read one by
    // one, the counters could predate a batch whose records already left `pending`.
    let (mapping, stats, (pending, backfill_remaining), failures, properties, timeline) = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| {
            let mapping = db::mapping(conn, id).await?;
            let timeline = crate::timeline::counts(conn, id, &mapping).await?;
            Ok::<_, diesel::result::Error>((
                mapping,
                db::stats(conn, id).await?,
                db::pending_counts(conn, id).await?,
                db::failure_reasons(conn, id).await?,
                db::targets(conn, id).await?,
                timeline,
            ))
        })
        .await?;
    let problems = properties
        .iter()
        .filter(|t| t.state != "ready")
        .cloned()
        .collect();
    let paused = connection.paused_until.filter(|t| *t > Utc::now());
    Ok(HttpResponse::Ok().json(Status {
        connection_id: id,
        connection_status: connection.status,
        enabled: mapping.enabled,
        paused_until: paused,
        paused_reason: paused.and(connection.paused_reason),
        written: stats.written,
        unchanged_skipped: stats.unchanged,
        failed: stats.failed,
        requests: stats.requests,
        failures,
        pending,
        last_success_at: stats.last_success_at,
        last_error: stats.last_error,
        last_error_at: stats.last_error_at,
        properties,
        problems,
        backfill: stats.backfill_requested_at.map(|requested_at| Backfill {
            requested_at,
            records: stats.backfill_total,
            remaining: backfill_remaining,
        }),
        timeline,
    }))
}

async fn backfill(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_writer()?;
    let connection = connection(&state, &caller, &path).await?;
    if connection.status != "active" {
        return Err(ApiError::Closed);
    }
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("no database connection: {e}"))?;
    let records = db::start_backfill(&mut conn, connection.connection_id).await?;
    tracing::info!(connection_id = %connection.connection_id, records, "backfill requested");
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "connection_id": connection.connection_id,
        "records": records,
    })))
}
