//! Properties and groups (§4), v4 associations (§5), owners and pipelines (§6),
//! account info and daily usage (§2) and timeline events (§7).

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::Method;
use serde_json::{Value, json};

use crate::crm::{
    CrmError, assoc_label, assoc_type_ids, assoc_type_name, type_id_is_primary, v4_types,
};
use crate::http::{ApiError, ApiResult, Ctx, json_response};
use crate::model::{ObjectType, PropOption, PropType, PropertyDef, PropertyGroup, iso, now_ms};
use crate::state::TokenKind;
use crate::webhooks::{Source, emit};

/// Inputs per v4 association batch read at most.
pub const ASSOC_READ_LIMIT: usize = 1_000;
/// Inputs per v4 association batch create at most.
pub const ASSOC_CREATE_LIMIT: usize = 2_000;
/// Associations per `from` record in one batch-read result page.
pub const ASSOC_PAGE: usize = 500;

fn no_route(ctx: &Ctx) -> ApiError {
    ApiError::new(
        404,
        "OBJECT_NOT_FOUND",
        format!("No route for {} {}", ctx.method, ctx.path),
    )
}

fn inputs(body: &Value, max: usize) -> Result<Vec<Value>, ApiError> {
    let inputs = body
        .get("inputs")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::validation("inputs is required"))?;
    if inputs.len() > max {
        return Err(ApiError::validation(format!(
            "Batch input limit exceeded: {} inputs were sent, the maximum is {max}.",
            inputs.len()
        )));
    }
    Ok(inputs)
}

fn id_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        Value::Object(o) => id_of(o.get("id")),
        _ => None,
    }
}

// ---------------------------------------------------------------- properties

/// `/crm/v3/properties/{objectType}/...`.
pub fn properties(ctx: &Ctx, ot: ObjectType, rest: &[&str]) -> ApiResult {
    let read = [ot.read_scope(), ot.schema_read_scope()];
    let write = [ot.schema_write_scope()];
    let m = &ctx.method;
    match rest {
        [] if m == Method::GET => {
            ctx.require_any(&read)?;
            let archived = ctx.q_bool("archived");
            let data = ctx.portal.data.read();
            let results: Vec<Value> = data
                .schema(ot)
                .props
                .values()
                .filter(|p| p.archived == archived)
                .map(PropertyDef::to_json)
                .collect();
            Ok(json_response(200, &json!({"results": results})))
        }
        [] if m == Method::POST => {
            ctx.require_any(&write)?;
            let body: Value = ctx.json()?;
            let def = create_property(ctx, ot, &body)?;
            Ok(json_response(201, &def.to_json()))
        }
        ["batch", "read"] if m == Method::POST => {
            ctx.require_any(&read)?;
            let body: Value = ctx.json()?;
            let data = ctx.portal.data.read();
            let mut results = Vec::new();
            let mut missing = Vec::new();
            for input in inputs(&body, 100)? {
                let name = input
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match data.schema(ot).props.get(name) {
                    Some(p) => results.push(p.to_json()),
                    None => missing.push(name.to_owned()),
                }
            }
            let mut out = json!({"status": "COMPLETE", "results": results, "startedAt": iso(now_ms()), "completedAt": iso(now_ms())});
            if missing.is_empty() {
                return Ok(json_response(200, &out));
            }
            out["numErrors"] = json!(1);
            out["errors"] = json!([{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Some properties do not exist", "context": {"names": missing}}]);
            Ok(json_response(207, &out))
        }
        ["batch", "create"] if m == Method::POST => {
            ctx.require_any(&write)?;
            let body: Value = ctx.json()?;
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for input in inputs(&body, 100)? {
                match create_property(ctx, ot, &input) {
                    Ok(def) => results.push(def.to_json()),
                    Err(e) => errors.push(e.body),
                }
            }
            let mut out = json!({"status": "COMPLETE", "results": results, "startedAt": iso(now_ms()), "completedAt": iso(now_ms())});
            if errors.is_empty() {
                return Ok(json_response(201, &out));
            }
            out["numErrors"] = json!(errors.len());
            out["errors"] = Value::Array(errors);
            Ok(json_response(207, &out))
        }
        ["batch", "archive"] if m == Method::POST => {
            ctx.require_any(&write)?;
            let body: Value = ctx.json()?;
            let mut data = ctx.portal.data.write();
            for input in inputs(&body, 100)? {
                let name = input
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Some(p) = data
                    .schema_mut(ot)
                    .props
                    .get_mut(name)
                    .filter(|p| !p.hubspot_defined)
                {
                    p.archived = true;
                }
            }
            Ok(HttpResponse::NoContent().finish())
        }
        ["groups"] if m == Method::GET => {
            ctx.require_any(&read)?;
            let data = ctx.portal.data.read();
            let results: Vec<&PropertyGroup> = data
                .schema(ot)
                .groups
                .values()
                .filter(|g| !g.archived)
                .collect();
            Ok(json_response(200, &json!({"results": results})))
        }
        ["groups"] if m == Method::POST => {
            ctx.require_any(&write)?;
            let body: Value = ctx.json()?;
            let (Some(name), Some(label)) = (
                body.get("name").and_then(Value::as_str),
                body.get("label").and_then(Value::as_str),
            ) else {
                return Err(ApiError::validation("name and label are required"));
            };
            let mut data = ctx.portal.data.write();
            let groups = &mut data.schema_mut(ot).groups;
            if groups.contains_key(name) {
                return Err(ApiError::new(
                    409,
                    "OBJECT_ALREADY_EXISTS",
                    format!("A property group named '{name}' already exists."),
                ));
            }
            let group = PropertyGroup {
                name: name.to_owned(),
                label: label.to_owned(),
                display_order: body
                    .get("displayOrder")
                    .and_then(Value::as_i64)
                    .unwrap_or(-1),
                archived: false,
            };
            groups.insert(name.to_owned(), group.clone());
            Ok(json_response(201, &group))
        }
        ["groups", name] => {
            let mut data = ctx.portal.data.write();
            let groups = &mut data.schema_mut(ot).groups;
            let Some(group) = groups.get_mut(*name) else {
                return Err(ApiError::not_found(format!(
                    "Property group {name} does not exist"
                )));
            };
            if m == Method::GET {
                ctx.require_any(&read)?;
                Ok(json_response(200, &*group))
            } else if m == Method::PATCH {
                ctx.require_any(&write)?;
                let body: Value = ctx.json()?;
                if let Some(l) = body.get("label").and_then(Value::as_str) {
                    group.label = l.to_owned();
                }
                if let Some(d) = body.get("displayOrder").and_then(Value::as_i64) {
                    group.display_order = d;
                }
                Ok(json_response(200, &*group))
            } else if m == Method::DELETE {
                ctx.require_any(&write)?;
                group.archived = true;
                Ok(HttpResponse::NoContent().finish())
            } else {
                Err(no_route(ctx))
            }
        }
        [name] => {
            let mut data = ctx.portal.data.write();
            let Some(prop) = data.schema_mut(ot).props.get_mut(*name) else {
                return Err(ApiError::not_found(format!(
                    "Unable to find property {name} for object type {}",
                    ot.plural()
                )));
            };
            if m == Method::GET {
                ctx.require_any(&read)?;
                Ok(json_response(200, &prop.to_json()))
            } else if m == Method::PATCH {
                ctx.require_any(&write)?;
                if prop.hubspot_defined {
                    return Err(ApiError::validation(format!(
                        "{name} is a HubSpot-defined property; its definition is read-only."
                    )));
                }
                let body: Value = ctx.json()?;
                if let Some(l) = body.get("label").and_then(Value::as_str) {
                    prop.label = l.to_owned();
                }
                if let Some(d) = body.get("description").and_then(Value::as_str) {
                    prop.description = d.to_owned();
                }
                if let Some(h) = body.get("hidden").and_then(Value::as_bool) {
                    prop.hidden = h;
                }
                if let Some(o) = body.get("options") {
                    prop.options = parse_options(o)?;
                }
                prop.updated_ms = now_ms();
                Ok(json_response(200, &prop.to_json()))
            } else if m == Method::DELETE {
                ctx.require_any(&write)?;
                if prop.hubspot_defined {
                    return Err(ApiError::validation(format!(
                        "{name} is a HubSpot-defined property and cannot be archived."
                    )));
                }
                prop.archived = true;
                Ok(HttpResponse::NoContent().finish())
            } else {
                Err(no_route(ctx))
            }
        }
        _ => Err(no_route(ctx)),
    }
}

fn parse_options(v: &Value) -> Result<Vec<PropOption>, ApiError> {
    let Some(list) = v.as_array() else {
        return Err(ApiError::validation("options must be an array"));
    };
    list.iter()
        .enumerate()
        .map(|(i, o)| {
            let label = o
                .get("label")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::validation("option label is required"))?;
            let value = o
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::validation("option value is required"))?;
            Ok(PropOption {
                label: label.to_owned(),
                value: value.to_owned(),
                display_order: o
                    .get("displayOrder")
                    .and_then(Value::as_i64)
                    .unwrap_or(i as i64),
                hidden: o.get("hidden").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect()
}

fn create_property(ctx: &Ctx, ot: ObjectType, body: &Value) -> Result<PropertyDef, ApiError> {
    let field = |k: &str| body.get(k).and_then(Value::as_str);
    let (Some(name), Some(label), Some(ptype), Some(field_type), Some(group)) = (
        field("name"),
        field("label"),
        field("type"),
        field("fieldType"),
        field("groupName"),
    ) else {
        return Err(ApiError::validation(
            "name, label, type, fieldType and groupName are required",
        ));
    };
    let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_name {
        return Err(ApiError::validation(format!(
            "Property name '{name}' must start with a letter and contain only lowercase letters, digits and underscores."
        )));
    }
    let Some(pt) = PropType::parse(ptype) else {
        return Err(ApiError::validation(format!(
            "Unknown property type '{ptype}'"
        )));
    };
    if !pt.accepts_field_type(field_type) {
        return Err(ApiError::validation(format!(
            "fieldType '{field_type}' is not valid for type '{ptype}'"
        )));
    }
    let options = match body.get("options") {
        Some(o) => parse_options(o)?,
        None => Vec::new(),
    };
    let unique = body
        .get("hasUniqueValue")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut data = ctx.portal.data.write();
    let schema = data.schema_mut(ot);
    if !schema.groups.contains_key(group) {
        return Err(ApiError::validation(format!(
            "Property group '{group}' does not exist"
        )));
    }
    if schema.props.contains_key(name) {
        return Err(ApiError::new(
            409,
            "OBJECT_ALREADY_EXISTS",
            format!("Property named '{name}' already exists."),
        ));
    }
    if unique && schema.props.values().filter(|p| p.has_unique_value).count() >= 10 {
        return Err(ApiError::validation(
            "At most 10 unique-value properties are allowed per object.",
        ));
    }
    let now = now_ms();
    let def = PropertyDef {
        name: Arc::from(name),
        label: label.to_owned(),
        ptype: pt,
        field_type: field_type.to_owned(),
        group_name: group.to_owned(),
        description: field("description").unwrap_or_default().to_owned(),
        options,
        hubspot_defined: false,
        has_unique_value: unique,
        read_only_value: false,
        hidden: body.get("hidden").and_then(Value::as_bool).unwrap_or(false),
        display_order: body
            .get("displayOrder")
            .and_then(Value::as_i64)
            .unwrap_or(-1),
        form_field: body
            .get("formField")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        created_ms: now,
        updated_ms: now,
        archived: false,
    };
    schema.props.insert(name.to_owned(), def.clone());
    Ok(def)
}

// ---------------------------------------------------------------- associations

/// `/crm/v4/objects/{t}/{id}/associations/...` and the v3/date-versioned equivalents.
pub fn object_associations(
    ctx: &Ctx,
    ot: ObjectType,
    id: &str,
    rest: &[&str],
    v3: bool,
) -> ApiResult {
    let from_id: u64 = id
        .parse()
        .map_err(|_| ApiError::validation(format!("Invalid id {id}")))?;
    let m = &ctx.method;
    match rest {
        [to] if m == Method::GET => {
            ctx.require_any(&[ot.read_scope()])?;
            let to = crate::api::parse_type(to)?;
            let limit = ctx
                .q("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(500)
                .clamp(1, 500);
            let after: u64 = ctx.q("after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let data = ctx.portal.data.read();
            if !data.store(ot).live.contains_key(&from_id) {
                return Err(ApiError::from_crm(CrmError::NotFound(from_id), ot.upper()));
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
                            v.push(
                                json!({"id": t.to_string(), "type": assoc_type_name(ot, to, true)}),
                            );
                        }
                        v.push(
                            json!({"id": t.to_string(), "type": assoc_type_name(ot, to, false)}),
                        );
                        v
                    })
                    .collect()
            } else {
                page.iter()
                    .map(
                        |(t, p)| json!({"toObjectId": t, "associationTypes": v4_types(ot, to, *p)}),
                    )
                    .collect()
            };
            let mut out = json!({"results": results});
            if let Some((next, _)) = edges.get(limit) {
                out["paging"] = json!({"next": {"after": next.to_string()}});
            }
            Ok(json_response(200, &out))
        }
        ["default", to, to_id] if m == Method::PUT => {
            ctx.require_any(&[ot.write_scope()])?;
            let to = crate::api::parse_type(to)?;
            let to_id: u64 = to_id
                .parse()
                .map_err(|_| ApiError::validation("Invalid toObjectId"))?;
            associate(ctx, ot, from_id, to, to_id, false)?;
            let (unlabeled, _) = assoc_type_ids(ot, to);
            Ok(json_response(
                200,
                &json!({"status": "COMPLETE", "results": [{"from": {"id": from_id.to_string()}, "to": {"id": to_id.to_string()},
                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": unlabeled}}],
                "startedAt": iso(now_ms()), "completedAt": iso(now_ms())}),
            ))
        }
        [to, to_id] if m == Method::PUT => {
            ctx.require_any(&[ot.write_scope()])?;
            let to = crate::api::parse_type(to)?;
            let to_id: u64 = to_id
                .parse()
                .map_err(|_| ApiError::validation("Invalid toObjectId"))?;
            let body: Value = ctx.json()?;
            let specs = body.as_array().cloned().ok_or_else(|| {
                ApiError::validation("Body must be an array of association specs")
            })?;
            let mut primary = false;
            for spec in &specs {
                let type_id = spec
                    .get("associationTypeId")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as u32;
                match type_id_is_primary(ot, to, type_id) {
                    Some(p) => primary |= p,
                    None => {
                        return Err(ApiError::validation(format!(
                            "{type_id} is not a valid association type from {} to {}",
                            ot.plural(),
                            to.plural()
                        )));
                    }
                }
            }
            associate(ctx, ot, from_id, to, to_id, primary)?;
            let labels: Vec<&str> = if primary { vec!["Primary"] } else { Vec::new() };
            Ok(json_response(
                201,
                &json!({"fromObjectTypeId": ot.type_id(), "fromObjectId": from_id, "toObjectTypeId": to.type_id(),
                "toObjectId": to_id, "labels": labels}),
            ))
        }
        // v3: PUT /crm/v3/objects/{t}/{id}/associations/{toType}/{toId}/{associationType}
        [to, to_id, kind] if m == Method::PUT => {
            ctx.require_any(&[ot.write_scope()])?;
            let to = crate::api::parse_type(to)?;
            let to_id: u64 = to_id
                .parse()
                .map_err(|_| ApiError::validation("Invalid toObjectId"))?;
            let primary = match kind.parse::<u32>() {
                Ok(type_id) => type_id_is_primary(ot, to, type_id),
                Err(_) => [true, false]
                    .into_iter()
                    .find(|p| assoc_type_name(ot, to, *p) == *kind),
            }
            .ok_or_else(|| ApiError::validation(format!("Unknown association type {kind}")))?;
            associate(ctx, ot, from_id, to, to_id, primary)?;
            let data = ctx.portal.data.read();
            let record = data
                .store(ot)
                .live
                .get(&from_id)
                .ok_or_else(|| ApiError::from_crm(CrmError::NotFound(from_id), ot.upper()))?;
            let sel = crate::crm::selection(&data, ot, &[]);
            let view = crate::crm::RecordView {
                record,
                props: &sel,
                history: &[],
                associations: crate::crm::v3_associations(&data, ot, from_id, &[to]),
                archived: false,
                extra: None,
            };
            Ok(json_response(200, &view))
        }
        [to, to_id] | [to, to_id, _] if m == Method::DELETE => {
            ctx.require_any(&[ot.write_scope()])?;
            let to = crate::api::parse_type(to)?;
            let to_id: u64 = to_id
                .parse()
                .map_err(|_| ApiError::validation("Invalid toObjectId"))?;
            let changes = ctx.portal.data.write().disassociate(ot, from_id, to, to_id);
            emit(&ctx.portal, &changes, &Source::api());
            Ok(HttpResponse::NoContent().finish())
        }
        _ => Err(no_route(ctx)),
    }
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
        .map_err(|e| ApiError::from_crm(e, from.upper()))?;
    emit(&ctx.portal, &changes, &Source::api());
    Ok(())
}

/// `/crm/v4/associations/{from}/{to}/...`.
pub fn associations_batch(ctx: &Ctx, from: ObjectType, to: ObjectType, rest: &[&str]) -> ApiResult {
    let m = &ctx.method;
    match rest {
        ["batch", "read"] if m == Method::POST => {
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
                let to_list: Vec<Value> = page.iter().map(|(t, p)| json!({"toObjectId": t, "associationTypes": v4_types(from, to, *p)})).collect();
                let mut result = json!({"from": {"id": id.to_string()}, "to": to_list});
                if let Some((next, _)) = edges.get(ASSOC_PAGE) {
                    result["paging"] = json!({"next": {"after": next.to_string(), "link": null}});
                }
                results.push(result);
            }
            let mut out = json!({"status": "COMPLETE", "results": results, "startedAt": iso(started), "completedAt": iso(now_ms())});
            if errors.is_empty() {
                return Ok(json_response(200, &out));
            }
            out["numErrors"] = json!(errors.len());
            out["errors"] = Value::Array(errors);
            Ok(json_response(207, &out))
        }
        ["batch", kind @ ("create" | "associate")] | ["batch", kind @ "associate", "default"]
            if m == Method::POST =>
        {
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
                    let (Some(a), Some(b)) = (id_of(input.get("from")), id_of(input.get("to")))
                    else {
                        return Err(ApiError::validation("Each input needs from.id and to.id"));
                    };
                    let mut primary = false;
                    if *kind == "create" {
                        for spec in input
                            .get("types")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                        {
                            let type_id = spec
                                .get("associationTypeId")
                                .and_then(Value::as_u64)
                                .unwrap_or(0) as u32;
                            match type_id_is_primary(from, to, type_id) {
                                Some(p) => primary |= p,
                                None => {
                                    return Err(ApiError::validation(format!(
                                        "{type_id} is not a valid association type"
                                    )));
                                }
                            }
                        }
                    }
                    match data.associate(from, a, to, b, primary) {
                        Ok(ch) => {
                            changes.extend(ch);
                            let labels: Vec<&str> =
                                if primary { vec!["Primary"] } else { Vec::new() };
                            results.push(if *kind == "create" {
                                json!({"fromObjectTypeId": from.type_id(), "fromObjectId": a, "toObjectTypeId": to.type_id(), "toObjectId": b, "labels": labels})
                            } else {
                                json!({"from": {"id": a.to_string()}, "to": {"id": b.to_string()},
                                       "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": assoc_type_ids(from, to).0}})
                            });
                        }
                        Err(_) => missing.push(format!("{a}->{b}")),
                    }
                }
            }
            emit(&ctx.portal, &changes, &Source::api());
            let mut out = json!({"status": "COMPLETE", "results": results, "startedAt": iso(started), "completedAt": iso(now_ms())});
            let ok_status = if *kind == "create" { 201 } else { 200 };
            if missing.is_empty() {
                return Ok(json_response(ok_status, &out));
            }
            out["numErrors"] = json!(1);
            out["errors"] = json!([{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Some records do not exist", "context": {"pairs": missing}}]);
            Ok(json_response(207, &out))
        }
        ["batch", "archive"] if m == Method::POST => {
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
                        Some(Value::Array(list)) => {
                            list.iter().filter_map(|t| id_of(Some(t))).collect()
                        }
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
        ["batch", "labels", "archive"] if m == Method::POST => {
            ctx.require_any(&[from.write_scope()])?;
            let body: Value = ctx.json()?;
            let mut changes = Vec::new();
            {
                let mut data = ctx.portal.data.write();
                for input in inputs(&body, ASSOC_CREATE_LIMIT)? {
                    let (Some(a), Some(b)) = (id_of(input.get("from")), id_of(input.get("to")))
                    else {
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
                                matches!(
                                    c.kind,
                                    crate::webhooks::ChangeKind::AssociationChange {
                                        primary: true,
                                        ..
                                    }
                                )
                            }));
                            let _ = data.associate(from, a, to, b, false);
                        }
                    }
                }
            }
            emit(&ctx.portal, &changes, &Source::api());
            Ok(HttpResponse::NoContent().finish())
        }
        ["labels"] if m == Method::GET => {
            ctx.require_any(&[from.read_scope()])?;
            let (unlabeled, primary) = assoc_type_ids(from, to);
            let mut results = Vec::new();
            if let Some(p) = primary {
                results.push(
                    json!({"category": "HUBSPOT_DEFINED", "typeId": p, "label": assoc_label(true)}),
                );
            }
            results.push(json!({"category": "HUBSPOT_DEFINED", "typeId": unlabeled, "label": assoc_label(false)}));
            Ok(json_response(200, &json!({"results": results})))
        }
        _ => Err(no_route(ctx)),
    }
}

// ---------------------------------------------------------------- owners & pipelines

/// `/crm/v3/owners[/{id}]`.
pub fn owners(ctx: &Ctx, rest: &[&str]) -> ApiResult {
    ctx.require_any(&["crm.objects.owners.read"])?;
    let archived = ctx.q_bool("archived");
    let data = ctx.portal.data.read();
    match rest {
        [] => {
            let limit = ctx
                .q("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(100)
                .clamp(1, 500);
            let after: u64 = ctx.q("after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let email = ctx.q("email").map(str::to_lowercase);
            let mut matching = data.owners.range(after..).map(|(_, o)| o).filter(|o| {
                o.archived == archived
                    && email.as_ref().is_none_or(|e| o.email.to_lowercase() == *e)
            });
            let page: Vec<Value> = matching.by_ref().take(limit).map(|o| o.to_json()).collect();
            let mut out = json!({"results": page});
            if let Some(next) = matching.next() {
                out["paging"] = json!({"next": {"after": next.id.to_string(), "link": format!("{}{}?after={}", ctx.base_url(), ctx.path, next.id)}});
            }
            Ok(json_response(200, &out))
        }
        [id] => {
            let by_user = ctx.q("idProperty") == Some("userId");
            let n: u64 = id
                .parse()
                .map_err(|_| ApiError::validation("Invalid owner id"))?;
            let owner = data
                .owners
                .values()
                .find(|o| if by_user { o.user_id == n } else { o.id == n });
            match owner {
                Some(o) => Ok(json_response(200, &o.to_json())),
                None => Err(ApiError::not_found(format!("Owner {id} not found"))),
            }
        }
        _ => Err(no_route(ctx)),
    }
}

/// `/crm/v3/pipelines/{objectType}/...` (deals).
pub fn pipelines(ctx: &Ctx, t: &str, rest: &[&str]) -> ApiResult {
    let ot = crate::api::parse_type(t)?;
    ctx.require_any(&[ot.read_scope(), ot.schema_read_scope()])?;
    if ctx.method != Method::GET {
        return Err(no_route(ctx));
    }
    let data = ctx.portal.data.read();
    let pipelines: &[crate::model::Pipeline] = if ot == ObjectType::Deals {
        &data.pipelines
    } else {
        &[]
    };
    let find = |id: &str| {
        pipelines
            .iter()
            .enumerate()
            .find(|(_, p)| p.id == id)
            .ok_or_else(|| ApiError::not_found(format!("Pipeline {id} does not exist")))
    };
    match rest {
        [] => {
            let results: Vec<Value> = pipelines
                .iter()
                .enumerate()
                .map(|(i, p)| p.to_json(i))
                .collect();
            Ok(json_response(200, &json!({"results": results})))
        }
        [id] => {
            let (i, p) = find(id)?;
            Ok(json_response(200, &p.to_json(i)))
        }
        [id, "stages"] => {
            let (_, p) = find(id)?;
            let results: Vec<Value> = p
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| crate::model::stage_json(s, i, p.created_ms))
                .collect();
            Ok(json_response(200, &json!({"results": results})))
        }
        [id, "stages", sid] => {
            let (_, p) = find(id)?;
            match p.stages.iter().enumerate().find(|(_, s)| s.id == *sid) {
                Some((i, s)) => Ok(json_response(
                    200,
                    &crate::model::stage_json(s, i, p.created_ms),
                )),
                None => Err(ApiError::not_found(format!("Stage {sid} does not exist"))),
            }
        }
        _ => Err(no_route(ctx)),
    }
}

// ---------------------------------------------------------------- account info

/// `GET /account-info/v3/details`.
pub fn account_details(ctx: &Ctx) -> ApiResult {
    if ctx.token.kind != TokenKind::PrivateApp {
        ctx.require_any(&["oauth"])?;
    }
    let p = &ctx.portal;
    let offset_min = p.utc_offset_ms / 60_000;
    let sign = if offset_min < 0 { '-' } else { '+' };
    let utc_offset = format!(
        "{sign}{:02}:{:02}",
        offset_min.abs() / 60,
        offset_min.abs() % 60
    );
    Ok(json_response(
        200,
        &json!({
            "portalId": p.id, "accountType": "STANDARD", "timeZone": p.time_zone, "companyCurrency": "USD",
            "additionalCurrencies": [], "utcOffset": utc_offset, "utcOffsetMilliseconds": p.utc_offset_ms,
            "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1",
        }),
    ))
}

/// `GET /account-info/v3/api-usage/daily/private-apps`.
pub fn daily_usage(ctx: &Ctx) -> ApiResult {
    let p = &ctx.portal;
    let now = now_ms();
    let used = {
        let limits = p.limits.lock();
        if limits.daily_day == p.day_number(now) {
            limits.daily_used
        } else {
            0
        }
    };
    Ok(json_response(
        200,
        &json!({"results": [{
            "name": "private-apps-api-calls-daily", "usageLimit": p.daily_limit(), "currentUsage": used,
            "collectedAt": iso(now), "fetchStatus": "SUCCESS", "resetsAt": iso(p.next_reset_ms(now)),
        }]}),
    ))
}

// ---------------------------------------------------------------- timeline

/// `/integrators/timeline/v3/events...` (and the older `/crm/v3/timeline/events`).
pub fn timeline(ctx: &Ctx, rest: &[&str]) -> ApiResult {
    if ctx.token.kind == TokenKind::PrivateApp {
        // Private apps do not support custom timeline events (§7).
        return Err(ApiError::new(
            403,
            "FORBIDDEN",
            "Private apps do not support custom timeline events.",
        ));
    }
    let m = &ctx.method;
    match rest {
        [] if m == Method::POST => {
            let body: Value = ctx.json()?;
            let stored = store_event(ctx, body)?;
            Ok(json_response(201, &stored))
        }
        ["batch", "create"] if m == Method::POST => {
            let body: Value = ctx.json()?;
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for input in inputs(&body, 500)? {
                match store_event(ctx, input) {
                    Ok(v) => results.push(v),
                    Err(e) => errors.push(e.body),
                }
            }
            let mut out = json!({"status": "COMPLETE", "results": results, "startedAt": iso(now_ms()), "completedAt": iso(now_ms())});
            if errors.is_empty() {
                return Ok(json_response(201, &out));
            }
            out["numErrors"] = json!(errors.len());
            out["errors"] = Value::Array(errors);
            Ok(json_response(207, &out))
        }
        [template, id] if m == Method::GET => {
            let data = ctx.portal.data.read();
            data.timeline
                .iter()
                .find(|e| {
                    e["eventTemplateId"].as_str() == Some(template) && e["id"].as_str() == Some(id)
                })
                .map(|e| json_response(200, e))
                .ok_or_else(|| ApiError::not_found(format!("Event {template}/{id} not found")))
        }
        _ => Err(no_route(ctx)),
    }
}

fn store_event(ctx: &Ctx, mut body: Value) -> Result<Value, ApiError> {
    let template = match body.get("eventTemplateId") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(ApiError::validation("eventTemplateId is required")),
    };
    let Some(id) = body
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
    else {
        return Err(ApiError::validation("id is required"));
    };
    match body.get("tokens") {
        Some(Value::Object(tokens)) => {
            if let Some((k, _)) = tokens
                .iter()
                .find(|(_, v)| !(v.is_string() || v.is_number() || v.is_boolean()))
            {
                return Err(ApiError::validation(format!("Token {k} must be a string")));
            }
        }
        _ => {
            return Err(ApiError::validation(
                "tokens is required and must be an object",
            ));
        }
    }
    if let Some(ts) = body.get("timestamp").and_then(Value::as_str)
        && crate::model::parse_instant(ts).is_none()
    {
        return Err(ApiError::validation(format!(
            "timestamp {ts} is not a valid ISO 8601 instant"
        )));
    }
    let data_read = ctx.portal.data.read();
    let (object_type, object_id) = if let Some(oid) = id_of(body.get("objectId")) {
        let ot = ObjectType::ALL
            .into_iter()
            .find(|ot| data_read.store(*ot).live.contains_key(&oid));
        match ot {
            Some(ot) => (ot, oid),
            None => return Err(ApiError::not_found(format!("No CRM object with id {oid}"))),
        }
    } else if let Some(email) = body.get("email").and_then(Value::as_str) {
        match data_read.find_by(ObjectType::Contacts, Some("email"), email) {
            Some(cid) => (ObjectType::Contacts, cid),
            None => {
                return Err(ApiError::not_found(format!(
                    "No contact with email {email}"
                )));
            }
        }
    } else if let Some(domain) = body.get("domain").and_then(Value::as_str) {
        match data_read.find_by(ObjectType::Companies, Some("domain"), domain) {
            Some(cid) => (ObjectType::Companies, cid),
            None => {
                return Err(ApiError::not_found(format!(
                    "No company with domain {domain}"
                )));
            }
        }
    } else if body.get("utk").and_then(Value::as_str).is_some() {
        (ObjectType::Contacts, 0)
    } else {
        return Err(ApiError::validation(
            "One of objectId, email, utk or domain is required",
        ));
    };
    drop(data_read);
    ctx.require_any(&["timeline", object_type.write_scope()])?;
    let mut data = ctx.portal.data.write();
    if data
        .timeline
        .iter()
        .any(|e| e["eventTemplateId"].as_str() == Some(&template) && e["id"].as_str() == Some(&id))
    {
        return Err(ApiError::new(
            409,
            "CONFLICT",
            format!("An event with id {id} already exists for template {template}"),
        ));
    }
    body["eventTemplateId"] = json!(template);
    body["objectType"] = json!(object_type.upper());
    if object_id != 0 {
        body["objectId"] = json!(object_id.to_string());
    }
    body["createdAt"] = json!(iso(now_ms()));
    data.timeline.push(body.clone());
    Ok(body)
}
