//! The CRM object endpoints (hubspot-api.md §3): list, get, create, update,
//! archive, batch read/create/update/upsert/archive, merge and GDPR delete.
//!
//! Handlers take the portal lock, work, serialise while still holding it (so a
//! page is never copied) and emit webhooks only after releasing it.

use std::sync::Arc;

use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{id_string, inputs};
use crate::crm::{
    CrmError, PropSelection, RecordView, selection, type_id_is_primary, v3_associations,
};
use crate::http::{ApiError, ApiResult, Ctx, json_bytes, json_response};
use crate::model::{ObjectType, iso, now_ms};
use crate::state::PortalData;
use crate::webhooks::{Change, Source, emit};

/// Largest number of inputs in an object batch request.
pub const BATCH_LIMIT: usize = 100;

fn parse_limit(ctx: &Ctx, default: usize, max: usize) -> Result<usize, ApiError> {
    match ctx.q("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map(|l| l.clamp(1, max))
            .map_err(|_| ApiError::validation(format!("Invalid limit: {v}"))),
    }
}

fn parse_after(value: Option<&str>) -> Result<u64, ApiError> {
    match value {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| ApiError::validation(format!("Invalid after cursor: {v}"))),
    }
}

fn interned(data: &PortalData, ot: ObjectType, names: &[String]) -> Vec<Arc<str>> {
    names
        .iter()
        .filter_map(|n| data.schema(ot).intern(n))
        .collect()
}

#[derive(Serialize)]
struct Page<'a> {
    results: Vec<RecordView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paging: Option<Value>,
}

/// Cuts each type's embedded association list at `limit`, with paging past the cut.
fn cut_embedded(mut associations: Value, limit: Option<usize>) -> Value {
    let Some(limit) = limit else {
        return associations;
    };
    if let Some(by_type) = associations.as_object_mut() {
        for block in by_type.values_mut() {
            if let Some(results) = block.get_mut("results").and_then(Value::as_array_mut)
                && results.len() > limit
            {
                results.truncate(limit);
                block["paging"] = json!({"next": {"after": limit.to_string()}});
            }
        }
    }
    associations
}

/// `GET /crm/v3/objects/{t}`: one page of records.
pub(crate) fn list(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&[ot.read_scope()])?;
    let history_names = ctx.q_list("propertiesWithHistory");
    // Asking for history lowers the page size cap (the commonly cited 50).
    let max = if history_names.is_empty() { 100 } else { 50 };
    let limit = parse_limit(ctx, 10, max)?;
    let after = parse_after(ctx.q("after"))?;
    let props = ctx.q_list("properties");
    let assoc_types: Vec<ObjectType> = ctx
        .q_list("associations")
        .iter()
        .filter_map(|t| ObjectType::parse(t))
        .collect();
    let archived = ctx.q_bool("archived");
    let data = ctx.portal.data.read();
    let sel = selection(&data, ot, &props);
    let history = interned(&data, ot, &history_names);
    let store = data.store(ot);
    let map = if archived {
        &store.archived
    } else {
        &store.live
    };
    let mut iter = map.range(after..);
    let results: Vec<RecordView<'_>> = iter
        .by_ref()
        .take(limit)
        .map(|(_, r)| RecordView {
            record: r,
            props: &sel,
            history: &history,
            associations: if assoc_types.is_empty() {
                None
            } else {
                v3_associations(&data, ot, r.id, &assoc_types)
                    .map(|a| cut_embedded(a, ctx.sim.config.embedded_associations_limit))
            },
            archived,
            extra: None,
        })
        .collect();
    let paging = iter.next().map(|(id, _)| {
        json!({"next": {"after": id.to_string(), "link": format!("{}{}?after={id}", ctx.base_url(), ctx.path)}})
    });
    let bytes = serde_json::to_vec(&Page { results, paging })
        .map_err(|e| ApiError::new(500, "INTERNAL_ERROR", e.to_string()))?;
    drop(data);
    Ok(json_bytes(200, bytes))
}

fn not_found(id: &str) -> ApiError {
    ApiError::object_not_found(id)
}

/// `GET /crm/v3/objects/{t}/{id}`, by id, merged id or `idProperty`.
pub(crate) fn get(ctx: &Ctx, ot: ObjectType, id: &str) -> ApiResult {
    ctx.require_any(&[ot.read_scope()])?;
    let props = ctx.q_list("properties");
    let history_names = ctx.q_list("propertiesWithHistory");
    let assoc_types: Vec<ObjectType> = ctx
        .q_list("associations")
        .iter()
        .filter_map(|t| ObjectType::parse(t))
        .collect();
    let archived = ctx.q_bool("archived");
    let data = ctx.portal.data.read();
    let sel = selection(&data, ot, &props);
    let history = interned(&data, ot, &history_names);
    let record = if archived {
        id.parse::<u64>()
            .ok()
            .and_then(|n| data.store(ot).archived.get(&n))
    } else {
        data.find_by(ot, ctx.q("idProperty"), id)
            .and_then(|n| data.store(ot).live.get(&n))
    };
    let Some(record) = record else {
        return Err(not_found(id));
    };
    let view = RecordView {
        record,
        props: &sel,
        history: &history,
        associations: if assoc_types.is_empty() {
            None
        } else {
            v3_associations(&data, ot, record.id, &assoc_types)
                .map(|a| cut_embedded(a, ctx.sim.config.embedded_associations_limit))
        },
        archived,
        extra: None,
    };
    Ok(json_response(200, &view))
}

fn properties_of(body: &Value) -> Result<Map<String, Value>, ApiError> {
    match body.get("properties") {
        Some(Value::Object(m)) => Ok(m.clone()),
        None | Some(Value::Null) => Ok(Map::new()),
        Some(_) => Err(ApiError::validation("properties must be an object")),
    }
}

/// Parses `associations: [{to:{id}, types:[{associationCategory, associationTypeId}]}]` of a create input.
fn create_associations(
    ot: ObjectType,
    body: &Value,
) -> Result<Vec<(ObjectType, u64, bool)>, ApiError> {
    let mut out = Vec::new();
    let Some(list) = body.get("associations").and_then(Value::as_array) else {
        return Ok(out);
    };
    for a in list {
        let to_id = a
            .pointer("/to/id")
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            })
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| ApiError::validation("association is missing to.id"))?;
        let types = a
            .get("types")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if types.is_empty() {
            return Err(ApiError::validation("association is missing types"));
        }
        for t in types {
            let type_id = t
                .get("associationTypeId")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32;
            let found = ObjectType::ALL
                .into_iter()
                .find_map(|to| type_id_is_primary(ot, to, type_id).map(|p| (to, p)));
            let Some((to, primary)) = found else {
                return Err(ApiError::validation(format!(
                    "{type_id} is not a valid association type id for {}",
                    ot.plural()
                )));
            };
            out.push((to, to_id, primary));
        }
    }
    Ok(out)
}

fn finish(ctx: &Ctx, changes: &[Change]) {
    emit(&ctx.portal, changes, &Source::api());
}

/// `POST /crm/v3/objects/{t}`: 201 with the record, associations included.
pub(crate) fn create(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&[ot.write_scope()])?;
    let body: Value = ctx.json()?;
    let input = properties_of(&body)?;
    let assocs = create_associations(ot, &body)?;
    let mut data = ctx.portal.data.write();
    let values = data
        .normalize(ot, &input)
        .map_err(|e| ApiError::invalid_properties(&e))?;
    for (to, to_id, _) in &assocs {
        if !data.store(*to).live.contains_key(to_id) {
            return Err(ApiError::from_crm(CrmError::NotFound(*to_id)));
        }
    }
    let (id, mut changes) = data
        .create(ot, values, now_ms())
        .map_err(ApiError::from_crm)?;
    for (to, to_id, primary) in assocs {
        changes.extend(
            data.associate(ot, id, to, to_id, primary)
                .map_err(ApiError::from_crm)?,
        );
    }
    let resp = match data.store(ot).live.get(&id) {
        Some(record) => json_response(201, &full_view(record)),
        None => return Err(ApiError::new(500, "INTERNAL_ERROR", "record vanished")),
    };
    drop(data);
    finish(ctx, &changes);
    Ok(resp)
}

const ALL: PropSelection = PropSelection::All;

fn full_view(record: &crate::model::Record) -> RecordView<'_> {
    RecordView {
        record,
        props: &ALL,
        history: &[],
        associations: None,
        archived: false,
        extra: None,
    }
}

/// `PATCH /crm/v3/objects/{t}/{id}`.
pub(crate) fn update(ctx: &Ctx, ot: ObjectType, id: &str) -> ApiResult {
    ctx.require_any(&[ot.write_scope()])?;
    let body: Value = ctx.json()?;
    let input = properties_of(&body)?;
    let mut data = ctx.portal.data.write();
    let Some(n) = data.find_by(ot, ctx.q("idProperty"), id) else {
        return Err(not_found(id));
    };
    let values = data
        .normalize(ot, &input)
        .map_err(|e| ApiError::invalid_properties(&e))?;
    let changes = data
        .update(ot, n, values, now_ms())
        .map_err(ApiError::from_crm)?;
    let resp = match data.store(ot).live.get(&n) {
        Some(record) => json_response(200, &full_view(record)),
        None => return Err(not_found(id)),
    };
    drop(data);
    finish(ctx, &changes);
    Ok(resp)
}

/// `DELETE /crm/v3/objects/{t}/{id}`: 204, also for an unknown id.
pub(crate) fn archive(ctx: &Ctx, ot: ObjectType, id: &str) -> ApiResult {
    ctx.require_any(&[ot.write_scope()])?;
    let changes = match id.parse::<u64>() {
        Ok(n) => ctx.portal.data.write().archive(ot, n, now_ms()),
        Err(_) => Vec::new(),
    };
    finish(ctx, &changes);
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchBody<'a> {
    status: &'static str,
    results: Vec<RecordView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_errors: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<Value>,
    started_at: String,
    completed_at: String,
}

fn batch_response(
    ok_status: u16,
    results: Vec<RecordView<'_>>,
    errors: Vec<Value>,
    started: i64,
) -> HttpResponse {
    let status = if errors.is_empty() { ok_status } else { 207 };
    let body = BatchBody {
        status: "COMPLETE",
        results,
        num_errors: if errors.is_empty() {
            None
        } else {
            Some(errors.len())
        },
        errors,
        started_at: iso(started),
        completed_at: iso(now_ms()),
    };
    json_response(status, &body)
}

/// `POST .../batch/read`: 200, or 207 naming the ids not found.
pub(crate) fn batch_read(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&[ot.read_scope()])?;
    let started = now_ms();
    let body: Value = ctx.json()?;
    let inputs = inputs(&body, BATCH_LIMIT)?;
    let names: Vec<String> = body
        .get("properties")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let history_names: Vec<String> = body
        .get("propertiesWithHistory")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let id_property = body.get("idProperty").and_then(Value::as_str);
    let archived = ctx.q_bool("archived");
    let data = ctx.portal.data.read();
    let sel = selection(&data, ot, &names);
    let history = interned(&data, ot, &history_names);
    let mut results = Vec::new();
    let mut missing = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for input in &inputs {
        let Some(id) = id_string(input.get("id")) else {
            return Err(ApiError::validation("Each input needs an id"));
        };
        let found = if archived {
            id.parse::<u64>()
                .ok()
                .and_then(|n| data.store(ot).archived.get(&n))
        } else {
            data.find_by(ot, id_property, &id)
                .and_then(|n| data.store(ot).live.get(&n))
        };
        match found {
            Some(record) if seen.insert(record.id) => results.push(RecordView {
                record,
                props: &sel,
                history: &history,
                associations: None,
                archived,
                extra: None,
            }),
            Some(_) => {}
            None => missing.push(id),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![json!({"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", ot.upper()),
            "context": {"ids": missing}})]
    };
    Ok(batch_response(200, results, errors, started))
}

fn validation_error_entry(message: String, trace: Option<&str>, code: &str) -> Value {
    let mut e = json!({"status": "error", "category": "VALIDATION_ERROR", "message": message, "errors": [{"message": "", "code": code}]});
    if let Some(t) = trace {
        e["context"] = json!({"objectWriteTraceId": [t]});
    }
    e
}

/// `POST .../batch/create`: 201, or 207 per `objectWriteTraceId`.
pub(crate) fn batch_create(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&[ot.write_scope()])?;
    let started = now_ms();
    let body: Value = ctx.json()?;
    let inputs = inputs(&body, BATCH_LIMIT)?;
    let traced = !inputs.is_empty()
        && inputs.iter().all(|i| {
            i.get("objectWriteTraceId")
                .and_then(Value::as_str)
                .is_some()
        });
    let mut data = ctx.portal.data.write();
    // Validate everything first: without trace ids one bad input fails the whole batch.
    let mut prepared = Vec::new();
    for input in &inputs {
        let trace = input
            .get("objectWriteTraceId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let parsed = properties_of(input)
            .and_then(|p| {
                data.normalize(ot, &p)
                    .map_err(|e| ApiError::invalid_properties(&e))
            })
            .and_then(|v| create_associations(ot, input).map(|a| (v, a)));
        match parsed {
            Ok(ok) => prepared.push((trace, Ok(ok))),
            Err(e) if !traced => return Err(e),
            Err(e) => prepared.push((trace, Err(e))),
        }
    }
    let now = now_ms();
    let mut created = Vec::new();
    let mut errors = Vec::new();
    let mut changes = Vec::new();
    for (trace, parsed) in prepared {
        let outcome = parsed.and_then(|(values, assocs)| {
            let (id, mut ch) = data.create(ot, values, now).map_err(ApiError::from_crm)?;
            for (to, to_id, primary) in assocs {
                if let Ok(more) = data.associate(ot, id, to, to_id, primary) {
                    ch.extend(more);
                }
            }
            Ok((id, ch))
        });
        match outcome {
            Ok((id, ch)) => {
                changes.extend(ch);
                created.push((id, trace));
            }
            Err(e) if traced => {
                let message = e
                    .body
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("invalid input")
                    .to_owned();
                let code = if e.status == 409 {
                    "CONFLICT"
                } else {
                    "INVALID_INPUT"
                };
                errors.push(validation_error_entry(message, trace.as_deref(), code));
            }
            Err(e) => {
                // Without trace ids HubSpot fails the batch; records created so far stay, as they would.
                drop(data);
                finish(ctx, &changes);
                return Err(e);
            }
        }
    }
    let results: Vec<RecordView<'_>> = created
        .iter()
        .filter_map(|(id, trace)| {
            data.store(ot).live.get(id).map(|record| RecordView {
                record,
                props: &ALL,
                history: &[],
                associations: None,
                archived: false,
                extra: trace.as_ref().map(|t| ("objectWriteTraceId", json!(t))),
            })
        })
        .collect();
    let resp = batch_response(201, results, errors, started);
    drop(data);
    finish(ctx, &changes);
    Ok(resp)
}

/// `POST .../batch/update` and `.../batch/upsert` (`upsert`).
pub(crate) fn batch_update(ctx: &Ctx, ot: ObjectType, upsert: bool) -> ApiResult {
    ctx.require_any(&[ot.write_scope()])?;
    let started = now_ms();
    let body: Value = ctx.json()?;
    let inputs = inputs(&body, BATCH_LIMIT)?;
    let mut data = ctx.portal.data.write();
    let now = now_ms();
    let mut prepared = Vec::new();
    for input in &inputs {
        let Some(id) = id_string(input.get("id")) else {
            return Err(ApiError::validation("Each input needs an id"));
        };
        let id_property = input
            .get("idProperty")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if upsert && id_property.is_none() {
            return Err(ApiError::validation("idProperty is required for upsert"));
        }
        if let Some(p) = &id_property {
            let unique = p == "hs_object_id"
                || (ot == ObjectType::Contacts && p == "email")
                || data
                    .schema(ot)
                    .props
                    .get(p)
                    .is_some_and(|d| d.has_unique_value);
            if !unique {
                return Err(ApiError::validation(format!(
                    "{p} is not a unique identifier property"
                )));
            }
        }
        let props = properties_of(input)?;
        let values = data
            .normalize(ot, &props)
            .map_err(|e| ApiError::invalid_properties(&e))?;
        let trace = input
            .get("objectWriteTraceId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        prepared.push((id, id_property, values, trace));
    }
    let mut done: Vec<(u64, bool, Option<String>)> = Vec::new();
    let mut missing = Vec::new();
    let mut errors = Vec::new();
    let mut changes = Vec::new();
    for (id, id_property, mut values, trace) in prepared {
        let mut found = data.find_by(ot, id_property.as_deref(), &id);
        // A merged-away id resolves to its survivor for single-record calls, but batch
        // update refuses it (hubspot-api.md §3.1, "Merged IDs").
        if !upsert
            && matches!(id_property.as_deref(), None | Some("hs_object_id"))
            && found.is_some_and(|n| id.parse::<u64>() != Ok(n))
        {
            found = None;
        }
        match found {
            Some(n) => match data.update(ot, n, values, now) {
                Ok(ch) => {
                    changes.extend(ch);
                    done.push((n, false, trace));
                }
                Err(e) => errors.push(crm_batch_error(e, trace.as_deref())),
            },
            None if upsert => {
                if let Some(prop) = id_property.as_deref().filter(|p| *p != "hs_object_id")
                    && let Some(k) = data.schema(ot).intern(prop)
                {
                    values.retain(|(name, _)| &**name != prop);
                    values.push((k, id.clone()));
                }
                match data.create(ot, values, now) {
                    Ok((n, ch)) => {
                        changes.extend(ch);
                        done.push((n, true, trace));
                    }
                    Err(e) => errors.push(crm_batch_error(e, trace.as_deref())),
                }
            }
            None => missing.push(id),
        }
    }
    if !missing.is_empty() {
        errors.push(json!({"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", ot.upper()),
            "context": {"ids": missing}}));
    }
    let results: Vec<RecordView<'_>> = done
        .iter()
        .filter_map(|(id, new, trace)| {
            data.store(ot).live.get(id).map(|record| RecordView {
                record,
                props: &ALL,
                history: &[],
                associations: None,
                archived: false,
                extra: if upsert {
                    Some(("new", json!(new)))
                } else {
                    trace.as_ref().map(|t| ("objectWriteTraceId", json!(t)))
                },
            })
        })
        .collect();
    let resp = batch_response(200, results, errors, started);
    drop(data);
    finish(ctx, &changes);
    Ok(resp)
}

fn crm_batch_error(e: CrmError, trace: Option<&str>) -> Value {
    let api = ApiError::from_crm(e);
    let mut body = api.body;
    if let Some(t) = trace {
        body["context"] = json!({"objectWriteTraceId": [t]});
    }
    body
}

/// `POST .../batch/archive`: 204.
pub(crate) fn batch_archive(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&[ot.write_scope()])?;
    let body: Value = ctx.json()?;
    let inputs = inputs(&body, BATCH_LIMIT)?;
    let now = now_ms();
    let mut changes = Vec::new();
    {
        let mut data = ctx.portal.data.write();
        for input in &inputs {
            if let Some(n) = id_string(input.get("id")).and_then(|s| s.parse::<u64>().ok()) {
                changes.extend(data.archive(ot, n, now));
            }
        }
    }
    finish(ctx, &changes);
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /crm/v3/objects/{t}/merge`.
pub(crate) fn merge(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&[ot.write_scope()])?;
    let body: Value = ctx.json()?;
    let primary = id_string(body.get("primaryObjectId")).and_then(|s| s.parse::<u64>().ok());
    let other = id_string(body.get("objectIdToMerge")).and_then(|s| s.parse::<u64>().ok());
    let (Some(primary), Some(other)) = (primary, other) else {
        return Err(ApiError::validation(
            "primaryObjectId and objectIdToMerge are required",
        ));
    };
    let mut data = ctx.portal.data.write();
    let changes = data
        .merge(ot, primary, other, now_ms())
        .map_err(ApiError::from_crm)?;
    let resp = match data.store(ot).live.get(&primary) {
        Some(record) => json_response(200, &full_view(record)),
        None => return Err(not_found(&primary.to_string())),
    };
    drop(data);
    finish(ctx, &changes);
    Ok(resp)
}

/// `POST /crm/v3/objects/contacts/gdpr-delete`.
pub(crate) fn gdpr_delete(ctx: &Ctx) -> ApiResult {
    let ot = ObjectType::Contacts;
    ctx.require_any(&[ot.write_scope()])?;
    let body: Value = ctx.json()?;
    let Some(object_id) = id_string(body.get("objectId")) else {
        return Err(ApiError::validation("objectId is required"));
    };
    let id_property = body.get("idProperty").and_then(Value::as_str);
    let changes = {
        let mut data = ctx.portal.data.write();
        let Some(n) = data.find_by(ot, id_property, &object_id) else {
            return Err(not_found(&object_id));
        };
        data.privacy_delete(n).map_err(ApiError::from_crm)?
    };
    finish(ctx, &changes);
    Ok(HttpResponse::NoContent().finish())
}
