//! The OAuth 2.0 code flow: `POST /api/v1/connections/hubspot/oauth` hands out the consent
//! URL with a signed, single-use `state` bound to the caller's org and user;
//! `GET /api/v1/oauth/hubspot/callback` checks it, exchanges the code, checks the granted
//! scopes, stores the connection and sends the browser to the configured completion URL
//! with the outcome. On any failure nothing is stored.

use actix_web::{HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use diesel_async::AsyncConnection as _;
use hmac::{Hmac, KeyInit, Mac};
use hubspot_client::HubSpotError;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use uuid::Uuid;

use crate::caller::User;
use crate::db::{self, ConnectionRow, auth_kind, status};
use crate::error::ApiError;
use crate::events;
use crate::state::AppState;
use crate::vault::Field;

/// Body of `POST /api/v1/connections/hubspot/oauth`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct StartOAuth {
    /// Name of the connection to create (default `HubSpot`).
    #[serde(default)]
    pub name: Option<String>,
}

/// Answer of `POST /api/v1/connections/hubspot/oauth`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OAuthStarted {
    /// Send the user's browser here.
    pub authorize_url: String,
    /// The `state` is accepted until then, once.
    pub state_expires_at: chrono::DateTime<Utc>,
}

/// Query of the callback.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct CallbackQuery {
    /// The authorization code (on consent).
    pub code: Option<String>,
    /// The state handed out.
    pub state: Option<String>,
    /// HubSpot's error (`access_denied` when the user cancelled).
    pub error: Option<String>,
}

fn sign_state(state: &AppState, id: Uuid, org_id: Uuid, sub: &str) -> String {
    // A key from the vault's newest key; states live 10 minutes, so a vault rotation
    // at worst invalidates flows in progress.
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(state.vault.state_signing_key());
    let Ok(mut mac) = mac else {
        return String::new();
    };
    mac.update(format!("{id}|{org_id}|{sub}").as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Starts the OAuth flow.
#[utoipa::path(post, path = "/api/v1/connections/hubspot/oauth", tag = "connections",
    request_body = StartOAuth, responses((status = 200, body = OAuthStarted)))]
pub async fn start(
    state: web::Data<AppState>,
    user: User,
    body: Option<web::Json<StartOAuth>>,
) -> Result<HttpResponse, ApiError> {
    user.require_writer()?;
    let name = body
        .and_then(|b| b.into_inner().name)
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "HubSpot".to_owned());
    if name.len() > 200 {
        return Err(ApiError::InvalidRequest(
            "name must be at most 200 characters".to_owned(),
        ));
    }
    let id = Uuid::new_v4();
    let now = Utc::now();
    let expires_at = now + chrono::Duration::seconds(state.oauth.state_ttl_secs);
    let mut conn = state.pool.get().await?;
    db::insert_oauth_state(
        &mut conn,
        id,
        user.org_id,
        &user.sub,
        &name,
        now,
        expires_at,
    )
    .await?;
    let signed = format!("{id}.{}", sign_state(&state, id, user.org_id, &user.sub));
    let authorize_url = state.hubspot.authorize_url(
        &state.oauth.required_scopes,
        &state.oauth.optional_scopes,
        &signed,
    );
    Ok(HttpResponse::Ok().json(OAuthStarted {
        authorize_url,
        state_expires_at: expires_at,
    }))
}

/// How the callback ended, for the completion redirect.
struct Failure {
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        if let ApiError::Internal(cause) = &error {
            tracing::error!(error = format!("{cause:#}"), "OAuth callback failed");
        }
        Self {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

fn completion(state: &AppState, outcome: Result<Uuid, Failure>) -> HttpResponse {
    let mut url = match url::Url::parse(&state.oauth.completion_redirect_url) {
        Ok(url) => url,
        Err(_) => {
            return actix_web::ResponseError::error_response(&ApiError::Internal(anyhow::anyhow!(
                "oauth.completion_redirect_url is not a URL"
            )));
        }
    };
    {
        let mut query = url.query_pairs_mut();
        match &outcome {
            Ok(id) => {
                query.append_pair("outcome", "connected");
                query.append_pair("connection_id", &id.to_string());
            }
            Err(failure) => {
                query.append_pair("outcome", "error");
                query.append_pair("error", failure.code);
                query.append_pair("message", &failure.message);
            }
        }
    }
    if let Err(failure) = &outcome {
        tracing::info!(
            oauth.error = failure.code,
            "OAuth flow ended without a connection"
        );
    }
    HttpResponse::Found()
        .insert_header(("Location", url.to_string()))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// The redirect back from HubSpot's consent page.
#[utoipa::path(get, path = "/api/v1/oauth/hubspot/callback", tag = "connections",
    params(CallbackQuery),
    responses((status = 302, description = "to oauth.completion_redirect_url with outcome=connected or outcome=error")))]
pub async fn callback(
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let outcome = finish(&state, query.into_inner()).await;
    completion(&state, outcome)
}

async fn finish(state: &AppState, query: CallbackQuery) -> Result<Uuid, Failure> {
    let forged = || Failure::new("invalid_state", "the sign-in link is invalid; start again");
    let raw = query.state.as_deref().ok_or_else(forged)?;
    let (id, signature) = raw.split_once('.').ok_or_else(forged)?;
    let id = Uuid::parse_str(id).map_err(|_| forged())?;
    let now = Utc::now();
    let mut conn = state.pool.get().await.map_err(ApiError::from)?;
    // The state is consumed whatever happens next: a state is accepted once.
    let taken = db::take_oauth_state(&mut conn, id, now)
        .await
        .map_err(ApiError::from)?;
    let Some(taken) = taken else {
        return Err(Failure::new(
            "invalid_state",
            "the sign-in link expired or was already used; start again",
        ));
    };
    let expected = sign_state(state, id, taken.org_id, &taken.user_sub);
    let genuine: bool =
        subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), signature.as_bytes()).into();
    if !genuine {
        return Err(forged());
    }
    if let Some(error) = query.error.as_deref() {
        return Err(match error {
            "access_denied" => Failure::new(
                "access_denied",
                "access was not granted in HubSpot; nothing was connected",
            ),
            _ => Failure::new("oauth_error", "HubSpot ended the sign-in with an error"),
        });
    }
    let code = query
        .code
        .as_deref()
        .ok_or_else(|| Failure::new("invalid_request", "HubSpot sent no authorization code"))?;
    let tokens = state
        .hubspot
        .exchange_code(code)
        .await
        .map_err(token_endpoint_failure)?;
    let access = SecretString::from(tokens.access_token.clone());
    let refresh = tokens
        .refresh_token
        .clone()
        .map(SecretString::from)
        .ok_or_else(|| Failure::new("oauth_error", "HubSpot returned no refresh token"))?;
    let info = state
        .hubspot
        .token_info(access.expose_secret())
        .await
        .map_err(token_endpoint_failure)?;
    let portal_id = info
        .hub_id
        .or(tokens.hub_id)
        .ok_or_else(|| Failure::new("oauth_error", "HubSpot did not say which portal"))?;
    let mut scopes = if info.scopes.is_empty() {
        tokens.scopes.clone()
    } else {
        info.scopes.clone()
    };
    scopes.sort();
    scopes.dedup();
    let missing: Vec<&str> = state
        .oauth
        .required_scopes
        .iter()
        .filter(|s| !scopes.contains(s))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        if let Err(error) = state.hubspot.revoke(refresh.expose_secret()).await {
            tracing::warn!(error = %error, "revoking a refused grant failed");
        }
        return Err(Failure::new(
            "missing_scopes",
            format!("the grant lacks required scopes: {}", missing.join(", ")),
        ));
    }
    let details = state
        .hubspot
        .account_details(access.expose_secret())
        .await?;
    let expires_at = now + chrono::Duration::seconds(tokens.expires_in);
    let user = User {
        sub: taken.user_sub.clone(),
        org_id: taken.org_id,
        role: crate::caller::Role::Admin,
    };
    let connection_id = conn
        .transaction::<Uuid, ApiError, _>(async |conn| {
            // A live connection of the portal is re-authorized; else a disconnected one is
            // continued (same id, so its synced data and scores carry on).
            let existing = match db::live_connection_for_portal(conn, taken.org_id, portal_id)
                .await?
            {
                Some(row) => Some(row),
                None => {
                    db::disconnected_connection_for_portal(conn, taken.org_id, portal_id).await?
                }
            };
            let row = match existing {
                Some(row)
                    if row.auth_kind == auth_kind::PRIVATE_APP && row.status == status::ACTIVE =>
                {
                    return Err(ApiError::AlreadyConnected(format!(
                        "HubSpot portal {portal_id} is already connected in this organization"
                    )));
                }
                Some(mut row) => {
                    // Reconnecting (after reauth_required or a disconnect): new
                    // credentials, same id.
                    db::set_status(conn, row.id, status::ACTIVE, now).await?;
                    db::set_token_facts(conn, row.id, Some(expires_at), Some(&scopes), now).await?;
                    db::set_oauth_kind(conn, row.id, &user.sub, now).await?;
                    row.status = status::ACTIVE.to_owned();
                    row.scopes = scopes.clone();
                    row.auth_kind = auth_kind::OAUTH.to_owned();
                    row.disconnected_at = None;
                    row
                }
                None => {
                    let row = ConnectionRow {
                        id: Uuid::now_v7(),
                        org_id: taken.org_id,
                        name: taken.connection_name.clone(),
                        auth_kind: auth_kind::OAUTH.to_owned(),
                        status: status::ACTIVE.to_owned(),
                        portal_id,
                        account_type: details.account_type.clone(),
                        time_zone: details.time_zone.clone(),
                        company_currency: details.company_currency.clone(),
                        ui_domain: details.ui_domain.clone(),
                        data_hosting_location: details.data_hosting_location.clone(),
                        scopes: scopes.clone(),
                        connected_by: user.sub.clone(),
                        connected_at: now,
                        updated_at: now,
                        disconnected_at: None,
                        access_token_expires_at: Some(expires_at),
                        credential_version: 1,
                        tier: None,
                        api_limit_increase: false,
                    };
                    db::insert_connection(conn, &row).await?;
                    row
                }
            };
            state
                .store_secret(conn, row.id, Field::AccessToken, &access, now)
                .await?;
            state
                .store_secret(conn, row.id, Field::RefreshToken, &refresh, now)
                .await?;
            db::audit(
                conn,
                taken.org_id,
                &user.actor(),
                "connection.oauth_connected",
                Some(row.id),
                json!({"portal_id": portal_id, "scopes": scopes}),
            )
            .await?;
            events::established(conn, &row, events::user_actor(&user.sub), now).await?;
            Ok(row.id)
        })
        .await?;
    state.relay_waker.wake();
    tracing::info!(connection.id = %connection_id, hubspot.portal_id = portal_id, "connection established through OAuth");
    Ok(connection_id)
}

fn token_endpoint_failure(error: HubSpotError) -> Failure {
    match error {
        HubSpotError::OAuth { error, .. } => match error.as_str() {
            "invalid_client" => Failure::new(
                "invalid_client",
                "HubSpot does not accept this app's client id or secret; tell the operator",
            ),
            "redirect_uri_mismatch" => Failure::new(
                "redirect_uri_mismatch",
                "HubSpot says the redirect URI does not match the app's; tell the operator",
            ),
            "invalid_grant" => Failure::new(
                "invalid_grant",
                "the authorization code is invalid, expired or already used; start again",
            ),
            _ => Failure::new("oauth_error", "HubSpot refused the sign-in; start again"),
        },
        other => {
            tracing::warn!(error = %other, "HubSpot token endpoint failed");
            Failure::new(
                "hubspot_unavailable",
                "HubSpot did not answer; try again later",
            )
        }
    }
}
