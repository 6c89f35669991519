//! `GET /api/v1/scoring/distribution`, `GET/PUT /api/v1/scoring/config` and
//! `POST /api/v1/scoring/config/preview`.

use actix_web::{HttpResponse, web};
use chrono::Duration;
use diesel_async::AsyncConnection;
use platform::amqp::MessageMeta;
use platform::caller::Caller;
use serde_json::json;

use crate::db::{configs, reads};
use crate::engine;
use crate::error::ApiError;
use crate::model::ModelConfig;
use crate::state::AppState;

fn delta(now: &reads::Distribution, then: &reads::Distribution) -> serde_json::Value {
    json!({
        "healthy": now.healthy - then.healthy,
        "at_risk": now.at_risk - then.at_risk,
        "critical": now.critical - then.critical,
        "none": now.none - then.none,
        "mean_score": match (now.mean_score, then.mean_score) {
            (Some(n), Some(t)) => Some(n - t),
            _ => None,
        },
    })
}

fn counts(d: &reads::Distribution) -> serde_json::Value {
    json!({
        "healthy": d.healthy,
        "at_risk": d.at_risk,
        "critical": d.critical,
        "none": d.none,
        "mean_score": d.mean_score,
    })
}

/// `GET /api/v1/scoring/distribution`: counts per risk level, mean score, and their change
/// over 7 and 30 days.
pub async fn distribution(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let current = reads::distribution_now(&mut conn, caller.org_id).await?;
    let week = reads::distribution_at(&mut conn, caller.org_id, now - Duration::days(7)).await?;
    let month = reads::distribution_at(&mut conn, caller.org_id, now - Duration::days(30)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "current": counts(&current),
        "days_7": {"then": counts(&week), "change": delta(&current, &week)},
        "days_30": {"then": counts(&month), "change": delta(&current, &month)},
    })))
}

/// Parses a config body, naming the field of a type error.
fn parse_config(body: &[u8]) -> Result<ModelConfig, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    let config: ModelConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        ApiError::bad(&field, format!("{field}: {}", e.inner()))
    })?;
    let errors = config.validate();
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ApiError::InvalidConfig(errors))
    }
}

/// `GET /api/v1/scoring/config`: the config in force (version 0 is the built-in default).
pub async fn get_config(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let current = configs::current(&mut conn, caller.org_id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "version": current.version,
        "created_at": current.created_at,
        "config": current.config,
    })))
}

/// `PUT /api/v1/scoring/config` (owner or admin): stores a new version and rescores the
/// org with it before answering.
pub async fn put_config(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    caller.require_writer()?;
    let config = parse_config(&body)?;
    let now = state.clock.now();
    let org_id = caller.org_id;
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let version = conn
        .transaction(async |conn| {
            crate::db::lock_org(conn, org_id).await?;
            configs::save(conn, org_id, &config, &caller.subject, now).await
        })
        .await?;
    drop(conn);
    let trace = MessageMeta::start_trace(Some(org_id));
    let summary = engine::rescore_org(
        &state.pool,
        org_id,
        now,
        state.settings.batch_size,
        &trace.correlation_id,
        engine::InputSource::Stored,
    )
    .await?;
    state.relay_waker.wake();
    state.metrics.record("config_change", summary);
    tracing::info!(%org_id, version, changed = summary.changed, "scoring config saved; org rescored");
    Ok(HttpResponse::Ok().json(json!({
        "version": version,
        "config": config,
        "rescored": summary,
    })))
}

/// `POST /api/v1/scoring/config/preview`: what saving the config would do, stored nowhere.
pub async fn preview(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let config = parse_config(&body)?;
    let now = state.clock.now();
    let preview = engine::preview(
        &state.pool,
        caller.org_id,
        &config,
        now,
        state.settings.batch_size,
    )
    .await?;
    Ok(HttpResponse::Ok().json(preview))
}
