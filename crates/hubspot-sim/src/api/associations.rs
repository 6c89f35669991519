//! Associations (hubspot-api.md §5): one record's associations (v4 shape, or v3's on
//! `/crm/v3/objects/...`), and the v4 batch endpoints with HubSpot's type ids.

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::{batch_body, id_of, inputs};
use crate::crm::{
    CrmError, RecordView, assoc_label, assoc_type_ids, assoc_type_name, selection,
    type_id_is_primary, v3_associations, v4_types,
};
use crate::http::{ApiError, ApiResult, Ctx, json_response};
use crate::model::{ObjectType, iso, now_ms};
use crate::webhooks::{ChangeKind, Source, emit};

/// Inputs per v4 association batch read at most.
pub const ASSOC_READ_LIMIT: usize = 1_000;
/// Inputs per v4 association batch create at most.
pub const ASSOC_CREATE_LIMIT: usize = 2_000;
/// Associations per `from` record in one batch-read result page.
pub const ASSOC_PAGE: usize = 500;

/// Which labels a batch create applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labels {
    /// `batch/create`: the `types` of each input (201, v4 result shape).
    Given,
    /// `batch/associate/default`: the unlabeled default type (200).
    Default,
}

fn record_id(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::validation(format!("Invalid id {id}")))
}

fn to_object_id(to_id: &str) -> Result<u64, ApiError> {
    to_id
        .parse()
        .map_err(|_| ApiError::validation("Invalid toObjectId"))
}

/// Whether `type_id` is valid from `from` to `to`, and primary; 400 otherwise.
fn spec_is_primary(from: ObjectType, to: ObjectType, spec: &Value) -> Result<bool, ApiError> {
    let type_id = spec
        .get("associationTypeId")
        .and_then(Value::as_u64)
        .unwrap_or(0) as u32;
    type_id_is_primary(from, to, type_id).ok_or_else(|| {
        ApiError::validation(format!(
            "{type_id} is not a valid association type from {} to {}",
            from.plural(),
            to.plural()
        ))
    })
}

/// `GET .../objects/{t}/{id}/associations/{toType}`: paged, v4 or v3 shape.
pub(crate) fn list(ctx: &Ctx, ot: ObjectType, id: &str, to: ObjectType, v3: bool) -> ApiResult {
    let from_id = record_id(id)?;
    ctx.require_any(&[ot.read_scope()])?;
    let limit = ctx
        .q("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(500)
        .clamp(1, 500);
    let after: u64 = ctx.q("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let data = ctx.portal.data.read();
    if !data.store(ot).live.contains_key(&from_id) {
        return Err(ApiError::from_crm(CrmError::NotFound(from_id)));
    }
    let edges: Vec<(u64, bool)> = data
        .associations_of(ot, from_id, to)
        .into_iter()
        .filter(|(t, _)| *t >= after)
        .collect();
    let page = &edges[..edges.len().min(limit)];
    let results: Vec<Value> = if v3 {
        page.iter()
            .flat_map(|(t, p)| {
                let mut v = Vec::new();
                if *p {
                    v.push(json!({"id": t.to_string(), "type": assoc_type_name(ot, to, true)}));
                }
                v.push(json!({"id": t.to_string(), "type": assoc_type_name(ot, to, false)}));
                v
            })
            .collect()
    } else {
        page.iter()
            .map(|(t, p)| json!({"toObjectId": t, "associationTypes": v4_types(ot, to, *p)}))
            .collect()
    };
    let mut out = json!({"results": results});
    if let Some((next, _)) = edges.get(limit) {
        out["paging"] = json!({"next": {"after": next.to_string()}});
    }
    Ok(json_response(200, &out))
}

/// `PUT .../associations/default/{toType}/{toId}`: the unlabeled default association.
pub(crate) fn put_default(
    ctx: &Ctx,
    ot: ObjectType,
    id: &str,
    to: ObjectType,
    to_id: &str,
) -> ApiResult {
    let from_id = record_id(id)?;
    ctx.require_any(&[ot.write_scope()])?;
    let to_id = to_object_id(to_id)?;
    associate(ctx, ot, from_id, to, to_id, false)?;
    let (unlabeled, _) = assoc_type_ids(ot, to);
    Ok(json_response(
        200,
        &json!({"status": "COMPLETE", "results": [{"from": {"id": from_id.to_string()}, "to": {"id": to_id.to_string()},
        "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": unlabeled}}],
        "startedAt": iso(now_ms()), "completedAt": iso(now_ms())}),
    ))
}

/// `PUT .../associations/{toType}/{toId}` with a body of association specs (v4): 201.
pub(crate) fn put_labelled(
    ctx: &Ctx,
    ot: ObjectType,
    id: &str,
    to: ObjectType,
    to_id: &str,
) -> ApiResult {
    let from_id = record_id(id)?;
    ctx.require_any(&[ot.write_scope()])?;
    let to_id = to_object_id(to_id)?;
    let body: Value = ctx.json()?;
    let specs = body
        .as_array()
        .cloned()
        .ok_or_else(|| ApiError::validation("Body must be an array of association specs"))?;
    let mut primary = false;
    for spec in &specs {
        primary |= spec_is_primary(ot, to, spec)?;
    }
    associate(ctx, ot, from_id, to, to_id, primary)?;
    let labels: Vec<&str> = if primary { vec!["Primary"] } else { Vec::new() };
    Ok(json_response(
        201,
        &json!({"fromObjectTypeId": ot.type_id(), "fromObjectId": from_id, "toObjectTypeId": to.type_id(),
        "toObjectId": to_id, "labels": labels}),
    ))
}

/// v3: `PUT /crm/v3/objects/{t}/{id}/associations/{toType}/{toId}/{associationType}`,
/// the type given by id or by name; answers with the record and its associations.
pub(crate) fn put_v3(
    ctx: &Ctx,
    ot: ObjectType,
    id: &str,
    to: ObjectType,
    to_id: &str,
    kind: &str,
) -> ApiResult {
    let from_id = record_id(id)?;
    ctx.require_any(&[ot.write_scope()])?;
    let to_id = to_object_id(to_id)?;
    let primary = match kind.parse::<u32>() {
        Ok(type_id) => type_id_is_primary(ot, to, type_id),
        Err(_) => [true, false]
            .into_iter()
            .find(|p| assoc_type_name(ot, to, *p) == kind),
    }
    .ok_or_else(|| ApiError::validation(format!("Unknown association type {kind}")))?;
    associate(ctx, ot, from_id, to, to_id, primary)?;
    let data = ctx.portal.data.read();
    let record = data
        .store(ot)
        .live
        .get(&from_id)
        .ok_or_else(|| ApiError::from_crm(CrmError::NotFound(from_id)))?;
    let sel = selection(&data, ot, &[]);
    let view = RecordView {
        record,
        props: &sel,
        history: &[],
        associations: v3_associations(&data, ot, from_id, &[to]),
        archived: false,
        extra: None,
    };
    Ok(json_response(200, &view))
}

/// `DELETE .../associations/{toType}/{toId}[/{type}]`: every association between the two.
pub(crate) fn remove(
    ctx: &Ctx,
    ot: ObjectType,
    id: &str,
    to: ObjectType,
    to_id: &str,
) -> ApiResult {
    let from_id = record_id(id)?;
    ctx.require_any(&[ot.write_scope()])?;
    let to_id = to_object_id(to_id)?;
    let changes = ctx.portal.data.write().disassociate(ot, from_id, to, to_id);
    emit(&ctx.portal, &changes, &Source::api());
    Ok(HttpResponse::NoContent().finish())
}

fn associate(
    ctx: &Ctx,
    from: ObjectType,
    from_id: u64,
    to: ObjectType,
    to_id: u64,
    primary: bool,
) -> Result<(), ApiError> {
    let changes = ctx
        .portal
        .data
        .write()
        .associate(from, from_id, to, to_id, primary)
        .map_err(ApiError::from_crm)?;
    emit(&ctx.portal, &changes, &Source::api());
    Ok(())
}

/// `POST /crm/v4/associations/{from}/{to}/batch/read`: up to 1,000 inputs, 500
/// associations per input page; inputs without associations are reported in a 207.
pub(crate) fn batch_read(ctx: &Ctx, from: ObjectType, to: ObjectType) -> ApiResult {
    ctx.require_any(&[from.read_scope()])?;
    let started = now_ms();
    let body: Value = ctx.json()?;
    let inputs = inputs(&body, ASSOC_READ_LIMIT)?;
    let data = ctx.portal.data.read();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &inputs {
        let Some(id) = id_of(input.get("id")) else {
            return Err(ApiError::validation("Each input needs an id"));
        };
        let after: u64 = input.get("after").and_then(|a| id_of(Some(a))).unwrap_or(0);
        let edges: Vec<(u64, bool)> = data
            .associations_of(from, id, to)
            .into_iter()
            .filter(|(t, _)| *t >= after)
            .collect();
        if edges.is_empty() {
            errors.push(json!({"status": "error", "category": "VALIDATION_ERROR", "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "context": {"fromObjectId": [id.to_string()]},
                "message": format!("No {} is associated with {} {id}.", to.singular(), from.singular())}));
            continue;
        }
        let page = &edges[..edges.len().min(ASSOC_PAGE)];
        let to_list: Vec<Value> = page
            .iter()
            .map(|(t, p)| json!({"toObjectId": t, "associationTypes": v4_types(from, to, *p)}))
            .collect();
        let mut result = json!({"from": {"id": id.to_string()}, "to": to_list});
        if let Some((next, _)) = edges.get(ASSOC_PAGE) {
            result["paging"] = json!({"next": {"after": next.to_string(), "link": null}});
        }
        results.push(result);
    }
    Ok(batch_body(200, results, errors, started))
}

/// `POST /crm/v4/associations/{from}/{to}/batch/create` and `.../batch/associate/default`.
pub(crate) fn batch_create(
    ctx: &Ctx,
    from: ObjectType,
    to: ObjectType,
    labels: Labels,
) -> ApiResult {
    ctx.require_any(&[from.write_scope()])?;
    let started = now_ms();
    let body: Value = ctx.json()?;
    let inputs = inputs(&body, ASSOC_CREATE_LIMIT)?;
    let mut results = Vec::new();
    let mut missing = Vec::new();
    let mut changes = Vec::new();
    {
        let mut data = ctx.portal.data.write();
        for input in &inputs {
            let (Some(a), Some(b)) = (id_of(input.get("from")), id_of(input.get("to"))) else {
                return Err(ApiError::validation("Each input needs from.id and to.id"));
            };
            let mut primary = false;
            if labels == Labels::Given {
                for spec in input
                    .get("types")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    primary |= spec_is_primary(from, to, &spec)?;
                }
            }
            match data.associate(from, a, to, b, primary) {
                Ok(ch) => {
                    changes.extend(ch);
                    let names: Vec<&str> = if primary { vec!["Primary"] } else { Vec::new() };
                    results.push(match labels {
                        Labels::Given => {
                            json!({"fromObjectTypeId": from.type_id(), "fromObjectId": a, "toObjectTypeId": to.type_id(), "toObjectId": b, "labels": names})
                        }
                        Labels::Default => {
                            json!({"from": {"id": a.to_string()}, "to": {"id": b.to_string()},
                               "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": assoc_type_ids(from, to).0}})
                        }
                    });
                }
                Err(_) => missing.push(format!("{a}->{b}")),
            }
        }
    }
    emit(&ctx.portal, &changes, &Source::api());
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![
            json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Some records do not exist", "context": {"pairs": missing}}),
        ]
    };
    let ok_status = match labels {
        Labels::Given => 201,
        Labels::Default => 200,
    };
    Ok(batch_body(ok_status, results, errors, started))
}

/// `POST /crm/v4/associations/{from}/{to}/batch/archive`: 204.
pub(crate) fn batch_archive(ctx: &Ctx, from: ObjectType, to: ObjectType) -> ApiResult {
    ctx.require_any(&[from.write_scope()])?;
    let body: Value = ctx.json()?;
    let mut changes = Vec::new();
    {
        let mut data = ctx.portal.data.write();
        for input in inputs(&body, ASSOC_CREATE_LIMIT)? {
            let Some(a) = id_of(input.get("from")) else {
                continue;
            };
            let targets: Vec<u64> = match input.get("to") {
                Some(Value::Array(list)) => list.iter().filter_map(|t| id_of(Some(t))).collect(),
                other => id_of(other).into_iter().collect(),
            };
            for b in targets {
                changes.extend(data.disassociate(from, a, to, b));
            }
        }
    }
    emit(&ctx.portal, &changes, &Source::api());
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /crm/v4/associations/{from}/{to}/batch/labels/archive`: removing the primary
/// label keeps the unlabeled association; removing the unlabeled type removes both.
pub(crate) fn batch_archive_labels(ctx: &Ctx, from: ObjectType, to: ObjectType) -> ApiResult {
    ctx.require_any(&[from.write_scope()])?;
    let body: Value = ctx.json()?;
    let mut changes = Vec::new();
    {
        let mut data = ctx.portal.data.write();
        for input in inputs(&body, ASSOC_CREATE_LIMIT)? {
            let (Some(a), Some(b)) = (id_of(input.get("from")), id_of(input.get("to"))) else {
                continue;
            };
            let ids: Vec<u32> = input
                .get("types")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|t| t.get("associationTypeId").and_then(Value::as_u64))
                        .map(|n| n as u32)
                        .collect()
                })
                .unwrap_or_default();
            let drop_unlabeled = ids
                .iter()
                .any(|t| type_id_is_primary(from, to, *t) == Some(false));
            let drop_primary = ids
                .iter()
                .any(|t| type_id_is_primary(from, to, *t) == Some(true));
            if drop_unlabeled {
                changes.extend(data.disassociate(from, a, to, b));
            } else if drop_primary {
                let was = data.disassociate(from, a, to, b);
                if !was.is_empty() {
                    changes.extend(was.into_iter().filter(|c| {
                        matches!(c.kind, ChangeKind::AssociationChange { primary: true, .. })
                    }));
                    let _ = data.associate(from, a, to, b, false);
                }
            }
        }
    }
    emit(&ctx.portal, &changes, &Source::api());
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /crm/v4/associations/{from}/{to}/labels`.
pub(crate) fn labels(ctx: &Ctx, from: ObjectType, to: ObjectType) -> ApiResult {
    ctx.require_any(&[from.read_scope()])?;
    let (unlabeled, primary) = assoc_type_ids(from, to);
    let mut results = Vec::new();
    if let Some(p) = primary {
        results
            .push(json!({"category": "HUBSPOT_DEFINED", "typeId": p, "label": assoc_label(true)}));
    }
    results.push(
        json!({"category": "HUBSPOT_DEFINED", "typeId": unlabeled, "label": assoc_label(false)}),
    );
    Ok(json_response(200, &json!({"results": results})))
}
