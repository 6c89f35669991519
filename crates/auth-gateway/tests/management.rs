//! Testing and rotating a connection's credentials, webhook secret rotation, the audit
//! log, ciphertexts bound to their row, and vault key rotation.

mod common;

use auth_gateway::caller::Role;
use common::{RECEIVER_SECRET, SYNC_WORKER_SECRET, TestApp};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_connection_test_reports_what_works_and_which_scopes_are_missing() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let admin = app.token(org, Role::Admin);
    let full = app.portal().await;
    let connection = app.connect(org, &full, None).await;
    let (status, report) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/connections/{}/test",
                connection["id"].as_str().unwrap()
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checks"].as_array().unwrap().len(), 4);
    assert_eq!(report["missing_required_scopes"], json!([]));

    let response = app
        .http
        .post(format!("{}/_sim/portals", app.sim_base))
        .json(&json!({"private_app_scopes": ["crm.objects.contacts.read"]}))
        .send()
        .await
        .unwrap();
    let limited: serde_json::Value = response.json().await.unwrap();
    let (status, connection) = app
        .call(
            Method::POST,
            "/api/v1/connections",
            &admin,
            Some(json!({"name": "limited", "access_token": limited["private_app_token"]})),
        )
        .await;
    assert_eq!(status, 201, "{connection}");
    let (status, report) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/connections/{}/test",
                connection["id"].as_str().unwrap()
            ),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["missing_required_scopes"],
        json!(["crm.objects.companies.read", "crm.objects.deals.read"]),
        "{report}"
    );
    let (status, _) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/connections/{}/test",
                connection["id"].as_str().unwrap()
            ),
            &app.token(org, Role::Member),
            None,
        )
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn new_credentials_are_validated_before_they_replace_the_old_ones() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let admin = app.token(org, Role::Admin);
    let portal = app.portal().await;
    let other = app.portal().await;
    let connection = app.connect(org, &portal, None).await;
    let id = connection["id"].as_str().unwrap();
    let path = format!("/api/v1/connections/{id}/credentials");
    let (status, body) = app
        .call(
            Method::PUT,
            &path,
            &admin,
            Some(json!({"access_token": "pat-na1-bogus"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app
        .call(
            Method::PUT,
            &path,
            &admin,
            Some(json!({"access_token": other.token})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&other.id.to_string())
    );
    // The stored token is untouched by the refused attempts.
    let (_, token) = app
        .internal(
            Method::POST,
            &format!("/internal/v1/connections/{id}/access-token"),
            "sync-worker",
            SYNC_WORKER_SECRET,
            None,
        )
        .await;
    assert_eq!(token["access_token"], portal.token);
    let (status, body) = app
        .call(
            Method::PUT,
            &path,
            &admin,
            Some(json!({"access_token": portal.token})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains(&portal.token));
    let (status, _) = app
        .call(
            Method::PUT,
            &path,
            &app.token(org, Role::Member),
            Some(json!({"access_token": portal.token})),
        )
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn a_new_webhook_secret_keeps_the_previous_one_accepted_during_the_rotation() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let portal = app.portal().await;
    let connection = app.connect(org, &portal, Some("whsec-old")).await;
    let id = connection["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/connections/{id}/webhook-secret"),
            &app.token(org, Role::Owner),
            Some(json!({"webhook_secret": "whsec-new"})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = app
        .internal(
            Method::GET,
            &format!("/internal/v1/connections/{id}/webhook-secrets"),
            "webhook-receiver",
            RECEIVER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["secrets"], json!(["whsec-new", "whsec-old"]));
    app.stop().await;
}

#[tokio::test]
async fn admins_read_the_audit_log_of_their_org_which_holds_no_secret() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let admin = app.token(org, Role::Admin);
    let portal = app.portal().await;
    let connection = app.connect(org, &portal, Some("whsec-audit-1")).await;
    let id = connection["id"].as_str().unwrap();
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/api/v1/connections/{id}/webhook-secret"),
            Some(json!({"webhook_secret": "whsec-audit-2"})),
        ),
        (
            Method::POST,
            format!("/api/v1/connections/{id}/syncs"),
            None,
        ),
        (Method::DELETE, format!("/api/v1/connections/{id}"), None),
    ] {
        let (status, answer) = app.call(method, &path, &admin, body).await;
        assert!(status < 300, "{path}: {answer}");
    }
    let (status, page) = app.call(Method::GET, "/api/v1/audit", &admin, None).await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "connection.disconnected",
            "sync.requested",
            "connection.webhook_secret_replaced",
            "connection.created"
        ]
    );
    assert!(
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "user:user-1")
    );
    let text = page.to_string();
    for secret in [portal.token.as_str(), "whsec-audit-1", "whsec-audit-2"] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    let (status, _) = app
        .call(
            Method::GET,
            "/api/v1/audit",
            &app.token(org, Role::Member),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (_, foreign) = app
        .call(
            Method::GET,
            "/api/v1/audit",
            &app.token(Uuid::new_v4(), Role::Owner),
            None,
        )
        .await;
    assert_eq!(foreign["entries"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_ciphertext_copied_to_another_connection_or_field_does_not_decrypt() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let (a, b) = (app.portal().await, app.portal().await);
    let first = app.connect(org, &a, Some("whsec-a")).await;
    let second = app.connect(org, &b, None).await;
    let (first, second) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    app.sql(&format!(
        "UPDATE credentials SET sealed = (SELECT sealed FROM credentials WHERE connection_id = '{first}' AND field = 'access_token') \
         WHERE connection_id = '{second}' AND field = 'access_token'"
    ))
    .await;
    let (status, body) = app
        .internal(
            Method::POST,
            &format!("/internal/v1/connections/{second}/access-token"),
            "sync-worker",
            SYNC_WORKER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "internal");
    assert!(!body.to_string().contains(&a.token));
    app.sql(&format!(
        "UPDATE credentials SET sealed = (SELECT sealed FROM credentials WHERE connection_id = '{first}' AND field = 'webhook_secret') \
         WHERE connection_id = '{first}' AND field = 'access_token'"
    ))
    .await;
    let (status, _) = app
        .internal(
            Method::POST,
            &format!("/internal/v1/connections/{first}/access-token"),
            "sync-worker",
            SYNC_WORKER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 500);
    app.stop().await;
}

#[tokio::test]
async fn rotate_keys_reseals_every_secret_under_the_newest_key_so_the_old_key_can_go() {
    let mut app = TestApp::start().await;
    let org = Uuid::new_v4();
    let mut connections = Vec::new();
    for _ in 0..3 {
        let portal = app.portal().await;
        let connection = app.connect(org, &portal, Some("whsec")).await;
        connections.push((connection["id"].as_str().unwrap().to_owned(), portal.token));
    }
    let old = app.settings.vault.keyring.clone();
    let newest = "k2:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let mut rotated = app.settings.clone();
    rotated.vault.keyring =
        format!("{newest},{}", secrecy::ExposeSecret::expose_secret(&old)).into();
    rotated.vault.rotate_batch_size = 2;
    assert_eq!(auth_gateway::cli::rotate_keys(&rotated).await.unwrap(), 6);
    assert_eq!(
        auth_gateway::cli::rotate_keys(&rotated).await.unwrap(),
        0,
        "nothing left"
    );
    // A replica holding only the new key serves every secret.
    app.settings.vault.keyring = newest.to_owned().into();
    let port = app.spawn_replica().await;
    for (id, token) in &connections {
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
        assert_eq!(body["access_token"], token.as_str());
    }
    app.stop().await;
}
