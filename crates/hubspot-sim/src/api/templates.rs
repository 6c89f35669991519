//! Timeline event templates (hubspot-api.md §7): `/integrators/timeline/v3/{appId}/event-templates`
//! (also under the older `/crm/v3/timeline/{appId}/event-templates`). They belong to the OAuth
//! app, not to a portal, so they are managed with the app's developer API key in the `hapikey`
//! query parameter instead of a bearer token, and count against no portal's rate limit.

use serde_json::{Map, Value, json};

use crate::http::{ApiError, ApiResult, json_response};
use crate::model::{ObjectType, now_ms};
use crate::state::{
    EventTemplate, MAX_EVENT_TEMPLATES, Sim, TemplateToken, TokenOption, TokenType,
};

/// The app whose developer API key `hapikey` is, if it is the app in the path; 401 otherwise.
/// The key itself never appears in an answer.
pub(crate) fn authenticate(
    sim: &Sim,
    app: &str,
    query: &[(String, String)],
) -> Result<u64, ApiError> {
    let key = query
        .iter()
        .find(|(k, _)| k == "hapikey")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    let Some(key) = key else {
        return Err(ApiError::new(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports developer API key authentication (the hapikey query parameter).",
        ));
    };
    let Some(owner) = sim.app_of_key(key) else {
        return Err(ApiError::new(
            401,
            "INVALID_AUTHENTICATION",
            "The API key provided is invalid. View or manage your API key here: https://app.hubspot.com/l/api-key/",
        ));
    };
    if app.parse::<u64>().ok() != Some(owner) {
        return Err(ApiError::new(
            401,
            "INVALID_AUTHENTICATION",
            format!("The developer API key provided does not belong to app {app}."),
        ));
    }
    Ok(owner)
}

/// `GET .../event-templates`: 200 `{results}` in creation order.
pub(crate) fn list(sim: &Sim, app_id: u64) -> ApiResult {
    Ok(json_response(
        200,
        &json!({"results": templates_json(sim, app_id).unwrap_or_default()}),
    ))
}

/// Every template of an app as HubSpot shows them; `None` for an unknown app.
pub fn templates_json(sim: &Sim, app_id: u64) -> Option<Vec<Value>> {
    let apps = sim.apps.read();
    let app = apps.get(&app_id)?;
    Some(
        app.event_templates
            .values()
            .map(EventTemplate::to_json)
            .collect(),
    )
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Event template {id} not found"))
}

/// `GET .../event-templates/{id}`: 200 or 404.
pub(crate) fn get(sim: &Sim, app_id: u64, id: &str) -> ApiResult {
    sim.event_template(app_id, id)
        .map(|t| json_response(200, &t.to_json()))
        .ok_or_else(|| not_found(id))
}

/// `DELETE .../event-templates/{id}`: 204 or 404. Events already stored stay.
pub(crate) fn delete(sim: &Sim, app_id: u64, id: &str) -> ApiResult {
    let removed = id.parse::<u64>().ok().and_then(|n| {
        sim.apps
            .write()
            .get_mut(&app_id)
            .and_then(|app| app.event_templates.remove(&n))
    });
    match removed {
        Some(_) => Ok(actix_web::HttpResponse::NoContent().finish()),
        None => Err(not_found(id)),
    }
}

/// A 400 VALIDATION_ERROR about one field, named in the message and in `errors[].in`.
fn invalid(field: &str, code: &str, message: String) -> ApiError {
    let mut e = ApiError::validation(message.clone());
    e.body["errors"] = json!([{"message": message, "code": code, "in": field}]);
    e
}

fn required_string(obj: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(invalid(
            field,
            "REQUIRED_FIELD",
            format!("{field} is required"),
        )),
        Some(other) => Err(invalid(
            field,
            "INVALID_TYPE",
            format!("{field} must be a string, not {other}"),
        )),
    }
}

fn optional_string(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(
            field,
            "INVALID_TYPE",
            format!("{field} must be a string, not {other}"),
        )),
    }
}

fn parse_options(field: &str, value: Option<&Value>) -> Result<Vec<TokenOption>, ApiError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(invalid(
                field,
                "INVALID_TYPE",
                format!("{field} must be an array"),
            ));
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, option)| {
            let label = option.get("label").and_then(Value::as_str);
            let value = option.get("value").and_then(Value::as_str);
            match (label, value) {
                (Some(label), Some(value)) => Ok(TokenOption {
                    label: label.to_owned(),
                    value: value.to_owned(),
                }),
                _ => Err(invalid(
                    &format!("{field}[{i}]"),
                    "INVALID_VALUE",
                    format!("{field}[{i}] needs a string label and value"),
                )),
            }
        })
        .collect()
}

fn parse_tokens(value: Option<&Value>) -> Result<Vec<TemplateToken>, ApiError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(invalid(
                "tokens",
                "INVALID_TYPE",
                "tokens must be an array".to_owned(),
            ));
        }
    };
    let mut tokens: Vec<TemplateToken> = Vec::with_capacity(list.len());
    for (i, token) in list.iter().enumerate() {
        let Value::Object(obj) = token else {
            return Err(invalid(
                &format!("tokens[{i}]"),
                "INVALID_TYPE",
                format!("tokens[{i}] must be an object"),
            ));
        };
        let name = required_string(obj, "name").map_err(|_| {
            invalid(
                &format!("tokens[{i}].name"),
                "REQUIRED_FIELD",
                format!("tokens[{i}].name is required"),
            )
        })?;
        let label = required_string(obj, "label").map_err(|_| {
            invalid(
                &format!("tokens[{i}].label"),
                "REQUIRED_FIELD",
                format!("tokens[{i}].label is required"),
            )
        })?;
        let type_name = obj.get("type").and_then(Value::as_str).unwrap_or_default();
        let Some(kind) = TokenType::parse(type_name) else {
            return Err(invalid(
                &format!("tokens[{i}].type"),
                "INVALID_VALUE",
                format!(
                    "tokens[{i}].type must be one of string, number, date, enumeration, not {}",
                    obj.get("type").unwrap_or(&Value::Null)
                ),
            ));
        };
        let options = parse_options(&format!("tokens[{i}].options"), obj.get("options"))?;
        if kind == TokenType::Enumeration && options.is_empty() {
            return Err(invalid(
                &format!("tokens[{i}].options"),
                "REQUIRED_FIELD",
                format!("tokens[{i}].options is required for an enumeration token"),
            ));
        }
        let object_property_name = optional_string(obj, "objectPropertyName").map_err(|_| {
            invalid(
                &format!("tokens[{i}].objectPropertyName"),
                "INVALID_TYPE",
                format!("tokens[{i}].objectPropertyName must be a string"),
            )
        })?;
        if tokens.iter().any(|t| t.name == name) {
            return Err(invalid(
                &format!("tokens[{i}].name"),
                "DUPLICATE_VALUE",
                format!("tokens[{i}].name {name} is declared twice"),
            ));
        }
        tokens.push(TemplateToken {
            name,
            label,
            kind,
            options,
            object_property_name,
        });
    }
    Ok(tokens)
}

/// `POST .../event-templates`: 201 with the template, its `id`, `createdAt` and `updatedAt`.
pub(crate) fn create(sim: &Sim, app_id: u64, body: &[u8]) -> ApiResult {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("Invalid input JSON on line 1: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(ApiError::validation(
            "Invalid input JSON: the body must be an object",
        ));
    };
    let name = required_string(&obj, "name")?;
    let type_name = required_string(&obj, "objectType")?;
    let object_type = ObjectType::parse(&type_name).ok_or_else(|| {
        invalid(
            "objectType",
            "INVALID_VALUE",
            format!("objectType must be one of contacts, companies, deals, not {type_name}"),
        )
    })?;
    let header_template = optional_string(&obj, "headerTemplate")?;
    let detail_template = optional_string(&obj, "detailTemplate")?;
    let tokens = parse_tokens(obj.get("tokens"))?;
    let now = now_ms();
    let mut apps = sim.apps.write();
    let Some(app) = apps.get_mut(&app_id) else {
        return Err(ApiError::not_found(format!("App {app_id} not found")));
    };
    if app.event_templates.len() >= MAX_EVENT_TEMPLATES {
        return Err(ApiError::validation(format!(
            "App {app_id} already has the maximum of {MAX_EVENT_TEMPLATES} event templates"
        )));
    }
    let id = sim
        .next_template_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let template = EventTemplate {
        id: id.to_string(),
        name,
        object_type,
        header_template,
        detail_template,
        tokens,
        created_ms: now,
        updated_ms: now,
    };
    let out = template.to_json();
    app.event_templates.insert(id, template);
    Ok(json_response(201, &out))
}
