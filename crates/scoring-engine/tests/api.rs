//! The HTTP API: lists, one customer, the distribution, configs and previews.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::{PORTAL, busy_customer, spawn_app};
use contracts::v1::ObjectType;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

fn ids(body: &Value) -> Vec<i64> {
    body["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["object_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_filter_by_risk_level_and_score_and_page_with_a_cursor() {
    let app = spawn_app().await;
    app.seed_three_bands().await;
    let (_, critical) = app
        .get(app.org, "/api/v1/customers?risk_level=critical")
        .await;
    assert_eq!(ids(&critical), [1]);
    assert_eq!(critical["customers"][0]["risk_level"], "critical");
    let (_, banded) = app
        .get(
            app.org,
            "/api/v1/customers?risk_level=healthy,at_risk&sort=-score",
        )
        .await;
    assert_eq!(ids(&banded), [3, 2]);
    let (_, ranged) = app
        .get(app.org, "/api/v1/customers?min_score=50&max_score=60")
        .await;
    assert_eq!(ids(&ranged), [2]);
    let (_, page1) = app
        .get(app.org, "/api/v1/customers?sort=-score&limit=2")
        .await;
    assert_eq!(ids(&page1), [3, 2]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app
        .get(
            app.org,
            &format!("/api/v1/customers?sort=-score&limit=2&cursor={cursor}"),
        )
        .await;
    assert_eq!(ids(&page2), [1]);
    assert_eq!(page2["next_cursor"], Value::Null);
    let (status, bad) = app
        .get(app.org, "/api/v1/customers?risk_level=purple")
        .await;
    assert_eq!((status, bad["field"].as_str()), (400, Some("risk_level")));
    let (status, bad) = app.get(app.org, "/api/v1/customers?cursor=garbage").await;
    assert_eq!((status, bad["field"].as_str()), (400, Some("cursor")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_customer_shows_its_factors_history_and_what_changed_since_the_previous_score() {
    let app = spawn_app().await;
    app.seed_three_bands().await;
    let id = scoring_engine::engine::customer_id(app.org, PORTAL, 1, 3);
    let (status, body) = app.get(app.org, &format!("/api/v1/customers/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["score"], 78);
    assert_eq!(body["risk_level"], "healthy");
    let factors = body["factors"].as_array().unwrap();
    assert_eq!(factors.len(), 5);
    assert_eq!(factors[1]["name"], "deal_momentum");
    assert_eq!(factors[1]["input"], 0.6);
    assert_eq!(factors[1]["weight"], 20.0);
    assert_eq!(factors[2]["input"], "customer");
    assert_eq!(factors[3]["input"], 8.0);
    let history: Vec<i64> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_i64().unwrap())
        .collect();
    assert_eq!(history, [78, 54]);
    let changes = &body["changes_since_previous"];
    assert_eq!(changes["previous_score"], 54);
    assert_eq!(changes["score_delta"], 24);
    let momentum = &changes["factors"][1];
    assert_eq!(momentum["name"], "deal_momentum");
    assert!((momentum["delta"].as_f64().unwrap() - 12.0).abs() < 1e-9);
}

/// History is found by the customer's key since `2026-12-05-000002_history_in_key_order`:
/// rows written before it get their key from the score row, and so do rows the previous
/// release appends, without one, during a rolling upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_written_before_and_during_the_upgrade_to_keyed_history_is_still_shown() {
    use diesel_async::SimpleAsyncConnection as _;
    let app = spawn_app().await;
    app.seed_three_bands().await;
    let id = scoring_engine::engine::customer_id(app.org, PORTAL, 1, 3);
    let history = async || -> Vec<i64> {
        let (status, body) = app.get(app.org, &format!("/api/v1/customers/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["score"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(history().await, [78, 54]);
    // As the previous release: its schema, and a history row appended its way.
    let old_release_row = format!(
        "INSERT INTO score_history (score_id, org_id, score, risk_level, contributions, \
            config_version, computed_at) \
         VALUES ('{id}', '{}', {{score}}, 1, '{{1,2,3,4,5}}', 0, now())",
        app.org
    );
    let mut conn = app.app.pool.get().await.unwrap();
    conn.batch_execute(include_str!(
        "../migrations/2026-12-05-000002_history_in_key_order/down.sql"
    ))
    .await
    .unwrap();
    conn.batch_execute(&old_release_row.replace("{score}", "90"))
        .await
        .unwrap();
    conn.batch_execute(include_str!(
        "../migrations/2026-12-05-000002_history_in_key_order/up.sql"
    ))
    .await
    .unwrap();
    assert_eq!(
        history().await,
        [90, 78, 54],
        "the row from before is keyed"
    );
    conn.batch_execute(&old_release_row.replace("{score}", "91"))
        .await
        .unwrap();
    assert_eq!(
        history().await,
        [91, 90, 78, 54],
        "the previous release's row, appended after the upgrade, is keyed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_org_never_sees_another_orgs_scores() {
    let app = spawn_app().await;
    app.seed_three_bands().await;
    let other = Uuid::now_v7();
    let mut message = app.changed_for(other, ObjectType::Contact);
    message.customers = busy_customer(77, 1);
    app.publish(&message).await;
    app.next_event().await;
    let (_, mine) = app.get(app.org, "/api/v1/customers").await;
    assert_eq!(ids(&mine), [1, 2, 3]);
    let (_, theirs) = app.get(other, "/api/v1/customers").await;
    assert_eq!(ids(&theirs), [77]);
    let their_id = scoring_engine::engine::customer_id(other, PORTAL, 1, 77);
    let (status, body) = app
        .get(app.org, &format!("/api/v1/customers/{their_id}"))
        .await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (_, distribution) = app.get(app.org, "/api/v1/scoring/distribution").await;
    assert_eq!(distribution["current"]["healthy"], 1);
    assert_eq!(distribution["current"]["at_risk"], 1);
    assert_eq!(distribution["current"]["critical"], 1);
    let (_, theirs) = app.get(other, "/api/v1/scoring/distribution").await;
    assert_eq!(theirs["current"]["at_risk"], 1);
    assert_eq!(theirs["current"]["critical"], 0);
    let unauthenticated = app
        .http
        .get(format!("{}/api/v1/customers", app.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_distribution_counts_levels_and_says_how_they_moved_in_7_and_30_days() {
    let app = spawn_app().await;
    app.seed_three_bands().await;
    app.shared.clock.advance(chrono::Duration::days(8));
    let (status, body) = app.get(app.org, "/api/v1/scoring/distribution").await;
    assert_eq!(status, 200, "{body}");
    let mean = body["current"]["mean_score"].as_f64().unwrap();
    assert!((mean - (4.0 + 54.0 + 78.0) / 3.0).abs() < 1e-9, "{body}");
    // A week ago all three were already scored as now; a month ago none was.
    assert_eq!(body["days_7"]["change"]["healthy"], 0);
    assert_eq!(body["days_7"]["change"]["mean_score"], 0.0);
    assert_eq!(body["days_30"]["then"]["healthy"], 0);
    assert_eq!(body["days_30"]["change"]["critical"], 1);
}

fn config_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut config = serde_json::to_value(scoring_engine::model::ModelConfig::default()).unwrap();
    edit(&mut config);
    config
}

/// Lifecycle counts for more, deal value for nothing; healthy starts at 60.
fn lifecycle_over_deal_value() -> Value {
    config_with(|c| {
        c["weights"]["lifecycle_stage"] = json!(35);
        c["weights"]["deal_value"] = json!(0);
        c["thresholds"]["healthy_min"] = json!(60);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configs_are_refused_naming_the_field_and_members_may_not_save() {
    let app = spawn_app().await;
    let (status, body) = app.get(app.org, "/api/v1/scoring/config").await;
    assert_eq!((status, body["version"].as_i64()), (200, Some(0)));
    assert_eq!(body["config"]["weights"]["engagement_recency"], 25.0);

    let put = |config: Value, role: &'static str| {
        let app = &app;
        async move {
            app.send(
                Method::PUT,
                app.org,
                role,
                "/api/v1/scoring/config",
                &config,
            )
            .await
        }
    };
    let (status, body) = put(
        config_with(|c| c["weights"]["deal_value"] = json!(30)),
        "admin",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_config");
    assert_eq!(body["fields"][0]["field"], "weights");
    assert!(body["message"].as_str().unwrap().contains("sum to 100"));

    let (status, body) = put(
        config_with(|c| {
            c["thresholds"]["at_risk_min"] = json!(80);
            c["activity_frequency"]["target_updates"] = json!(0);
        }),
        "admin",
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "thresholds.at_risk_min",
            "activity_frequency.target_updates"
        ]
    );

    let (status, body) = put(
        config_with(|c| c["weights"]["deal_value"] = json!("lots")),
        "admin",
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("weights.deal_value"))
    );
    let (status, body) = put(config_with(|c| c["surprise"] = json!(1)), "admin").await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = put(config_with(|_| {}), "member").await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    let (_, body) = app.get(app.org, "/api/v1/scoring/config").await;
    assert_eq!(body["version"], 0, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_shows_exactly_what_saving_the_config_then_does() {
    let app = spawn_app().await;
    app.seed_three_bands().await;
    let proposed = lifecycle_over_deal_value();
    let (_, before) = app.get(app.org, "/api/v1/customers").await;
    let (status, preview) = app
        .send(
            Method::POST,
            app.org,
            "member",
            "/api/v1/scoring/config/preview",
            &proposed,
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    let (_, unchanged) = app.get(app.org, "/api/v1/customers").await;
    assert_eq!(before, unchanged, "the preview stored something");
    assert!(
        app.drain().await.is_empty(),
        "the preview published something"
    );

    let (status, saved) = app.save_config(&proposed).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 1);
    let (_, after) = app.get(app.org, "/api/v1/customers").await;

    let level = |body: &Value, id: i64| -> (String, Option<i64>) {
        let c = body["customers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["object_id"] == id)
            .unwrap();
        (
            c["risk_level"].as_str().unwrap().to_owned(),
            c["score"].as_i64(),
        )
    };
    let mut matrix = std::collections::BTreeMap::new();
    let mut movers = Vec::new();
    let mut changed = 0;
    for id in [1, 2, 3] {
        let (from, from_score) = level(&before, id);
        let (to, to_score) = level(&after, id);
        if (&from, from_score) != (&to, to_score) {
            changed += 1;
        }
        *matrix.entry((from.clone(), to.clone())).or_insert(0) += 1;
        if from_score != to_score {
            movers.push((id, to_score.unwrap() - from_score.unwrap()));
        }
        assert_eq!(
            after["customers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["object_id"] == id)
                .unwrap()["config_version"],
            1
        );
    }
    let previewed: std::collections::BTreeMap<(String, String), i64> = preview["matrix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                (
                    m["from"].as_str().unwrap().to_owned(),
                    m["to"].as_str().unwrap().to_owned(),
                ),
                m["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(previewed, matrix);
    let mut previewed_movers: Vec<(i64, i64)> = preview["largest_movers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["object_id"].as_i64().unwrap(),
                m["delta"].as_i64().unwrap(),
            )
        })
        .collect();
    previewed_movers.sort_unstable();
    movers.sort_unstable();
    assert_eq!(previewed_movers, movers);
    assert!(!movers.is_empty());
    assert_eq!(saved["rescored"]["changed"], changed);
    // Saving published one score.updated per changed score, under version 1. The outbox
    // relay publishes after the commit, so collect until they are all in (or time runs out).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut updates = Vec::new();
    loop {
        updates.extend(app.drain().await.into_iter().filter_map(|e| match e {
            common::Event::Updated(u) => Some(u),
            common::Event::Alert(_) => None,
        }));
        if updates.len() >= changed || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(updates.len(), changed);
    assert!(updates.iter().all(|u| u.config_version == 1));
    let (_, config) = app.get(app.org, "/api/v1/scoring/config").await;
    assert_eq!(config["version"], 1);
    assert_eq!(config["config"]["weights"]["lifecycle_stage"], 35.0);
}

/// Every customer's config version, and whether the org is still owed a rescore.
async fn versions(app: &common::TestApp) -> (Vec<i64>, bool) {
    let (_, customers) = app.get(app.org, "/api/v1/customers").await;
    let (_, config) = app.get(app.org, "/api/v1/scoring/config").await;
    let versions = customers["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["config_version"].as_i64().unwrap())
        .collect();
    (versions, config["rescore_pending"].as_bool().unwrap())
}

/// Waits until every customer is scored under `version` and nothing is owed.
async fn wait_rescored(app: &common::TestApp, version: i64) -> bool {
    for _ in 0..200 {
        let (got, pending) = versions(app).await;
        if !pending && !got.is_empty() && got.iter().all(|v| *v == version) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// Saving a config answers within `scoring.config_rescore_wait_ms` (under the gateway's
/// upstream timeout) however large the org: a rescore still running then is reported as
/// such (202) and goes on after the answer, events included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_save_outlasting_the_wait_answers_202_and_its_rescore_goes_on() {
    let shared = common::Shared::new().await;
    let mut settings = shared.settings();
    settings.scoring.config_rescore_wait_ms = 0;
    let replica = shared.spawn_with(settings).await;
    let app = common::test_app(shared, replica).await;
    app.seed_three_bands().await;
    app.drain().await;
    let proposed = lifecycle_over_deal_value();
    let (status, saved) = app.save_config(&proposed).await;
    assert_eq!(status, 202, "{saved}");
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["rescore"], "running");
    assert!(saved.get("rescored").is_none());
    assert!(
        wait_rescored(&app, 1).await,
        "the rescore never finished: {:?}",
        versions(&app).await
    );
    let events = app.drain().await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, common::Event::Updated(u) if u.config_version == 1)),
        "no score.updated under the new version"
    );
}

/// A replica that saved a config and died before its rescore ended leaves the version
/// owed. The scheduler of any replica pays it, unless another holds the org's rescore
/// lock (it is paying it): then it waits its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescore_owed_by_a_dead_replica_is_paid_by_the_scheduler_once_the_lock_is_free() {
    use diesel_async::AsyncConnection;
    let app = spawn_app().await;
    app.seed_three_bands().await;
    let proposed: scoring_engine::model::ModelConfig = serde_json::from_value(config_with(|c| {
        c["weights"]["lifecycle_stage"] = json!(35);
        c["weights"]["deal_value"] = json!(0);
    }))
    .unwrap();
    let now = app.shared.clock.now();
    let org = app.org;
    // Another replica is paying the org's rescore: it holds the lock.
    let holder = app.hold_rescore_lock().await;
    // What the dead replica committed: the version and the debt, no rescore.
    let mut conn = app.app.pool.get().await.unwrap();
    conn.transaction(async |conn| {
        let version = scoring_engine::db::configs::save(conn, org, &proposed, "test", now).await?;
        scoring_engine::db::configs::owe_rescore(conn, org, version, now).await
    })
    .await
    .unwrap();
    // The scheduler polls every 50 ms: a second of passes leaves it owed and unpaid.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let (got, pending) = versions(&app).await;
    assert!(pending, "the debt vanished while another held the lock");
    assert!(
        got.iter().all(|v| *v == 0),
        "rescored under the lock: {got:?}"
    );
    holder.release().await;
    assert!(
        wait_rescored(&app, 1).await,
        "the owed rescore was never paid: {:?}",
        versions(&app).await
    );
}

/// The rescore a config save owes is the saving request's own: another replica's scheduler
/// that looks for owed rescores without pause never takes it first, so every save answers
/// 200 with what its rescore did. It used to be able to, in the moment between the save
/// committing and the request's task taking the org's rescore lock (the answer was then
/// 202 though the lock had been free).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_polling_without_pause_never_takes_a_saves_own_rescore() {
    let app = spawn_app().await;
    app.seed_three_bands().await;
    let org = app.org;
    let clock = app.shared.clock.clone();
    // Another replica's scheduler, owed rescores looked for and paid as its passes do,
    // with no pause between passes.
    let other = platform::db::connect_pool(&app.shared.settings().database, "scoring").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other_scheduler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let relay = platform::outbox::RelayWaker::default();
            let (mut passes, mut taken) = (0_u32, 0_u32);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let mut conn = other.get().await.unwrap();
                let owed = scoring_engine::db::configs::orgs_owed_rescore(&mut conn)
                    .await
                    .unwrap();
                drop(conn);
                if owed.contains(&org) {
                    let paid = scoring_engine::engine::pay_owed_rescore(
                        scoring_engine::engine::Rescorer {
                            pool: &other,
                            relay: &relay,
                            batch_size: 1000,
                            lanes: 2,
                            correlation_id: "other-replica",
                        },
                        org,
                        clock.now(),
                    )
                    .await
                    .unwrap();
                    taken += u32::from(paid.is_some());
                }
                passes += 1;
            }
            (passes, taken)
        })
    };
    for round in 1..=10_i64 {
        let lifecycle = if round % 2 == 0 { 35 } else { 30 };
        let (status, saved) = app
            .save_config(&config_with(|c| {
                c["weights"]["lifecycle_stage"] = json!(lifecycle);
                c["weights"]["deal_value"] = json!(35 - lifecycle);
            }))
            .await;
        assert_eq!(status, 200, "save {round}: {saved}");
        assert_eq!(saved["version"], round);
        assert_eq!(saved["rescored"]["scored"], 3, "save {round}: {saved}");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (passes, taken) = other_scheduler.await.unwrap();
    assert!(
        passes > 10,
        "the other scheduler hardly ran: {passes} passes"
    );
    assert_eq!(taken, 0, "the other scheduler took a save's rescore");
    assert!(wait_rescored(&app, 10).await, "{:?}", versions(&app).await);
}

/// A save the database refuses answers 500 without its cause, and leaves nothing behind:
/// no new version, no rescore owed, no event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_save_the_database_refuses_answers_500_and_leaves_nothing_owed() {
    use diesel_async::SimpleAsyncConnection;
    let app = spawn_app().await;
    app.seed_three_bands().await;
    app.drain().await;
    let mut conn = app.app.pool.get().await.unwrap();
    conn.batch_execute(
        "CREATE FUNCTION refuse_configs() RETURNS trigger LANGUAGE plpgsql AS \
            $$ BEGIN RAISE EXCEPTION 'configs refused secret-cause'; END $$; \
         CREATE TRIGGER refuse_configs BEFORE INSERT ON configs \
            FOR EACH ROW EXECUTE FUNCTION refuse_configs();",
    )
    .await
    .unwrap();
    let (status, body) = app.save_config(&lifecycle_over_deal_value()).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "internal");
    assert!(!body.to_string().contains("secret-cause"), "{body}");
    let (_, config) = app.get(app.org, "/api/v1/scoring/config").await;
    assert_eq!(config["version"], 0, "{config}");
    assert_eq!(config["rescore_pending"], false, "{config}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.drain().await.is_empty(), "an event went out");

    // Once the database takes it again, the same save goes through.
    conn.batch_execute("DROP TRIGGER refuse_configs ON configs")
        .await
        .unwrap();
    let (status, saved) = app.save_config(&lifecycle_over_deal_value()).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 1);
}

/// A pool too small for a rescore's lanes and lock plus the consumer's and the relay's
/// connections is refused at start, naming the settings, instead of timing out on the
/// first config change; so is a rescore without a lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_too_small_for_a_rescore_is_refused_at_start_naming_the_setting() {
    let shared = common::Shared::new().await;
    let refused = async |max_connections: usize, lanes: usize| {
        let mut settings = shared.settings();
        settings.database.max_connections = max_connections;
        settings.scoring.rescore_lanes = lanes;
        match scoring_engine::startup::Application::build_with_clock(settings, shared.clock.clock())
            .await
        {
            Ok(_) => None,
            Err(error) => Some(format!("{error:#}")),
        }
    };
    let error = refused(2, 3).await.expect("a pool of 2 was taken");
    assert!(
        error.contains("database.max_connections is 2")
            && error.contains("needs at least 6")
            && error.contains("scoring.rescore_lanes = 3"),
        "{error}"
    );
    // Enough for two lanes is too few for eight.
    let error = refused(5, 8)
        .await
        .expect("a pool of 5 was taken for 8 lanes");
    assert!(error.contains("needs at least 11"), "{error}");
    let error = refused(10, 0).await.expect("no lane was taken");
    assert!(error.contains("scoring.rescore_lanes is 0"), "{error}");
    assert_eq!(scoring_engine::startup::min_connections(2), 5);
}

/// Two saves in quick succession, each answered before its rescore ends. Whichever task
/// holds the org's rescore lock (or the scheduler, paying what is owed) brings the org to
/// the newer version; which one does depends on timing, so this asserts the outcome: the
/// org under the second version with nothing owed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_quick_saves_end_with_the_org_under_the_second_and_nothing_owed() {
    let shared = common::Shared::new().await;
    let mut settings = shared.settings();
    settings.scoring.config_rescore_wait_ms = 0;
    let replica = shared.spawn_with(settings).await;
    let app = common::test_app(shared, replica).await;
    app.seed_three_bands().await;
    for (version, lifecycle) in [(1, 35), (2, 30)] {
        let proposed = config_with(|c| {
            c["weights"]["lifecycle_stage"] = json!(lifecycle);
            c["weights"]["deal_value"] = json!(35 - lifecycle);
        });
        let (status, saved) = app.save_config(&proposed).await;
        assert_eq!(status, 202, "{saved}");
        assert_eq!(saved["version"], version);
    }
    assert!(
        wait_rescored(&app, 2).await,
        "the org did not end under version 2: {:?}",
        versions(&app).await
    );
}

/// A write that changes hundreds of scores publishes them as `ScoreUpdatedBatch` messages
/// of up to 100 changes, each change once and complete; a change to a few records is a
/// `ScoreUpdated` of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescore_of_hundreds_publishes_each_change_once_in_a_batch() {
    use std::sync::atomic::Ordering;
    /// `score.updated` changes until `n` arrived or 20 s passed.
    async fn updates(app: &common::TestApp, n: usize) -> Vec<contracts::v1::ScoreUpdated> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut updates = Vec::new();
        while updates.len() < n && tokio::time::Instant::now() < deadline {
            updates.extend(app.drain().await.into_iter().filter_map(|e| match e {
                common::Event::Updated(u) => Some(u),
                common::Event::Alert(_) => None,
            }));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        updates
    }

    let app = spawn_app().await;
    // 250 customers in one message: their first scores are one write of 250 changes.
    app.publish_busy_contacts(250).await;
    let first = updates(&app, 250).await;
    assert_eq!(first.len(), 250);
    assert_eq!(
        app.batches_seen.load(Ordering::SeqCst),
        3,
        "250 changes in batches of at most 100"
    );

    let (status, saved) = app.save_config(&lifecycle_over_deal_value()).await;
    assert_eq!(status, 200, "{saved}");
    let changed = usize::try_from(saved["rescored"]["changed"].as_i64().unwrap()).unwrap();
    assert_eq!(changed, 250, "the lifecycle weight moved every score");
    let rescored = updates(&app, changed).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(app.drain().await.is_empty(), "nothing more arrived");
    let ids: std::collections::BTreeSet<i64> = rescored.iter().map(|u| u.object_id).collect();
    assert_eq!(ids, (1..=250).collect(), "every customer once");
    assert_eq!(rescored.len(), 250, "no customer twice");
    assert_eq!(
        app.batches_seen.load(Ordering::SeqCst),
        6,
        "again three batches"
    );
    for u in &rescored {
        let before = first.iter().find(|f| f.object_id == u.object_id).unwrap();
        assert_eq!(u.org_id, app.org.to_string());
        assert_eq!(u.config_version, 1);
        assert_eq!(u.old_score, before.new_score, "{u:?}");
        assert!(u.new_score.unwrap() > before.new_score.unwrap(), "{u:?}");
        assert_eq!(u.factors.len(), 5, "{u:?}");
        assert_eq!(u.contribution_deltas.len(), 5, "{u:?}");
    }

    // One record's change is a message of its own.
    app.publish_drop_to_lead(7).await;
    // The drop to `lead` is also an alert: two messages.
    let single = app.update_among(2).await;
    assert_eq!(single.object_id, 7);
    assert_eq!(app.batches_seen.load(Ordering::SeqCst), 6, "not batched");
}

/// A rescore that moves hundreds of customers into a worse band raises an alert for each,
/// published as `ScoreAlertBatch` messages of at most 100 under `score.alert` (one message
/// per alert cost the broker and the relay more than the bodies did): every alert once,
/// complete, with its own id. A single record's alert is still a message of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescore_alerting_hundreds_publishes_each_alert_once_in_a_batch() {
    use contracts::v1::RiskLevel;
    use std::sync::atomic::Ordering;
    let app = spawn_app().await;
    // 250 customers of one score, first scored in one write.
    app.publish_busy_contacts(250).await;
    assert_eq!(app.events(250).await.len(), 250);
    // Lifecycle counts for more: every score rises (no alert), to one score.
    let (status, saved) = app.save_config(&lifecycle_over_deal_value()).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["rescored"]["changed"], 250, "{saved}");
    assert_eq!(saved["rescored"]["alerts"], 0, "{saved}");
    let risen: Vec<_> = app
        .events(250)
        .await
        .into_iter()
        .map(common::Event::updated)
        .collect();
    let score = risen[0].new_score.unwrap();
    assert!(risen.iter().all(|u| u.new_score == Some(score)));
    assert!((40..100).contains(&score), "{score}");
    assert_eq!(app.alert_batches_seen.load(Ordering::SeqCst), 0);

    // The band they are in now starts one point above them: every one of them enters the
    // band below.
    let healthy_min = lifecycle_over_deal_value()["thresholds"]["healthy_min"]
        .as_u64()
        .unwrap();
    let (edge, from, to) = if u64::from(score) >= healthy_min {
        ("healthy_min", RiskLevel::Healthy, RiskLevel::AtRisk)
    } else {
        ("at_risk_min", RiskLevel::AtRisk, RiskLevel::Critical)
    };
    let mut moved = lifecycle_over_deal_value();
    moved["thresholds"][edge] = json!(score + 1);
    if edge == "at_risk_min" && u64::from(score) + 1 >= healthy_min {
        moved["thresholds"]["healthy_min"] = json!(score + 2);
    }
    let (status, saved) = app.save_config(&moved).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["rescored"]["changed"], 250, "{saved}");
    assert_eq!(saved["rescored"]["alerts"], 250, "{saved}");
    let events = app.events(500).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(app.drain().await.is_empty(), "nothing more arrived");
    let alerts: Vec<contracts::v1::ScoreAlert> = events
        .into_iter()
        .filter_map(|e| match e {
            common::Event::Alert(a) => Some(a),
            common::Event::Updated(_) => None,
        })
        .collect();
    assert_eq!(alerts.len(), 250, "an alert per customer, none twice");
    let customers: std::collections::BTreeSet<i64> = alerts.iter().map(|a| a.object_id).collect();
    assert_eq!(customers, (1..=250).collect(), "every customer's alert");
    let ids: std::collections::BTreeSet<&str> =
        alerts.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids.len(), 250, "each alert its own id");
    assert_eq!(
        app.alert_batches_seen.load(Ordering::SeqCst),
        3,
        "250 alerts in batches of at most 100"
    );
    for a in &alerts {
        assert_eq!(a.org_id, app.org.to_string());
        assert_eq!(a.config_version, 2);
        assert_eq!(
            a.reasons,
            vec![i32::from(contracts::v1::ScoreAlertReason::WorseRiskLevel)],
            "{a:?}"
        );
        assert_eq!((a.old_score, a.new_score), (Some(score), score), "{a:?}");
        assert_eq!(
            (a.old_risk_level, a.new_risk_level),
            (i32::from(from), i32::from(to)),
            "{a:?}"
        );
    }
    let stored: i64 = {
        use diesel_async::RunQueryDsl as _;
        let mut conn = app.app.pool.get().await.unwrap();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM alerts)",
        ))
        .get_result(&mut conn)
        .await
        .unwrap()
    };
    assert_eq!(stored, 250, "each alert stored once");

    // One record's drop to `lead` alerts alone.
    app.publish_drop_to_lead(7).await;
    let single = app.events(2).await;
    assert!(
        single
            .iter()
            .any(|e| matches!(e, common::Event::Alert(a) if a.object_id == 7)),
        "{single:?}"
    );
    assert_eq!(
        app.alert_batches_seen.load(Ordering::SeqCst),
        3,
        "a single alert is not batched"
    );
}

/// The test org's three bands (their events drained) on a replica whose scheduler looks
/// for owed rescores only hourly, so that a debt paid within a test is paid by something
/// other than the scheduler.
async fn three_bands_with_the_scheduler_an_hour_away() -> common::TestApp {
    let shared = common::Shared::new().await;
    let mut settings = shared.settings();
    settings.scoring.schedule_poll_ms = 3_600_000;
    let replica = shared.spawn_with(settings).await;
    let app = common::test_app(shared, replica).await;
    app.seed_three_bands().await;
    app.drain().await;
    app
}

/// A save that found the org's rescore lock taken tries it again once its version is
/// committed. Here the holder lets go after its last look for debts but before the save
/// commits (the org's score lock, held too, keeps the save waiting until then): the save
/// then pays its own rescore and answers 200, where it used to answer 202 and leave the
/// debt for the scheduler's next pass (here an hour away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_found_the_rescore_lock_taken_rescores_once_the_holder_lets_go() {
    let app = three_bands_with_the_scheduler_an_hour_away().await;
    let rescore_holder = app.hold_rescore_lock().await;
    let score_holder = app.hold_org_lock().await;
    let config = lifecycle_over_deal_value();
    let (saved, ()) = tokio::join!(app.save_config(&config), async {
        // The save has tried the rescore lock and waits to write its version.
        app.until_a_session_waits_on_a_lock().await;
        rescore_holder.release().await;
        score_holder.release().await;
    });
    let (status, saved) = saved;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["rescored"]["scored"], 3, "{saved}");
    let (versions, pending) = versions(&app).await;
    assert_eq!(
        versions,
        vec![1, 1, 1],
        "every customer under the new version"
    );
    assert!(!pending, "the debt is paid");
    assert!(
        !app.drain().await.is_empty(),
        "the rescore's events went out"
    );
}

/// A config saved while another whole-org rescore holds the org's rescore lock leaves its
/// version owed (its own task cannot take the lock). The sync's rescore, retried from its
/// delay queue until the lock is free, pays it as soon as it has run, before it lets the
/// lock go, not the scheduler's next pass (here an hour away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_saved_during_a_post_sync_rescore_is_paid_when_that_rescore_ends() {
    let app = three_bands_with_the_scheduler_an_hour_away().await;
    // Another whole-org rescore holds the lock; the sync's is retried until it is free.
    let holder = app.hold_rescore_lock().await;
    app.sync_completed(app.org).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, saved) = app.save_config(&lifecycle_over_deal_value()).await;
    assert_eq!(status, 202, "{saved}");
    let (_, pending) = versions(&app).await;
    assert!(pending, "the version is owed");
    holder.release().await;
    assert!(
        wait_rescored(&app, 1).await,
        "the owed rescore waited for the scheduler: {:?}",
        versions(&app).await
    );
}
