//! Scores from `crm.changed`, as consumers of `score.updated` and API users see them.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use chrono::Duration;
use common::{PORTAL, busy_customer, deal, spawn_app, t0, ts};
use contracts::v1::{ObjectType, RiskLevel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_healthy_example_scores_78_and_publishes_every_field() {
    let app = spawn_app().await;
    let mut contacts = app.changed(ObjectType::Contact);
    contacts.customers = busy_customer(51, 2);
    app.publish(&contacts).await;
    // First score, without a deal: 22.64 + 0 + 13.5 + 20 x 7/8 + 0 = 53.64.
    let first = app.next_event().await.updated();
    assert_eq!(first.old_score, None);
    assert_eq!(first.new_score, Some(54));
    assert_eq!(first.old_risk_level(), RiskLevel::None);
    assert_eq!(first.new_risk_level(), RiskLevel::AtRisk);
    assert!(first.contribution_deltas.is_empty());
    assert_eq!(first.top_factor, "");

    let mut deals = app.changed(ObjectType::Deal);
    deals.deals = vec![deal(900, &[51], t0() - Duration::hours(1))];
    app.publish(&deals).await;
    // The 8th update, a 60% open deal at the org mean: 22.64 + 12 + 13.5 + 20 + 10 = 78.14.
    let second = app.next_event().await.updated();
    assert_eq!(second.org_id, app.org.to_string());
    assert_eq!(second.connection_id, app.connection.to_string());
    assert_eq!(second.portal_id, PORTAL);
    assert_eq!(
        second.customer_id,
        scoring_engine::engine::customer_id(app.org, PORTAL, 1, 51).to_string()
    );
    assert_eq!(second.object_type(), ObjectType::Contact);
    assert_eq!((second.object_id, second.contact_id), (51, 51));
    assert_eq!(second.company_id, None);
    assert_eq!((second.old_score, second.new_score), (Some(54), Some(78)));
    assert_eq!(second.old_risk_level(), RiskLevel::AtRisk);
    assert_eq!(second.new_risk_level(), RiskLevel::Healthy);
    assert_eq!(second.config_version, 0);
    assert_eq!(second.computed_at, ts(t0()));
    let names: Vec<&str> = second.factors.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, scoring_engine::model::FACTOR_NAMES);
    let deltas: Vec<f64> = second
        .contribution_deltas
        .iter()
        .map(|d| (d * 1000.0).round() / 1000.0)
        .collect();
    assert_eq!(deltas, [0.0, 12.0, 0.0, 2.5, 10.0]);
    assert_eq!(second.top_factor, "deal_momentum");
    assert_eq!(app.contact_score(51).await, Some(78));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_critical_example_scores_4() {
    let app = spawn_app().await;
    let mut message = app.changed(ObjectType::Contact);
    message.customers = vec![common::quiet_lead(7)];
    app.publish(&message).await;
    // 25 x 0.5^(60/14) + 0 + 3 + 0 (its only update is 45 days old) + 0 = 4.28.
    let event = app.next_event().await.updated();
    assert_eq!(event.new_score, Some(4));
    assert_eq!(event.new_risk_level(), RiskLevel::Critical);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_crm_changed_produces_no_second_event() {
    let app = spawn_app().await;
    let mut message = app.changed(ObjectType::Contact);
    message.customers = busy_customer(1, 3);
    let meta = app.publish(&message).await;
    assert_eq!(app.next_event().await.updated().new_score.is_some(), true);
    // The same delivery again, and the same content under a new message id.
    app.publish_with(&message, meta).await;
    app.publish(&message).await;
    // A change of another contact marks the point where both replays were handled.
    let mut marker = app.changed(ObjectType::Contact);
    marker.customers = busy_customer(2, 3);
    app.publish(&marker).await;
    let next = app.next_event().await.updated();
    assert_eq!(next.object_id, 2, "a replay published {next:?}");
    assert!(app.drain().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_moves_neither_score_nor_level_publishes_nothing() {
    let app = spawn_app().await;
    let mut message = app.changed(ObjectType::Contact);
    message.customers = busy_customer(1, 3);
    app.publish(&message).await;
    let first = app.next_event().await.updated();
    // A new name under the same modified time, and an older version: nothing to score.
    let mut renamed = message.customers[6].clone();
    renamed.name = Some("Renamed".into());
    let mut older = message.customers[0].clone();
    older.source_updated_at = ts(t0() - Duration::days(1));
    older.lifecycle_stage = Some("lead".into());
    let mut quiet = app.changed(ObjectType::Contact);
    quiet.customers = vec![renamed, older];
    app.publish(&quiet).await;
    let mut marker = app.changed(ObjectType::Contact);
    marker.customers = busy_customer(2, 3);
    app.publish(&marker).await;
    assert_eq!(app.next_event().await.updated().object_id, 2);
    assert!(app.drain().await.is_empty());
    // The rename is stored; the older version was not applied.
    let (_, list) = app.get(app.org, "/api/v1/customers?sort=name").await;
    let names: Vec<&str> = list["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Contact 2", "Renamed"]);
    assert_eq!(app.contact_score(1).await, first.new_score.map(i64::from));
}
