//! `GET /api/v1/openapi.json`: the whole public API as OpenAPI 3.1. The gateway's own
//! routes come from the code (`utoipa`); each upstream service's `/openapi.json` is merged
//! in when it answers, and any forwarded route it does not describe gets a stub naming
//! its owner, so every route the gateway serves is described.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::proxy::{FORWARDED, Upstream};
use crate::state::AppState;

/// The gateway's own part of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "hubscore API", description = "hubscore's public API behind auth-gateway. Every route takes `Authorization: Bearer <caller JWT>`; errors are `{\"error\": code, \"message\": ...}`."),
    paths(
        super::connections::create,
        super::connections::list,
        super::connections::get,
        super::connections::delete,
        super::connections::request_sync,
        super::connections::replace_credentials,
        super::connections::replace_webhook_secret,
        super::connections::test,
        super::oauth::start,
        super::oauth::callback,
        super::audit::list,
        openapi_json,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct GatewayApi;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The gateway's own document as JSON.
pub fn own_document() -> Value {
    serde_json::to_value(GatewayApi::openapi()).unwrap_or_else(|_| json!({}))
}

/// `/api/v1` + a forwarded route's pattern, in OpenAPI's template syntax.
fn openapi_path(pattern: &str) -> String {
    format!("/api/v1{}", pattern.replace("{tail:.*}", "{path}"))
}

/// Merges `upstream`'s paths and schemas into `document` (the gateway's own win).
fn merge(document: &mut Value, upstream: &Value) {
    if let Some(paths) = upstream.get("paths").and_then(Value::as_object) {
        let target = document["paths"].as_object_mut();
        if let Some(target) = target {
            for (path, item) in paths {
                let path = if path.starts_with("/api/v1") {
                    path.clone()
                } else {
                    format!("/api/v1{path}")
                };
                target.entry(path).or_insert_with(|| item.clone());
            }
        }
    }
    if let Some(schemas) = upstream
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        if document.pointer("/components/schemas").is_none() {
            document["components"]["schemas"] = Value::Object(Map::new());
        }
        if let Some(target) = document
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
        {
            for (name, schema) in schemas {
                target.entry(name.clone()).or_insert_with(|| schema.clone());
            }
        }
    }
}

/// Adds a stub for every forwarded route and method nobody described.
fn describe_forwarded(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for (method, pattern, upstream) in FORWARDED {
        let path = openapi_path(pattern);
        let item = paths.entry(path).or_insert_with(|| json!({}));
        let methods: &[&str] = match *method {
            "GET" => &["get"],
            "PUT" => &["put"],
            _ => &["get", "post", "put", "delete"],
        };
        let params: Vec<Value> = ["id", "object_type", "path"]
            .iter()
            .filter(|p| pattern.contains(&format!("{{{p}")))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        for m in methods {
            if item.get(*m).is_none() {
                item[*m] = json!({
                    "tags": [upstream.name()],
                    "summary": format!("Forwarded to {}", upstream.name()),
                    "parameters": params,
                    "responses": {
                        "default": {"description": format!("{}'s answer; 502/504 when it is down or slow", upstream.name())}
                    }
                });
            }
        }
    }
}

/// The merged document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "this document")))]
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    let mut document = own_document();
    for upstream in [
        Upstream::SyncWorker,
        Upstream::ScoringEngine,
        Upstream::WritebackWorker,
    ] {
        let url = format!(
            "{}/openapi.json",
            upstream.base_url(&state).trim_end_matches('/')
        );
        let fetched = state
            .http
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        if let Some(response) = fetched
            && let Ok(theirs) = response.json::<Value>().await
        {
            merge(&mut document, &theirs);
        }
    }
    describe_forwarded(&mut document);
    HttpResponse::Ok().json(document)
}
