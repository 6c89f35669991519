//! Properties and property groups (hubspot-api.md §4): list, read, create (409 on an
//! existing name, type/fieldType pairs checked), update and archive custom properties;
//! HubSpot-defined ones are read-only.

use std::sync::Arc;

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::{batch_body, inputs};
use crate::http::{ApiError, ApiResult, Ctx, json_response};
use crate::model::{ObjectType, PropOption, PropType, PropertyDef, PropertyGroup, now_ms};

/// Inputs per property batch request at most.
const BATCH_LIMIT: usize = 100;

fn read_scopes(ot: ObjectType) -> [&'static str; 2] {
    [ot.read_scope(), ot.schema_read_scope()]
}

fn write_scopes(ot: ObjectType) -> [&'static str; 1] {
    [ot.schema_write_scope()]
}

/// `GET /crm/v3/properties/{t}` (no paging; `archived=true` lists archived ones).
pub(crate) fn list(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&read_scopes(ot))?;
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

/// `POST /crm/v3/properties/{t}`: 201.
pub(crate) fn create(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&write_scopes(ot))?;
    let body: Value = ctx.json()?;
    let def = create_property(ctx, ot, &body)?;
    Ok(json_response(201, &def.to_json()))
}

/// `POST /crm/v3/properties/{t}/batch/read`: 200, or 207 naming the unknown ones.
pub(crate) fn batch_read(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&read_scopes(ot))?;
    let started = now_ms();
    let body: Value = ctx.json()?;
    let data = ctx.portal.data.read();
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in inputs(&body, BATCH_LIMIT)? {
        let name = input
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match data.schema(ot).props.get(name) {
            Some(p) => results.push(p.to_json()),
            None => missing.push(name.to_owned()),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![
            json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Some properties do not exist", "context": {"names": missing}}),
        ]
    };
    Ok(batch_body(200, results, errors, started))
}

/// `POST /crm/v3/properties/{t}/batch/create`: 201, or 207 with the failed inputs.
pub(crate) fn batch_create(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&write_scopes(ot))?;
    let started = now_ms();
    let body: Value = ctx.json()?;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in inputs(&body, BATCH_LIMIT)? {
        match create_property(ctx, ot, &input) {
            Ok(def) => results.push(def.to_json()),
            Err(e) => errors.push(e.body),
        }
    }
    Ok(batch_body(201, results, errors, started))
}

/// `POST /crm/v3/properties/{t}/batch/archive`: 204; HubSpot-defined ones stay.
pub(crate) fn batch_archive(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&write_scopes(ot))?;
    let body: Value = ctx.json()?;
    let mut data = ctx.portal.data.write();
    for input in inputs(&body, BATCH_LIMIT)? {
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

/// `GET /crm/v3/properties/{t}/groups`.
pub(crate) fn list_groups(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&read_scopes(ot))?;
    let data = ctx.portal.data.read();
    let results: Vec<&PropertyGroup> = data
        .schema(ot)
        .groups
        .values()
        .filter(|g| !g.archived)
        .collect();
    Ok(json_response(200, &json!({"results": results})))
}

/// `POST /crm/v3/properties/{t}/groups`: 201, or 409 on an existing name.
pub(crate) fn create_group(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&write_scopes(ot))?;
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

fn group_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Property group {name} does not exist"))
}

/// `GET /crm/v3/properties/{t}/groups/{name}`.
pub(crate) fn get_group(ctx: &Ctx, ot: ObjectType, name: &str) -> ApiResult {
    let data = ctx.portal.data.read();
    let group = data
        .schema(ot)
        .groups
        .get(name)
        .ok_or_else(|| group_not_found(name))?;
    ctx.require_any(&read_scopes(ot))?;
    Ok(json_response(200, group))
}

/// `PATCH /crm/v3/properties/{t}/groups/{name}`: label and display order.
pub(crate) fn update_group(ctx: &Ctx, ot: ObjectType, name: &str) -> ApiResult {
    let mut data = ctx.portal.data.write();
    let group = data
        .schema_mut(ot)
        .groups
        .get_mut(name)
        .ok_or_else(|| group_not_found(name))?;
    ctx.require_any(&write_scopes(ot))?;
    let body: Value = ctx.json()?;
    if let Some(l) = body.get("label").and_then(Value::as_str) {
        group.label = l.to_owned();
    }
    if let Some(d) = body.get("displayOrder").and_then(Value::as_i64) {
        group.display_order = d;
    }
    Ok(json_response(200, &*group))
}

/// `DELETE /crm/v3/properties/{t}/groups/{name}`: 204.
pub(crate) fn archive_group(ctx: &Ctx, ot: ObjectType, name: &str) -> ApiResult {
    let mut data = ctx.portal.data.write();
    let group = data
        .schema_mut(ot)
        .groups
        .get_mut(name)
        .ok_or_else(|| group_not_found(name))?;
    ctx.require_any(&write_scopes(ot))?;
    group.archived = true;
    Ok(HttpResponse::NoContent().finish())
}

fn property_not_found(ot: ObjectType, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Unable to find property {name} for object type {}",
        ot.plural()
    ))
}

/// `GET /crm/v3/properties/{t}/{name}`.
pub(crate) fn get(ctx: &Ctx, ot: ObjectType, name: &str) -> ApiResult {
    let data = ctx.portal.data.read();
    let prop = data
        .schema(ot)
        .props
        .get(name)
        .ok_or_else(|| property_not_found(ot, name))?;
    ctx.require_any(&read_scopes(ot))?;
    Ok(json_response(200, &prop.to_json()))
}

/// `PATCH /crm/v3/properties/{t}/{name}`: custom properties only.
pub(crate) fn update(ctx: &Ctx, ot: ObjectType, name: &str) -> ApiResult {
    let mut data = ctx.portal.data.write();
    let prop = data
        .schema_mut(ot)
        .props
        .get_mut(name)
        .ok_or_else(|| property_not_found(ot, name))?;
    ctx.require_any(&write_scopes(ot))?;
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
}

/// `DELETE /crm/v3/properties/{t}/{name}`: 204; HubSpot-defined ones cannot go.
pub(crate) fn archive(ctx: &Ctx, ot: ObjectType, name: &str) -> ApiResult {
    let mut data = ctx.portal.data.write();
    let prop = data
        .schema_mut(ot)
        .props
        .get_mut(name)
        .ok_or_else(|| property_not_found(ot, name))?;
    ctx.require_any(&write_scopes(ot))?;
    if prop.hubspot_defined {
        return Err(ApiError::validation(format!(
            "{name} is a HubSpot-defined property and cannot be archived."
        )));
    }
    prop.archived = true;
    Ok(HttpResponse::NoContent().finish())
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
        calculated: false,
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
