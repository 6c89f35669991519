//! Timeline events (hubspot-api.md §7): stored per template and id, readable back;
//! private-app tokens get HubSpot's 403. An event names an event template of the app the
//! token's portal installed (see `templates.rs`): its target must be of the template's object
//! type and its tokens must be ones the template declares.

use serde_json::{Value, json};

use super::{batch_body, id_of, inputs};
use crate::http::{ApiError, ApiResult, Ctx, json_response};
use crate::model::{ObjectType, iso, now_ms};
use crate::state::TokenKind;

/// Events per batch create at most.
const BATCH_LIMIT: usize = 500;

/// Private apps do not support custom timeline events (§7).
fn refuse_private_apps(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.token.kind == TokenKind::PrivateApp {
        return Err(ApiError::new(
            403,
            "FORBIDDEN",
            "Private apps do not support custom timeline events.",
        ));
    }
    Ok(())
}

/// `POST /integrators/timeline/v3/events`: 201 with the stored event.
pub(crate) fn create(ctx: &Ctx) -> ApiResult {
    refuse_private_apps(ctx)?;
    let body: Value = ctx.json()?;
    let stored = store_event(ctx, body)?;
    Ok(json_response(201, &stored))
}

/// `POST /integrators/timeline/v3/events/batch/create`: 201, or 207 with the failures.
pub(crate) fn batch_create(ctx: &Ctx) -> ApiResult {
    refuse_private_apps(ctx)?;
    let started = now_ms();
    let body: Value = ctx.json()?;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in inputs(&body, BATCH_LIMIT)? {
        let id = input.get("id").and_then(Value::as_str).map(str::to_owned);
        match store_event(ctx, input) {
            Ok(v) => results.push(v),
            // Each failure names the event it is about, as HubSpot's batch errors name
            // their inputs in `context`.
            Err(mut e) => {
                if let Some(id) = id {
                    e.body["context"] = json!({ "id": [id] });
                }
                errors.push(e.body);
            }
        }
    }
    Ok(batch_body(201, results, errors, started))
}

/// `GET /integrators/timeline/v3/events/{templateId}/{eventId}`.
pub(crate) fn get(ctx: &Ctx, template: &str, id: &str) -> ApiResult {
    refuse_private_apps(ctx)?;
    let data = ctx.portal.data.read();
    data.timeline
        .iter()
        .find(|e| e["eventTemplateId"].as_str() == Some(template) && e["id"].as_str() == Some(id))
        .map(|e| json_response(200, e))
        .ok_or_else(|| ApiError::not_found(format!("Event {template}/{id} not found")))
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
    let token_names: Vec<String> = match body.get("tokens") {
        Some(Value::Object(tokens)) => {
            if let Some((k, _)) = tokens
                .iter()
                .find(|(_, v)| !(v.is_string() || v.is_number() || v.is_boolean()))
            {
                return Err(ApiError::validation(format!("Token {k} must be a string")));
            }
            tokens.keys().cloned().collect()
        }
        _ => {
            return Err(ApiError::validation(
                "tokens is required and must be an object",
            ));
        }
    };
    if let Some(ts) = body.get("timestamp").and_then(Value::as_str)
        && crate::model::parse_instant(ts).is_none()
    {
        return Err(ApiError::validation(format!(
            "timestamp {ts} is not a valid ISO 8601 instant"
        )));
    }
    // Only the templates of the app this portal's token was issued to.
    let Some(event_template) = ctx.sim.event_template(ctx.portal.app_id, &template) else {
        return Err(ApiError::not_found(format!(
            "Event template {template} not found"
        )));
    };
    let template_type = event_template.object_type;
    ctx.require_any(&["timeline", template_type.write_scope()])?;
    if let Some(name) = token_names.iter().find(|n| !event_template.declares(n)) {
        let message = format!("Token {name} is not declared by event template {template}");
        let mut e = ApiError::validation(message.clone());
        e.body["errors"] = json!([{"message": message, "code": "INVALID_TOKEN", "in": "tokens"}]);
        return Err(e);
    }
    let data_read = ctx.portal.data.read();
    let (object_type, object_id) = if let Some(oid) = id_of(body.get("objectId")) {
        let ot = std::iter::once(template_type)
            .chain(ObjectType::ALL)
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
    if object_type != template_type {
        return Err(ApiError::validation(format!(
            "Event template {template} is for {} but the event's target is a {}",
            template_type.plural(),
            object_type.singular()
        )));
    }
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
