//! `/api/v1/connections`: connecting HubSpot portals with a private-app token, listing,
//! reading, testing, rotating credentials, disconnecting, and asking for syncs.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use contracts::v1::{CloseReason, ObjectType};
use diesel_async::AsyncConnection as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::caller::User;
use crate::db::{self, ConnectionRow, ConnectionView, auth_kind, status};
use crate::error::ApiError;
use crate::events::{self, SyncScope};
use crate::state::AppState;
use crate::vault::Field;

/// Body of `POST /api/v1/connections`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateConnection {
    /// A name for the connection, e.g. `production`.
    pub name: String,
    /// The private app's access token.
    #[schema(value_type = String)]
    pub access_token: SecretString,
    /// The secret HubSpot signs this portal's webhooks with.
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
}

/// Body of `PUT /api/v1/connections/{id}/credentials`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReplaceCredentials {
    /// The new private-app access token.
    #[schema(value_type = String)]
    pub access_token: SecretString,
}

/// Body of `PUT /api/v1/connections/{id}/webhook-secret`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReplaceWebhookSecret {
    /// The new webhook signing secret; the old one stays accepted as the previous one.
    #[schema(value_type = String)]
    pub webhook_secret: SecretString,
}

/// Body of `POST /api/v1/connections/{id}/syncs` (all optional: a full sync).
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct RequestSync {
    /// `contacts`, `companies`, `deals`, `owners` or `pipelines`; absent for every type.
    #[serde(default)]
    pub object_type: Option<String>,
    /// Record ids of `object_type` to sync.
    #[serde(default)]
    pub record_ids: Option<Vec<i64>>,
}

/// Answer of `POST /api/v1/connections/{id}/syncs`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SyncAccepted {
    /// The run's id (sync-worker reports progress under it).
    pub sync_run_id: Uuid,
}

/// The list answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionList {
    /// The org's connections, oldest first.
    pub connections: Vec<ConnectionView>,
}

async fn view_of(
    conn: &mut diesel_async::AsyncPgConnection,
    row: &ConnectionRow,
) -> Result<ConnectionView, ApiError> {
    let with = db::with_webhook_secret(conn, &[row.id]).await?;
    Ok(row.view(with.contains(&row.id)))
}

/// The connection `id` of the caller's org, or 404.
pub async fn owned_connection(
    state: &AppState,
    user: &User,
    id: Uuid,
) -> Result<ConnectionRow, ApiError> {
    let mut conn = state.pool.get().await?;
    db::find_connection(&mut conn, user.org_id, id)
        .await?
        .ok_or_else(ApiError::connection_not_found)
}

fn is_unique_violation(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::Internal(cause) if cause.chain().any(|c| matches!(
            c.downcast_ref::<diesel::result::Error>(),
            Some(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        ))
    )
}

fn already_connected(portal_id: i64) -> ApiError {
    ApiError::AlreadyConnected(format!(
        "HubSpot portal {portal_id} is already connected in this organization"
    ))
}

/// Connects a portal with a private-app token.
#[utoipa::path(post, path = "/api/v1/connections", tag = "connections",
    request_body = CreateConnection,
    responses((status = 201, body = ConnectionView), (status = 409, description = "portal already connected"),
        (status = 422, description = "HubSpot refused the token")))]
pub async fn create(
    state: web::Data<AppState>,
    user: User,
    body: web::Json<CreateConnection>,
) -> Result<HttpResponse, ApiError> {
    user.require_writer()?;
    let body = body.into_inner();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::InvalidRequest(
            "name must be 1 to 200 characters".to_owned(),
        ));
    }
    let details = state
        .hubspot
        .account_details(body.access_token.expose_secret())
        .await?;
    let quota = state
        .hubspot
        .private_app_tier(body.access_token.expose_secret())
        .await;
    let now = Utc::now();
    let mut row = ConnectionRow {
        id: Uuid::now_v7(),
        org_id: user.org_id,
        name,
        auth_kind: auth_kind::PRIVATE_APP.to_owned(),
        status: status::ACTIVE.to_owned(),
        portal_id: details.portal_id,
        account_type: details.account_type,
        time_zone: details.time_zone,
        company_currency: details.company_currency,
        ui_domain: details.ui_domain,
        data_hosting_location: details.data_hosting_location,
        scopes: Vec::new(),
        connected_by: user.sub.clone(),
        connected_at: now,
        updated_at: now,
        disconnected_at: None,
        access_token_expires_at: None,
        credential_version: 1,
        tier: quota.map(|(tier, _)| tier.to_owned()),
        api_limit_increase: quota.is_some_and(|(_, increase)| increase),
    };
    let mut conn = state.pool.get().await?;
    let result = conn
        .transaction::<ConnectionRow, ApiError, _>(async |conn| {
            let mut row = row.clone();
            if db::live_connection_for_portal(conn, user.org_id, row.portal_id)
                .await?
                .is_some()
            {
                return Err(already_connected(row.portal_id));
            }
            // Connecting a disconnected portal again continues its connection.
            let previous =
                db::disconnected_connection_for_portal(conn, user.org_id, row.portal_id).await?;
            let action = if let Some(previous) = previous {
                row.id = previous.id;
                row.credential_version = previous.credential_version + 1;
                db::replace_connection(conn, &row).await?;
                "connection.reconnected"
            } else {
                db::insert_connection(conn, &row).await?;
                "connection.created"
            };
            state
                .store_secret(conn, row.id, Field::AccessToken, &body.access_token, now)
                .await?;
            if let Some(secret) = &body.webhook_secret {
                state
                    .store_secret(conn, row.id, Field::WebhookSecret, secret, now)
                    .await?;
            }
            db::audit(
                conn,
                user.org_id,
                &user.actor(),
                action,
                Some(row.id),
                json!({"name": row.name, "portal_id": row.portal_id, "auth_kind": row.auth_kind}),
            )
            .await?;
            events::established(conn, &row, events::user_actor(&user.sub), now).await?;
            Ok(row)
        })
        .await;
    match result {
        Ok(stored) => row = stored,
        Err(error) if is_unique_violation(&error) => return Err(already_connected(row.portal_id)),
        Err(error) => return Err(error),
    }
    state.relay_waker.wake();
    tracing::info!(connection.id = %row.id, hubspot.portal_id = row.portal_id, "connection created");
    Ok(HttpResponse::Created().json(row.view(body.webhook_secret.is_some())))
}

/// Lists the caller's org's connections.
#[utoipa::path(get, path = "/api/v1/connections", tag = "connections",
    responses((status = 200, body = ConnectionList)))]
pub async fn list(state: web::Data<AppState>, user: User) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let rows = db::list_connections(&mut conn, user.org_id).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let with = db::with_webhook_secret(&mut conn, &ids).await?;
    let connections = rows.iter().map(|r| r.view(with.contains(&r.id))).collect();
    Ok(HttpResponse::Ok().json(ConnectionList { connections }))
}

/// One connection.
#[utoipa::path(get, path = "/api/v1/connections/{id}", tag = "connections",
    params(("id" = Uuid, Path)), responses((status = 200, body = ConnectionView), (status = 404)))]
pub async fn get(
    state: web::Data<AppState>,
    user: User,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let row = owned_connection(&state, &user, *id).await?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(view_of(&mut conn, &row).await?))
}

/// Disconnects: revokes the refresh token where there is one, forgets the secrets, marks
/// the connection disconnected (its synced data stays) and publishes `connection.closed`.
#[utoipa::path(delete, path = "/api/v1/connections/{id}", tag = "connections",
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
pub async fn delete(
    state: web::Data<AppState>,
    user: User,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    user.require_writer()?;
    let id = *id;
    let row = owned_connection(&state, &user, id).await?;
    if row.status == status::DISCONNECTED {
        return Ok(HttpResponse::NoContent().finish());
    }
    let mut conn = state.pool.get().await?;
    if let Some(refresh) = state
        .open_secret(&mut conn, id, Field::RefreshToken)
        .await?
        && let Err(error) = state.hubspot.revoke(refresh.expose_secret()).await
    {
        // The local credentials are destroyed below either way.
        tracing::warn!(connection.id = %id, error = %error, "revoking the refresh token failed");
    }
    let now = Utc::now();
    conn.transaction::<(), ApiError, _>(async |conn| {
        let Some(row) = db::lock_connection(conn, id).await? else {
            return Ok(());
        };
        if row.status == status::DISCONNECTED {
            return Ok(());
        }
        db::set_status(conn, id, status::DISCONNECTED, now).await?;
        for field in [
            Field::AccessToken,
            Field::RefreshToken,
            Field::WebhookSecret,
            Field::PreviousWebhookSecret,
        ] {
            db::delete_secret(conn, id, field).await?;
        }
        db::audit(
            conn,
            user.org_id,
            &user.actor(),
            "connection.disconnected",
            Some(id),
            json!({"portal_id": row.portal_id}),
        )
        .await?;
        events::closed(
            conn,
            &row,
            events::user_actor(&user.sub),
            CloseReason::DisconnectedByUser,
            "",
            now,
        )
        .await?;
        Ok(())
    })
    .await?;
    state.relay_waker.wake();
    tracing::info!(connection.id = %id, "connection disconnected");
    Ok(HttpResponse::NoContent().finish())
}

fn object_type(name: &str) -> Option<ObjectType> {
    match name {
        "contacts" | "contact" => Some(ObjectType::Contact),
        "companies" | "company" => Some(ObjectType::Company),
        "deals" | "deal" => Some(ObjectType::Deal),
        "owners" | "owner" => Some(ObjectType::Owner),
        "pipelines" | "pipeline" => Some(ObjectType::Pipeline),
        _ => None,
    }
}

/// Asks sync-worker for a sync: full, one object type, or given records.
#[utoipa::path(post, path = "/api/v1/connections/{id}/syncs", tag = "connections",
    params(("id" = Uuid, Path)), request_body = RequestSync,
    responses((status = 202, body = SyncAccepted), (status = 404), (status = 409)))]
pub async fn request_sync(
    state: web::Data<AppState>,
    user: User,
    id: web::Path<Uuid>,
    req: HttpRequest,
    body: Option<web::Json<RequestSync>>,
) -> Result<HttpResponse, ApiError> {
    user.require_writer()?;
    let row = owned_connection(&state, &user, *id).await?;
    if row.status != status::ACTIVE {
        return Err(ApiError::Disconnected(format!(
            "the connection is {}; it cannot sync",
            row.status
        )));
    }
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let scope = match (body.object_type.as_deref(), body.record_ids) {
        (None, None) => SyncScope::Full,
        (None, Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "record_ids need an object_type".to_owned(),
            ));
        }
        (Some(name), ids) => {
            let t = object_type(name).ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "unknown object_type {name:?}; use contacts, companies, deals, owners or pipelines"
                ))
            })?;
            match ids {
                Some(ids) if ids.is_empty() || ids.len() > 1000 => {
                    return Err(ApiError::InvalidRequest(
                        "record_ids must hold 1 to 1000 ids".to_owned(),
                    ));
                }
                Some(ids) => SyncScope::Records(t, ids),
                None => SyncScope::ObjectType(t),
            }
        }
    };
    let correlation = crate::routes::request_id(&req);
    let now = Utc::now();
    let mut conn = state.pool.get().await?;
    let sync_run_id = conn
        .transaction::<Uuid, ApiError, _>(async |conn| {
            let run = events::sync_requested(
                conn,
                &row,
                scope,
                events::user_actor(&user.sub),
                correlation.as_deref(),
                now,
            )
            .await?;
            db::audit(
                conn,
                user.org_id,
                &user.actor(),
                "sync.requested",
                Some(row.id),
                json!({"sync_run_id": run}),
            )
            .await?;
            Ok(run)
        })
        .await?;
    state.relay_waker.wake();
    Ok(HttpResponse::Accepted().json(SyncAccepted { sync_run_id }))
}

/// Replaces a private-app connection's token; the new one is validated against HubSpot
/// (same portal) before the old one is replaced.
#[utoipa::path(put, path = "/api/v1/connections/{id}/credentials", tag = "connections",
    params(("id" = Uuid, Path)), request_body = ReplaceCredentials,
    responses((status = 200, body = ConnectionView), (status = 404), (status = 409), (status = 422)))]
pub async fn replace_credentials(
    state: web::Data<AppState>,
    user: User,
    id: web::Path<Uuid>,
    body: web::Json<ReplaceCredentials>,
) -> Result<HttpResponse, ApiError> {
    user.require_writer()?;
    let row = owned_connection(&state, &user, *id).await?;
    if row.status == status::DISCONNECTED {
        return Err(ApiError::Disconnected(
            "the connection was disconnected; connect the portal again".to_owned(),
        ));
    }
    if row.auth_kind != auth_kind::PRIVATE_APP {
        return Err(ApiError::InvalidRequest(
            "an OAuth connection gets new credentials by connecting through OAuth again".to_owned(),
        ));
    }
    let details = state
        .hubspot
        .account_details(body.access_token.expose_secret())
        .await?;
    if details.portal_id != row.portal_id {
        return Err(ApiError::InvalidCredential(format!(
            "the token belongs to portal {}, not to this connection's portal {}",
            details.portal_id, row.portal_id
        )));
    }
    let now = Utc::now();
    let mut conn = state.pool.get().await?;
    conn.transaction::<(), ApiError, _>(async |conn| {
        state
            .store_secret(conn, row.id, Field::AccessToken, &body.access_token, now)
            .await?;
        db::set_token_facts(conn, row.id, None, None, now).await?;
        db::audit(
            conn,
            user.org_id,
            &user.actor(),
            "connection.credentials_replaced",
            Some(row.id),
            json!({"portal_id": row.portal_id}),
        )
        .await?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().json(view_of(&mut conn, &row).await?))
}

/// Sets a new webhook secret; the old one stays accepted as the previous one during the
/// rotation.
#[utoipa::path(put, path = "/api/v1/connections/{id}/webhook-secret", tag = "connections",
    params(("id" = Uuid, Path)), request_body = ReplaceWebhookSecret,
    responses((status = 204), (status = 404), (status = 409)))]
pub async fn replace_webhook_secret(
    state: web::Data<AppState>,
    user: User,
    id: web::Path<Uuid>,
    body: web::Json<ReplaceWebhookSecret>,
) -> Result<HttpResponse, ApiError> {
    user.require_writer()?;
    if body.webhook_secret.expose_secret().is_empty() {
        return Err(ApiError::InvalidRequest(
            "webhook_secret must not be empty".to_owned(),
        ));
    }
    let row = owned_connection(&state, &user, *id).await?;
    if row.status == status::DISCONNECTED {
        return Err(ApiError::Disconnected(
            "the connection was disconnected".to_owned(),
        ));
    }
    let now = Utc::now();
    let mut conn = state.pool.get().await?;
    conn.transaction::<(), ApiError, _>(async |conn| {
        // Sealed anew under the previous field: ciphertexts are bound to their field.
        match state
            .open_secret(conn, row.id, Field::WebhookSecret)
            .await?
        {
            Some(current) => {
                state
                    .store_secret(conn, row.id, Field::PreviousWebhookSecret, &current, now)
                    .await?;
            }
            None => db::delete_secret(conn, row.id, Field::PreviousWebhookSecret).await?,
        }
        state
            .store_secret(
                conn,
                row.id,
                Field::WebhookSecret,
                &body.webhook_secret,
                now,
            )
            .await?;
        db::audit(
            conn,
            user.org_id,
            &user.actor(),
            "connection.webhook_secret_replaced",
            Some(row.id),
            json!({}),
        )
        .await?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One live check of `POST /connections/{id}/test`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Check {
    /// What was tried, e.g. `read contacts`.
    pub name: String,
    /// Whether it worked.
    pub ok: bool,
    /// Why not, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Answer of `POST /connections/{id}/test`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestReport {
    /// Every check passed and no required scope is missing.
    pub ok: bool,
    /// The live calls made.
    pub checks: Vec<Check>,
    /// Required scopes the connection lacks.
    pub missing_required_scopes: Vec<String>,
    /// Optional scopes the connection lacks.
    pub missing_optional_scopes: Vec<String>,
}

/// Tries the connection with live calls and reports what works and which scopes are
/// missing.
#[utoipa::path(post, path = "/api/v1/connections/{id}/test", tag = "connections",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = TestReport), (status = 404), (status = 409)))]
pub async fn test(
    state: web::Data<AppState>,
    user: User,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    user.require_writer()?;
    let row = owned_connection(&state, &user, *id).await?;
    let issued = state.access_token(row.id, None).await?;
    let client = state.hubspot.client(issued.access_token.expose_secret())?;
    let mut checks = Vec::new();
    let mut missing = Vec::new();
    match client.account_details().await {
        Ok(details) if details.portal_id == row.portal_id => checks.push(Check {
            name: "account details".to_owned(),
            ok: true,
            detail: None,
        }),
        Ok(details) => checks.push(Check {
            name: "account details".to_owned(),
            ok: false,
            detail: Some(format!(
                "the token now answers for portal {}",
                details.portal_id
            )),
        }),
        Err(error) => checks.push(Check {
            name: "account details".to_owned(),
            ok: false,
            detail: Some(crate::hubspot::credential_error(error).to_string()),
        }),
    }
    let options = hubspot_client::ListOptions {
        page_size: 1,
        ..Default::default()
    };
    for (object_type, scope) in [
        ("contacts", "crm.objects.contacts.read"),
        ("companies", "crm.objects.companies.read"),
        ("deals", "crm.objects.deals.read"),
    ] {
        let result = client.list_objects_page(object_type, &options, None).await;
        let (ok, detail) = match result {
            Ok(_) => (true, None),
            Err(hubspot_client::HubSpotError::MissingScopes { .. }) => {
                missing.push(scope.to_owned());
                (false, Some(format!("missing scope {scope}")))
            }
            Err(error) => (
                false,
                Some(crate::hubspot::credential_error(error).to_string()),
            ),
        };
        checks.push(Check {
            name: format!("read {object_type}"),
            ok,
            detail,
        });
    }
    let granted: Option<&[String]> = (row.auth_kind == auth_kind::OAUTH).then_some(&row.scopes);
    let lacking = |wanted: &[String]| -> Vec<String> {
        wanted
            .iter()
            .filter(|s| match granted {
                Some(granted) => !granted.contains(s),
                None => missing.contains(s),
            })
            .cloned()
            .collect()
    };
    let missing_required_scopes = lacking(&state.oauth.required_scopes);
    let missing_optional_scopes = lacking(&state.oauth.optional_scopes);
    let report = TestReport {
        ok: checks.iter().all(|c| c.ok) && missing_required_scopes.is_empty(),
        checks,
        missing_required_scopes,
        missing_optional_scopes,
    };
    Ok(HttpResponse::Ok().json(report))
}
