//! Scores written back into the simulator's records: types, minimal requests, partial
//! failures, crashes, backfills and replicas.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::World;
use contracts::v1::ObjectType;
use futures::future::BoxFuture;
use hubspot_client::{AccessToken, HubSpotError, TokenSource};
use platform::amqp::{MessageMeta, OutgoingMessage};
use reqwest::Method;
use serde_json::{Value, json};

const T0: i64 = 1_767_225_600_000;

fn requests(stats: &Value) -> u64 {
    stats["requests_total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_land_on_contact_and_company_records_with_the_right_types() {
    let world = World::new().await;
    let contact = world
        .create("contacts", json!({"email": "ada@northwind.example"}))
        .await;
    let company = world
        .create("companies", json!({"name": "Northwind"}))
        .await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    world
        .publish_scores(&[
            world.score(ObjectType::Contact, contact, Some(87), T0),
            world.score(ObjectType::Company, company, Some(35), T0),
        ])
        .await;
    world
        .wait_status(&app, "both written", |s| s["written"] == 2)
        .await;

    let c = world.properties("contacts", contact).await;
    assert_eq!(c["hubscore_health_score"], "87");
    assert_eq!(c["hubscore_risk_level"], "healthy");
    assert_eq!(c["hubscore_top_factor"], "deal_momentum");
    assert_eq!(c["hubscore_score_updated_at"], "2026-01-01T00:00:00.000Z");
    let k = world.properties("companies", company).await;
    assert_eq!(k["hubscore_health_score"], "35");
    assert_eq!(k["hubscore_risk_level"], "critical");

    for object_type in ["contacts", "companies"] {
        let types: Vec<(String, String, String)> = [
            "hubscore_health_score",
            "hubscore_risk_level",
            "hubscore_score_updated_at",
            "hubscore_top_factor",
        ]
        .into_iter()
        .map(async |name| {
            let p = world.property(object_type, name).await.unwrap();
            (
                p["type"].as_str().unwrap().to_owned(),
                p["fieldType"].as_str().unwrap().to_owned(),
                p["groupName"].as_str().unwrap().to_owned(),
            )
        })
        .collect::<futures::stream::FuturesOrdered<_>>()
        .collect::<Vec<_>>()
        .await;
        let kinds: Vec<&str> = types.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(
            kinds,
            ["number", "enumeration", "datetime", "string"],
            "{object_type}"
        );
        assert!(types.iter().all(|t| t.2 == "hubscore"), "{types:?}");
    }
    let risk = world
        .property("contacts", "hubscore_risk_level")
        .await
        .unwrap();
    let options: Vec<&str> = risk["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(options, ["healthy", "at_risk", "critical", "none"]);
    app.stop().await;
}

use futures::StreamExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_existing_property_is_reported_and_nothing_is_written_to_it() {
    let world = World::new().await;
    let (status, body) = world
        .hubspot(
            Method::POST,
            "/crm/v3/properties/contacts",
            Some(
                json!({"name": "hubscore_health_score", "label": "Health", "type": "bool",
                "fieldType": "booleancheckbox", "groupName": "contactinformation",
                "options": [{"label": "Yes", "value": "true"}, {"label": "No", "value": "false"}]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let contact = world
        .create("contacts", json!({"email": "bo@northwind.example"}))
        .await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    let prepared = world.wait_prepared(&app).await;
    let problems = prepared["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{prepared:#}");
    assert_eq!(problems[0]["object_type"], "contacts");
    assert_eq!(problems[0]["property"], "hubscore_health_score");
    assert_eq!(problems[0]["state"], "incompatible");
    assert!(
        problems[0]["detail"].as_str().unwrap().contains("bool"),
        "{prepared:#}"
    );

    world
        .publish_scores(&[world.score(ObjectType::Contact, contact, Some(55), T0)])
        .await;
    world
        .wait_status(&app, "written", |s| s["written"] == 1)
        .await;
    let props = world.properties("contacts", contact).await;
    assert_eq!(props["hubscore_risk_level"], "at_risk");
    assert!(
        props["hubscore_health_score"].is_null() || props["hubscore_health_score"] == "",
        "{props}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_write_scope_is_reported_on_the_status() {
    let world = World::new().await;
    let app = world.start().await;
    world
        .connect(vec![
            "crm.objects.contacts.read".to_owned(),
            "crm.objects.companies.write".to_owned(),
            "crm.schemas.companies.write".to_owned(),
        ])
        .await;
    let prepared = world.wait_prepared(&app).await;
    let problems = prepared["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 4, "{prepared:#}");
    assert!(
        problems
            .iter()
            .all(|p| p["object_type"] == "contacts" && p["state"] == "missing_scope"),
        "{prepared:#}"
    );
    assert!(
        world
            .property("contacts", "hubscore_health_score")
            .await
            .is_none()
    );
    assert!(
        world
            .property("companies", "hubscore_health_score")
            .await
            .is_some()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_score_causes_no_request() {
    let world = World::new().await;
    let contact = world
        .create("contacts", json!({"email": "cy@northwind.example"}))
        .await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    world
        .publish_scores(&[world.score(ObjectType::Contact, contact, Some(61), T0)])
        .await;
    world
        .wait_status(&app, "written", |s| s["written"] == 1)
        .await;
    let before = requests(&world.stats().await);

    // Recomputed later with the same result: nothing differs from what HubSpot holds.
    world
        .publish_scores(&[world.score(ObjectType::Contact, contact, Some(61), T0 + 60_000)])
        .await;
    let status = world
        .wait_status(&app, "skipped", |s| {
            s["unchanged_skipped"] == 1 && s["pending"] == 0
        })
        .await;
    assert_eq!(status["written"], 1);
    assert_eq!(requests(&world.stats().await), before);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_record_in_a_batch_fails_alone() {
    let world = World::new().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            world
                .create(
                    "contacts",
                    json!({"email": format!("d{i}@northwind.example")}),
                )
                .await,
        );
    }
    world.delete("contacts", ids[1]).await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    let scores: Vec<_> = ids
        .iter()
        .map(|id| world.score(ObjectType::Contact, *id, Some(72), T0))
        .collect();
    world.publish_scores(&scores).await;
    let status = world
        .wait_status(&app, "settled", |s| s["written"] == 2 && s["failed"] == 1)
        .await;
    assert_eq!(status["pending"], 0, "{status:#}");
    let failures = status["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{status:#}");
    assert!(
        failures[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("OBJECT_NOT_FOUND"),
        "{status:#}"
    );
    assert_eq!(failures[0]["retryable"], false);
    assert_eq!(
        world.properties("contacts", ids[0]).await["hubscore_health_score"],
        "72"
    );
    assert_eq!(
        world.properties("contacts", ids[2]).await["hubscore_health_score"],
        "72"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_writes_every_score_once() {
    let world = World::new().await;
    world.seed_contacts(250).await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    let scores: Vec<_> = (0..250)
        .map(|i| world.score(ObjectType::Contact, 1001 + i, Some(50), T0))
        .collect();
    world.publish_scores(&scores).await;
    world
        .wait_status(&app, "written", |s| s["written"] == 250)
        .await;
    let before = requests(&world.stats().await);

    let path = format!(
        "/api/v1/connections/{}/writeback/backfill",
        world.connection_id
    );
    let (code, body) = world.api(&app, Method::POST, &path, None).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["records"], 250);
    let status = world
        .wait_status(&app, "backfilled", |s| {
            s["backfill"]["remaining"] == 0 && s["pending"] == 0
        })
        .await;
    assert_eq!(status["written"], 500, "{status:#}");
    assert_eq!(
        requests(&world.stats().await) - before,
        3,
        "three batch updates: 100 + 100 + 50"
    );
    app.stop().await;
}

/// A whole-org rescore's changes arrive as `ScoreUpdatedBatch` messages on `score.updated`:
/// every entry is written back as a `ScoreUpdated` of its own would be; an entry that can
/// never be stored is left out alone; the batch delivered again writes nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_score_changes_is_written_back_entry_by_entry() {
    let world = World::new().await;
    world.seed_contacts(150).await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    let mut updates: Vec<_> = (0..150)
        .map(|i| {
            let score = u32::try_from(i % 100).unwrap();
            world.score(ObjectType::Contact, 1001 + i, Some(score), T0)
        })
        .collect();
    // A malformed entry in the middle: no record id.
    updates.insert(75, world.score(ObjectType::Contact, 0, Some(10), T0));
    let batch = contracts::v1::ScoreUpdatedBatch {
        org_id: world.org_id.to_string(),
        updates,
    };
    let message = OutgoingMessage::from_event(&batch, MessageMeta::start_trace(Some(world.org_id)));
    assert_eq!(message.routing_key, "score.updated");
    for result in world
        .publisher
        .publish_all(std::slice::from_ref(&message))
        .await
    {
        result.unwrap();
    }
    let status = world
        .wait_status(&app, "written", |s| {
            s["written"] == 150 && s["pending"] == 0
        })
        .await;
    assert_eq!(
        status["requests"], 2,
        "100 + 50 in two batch updates: {status:#}"
    );
    assert_scores(&world, 1001, 150, |id| ((id - 1001) % 100).to_string()).await;

    // The same message again (a redelivery, or the producer publishing it twice).
    for result in world.publisher.publish_all(&[message]).await {
        result.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = world.status(&app).await;
    assert_eq!(
        (
            status["written"].as_i64(),
            status["pending"].as_i64(),
            status["requests"].as_i64()
        ),
        (Some(150), Some(0), Some(2)),
        "nothing written twice: {status:#}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_arriving_in_pieces_still_goes_out_as_full_batches() {
    let world = World::new().await;
    world.seed_contacts(201).await;
    // A window long enough that the first 100 go out as one full batch however slowly a
    // loaded machine stores them; the burst window three times that.
    let mut settings = world.settings.clone();
    settings.writeback.batch_window_ms = 2_000;
    settings.writeback.burst_window_ms = 6_000;
    let app = world.start_with(settings).await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    let scores = |ids: std::ops::Range<i64>| -> Vec<_> {
        ids.map(|id| world.score(ObjectType::Contact, id, Some(61), T0))
            .collect()
    };
    world.publish_scores(&scores(1001..1101)).await;
    world
        .wait_status(&app, "first batch", |s| s["written"] == 100)
        .await;

    assert_eq!(world.status(&app).await["requests"], 1);
    // Half a batch, then a pause longer than the batch window: the burst is not over, so the
    // half waits for the rest instead of going out alone.
    world.publish_scores(&scores(1101..1151)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = world.status(&app).await;
    assert_eq!(
        (waiting["written"].as_i64(), waiting["pending"].as_i64()),
        (Some(100), Some(50)),
        "{waiting:#}"
    );
    world.publish_scores(&scores(1151..1201)).await;
    let status = world
        .wait_status(&app, "second batch", |s| {
            s["written"] == 200 && s["pending"] == 0
        })
        .await;
    assert_eq!(status["requests"], 2, "two full batches: {status:#}");

    // Once the burst is over, a lone change goes out on the short window.
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    world.publish_scores(&scores(1201..1202)).await;
    let status = world
        .wait_status(&app, "lone change", |s| s["written"] == 201)
        .await;
    assert_eq!(status["requests"], 3, "{status:#}");
    app.stop().await;
}

async fn assert_scores(world: &World, first: i64, count: i64, expected: impl Fn(i64) -> String) {
    for id in first..first + count {
        let props = world.properties("contacts", id).await;
        assert_eq!(
            props["hubscore_health_score"],
            expected(id).as_str(),
            "contact {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_flush_and_restarted_leaves_every_record_with_its_latest_score() {
    let world = World::new().await;
    world.seed_contacts(1_000).await;
    let app = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    let first: Vec<_> = (0..1_000)
        .map(|i| world.score(ObjectType::Contact, 1001 + i, Some(10), T0))
        .collect();
    world.publish_scores(&first).await;
    world
        .wait_status(&app, "some written", |s| {
            s["written"].as_i64().unwrap() >= 100
        })
        .await;
    app.kill();

    let latest: Vec<_> = (0..1_000)
        .map(|i| world.score(ObjectType::Contact, 1001 + i, Some(90), T0 + 1_000))
        .collect();
    world.publish_scores(&latest).await;
    let app = world.start().await;
    world
        .wait_status(&app, "drained", |s| {
            s["pending"] == 0 && s["written"].as_i64().unwrap() >= 1_000
        })
        .await;
    assert_scores(&world, 1001, 1_000, |_| "90".to_owned()).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applications_never_write_an_older_score_over_a_newer() {
    let world = World::new().await;
    world.seed_contacts(300).await;
    let a = world.start().await;
    let b = world.start().await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&a).await;
    // Ten rounds per record, published newest first for odd records: the newest (round 9)
    // must win everywhere, whatever order the replicas see them in.
    let mut scores = Vec::new();
    for round in 0..10u32 {
        for i in 0..300i64 {
            let r = if i % 2 == 1 { 9 - round } else { round };
            scores.push(world.score(
                ObjectType::Contact,
                1001 + i,
                Some(10 + r * 5),
                T0 + i64::from(r) * 1_000,
            ));
        }
    }
    world.publish_scores(&scores).await;
    // "Nothing pending" can hold for a moment while messages are still on the queue, so
    // wait for the final values themselves: a newer score overwritten by an older one
    // would stay wrong for good and time this out.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut wrong = Vec::new();
        for id in 1001..1301 {
            let shown = world.properties("contacts", id).await["hubscore_health_score"].clone();
            if shown != "55" {
                wrong.push((id, shown));
            }
        }
        if wrong.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "records not showing their newest score (55): {wrong:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let status = world
        .wait_status(&a, "drained", |s| s["pending"] == 0)
        .await;
    assert!(status["written"].as_i64().unwrap() >= 300, "{status:#}");
    a.stop().await;
    b.stop().await;
}

/// The race behind an older score showing in HubSpot: a newer score is stored after the
/// flusher read a record's waiting score but before it claimed it. The claim must refuse
/// the read revision (so the older values are never sent), and the newer one must be the
/// next thing sent; a write recorded for a revision no longer in flight must not settle it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_stored_while_a_batch_is_being_claimed_is_sent_next_never_the_older_one() {
    use writeback_worker::db;
    use writeback_worker::mapping::TargetObject;

    let world = World::new().await;
    let pool = world.pool();
    let mut conn = pool.get().await.unwrap();
    let incoming = |score: i16, at_ms: i64| db::IncomingScore {
        connection_id: world.connection_id,
        object_type: TargetObject::Contacts,
        object_id: 42,
        org_id: world.org_id,
        portal_id: world.portal_id,
        score: Some(score),
        risk_level: "healthy".to_owned(),
        top_factor: "deal_momentum".to_owned(),
        computed_at: chrono::DateTime::from_timestamp_millis(at_ms).unwrap(),
        config_version: 1,
        message_id: uuid::Uuid::now_v7(),
        level_change: None,
    };
    let pending = async |conn: &mut diesel_async::AsyncPgConnection| {
        db::pending_scores(conn, world.connection_id, TargetObject::Contacts, 0, 0, 10)
            .await
            .unwrap()
    };
    let claim = async |conn: &mut diesel_async::AsyncPgConnection, revision: i64| {
        db::mark_inflight(
            conn,
            world.connection_id,
            TargetObject::Contacts,
            &[(42, revision)],
        )
        .await
        .unwrap()
    };
    let release = async |conn: &mut diesel_async::AsyncPgConnection, revision: i64| {
        db::release_inflight(
            conn,
            world.connection_id,
            TargetObject::Contacts,
            &[(42, revision)],
        )
        .await
        .unwrap();
    };
    let fail = async |conn: &mut diesel_async::AsyncPgConnection, revision: i64, reason: &str| {
        db::record_failed(
            conn,
            world.connection_id,
            TargetObject::Contacts,
            &[db::RecordFailure {
                object_id: 42,
                revision,
                reason: reason.to_owned(),
                retryable: true,
            }],
        )
        .await
        .unwrap();
    };
    db::store_scores(&mut conn, &[incoming(71, T0)])
        .await
        .unwrap();
    let read = pending(&mut conn).await;
    assert_eq!((read.len(), read[0].score), (1, Some(71)));
    // The newer score lands between the read and the claim.
    db::store_scores(&mut conn, &[incoming(88, T0 + 1_000)])
        .await
        .unwrap();
    let marked = claim(&mut conn, read[0].revision).await;
    assert!(
        marked.is_empty(),
        "the older revision was claimed: {marked:?}"
    );
    let next = pending(&mut conn).await;
    assert_eq!(next.len(), 1, "the newer score is not waiting");
    assert_eq!(next[0].score, Some(88));
    assert!(next[0].revision > read[0].revision);

    // Claimed at the new revision, then the claim is cleared (a new holder of the
    // connection's lock took over): the old holder's late report of its write must neither
    // settle the record nor overwrite what the record says HubSpot holds.
    let marked = claim(&mut conn, next[0].revision).await;
    assert!(marked.contains(&42));
    db::reset_inflight(&mut conn, world.connection_id)
        .await
        .unwrap();
    let recorded = db::record_written(
        &mut conn,
        world.connection_id,
        TargetObject::Contacts,
        &[(42, next[0].revision, json!({"hubscore_health_score": "88"}))],
    )
    .await
    .unwrap();
    assert_eq!(recorded, 0, "a write no longer in flight was recorded");
    let still = pending(&mut conn).await;
    assert_eq!(still.len(), 1, "the record was settled by a stale report");
    assert_eq!(still[0].written, json!({}));

    // A newer score, claimed by the new holder: the old holder's late release or failure
    // report for its older claim must leave the new claim alone (else the record could go
    // out twice at once, the older request landing last).
    db::store_scores(&mut conn, &[incoming(93, T0 + 2_000)])
        .await
        .unwrap();
    let newest = pending(&mut conn).await;
    assert_eq!(newest[0].score, Some(93));
    let marked = claim(&mut conn, newest[0].revision).await;
    assert!(marked.contains(&42));
    let stale = next[0].revision;
    release(&mut conn, stale).await;
    fail(&mut conn, stale, "INTERNAL_ERROR: stale").await;
    assert!(
        pending(&mut conn).await.is_empty(),
        "a stale report took the newer claim out of flight"
    );
    release(&mut conn, newest[0].revision).await;
    let released = pending(&mut conn).await;
    assert_eq!(
        (released.len(), released[0].attempts),
        (1, 0),
        "the newer claim was not released, or a stale failure counted against it"
    );

    // A retryable refusal of the current claim: the record waits (2 s) before its next
    // try instead of going out again in the next batch, and counts the attempt.
    let current = released[0].revision;
    assert!(claim(&mut conn, current).await.contains(&42));
    fail(&mut conn, current, "INTERNAL_ERROR: try later").await;
    assert!(
        pending(&mut conn).await.is_empty(),
        "a retryable failure was offered again at once"
    );
    assert!(
        platform::testing::eventually(common::PATIENCE, || {
            let pool = pool.clone();
            async move {
                let mut conn = pool.get().await.unwrap();
                !pending(&mut conn).await.is_empty()
            }
        })
        .await,
        "the record was never retried"
    );
    let retried = pending(&mut conn).await;
    assert_eq!((retried[0].revision, retried[0].attempts), (current, 1));
}

/// A replica whose lock session ends (a database restart, a cut connection) while its pool
/// works on must stop writing before another replica can take the connection over; the
/// next holder then finishes the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flusher_that_lost_its_lock_stops_writing_and_the_next_holder_finishes() {
    use diesel::sql_types::{BigInt, Text};
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    #[derive(diesel::QueryableByName)]
    struct Key {
        #[diesel(sql_type = BigInt)]
        key: i64,
    }

    let world = World::new().await;
    world.seed_contacts(3_000).await;
    let mut settings = world.settings.clone();
    settings.writeback.max_in_flight = 1;
    let app = world.start_with(settings).await;
    world.connect(Vec::new()).await;
    world.wait_prepared(&app).await;
    // Slow answers: the 30 batches take several seconds, time enough to cut the lock midway.
    world
        .add_fault(
            json!({"path_prefix": "/crm/v3/objects/contacts/batch/update", "latency_ms": 200}),
        )
        .await;
    let scores: Vec<_> = (0..3_000)
        .map(|i| world.score(ObjectType::Contact, 1001 + i, Some(70), T0))
        .collect();
    world.publish_scores(&scores).await;
    world
        .wait_status(&app, "some written", |s| {
            s["written"].as_i64().unwrap() >= 100
        })
        .await;

    // The worker's lock session ends and the lock passes to the test, as if another replica
    // had taken the connection over.
    let mut conn = AsyncPgConnection::establish(&world.db.url).await.unwrap();
    let key: Key = diesel::sql_query("SELECT hashtextextended($1, 0) AS key")
        .bind::<Text, _>(format!("hubscore.writeback.{}", world.connection_id))
        .get_result(&mut conn)
        .await
        .unwrap();
    let waiter = platform::testing::take_over_advisory_lock(&world.db.url, key.key)
        .await
        .unwrap();

    // Requests already on the way may still land; after that nothing may be written while
    // another session holds the lock, though scores are still waiting.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let before = requests(&world.stats().await);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let after = requests(&world.stats().await);
    let status = world.status(&app).await;
    assert!(status["pending"].as_i64().unwrap() > 0, "{status:#}");
    assert_eq!(
        after - before,
        0,
        "a flusher that lost its lock kept writing ({} requests)",
        after - before
    );

    // The lock free again, the worker takes it back and finishes.
    drop(waiter);
    world
        .wait_status(&app, "drained", |s| {
            s["pending"] == 0 && s["written"].as_i64().unwrap() >= 3_000
        })
        .await;
    assert_scores(&world, 1001, 3_000, |_| "70".to_owned()).await;
    app.stop().await;
}

/// A token that can be swapped, as a reconnect would.
struct Swappable(Mutex<String>);

impl TokenSource for Swappable {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, HubSpotError>> {
        let token = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(AccessToken::new(token)) })
    }

    fn refresh<'a>(
        &'a self,
        _rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<AccessToken, HubSpotError>> {
        self.access_token()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_needing_reauthorization_pauses_and_keeps_its_pending_writes() {
    let world = World::new().await;
    let contact = world
        .create("contacts", json!({"email": "ed@northwind.example"}))
        .await;
    let tokens = Arc::new(Swappable(Mutex::new("pat-na1-revoked".to_owned())));
    let app = world
        .start_with_tokens(
            world.settings.clone(),
            writeback_worker::TokenSources::fixed(tokens.clone()),
        )
        .await;
    world.connect(Vec::new()).await;
    world
        .publish_scores(&[world.score(ObjectType::Contact, contact, Some(44), T0)])
        .await;
    let paused = world.wait_paused(&app, "reauth_required").await;
    assert_eq!(paused["pending"], 1, "{paused:#}");
    assert_eq!(paused["written"], 0);

    *tokens.0.lock().unwrap() = world.token.clone();
    world.connect(Vec::new()).await;
    world
        .wait_status(&app, "written after reconnect", |s| s["written"] == 1)
        .await;
    assert_eq!(
        world.properties("contacts", contact).await["hubscore_health_score"],
        "44"
    );
    app.stop().await;
}
