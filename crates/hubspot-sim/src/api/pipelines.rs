//! Pipelines (hubspot-api.md §6.2): the deal pipelines and their stages, with
//! `probability` and `isClosed` as strings. Other object types have none.

use serde_json::{Value, json};

use crate::http::{ApiError, ApiResult, Ctx, json_response};
use crate::model::{ObjectType, Pipeline, stage_json};

fn of(pipelines: &[Pipeline], ot: ObjectType) -> &[Pipeline] {
    if ot == ObjectType::Deals {
        pipelines
    } else {
        &[]
    }
}

fn find<'a>(pipelines: &'a [Pipeline], id: &str) -> Result<(usize, &'a Pipeline), ApiError> {
    pipelines
        .iter()
        .enumerate()
        .find(|(_, p)| p.id == id)
        .ok_or_else(|| ApiError::not_found(format!("Pipeline {id} does not exist")))
}

fn require_scope(ctx: &Ctx, ot: ObjectType) -> Result<(), ApiError> {
    ctx.require_any(&[ot.read_scope(), ot.schema_read_scope()])
}

/// `GET /crm/v3/pipelines/{t}`.
pub(crate) fn list(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    require_scope(ctx, ot)?;
    let data = ctx.portal.data.read();
    let results: Vec<Value> = of(&data.pipelines, ot)
        .iter()
        .enumerate()
        .map(|(i, p)| p.to_json(i))
        .collect();
    Ok(json_response(200, &json!({"results": results})))
}

/// `GET /crm/v3/pipelines/{t}/{id}`.
pub(crate) fn get(ctx: &Ctx, ot: ObjectType, id: &str) -> ApiResult {
    require_scope(ctx, ot)?;
    let data = ctx.portal.data.read();
    let (i, p) = find(of(&data.pipelines, ot), id)?;
    Ok(json_response(200, &p.to_json(i)))
}

/// `GET /crm/v3/pipelines/{t}/{id}/stages`.
pub(crate) fn stages(ctx: &Ctx, ot: ObjectType, id: &str) -> ApiResult {
    require_scope(ctx, ot)?;
    let data = ctx.portal.data.read();
    let (_, p) = find(of(&data.pipelines, ot), id)?;
    let results: Vec<Value> = p
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| stage_json(s, i, p.created_ms))
        .collect();
    Ok(json_response(200, &json!({"results": results})))
}

/// `GET /crm/v3/pipelines/{t}/{id}/stages/{stageId}`.
pub(crate) fn stage(ctx: &Ctx, ot: ObjectType, id: &str, stage_id: &str) -> ApiResult {
    require_scope(ctx, ot)?;
    let data = ctx.portal.data.read();
    let (_, p) = find(of(&data.pipelines, ot), id)?;
    match p.stages.iter().enumerate().find(|(_, s)| s.id == stage_id) {
        Some((i, s)) => Ok(json_response(200, &stage_json(s, i, p.created_ms))),
        None => Err(ApiError::not_found(format!(
            "Stage {stage_id} does not exist"
        ))),
    }
}
