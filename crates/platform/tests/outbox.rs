//! The transactional outbox against the real PostgreSQL and RabbitMQ.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use diesel::result::Error as DieselError;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use platform::amqp::{AmqpSettings, Broker, MessageMeta, OutgoingMessage, QueueSpec};
use platform::db::{self, Pool};
use platform::outbox::{self, Relay, RelaySettings};
use platform::shutdown::Shutdown;
use platform::testing::{self, BrokerCleanup, TestDatabase};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);
const SCHEMA: &str = "svc";

fn message(n: u8) -> OutgoingMessage {
    OutgoingMessage {
        routing_key: "test.outbox".to_owned(),
        message_type: "hubscore.test.Thing".to_owned(),
        body: vec![n],
        meta: MessageMeta::new(format!("corr-{n}"), None),
        created_at: chrono::Utc::now(),
    }
}

async fn migrated(db: &TestDatabase) -> Pool {
    db::run_migrations(&db.url, SCHEMA, [outbox::MIGRATIONS])
        .await
        .unwrap();
    let pool = db::connect_pool(&db.settings(), SCHEMA).unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.batch_execute("CREATE TABLE things (id INT PRIMARY KEY)")
        .await
        .unwrap();
    pool
}

/// What a test transaction writes to the outbox.
enum Enqueue<'a> {
    One(&'a OutgoingMessage),
    Bundle(&'a [OutgoingMessage]),
}

/// Writes a business row and its messages in one transaction, committed or rolled back.
async fn write(pool: &Pool, id: i32, what: Enqueue<'_>, commit: bool) {
    let mut conn = pool.get().await.unwrap();
    let result = (*conn)
        .transaction::<(), DieselError, _>(async |conn: &mut AsyncPgConnection| {
            conn.batch_execute(&format!("INSERT INTO things VALUES ({id})"))
                .await?;
            match what {
                Enqueue::One(message) => outbox::enqueue(conn, message).await?,
                Enqueue::Bundle(messages) => outbox::enqueue_bundle(conn, messages).await?,
            }
            if commit {
                Ok(())
            } else {
                Err(DieselError::RollbackTransaction)
            }
        })
        .await;
    assert_eq!(result.is_ok(), commit);
}

/// Writes a business row and its message in one transaction, committed or rolled back.
async fn write_thing(pool: &Pool, id: i32, message: &OutgoingMessage, commit: bool) {
    write(pool, id, Enqueue::One(message), commit).await;
}

async fn connected_broker(queue: &str) -> (Broker, BrokerCleanup) {
    let settings = testing::amqp_settings();
    let cleanup = BrokerCleanup::new(&settings, &[queue]);
    let broker = Broker::start(settings, vec![QueueSpec::new(queue, ["test.#"])]);
    assert!(broker.wait_connected(WAIT).await, "broker did not connect");
    (broker, cleanup)
}

fn fast() -> RelaySettings {
    RelaySettings {
        poll_interval_ms: 50,
        // A crashed relay's claim runs out quickly, so its replacement takes over in time.
        claim_ttl_ms: 300,
        ..RelaySettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_to_an_empty_database_and_again_as_a_no_op() {
    let db = TestDatabase::create().await.unwrap();
    let first = db::run_migrations(&db.url, SCHEMA, [outbox::MIGRATIONS])
        .await
        .unwrap();
    assert_eq!(first.len(), 5, "{first:?}");
    let again = db::run_migrations(&db.url, SCHEMA, [outbox::MIGRATIONS])
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");

    let pool = db::connect_pool(&db.settings(), SCHEMA).unwrap();
    let mut conn = pool.get().await.unwrap();
    assert_eq!(
        outbox::pending_count(&mut conn).await.unwrap(),
        0,
        "the outbox table exists in the schema"
    );
    assert!(
        outbox::first_delivery(&mut conn, "svc.things", Uuid::now_v7())
            .await
            .unwrap(),
        "so does processed_messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_message_arrives_across_a_relay_crash_and_a_rolled_back_one_never_does() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let queue = testing::unique_name("test.outbox");
    let (broker, _cleanup) = connected_broker(&queue).await;

    let committed: Vec<OutgoingMessage> = (0..5).map(message).collect();
    for (n, m) in committed.iter().enumerate() {
        write_thing(&pool, i32::try_from(n).unwrap(), m, true).await;
    }
    let rolled_back = message(99);
    write_thing(&pool, 99, &rolled_back, false).await;

    // The first relay dies after the broker confirmed, before it marked anything sent.
    let crashing = Relay::new(pool.clone(), broker.clone(), fast()).crash_after_publish();
    tokio::time::timeout(WAIT, crashing.run(Shutdown::new()))
        .await
        .expect("the relay crashed");
    let mut conn = pool.get().await.unwrap();
    assert_eq!(
        outbox::pending_count(&mut conn).await.unwrap(),
        5,
        "nothing was marked sent"
    );

    // Once its claim runs out, its replacement publishes the same entries again, then marks
    // them.
    // One lane, so that the order below is defined: two lanes claiming side by side can
    // split the five entries between them and publish them interleaved.
    let shutdown = Shutdown::new();
    let one_lane = RelaySettings {
        concurrent_batches: 1,
        ..fast()
    };
    let relay =
        tokio::spawn(Relay::new(pool.clone(), broker.clone(), one_lane).run(shutdown.clone()));
    let drained = testing::eventually(WAIT, || async {
        outbox::pending_count(&mut pool.get().await.unwrap())
            .await
            .unwrap()
            == 0
    })
    .await;
    assert!(drained, "the outbox was never drained");
    shutdown.cancel();
    relay.await.unwrap();

    let delivered = testing::drain(&broker, &queue).await.unwrap();
    let mut times_seen: BTreeMap<String, usize> = BTreeMap::new();
    for d in &delivered {
        let id = d.properties.message_id().as_ref().unwrap().to_string();
        *times_seen.entry(id).or_default() += 1;
    }
    let expected: BTreeSet<String> = committed
        .iter()
        .map(|m| m.meta.message_id.to_string())
        .collect();
    assert_eq!(
        times_seen.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "every committed message, nothing else"
    );
    assert!(times_seen.values().all(|&n| n >= 1));
    assert_eq!(
        delivered.len(),
        10,
        "published once by each relay, with the same message ids"
    );
    assert!(!times_seen.contains_key(&rolled_back.meta.message_id.to_string()));
    // Order within one lane of one relay is the order the rows were written.
    let bodies: Vec<u8> = delivered[5..].iter().map(|d| d.data[0]).collect();
    assert_eq!(bodies, vec![0, 1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_relay_publishes_without_waiting_for_its_poll() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let queue = testing::unique_name("test.wake");
    let (broker, _cleanup) = connected_broker(&queue).await;
    // A poll far longer than the test's patience: only a wake-up can deliver in time.
    let relay = Relay::new(
        pool.clone(),
        broker.clone(),
        RelaySettings {
            poll_interval_ms: 600_000,
            ..fast()
        },
    );
    let waker = relay.waker();
    let shutdown = Shutdown::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    // Let the relay finish its first (empty) scan and go to sleep.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let m = message(7);
    write_thing(&pool, 7, &m, true).await;
    waker.wake();

    let got = testing::wait_for_message(&broker, &queue, WAIT)
        .await
        .unwrap();
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(
        got.properties.message_id().as_ref().unwrap().to_string(),
        m.meta.message_id.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_entries_and_bundles_are_deleted_after_the_retention_and_unsent_ones_never() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let queue = testing::unique_name("test.retention");
    let (broker, _cleanup) = connected_broker(&queue).await;
    write_thing(&pool, 1, &message(1), true).await;
    write_bundled(&pool, 2, &[bundled(1), bundled(2)], true).await;
    let relay = Relay::new(pool.clone(), broker.clone(), fast());
    assert_eq!(relay.relay_pending().await.unwrap(), 3);
    write_thing(&pool, 3, &message(3), true).await;
    write_bundled(&pool, 4, &[bundled(3)], true).await;

    let mut conn = pool.get().await.unwrap();
    assert_eq!(
        outbox::delete_sent(&mut conn, Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "too recent"
    );
    assert_eq!(
        outbox::delete_sent(&mut conn, Duration::ZERO)
            .await
            .unwrap(),
        2,
        "the sent entry and the sent bundle"
    );
    assert_eq!(
        outbox::pending_count(&mut conn).await.unwrap(),
        2,
        "the unsent entry and bundle stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_applies_a_message_id_once_unless_its_transaction_rolled_back() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let mut conn = pool.get().await.unwrap();
    let id = Uuid::now_v7();

    let rolled_back = (*conn)
        .transaction::<bool, DieselError, _>(async |conn: &mut AsyncPgConnection| {
            assert!(outbox::first_delivery(conn, "svc.things", id).await?);
            Err(DieselError::RollbackTransaction)
        })
        .await;
    assert!(rolled_back.is_err());

    let first = (*conn)
        .transaction::<bool, DieselError, _>(async |conn: &mut AsyncPgConnection| {
            outbox::first_delivery(conn, "svc.things", id).await
        })
        .await
        .unwrap();
    let duplicate = (*conn)
        .transaction::<bool, DieselError, _>(async |conn: &mut AsyncPgConnection| {
            outbox::first_delivery(conn, "svc.things", id).await
        })
        .await
        .unwrap();
    assert!(first, "the rolled-back attempt did not count");
    assert!(!duplicate, "the redelivery is recognised");
}

async fn pending(pool: &Pool) -> i64 {
    outbox::pending_count(&mut pool.get().await.unwrap())
        .await
        .unwrap()
}

/// Runs two relays side by side (claiming `batch_size` entries at a time), each with its
/// own broker connection as two processes would have, until the outbox is drained; asserts
/// that exactly the `written` message ids arrived on `queue`, each once.
async fn two_relays_publish_each_once(
    pool: &Pool,
    broker: &Broker,
    queue: &str,
    batch_size: i64,
    written: &BTreeSet<String>,
) {
    let settings = RelaySettings {
        batch_size,
        claim_ttl_ms: 60_000,
        ..fast()
    };
    let other_broker = Broker::start(
        broker.settings().clone(),
        vec![QueueSpec::new(queue, ["test.#"])],
    );
    assert!(
        other_broker.wait_connected(WAIT).await,
        "broker did not connect"
    );
    let shutdown = Shutdown::new();
    let relays = [
        tokio::spawn(
            Relay::new(pool.clone(), broker.clone(), settings.clone()).run(shutdown.clone()),
        ),
        tokio::spawn(Relay::new(pool.clone(), other_broker, settings).run(shutdown.clone())),
    ];
    assert!(
        testing::eventually(Duration::from_secs(60), || async {
            pending(pool).await == 0
        })
        .await,
        "the outbox was never drained"
    );
    shutdown.cancel();
    for relay in relays {
        relay.await.unwrap();
    }
    let ids: Vec<String> = testing::drain(broker, queue)
        .await
        .unwrap()
        .iter()
        .map(|d| d.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), written.len(), "nothing was published twice");
    assert_eq!(&ids.into_iter().collect::<BTreeSet<_>>(), written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_side_by_side_publish_every_entry_exactly_once() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let queue = testing::unique_name("test.replicas");
    let (broker, _cleanup) = connected_broker(&queue).await;
    let written: BTreeSet<String> = {
        let mut conn = pool.get().await.unwrap();
        let mut ids = BTreeSet::new();
        for n in 0..400_u32 {
            let m = message(u8::try_from(n % 250).unwrap());
            outbox::enqueue(&mut conn, &m).await.unwrap();
            ids.insert(m.meta.message_id.to_string());
        }
        ids
    };
    // Small batches, so the two replicas' claims interleave many times.
    two_relays_publish_each_once(&pool, &broker, &queue, 10, &written).await;
}

/// Broker settings that reach the test broker through a TCP proxy the test can stall.
async fn through_a_proxy() -> (testing::TcpProxy, AmqpSettings) {
    let upstream: std::net::SocketAddr = testing::amqp_url()
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let proxy = testing::TcpProxy::start(upstream).await.unwrap();
    let mut settings = testing::amqp_settings();
    settings.url = format!("amqp://guest:guest@{}/%2f", proxy.address());
    (proxy, settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_waiting_on_a_hung_broker_holds_no_row_lock_and_stops_promptly() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let queue = testing::unique_name("test.hung");
    let (proxy, settings) = through_a_proxy().await;
    let _cleanup = BrokerCleanup::new(&settings, &[&queue]);
    let broker = Broker::start(settings, vec![QueueSpec::new(queue.as_str(), ["test.#"])]);
    assert!(broker.wait_connected(WAIT).await, "broker did not connect");
    for n in 0..3 {
        write_thing(&pool, n, &message(u8::try_from(n).unwrap()), true).await;
    }

    // The broker takes the messages but never confirms them (nor answers anything else).
    proxy.stall();
    let relay = Relay::new(
        pool.clone(),
        broker.clone(),
        RelaySettings {
            confirm_timeout_ms: 120_000,
            claim_ttl_ms: 240_000,
            ..fast()
        },
    );
    let shutdown = Shutdown::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    let claimed = testing::eventually(WAIT, || async {
        let mut conn = pool.get().await.unwrap();
        diesel::sql_query("SELECT 1 FROM outbox WHERE claimed_until IS NOT NULL")
            .execute(&mut conn)
            .await
            .unwrap()
            == 3
    })
    .await;
    assert!(claimed, "the relay never claimed the entries");

    // While it waits for the confirms, the service can still lock and change those rows.
    let mut conn = pool.get().await.unwrap();
    (*conn)
        .transaction::<(), DieselError, _>(async |conn: &mut AsyncPgConnection| {
            conn.batch_execute("SELECT id FROM outbox FOR UPDATE NOWAIT")
                .await
        })
        .await
        .expect("an outbox row is locked while the relay waits on the broker");

    // SIGTERM: the relay gives up the batch after a short grace instead of waiting out
    // the confirm deadline.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the relay kept waiting for confirms after shutdown")
        .unwrap();
    assert_eq!(
        pending(&pool).await,
        3,
        "nothing was marked sent unconfirmed"
    );
    proxy.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_queues_of_one_service_each_apply_a_message_once() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let mut conn = pool.get().await.unwrap();
    let id = Uuid::now_v7();
    assert!(
        outbox::first_delivery(&mut conn, "svc.scores", id)
            .await
            .unwrap()
    );
    assert!(
        outbox::first_delivery(&mut conn, "svc.alerts", id)
            .await
            .unwrap(),
        "the second queue applies the message too"
    );
    assert!(
        !outbox::first_delivery(&mut conn, "svc.scores", id)
            .await
            .unwrap()
    );
    assert!(
        !outbox::first_delivery(&mut conn, "svc.alerts", id)
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_keeps_deduping_after_the_migration_and_its_records_count() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let mut conn = pool.get().await.unwrap();
    let id = Uuid::now_v7();
    // The previous release's statement, unchanged.
    let old_release = format!(
        "INSERT INTO processed_messages (message_id) VALUES ('{id}') ON CONFLICT DO NOTHING"
    );
    conn.batch_execute(&old_release).await.unwrap();
    conn.batch_execute(&old_release).await.unwrap();
    let rows = diesel::sql_query("SELECT 1 FROM processed_messages")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the old release still recognises its duplicates");
    assert!(
        !outbox::first_delivery(&mut conn, "svc.things", id)
            .await
            .unwrap(),
        "a message the old release applied is not applied again by the new one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_migrations_revert_cleanly_and_apply_again() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let mut conn = pool.get().await.unwrap();
    let id = Uuid::now_v7();
    assert!(
        outbox::first_delivery(&mut conn, "svc.a", id)
            .await
            .unwrap()
    );
    assert!(
        outbox::first_delivery(&mut conn, "svc.b", id)
            .await
            .unwrap()
    );
    write_thing(&pool, 1, &message(1), true).await;

    conn.batch_execute(include_str!(
        "../migrations/outbox/2000-01-01-000005_outbox_body_lz4/down.sql"
    ))
    .await
    .unwrap();
    conn.batch_execute(include_str!(
        "../migrations/outbox/2000-01-01-000004_outbox_bundles/down.sql"
    ))
    .await
    .unwrap();
    conn.batch_execute(include_str!(
        "../migrations/outbox/2000-01-01-000003_outbox_claims/down.sql"
    ))
    .await
    .unwrap();
    conn.batch_execute(include_str!(
        "../migrations/outbox/2000-01-01-000002_processed_messages_per_queue/down.sql"
    ))
    .await
    .unwrap();
    // The previous release's schema: one row per message id, the entry still pending.
    let rows = diesel::sql_query("SELECT message_id FROM processed_messages")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    conn.batch_execute(include_str!(
        "../migrations/outbox/2000-01-01-000002_processed_messages_per_queue/up.sql"
    ))
    .await
    .unwrap();
    conn.batch_execute(include_str!(
        "../migrations/outbox/2000-01-01-000003_outbox_claims/up.sql"
    ))
    .await
    .unwrap();
    conn.batch_execute(include_str!(
        "../migrations/outbox/2000-01-01-000004_outbox_bundles/up.sql"
    ))
    .await
    .unwrap();
    conn.batch_execute(include_str!(
        "../migrations/outbox/2000-01-01-000005_outbox_body_lz4/up.sql"
    ))
    .await
    .unwrap();
    assert_eq!(outbox::pending_count(&mut conn).await.unwrap(), 1);
    assert!(
        !outbox::first_delivery(&mut conn, "svc.a", id)
            .await
            .unwrap()
    );
}

/// A message of a bundle: its own routing key (two kinds alternate) and a two-byte body.
fn bundled(n: u16) -> OutgoingMessage {
    OutgoingMessage {
        routing_key: if n.is_multiple_of(2) {
            "test.even"
        } else {
            "test.odd"
        }
        .to_owned(),
        message_type: format!("hubscore.test.Kind{}", n % 2),
        body: n.to_be_bytes().to_vec(),
        meta: MessageMeta::new(format!("corr-{n}"), n.is_multiple_of(3).then(Uuid::now_v7)),
        created_at: chrono::Utc::now(),
    }
}

/// Writes a business row and `messages` as bundles in one transaction.
async fn write_bundled(pool: &Pool, id: i32, messages: &[OutgoingMessage], commit: bool) {
    write(pool, id, Enqueue::Bundle(messages), commit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_of_a_bundle_arrives_as_if_enqueued_alone_and_a_rolled_back_bundle_never() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let queue = testing::unique_name("test.bundle");
    let (broker, _cleanup) = connected_broker(&queue).await;
    let committed: Vec<OutgoingMessage> = (0..6).map(bundled).collect();
    write_bundled(&pool, 1, &committed, true).await;
    write_bundled(&pool, 2, &[bundled(100), bundled(101)], false).await;
    assert_eq!(pending(&pool).await, 6, "a bundle counts its messages");

    let one_lane = RelaySettings {
        concurrent_batches: 1,
        ..fast()
    };
    let relay = Relay::new(pool.clone(), broker.clone(), one_lane);
    assert_eq!(relay.relay_pending().await.unwrap(), 6);
    assert_eq!(pending(&pool).await, 0);
    assert_eq!(relay.relay_pending().await.unwrap(), 0, "sent once");

    let delivered = testing::drain(&broker, &queue).await.unwrap();
    assert_eq!(
        delivered.len(),
        6,
        "one message each, nothing of the rolled-back bundle"
    );
    for (d, m) in delivered.iter().zip(&committed) {
        assert_eq!(
            d.properties.message_id().as_ref().unwrap().to_string(),
            m.meta.message_id.to_string()
        );
        assert_eq!(d.routing_key.as_str(), m.routing_key);
        assert_eq!(
            d.properties.kind().as_ref().unwrap().to_string(),
            m.message_type
        );
        assert_eq!(
            d.properties.correlation_id().as_ref().unwrap().to_string(),
            m.meta.correlation_id
        );
        assert_eq!(d.data, m.body, "in the order written");
    }
}

/// Bodies of hundreds of kilobytes (batches of score changes), alone or in a bundle, are
/// stored compressed with lz4 (pglz was ten times slower, and bundles went uncompressed)
/// and arrive byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_stored_with_lz4_and_arrive_byte_for_byte() {
    #[derive(diesel::QueryableByName)]
    struct Method {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        method: Option<String>,
    }
    async fn method(pool: &Pool, query: &str) -> Option<String> {
        let stored: Method = diesel::sql_query(query)
            .get_result(&mut pool.get().await.unwrap())
            .await
            .unwrap();
        stored.method
    }
    let large = |n: u8| {
        let mut message = message(n);
        message.body = (0..20_000u32)
            .flat_map(|i| {
                format!("customer {n}/{i} engagement_recency {} days;", i % 90).into_bytes()
            })
            .collect();
        assert!(message.body.len() > 500_000);
        message
    };
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let queue = testing::unique_name("test.large-body");
    let (broker, _cleanup) = connected_broker(&queue).await;
    let alone = large(1);
    write_thing(&pool, 1, &alone, true).await;
    let bundle = [large(2), large(3)];
    write_bundled(&pool, 2, &bundle, true).await;
    assert_eq!(
        method(
            &pool,
            "SELECT pg_column_compression(body) AS method FROM outbox"
        )
        .await,
        Some("lz4".to_owned())
    );
    assert_eq!(
        method(
            &pool,
            "SELECT pg_column_compression(bodies) AS method FROM outbox_bundles"
        )
        .await,
        Some("lz4".to_owned())
    );

    let relay = Relay::new(pool.clone(), broker.clone(), fast());
    assert_eq!(relay.relay_pending().await.unwrap(), 3);
    let mut delivered: Vec<Vec<u8>> = testing::drain(&broker, &queue)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.data)
        .collect();
    let mut sent: Vec<Vec<u8>> = [alone, large(2), large(3)]
        .into_iter()
        .map(|m| m.body)
        .collect();
    delivered.sort();
    sent.sort();
    assert!(delivered == sent, "a body changed on the way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_whose_relay_died_after_publishing_is_published_again_whole() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let queue = testing::unique_name("test.bundle-crash");
    let (broker, _cleanup) = connected_broker(&queue).await;
    let messages: Vec<OutgoingMessage> = (0..4).map(bundled).collect();
    write_bundled(&pool, 1, &messages, true).await;

    let crashing = Relay::new(pool.clone(), broker.clone(), fast()).crash_after_publish();
    tokio::time::timeout(WAIT, crashing.run(Shutdown::new()))
        .await
        .expect("the relay crashed");
    assert_eq!(pending(&pool).await, 4, "nothing was marked sent");

    let shutdown = Shutdown::new();
    let relay =
        tokio::spawn(Relay::new(pool.clone(), broker.clone(), fast()).run(shutdown.clone()));
    assert!(
        testing::eventually(WAIT, || async { pending(&pool).await == 0 }).await,
        "the bundle was never published again"
    );
    shutdown.cancel();
    relay.await.unwrap();
    let delivered = testing::drain(&broker, &queue).await.unwrap();
    let mut times_seen: BTreeMap<String, usize> = BTreeMap::new();
    for d in &delivered {
        *times_seen
            .entry(d.properties.message_id().as_ref().unwrap().to_string())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = messages
        .iter()
        .map(|m| (m.meta.message_id.to_string(), 2))
        .collect();
    assert_eq!(
        times_seen, expected,
        "each by both relays, with the same id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_publish_every_bundled_and_single_entry_exactly_once() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let queue = testing::unique_name("test.bundle-replicas");
    let (broker, _cleanup) = connected_broker(&queue).await;
    let mut written = BTreeSet::new();
    // Bundles larger than one row holds, and single entries between them.
    let count = u16::try_from(outbox::BUNDLE_MAX).unwrap() + 1;
    for round in 0..2_i32 {
        let messages: Vec<OutgoingMessage> = (0..count).map(bundled).collect();
        written.extend(messages.iter().map(|m| m.meta.message_id.to_string()));
        write_bundled(&pool, round, &messages, true).await;
        let single = message(u8::try_from(round).unwrap());
        written.insert(single.meta.message_id.to_string());
        write_thing(&pool, 100 + round, &single, true).await;
    }
    let mut conn = pool.get().await.unwrap();
    let bundles = diesel::sql_query("SELECT id FROM outbox_bundles")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(bundles, 4, "each write split in two bundles");
    two_relays_publish_each_once(&pool, &broker, &queue, 1, &written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_not_confirmed_in_time_is_released_at_once_and_published_again_whole() {
    let db = TestDatabase::create().await.unwrap();
    let pool = migrated(&db).await;
    let queue = testing::unique_name("test.bundle-unconfirmed");
    let (proxy, settings) = through_a_proxy().await;
    let _cleanup = BrokerCleanup::new(&settings, &[&queue]);
    let stalling = Broker::start(
        settings.clone(),
        vec![QueueSpec::new(queue.as_str(), ["test.#"])],
    );
    assert!(
        stalling.wait_connected(WAIT).await,
        "broker did not connect"
    );
    let messages: Vec<OutgoingMessage> = (0..5).map(bundled).collect();
    write_bundled(&pool, 1, &messages, true).await;

    // The broker takes the messages but never confirms them.
    proxy.stall();
    let relay = Relay::new(
        pool.clone(),
        stalling.clone(),
        RelaySettings {
            confirm_timeout_ms: 500,
            claim_ttl_ms: 600_000,
            ..fast()
        },
    );
    // Within its deadline, even though the stalled broker never opened a channel either.
    let failed = tokio::time::timeout(Duration::from_secs(5), relay.relay_bundle())
        .await
        .expect("the relay waited past its confirm deadline");
    assert!(failed.is_err(), "an unconfirmed bundle is a failure");
    assert_eq!(pending(&pool).await, 5, "nothing was marked sent");
    let mut conn = pool.get().await.unwrap();
    let released = diesel::sql_query(
        "SELECT 1 FROM outbox_bundles WHERE sent_at IS NULL AND claimed_until IS NULL",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        released, 1,
        "released now, not when its long claim runs out"
    );

    // Another relay, on a working connection to the same broker, publishes it whole.
    proxy.resume();
    stalling.close();
    let working = Broker::start(
        AmqpSettings {
            url: testing::amqp_url(),
            ..settings
        },
        vec![QueueSpec::new(queue.as_str(), ["test.#"])],
    );
    assert!(working.wait_connected(WAIT).await, "broker did not connect");
    let again = Relay::new(pool.clone(), working.clone(), fast());
    assert_eq!(again.relay_bundle().await.unwrap(), 5);
    assert_eq!(pending(&pool).await, 0);
    let arrived: BTreeSet<String> = testing::drain(&working, &queue)
        .await
        .unwrap()
        .iter()
        .map(|d| d.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = messages
        .iter()
        .map(|m| m.meta.message_id.to_string())
        .collect();
    assert_eq!(arrived, expected, "every message, under its own id");
}
