//! The HTTP front: one catch-all handler that routes by path (both the `v3`/`v4`
//! and the date-versioned forms), authenticates bearer tokens (or, for the app-level
//! developer API, the `hapikey` developer API key), applies faults and rate limits, and
//! shapes errors the way HubSpot does (hubspot-api.md §1.4, §8).
//!
//! It holds no lock across an await: handlers below it are synchronous.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use rand::Rng as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::crm::{CrmError, PropError};
use crate::model::{iso, now_ms};
use crate::state::{AccessToken, Fault, LimitDecision, Portal, Sim, TokenKind};

/// An error answered in HubSpot's error body shape.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The JSON body (without `correlationId`, which is added when sent).
    pub body: Value,
}

impl ApiError {
    /// A general error: `{status:"error", message, category}`.
    pub fn new(status: u16, category: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({"status": "error", "message": message.into(), "category": category}),
        }
    }

    /// 400 VALIDATION_ERROR.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "VALIDATION_ERROR", message)
    }

    /// 404 OBJECT_NOT_FOUND.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "OBJECT_NOT_FOUND", message)
    }

    /// 400 with per-property errors.
    pub fn invalid_properties(errors: &[PropError]) -> ApiError {
        let summary: Vec<Value> = errors
            .iter()
            .map(|e| json!({"isValid": false, "message": e.message, "error": e.code, "name": e.name}))
            .collect();
        let details: Vec<Value> = errors
            .iter()
            .map(|e| json!({"message": e.message, "code": e.code, "context": {"propertyName": [e.name]}}))
            .collect();
        let mut err = ApiError::validation(format!(
            "Property values were not valid: {}",
            Value::Array(summary)
        ));
        err.body["errors"] = Value::Array(details);
        err
    }

    /// 403 MISSING_SCOPES naming the acceptable scopes (§8.4).
    pub fn missing_scopes(any_of: &[&str]) -> ApiError {
        ApiError {
            status: 403,
            body: json!({
                "status": "error",
                "message": "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
                "errors": [{"message": "One or more of the following scopes are required.",
                            "context": {"requiredGranularScopes": any_of}}],
                "links": {"scopes": "https://developers.hubspot.com/scopes"},
                "category": "MISSING_SCOPES",
            }),
        }
    }

    /// 404 for a record that does not exist (or was archived), in HubSpot's words,
    /// which are the same whatever the id looked like.
    pub fn object_not_found(id: &str) -> ApiError {
        let mut e = ApiError::not_found("Object not found.  objectId are usually numeric.");
        e.body["context"] = json!({"id": [id]});
        e
    }

    /// Maps a CRM failure to HubSpot's answer.
    pub fn from_crm(err: CrmError) -> ApiError {
        match err {
            CrmError::Invalid(errors) => ApiError::invalid_properties(&errors),
            CrmError::DuplicateEmail(id) => ApiError::new(
                409,
                "CONFLICT",
                format!("Contact already exists. Existing ID: {id}"),
            ),
            CrmError::NotFound(id) => ApiError::object_not_found(&id.to_string()),
            CrmError::Validation(msg) => ApiError::validation(msg),
        }
    }
}

/// What a handler answers.
pub type ApiResult = Result<HttpResponse, ApiError>;

/// A JSON response with a status.
pub fn json_response<T: Serialize>(status: u16, body: &T) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
            .content_type("application/json;charset=utf-8")
            .body(bytes),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// A pre-serialised JSON body.
pub fn json_bytes(status: u16, bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .content_type("application/json;charset=utf-8")
        .body(bytes)
}

fn error_response(err: ApiError, correlation_id: &str) -> HttpResponse {
    let mut body = err.body;
    if let Value::Object(map) = &mut body {
        map.insert("correlationId".into(), json!(correlation_id));
    }
    json_response(err.status, &body)
}

/// One authenticated API request.
pub struct Ctx {
    /// The simulator.
    pub sim: Arc<Sim>,
    /// The token's portal.
    pub portal: Arc<Portal>,
    /// The credential used.
    pub token: AccessToken,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The raw body.
    pub body: web::Bytes,
    /// The HTTP method.
    pub method: actix_web::http::Method,
    /// The request path.
    pub path: String,
}

impl Ctx {
    /// The first value of a query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of a list parameter, repeated or comma-separated.
    pub fn q_list(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// A boolean query parameter.
    pub fn q_bool(&self, name: &str) -> bool {
        self.q(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Parses the body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::validation(format!("Invalid input JSON on line 1: {e}")))
    }

    /// Requires one of the scopes.
    pub fn require_any(&self, any_of: &[&str]) -> Result<(), ApiError> {
        if any_of.iter().any(|s| self.token.scopes.contains(*s)) {
            Ok(())
        } else {
            Err(ApiError::missing_scopes(any_of))
        }
    }

    /// The base URL links are built on.
    pub fn base_url(&self) -> String {
        self.sim.base_url.read().clone()
    }
}

fn unauthenticated(correlation_id: &str) -> HttpResponse {
    let mut resp = error_response(
        ApiError::new(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        ),
        correlation_id,
    );
    resp.headers_mut().insert(
        HeaderName::from_static("x-hubspot-auth-failure"),
        HeaderValue::from_static("401 Unauthorized"),
    );
    resp
}

fn expired(correlation_id: &str, expired_at_ms: i64) -> HttpResponse {
    let ago = ((now_ms() - expired_at_ms) / 1000).max(0);
    let mut err = ApiError::new(
        401,
        "EXPIRED_AUTHENTICATION",
        format!("The OAuth token used to make this call expired {ago} second(s) ago."),
    );
    err.body["context"] = json!({"expire time": [iso(expired_at_ms)]});
    let mut resp = error_response(err, correlation_id);
    resp.headers_mut().insert(
        HeaderName::from_static("x-hubspot-auth-failure"),
        HeaderValue::from_static("401 Unauthorized"),
    );
    resp
}

/// The 429 body (§8.3).
pub fn rate_limited_body(policy: &str, correlation_id: &str) -> Value {
    let message = match policy {
        "DAILY" => "You have reached your daily limit.",
        "SECONDLY" => "You have reached your secondly limit.",
        _ => "You have reached your ten_secondly_rolling limit.",
    };
    json!({"status": "error", "message": message, "errorType": "RATE_LIMIT", "correlationId": correlation_id,
           "policyName": policy, "requestId": uuid::Uuid::new_v4().to_string()})
}

fn matching_fault(sim: &Sim, path: &str, portal_id: Option<u64>) -> Option<Fault> {
    let matches = |f: &Fault| {
        path.starts_with(&f.path_prefix) && f.portal_id.is_none_or(|p| Some(p) == portal_id)
    };
    let found = sim
        .faults
        .read()
        .iter()
        .rev()
        .find(|f| matches(f))
        .cloned()?;
    if found.error_first == 0 {
        return Some(found);
    }
    // Only a countdown needs the write lock (another request may have taken the last one).
    let mut faults = sim.faults.write();
    let f = faults.iter_mut().rev().find(|f| matches(f))?;
    let mut matched = f.clone();
    if f.error_first > 0 {
        f.error_first -= 1;
        matched.error_rate = 1.0;
    }
    Some(matched)
}

fn is_search(method: &actix_web::http::Method, segs: &[&str]) -> bool {
    method == actix_web::http::Method::POST
        && segs.last() == Some(&"search")
        && segs.len() >= 4
        && segs[0] == "crm"
}

/// The catch-all handler.
pub async fn dispatch(
    req: HttpRequest,
    body: web::Bytes,
    sim: web::Data<Arc<Sim>>,
) -> HttpResponse {
    let sim: Arc<Sim> = sim.get_ref().clone();
    let path = req.path().to_owned();
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    if path.starts_with("/_sim") {
        return crate::control::handle(&sim, &req, &path, &query, &body).await;
    }
    // The app-level developer API authenticates with `hapikey`, not a bearer token, and
    // belongs to no portal: no portal statistics, rate limits or faults.
    let decoded = decoded_segments(&path);
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    if let Some(result) =
        crate::api::route_developer(&sim, req.method(), &path, &segs, &query, &body)
    {
        let mut response = match result {
            Ok(r) => r,
            Err(e) if e.status == 401 => {
                let mut r = error_response(e, &correlation_id);
                r.headers_mut().insert(
                    HeaderName::from_static("x-hubspot-auth-failure"),
                    HeaderValue::from_static("401 Unauthorized"),
                );
                r
            }
            Err(e) => error_response(e, &correlation_id),
        };
        response.headers_mut().insert(
            HeaderName::from_static("x-hubspot-correlation-id"),
            HeaderValue::from_str(&correlation_id).unwrap_or(HeaderValue::from_static("-")),
        );
        return response;
    }
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|v| v.trim().to_owned());
    let token = bearer
        .as_ref()
        .and_then(|t| sim.tokens.read().get(t).cloned());
    let portal = token.as_ref().and_then(|t| sim.portal(t.portal_id));

    let fault = matching_fault(&sim, &path, portal.as_ref().map(|p| p.id));
    if let Some(f) = &fault
        && f.latency_ms > 0
    {
        tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
    }
    let mut response = if path.starts_with("/oauth/") {
        if let Some(resp) = injected(&fault, portal.as_deref(), &correlation_id) {
            resp
        } else {
            crate::api::route_oauth(&sim, &req, &path, &query, &body)
        }
    } else {
        api(
            &sim,
            &req,
            &path,
            query,
            body,
            token,
            portal.clone(),
            fault.as_ref(),
            &correlation_id,
        )
    };
    response.headers_mut().insert(
        HeaderName::from_static("x-hubspot-correlation-id"),
        HeaderValue::from_str(&correlation_id).unwrap_or(HeaderValue::from_static("-")),
    );
    if let Some(p) = &portal
        && !path.starts_with("/oauth/")
    {
        let mut limits = p.limits.lock();
        limits.requests_total += 1;
        *limits
            .by_status
            .entry(response.status().as_u16())
            .or_insert(0) += 1;
    }
    match fault {
        Some(f) if f.truncate_body || f.slow_body_ms > 0 => reshape_body(response, &f).await,
        _ => response,
    }
}

fn injected(
    fault: &Option<Fault>,
    portal: Option<&Portal>,
    correlation_id: &str,
) -> Option<HttpResponse> {
    let f = fault.as_ref()?;
    if f.rate_limit_storm {
        if let Some(p) = portal {
            *p.limits
                .lock()
                .rate_limited
                .entry("TEN_SECONDLY_ROLLING")
                .or_insert(0) += 1;
        }
        return Some(json_response(
            429,
            &rate_limited_body("TEN_SECONDLY_ROLLING", correlation_id),
        ));
    }
    if f.error_rate > 0.0 && rand::rng().random_bool(f.error_rate.clamp(0.0, 1.0)) {
        let status = f.error_status;
        let message = match status {
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "internal error",
        };
        return Some(json_response(
            status,
            &json!({"status": "error", "message": message, "correlationId": correlation_id, "category": "INTERNAL_ERROR"}),
        ));
    }
    None
}

async fn reshape_body(response: HttpResponse, fault: &Fault) -> HttpResponse {
    let status = response.status();
    let headers = response.headers().clone();
    let Ok(bytes) = actix_web::body::to_bytes(response.into_body()).await else {
        return HttpResponse::InternalServerError().finish();
    };
    let mut builder = HttpResponse::build(status);
    for (k, v) in headers.iter() {
        if k != actix_web::http::header::CONTENT_LENGTH {
            builder.insert_header((k.clone(), v.clone()));
        }
    }
    let bytes = if fault.truncate_body {
        bytes.slice(..bytes.len() / 2)
    } else {
        bytes
    };
    if fault.slow_body_ms == 0 {
        return builder.body(bytes);
    }
    let half = bytes.len() / 2;
    let first = bytes.slice(..half);
    let second = bytes.slice(half..);
    let delay = Duration::from_millis(fault.slow_body_ms);
    let stream = futures::stream::unfold(0u8, move |step| {
        let first = first.clone();
        let second = second.clone();
        async move {
            match step {
                0 => Some((Ok::<_, actix_web::Error>(first), 1)),
                1 => {
                    tokio::time::sleep(delay).await;
                    Some((Ok(second), 2))
                }
                _ => None,
            }
        }
    });
    builder.streaming(stream)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the request's parts, gathered once by dispatch"
)]
fn api(
    sim: &Arc<Sim>,
    req: &HttpRequest,
    path: &str,
    query: Vec<(String, String)>,
    body: web::Bytes,
    token: Option<AccessToken>,
    portal: Option<Arc<Portal>>,
    fault: Option<&Fault>,
    correlation_id: &str,
) -> HttpResponse {
    let (Some(token), Some(portal)) = (token, portal) else {
        return unauthenticated(correlation_id);
    };
    let now = now_ms();
    if let Some(exp) = token.expires_at_ms
        && now >= exp
    {
        return expired(correlation_id, exp);
    }
    if let Some(resp) = injected(&fault.cloned(), Some(&portal), correlation_id) {
        return resp;
    }
    let decoded = decoded_segments(path);
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let search = is_search(req.method(), &segs);
    let day = portal.day_number(now);
    let decision = portal.limits.lock().admit(&portal, token.kind, search, day);
    let headers = match decision {
        LimitDecision::Allowed(h) => h,
        LimitDecision::Rejected(policy, h) => {
            *portal.limits.lock().rate_limited.entry(policy).or_insert(0) += 1;
            let mut resp = json_response(429, &rate_limited_body(policy, correlation_id));
            add_headers(&mut resp, &h);
            return resp;
        }
    };
    let ctx = Ctx {
        sim: sim.clone(),
        portal,
        token,
        query,
        body,
        method: req.method().clone(),
        path: path.to_owned(),
    };
    let mut resp = match crate::api::route(&ctx, &segs) {
        Ok(r) => r,
        Err(e) => error_response(e, correlation_id),
    };
    add_headers(&mut resp, &headers);
    resp
}

/// A path's segments with percent-escapes decoded. Like any HTTP server, HubSpot decodes
/// them (an email used as `idProperty=email` arrives as `a%40b.example`). Split first, so
/// `%2F` stays in its segment.
fn decoded_segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .map(|seg| {
            percent_encoding::percent_decode_str(seg)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

fn add_headers(resp: &mut HttpResponse, headers: &[(&'static str, String)]) {
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
}

/// Whether `kind` is an OAuth token (for handlers that care).
pub fn is_oauth(kind: TokenKind) -> bool {
    kind != TokenKind::PrivateApp
}
