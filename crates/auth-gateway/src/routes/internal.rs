//! `/internal/v1`: what the workers call with their own service credentials
//! (docs/internal-api.md).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db;
use crate::error::ApiError;
use crate::internal_auth::InternalRoute;
use crate::state::AppState;
use crate::vault::Field;

/// Optional body of the access-token route.
#[derive(Deserialize, Default)]
pub struct AccessTokenRequest {
    /// SHA-256 (hex) of a token HubSpot answered 401 to.
    #[serde(default)]
    pub rejected_token_sha256: Option<String>,
}

#[derive(Serialize)]
struct AccessTokenAnswer<'a> {
    connection_id: Uuid,
    portal_id: i64,
    access_token: &'a str,
    expires_at: Option<DateTime<Utc>>,
    auth_kind: &'a str,
    tier: Option<&'a str>,
    api_limit_increase: bool,
}

/// `POST /internal/v1/connections/{id}/access-token`.
pub async fn access_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: Option<web::Json<AccessTokenRequest>>,
) -> Result<HttpResponse, ApiError> {
    let service = state.clients.authorize(&req, InternalRoute::AccessToken)?;
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let issued = state
        .access_token(*id, body.rejected_token_sha256.as_deref())
        .await?;
    tracing::debug!(connection.id = %id, service, "access token handed out");
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(AccessTokenAnswer {
            connection_id: issued.connection.id,
            portal_id: issued.connection.portal_id,
            access_token: issued.access_token.expose_secret(),
            expires_at: issued.expires_at,
            auth_kind: &issued.connection.auth_kind,
            tier: issued.connection.tier.as_deref(),
            api_limit_increase: issued.connection.api_limit_increase,
        }))
}

/// `GET /internal/v1/connections/{id}/webhook-secrets`.
pub async fn webhook_secrets(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .clients
        .authorize(&req, InternalRoute::WebhookSecrets)?;
    let id = *id;
    let mut conn = state.pool.get().await?;
    let row = db::find_connection_any_org(&mut conn, id)
        .await?
        .ok_or_else(ApiError::connection_not_found)?;
    let mut secrets = Vec::new();
    for field in [Field::WebhookSecret, Field::PreviousWebhookSecret] {
        if let Some(secret) = state.open_secret(&mut conn, id, field).await? {
            secrets.push(secret.expose_secret().to_owned());
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({
            "connection_id": row.id,
            "portal_id": row.portal_id,
            "secrets": secrets,
        })))
}

/// `GET /internal/v1/portals/{portal_id}/connections`.
pub async fn portal_connections(
    state: web::Data<AppState>,
    req: HttpRequest,
    portal_id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    state
        .clients
        .authorize(&req, InternalRoute::PortalConnections)?;
    let mut conn = state.pool.get().await?;
    let rows = db::connections_for_portal(&mut conn, *portal_id).await?;
    let connections: Vec<_> = rows
        .iter()
        .map(|r| serde_json::json!({"connection_id": r.id, "org_id": r.org_id, "status": r.status}))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "portal_id": *portal_id,
        "connections": connections,
    })))
}
