//! Connecting portals with private-app tokens, org scoping, roles, disconnecting, syncs,
//! and the internal API the workers use.

mod common;

use auth_gateway::caller::Role;
use common::{RECEIVER_SECRET, SYNC_WORKER_SECRET, TestApp};
use contracts::v1::{ConnectionClosed, ConnectionEstablished, SyncRequested};
use prost::Message as _;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_private_app_token_connects_its_portal_and_publishes_connection_established() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let portal = app
        .portal_with(json!({"tier": "enterprise", "api_limit_increase": true}))
        .await;
    let connection = app.connect(org, &portal, Some("whsec-1")).await;
    assert_eq!(connection["status"], "active");
    assert_eq!(connection["portal_id"], portal.id);
    assert_eq!(connection["time_zone"], "Europe/Berlin");
    assert_eq!(connection["auth_kind"], "private_app");
    assert_eq!(connection["connected_by"], "user-1");
    assert_eq!(connection["has_webhook_secret"], true);
    assert_eq!(connection["tier"], "enterprise");
    assert_eq!(connection["api_limit_increase"], true);
    assert!(!connection.to_string().contains(&portal.token));

    let (status, list) = app
        .call(
            Method::GET,
            "/api/v1/connections",
            &app.token(org, Role::Member),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["connections"].as_array().unwrap().len(), 1);
    assert_eq!(list["connections"][0]["id"], connection["id"]);

    let (key, kind, body) = app.next_event().await;
    assert_eq!(key, "connection.established");
    assert_eq!(kind, "hubscore.v1.ConnectionEstablished");
    let event = ConnectionEstablished::decode(body.as_slice()).unwrap();
    assert_eq!(event.connection_id, connection["id"].as_str().unwrap());
    assert_eq!(event.org_id, org.to_string());
    assert_eq!(event.portal_id, portal.id);
    assert_eq!(event.portal.unwrap().time_zone, "Europe/Berlin");
    app.stop().await;
}

#[tokio::test]
async fn a_token_hubspot_refuses_is_answered_422_and_nothing_is_stored() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let admin = app.token(org, Role::Admin);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/connections",
            &admin,
            Some(json!({"name": "prod", "access_token": "pat-na1-not-a-real-token"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_credential");
    assert!(!body.to_string().contains("pat-na1-not-a-real-token"));
    let (_, list) = app
        .call(Method::GET, "/api/v1/connections", &admin, None)
        .await;
    assert_eq!(list["connections"], json!([]));
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/connections",
            &admin,
            Some(json!({"name": "prod"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    app.stop().await;
}

#[tokio::test]
async fn the_same_portal_twice_in_one_org_is_refused_but_another_org_may_connect_it() {
    let app = TestApp::start().await;
    let (org, other) = (Uuid::new_v4(), Uuid::new_v4());
    let portal = app.portal().await;
    app.connect(org, &portal, None).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/connections",
            &app.token(org, Role::Owner),
            Some(json!({"name": "again", "access_token": portal.token})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "already_connected");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&portal.id.to_string())
    );
    app.connect(other, &portal, None).await;
    app.stop().await;
}

#[tokio::test]
async fn a_second_org_sees_and_touches_none_of_the_first_orgs_connections() {
    let app = TestApp::start().await;
    let (org, intruder) = (Uuid::new_v4(), Uuid::new_v4());
    let portal = app.portal().await;
    let connection = app.connect(org, &portal, None).await;
    let id = connection["id"].as_str().unwrap();
    let owner = app.token(intruder, Role::Owner);
    let (status, list) = app
        .call(Method::GET, "/api/v1/connections", &owner, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["connections"], json!([]));
    for (method, path) in [
        (Method::GET, format!("/api/v1/connections/{id}")),
        (Method::DELETE, format!("/api/v1/connections/{id}")),
        (Method::POST, format!("/api/v1/connections/{id}/syncs")),
    ] {
        let (status, body) = app.call(method.clone(), &path, &owner, None).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"], "not_found");
    }
    let (status, still) = app
        .call(
            Method::GET,
            &format!("/api/v1/connections/{id}"),
            &app.token(org, Role::Member),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(still["status"], "active");
    app.stop().await;
}

#[tokio::test]
async fn members_read_connections_but_only_owners_and_admins_change_them() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let portal = app.portal().await;
    let connection = app.connect(org, &portal, None).await;
    let id = connection["id"].as_str().unwrap();
    let member = app.token(org, Role::Member);
    for (method, path, body) in [
        (Method::GET, "/api/v1/connections".to_owned(), None),
        (Method::GET, format!("/api/v1/connections/{id}"), None),
    ] {
        let (status, _) = app.call(method, &path, &member, body).await;
        assert_eq!(status, 200, "{path}");
    }
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/connections".to_owned(),
            Some(json!({"name": "x", "access_token": portal.token})),
        ),
        (
            Method::POST,
            format!("/api/v1/connections/{id}/syncs"),
            None,
        ),
        (Method::DELETE, format!("/api/v1/connections/{id}"), None),
    ] {
        let (status, answer) = app.call(method.clone(), &path, &member, body).await;
        assert_eq!(status, 403, "{method} {path}");
        assert_eq!(answer["error"], "forbidden");
    }
    for role in [Role::Owner, Role::Admin] {
        let (status, _) = app
            .call(
                Method::POST,
                &format!("/api/v1/connections/{id}/syncs"),
                &app.token(org, role),
                None,
            )
            .await;
        assert_eq!(status, 202, "{role:?}");
    }
    let (status, body) = app
        .call(Method::GET, "/api/v1/connections", "not-a-token", None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthenticated");
    let response = app
        .http
        .get(app.url("/api/v1/connections"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn a_sync_request_publishes_sync_requested_with_its_scope() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let portal = app.portal().await;
    let connection = app.connect(org, &portal, None).await;
    let id = connection["id"].as_str().unwrap();
    let _established = app.next_event().await;
    let admin = app.token(org, Role::Admin);
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/connections/{id}/syncs"),
            &admin,
            Some(json!({"object_type": "deals", "record_ids": [11, 12]})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (key, _, data) = app.next_event().await;
    assert_eq!(key, "sync.requested");
    let event = SyncRequested::decode(data.as_slice()).unwrap();
    assert_eq!(event.sync_run_id, body["sync_run_id"].as_str().unwrap());
    assert_eq!(event.connection_id, id);
    match event.scope.unwrap() {
        contracts::v1::sync_requested::Scope::Records(records) => {
            assert_eq!(records.object_ids, vec![11, 12]);
            assert_eq!(records.object_type(), contracts::v1::ObjectType::Deal);
        }
        other => panic!("unexpected scope {other:?}"),
    }
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/connections/{id}/syncs"),
            &admin,
            Some(json!({"object_type": "tickets"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn workers_get_the_access_token_with_their_own_credentials_only() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let portal = app.portal_with(json!({"tier": "professional"})).await;
    let connection = app.connect(org, &portal, Some("whsec-1")).await;
    let id = connection["id"].as_str().unwrap();
    let path = format!("/internal/v1/connections/{id}/access-token");
    let (status, body) = app
        .internal(Method::POST, &path, "sync-worker", SYNC_WORKER_SECRET, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["access_token"], portal.token);
    assert_eq!(body["portal_id"], portal.id);
    assert_eq!(body["connection_id"], id);
    assert_eq!(body["expires_at"], json!(null));
    assert_eq!(body["auth_kind"], "private_app");
    assert_eq!(body["tier"], "professional");
    let (status, body) = app
        .internal(Method::POST, &path, "sync-worker", "wrong-secret", None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthenticated");
    let (status, body) = app
        .internal(
            Method::POST,
            &path,
            "webhook-receiver",
            RECEIVER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "forbidden");
    let (status, _) = app.internal(Method::POST, &path, "nobody", "x", None).await;
    assert_eq!(status, 401);
    let unknown = format!("/internal/v1/connections/{}/access-token", Uuid::new_v4());
    let (status, body) = app
        .internal(
            Method::POST,
            &unknown,
            "sync-worker",
            SYNC_WORKER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    // A caller's user token is not a service credential.
    let (status, _) = app
        .call(Method::POST, &path, &app.token(org, Role::Owner), None)
        .await;
    assert_eq!(status, 401);
    app.stop().await;
}

#[tokio::test]
async fn webhook_receiver_gets_a_connections_secrets_and_a_portals_connections() {
    let app = TestApp::start().await;
    let (org, other) = (Uuid::new_v4(), Uuid::new_v4());
    let portal = app.portal().await;
    let first = app.connect(org, &portal, Some("whsec-1")).await;
    let second = app.connect(other, &portal, None).await;
    let id = first["id"].as_str().unwrap();
    let (status, body) = app
        .internal(
            Method::GET,
            &format!("/internal/v1/connections/{id}/webhook-secrets"),
            "webhook-receiver",
            RECEIVER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["secrets"], json!(["whsec-1"]));
    assert_eq!(body["portal_id"], portal.id);
    let (status, body) = app
        .internal(
            Method::GET,
            &format!("/internal/v1/portals/{}/connections", portal.id),
            "webhook-receiver",
            RECEIVER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<(String, String)> = body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["connection_id"].as_str().unwrap().to_owned(),
                c["org_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (id.to_owned(), org.to_string()),
            (second["id"].as_str().unwrap().to_owned(), other.to_string())
        ]
    );
    let (status, _) = app
        .internal(
            Method::GET,
            &format!("/internal/v1/connections/{id}/webhook-secrets"),
            "sync-worker",
            SYNC_WORKER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn disconnecting_marks_the_connection_disconnected_and_publishes_connection_closed() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let portal = app.portal().await;
    let connection = app.connect(org, &portal, None).await;
    let id = connection["id"].as_str().unwrap();
    let _established = app.next_event().await;
    let admin = app.token(org, Role::Admin);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/connections/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/connections/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(body["status"], "disconnected");
    assert!(body["disconnected_at"].is_string());
    let (key, _, data) = app.next_event().await;
    assert_eq!(key, "connection.closed");
    let event = ConnectionClosed::decode(data.as_slice()).unwrap();
    assert_eq!(event.connection_id, id);
    assert_eq!(
        event.reason(),
        contracts::v1::CloseReason::DisconnectedByUser
    );
    let (status, body) = app
        .internal(
            Method::POST,
            &format!("/internal/v1/connections/{id}/access-token"),
            "sync-worker",
            SYNC_WORKER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "disconnected");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/connections/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 204, "disconnecting twice is harmless");
    // Connecting the portal again continues the connection: the same id (the workers'
    // mirror, scores and written values carry on), active, usable credentials.
    let again = app.connect(org, &portal, None).await;
    assert_eq!(again["id"], id, "{again}");
    assert_eq!(again["status"], "active");
    assert!(again["disconnected_at"].is_null(), "{again}");
    let (key, _, data) = app.next_event().await;
    assert_eq!(key, "connection.established");
    let event = ConnectionEstablished::decode(data.as_slice()).unwrap();
    assert_eq!(event.connection_id, id);
    let (status, body) = app
        .internal(
            Method::POST,
            &format!("/internal/v1/connections/{id}/access-token"),
            "sync-worker",
            SYNC_WORKER_SECRET,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = app
        .call(Method::GET, "/api/v1/connections", &admin, None)
        .await;
    assert_eq!(list["connections"].as_array().unwrap().len(), 1, "{list}");
    let (status, audit) = app.call(Method::GET, "/api/v1/audit", &admin, None).await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"connection.reconnected"), "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn members_are_refused_every_gateway_route_reserved_to_owners_and_admins() {
    let app = TestApp::start().await;
    let org = Uuid::new_v4();
    let portal = app.portal().await;
    let connection = app.connect(org, &portal, None).await;
    let id = connection["id"].as_str().unwrap();
    let member = app.token(org, Role::Member);
    let writes = [
        (
            Method::POST,
            "/api/v1/connections".to_owned(),
            json!({"name": "x", "access_token": "t"}),
        ),
        (
            Method::POST,
            "/api/v1/connections/hubspot/oauth".to_owned(),
            json!({}),
        ),
        (
            Method::DELETE,
            format!("/api/v1/connections/{id}"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/connections/{id}/syncs"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/connections/{id}/test"),
            json!({}),
        ),
        (
            Method::PUT,
            format!("/api/v1/connections/{id}/credentials"),
            json!({"access_token": "t"}),
        ),
        (
            Method::PUT,
            format!("/api/v1/connections/{id}/webhook-secret"),
            json!({"webhook_secret": "w"}),
        ),
        (Method::GET, "/api/v1/audit".to_owned(), json!({})),
    ];
    for (method, path, body) in writes {
        let (status, answer) = app
            .call(method.clone(), &path, &member, Some(body.clone()))
            .await;
        assert_eq!(status, 403, "member {method} {path}: {answer}");
        assert_eq!(answer["error"], "forbidden");
        for role in [Role::Owner, Role::Admin] {
            let (status, answer) = app
                .call(
                    method.clone(),
                    &path,
                    &app.token(org, role),
                    Some(body.clone()),
                )
                .await;
            assert_ne!(status, 403, "{role:?} {method} {path}: {answer}");
            assert_ne!(status, 401, "{role:?} {method} {path}: {answer}");
        }
    }
    for path in [
        "/api/v1/connections".to_owned(),
        format!("/api/v1/connections/{id}"),
    ] {
        let (status, _) = app.call(Method::GET, &path, &member, None).await;
        assert_eq!(status, 200, "{path}");
    }
    app.stop().await;
}
