//! Reconciliation: changes whose webhooks never arrived (delivery off) are found by the
//! modified-since search, deletions by the recycle-bin check; and the sync status API.

mod common;

use common::*;
use contracts::v1;
use reqwest::Method;
use serde_json::{Value, json};

fn reconcile_request(connection: &Connection, reason: v1::SyncReason) -> v1::SyncRequested {
    sync_request(
        connection,
        v1::SyncMode::Reconciliation,
        v1::sync_requested::Scope::Full(v1::FullScope {}),
        reason,
    )
}

#[tokio::test]
async fn reconciliation_recovers_changes_and_deletions_whose_webhooks_were_missed() {
    let h = Harness::start().await;
    let (portal, app, connection) = h.synced((200, 40, 60)).await;
    let before = mirror_records(&app.pool, &connection).await;

    // Delivery is off (no target): nothing of this reaches the worker as a webhook.
    let created = h
        .create(
            &portal,
            "contacts",
            json!({"email": "missed@webhook.example", "firstname": "Missed"}),
        )
        .await;
    let changed = before["company"][0].id;
    h.control(
        Method::PATCH,
        &portal,
        &format!("/objects/companies/{changed}"),
        json!({"properties": {"name": "Renamed Quietly"}}),
    )
    .await;
    let deleted = before["deal"][0].id;
    h.control(
        Method::DELETE,
        &portal,
        &format!("/objects/deals/{deleted}"),
        json!({}),
    )
    .await;
    h.take_events().await;

    let request = reconcile_request(&connection, v1::SyncReason::UserRequest);
    h.publish(&request, Some(connection.org_id)).await;
    let run_id = uuid::Uuid::parse_str(&request.sync_run_id).unwrap();
    wait_for_run_id(&app.pool, run_id, "succeeded", 60).await;
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    assert!(
        record_state(&app.pool, &connection, "contacts", created)
            .await
            .is_some(),
        "the created contact is in the mirror"
    );
    let deal = record_state(&app.pool, &connection, "deals", deleted)
        .await
        .unwrap();
    assert!(deal.archived, "the deleted deal is flagged, not gone");
    let events = h
        .events_until("sync.completed", |body| {
            use prost::Message as _;
            v1::SyncCompleted::decode(body).is_ok_and(|c| c.sync_run_id == request.sync_run_id)
        })
        .await;
    let changes = crm_changes(&events);
    assert!(changes.iter().any(|c| c.deleted_ids.contains(&deleted)));
    assert!(changes.iter().any(|c| {
        c.companies
            .iter()
            .any(|co| co.external_id == changed && co.name.as_deref() == Some("Renamed Quietly"))
    }));

    // The status API, through the gateway's identity.
    let base = format!(
        "http://127.0.0.1:{}/api/v1/connections/{}",
        app.port, connection.connection_id
    );
    let token = token_for(&h.settings, connection.org_id);
    let latest: Value = h
        .http
        .get(format!("{base}/syncs/latest"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(latest["state"], "succeeded", "{latest}");
    assert_eq!(latest["mode"], "reconciliation", "{latest}");
    let list: Value = h
        .http
        .get(format!("{base}/syncs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let syncs = list["syncs"].as_array().unwrap();
    assert_eq!(syncs.len(), 2, "{list}");
    let full = &syncs[1];
    assert_eq!(full["mode"], "full");
    let contacts = full["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object_type"] == "contact")
        .unwrap();
    assert_eq!(contacts["total"], 200, "{full}");
    assert_eq!(contacts["fetched"], 200, "{full}");
    assert_eq!(contacts["percent"], 100.0, "{full}");
    assert!(
        contacts["skip_reasons"]
            .as_object()
            .is_some_and(|r| !r.is_empty()),
        "{full}"
    );

    let other_org = token_for(&h.settings, uuid::Uuid::new_v4());
    let status = h
        .http
        .get(format!("{base}/syncs/latest"))
        .bearer_auth(&other_org)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404, "another org's connection is not found");
    let status = h
        .http
        .get(format!("{base}/syncs"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    app.stop().await;
}

/// Disconnected, changed in HubSpot meanwhile, then connected again (the gateway keeps the
/// connection's id): the worker catches up with a reconciliation (changes and recycle bin)
/// instead of reading the whole portal a second time, and the mirror is exact.
#[tokio::test]
async fn a_reconnected_connection_catches_up_without_a_second_full_sync() {
    let h = Harness::start().await;
    let portal = h.portal("professional").await;
    h.seed(&portal, 200, 40, 60).await;
    let mut settings = h.settings.clone();
    // Only what changed after the full sync started counts, so the catch-up's size is exact.
    settings.sync.reconcile_lookback_secs = 0;
    let app = h.app_with(&portal, settings).await;
    let connection = h.connect(&portal).await;
    wait_for_run(&app.pool, &connection, "succeeded", 60).await;
    let before = mirror_records(&app.pool, &connection).await;
    let closed = v1::ConnectionClosed {
        org_id: connection.org_id.to_string(),
        connection_id: connection.connection_id.to_string(),
        portal_id: portal.id,
        closed_at: Some(contracts::time::to_timestamp(chrono::Utc::now())),
        reason: v1::CloseReason::DisconnectedByUser as i32,
        ..Default::default()
    };
    h.publish(&closed, Some(connection.org_id)).await;

    // While it is away (no webhooks reach the worker): one contact created, one company
    // renamed, one deal deleted.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let created = h
        .create(
            &portal,
            "contacts",
            json!({"email": "while-away@example.com", "firstname": "Away"}),
        )
        .await;
    let renamed = before["company"][0].id;
    h.control(
        Method::PATCH,
        &portal,
        &format!("/objects/companies/{renamed}"),
        json!({"properties": {"name": "Renamed While Away"}}),
    )
    .await;
    let deleted = before["deal"][0].id;
    h.control(
        Method::DELETE,
        &portal,
        &format!("/objects/deals/{deleted}"),
        json!({}),
    )
    .await;

    let established = v1::ConnectionEstablished {
        org_id: connection.org_id.to_string(),
        connection_id: connection.connection_id.to_string(),
        portal_id: portal.id,
        auth_kind: v1::AuthKind::PrivateApp as i32,
        established_at: Some(contracts::time::to_timestamp(chrono::Utc::now())),
        ..Default::default()
    };
    let run_id = h.publish(&established, Some(connection.org_id)).await;
    wait_for_run_id(&app.pool, run_id, "succeeded", 60).await;
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    assert!(
        record_state(&app.pool, &connection, "contacts", created)
            .await
            .is_some(),
        "the contact created while away is mirrored"
    );
    let deal = record_state(&app.pool, &connection, "deals", deleted)
        .await
        .unwrap();
    assert!(deal.archived, "the deal deleted while away is flagged");

    let token = token_for(&h.settings, connection.org_id);
    let list: Value = h
        .http
        .get(format!(
            "http://127.0.0.1:{}/api/v1/connections/{}/syncs",
            app.port, connection.connection_id
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let syncs = list["syncs"].as_array().unwrap();
    let modes: Vec<&str> = syncs.iter().filter_map(|s| s["mode"].as_str()).collect();
    assert_eq!(modes, ["reconciliation", "full"], "{list}");
    let fetched: i64 = syncs[0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["fetched"].as_i64())
        .sum();
    assert!(
        (2..10).contains(&fetched),
        "the catch-up read {fetched} records; a full sync reads 300: {list}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_closed_connection_cancels_its_running_sync() {
    let h = Harness::start().await;
    let portal = h.portal("professional").await;
    h.seed(&portal, 3000, 1, 1).await;
    h.sim_send(
        Method::POST,
        "/_sim/faults",
        json!({"path_prefix": "/crm/v3/objects/contacts", "latency_ms": 100, "portal_id": portal.id}),
    )
    .await;
    let app = h.app(&portal).await;
    let connection = h.connect(&portal).await;
    wait_for_run(&app.pool, &connection, "running", 30).await;
    h.publish(
        &v1::ConnectionClosed {
            org_id: connection.org_id.to_string(),
            connection_id: connection.connection_id.to_string(),
            portal_id: portal.id,
            closed_at: Some(contracts::time::to_timestamp(chrono::Utc::now())),
            reason: v1::CloseReason::DisconnectedByUser as i32,
            ..Default::default()
        },
        Some(connection.org_id),
    )
    .await;
    wait_for_run(&app.pool, &connection, "cancelled", 30).await;
    h.events_until("sync.completed", |body| {
        use prost::Message as _;
        v1::SyncCompleted::decode(body).is_ok_and(|c| {
            matches!(&c.outcome, Some(v1::sync_completed::Outcome::Failed(f)) if f.reason.contains("closed"))
        })
    })
    .await;
    assert!(
        fetched(&app.pool, &connection, "contact").await < 3000,
        "the sync stopped before reading everything"
    );
    app.stop().await;
}

#[tokio::test]
async fn properties_are_discovered_and_inbound_mappings_are_validated_then_applied_by_a_resync() {
    let h = Harness::start().await;
    let (_portal, app, connection) = h.synced((20, 4, 4)).await;
    let base = format!(
        "http://127.0.0.1:{}/api/v1/connections/{}",
        app.port, connection.connection_id
    );
    let admin = token_for(&h.settings, connection.org_id);
    let get = async |url: String, token: &str| -> (u16, Value) {
        let r = h.http.get(url).bearer_auth(token).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    };
    let (status, body) = get(format!("{base}/properties/contact"), &admin).await;
    assert_eq!(status, 200, "{body}");
    let props = body["properties"].as_array().unwrap();
    let email = props
        .iter()
        .find(|p| p["name"] == "email")
        .expect("email discovered");
    assert_eq!(email["custom"], false, "{email}");
    assert!(email["label"].as_str().is_some_and(|l| !l.is_empty()));
    let (status, _) = get(format!("{base}/properties/ticket"), &admin).await;
    assert_eq!(status, 400);
    let (status, refreshed) = get(format!("{base}/properties/deal?refresh=true"), &admin).await;
    assert_eq!(status, 200);
    assert!(
        refreshed["properties"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "dealstage"))
    );

    let put = async |body: Value, token: &str| -> (u16, Value) {
        let r = h
            .http
            .put(format!("{base}/mappings"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    };
    let valid = json!({"mappings": [{"object_type": "contact", "external_id_property": "hs_object_id",
        "attributes": [{"property": "jobtitle", "attribute": "job", "direction": "inbound"}]}]});
    let (status, body) = put(valid.clone(), &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resync_recommended"], true);
    let (status, body) = put(valid, &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["resync_recommended"], false,
        "nothing changed the second time"
    );
    let (status, body) = get(format!("{base}/mappings"), &admin).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["mappings"][0]["attributes"][0]["attribute"], "job",
        "{body}"
    );

    let invalid = json!({"mappings": [{"object_type": "contact", "external_id_property": "hs_object_id",
        "attributes": [{"property": "no_such_property", "attribute": "x", "direction": "inbound"}]}]});
    let (status, body) = put(invalid, &admin).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_mapping");
    assert!(body.to_string().contains("no_such_property"), "{body}");

    // A re-sync applies the mapping: attributes travel, the filter decides who syncs.
    let filtered = json!({"mappings": [{"object_type": "contact", "external_id_property": "hs_object_id",
        "attributes": [{"property": "jobtitle", "attribute": "job", "direction": "inbound"}],
        "filters": [{"property": "lifecyclestage", "operator": "EQ", "values": ["customer"]}]}]});
    let (status, body) = put(filtered, &admin).await;
    assert_eq!(status, 200, "{body}");
    let resync = sync_request(
        &connection,
        v1::SyncMode::Full,
        v1::sync_requested::Scope::ObjectType(v1::ObjectType::Contact as i32),
        v1::SyncReason::MappingChanged,
    );
    h.take_events().await;
    h.publish(&resync, Some(connection.org_id)).await;
    wait_for_run_id(
        &app.pool,
        uuid::Uuid::parse_str(&resync.sync_run_id).unwrap(),
        "succeeded",
        60,
    )
    .await;
    let events = h
        .events_until("sync.completed", |body| {
            use prost::Message as _;
            v1::SyncCompleted::decode(body).is_ok_and(|c| c.sync_run_id == resync.sync_run_id)
        })
        .await;
    let changes = crm_changes(&events);
    let customers: Vec<&v1::Customer> = changes.iter().flat_map(|c| &c.customers).collect();
    assert!(
        customers
            .iter()
            .all(|c| c.lifecycle_stage.as_deref() == Some("customer"))
    );
    assert!(
        customers
            .iter()
            .any(|c| c.custom_attributes.contains_key("job")),
        "inbound attributes travel with the customers"
    );
    assert!(
        changes.iter().any(|c| !c.deleted_ids.is_empty()),
        "customers the filter now excludes leave"
    );

    let member = platform::testing::internal_token_signer()
        .unwrap()
        .mint(
            "sync-worker",
            "user:m",
            Some(connection.org_id),
            vec!["member".to_owned()],
        )
        .unwrap();
    let (status, _) = put(json!({"mappings": []}), &member).await;
    assert_eq!(status, 403);
    let stranger = token_for(&h.settings, uuid::Uuid::new_v4());
    let (status, _) = get(format!("{base}/properties/contact"), &stranger).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn reconciliation_finds_50_000_missed_records_that_share_one_modified_time() {
    let h = Harness::start().await;
    let (portal, app, connection) = h.synced((20, 4, 4)).await;

    // Delivery is off: 50,000 contacts arrive unannounced, and every contact of the portal
    // then carries one and the same modification time, so HubSpot's search (sorted by that
    // time, capped at 10,000 results per query) can only be walked past the cap by id.
    let seeded = h
        .sim_send(
            Method::POST,
            &format!("/_sim/portals/{}/seed", portal.id),
            json!({"seed": 12, "contacts": 50_000, "companies": 0, "deals": 0, "owners": 0}),
        )
        .await;
    assert_eq!(seeded["contacts"], 50_000, "{seeded}");
    let touched = h
        .sim_send(
            Method::POST,
            &format!("/_sim/portals/{}/objects/contacts/touch", portal.id),
            json!({"count": 60_000, "modified_at_ms": chrono::Utc::now().timestamp_millis()}),
        )
        .await;
    assert_eq!(touched["touched"], 50_020, "{touched}");

    let request = reconcile_request(&connection, v1::SyncReason::UserRequest);
    h.publish(&request, Some(connection.org_id)).await;
    let run_id = uuid::Uuid::parse_str(&request.sync_run_id).unwrap();
    wait_for_run_id(&app.pool, run_id, "succeeded", 400).await;
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    app.stop().await;
}
