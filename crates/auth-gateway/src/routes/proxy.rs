//! Forwarding `/api/v1` routes owned by other services (docs/internal-api.md): the
//! caller's role is checked, a `/connections/{id}/...` id must belong to the caller's org,
//! and the request goes on with a freshly minted internal token for that service, the
//! request id, a time limit and a body limit. A down upstream is a 502, a slow one a 504.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt as _;
use serde_json::json;
use uuid::Uuid;

use crate::caller::User;
use crate::error::ApiError;
use crate::state::AppState;

/// A service `/api/v1` routes are forwarded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// sync-worker.
    SyncWorker,
    /// scoring-engine.
    ScoringEngine,
    /// writeback-worker.
    WritebackWorker,
}

impl Upstream {
    /// The service's name, which is also the internal token's audience.
    pub fn name(self) -> &'static str {
        match self {
            Self::SyncWorker => "sync-worker",
            Self::ScoringEngine => "scoring-engine",
            Self::WritebackWorker => "writeback-worker",
        }
    }

    /// The configured base URL.
    pub fn base_url(self, state: &AppState) -> &str {
        match self {
            Self::SyncWorker => &state.upstreams.sync_worker,
            Self::ScoringEngine => &state.upstreams.scoring_engine,
            Self::WritebackWorker => &state.upstreams.writeback_worker,
        }
    }
}

/// Every forwarded route: method (`*` for any), path pattern below `/api/v1`, owner.
pub const FORWARDED: &[(&str, &str, Upstream)] = &[
    ("GET", "/connections/{id}/syncs", Upstream::SyncWorker),
    (
        "GET",
        "/connections/{id}/syncs/latest",
        Upstream::SyncWorker,
    ),
    (
        "GET",
        "/connections/{id}/properties/{object_type}",
        Upstream::SyncWorker,
    ),
    ("GET", "/connections/{id}/mappings", Upstream::SyncWorker),
    ("PUT", "/connections/{id}/mappings", Upstream::SyncWorker),
    (
        "*",
        "/connections/{id}/writeback",
        Upstream::WritebackWorker,
    ),
    (
        "*",
        "/connections/{id}/writeback/status",
        Upstream::WritebackWorker,
    ),
    (
        "*",
        "/connections/{id}/writeback/backfill",
        Upstream::WritebackWorker,
    ),
    ("*", "/scoring", Upstream::ScoringEngine),
    ("*", "/scoring/{tail:.*}", Upstream::ScoringEngine),
    ("GET", "/customers", Upstream::ScoringEngine),
    ("GET", "/customers/{id}", Upstream::ScoringEngine),
];

/// Registers the forwarded routes (inside the `/api/v1` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    for (method, path, upstream) in FORWARDED {
        let upstream = *upstream;
        let handler =
            move |state: web::Data<AppState>, user: User, req: HttpRequest, body: web::Payload| {
                forward(state, user, req, body, upstream)
            };
        let route = match *method {
            "GET" => web::get(),
            "PUT" => web::put(),
            _ => web::route(),
        };
        cfg.route(path, route.to(handler));
    }
}

/// The internal token for a request forwarded to `audience` on `user`'s behalf. The one
/// place that mints: the signing scheme changes here alone.
pub fn mint_internal_token(
    state: &AppState,
    audience: &str,
    user: &User,
) -> Result<String, ApiError> {
    state
        .internal_jwt
        .mint(
            audience,
            &user.actor(),
            Some(user.org_id),
            vec![user.role.as_str().to_owned()],
        )
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("minting an internal token")))
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::InvalidRequest("the body could not be read".to_owned()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "the body is larger than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

async fn forward(
    state: web::Data<AppState>,
    user: User,
    req: HttpRequest,
    payload: web::Payload,
    upstream: Upstream,
) -> Result<HttpResponse, ApiError> {
    let method = req.method().clone();
    if !matches!(method, Method::GET | Method::HEAD) {
        user.require_writer()?;
    }
    if let Some(id) = req.match_info().get("id")
        && req.path().contains("/connections/")
    {
        let id = Uuid::parse_str(id).map_err(|_| ApiError::connection_not_found())?;
        super::connections::owned_connection(&state, &user, id).await?;
    }
    let body = read_body(payload, state.upstreams.max_body_bytes).await?;
    let request_id = super::request_id(&req).unwrap_or_else(|| Uuid::now_v7().to_string());
    let token = mint_internal_token(&state, upstream.name(), &user)?;
    let url = format!(
        "{}{}",
        upstream.base_url(&state).trim_end_matches('/'),
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(req.path())
    );
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
        .map_err(|_| ApiError::InvalidRequest("unsupported method".to_owned()))?;
    let mut request = state
        .http
        .request(method.clone(), url)
        .bearer_auth(token)
        .header("x-request-id", &request_id);
    for name in ["content-type", "accept", "if-match", "if-none-match"] {
        if let Some(value) = req.headers().get(name) {
            request = request.header(name, value.as_bytes());
        }
    }
    let response = match request.body(body).send().await {
        Ok(response) => response,
        Err(error) if error.is_timeout() => {
            tracing::warn!(upstream = upstream.name(), request_id, "upstream timed out");
            return Err(ApiError::UpstreamTimeout(format!(
                "{} did not answer in time",
                upstream.name()
            )));
        }
        Err(error) => {
            tracing::warn!(upstream = upstream.name(), request_id, error = %error.without_url(), "upstream unreachable");
            return Err(ApiError::UpstreamUnavailable(format!(
                "{} is unavailable",
                upstream.name()
            )));
        }
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(error) if error.is_timeout() => {
            return Err(ApiError::UpstreamTimeout(format!(
                "{} did not answer in time",
                upstream.name()
            )));
        }
        Err(_) => {
            return Err(ApiError::UpstreamUnavailable(format!(
                "{} broke off its answer",
                upstream.name()
            )));
        }
    };
    if method != reqwest::Method::GET && (200..300).contains(&status) {
        record_change(&state, &user, &req, upstream).await;
    }
    let mut answer = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
    );
    answer.insert_header(("x-request-id", request_id));
    if let Some(content_type) = content_type {
        answer.insert_header(("content-type", content_type));
    }
    Ok(answer.body(bytes))
}

/// Records a successful change made through another service in the audit log (method
/// and path only: bodies may hold anything).
async fn record_change(state: &AppState, user: &User, req: &HttpRequest, upstream: Upstream) {
    let connection_id = req
        .match_info()
        .get("id")
        .filter(|_| req.path().contains("/connections/"))
        .and_then(|id| Uuid::parse_str(id).ok());
    let pattern = req.match_pattern().unwrap_or_default();
    let action = format!("{} {}", req.method(), pattern);
    let result = async {
        let mut conn = state.pool.get().await?;
        crate::db::audit(
            &mut conn,
            user.org_id,
            &user.actor(),
            &action,
            connection_id,
            json!({"service": upstream.name(), "path": req.path()}),
        )
        .await?;
        Ok::<(), ApiError>(())
    }
    .await;
    if let Err(error) = result {
        tracing::error!(error = %error, action, "could not record a change in the audit log");
    }
}
