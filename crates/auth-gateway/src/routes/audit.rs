//! `GET /api/v1/audit`: who changed what in the caller's org, newest first (admins only).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::caller::User;
use crate::db::{self, AuditEntry};
use crate::error::ApiError;
use crate::state::AppState;

/// Paging of the audit log.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Entries older than this entry id.
    pub before: Option<i64>,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// The audit answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

/// Lists the org's audit entries.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403)))]
pub async fn list(
    state: web::Data<AppState>,
    user: User,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    user.require_writer()?;
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    let mut conn = state.pool.get().await?;
    let entries = db::list_audit(&mut conn, user.org_id, query.before, limit).await?;
    Ok(HttpResponse::Ok().json(AuditPage { entries }))
}
