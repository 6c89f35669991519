//! HubSpot failing under the worker: answers lost after the write, HubSpot down for a while.

mod common;

use common::World;
use contracts::v1::ObjectType;
use serde_json::json;

const T0: i64 = 1_767_225_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_answer_was_lost_is_read_back_and_counted_written() {
    let world = World::new().await;
    let contact = world
        .create("contacts", json!({"email": "hal@northwind.example"}))
        .await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    // HubSpot applies every batch update but the answer arrives cut in half.
    world
        .fault_contact_updates(json!({"truncate_body": true}))
        .await;

    world
        .publish_scores(&[world.score(ObjectType::Contact, contact, Some(77), T0)])
        .await;
    let status = world
        .wait_status(&app, "written", |s| s["written"] == 1 && s["pending"] == 0)
        .await;
    assert_eq!(status["failed"], 0, "{status:#}");
    assert!(status["paused_until"].is_null(), "{status:#}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("unexpected response body"),
        "{status:#}"
    );
    assert_eq!(
        world.properties("contacts", contact).await["hubscore_health_score"],
        "77"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_wait_while_hubspot_is_down_and_are_written_when_it_is_back() {
    let world = World::new().await;
    let contact = world
        .create("contacts", json!({"email": "ida@northwind.example"}))
        .await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    world
        .fault_contact_updates(json!({"error_rate": 1.0, "error_status": 503}))
        .await;

    world
        .publish_scores(&[world.score(ObjectType::Contact, contact, Some(33), T0)])
        .await;
    let down = world.wait_paused(&app, "hubspot_unavailable").await;
    assert_eq!(
        (down["pending"].as_i64(), down["written"].as_i64()),
        (Some(1), Some(0)),
        "{down:#}"
    );

    world.clear_faults().await;
    world
        .wait_status(&app, "written", |s| s["written"] == 1 && s["pending"] == 0)
        .await;
    assert_eq!(
        world.properties("contacts", contact).await["hubscore_health_score"],
        "33"
    );
    app.stop().await;
}
