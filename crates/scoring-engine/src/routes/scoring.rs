//! `GET /api/v1/scoring/distribution`, `GET/PUT /api/v1/scoring/config` and
//! `POST /api/v1/scoring/config/preview`.

use actix_web::{HttpResponse, web};
use chrono::Duration;
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
    let owed = configs::owed_rescore(&mut conn, caller.org_id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "version": current.version,
        "created_at": current.created_at,
        "config": current.config,
        "rescore_pending": owed.is_some(),
    })))
}

/// `PUT /api/v1/scoring/config` (owner or admin): stores a new version, owed a rescore of
/// the org in the same transaction, and rescores the org on a task of its own, which takes
/// the org's rescore lock before the version is saved (so no scheduler pass can take the
/// rescore from it). Answers 200 with what the rescore did if it ends within
/// `scoring.config_rescore_wait_ms`, else 202 with the rescore still running: it goes on
/// after the answer, and if this process dies the scheduler of any replica finishes it
/// (the version stays owed until then). Also 202 if another whole-org rescore of the org
/// was running: it rescores under the new version before it ends.
pub async fn put_config(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    caller.require_writer()?;
    let config = parse_config(&body)?;
    let now = state.clock.now();
    let org_id = caller.org_id;
    let (saved, version) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(crate::scheduler::save_config_and_pay(
        state.get_ref().clone(),
        org_id,
        engine::ConfigSave {
            config: config.clone(),
            author: caller.subject.clone(),
            next_scheduled: now + state.settings.rescore_interval(),
            saved: Some(saved),
        },
    ));
    let Ok(version) = version.await else {
        // Nothing was saved; the task ended with why.
        return Err(match task.await {
            Ok(Err(error)) => error.into(),
            Ok(Ok(_)) => ApiError::Internal(anyhow::anyhow!(
                "the config save task ended with no version and no error"
            )),
            Err(error) => ApiError::Internal(error.into()),
        });
    };
    let wait = std::time::Duration::from_millis(state.settings.config_rescore_wait_ms);
    let rescored = match tokio::time::timeout(wait, task).await {
        Ok(Ok(Ok(Some(summary)))) => Some(summary),
        // Another task or replica holds the org's rescore (it goes on to this version),
        // or it failed and the scheduler retries it, or it is still running.
        Ok(Ok(Ok(None) | Err(_)) | Err(_)) | Err(_) => None,
    };
    tracing::info!(%org_id, version, rescored = rescored.is_some(), "scoring config saved");
    Ok(match rescored {
        Some(summary) => HttpResponse::Ok().json(json!({
            "version": version,
            "config": config,
            "rescored": summary,
        })),
        None => HttpResponse::Accepted().json(json!({
            "version": version,
            "config": config,
            "rescore": "running",
        })),
    })
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
        state.settings.rescore_lanes,
    )
    .await?;
    Ok(HttpResponse::Ok().json(preview))
}
