//! A full run through every credential path, with every log line captured (debug level,
//! every crate) and the audit log read back: none of the tokens and secrets used appears.

mod common;

use auth_gateway::caller::Role;
use auth_gateway::vault::Field;
use common::{CLIENT_SECRET, RECEIVER_SECRET, SYNC_WORKER_SECRET, TestApp};
use platform::testing::LogCapture;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn no_token_or_secret_used_in_a_full_run_reaches_the_logs_or_the_audit_log() {
    let capture = LogCapture::default();
    tracing_subscriber::fmt()
        .json()
        .with_writer(capture.clone())
        .with_env_filter("debug")
        .init();
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let admin = app.token(org, Role::Admin);
    let mut secrets = vec![
        admin.clone(),
        CLIENT_SECRET.to_owned(),
        SYNC_WORKER_SECRET.to_owned(),
        RECEIVER_SECRET.to_owned(),
        "whsec-logcheck-1".to_owned(),
        "whsec-logcheck-2".to_owned(),
    ];

    // Private app: connect, fetch, rotate, test, a refused token, webhook secrets.
    let portal = app.portal().await;
    secrets.push(portal.token.clone());
    let connection = app.connect(org, &portal, Some("whsec-logcheck-1")).await;
    let id = connection["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .internal(
            Method::POST,
            &format!("/internal/v1/connections/{id}/access-token"),
            "sync-worker",
            SYNC_WORKER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .internal(
            Method::POST,
            &format!("/internal/v1/connections/{id}/access-token"),
            "sync-worker",
            "dev-only-wrong-secret-logcheck",
            None,
        )
        .await;
    assert_eq!(status, 401);
    secrets.push("dev-only-wrong-secret-logcheck".to_owned());
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/api/v1/connections/{id}/credentials"),
            json!({"access_token": portal.token}),
        ),
        (
            Method::PUT,
            format!("/api/v1/connections/{id}/credentials"),
            json!({"access_token": "pat-na1-refused-logcheck"}),
        ),
        (
            Method::PUT,
            format!("/api/v1/connections/{id}/webhook-secret"),
            json!({"webhook_secret": "whsec-logcheck-2"}),
        ),
        (
            Method::POST,
            format!("/api/v1/connections/{id}/test"),
            json!({}),
        ),
        (
            Method::POST,
            "/api/v1/connections".to_owned(),
            json!({"name": "bad", "access_token": 12345678}),
        ),
    ] {
        app.call(method, &path, &admin, Some(body)).await;
    }
    secrets.push("pat-na1-refused-logcheck".to_owned());
    let (status, _) = app
        .internal(
            Method::GET,
            &format!("/internal/v1/connections/{id}/webhook-secrets"),
            "webhook-receiver",
            RECEIVER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 200);

    // OAuth: connect, refresh after a reported rejection, disconnect (revoke).
    let other = Uuid::new_v4();
    let oauth_id = app.oauth_connect(other).await;
    let access = app
        .stored_secret(&oauth_id, Field::AccessToken)
        .await
        .unwrap();
    let refresh = app
        .stored_secret(&oauth_id, Field::RefreshToken)
        .await
        .unwrap();
    secrets.push(access.clone());
    secrets.push(refresh);
    let (status, body) = app
        .internal(
            Method::POST,
            &format!("/internal/v1/connections/{oauth_id}/access-token"),
            "sync-worker",
            SYNC_WORKER_SECRET,
            Some(
                json!({"rejected_token_sha256": auth_gateway::internal_auth::sha256_hex(&access)}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    secrets.push(body["access_token"].as_str().unwrap().to_owned());
    let owner = app.token(other, Role::Owner);
    secrets.push(owner.clone());
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/connections/{oauth_id}"),
            &owner,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/connections/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 204);

    let (_, audit_one) = app.call(Method::GET, "/api/v1/audit", &admin, None).await;
    let (_, audit_two) = app.call(Method::GET, "/api/v1/audit", &owner, None).await;
    app.stop().await;

    let logs: String = capture
        .lines()
        .iter()
        .map(serde_json::Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        logs.contains("connection created"),
        "logs were not captured"
    );
    assert!(audit_one["entries"].as_array().unwrap().len() >= 4);
    assert!(audit_two["entries"].as_array().unwrap().len() >= 2);
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
        assert!(
            !audit_one.to_string().contains(secret.as_str()),
            "a secret is in the audit log"
        );
        assert!(
            !audit_two.to_string().contains(secret.as_str()),
            "a secret is in the audit log"
        );
    }
}
