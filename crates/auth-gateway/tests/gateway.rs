//! Forwarding `/api/v1` routes to the services that own them, and the OpenAPI document.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use auth_gateway::caller::Role;
use common::TestApp;
use platform::jwt::InternalTokenVerifier;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    authorization: String,
    request_id: String,
    body: String,
}

/// A stand-in for a worker: records what reaches it, answers `{"served_by": "upstream"}`,
/// and serves a small `/openapi.json`. With `delay`, it answers that late.
struct Upstream {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Upstream {
    async fn start(delay: Option<Duration>) -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = seen.clone();
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let shared = shared.clone();
                async move {
                    if req.path() == "/openapi.json" {
                        return HttpResponse::Ok().json(json!({
                            "openapi": "3.1.0", "info": {"title": "up", "version": "1"},
                            "paths": {"/api/v1/customers": {"get": {"summary": "List customers with their scores", "responses": {"200": {"description": "ok"}}}}}
                        }));
                    }
                    if let Some(delay) = delay {
                        tokio::time::sleep(delay).await;
                    }
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    shared.lock().unwrap().push(Seen {
                        method: req.method().to_string(),
                        uri: req.uri().to_string(),
                        authorization: header("authorization"),
                        request_id: header("x-request-id"),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    HttpResponse::Ok().json(json!({"served_by": "upstream"}))
                }
            }))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Upstream {
            base: format!("http://127.0.0.1:{port}"),
            seen,
            handle,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn app_with(upstream: &str, tweak: impl FnOnce(&mut auth_gateway::Settings)) -> TestApp {
    let upstream = upstream.to_owned();
    TestApp::start_with(hubspot_sim::SimConfig::default(), move |s| {
        s.upstreams.sync_worker = upstream.clone();
        s.upstreams.scoring_engine = upstream.clone();
        s.upstreams.writeback_worker = upstream;
        tweak(s);
    })
    .await
}

#[tokio::test]
async fn a_forwarded_request_carries_an_internal_token_for_its_owner_and_the_request_id() {
    let upstream = Upstream::start(None).await;
    let app = app_with(&upstream.base, |_| {}).await;
    let org = Uuid::new_v4();
    let response = app
        .http
        .get(app.url("/api/v1/customers?limit=5"))
        .bearer_auth(app.token(org, Role::Member))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-123");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["served_by"], "upstream");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/api/v1/customers?limit=5");
    assert_eq!(seen[0].request_id, "req-123");
    let token = seen[0].authorization.strip_prefix("Bearer ").unwrap();
    let jwt = InternalTokenVerifier::from_settings(&app.settings.internal_jwt).unwrap();
    let claims = jwt.verify(token, "scoring-engine").unwrap();
    assert_eq!(claims.org_id, Some(org));
    assert_eq!(claims.sub, "user:user-1");
    assert_eq!(claims.roles, vec!["member".to_owned()]);
    assert!(
        jwt.verify(token, "sync-worker").is_err(),
        "the token names its audience"
    );
    // Without a request id, the gateway makes one up and passes it on.
    let response = app
        .http
        .get(app.url("/api/v1/scoring/config"))
        .bearer_auth(app.token(org, Role::Member))
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(upstream.seen()[1].request_id, generated);
    assert!(!generated.is_empty());
    app.stop().await;
    upstream.handle.stop(false).await;
}

#[tokio::test]
async fn forwarded_routes_check_roles_and_connection_ownership_before_forwarding() {
    let upstream = Upstream::start(None).await;
    let app = app_with(&upstream.base, |_| {}).await;
    let (org, other) = (Uuid::new_v4(), Uuid::new_v4());
    let portal = app.portal().await;
    let connection = app.connect(org, &portal, None).await;
    let id = connection["id"].as_str().unwrap();
    let mappings = format!("/api/v1/connections/{id}/mappings");
    let member = app.token(org, Role::Member);
    let admin = app.token(org, Role::Admin);
    let (status, _) = app.call(Method::GET, &mappings, &member, None).await;
    assert_eq!(status, 200);
    let (status, body) = app
        .call(
            Method::PUT,
            &mappings,
            &member,
            Some(json!({"mappings": []})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = app
        .call(
            Method::PUT,
            &mappings,
            &admin,
            Some(json!({"mappings": []})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/connections/{id}/writeback/backfill"),
            &member,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let forwarded = upstream.seen().len();
    for path in [
        mappings.clone(),
        format!("/api/v1/connections/{id}/syncs"),
        format!("/api/v1/connections/{id}/writeback/status"),
    ] {
        let (status, body) = app
            .call(Method::GET, &path, &app.token(other, Role::Owner), None)
            .await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/connections/{}/syncs/latest", Uuid::new_v4()),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        upstream.seen().len(),
        forwarded,
        "nothing else reached the upstream"
    );
    let seen = upstream.seen();
    let put = seen.iter().find(|s| s.method == "PUT").unwrap();
    assert_eq!(put.body, r#"{"mappings":[]}"#);
    // The change made through sync-worker is in the audit log.
    let (_, audit) = app.call(Method::GET, "/api/v1/audit", &admin, None).await;
    assert_eq!(
        audit["entries"][0]["action"],
        "PUT /api/v1/connections/{id}/mappings"
    );
    assert_eq!(audit["entries"][0]["connection_id"], id);
    let (status, _) = app
        .call(Method::GET, "/api/v1/customers", "forged", None)
        .await;
    assert_eq!(status, 401);
    app.stop().await;
    upstream.handle.stop(false).await;
}

#[tokio::test]
async fn a_down_upstream_is_a_502_a_slow_one_a_504_and_a_large_body_a_413() {
    let slow = Upstream::start(Some(Duration::from_secs(5))).await;
    let app = app_with("http://127.0.0.1:9", |s| {
        s.upstreams.scoring_engine = slow.base.clone();
        s.upstreams.timeout_ms = 300;
        s.upstreams.max_body_bytes = 1024;
    })
    .await;
    let org = Uuid::new_v4();
    let portal = app.portal().await;
    let connection = app.connect(org, &portal, None).await;
    let id = connection["id"].as_str().unwrap();
    let admin = app.token(org, Role::Admin);
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/connections/{id}/syncs"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "upstream_unavailable");
    let (status, body) = app
        .call(Method::GET, "/api/v1/customers", &admin, None)
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"], "upstream_timeout");
    let big = json!({"blob": "x".repeat(2000)});
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/connections/{id}/mappings"),
            &admin,
            Some(big),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "payload_too_large");
    app.stop().await;
    slow.handle.stop(false).await;
}

/// Every (method, path) the gateway serves under `/api/v1`, as OpenAPI spells it: its own
/// routes read from their registration in `src/routes/mod.rs` (so a route added there
/// without a description fails this test), the forwarded ones from the proxy's table.
fn served_routes() -> Vec<(&'static str, String)> {
    let source = include_str!("../src/routes/mod.rs");
    let scope = source
        .split("web::scope(\"/api/v1\")")
        .nth(1)
        .unwrap_or_else(|| panic!("no /api/v1 scope in src/routes/mod.rs"));
    // `.route("/path", web::get()...)`, possibly spread over lines by rustfmt.
    let flat: String = scope.split_whitespace().collect::<Vec<_>>().join("");
    let mut own: Vec<(&'static str, String)> = Vec::new();
    for piece in flat.split(".route(\"").skip(1) {
        let (path, rest) = piece
            .split_once('"')
            .unwrap_or_else(|| panic!("no quoted path in {piece}"));
        let method = ["get", "post", "put", "delete", "patch"]
            .into_iter()
            .find(|m| rest.starts_with(&format!(",web::{m}()")))
            .unwrap_or_else(|| panic!("the method of route {path}"));
        own.push((method, format!("/api/v1{path}")));
    }
    assert!(own.len() >= 10, "read only {own:?} from src/routes/mod.rs");
    let mut routes = own;
    for (method, pattern, _) in auth_gateway::routes::proxy::FORWARDED {
        let path = format!("/api/v1{}", pattern.replace("{tail:.*}", "{path}"));
        let methods: &[&'static str] = match *method {
            "GET" => &["get"],
            "PUT" => &["put"],
            _ => &["get", "post", "put", "delete"],
        };
        for m in methods {
            routes.push((m, path.clone()));
        }
    }
    routes
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_served_and_merges_the_services_parts() {
    let upstream = Upstream::start(None).await;
    let app = app_with(&upstream.base, |_| {}).await;
    let response = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let parsed: Result<utoipa::openapi::OpenApi, _> = serde_json::from_value(document.clone());
    assert!(
        parsed.is_ok(),
        "not an OpenAPI document: {:?}",
        parsed.err()
    );
    for (method, path) in served_routes() {
        assert!(
            document["paths"][&path][method].is_object(),
            "{method} {path} is not described"
        );
    }
    assert_eq!(
        document["paths"]["/api/v1/customers"]["get"]["summary"],
        "List customers with their scores",
        "scoring-engine's own description is merged in"
    );
    assert!(document["components"]["schemas"]["ConnectionView"].is_object());
    app.stop().await;
    upstream.handle.stop(false).await;

    // With every upstream down, forwarded routes are still described.
    let lonely = app_with("http://127.0.0.1:9", |_| {}).await;
    let document: Value = lonely
        .http
        .get(lonely.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (method, path) in served_routes() {
        assert!(
            document["paths"][&path][method].is_object(),
            "{method} {path}"
        );
    }
    lonely.stop().await;
}
