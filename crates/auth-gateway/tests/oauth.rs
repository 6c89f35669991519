//! The OAuth code flow against the simulator's consent page, its errors, and the refresh
//! of OAuth tokens: one refresh per connection across replicas, invalid_grant.

mod common;

use std::sync::Arc;

use auth_gateway::caller::Role;
use auth_gateway::vault::Field;
use common::{Consent, CountingProxy, SYNC_WORKER_SECRET, TestApp};
use contracts::v1::ConnectionClosed;
use prost::Message as _;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn granting_access_on_the_consent_page_connects_the_portal() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let portal = app.portal().await;
    let id = app.oauth_connect(org).await;
    let (status, connection) = app
        .call(
            Method::GET,
            &format!("/api/v1/connections/{id}"),
            &app.token(org, Role::Member),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(connection["auth_kind"], "oauth");
    assert_eq!(connection["portal_id"], portal.id);
    assert_eq!(connection["name"], "via oauth");
    assert_eq!(connection["connected_by"], "admin-7");
    let scopes = connection["scopes"].as_array().unwrap();
    assert!(
        scopes.contains(&json!("crm.objects.deals.read")),
        "{scopes:?}"
    );
    let (key, _, _) = app.next_event().await;
    assert_eq!(key, "connection.established");
    let (status, token) = app
        .internal(
            Method::POST,
            &format!("/internal/v1/connections/{id}/access-token"),
            "sync-worker",
            SYNC_WORKER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(token["expires_at"].is_string(), "{token}");
    app.stop().await;
}

async fn no_connections(app: &TestApp, org: Uuid) {
    let (_, list) = app
        .call(
            Method::GET,
            "/api/v1/connections",
            &app.token(org, Role::Member),
            None,
        )
        .await;
    assert_eq!(list["connections"], json!([]), "something was stored");
}

#[tokio::test]
async fn cancelling_on_the_consent_page_stores_nothing() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    app.portal().await;
    let url = app.start_oauth(org).await;
    let back = app.consent(&url, Consent::Cancel).await;
    let outcome = app.callback(&back).await;
    assert_eq!(outcome["outcome"], "error");
    assert_eq!(outcome["error"], "access_denied");
    assert!(outcome["message"].contains("not granted"));
    no_connections(&app, org).await;
    app.stop().await;
}

#[tokio::test]
async fn a_reused_or_forged_state_is_refused() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    app.portal().await;
    let url = app.start_oauth(org).await;
    let back = app.consent(&url, Consent::Grant).await;
    assert_eq!(app.callback(&back).await["outcome"], "connected");
    let replay = app.callback(&back).await;
    assert_eq!(replay["error"], "invalid_state", "{replay:?}");
    assert!(replay["message"].contains("already used"));

    let other = Uuid::new_v4();
    let url = app.start_oauth(other).await;
    let back = app.consent(&url, Consent::Grant).await;
    let state = back.split("state=").nth(1).unwrap().to_owned();
    let (id, _) = state.split_once('.').unwrap();
    let forged = back.replace(&state, &format!("{id}.AAAAforgedsignature"));
    assert_eq!(app.callback(&forged).await["error"], "invalid_state");
    let code_only = back.split("&state=").next().unwrap().to_owned();
    assert_eq!(app.callback(&code_only).await["error"], "invalid_state");
    // The forged attempt consumed the state: the genuine redirect no longer works either.
    assert_eq!(app.callback(&back).await["error"], "invalid_state");
    no_connections(&app, other).await;
    app.stop().await;
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    app.portal().await;
    let url = app.start_oauth(org).await;
    let back = app.consent(&url, Consent::Grant).await;
    app.sql("UPDATE oauth_states SET expires_at = now() - interval '1 second'")
        .await;
    let outcome = app.callback(&back).await;
    assert_eq!(outcome["error"], "invalid_state");
    assert!(outcome["message"].contains("expired"));
    no_connections(&app, org).await;
    app.stop().await;
}

#[tokio::test]
async fn token_endpoint_errors_end_with_a_clear_message_and_store_nothing() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    app.portal().await;
    // The page posts a redirect URI other than the one the gateway exchanges with.
    let url = app.start_oauth(org).await;
    let back = app
        .consent(&url, Consent::GrantTo("http://elsewhere.example/cb"))
        .await;
    let outcome = app.callback(&back).await;
    assert_eq!(outcome["error"], "redirect_uri_mismatch", "{outcome:?}");
    // A code that HubSpot never issued.
    let url = app.start_oauth(org).await;
    let back = app.consent(&url, Consent::Grant).await;
    let state = back.split("state=").nth(1).unwrap();
    let outcome = app
        .callback(&format!("code=not-a-code&state={state}"))
        .await;
    assert_eq!(outcome["error"], "invalid_grant", "{outcome:?}");
    assert!(outcome["message"].contains("start again"));
    // Fewer scopes than required.
    let url = app.start_oauth(org).await;
    let back = app
        .consent(&url, Consent::GrantScopes("crm.objects.contacts.read"))
        .await;
    let outcome = app.callback(&back).await;
    assert_eq!(outcome["error"], "missing_scopes", "{outcome:?}");
    assert!(outcome["message"].contains("crm.objects.deals.read"));
    no_connections(&app, org).await;
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_client_secret_ends_in_invalid_client() {
    let app = TestApp::start_with(hubspot_sim::SimConfig::default(), |s| {
        s.oauth.client_secret = "not-the-apps-secret".to_owned().into();
    })
    .await;
    let org = Uuid::new_v4();
    app.portal().await;
    let url = app.start_oauth(org).await;
    let back = app.consent(&url, Consent::Grant).await;
    let outcome = app.callback(&back).await;
    assert_eq!(outcome["error"], "invalid_client", "{outcome:?}");
    no_connections(&app, org).await;
    app.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_requests_at_expiry_on_two_replicas_cause_exactly_one_refresh() {
    let mut app = TestApp::start().await;
    // Two more replicas whose HubSpot calls go through a counting proxy.
    let proxy = CountingProxy::start(app.sim_base.clone()).await;
    app.settings.hubspot.api_base_url = proxy.base.clone();
    let first = app.spawn_replica().await;
    let second = app.spawn_replica().await;
    let org = Uuid::new_v4();
    app.portal().await;
    let id = app.oauth_connect(org).await;
    let old = app.stored_secret(&id, Field::AccessToken).await.unwrap();
    app.sql("UPDATE connections SET access_token_expires_at = now() - interval '1 second'")
        .await;
    let app = Arc::new(app);
    let ports = [first, second];
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            let port = ports[i % 2];
            let id = id.clone();
            tokio::spawn(async move {
                let response = app
                    .http
                    .post(format!(
                        "http://127.0.0.1:{port}/internal/v1/connections/{id}/access-token"
                    ))
                    .basic_auth("sync-worker", Some(SYNC_WORKER_SECRET))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let body: serde_json::Value = response.json().await.unwrap();
                body["access_token"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap());
    }
    assert_eq!(proxy.count(), 1, "refreshes seen at the simulator");
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "everyone got the new token"
    );
    assert_ne!(tokens[0], old);
    // A worker reporting the new token rejected gets one more refresh.
    let sha = auth_gateway::internal_auth::sha256_hex(&tokens[0]);
    let response = app
        .http
        .post(format!(
            "http://127.0.0.1:{first}/internal/v1/connections/{id}/access-token"
        ))
        .basic_auth("sync-worker", Some(SYNC_WORKER_SECRET))
        .json(&json!({"rejected_token_sha256": sha}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_ne!(body["access_token"], tokens[0].as_str());
    assert_eq!(proxy.count(), 2);
    proxy.stop().await;
    Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test]
async fn a_refused_refresh_token_marks_the_connection_reauth_required_and_says_so() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    app.portal().await;
    let id = app.oauth_connect(org).await;
    let _established = app.next_event().await;
    let refresh = app.stored_secret(&id, Field::RefreshToken).await.unwrap();
    let revoked = app
        .http
        .delete(format!(
            "{}/oauth/v1/refresh-tokens/{refresh}",
            app.sim_base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    app.sql("UPDATE connections SET access_token_expires_at = now() - interval '1 second'")
        .await;
    let path = format!("/internal/v1/connections/{id}/access-token");
    let (status, body) = app
        .internal(Method::POST, &path, "sync-worker", SYNC_WORKER_SECRET, None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "reauth_required");
    let (_, connection) = app
        .call(
            Method::GET,
            &format!("/api/v1/connections/{id}"),
            &app.token(org, Role::Member),
            None,
        )
        .await;
    assert_eq!(connection["status"], "reauth_required");
    let (key, _, data) = app.next_event().await;
    assert_eq!(key, "connection.closed");
    let event = ConnectionClosed::decode(data.as_slice()).unwrap();
    assert_eq!(event.reason(), contracts::v1::CloseReason::RefreshFailed);
    // Callers keep getting the clear error, not a stale token.
    let (status, _) = app
        .internal(Method::POST, &path, "sync-worker", SYNC_WORKER_SECRET, None)
        .await;
    assert_eq!(status, 409);
    // Reconnecting through OAuth makes the same connection active again.
    let again = app.oauth_connect(org).await;
    assert_eq!(again, id);
    let (status, _) = app
        .internal(Method::POST, &path, "sync-worker", SYNC_WORKER_SECRET, None)
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn disconnecting_an_oauth_connection_revokes_its_refresh_token_at_hubspot() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    app.portal().await;
    let id = app.oauth_connect(org).await;
    let refresh = app.stored_secret(&id, Field::RefreshToken).await.unwrap();
    let known = app
        .http
        .get(format!(
            "{}/oauth/v1/refresh-tokens/{refresh}",
            app.sim_base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(known.status(), 200);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/connections/{id}"),
            &app.token(org, Role::Owner),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let gone = app
        .http
        .get(format!(
            "{}/oauth/v1/refresh-tokens/{refresh}",
            app.sim_base
        ))
        .send()
        .await
        .unwrap();
    assert_ne!(
        gone.status(),
        200,
        "the simulator still knows the refresh token"
    );
    assert_eq!(app.stored_secret(&id, Field::RefreshToken).await, None);
    // Signing in again continues the same connection, with fresh tokens.
    let again = app.oauth_connect(org).await;
    assert_eq!(again, id, "a reconnect got a new connection id");
    let (status, connection) = app
        .call(
            Method::GET,
            &format!("/api/v1/connections/{id}"),
            &app.token(org, Role::Owner),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(connection["status"], "active", "{connection}");
    assert!(connection["disconnected_at"].is_null(), "{connection}");
    assert!(app.stored_secret(&id, Field::RefreshToken).await.is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_failing_token_endpoint_is_answered_502_and_the_connection_stays_active() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    app.portal().await;
    let id = app.oauth_connect(org).await;
    let fault = app
        .http
        .post(format!("{}/_sim/faults", app.sim_base))
        .json(&json!({"path_prefix": "/oauth/v3/token", "error_rate": 1.0, "error_status": 503}))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), 201);
    app.sql("UPDATE connections SET access_token_expires_at = now() - interval '1 second'")
        .await;
    let path = format!("/internal/v1/connections/{id}/access-token");
    let (status, body) = app
        .internal(Method::POST, &path, "sync-worker", SYNC_WORKER_SECRET, None)
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "hubspot_unavailable");
    let (_, connection) = app
        .call(
            Method::GET,
            &format!("/api/v1/connections/{id}"),
            &app.token(org, Role::Member),
            None,
        )
        .await;
    assert_eq!(connection["status"], "active");
    let cleared = app
        .http
        .delete(format!("{}/_sim/faults", app.sim_base))
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());
    let (status, _) = app
        .internal(Method::POST, &path, "sync-worker", SYNC_WORKER_SECRET, None)
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_worker_using_gateway_token_source_recovers_from_an_expired_token_through_the_gateway() {
    use hubspot_client::{
        ClientConfig, GatewayCredentials, GatewayTokenSource, HubSpotClient, TokenSource as _,
    };
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let portal = app.portal().await;
    let id = app.oauth_connect(org).await;
    let source = Arc::new(GatewayTokenSource::new(
        reqwest::Client::new(),
        GatewayCredentials {
            base_url: app.base.clone(),
            service: "sync-worker".to_owned(),
            secret: SYNC_WORKER_SECRET.to_owned(),
        },
        id.clone(),
    ));
    let client = HubSpotClient::builder(ClientConfig::for_base_url(&app.sim_base), source.clone())
        .build()
        .unwrap();
    assert_eq!(client.account_details().await.unwrap().portal_id, portal.id);
    // HubSpot expires the token early; the worker's next call gets a 401, reports the
    // token, and the gateway refreshes it once.
    let first = source.access_token().await.unwrap();
    let expired = app
        .http
        .post(format!(
            "{}/_sim/tokens/{}/expire",
            app.sim_base,
            first.secret()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 204);
    assert_eq!(client.account_details().await.unwrap().portal_id, portal.id);
    let second = source.access_token().await.unwrap();
    assert_ne!(first.secret(), second.secret());
    assert_eq!(
        app.stored_secret(&id, Field::AccessToken).await.unwrap(),
        second.secret()
    );
    app.stop().await;
}
