//! The HubSpot API the simulator serves: one module per HubSpot area, and here the one
//! routing table that maps every method and path to its handler ([`route`] for the
//! bearer-authenticated API, [`route_developer`] for the app-level calls authenticated by a
//! developer API key, [`route_oauth`] for the OAuth server).
//!
//! Paths come in three generations: `/crm/v3/...`, `/crm/v4/...` and date-versioned
//! (`/crm/objects/2026-03/...`). [`versioned`] takes the version out so each route is
//! written once, with the generations it exists in.

pub mod account;
pub mod associations;
pub mod oauth;
pub mod objects;
pub mod owners;
pub mod pipelines;
pub mod properties;
pub mod schemas;
pub mod search;
pub mod templates;
pub mod timeline;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::http::{ApiError, ApiResult, Ctx, json_response};
use crate::model::ObjectType;
use crate::state::Sim;

/// The API generation a path was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/crm/v3/...`, `/account-info/v3/...`, `/integrators/timeline/v3/...`.
    V3,
    /// `/crm/v4/...`.
    V4,
    /// `/crm/{area}/2026-03/...` and the other date-versioned forms.
    Dated,
}

/// Whether a path segment is a date version (`2026-03`).
pub fn is_version(seg: &str) -> bool {
    let b = seg.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[5..].iter().all(u8::is_ascii_digit)
}

fn v3_or_dated(seg: &str) -> Option<Api> {
    if seg == "v3" {
        Some(Api::V3)
    } else if is_version(seg) {
        Some(Api::Dated)
    } else {
        None
    }
}

/// Splits a path's segments into its generation and the path without the version:
/// `crm/v3/objects/contacts` and `crm/objects/2026-03/contacts` both become
/// `crm/objects/contacts`. `None` for a path in no known generation.
pub fn versioned<'a>(segs: &[&'a str]) -> Option<(Api, Vec<&'a str>)> {
    let join = |head: &[&'a str], rest: &[&'a str]| -> Vec<&'a str> {
        head.iter().chain(rest).copied().collect()
    };
    match segs {
        ["crm", "v3", rest @ ..] => Some((Api::V3, join(&["crm"], rest))),
        ["crm", "v4", rest @ ..] => Some((Api::V4, join(&["crm"], rest))),
        ["crm", area, ver, rest @ ..] if is_version(ver) => {
            Some((Api::Dated, join(&["crm", area], rest)))
        }
        // The schemas API's own host path; `/crm/v3/schemas` is its alias.
        ["crm-object-schemas", ver, "schemas", rest @ ..] => {
            v3_or_dated(ver).map(|api| (api, join(&["crm", "schemas"], rest)))
        }
        ["account-info", ver, rest @ ..] => {
            v3_or_dated(ver).map(|api| (api, join(&["account-info"], rest)))
        }
        ["integrators", "timeline", ver, rest @ ..] => {
            v3_or_dated(ver).map(|api| (api, join(&["integrators", "timeline"], rest)))
        }
        _ => None,
    }
}

/// Routes an authenticated API request. Every data route the simulator serves is here.
pub fn route(ctx: &Ctx, segs: &[&str]) -> ApiResult {
    use Api::{Dated, V3, V4};
    let Some((api, path)) = versioned(segs) else {
        return Err(no_route(ctx));
    };
    let ty = parse_type;
    match (api, ctx.method.as_str(), path.as_slice()) {
        // Objects (§3).
        (V3 | Dated, "GET", ["crm", "objects", t]) => objects::list(ctx, ty(t)?),
        (V3 | Dated, "POST", ["crm", "objects", t]) => objects::create(ctx, ty(t)?),
        (V3 | Dated, "POST", ["crm", "objects", t, "search"]) => search::search(ctx, ty(t)?),
        (V3 | Dated, "POST", ["crm", "objects", t, "batch", "read"]) => {
            objects::batch_read(ctx, ty(t)?)
        }
        (V3 | Dated, "POST", ["crm", "objects", t, "batch", "create"]) => {
            objects::batch_create(ctx, ty(t)?)
        }
        (V3 | Dated, "POST", ["crm", "objects", t, "batch", "update"]) => {
            objects::batch_update(ctx, ty(t)?, false)
        }
        (V3 | Dated, "POST", ["crm", "objects", t, "batch", "upsert"]) => {
            objects::batch_update(ctx, ty(t)?, true)
        }
        (V3 | Dated, "POST", ["crm", "objects", t, "batch", "archive"]) => {
            objects::batch_archive(ctx, ty(t)?)
        }
        (V3 | Dated, "POST", ["crm", "objects", t, "merge"]) => objects::merge(ctx, ty(t)?),
        (V3 | Dated, "POST", ["crm", "objects", t, "gdpr-delete"])
            if ty(t)? == ObjectType::Contacts =>
        {
            objects::gdpr_delete(ctx)
        }
        (V3 | Dated, "GET", ["crm", "objects", t, id]) => objects::get(ctx, ty(t)?, id),
        (V3 | Dated, "PATCH", ["crm", "objects", t, id]) => objects::update(ctx, ty(t)?, id),
        (V3 | Dated, "DELETE", ["crm", "objects", t, id]) => objects::archive(ctx, ty(t)?, id),

        // One record's associations (§5.2, §5.4); the v3 paths answer in v3's shape.
        (_, "GET", ["crm", "objects", t, id, "associations", to]) => {
            associations::list(ctx, ty(t)?, id, ty(to)?, api == V3)
        }
        (
            _,
            "PUT",
            [
                "crm",
                "objects",
                t,
                id,
                "associations",
                "default",
                to,
                to_id,
            ],
        ) => associations::put_default(ctx, ty(t)?, id, ty(to)?, to_id),
        (_, "PUT", ["crm", "objects", t, id, "associations", to, to_id]) => {
            associations::put_labelled(ctx, ty(t)?, id, ty(to)?, to_id)
        }
        (_, "PUT", ["crm", "objects", t, id, "associations", to, to_id, kind]) => {
            associations::put_v3(ctx, ty(t)?, id, ty(to)?, to_id, kind)
        }
        (
            _,
            "DELETE",
            ["crm", "objects", t, id, "associations", to, to_id]
            | ["crm", "objects", t, id, "associations", to, to_id, _],
        ) => associations::remove(ctx, ty(t)?, id, ty(to)?, to_id),

        // Associations in bulk (§5.1, §5.2).
        (V4 | Dated, "POST", ["crm", "associations", from, to, "batch", "read"]) => {
            associations::batch_read(ctx, ty(from)?, ty(to)?)
        }
        (V4 | Dated, "POST", ["crm", "associations", from, to, "batch", "create"]) => {
            associations::batch_create(ctx, ty(from)?, ty(to)?, associations::Labels::Given)
        }
        (
            V4 | Dated,
            "POST",
            ["crm", "associations", from, to, "batch", "associate"]
            | [
                "crm",
                "associations",
                from,
                to,
                "batch",
                "associate",
                "default",
            ],
        ) => associations::batch_create(ctx, ty(from)?, ty(to)?, associations::Labels::Default),
        (V4 | Dated, "POST", ["crm", "associations", from, to, "batch", "archive"]) => {
            associations::batch_archive(ctx, ty(from)?, ty(to)?)
        }
        (
            V4 | Dated,
            "POST",
            [
                "crm",
                "associations",
                from,
                to,
                "batch",
                "labels",
                "archive",
            ],
        ) => associations::batch_archive_labels(ctx, ty(from)?, ty(to)?),
        (V4 | Dated, "GET", ["crm", "associations", from, to, "labels"]) => {
            associations::labels(ctx, ty(from)?, ty(to)?)
        }

        // Properties and property groups (§4).
        (V3 | Dated, "GET", ["crm", "properties", t]) => properties::list(ctx, ty(t)?),
        (V3 | Dated, "POST", ["crm", "properties", t]) => properties::create(ctx, ty(t)?),
        (V3 | Dated, "POST", ["crm", "properties", t, "batch", "read"]) => {
            properties::batch_read(ctx, ty(t)?)
        }
        (V3 | Dated, "POST", ["crm", "properties", t, "batch", "create"]) => {
            properties::batch_create(ctx, ty(t)?)
        }
        (V3 | Dated, "POST", ["crm", "properties", t, "batch", "archive"]) => {
            properties::batch_archive(ctx, ty(t)?)
        }
        (V3 | Dated, "GET", ["crm", "properties", t, "groups"]) => {
            properties::list_groups(ctx, ty(t)?)
        }
        (V3 | Dated, "POST", ["crm", "properties", t, "groups"]) => {
            properties::create_group(ctx, ty(t)?)
        }
        (V3 | Dated, "GET", ["crm", "properties", t, "groups", name]) => {
            properties::get_group(ctx, ty(t)?, name)
        }
        (V3 | Dated, "PATCH", ["crm", "properties", t, "groups", name]) => {
            properties::update_group(ctx, ty(t)?, name)
        }
        (V3 | Dated, "DELETE", ["crm", "properties", t, "groups", name]) => {
            properties::archive_group(ctx, ty(t)?, name)
        }
        (V3 | Dated, "GET", ["crm", "properties", t, name]) => properties::get(ctx, ty(t)?, name),
        (V3 | Dated, "PATCH", ["crm", "properties", t, name]) => {
            properties::update(ctx, ty(t)?, name)
        }
        (V3 | Dated, "DELETE", ["crm", "properties", t, name]) => {
            properties::archive(ctx, ty(t)?, name)
        }

        // Custom object schemas.
        (V3 | Dated, "GET", ["crm", "schemas"]) => schemas::list(ctx),
        (V3 | Dated, "GET", ["crm", "schemas", name]) => schemas::get(ctx, name),

        // Owners and pipelines (§6).
        (V3 | Dated, "GET", ["crm", "owners"]) => owners::list(ctx),
        (V3 | Dated, "GET", ["crm", "owners", id]) => owners::get(ctx, id),
        (V3 | Dated, "GET", ["crm", "pipelines", t]) => pipelines::list(ctx, ty(t)?),
        (V3 | Dated, "GET", ["crm", "pipelines", t, id]) => pipelines::get(ctx, ty(t)?, id),
        (V3 | Dated, "GET", ["crm", "pipelines", t, id, "stages"]) => {
            pipelines::stages(ctx, ty(t)?, id)
        }
        (V3 | Dated, "GET", ["crm", "pipelines", t, id, "stages", stage]) => {
            pipelines::stage(ctx, ty(t)?, id, stage)
        }

        // Account information (§2).
        (V3 | Dated, "GET", ["account-info", "details"]) => account::details(ctx),
        (V3 | Dated, "GET", ["account-info", "api-usage", "daily", "private-apps"]) => {
            account::daily_usage(ctx)
        }

        // Timeline events (§7), also under the older `/crm/v3/timeline`.
        (V3 | Dated, "POST", ["integrators", "timeline", "events"])
        | (V3, "POST", ["crm", "timeline", "events"]) => timeline::create(ctx),
        (V3 | Dated, "POST", ["integrators", "timeline", "events", "batch", "create"])
        | (V3, "POST", ["crm", "timeline", "events", "batch", "create"]) => {
            timeline::batch_create(ctx)
        }
        (V3 | Dated, "GET", ["integrators", "timeline", "events", template, id])
        | (V3, "GET", ["crm", "timeline", "events", template, id]) => {
            timeline::get(ctx, template, id)
        }

        _ => Err(no_route(ctx)),
    }
}

/// Routes the app-level developer API: timeline event templates (§7), managed as the app with
/// its developer API key (`hapikey`), so no bearer token, no portal rate limit and no faults.
/// `None` for every other path. `segs` are the decoded path segments.
pub fn route_developer(
    sim: &Sim,
    method: &actix_web::http::Method,
    path: &str,
    segs: &[&str],
    query: &[(String, String)],
    body: &[u8],
) -> Option<ApiResult> {
    let (api, rest) = versioned(segs)?;
    // Also under the older `/crm/v3/timeline/{appId}/event-templates`.
    let (app, rest) = match (api, rest.as_slice()) {
        (Api::V3, ["integrators", "timeline", app, "event-templates", rest @ ..])
        | (Api::V3, ["crm", "timeline", app, "event-templates", rest @ ..])
            if *app != "events" =>
        {
            (*app, rest.to_vec())
        }
        _ => return None,
    };
    let serve = || -> ApiResult {
        let app_id = templates::authenticate(sim, app, query)?;
        match (method.as_str(), rest.as_slice()) {
            ("GET", []) => templates::list(sim, app_id),
            ("POST", []) => templates::create(sim, app_id, body),
            ("GET", [id]) => templates::get(sim, app_id, id),
            ("DELETE", [id]) => templates::delete(sim, app_id, id),
            _ => Err(ApiError::new(
                404,
                "OBJECT_NOT_FOUND",
                format!("No route for {method} {path}"),
            )),
        }
    };
    Some(serve())
}

/// Routes `/oauth/...` (no bearer token, no rate limit, OAuth's own error shape).
pub fn route_oauth(
    sim: &Arc<Sim>,
    req: &HttpRequest,
    path: &str,
    query: &[(String, String)],
    body: &web::Bytes,
) -> HttpResponse {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let token_path = |ver: &str| ver == "v1" || ver == "v3" || is_version(ver);
    match (req.method().as_str(), segs.as_slice()) {
        ("GET", ["oauth", "authorize"]) => oauth::consent_page(sim, query),
        ("POST", ["oauth", "authorize", "decision"]) => oauth::decision(sim, &form),
        ("POST", ["oauth", ver, "token"]) if token_path(ver) => {
            oauth::token_endpoint(sim, ver, query, form)
        }
        ("GET", ["oauth", "v1", "access-tokens", token]) => oauth::access_token_info(sim, token),
        ("GET", ["oauth", "v1", "refresh-tokens", token]) => oauth::refresh_token_info(sim, token),
        ("DELETE", ["oauth", "v1", "refresh-tokens", token]) => {
            oauth::delete_refresh_token(sim, token)
        }
        ("POST", ["oauth", ver, "token", "revoke"]) if token_path(ver) => oauth::revoke(sim, &form),
        ("POST", ["oauth", ver, "token", "introspect"]) if token_path(ver) => {
            oauth::introspect(sim, &form)
        }
        (method, _) => json_response(
            404,
            &json!({"status": "error", "message": format!("No route for {method} {path}"), "category": "OBJECT_NOT_FOUND"}),
        ),
    }
}

/// The 404 for a path the simulator does not serve.
fn no_route(ctx: &Ctx) -> ApiError {
    ApiError::new(
        404,
        "OBJECT_NOT_FOUND",
        format!("No route for {} {}", ctx.method, ctx.path),
    )
}

/// Parses an object type segment, answering HubSpot's 400 for unknown ones.
pub fn parse_type(t: &str) -> Result<ObjectType, ApiError> {
    ObjectType::parse(t)
        .ok_or_else(|| ApiError::validation(format!("Unable to infer object type from: {t}")))
}

/// The `inputs` array of a batch body, at most `max` long.
fn inputs(body: &Value, max: usize) -> Result<Vec<Value>, ApiError> {
    let inputs = body
        .get("inputs")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::validation("Invalid input JSON: inputs is required"))?;
    if inputs.len() > max {
        return Err(ApiError::validation(format!(
            "Batch input limit exceeded: {} inputs were sent, the maximum is {max}.",
            inputs.len()
        )));
    }
    Ok(inputs)
}

/// An id given as a string or a number.
fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A numeric id given as a string, a number or `{id}`.
fn id_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        Value::Object(o) => id_of(o.get("id")),
        _ => None,
    }
}

/// `{status: COMPLETE, results, startedAt, completedAt}`, plus `numErrors` and `errors`
/// (and 207 instead of `ok_status`) when some inputs failed.
fn batch_body(
    ok_status: u16,
    results: Vec<Value>,
    errors: Vec<Value>,
    started_ms: i64,
) -> HttpResponse {
    let mut out = json!({"status": "COMPLETE", "results": results,
        "startedAt": crate::model::iso(started_ms), "completedAt": crate::model::iso(crate::model::now_ms())});
    if errors.is_empty() {
        return json_response(ok_status, &out);
    }
    out["numErrors"] = json!(errors.len());
    out["errors"] = Value::Array(errors);
    json_response(207, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generation_of_a_path_reduces_to_one_route() {
        let v = |path: &str| {
            let segs: Vec<&str> = path.split('/').collect();
            versioned(&segs).map(|(api, rest)| (api, rest.join("/")))
        };
        assert_eq!(
            v("crm/v3/objects/contacts"),
            Some((Api::V3, "crm/objects/contacts".into()))
        );
        assert_eq!(
            v("crm/objects/2026-03/contacts"),
            Some((Api::Dated, "crm/objects/contacts".into()))
        );
        assert_eq!(
            v("crm/v4/associations/deals/contacts/batch/read"),
            Some((Api::V4, "crm/associations/deals/contacts/batch/read".into()))
        );
        assert_eq!(
            v("crm-object-schemas/v3/schemas"),
            Some((Api::V3, "crm/schemas".into()))
        );
        assert_eq!(
            v("integrators/timeline/2026-03/events"),
            Some((Api::Dated, "integrators/timeline/events".into()))
        );
        assert_eq!(v("account-info/v4/details"), None);
        assert_eq!(v("crm-object-schemas/v3/objects/contacts"), None);
        assert_eq!(v("contacts/v1/lists"), None);
    }
}
