//! Timeline events on risk-level changes, against the simulator: the app's template found or
//! created once, one event per change (redeliveries and lost answers included), a deleted
//! record failing alone, and the status saying why a connection sends none.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::sync::Arc;

use common::{TestApp, World};
use contracts::v1::{AuthKind, ObjectType, RiskLevel, ScoreUpdated};
use hubspot_client::StaticToken;
use platform::amqp::{MessageMeta, OutgoingMessage};
use serde_json::{Value, json};
use writeback_worker::TokenSources;
use writeback_worker::config::TimelineSettings;
use writeback_worker::mapping::TargetObject;
use writeback_worker::timeline::{TEMPLATE_NAME, template_for};

const T0: i64 = 1_767_225_600_000;

/// Every scope the portal's OAuth app may be granted.
fn oauth_scopes(world: &World) -> Vec<String> {
    world.portal["oauth_scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The `[timeline]` settings naming the portal's OAuth app and its developer key.
fn timeline_settings(world: &World) -> TimelineSettings {
    TimelineSettings {
        app_id: world.portal["app_id"].as_u64().unwrap(),
        developer_api_key: world.portal["developer_api_key"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

/// Starts the worker with an OAuth token (and, if `configured`, the app's developer key),
/// announces the OAuth connection and turns timeline events on in its mapping.
async fn oauth_app(world: &World, configured: bool) -> TestApp {
    let scopes = oauth_scopes(world);
    let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let token = world.oauth_token(&scope_refs).await;
    let mut settings = world.settings.clone();
    if configured {
        settings.timeline = timeline_settings(world);
    }
    let app = world
        .start_with_tokens(
            settings,
            TokenSources::fixed(Arc::new(StaticToken::new(token))),
        )
        .await;
    world.connect_as(AuthKind::Oauth, scopes).await;
    world.wait_prepared(&app).await;
    turn_timeline_on(world, &app).await;
    app
}

async fn turn_timeline_on(world: &World, app: &TestApp) {
    let path = format!("/api/v1/connections/{}/writeback", world.connection_id);
    let (code, body) = world
        .api(
            app,
            reqwest::Method::PUT,
            &path,
            Some(json!({"timeline_events": true})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["timeline_events"], true, "{body}");
}

/// The connection's timeline targets once preparing found them, by object type.
async fn timeline_targets(world: &World, app: &TestApp) -> Vec<Value> {
    let status = world
        .wait_status(app, "timeline prepared", |s| {
            s["properties"]
                .as_array()
                .is_some_and(|p| p.iter().filter(|t| t["purpose"] == "timeline").count() == 2)
        })
        .await;
    status["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["purpose"] == "timeline")
        .cloned()
        .collect()
}

/// A score moving `object_id` from `old` to `new` points.
fn change(world: &World, object_id: i64, old: u32, new: u32, at_ms: i64) -> ScoreUpdated {
    let level = |s: u32| match s {
        70.. => RiskLevel::Healthy,
        40..=69 => RiskLevel::AtRisk,
        _ => RiskLevel::Critical,
    };
    let mut score = world.score(ObjectType::Contact, object_id, Some(new), at_ms);
    score.old_score = Some(old);
    score.old_risk_level = level(old).into();
    score
}

fn message(world: &World, score: &ScoreUpdated) -> OutgoingMessage {
    OutgoingMessage::from_event(score, MessageMeta::start_trace(Some(world.org_id)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risk_level_change_puts_one_event_on_the_record_from_a_template_made_once() {
    let world = World::new().await;
    // Another deployment of the app made hubscore's company template already: it is found
    // and used, not made a second time.
    let settings = timeline_settings(&world);
    let response = world
        .http
        .post(format!(
            "{}/integrators/timeline/v3/{}/event-templates?hapikey={}",
            world.base, settings.app_id, settings.developer_api_key
        ))
        .json(&template_for(TargetObject::Companies))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let company_template: Value = response.json().await.unwrap();

    let contact = world
        .create("contacts", json!({"email": "ada@northwind.example"}))
        .await;
    let app = oauth_app(&world, true).await;
    let targets = timeline_targets(&world, &app).await;
    assert!(
        targets.iter().all(|t| t["state"] == "ready"),
        "{targets:#?}"
    );
    let templates = world.event_templates().await;
    assert_eq!(templates.len(), 2, "{templates:#?}");
    assert!(templates.iter().all(|t| t["name"] == TEMPLATE_NAME));
    let contact_template = templates
        .iter()
        .find(|t| t["objectType"] == "contacts")
        .unwrap()["id"]
        .clone();
    assert!(
        targets
            .iter()
            .any(|t| t["object_type"] == "companies" && t["property"] == company_template["id"]),
        "the existing template is used: {targets:#?}"
    );

    // A first score is no change of health; the drop is, delivered twice.
    world
        .publish_scores(&[world.score(ObjectType::Contact, contact, Some(80), T0)])
        .await;
    world
        .wait_status(&app, "first score written", |s| s["written"] == 1)
        .await;
    let drop = message(&world, &change(&world, contact, 80, 30, T0 + 1_000));
    for result in world.publisher.publish_all(&[drop.clone(), drop]).await {
        result.unwrap();
    }
    let status = world
        .wait_status(&app, "event sent", |s| {
            s["timeline"]["sent"] == 1 && s["timeline"]["pending"] == 0 && s["pending"] == 0
        })
        .await;
    assert_eq!(status["timeline"]["failed"], 0, "{status:#}");
    assert_eq!(status["timeline"]["enabled"], true, "{status:#}");
    let events = world.timeline_events().await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["eventTemplateId"], contact_template, "{event:#}");
    assert_eq!(event["objectId"], contact.to_string(), "{event:#}");
    assert_eq!(
        event["tokens"]["summary"], "Health dropped from healthy to critical",
        "{event:#}"
    );
    assert_eq!(event["tokens"]["old_score"], "80", "{event:#}");
    assert_eq!(event["tokens"]["new_score"], "30", "{event:#}");
    assert_eq!(event["tokens"]["top_factor"], "deal momentum", "{event:#}");
    assert_eq!(
        world.properties("contacts", contact).await["hubscore_risk_level"],
        "critical"
    );

    // A restarted worker keeps using the company template it knows; the contact template,
    // deleted in the app meanwhile, is made again when the connection is prepared.
    app.stop().await;
    let response = world
        .http
        .delete(format!(
            "{}/integrators/timeline/v3/{}/event-templates/{}?hapikey={}",
            world.base,
            settings.app_id,
            contact_template.as_str().unwrap(),
            settings.developer_api_key
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let app = oauth_app(&world, true).await;
    let status = world
        .wait_status(&app, "contact template made again", |s| {
            s["properties"].as_array().is_some_and(|p| {
                p.iter().any(|t| {
                    t["purpose"] == "timeline"
                        && t["object_type"] == "contacts"
                        && t["state"] == "ready"
                        && t["property"] != contact_template
                })
            })
        })
        .await;
    let targets = status["properties"].as_array().unwrap().clone();
    world
        .publish_scores(&[change(&world, contact, 30, 55, T0 + 2_000)])
        .await;
    world
        .wait_status(&app, "second event sent", |s| s["timeline"]["sent"] == 2)
        .await;
    let templates = world.event_templates().await;
    assert_eq!(templates.len(), 2, "{templates:#?}");
    let remade = templates
        .iter()
        .find(|t| t["objectType"] == "contacts")
        .unwrap()["id"]
        .clone();
    assert_ne!(remade, contact_template);
    assert!(
        targets.iter().any(|t| t["property"] == remade)
            && targets
                .iter()
                .any(|t| t["property"] == company_template["id"]),
        "{targets:#?}"
    );
    let events = world.timeline_events().await;
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        events.iter().any(|e| e["eventTemplateId"] == remade
            && e["tokens"]["summary"] == "Health rose from critical to at risk"),
        "{events:#?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_answer_was_lost_shows_once_and_one_for_a_deleted_record_fails_alone() {
    let world = World::new().await;
    let kept = world
        .create("contacts", json!({"email": "bo@northwind.example"}))
        .await;
    let gone = world
        .create("contacts", json!({"email": "cy@northwind.example"}))
        .await;
    let app = oauth_app(&world, true).await;
    timeline_targets(&world, &app).await;
    world
        .publish_scores(&[
            world.score(ObjectType::Contact, kept, Some(90), T0),
            world.score(ObjectType::Contact, gone, Some(90), T0),
        ])
        .await;
    world
        .wait_status(&app, "first scores written", |s| s["written"] == 2)
        .await;
    world.delete("contacts", gone).await;
    // HubSpot creates the events but the answer arrives cut in half.
    world
        .add_fault(json!({"path_prefix": "/integrators/timeline/v3/events",
            "truncate_body": true, "portal_id": world.portal_id}))
        .await;

    world
        .publish_scores(&[
            change(&world, kept, 90, 45, T0 + 1_000),
            change(&world, gone, 90, 45, T0 + 1_000),
        ])
        .await;
    assert!(
        platform::testing::eventually(common::PATIENCE, || async {
            world.timeline_events().await.len() == 1
        })
        .await,
        "the event never reached HubSpot"
    );
    world.clear_faults().await;

    let status = world
        .wait_status(&app, "events settled", |s| {
            s["timeline"]["pending"] == 0 && s["timeline"]["sent"] == 1
        })
        .await;
    assert_eq!(status["timeline"]["failed"], 1, "{status:#}");
    let reason = status["timeline"]["failures"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains(&gone.to_string()), "{status:#}");
    let events = world.timeline_events().await;
    assert_eq!(events.len(), 1, "shown once: {events:#?}");
    assert_eq!(events[0]["objectId"], kept.to_string());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_oauth_or_the_apps_developer_key_the_status_says_why_no_event_is_sent() {
    // A private app: HubSpot refuses timeline events from private apps.
    let world = World::new().await;
    let contact = world
        .create("contacts", json!({"email": "di@northwind.example"}))
        .await;
    let mut settings = world.settings.clone();
    settings.timeline = timeline_settings(&world);
    let app = world.start_with(settings).await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    turn_timeline_on(&world, &app).await;
    let targets = timeline_targets(&world, &app).await;
    assert!(
        targets.iter().all(|t| t["state"] == "unsupported"
            && t["detail"].as_str().unwrap().contains("private apps")),
        "{targets:#?}"
    );
    let status = world.status(&app).await;
    assert!(
        status["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["purpose"] == "timeline"),
        "{status:#}"
    );
    world
        .publish_scores(&[
            world.score(ObjectType::Contact, contact, Some(80), T0),
            change(&world, contact, 80, 20, T0 + 1_000),
        ])
        .await;
    world
        .wait_status(&app, "scores written", |s| {
            s["pending"] == 0 && s["written"].as_i64() >= Some(1)
        })
        .await;
    assert_eq!(
        world.properties("contacts", contact).await["hubscore_risk_level"],
        "critical"
    );
    let status = world.status(&app).await;
    assert_eq!(
        (
            &status["timeline"]["sent"],
            &status["timeline"]["pending"],
            &status["timeline"]["failed"]
        ),
        (&json!(0), &json!(0), &json!(0)),
        "{status:#}"
    );
    assert!(world.timeline_events().await.is_empty());
    app.stop().await;

    // OAuth, but the worker was not given the app's developer key.
    let world = World::new().await;
    let app = oauth_app(&world, false).await;
    let targets = timeline_targets(&world, &app).await;
    assert!(
        targets.iter().all(|t| t["state"] == "unconfigured"
            && t["detail"]
                .as_str()
                .unwrap()
                .contains("timeline.developer_api_key")),
        "{targets:#?}"
    );
    assert!(world.event_templates().await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_and_sent_events_past_retention_are_deleted_and_the_sent_count_kept() {
    use diesel_async::RunQueryDsl;
    let world = World::new().await;
    let pool = world.pool();
    let mut conn = pool.get().await.unwrap();
    let id = world.connection_id;
    // Two log rows and three events: of each, one 40 days old; an old failed event stays.
    for (age, state) in [(40, "sent"), (1, "sent"), (40, "failed")] {
        diesel::sql_query(format!(
            "INSERT INTO timeline_events (connection_id, event_id, object_type, object_id, \
               old_risk_level, new_risk_level, top_factor, occurred_at, state, error, stored_at, \
               sent_at) \
             VALUES ('{id}', 'hubscore-{age}-{state}', 'contacts', 1, 'healthy', 'critical', \
               'deal_momentum', now(), '{state}', 'refused', now() - interval '{age} days', \
               CASE WHEN '{state}' = 'sent' THEN now() - interval '{age} days' END)"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    for age in [40, 1] {
        diesel::sql_query(format!(
            "INSERT INTO writeback_log (connection_id, object_type, written, unchanged, failed, \
               started_at, finished_at) \
             VALUES ('{id}', 'contacts', 100, 0, 0, now() - interval '{age} days', \
               now() - interval '{age} days')"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }

    // Each replica sweeps at start.
    let app = world.start_connected().await;
    let count = async |sql: &str| -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = pool.get().await.unwrap();
        let rows: Vec<N> = diesel::sql_query(sql).load(&mut conn).await.unwrap();
        rows[0].n
    };
    assert!(
        platform::testing::eventually(common::PATIENCE, || async {
            count("SELECT count(*) AS n FROM writeback_log").await == 1
        })
        .await,
        "the old log row was kept"
    );
    assert_eq!(
        count("SELECT count(*) AS n FROM timeline_events").await,
        2,
        "the old sent event goes, the recent one and the failed one stay"
    );
    let status = world.status(&app).await;
    assert_eq!(status["timeline"]["sent"], 2, "{status:#}");
    assert_eq!(status["timeline"]["failed"], 1, "{status:#}");

    // Another sweep (a second replica's) deletes and counts nothing twice.
    let swept = writeback_worker::retention::sweep(&mut conn, 30)
        .await
        .unwrap();
    assert_eq!((swept.log_rows, swept.events), (0, 0));
    let status = world.status(&app).await;
    assert_eq!(status["timeline"]["sent"], 2, "{status:#}");
    app.stop().await;
}
