//! The private-app route against a stand-in for auth-gateway's internal API that serves
//! the documented `webhook-secrets` JSON (docs/internal-api.md). This is contract testing
//! of our side; the test against the real gateway belongs to the integration suite.

#![expect(clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use common::{Sim, TestApp, delivery, now_ms, spawn_app, v3_headers};
use serde_json::json;

const SERVICE_SECRET: &str = "receiver-service-secret";

/// Connection id → (portal, secrets).
type Connections = HashMap<String, (i64, Vec<String>)>;

/// The stand-in gateway.
#[derive(Clone, Default)]
struct FakeGateway {
    connections: Arc<Mutex<Connections>>,
    calls: Arc<AtomicUsize>,
}

impl FakeGateway {
    fn set(&self, connection: &str, portal: i64, secrets: &[&str]) {
        self.connections.lock().expect("lock").insert(
            connection.to_owned(),
            (portal, secrets.iter().map(|s| (*s).to_owned()).collect()),
        );
    }

    async fn start(&self) -> String {
        let gateway = self.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = HttpServer::new(move || {
            App::new().app_data(web::Data::new(gateway.clone())).route(
                "/internal/v1/connections/{id}/webhook-secrets",
                web::get().to(webhook_secrets),
            )
        })
        .listen(listener)
        .expect("listen")
        .workers(1)
        .disable_signals()
        .run();
        tokio::spawn(server);
        format!("http://127.0.0.1:{port}")
    }
}

async fn webhook_secrets(
    request: HttpRequest,
    id: web::Path<String>,
    gateway: web::Data<FakeGateway>,
) -> HttpResponse {
    gateway.calls.fetch_add(1, Ordering::SeqCst);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("webhook-receiver:{SERVICE_SECRET}"))
    );
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if authorization != Some(expected.as_str()) {
        return HttpResponse::Unauthorized()
            .json(json!({"error": "unauthenticated", "message": "bad service credentials"}));
    }
    let id = id.into_inner();
    match gateway.connections.lock().expect("lock").get(&id) {
        Some((portal, secrets)) => HttpResponse::Ok()
            .json(json!({"connection_id": id, "portal_id": portal, "secrets": secrets})),
        None => HttpResponse::NotFound()
            .json(json!({"error": "not_found", "message": "no such connection"})),
    }
}

async fn app_with_gateway(gateway_url: String) -> TestApp {
    spawn_app(move |s| {
        s.auth_gateway.base_url = gateway_url;
        s.auth_gateway.service_secret = SERVICE_SECRET.to_owned().into();
        s.auth_gateway.refresh_min_interval_ms = 0;
    })
    .await
}

const CONNECTION: &str = "0190f5b4-7a1e-7c3d-9d2f-2b6f3c4d5e6f";

async fn post_private(
    app: &TestApp,
    connection: &str,
    secret: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let path = format!("/webhooks/hubspot/{connection}");
    let headers = v3_headers(secret, &app.url(&path), &body, &now_ms().to_string());
    app.post(&path, body, &headers).await
}

#[tokio::test]
async fn the_simulators_deliveries_to_a_private_app_connection_carry_its_connection_id() {
    let gateway = FakeGateway::default();
    let app = app_with_gateway(gateway.start().await).await;
    let sim = Sim::start().await;
    let target = app.url(&format!("/webhooks/hubspot/{CONNECTION}"));
    let portal = sim.portal(&target, "private-app-secret").await;
    gateway.set(CONNECTION, portal, &["private-app-secret"]);
    sim.create(portal, "contacts", json!({"email": "private@x.example"}))
        .await;
    let hooks = sim.settled(portal).await;
    assert_eq!(hooks["failed_attempts"], 0, "{hooks}");
    let batches = app.take_batches().await;
    assert!(!batches.is_empty());
    for batch in &batches {
        assert_eq!(batch.connection_id.as_deref(), Some(CONNECTION));
        assert_eq!(batch.portal_id, portal);
    }
    sim.sim.stop().await;
}

#[tokio::test]
async fn the_previous_secret_still_verifies_during_a_rotation() {
    let gateway = FakeGateway::default();
    let app = app_with_gateway(gateway.start().await).await;
    gateway.set(CONNECTION, 62515, &["current", "previous"]);
    for secret in ["current", "previous"] {
        let (status, answer) = post_private(&app, CONNECTION, secret, delivery(62515, 1, 1)).await;
        assert_eq!(status, 200, "{secret}: {answer}");
    }
    assert_eq!(app.take_batches().await.len(), 2);
    assert_eq!(
        gateway.calls.load(Ordering::SeqCst),
        1,
        "the secrets are cached"
    );
}

#[tokio::test]
async fn a_secret_rotated_since_it_was_cached_is_fetched_again_on_a_signature_miss() {
    let gateway = FakeGateway::default();
    let app = app_with_gateway(gateway.start().await).await;
    gateway.set(CONNECTION, 62515, &["old"]);
    let (status, _) = post_private(&app, CONNECTION, "old", delivery(62515, 1, 1)).await;
    assert_eq!(status, 200);
    gateway.set(CONNECTION, 62515, &["new"]);
    let (status, answer) = post_private(&app, CONNECTION, "new", delivery(62515, 2, 1)).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post_private(&app, CONNECTION, "forged", delivery(62515, 3, 1)).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"], "invalid_signature");
    assert_eq!(app.take_batches().await.len(), 2);
}

#[tokio::test]
async fn an_unknown_connection_is_answered_404_and_nothing_is_published() {
    let gateway = FakeGateway::default();
    let app = app_with_gateway(gateway.start().await).await;
    for connection in [CONNECTION, "not-a-uuid"] {
        let (status, answer) = post_private(&app, connection, "any", delivery(62515, 1, 1)).await;
        assert_eq!(status, 404, "{connection}: {answer}");
        assert_eq!(answer["error"], "not_found");
    }
    assert_eq!(app.queued().await, 0);
}

#[tokio::test]
async fn an_unreachable_gateway_is_answered_503_so_hubspot_retries() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let app = app_with_gateway(url).await;
    let (status, answer) = post_private(&app, CONNECTION, "any", delivery(62515, 1, 1)).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "secrets_unavailable");
    assert_eq!(app.queued().await, 0);
}

#[tokio::test]
async fn wrong_service_credentials_at_the_gateway_are_our_outage_not_a_refusal() {
    let gateway = FakeGateway::default();
    let url = gateway.start().await;
    gateway.set(CONNECTION, 62515, &["current"]);
    let app = spawn_app(move |s| s.auth_gateway.base_url = url).await;
    let (status, answer) = post_private(&app, CONNECTION, "current", delivery(62515, 1, 1)).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(app.queued().await, 0);
}

#[tokio::test]
async fn events_of_another_portal_than_the_connections_are_refused() {
    let gateway = FakeGateway::default();
    let app = app_with_gateway(gateway.start().await).await;
    gateway.set(CONNECTION, 62515, &["current"]);
    let (status, answer) = post_private(&app, CONNECTION, "current", delivery(99, 1, 1)).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "portal_mismatch");
    assert_eq!(app.queued().await, 0);
}
