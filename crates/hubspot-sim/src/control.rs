//! The control API under `/_sim` (no auth): portals, seeding, OAuth shortcuts,
//! token expiry, record mutations that emit webhooks, the touch control, stats,
//! timeline events and apps' event templates, faults, webhook settings, change streams
//! and reset.
//!
//! These requests are never counted in a portal's API statistics.

#![expect(
    clippy::result_large_err,
    reason = "a control handler short-circuits with the finished response; boxing it buys nothing"
)]

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize as _;
use serde_json::{Map, Value, json};

use crate::crm::{CrmError, PropSelection, RecordView, v3_associations};
use crate::http::{ApiError, json_response};
use crate::model::{ObjectType, now_ms};
use crate::state::{Fault, NewPortal, Portal, PortalError, Sim};
use crate::webhooks::{SignatureVersion, Source, emit, parse_subscription};

fn err(status: u16, message: impl Into<String>) -> HttpResponse {
    json_response(
        status,
        &json!({"status": "error", "message": message.into()}),
    )
}

fn api_err(e: ApiError) -> HttpResponse {
    json_response(e.status, &e.body)
}

fn body_json(body: &web::Bytes) -> Result<Value, HttpResponse> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| err(400, format!("invalid JSON: {e}")))
}

fn portal_or_404(sim: &Sim, id: &str) -> Result<Arc<Portal>, HttpResponse> {
    id.parse::<u64>()
        .ok()
        .and_then(|n| sim.portal(n))
        .ok_or_else(|| err(404, format!("no portal {id}")))
}

fn app_or_404(sim: &Sim, id: &str) -> Result<u64, HttpResponse> {
    id.parse::<u64>()
        .ok()
        .filter(|n| sim.apps.read().contains_key(n))
        .ok_or_else(|| err(404, format!("no app {id}")))
}

fn object_type(t: &str) -> Result<ObjectType, HttpResponse> {
    ObjectType::parse(t).ok_or_else(|| err(400, format!("unknown object type {t}")))
}

fn record_json(portal: &Portal, ot: ObjectType, id: u64) -> Option<Value> {
    let data = portal.data.read();
    let (record, archived) = match data.store(ot).live.get(&id) {
        Some(r) => (r, false),
        None => (data.store(ot).archived.get(&id)?, true),
    };
    let view = RecordView {
        record,
        props: &PropSelection::All,
        history: &[],
        associations: v3_associations(&data, ot, id, &ObjectType::ALL),
        archived,
        extra: None,
    };
    serde_json::to_value(&view).ok()
}

fn crm_err(e: CrmError) -> HttpResponse {
    api_err(ApiError::from_crm(e))
}

/// Routes `/_sim/...`.
pub async fn handle(
    sim: &Arc<Sim>,
    req: &HttpRequest,
    path: &str,
    _query: &[(String, String)],
    body: &web::Bytes,
) -> HttpResponse {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = req.method().clone();
    let result = route(sim, &m, &segs, body);
    match result {
        Ok(r) | Err(r) => r,
    }
}

fn route(
    sim: &Arc<Sim>,
    m: &Method,
    segs: &[&str],
    body: &web::Bytes,
) -> Result<HttpResponse, HttpResponse> {
    match segs {
        ["_sim", "reset"] if m == Method::POST => {
            sim.reset();
            Ok(HttpResponse::NoContent().finish())
        }
        ["_sim", "portals"] if m == Method::POST => {
            let req: NewPortal =
                serde_json::from_value(body_json(body)?).map_err(|e| err(400, e.to_string()))?;
            let (portal, scopes) = sim.create_portal(req).map_err(|e| match e {
                PortalError::Exists(_) | PortalError::DeveloperKeyMismatch(_) => {
                    err(409, e.to_string())
                }
                PortalError::UnknownTier(_) => err(400, e.to_string()),
            })?;
            Ok(json_response(
                201,
                &json!({
                    "portal_id": portal.id, "tier": portal.tier, "api_limit_increase": portal.api_limit_increase,
                    "private_app_token": portal.private_app_token, "private_app_scopes": scopes,
                    "client_id": portal.client_id, "client_secret": portal.client_secret, "app_id": portal.app_id,
                    "developer_api_key": sim.developer_api_key(portal.app_id),
                    "oauth_scopes": portal.oauth_scopes, "time_zone": portal.time_zone,
                }),
            ))
        }
        ["_sim", "apps", app] if m == Method::GET => {
            let id = app_or_404(sim, app)?;
            let mut portal_ids: Vec<u64> = sim
                .portals
                .read()
                .values()
                .filter(|p| p.app_id == id)
                .map(|p| p.id)
                .collect();
            portal_ids.sort_unstable();
            Ok(json_response(
                200,
                &json!({"app_id": id, "developer_api_key": sim.developer_api_key(id), "portal_ids": portal_ids}),
            ))
        }
        ["_sim", "apps", app, "event-templates"] if m == Method::GET => {
            let id = app_or_404(sim, app)?;
            let results = crate::api::templates::templates_json(sim, id).unwrap_or_default();
            Ok(json_response(200, &json!({"results": results})))
        }
        ["_sim", "portals"] if m == Method::GET => {
            let ids: Vec<u64> = sim.portals.read().keys().copied().collect();
            Ok(json_response(200, &json!({"portal_ids": ids})))
        }
        ["_sim", "tokens", token, "expire"] if m == Method::POST => {
            let mut tokens = sim.tokens.write();
            match tokens.get_mut(*token) {
                Some(t) if t.expires_at_ms.is_some() => {
                    t.expires_at_ms = Some(now_ms() - 1);
                    Ok(HttpResponse::NoContent().finish())
                }
                Some(_) => Err(err(400, "private-app tokens do not expire")),
                None => Err(err(404, "unknown token")),
            }
        }
        ["_sim", "faults"] if m == Method::POST => {
            let fault: Fault =
                serde_json::from_value(body_json(body)?).map_err(|e| err(400, e.to_string()))?;
            sim.faults.write().push(fault);
            Ok(json_response(201, &json!({"faults": *sim.faults.read()})))
        }
        ["_sim", "faults"] if m == Method::GET => {
            Ok(json_response(200, &json!({"faults": *sim.faults.read()})))
        }
        ["_sim", "faults"] if m == Method::DELETE => {
            sim.faults.write().clear();
            Ok(HttpResponse::NoContent().finish())
        }
        ["_sim", "portals", id, rest @ ..] => {
            let portal = portal_or_404(sim, id)?;
            portal_route(sim, &portal, m, rest, body)
        }
        _ => Err(err(
            404,
            format!("no control route {m} /{}", segs.join("/")),
        )),
    }
}

fn portal_route(
    sim: &Arc<Sim>,
    portal: &Arc<Portal>,
    m: &Method,
    rest: &[&str],
    body: &web::Bytes,
) -> Result<HttpResponse, HttpResponse> {
    match rest {
        ["seed"] if m == Method::POST => {
            let req: crate::seed::SeedRequest =
                serde_json::from_value(body_json(body)?).map_err(|e| err(400, e.to_string()))?;
            let started = std::time::Instant::now();
            let counts = crate::seed::seed(&mut portal.data.write(), &req);
            let mut out = serde_json::to_value(counts).unwrap_or_default();
            out["elapsed_ms"] = json!(started.elapsed().as_millis() as u64);
            Ok(json_response(200, &out))
        }
        ["oauth", "authorize"] if m == Method::POST => {
            let b = body_json(body)?;
            let redirect_uri = b
                .get("redirect_uri")
                .and_then(Value::as_str)
                .unwrap_or("http://localhost/callback");
            let scopes: Vec<String> = b
                .get("scopes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let code = crate::api::oauth::issue_code(sim, portal.id, redirect_uri, scopes);
            Ok(json_response(200, &json!({"code": code})))
        }
        [] if m == Method::GET => Ok(json_response(
            200,
            &json!({
                "portal_id": portal.id, "tier": portal.tier, "api_limit_increase": portal.api_limit_increase,
                "private_app_token": portal.private_app_token, "client_id": portal.client_id,
                "client_secret": portal.client_secret, "app_id": portal.app_id,
                "developer_api_key": sim.developer_api_key(portal.app_id), "oauth_scopes": portal.oauth_scopes,
                "time_zone": portal.time_zone,
            }),
        )),
        ["usage"] if m == Method::PUT => {
            // Lets tests reach the daily quota without 250,000 real calls.
            let b = body_json(body)?;
            let used = b.get("daily_used").and_then(Value::as_u64).unwrap_or(0);
            let mut limits = portal.limits.lock();
            limits.daily_day = portal.day_number(now_ms());
            limits.daily_used = used;
            Ok(json_response(200, &json!({"daily_used": used})))
        }
        ["stats"] if m == Method::GET => Ok(json_response(200, &portal.limits.lock().stats_json())),
        ["timeline-events"] if m == Method::GET => Ok(json_response(
            200,
            &json!({"results": portal.data.read().timeline}),
        )),
        ["webhooks"] if m == Method::GET => Ok(json_response(200, &portal.hooks.lock().to_json())),
        ["webhooks"] if m == Method::PUT => {
            let b = body_json(body)?;
            let mut hooks = portal.hooks.lock();
            if let Some(t) = b.get("target_url") {
                hooks.target_url = t.as_str().map(str::to_owned);
            }
            if let Some(r) = b.get("duplicate_rate").and_then(Value::as_f64) {
                hooks.duplicate_rate = r.clamp(0.0, 1.0);
            }
            if let Some(s) = b.get("shuffle").and_then(Value::as_bool) {
                hooks.shuffle = s;
            }
            if let Some(v) = b.get("signature_version") {
                hooks.signature_version = SignatureVersion::deserialize(v).map_err(|_| {
                    err(
                        400,
                        format!("signature_version must be \"v1\" or \"v2\", not {v}"),
                    )
                })?;
            }
            match b.get("subscriptions") {
                Some(Value::Array(list)) => {
                    let mut subs = Vec::new();
                    for (i, s) in list.iter().enumerate() {
                        let text = s.as_str().unwrap_or_default();
                        match parse_subscription(2000 + i as u64, text) {
                            Some(sub) => subs.push(sub),
                            None => return Err(err(400, format!("unknown subscription {text}"))),
                        }
                    }
                    hooks.subscriptions = subs;
                }
                Some(Value::Null) => hooks.subscriptions = crate::webhooks::default_subscriptions(),
                _ => {}
            }
            Ok(json_response(200, &hooks.to_json()))
        }
        ["changes", "start"] if m == Method::POST => {
            let b = body_json(body)?;
            let per_second = b.get("per_second").and_then(Value::as_f64).unwrap_or(5.0);
            let seed = b.get("seed").and_then(Value::as_u64).unwrap_or(1);
            crate::changes::start(sim, portal, per_second, seed);
            Ok(json_response(
                200,
                &json!({"running": true, "per_second": per_second}),
            ))
        }
        ["changes", "stop"] if m == Method::POST => {
            if let Some(h) = portal.changes.lock().take() {
                h.abort();
            }
            Ok(json_response(200, &json!({"running": false})))
        }
        ["associations"] if m == Method::POST || m == Method::DELETE => {
            let b = body_json(body)?;
            let field = |k: &str| {
                b.get(k).and_then(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .or_else(|| v.as_u64().map(|n| n.to_string()))
                })
            };
            let (Some(ft), Some(fid), Some(tt), Some(tid)) = (
                field("from_type"),
                field("from_id"),
                field("to_type"),
                field("to_id"),
            ) else {
                return Err(err(
                    400,
                    "from_type, from_id, to_type and to_id are required",
                ));
            };
            let from = object_type(&ft)?;
            let to = object_type(&tt)?;
            let (Ok(fid), Ok(tid)) = (fid.parse::<u64>(), tid.parse::<u64>()) else {
                return Err(err(400, "ids must be numeric"));
            };
            let changes = if m == Method::POST {
                let primary = b.get("primary").and_then(Value::as_bool).unwrap_or(false);
                portal
                    .data
                    .write()
                    .associate(from, fid, to, tid, primary)
                    .map_err(crm_err)?
            } else {
                portal.data.write().disassociate(from, fid, to, tid)
            };
            emit(portal, &changes, &Source::crm_ui());
            Ok(HttpResponse::NoContent().finish())
        }
        ["objects", t, rest @ ..] => {
            let ot = object_type(t)?;
            object_route(portal, ot, m, rest, body)
        }
        _ => Err(err(404, "no such control route")),
    }
}

fn properties_input(b: &Value) -> Map<String, Value> {
    b.get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn object_route(
    portal: &Arc<Portal>,
    ot: ObjectType,
    m: &Method,
    rest: &[&str],
    body: &web::Bytes,
) -> Result<HttpResponse, HttpResponse> {
    let source = Source::crm_ui();
    match rest {
        [] if m == Method::POST => {
            let b = body_json(body)?;
            let (id, changes) = {
                let mut data = portal.data.write();
                let values = data
                    .normalize(ot, &properties_input(&b))
                    .map_err(|e| api_err(ApiError::invalid_properties(&e)))?;
                data.create(ot, values, now_ms()).map_err(crm_err)?
            };
            emit(portal, &changes, &source);
            Ok(json_response(
                201,
                &record_json(portal, ot, id).unwrap_or_default(),
            ))
        }
        ["touch"] if m == Method::POST => {
            let b = body_json(body)?;
            let count = b.get("count").and_then(Value::as_u64).unwrap_or(0) as usize;
            let at = b
                .get("modified_at_ms")
                .and_then(Value::as_i64)
                .unwrap_or_else(now_ms);
            let mut data = portal.data.write();
            let ids: Vec<u64> = data.store(ot).live.keys().take(count).copied().collect();
            for id in &ids {
                data.touch(ot, *id, at);
            }
            Ok(json_response(200, &json!({"touched": ids.len()})))
        }
        ["merge"] if m == Method::POST => {
            let b = body_json(body)?;
            let (Some(primary), Some(merged)) = (
                b.get("primary_id").and_then(Value::as_u64),
                b.get("merged_id").and_then(Value::as_u64),
            ) else {
                return Err(err(400, "primary_id and merged_id are required"));
            };
            let changes = portal
                .data
                .write()
                .merge(ot, primary, merged, now_ms())
                .map_err(crm_err)?;
            emit(portal, &changes, &source);
            Ok(json_response(
                200,
                &record_json(portal, ot, primary).unwrap_or_default(),
            ))
        }
        [id, action @ ..] => {
            let id: u64 = id.parse().map_err(|_| err(400, "id must be numeric"))?;
            match action {
                [] if m == Method::GET => record_json(portal, ot, id)
                    .map(|v| json_response(200, &v))
                    .ok_or_else(|| err(404, "no such record")),
                [] if m == Method::PATCH => {
                    let b = body_json(body)?;
                    let changes = {
                        let mut data = portal.data.write();
                        let values = data
                            .normalize(ot, &properties_input(&b))
                            .map_err(|e| api_err(ApiError::invalid_properties(&e)))?;
                        data.update(ot, id, values, now_ms()).map_err(crm_err)?
                    };
                    emit(portal, &changes, &source);
                    Ok(json_response(
                        200,
                        &record_json(portal, ot, id).unwrap_or_default(),
                    ))
                }
                [] if m == Method::DELETE => {
                    let changes = portal.data.write().archive(ot, id, now_ms());
                    if changes.is_empty() {
                        return Err(err(404, "no such live record"));
                    }
                    emit(portal, &changes, &source);
                    Ok(HttpResponse::NoContent().finish())
                }
                ["restore"] if m == Method::POST => {
                    let changes = portal
                        .data
                        .write()
                        .restore(ot, id, now_ms())
                        .map_err(crm_err)?;
                    emit(portal, &changes, &source);
                    Ok(json_response(
                        200,
                        &record_json(portal, ot, id).unwrap_or_default(),
                    ))
                }
                ["gdpr-delete"] if m == Method::POST && ot == ObjectType::Contacts => {
                    let changes = portal.data.write().privacy_delete(id).map_err(crm_err)?;
                    emit(portal, &changes, &source);
                    Ok(HttpResponse::NoContent().finish())
                }
                _ => Err(err(404, "no such control route")),
            }
        }
        _ => Err(err(404, "no such control route")),
    }
}
