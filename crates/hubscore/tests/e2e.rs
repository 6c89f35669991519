//! The whole stack as real processes: the five service binaries, the `hubscore` CLI and
//! `auth-gateway issue-token`, against the real PostgreSQL and RabbitMQ, with the simulator
//! as HubSpot. Each test has its own database, exchanges and queue names, so it runs beside
//! any other test. Besides the happy path: a change reaching a `score.updated` consumer
//! and HubSpot; two replicas of every worker killed mid-sync and mid-stream; RabbitMQ,
//! PostgreSQL and HubSpot taken away during a webhook stream. Each ends by checking that
//! the mirror equals HubSpot and that HubSpot shows every score hubscore holds.

mod stack;

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use stack::{Stack, WORKERS, other_stage};

#[tokio::test(flavor = "multi_thread")]
async fn a_portal_connected_with_the_cli_is_synced_scored_and_its_scores_written_back() {
    let stack = Stack::start(120, 30, 60, 1).await;
    let token = stack.issue_token().await;

    let connection: Value = serde_json::from_str(
        &stack
            .cli(&token, &["--json", "connections", "add", "--name", "e2e"])
            .await,
    )
    .expect("connection json");
    let connection_id = connection["id"].as_str().expect("connection id").to_owned();
    assert_eq!(connection["portal_id"].as_u64(), Some(stack.portal_id));

    // `sync follow` returns once the initial sync succeeded (it fails the test otherwise).
    let run: Value = serde_json::from_str(
        &stack
            .cli(&token, &["--json", "sync", "follow", &connection_id])
            .await,
    )
    .expect("sync json");
    assert_eq!(run["state"], "succeeded", "{run}");
    let written: i64 = run["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["object_type"] == "contacts" || o["object_type"] == "contact")
        .map(|o| o["written"].as_i64().unwrap_or(0))
        .sum();
    assert!(written > 0, "the sync wrote no contacts: {run}");

    // Scores arrive, and the worst customer's score is written back onto its HubSpot record.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let worst = loop {
        let list: Value = serde_json::from_str(
            &stack
                .cli(
                    &token,
                    &[
                        "--json",
                        "scores",
                        "--sort",
                        "score",
                        "--limit",
                        "1",
                        "--risk",
                        "critical,at_risk,healthy",
                    ],
                )
                .await,
        )
        .expect("scores json");
        let first = list["customers"][0].clone();
        if first["score"].is_number() {
            break first;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no customer was scored"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let object_type = if worst["object_type"] == "company" {
        "companies"
    } else {
        "contacts"
    };
    let object_id = worst["object_id"].to_string();
    let customer_id = worst["id"].as_str().expect("id").to_owned();
    // HubSpot ends up showing what hubscore shows for the customer now (the org is
    // rescored after the sync, so the value may move before it settles).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let current: Value = serde_json::from_str(
            &stack
                .cli(&token, &["--json", "customer", &customer_id])
                .await,
        )
        .expect("customer json");
        let record = stack
            .record(
                object_type,
                &object_id,
                "hubscore_health_score,hubscore_risk_level",
            )
            .await;
        let shown = &record["properties"];
        if shown["hubscore_health_score"].as_str() == Some(current["score"].to_string().as_str())
            && shown["hubscore_risk_level"] == current["risk_level"]
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{object_type} {object_id} shows {shown} in HubSpot, hubscore shows score {} ({})",
            current["score"],
            current["risk_level"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The CLI shows what was written back and the outbound mapping, and changes it.
    let status: Value = serde_json::from_str(
        &stack
            .cli(&token, &["--json", "writeback", "status", &connection_id])
            .await,
    )
    .expect("status json");
    assert!(status["written"].as_i64().unwrap_or(0) > 0, "{status}");
    let mapping: Value = serde_json::from_str(
        &stack
            .cli(&token, &["--json", "writeback", "mapping", &connection_id])
            .await,
    )
    .expect("mapping json");
    assert_eq!(
        mapping["properties"]["score"], "hubscore_health_score",
        "{mapping}"
    );
    assert_eq!(mapping["timeline_events"], false, "{mapping}");
    let file = std::env::temp_dir().join(format!("hubscore-mapping-{connection_id}.json"));
    std::fs::write(&file, r#"{"timeline_events": true}"#).expect("mapping file");
    let saved: Value = serde_json::from_str(
        &stack
            .cli(
                &token,
                &[
                    "--json",
                    "writeback",
                    "mapping",
                    &connection_id,
                    "--set",
                    file.to_str().expect("path"),
                ],
            )
            .await,
    )
    .expect("saved mapping json");
    let _ = std::fs::remove_file(&file);
    assert_eq!(saved["timeline_events"], true, "{saved}");
    assert_eq!(
        saved["properties"]["score"], "hubscore_health_score",
        "{saved}"
    );

    // The explanation names every factor of the default model.
    let explained: Value = serde_json::from_str(
        &stack
            .cli(
                &token,
                &["--json", "customer", worst["id"].as_str().expect("id")],
            )
            .await,
    )
    .expect("customer json");
    let factors: Vec<&str> = explained["factors"]
        .as_array()
        .expect("factors")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        factors,
        [
            "engagement_recency",
            "deal_momentum",
            "lifecycle_stage",
            "activity_frequency",
            "deal_value"
        ]
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_in_hubspot_reaches_a_score_consumer_and_the_record() {
    let stack = Stack::start(60, 15, 30, 1).await;
    let token = stack.issue_token().await;

    // An internal service's consumer: its own queue bound to `score.updated`.
    let broker = lapin::Connection::connect(
        &platform::testing::amqp_url(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("broker");
    let channel = broker.create_channel().await.expect("channel");
    let queue = channel
        .queue_declare(
            "".into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.name().as_str().into(),
            stack.exchange.as_str().into(),
            "score.updated".into(),
            lapin::options::QueueBindOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("bind");
    let mut deliveries = channel
        .basic_consume(
            queue.name().as_str().into(),
            "e2e-consumer".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("consume");

    let connection_id = stack.connect_and_sync(&token).await;
    // HubSpot posts to the private-app route, whose secret the receiver asks auth-gateway
    // for (the connection was added with it).
    stack
        .sim_control(
            reqwest::Method::PUT,
            &format!("/_sim/portals/{}/webhooks", stack.portal_id),
            json!({"target_url": format!("{}/webhooks/hubspot/{connection_id}", stack.receiver_url)}),
        )
        .await;
    // Everything scored is in HubSpot before the change, so what follows is its effect.
    stack.assert_converges(Duration::from_secs(120)).await;
    while tokio::time::timeout(Duration::from_millis(300), deliveries.next())
        .await
        .is_ok()
    {}

    let scored = stack
        .query_pairs(
            "select object_id as id, score::text as value from scoring.scores \
             where object_type = 1 and score is not null order by object_id limit 1",
        )
        .await;
    let (&contact_id, old_score) = scored.iter().next().expect("a scored contact");
    let stages = stack.hubspot_values("contacts", "lifecyclestage").await;
    let new_stage = other_stage(stages.get(&contact_id).map_or("", String::as_str));

    // A sales rep changes the contact's lifecycle stage in HubSpot.
    let changed_at = std::time::Instant::now();
    let patched = stack
        .http
        .patch(format!(
            "{}/_sim/portals/{}/objects/contacts/{contact_id}",
            stack.sim.base_url(),
            stack.portal_id
        ))
        .json(&json!({"properties": {"lifecyclestage": new_stage}}))
        .send()
        .await
        .expect("change in HubSpot");
    assert!(patched.status().is_success(), "the change was refused");

    let event = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(delivery) = deliveries.next().await {
            let delivery = delivery.expect("delivery");
            let changes = contracts::score_changes(
                platform::testing::message_type(&delivery),
                &delivery.data,
            )
            .expect("a score.updated message type")
            .expect("a score.updated body");
            if let Some(event) = changes.into_iter().find(|event| {
                event.object_type == contracts::v1::ObjectType::Contact as i32
                    && event.object_id == contact_id
            }) {
                return event;
            }
        }
        panic!("the consumer's queue closed");
    })
    .await
    .expect("a score.updated for the changed contact within 60 s");
    let to_event = changed_at.elapsed();
    assert_eq!(
        event.old_score.map(|s| s.to_string()).as_deref(),
        Some(old_score.as_str())
    );
    assert_ne!(event.new_score, event.old_score, "{event:?}");
    assert_eq!(event.top_factor, "lifecycle_stage", "{event:?}");
    let new_score = event.new_score.expect("a score").to_string();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let shown = stack
            .record("contacts", &contact_id.to_string(), "hubscore_health_score")
            .await;
        if shown["properties"]["hubscore_health_score"].as_str() == Some(new_score.as_str()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "HubSpot shows {shown}, not the new score {new_score}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Measured, not asserted (the freshness benchmark holds the target).
    eprintln!(
        "change to score.updated: {to_event:?}; change to the value in HubSpot: {:?}",
        changed_at.elapsed()
    );
    let ledger = stack.webhook_ledger().await;
    assert_eq!(
        ledger["failed_attempts"], 0,
        "the private-app route refused a delivery: {ledger}"
    );
    broker.close(200, "done".into()).await.expect("close");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disconnected_portal_keeps_its_data_and_reconnecting_catches_up_without_a_second_full_sync()
 {
    let stack = Stack::start(60, 15, 30, 1).await;
    let token = stack.issue_token().await;
    let connection_id = stack.connect_and_sync(&token).await;
    stack.assert_converges(Duration::from_secs(120)).await;
    let scores_before = stack
        .query_pairs(
            "select object_id as id, coalesce(score::text, 'N/A') as value from scoring.scores",
        )
        .await;

    stack
        .cli(&token, &["--json", "connections", "remove", &connection_id])
        .await;
    // While disconnected, a sales rep changes a customer's lifecycle stage in HubSpot.
    let scored = stack
        .query_pairs(
            "select object_id as id, score::text as value from scoring.scores \
             where object_type = 1 and score is not null order by object_id limit 1",
        )
        .await;
    let (&contact_id, _) = scored.iter().next().expect("a scored contact");
    let stages = stack.hubspot_values("contacts", "lifecyclestage").await;
    let old_stage = stages.get(&contact_id).cloned().unwrap_or_default();
    let new_stage = other_stage(&old_stage);
    let patched = stack
        .http
        .patch(format!(
            "{}/_sim/portals/{}/objects/contacts/{contact_id}",
            stack.sim.base_url(),
            stack.portal_id
        ))
        .json(&json!({"properties": {"lifecyclestage": new_stage}}))
        .send()
        .await
        .expect("change in HubSpot");
    assert!(patched.status().is_success(), "the change was refused");
    let syncs_of = async || -> Vec<Value> {
        let list: Value = serde_json::from_str(
            &stack
                .cli(&token, &["--json", "sync", "list", &connection_id])
                .await,
        )
        .expect("syncs json");
        list["syncs"].as_array().cloned().unwrap_or_default()
    };
    // HubSpot's webhook for the change reaches the stack (the portal's subscription points
    // at the receiver), but nothing is synced for a disconnected connection, and the data
    // stays.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(syncs_of().await.len(), 1, "a sync ran while disconnected");
    let mirrored = stack
        .query_pairs(&format!(
            "select id, coalesce(lifecycle_stage, '') as value from sync.contacts where id = {contact_id}"
        ))
        .await;
    assert_eq!(
        mirrored.get(&contact_id).map(String::as_str),
        Some(old_stage.as_str()),
        "the mirror changed while disconnected"
    );
    let scores_kept = stack
        .query_pairs(
            "select object_id as id, coalesce(score::text, 'N/A') as value from scoring.scores",
        )
        .await;
    assert_eq!(
        scores_kept.len(),
        scores_before.len(),
        "scores were dropped"
    );

    // Connecting the portal again continues the same connection and catches up.
    let again: Value = serde_json::from_str(
        &stack
            .cli(&token, &["--json", "connections", "add", "--name", "e2e"])
            .await,
    )
    .expect("connection json");
    assert_eq!(
        again["id"].as_str(),
        Some(connection_id.as_str()),
        "{again}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let syncs = loop {
        let syncs = syncs_of().await;
        if syncs.len() == 2 && syncs[0]["state"] == "succeeded" {
            break syncs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no catch-up sync finished: {syncs:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let modes: Vec<&str> = syncs.iter().filter_map(|s| s["mode"].as_str()).collect();
    assert_eq!(modes, ["reconciliation", "full"], "{syncs:?}");
    // The change made while away is mirrored, scored and written back.
    stack.assert_converges(Duration::from_secs(120)).await;
    let mirrored = stack
        .query_pairs(&format!(
            "select id, coalesce(lifecycle_stage, '') as value from sync.contacts where id = {contact_id}"
        ))
        .await;
    assert_eq!(
        mirrored.get(&contact_id).map(String::as_str),
        Some(new_stage)
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_of_every_worker_killed_mid_sync_and_mid_stream_converge_exactly() {
    let mut stack = Stack::start(3000, 300, 1000, 2).await;
    let token = stack.issue_token().await;
    let connection: Value = serde_json::from_str(
        &stack
            .cli(&token, &["--json", "connections", "add", "--name", "e2e"])
            .await,
    )
    .expect("connection json");
    let connection_id = connection["id"].as_str().expect("connection id").to_owned();

    // Once the full sync has mirrored its first contacts, kill -9 both sync-worker
    // replicas in turn (whichever runs the sync dies mid-way) and start them again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let progress = stack
            .query_pairs("select count(*) as id, 'contacts' as value from sync.contacts")
            .await;
        if let Some((&mirrored, _)) = progress.iter().next()
            && mirrored > 0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sync mirrored nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unfinished = stack
        .query_pairs(
            "select count(*) as id, 'runs' as value from sync.sync_runs \
             where finished_at is null",
        )
        .await;
    assert_eq!(
        unfinished.keys().next(),
        Some(&1),
        "the full sync finished before a worker could be killed in it"
    );
    stack.kill_and_restart("sync-worker").await;
    stack.kill_and_restart("sync-worker").await;
    let run: Value = serde_json::from_str(
        &stack
            .cli(&token, &["--json", "sync", "follow", &connection_id])
            .await,
    )
    .expect("sync json");
    assert_eq!(run["state"], "succeeded", "{run}");

    // A stream of changes in HubSpot while one replica of every worker is killed.
    let start = stack
        .http
        .post(format!(
            "{}/_sim/portals/{}/changes/start",
            stack.sim.base_url(),
            stack.portal_id
        ))
        .json(&json!({"per_second": 20.0, "seed": 11}))
        .send()
        .await
        .expect("start changes");
    assert!(
        start.status().is_success(),
        "the change stream did not start"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for worker in WORKERS {
        stack.kill_and_restart(worker).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stop = stack
        .http
        .post(format!(
            "{}/_sim/portals/{}/changes/stop",
            stack.sim.base_url(),
            stack.portal_id
        ))
        .send()
        .await
        .expect("stop changes");
    assert!(stop.status().is_success(), "the change stream did not stop");

    stack.assert_converges(Duration::from_secs(180)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_and_database_outages_hubspot_down_and_chaos_during_a_webhook_stream_lose_nothing() {
    let stack = Stack::start_proxied(300, 60, 150).await;
    let proxies = stack.proxies.as_ref().expect("proxied");
    let token = stack.issue_token().await;
    stack.connect_and_sync(&token).await;
    let portal = format!("/_sim/portals/{}", stack.portal_id);
    // Five changes a second for the whole ~45 s of faults. What matters here is what
    // survives the faults, not how fast: a debug build of the stack on two cores falls
    // behind a faster stream (at ten a second the backlog took over a minute to drain), and
    // throughput is measured by `scripts/bench freshness`.
    stack
        .sim_control(
            reqwest::Method::POST,
            &format!("{portal}/changes/start"),
            json!({"per_second": 5.0, "seed": 5}),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // RabbitMQ unreachable for every service: the receiver refuses deliveries (503) and
    // HubSpot retries them later.
    proxies.broker.refuse();
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxies.broker.accept();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // PostgreSQL unreachable for every service.
    proxies.database.refuse();
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxies.database.accept();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // HubSpot's API down for longer than the client's own retries last: the work waits
    // in the retry queues instead of being dead-lettered.
    stack
        .sim_control(
            reqwest::Method::POST,
            "/_sim/faults",
            json!({"path_prefix": "/crm", "error_rate": 1.0, "error_status": 503}),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    stack
        .sim_control(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;

    // Then chaos: slow answers and one request in five failing.
    stack
        .sim_control(
            reqwest::Method::POST,
            "/_sim/faults",
            json!({"path_prefix": "/crm", "latency_ms": 50, "error_rate": 0.2, "error_status": 502}),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    stack
        .sim_control(
            reqwest::Method::POST,
            &format!("{portal}/changes/stop"),
            json!({}),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack
        .sim_control(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;

    stack.assert_converges(Duration::from_secs(240)).await;
    // Every delivery HubSpot made landed in the end: some were refused while the broker
    // was away, none was given up on, none is still waiting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let ledger = loop {
        let ledger = stack.webhook_ledger().await;
        if ledger["queued_events"] == 0 && ledger["in_flight_batches"] == 0 {
            break ledger;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhooks still pending: {ledger}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        ledger["failed_attempts"].as_u64() > Some(0),
        "the receiver never refused a delivery while the broker was away: {ledger}"
    );
    assert_eq!(ledger["abandoned_batches"], 0, "{ledger}");
    let dead = stack.dead_letters().await;
    if !dead.values().all(|n| *n == 0) {
        panic!(
            "dead-lettered: {dead:?}: {:#?}",
            stack.dead_letter_samples().await
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inbound_attribute_is_written_back_to_a_property_of_the_portal() {
    let stack = Stack::start(40, 10, 20, 1).await;
    let token = stack.issue_token().await;
    let connection_id = stack.connect_and_sync(&token).await;

    // The portal's admin made a property to hold a copy of each contact's job title.
    let created = stack
        .http
        .post(format!(
            "{}/crm/v3/properties/contacts",
            stack.sim.base_url()
        ))
        .bearer_auth(&stack.portal_token)
        .json(
            &json!({"name": "job_title_copy", "label": "Job title (copy)", "type": "string",
                      "fieldType": "text", "groupName": "contactinformation"}),
        )
        .send()
        .await
        .expect("create property");
    assert_eq!(created.status().as_u16(), 201);

    // sync-worker reads the job title into an attribute; writeback-worker writes the attribute
    // to the new property. Both through the gateway, as a user would.
    let put = async |path: &str, body: Value| {
        let response = stack
            .http
            .put(format!(
                "{}/api/v1/connections/{connection_id}/{path}",
                stack.gateway_url
            ))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("PUT");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "PUT {path}: {body}");
    };
    put(
        "mappings",
        json!({"mappings": [{"object_type": "contact", "external_id_property": "hs_object_id",
            "attributes": [{"property": "jobtitle", "attribute": "job", "direction": "inbound"}]}]}),
    )
    .await;
    put(
        "writeback",
        json!({"attributes": [{"object_type": "contacts", "attribute": "job", "property": "job_title_copy"}]}),
    )
    .await;
    // The changed inbound mapping takes effect with a re-sync of the contacts.
    stack
        .cli(
            &token,
            &["sync", "start", &connection_id, "--object-type", "contacts"],
        )
        .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let expected = stack
            .query_pairs(
                "select id, custom_attributes->'job'->>'value' as value from sync.contacts \
                 where skip_reason is null and not archived and merged_into is null \
                   and custom_attributes ? 'job'",
            )
            .await;
        let mut copies = stack.hubspot_values("contacts", "job_title_copy").await;
        // Contacts hubscore does not mirror as customers (no e-mail) get no copy.
        copies.retain(|_, copy| !copy.is_empty());
        let titles = stack.hubspot_values("contacts", "jobtitle").await;
        if !expected.is_empty() && copies == expected {
            // What arrived is HubSpot's own job title, not just what the mirror holds.
            assert!(
                copies.iter().all(|(id, copy)| titles.get(id) == Some(copy)),
                "{copies:?} vs {titles:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job titles never reached HubSpot: expected {expected:?}, found {copies:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack.stop().await;
}
