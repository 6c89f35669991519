//! The writeback routes as the gateway forwards them: the mapping, its validation, roles
//! and org scoping.

mod common;

use common::World;
use contracts::v1::ObjectType;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

const T0: i64 = 1_767_225_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_changes_the_mapping_and_scores_go_to_the_new_properties() {
    let world = World::new().await;
    let contact = world
        .create("contacts", json!({"email": "fay@northwind.example"}))
        .await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    let path = format!("/api/v1/connections/{}/writeback", world.connection_id);

    let (code, mapping) = world.api_as(&app, "member", Method::GET, &path, None).await;
    assert_eq!(code, 200, "{mapping}");
    assert_eq!(mapping["enabled"], true);
    assert_eq!(mapping["object_types"], json!(["contacts", "companies"]));
    assert_eq!(mapping["properties"]["score"], "hubscore_health_score");
    assert_eq!(mapping["risk_level_values"]["none"], "none");

    let wanted = json!({
        "object_types": ["contacts"],
        "properties": {"score": "account_health", "risk_level": null, "score_updated_at": null, "top_factor": null},
    });
    let (code, body) = world
        .api_as(&app, "member", Method::PUT, &path, Some(wanted.clone()))
        .await;
    assert_eq!((code, &body["error"]), (403, &json!("forbidden")), "{body}");
    let (code, body) = world.api(&app, Method::PUT, &path, Some(wanted)).await;
    assert_eq!(code, 200, "{body}");
    let (_, mapping) = world.api(&app, Method::GET, &path, None).await;
    assert_eq!(mapping["properties"]["score"], "account_health");
    assert_eq!(mapping["properties"]["risk_level"], json!(null));

    world
        .wait_status(&app, "new property prepared", |s| {
            s["properties"].as_array().is_some_and(|p| {
                p.len() == 1 && p[0]["property"] == "account_health" && p[0]["state"] == "ready"
            })
        })
        .await;
    world
        .publish_scores(&[world.score(ObjectType::Contact, contact, Some(66), T0)])
        .await;
    world
        .wait_status(&app, "written", |s| s["written"] == 1)
        .await;
    let props = world.properties("contacts", contact).await;
    assert_eq!(props["account_health"], "66");
    assert!(props["hubscore_risk_level"].is_null(), "{props}");
    let created = world.property("contacts", "account_health").await.unwrap();
    assert_eq!(
        (created["type"].as_str(), created["groupName"].as_str()),
        (Some("number"), Some("hubscore"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_mapping_is_refused_with_every_problem_named() {
    let world = World::new().await;
    let (status, body) = world
        .hubspot(
            Method::POST,
            "/crm/v3/properties/companies",
            Some(
                json!({"name": "hubscore_risk_level", "label": "Risk", "type": "number",
                "fieldType": "number", "groupName": "companyinformation"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    let path = format!("/api/v1/connections/{}/writeback", world.connection_id);

    let (code, body) = world
        .api(
            &app,
            Method::PUT,
            &path,
            Some(json!({"properties": {"top_factor": "Top Factor"}})),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"], "invalid_mapping");
    assert_eq!(
        body["problems"][0]["detail"]["error"],
        "invalid_property_name"
    );

    let (code, body) = world.api(&app, Method::PUT, &path, Some(json!({}))).await;
    assert_eq!(code, 422, "{body}");
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{body:#}");
    assert_eq!(problems[0]["object_type"], "companies");
    assert_eq!(problems[0]["detail"]["error"], "wrong_property_type");
    assert_eq!(problems[0]["detail"]["property"], "hubscore_risk_level");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("hubscore_risk_level"),
        "{body}"
    );

    let (code, body) = world
        .api(
            &app,
            Method::PUT,
            &path,
            Some(json!({"object_types": ["deals"]})),
        )
        .await;
    assert_eq!(
        (code, &body["error"]),
        (400, &json!("invalid_body")),
        "{body}"
    );
    // Nothing was stored: the defaults still hold.
    let (_, mapping) = world.api(&app, Method::GET, &path, None).await;
    assert_eq!(mapping["properties"]["top_factor"], "hubscore_top_factor");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_orgs_connection_is_not_found_and_a_missing_token_is_refused() {
    let world = World::new().await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    let path = format!(
        "/api/v1/connections/{}/writeback/status",
        world.connection_id
    );
    let stranger = platform::testing::internal_token_signer()
        .unwrap()
        .mint(
            "writeback-worker",
            "user:x",
            Some(Uuid::now_v7()),
            vec!["admin".to_owned()],
        )
        .unwrap();
    let response = world
        .http
        .get(app.url(&path))
        .bearer_auth(stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = world.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let (code, _) = world
        .api(
            &app,
            Method::GET,
            "/api/v1/connections/not-a-uuid/writeback",
            None,
        )
        .await;
    assert_eq!(code, 404);
    let backfill = format!(
        "/api/v1/connections/{}/writeback/backfill",
        world.connection_id
    );
    let (code, _) = world
        .api_as(&app, "member", Method::POST, &backfill, None)
        .await;
    assert_eq!(code, 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_writes_nothing_more() {
    let world = World::new().await;
    let contact = world
        .create("contacts", json!({"email": "gus@northwind.example"}))
        .await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    world.close().await;
    world
        .wait_status(&app, "closed", |s| s["connection_status"] == "closed")
        .await;
    let before = world.stats().await["requests_total"].as_u64().unwrap();
    world
        .publish_scores(&[world.score(ObjectType::Contact, contact, Some(20), T0)])
        .await;
    world
        .wait_status(&app, "stored", |s| s["pending"] == 1)
        .await;
    let path = format!(
        "/api/v1/connections/{}/writeback/backfill",
        world.connection_id
    );
    let (code, body) = world.api(&app, Method::POST, &path, None).await;
    assert_eq!(
        (code, &body["error"]),
        (409, &json!("connection_closed")),
        "{body}"
    );
    assert_eq!(
        world.stats().await["requests_total"].as_u64().unwrap(),
        before
    );
    app.stop().await;
}
