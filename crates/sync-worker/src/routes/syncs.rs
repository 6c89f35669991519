//! `GET /api/v1/connections/{id}/syncs` and `.../syncs/latest`: a connection's sync runs
//! with per-object-type totals, counts, skip reasons and an estimated finish.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use platform::caller::Caller;
use serde::Serialize;
use uuid::Uuid;

use crate::context::Context;
use crate::db::{connections, runs};
use crate::error::ApiError;

/// One object type of a run.
#[derive(Debug, Serialize)]
pub struct ObjectProgress {
    /// `contact`, `company`, `deal`, `owner`, `pipeline`.
    pub object_type: String,
    /// HubSpot's count when the run started, when known.
    pub total: Option<i64>,
    /// Records read.
    pub fetched: i64,
    /// Records written to the mirror.
    pub written: i64,
    /// Records not kept as customers/records.
    pub skipped: i64,
    /// Reason -> count.
    pub skip_reasons: serde_json::Value,
    /// Records marked deleted.
    pub deleted: i64,
    /// fetched / total, 0-100, when the total is known.
    pub percent: Option<f64>,
}

/// A run as the API shows it.
#[derive(Debug, Serialize)]
pub struct SyncRunView {
    /// Run id.
    pub id: Uuid,
    /// Connection.
    pub connection_id: Uuid,
    /// `full` or `reconciliation`.
    pub mode: String,
    /// Why it ran.
    pub reason: String,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled`.
    pub state: String,
    /// When asked for.
    pub requested_at: DateTime<Utc>,
    /// When started.
    pub started_at: Option<DateTime<Utc>>,
    /// When finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Estimated finish of a running run, from its pace so far.
    pub estimated_finish_at: Option<DateTime<Utc>>,
    /// The last error (a paused run keeps running after it).
    pub last_error: Option<String>,
    /// Per object type.
    pub objects: Vec<ObjectProgress>,
}

async fn view(ctx: &Context, run: runs::Run) -> Result<SyncRunView, ApiError> {
    let mut conn = ctx
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("no database connection: {e}")))?;
    let objects = runs::objects(&mut conn, run.id).await?;
    let (mut fetched, mut total, mut total_known) = (0i64, 0i64, true);
    let objects: Vec<ObjectProgress> = objects
        .into_iter()
        .map(|o| {
            if ["contact", "company", "deal"].contains(&o.object_type.as_str()) {
                fetched += o.fetched;
                match o.total {
                    Some(t) => total += t,
                    None => total_known = false,
                }
            }
            ObjectProgress {
                percent: o
                    .total
                    .filter(|t| *t > 0)
                    .map(|t| (o.fetched as f64 * 100.0 / t as f64).min(100.0)),
                object_type: o.object_type,
                total: o.total,
                fetched: o.fetched,
                written: o.written,
                skipped: o.skipped,
                skip_reasons: o.skip_reasons,
                deleted: o.deleted,
            }
        })
        .collect();
    let estimated_finish_at = match (run.state.as_str(), run.started_at) {
        ("running", Some(started)) if total_known && fetched > 0 && total > fetched => {
            let elapsed = (Utc::now() - started).num_milliseconds().max(1);
            let remaining_ms = elapsed as f64 * (total - fetched) as f64 / fetched as f64;
            Some(Utc::now() + chrono::Duration::milliseconds(remaining_ms as i64))
        }
        _ => None,
    };
    Ok(SyncRunView {
        id: run.id,
        connection_id: run.connection_id,
        mode: run.mode,
        reason: run.reason,
        state: run.state,
        requested_at: run.requested_at,
        started_at: run.started_at,
        finished_at: run.finished_at,
        estimated_finish_at,
        last_error: run.last_error,
        objects,
    })
}

async fn runs_of(
    ctx: &Context,
    caller: &Caller,
    connection_id: Uuid,
    limit: i64,
) -> Result<Vec<runs::Run>, ApiError> {
    let mut conn = ctx
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("no database connection: {e}")))?;
    connections::find_in_org(&mut conn, caller.org_id, connection_id)
        .await?
        .ok_or(ApiError::NotFound("connection"))?;
    Ok(runs::list(&mut conn, caller.org_id, connection_id, limit).await?)
}

fn connection_id(path: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(path).map_err(|_| ApiError::NotFound("connection"))
}

/// `GET /api/v1/connections/{id}/syncs/latest`.
pub async fn latest(
    ctx: web::Data<Arc<Context>>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = connection_id(&path)?;
    let run = runs_of(&ctx, &caller, id, 1)
        .await?
        .into_iter()
        .next()
        .ok_or(ApiError::NotFound("sync run"))?;
    Ok(HttpResponse::Ok().json(view(&ctx, run).await?))
}

/// `GET /api/v1/connections/{id}/syncs`: the 50 most recent runs, newest first.
pub async fn list(
    ctx: web::Data<Arc<Context>>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = connection_id(&path)?;
    let mut out = Vec::new();
    for run in runs_of(&ctx, &caller, id, 50).await? {
        out.push(view(&ctx, run).await?);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "syncs": out })))
}
