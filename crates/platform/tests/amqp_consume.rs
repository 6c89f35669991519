//! The consumer loop against the real RabbitMQ: acks, retries, dead letters, shutdown.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicNackOptions};
use platform::amqp::{
    Broker, DEAD_LETTER_QUEUE_HEADER, DEAD_LETTER_REASON_HEADER, Delivery, MessageMeta, Outcome,
    OutgoingMessage, Publisher, QueueSpec, consume, dead_letter_queue_name,
};
use platform::metrics::Metrics;
use platform::shutdown::Shutdown;
use platform::testing::{self, BrokerCleanup};
use tokio::sync::{Mutex, Notify};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

struct Fixture {
    broker: Broker,
    publisher: Publisher,
    queue: String,
    metrics: Metrics,
    shutdown: Shutdown,
    _cleanup: BrokerCleanup,
}

async fn fixture(name: &str) -> Fixture {
    fixture_with(name, testing::amqp_settings()).await
}

/// Test settings whose broker connection goes through a proxy the test can cut.
async fn through_proxy() -> (testing::TcpProxy, platform::amqp::AmqpSettings) {
    let proxy = testing::TcpProxy::start(
        std::net::ToSocketAddrs::to_socket_addrs("127.0.0.1:5672")
            .unwrap()
            .next()
            .unwrap(),
    )
    .await
    .unwrap();
    let mut settings = testing::amqp_settings();
    settings.url = format!("amqp://guest:guest@{}/%2f", proxy.address());
    (proxy, settings)
}

async fn fixture_with(name: &str, settings: platform::amqp::AmqpSettings) -> Fixture {
    let queue = testing::unique_name(name);
    let cleanup = BrokerCleanup::new(&settings, &[&queue]);
    let broker = Broker::start(settings, vec![QueueSpec::new(queue.as_str(), ["test.#"])]);
    assert!(broker.wait_connected(WAIT).await, "broker did not connect");
    Fixture {
        publisher: Publisher::new(broker.clone()),
        broker,
        queue,
        metrics: Metrics::new("test").unwrap(),
        shutdown: Shutdown::new(),
        _cleanup: cleanup,
    }
}

impl Fixture {
    async fn publish(&self, body: &[u8]) -> Uuid {
        let meta = MessageMeta::new("corr-test", Some(Uuid::new_v4()));
        let id = meta.message_id;
        let message = OutgoingMessage {
            routing_key: "test.thing".to_owned(),
            message_type: "hubscore.test.Thing".to_owned(),
            body: body.to_vec(),
            meta,
            created_at: chrono::Utc::now(),
        };
        self.publisher.publish(&message).await.unwrap();
        id
    }

    fn start<H: platform::amqp::Handler>(&self, handler: H) -> tokio::task::JoinHandle<()> {
        tokio::spawn(consume(
            self.broker.clone(),
            self.queue.clone(),
            handler,
            self.shutdown.clone(),
            self.metrics.clone(),
        ))
    }

    async fn stop(&self, consumer: tokio::task::JoinHandle<()>) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, consumer)
            .await
            .expect("consumer stops")
            .unwrap();
    }

    fn handled(&self, outcome: &str) -> u64 {
        let text = self.metrics.render();
        let needle = format!(
            r#"hubscore_messages_handled_total{{outcome="{outcome}",queue="{}",service="test"}} "#,
            self.queue
        );
        text.lines()
            .find_map(|line| line.strip_prefix(&needle))
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

/// Records every delivery a handler saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Delivery>>>);

impl Seen {
    async fn push(&self, delivery: Delivery) -> usize {
        let mut seen = self.0.lock().await;
        seen.push(delivery);
        seen.len()
    }
    async fn all(&self) -> Vec<Delivery> {
        self.0.lock().await.clone()
    }
}

#[tokio::test]
async fn a_handler_that_fails_retryably_gets_the_message_again_and_succeeds() {
    let f = fixture("test.retry").await;
    let id = f.publish(b"payload").await;
    let seen = Seen::default();
    let handler_seen = seen.clone();
    let consumer = f.start(move |delivery: Delivery| {
        let seen = handler_seen.clone();
        async move {
            match seen.push(delivery).await {
                1 | 2 => Outcome::Retry("the database is restarting".into()),
                _ => Outcome::Ack,
            }
        }
    });

    assert!(
        testing::eventually(WAIT, || async { f.handled("ack") == 1 }).await,
        "never acked"
    );
    f.stop(consumer).await;

    let seen = seen.all().await;
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|d| d.message_id == id && d.body == b"payload")
    );
    assert_eq!(
        seen.iter().map(|d| d.retries).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(
        seen.iter().all(|d| d.delivery_count == 0),
        "retries do not spend the delivery limit"
    );
    assert!(
        seen.iter()
            .all(|d| d.routing_key == "test.thing" && d.queue == f.queue),
        "the routing key survives the trip through the retry queue"
    );
    assert_eq!(seen[0].correlation_id, "corr-test");
    assert_eq!(f.handled("retry"), 2);
    assert_eq!(
        testing::ready_count(&f.broker, &f.queue).await.unwrap(),
        0,
        "acked, not requeued"
    );
    assert_eq!(
        testing::ready_count(&f.broker, &dead_letter_queue_name(&f.queue))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn an_outage_far_longer_than_the_delivery_limit_loses_and_dead_letters_nothing() {
    // Compressed: pauses of 10 to 50 ms and a delivery limit of 3. Every message fails 40
    // times (with the old requeue-and-count design, the 4th failure dead-lettered it).
    let mut settings = testing::amqp_settings();
    settings.retry_initial_backoff_ms = 10;
    settings.retry_max_backoff_ms = 50;
    let f = fixture_with("test.outage", settings).await;
    const MESSAGES: usize = 10;
    const FAILURES: u32 = 40;
    let mut ids = std::collections::BTreeSet::new();
    for n in 0..MESSAGES {
        ids.insert(f.publish(&[u8::try_from(n).unwrap()]).await);
    }
    let attempts: Arc<Mutex<std::collections::BTreeMap<Uuid, u32>>> = Arc::default();
    let acked: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let (handler_attempts, handler_acked) = (attempts.clone(), acked.clone());
    let consumer = f.start(move |delivery: Delivery| {
        let (attempts, acked) = (handler_attempts.clone(), handler_acked.clone());
        async move {
            let mut attempts = attempts.lock().await;
            let n = attempts.entry(delivery.message_id).or_default();
            *n += 1;
            // The dependency is down until every message has failed FAILURES times.
            let down = attempts.len() < MESSAGES || attempts.values().any(|&n| n <= FAILURES);
            if down {
                Outcome::Retry("the database is unreachable".into())
            } else {
                acked.lock().await.push(delivery.message_id);
                Outcome::Ack
            }
        }
    });

    assert!(
        testing::eventually(Duration::from_secs(60), || async {
            acked.lock().await.len() >= MESSAGES
        })
        .await,
        "not every message came through the outage: {:?}",
        attempts.lock().await
    );
    f.stop(consumer).await;

    let acked: std::collections::BTreeSet<Uuid> = acked.lock().await.iter().copied().collect();
    assert_eq!(
        acked, ids,
        "every message was handled once the dependency was back"
    );
    assert!(attempts.lock().await.values().all(|&n| n > FAILURES));
    assert_eq!(f.handled("dead_letter"), 0);
    assert_eq!(
        testing::ready_count(&f.broker, &dead_letter_queue_name(&f.queue))
            .await
            .unwrap(),
        0,
        "nothing was dead-lettered"
    );
    assert_eq!(testing::ready_count(&f.broker, &f.queue).await.unwrap(), 0);
}

#[tokio::test]
async fn a_message_still_failing_after_the_retry_time_is_dead_lettered_with_its_reason() {
    let mut settings = testing::amqp_settings();
    settings.retry_give_up_after_ms = 300;
    let f = fixture_with("test.giveup", settings).await;
    let id = f.publish(b"hopeless").await;
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let consumer = f.start(move |_delivery: Delivery| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Outcome::Retry("HubSpot answered 502".into()) }
    });

    let dlq = dead_letter_queue_name(&f.queue);
    let dead = testing::wait_for_message(&f.broker, &dlq, WAIT)
        .await
        .unwrap();
    f.stop(consumer).await;

    assert_eq!(
        dead.properties
            .message_id()
            .as_ref()
            .map(ToString::to_string),
        Some(id.to_string())
    );
    assert_eq!(dead.data, b"hopeless");
    let reason = testing::header(&dead, DEAD_LETTER_REASON_HEADER).expect("reason header");
    assert!(
        reason.contains("gave up") && reason.contains("HubSpot answered 502"),
        "{reason}"
    );
    assert_eq!(
        testing::header(&dead, DEAD_LETTER_QUEUE_HEADER),
        Some(f.queue.clone())
    );
    assert_eq!(
        testing::header(&dead, "x-hubscore-original-routing-key").as_deref(),
        Some("test.thing")
    );
    assert!(attempts.load(Ordering::SeqCst) > 1, "it was retried first");
    assert_eq!(testing::ready_count(&f.broker, &f.queue).await.unwrap(), 0);
}

#[tokio::test]
async fn a_handler_that_panics_on_every_delivery_is_dead_lettered_after_the_delivery_limit() {
    let f = fixture("test.panics").await;
    let limit = f.broker.settings().delivery_limit;
    f.publish(b"poison").await;
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let consumer = f.start(move |_delivery: Delivery| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { panic!("index out of bounds") }
    });

    let dead = testing::wait_for_message(&f.broker, &dead_letter_queue_name(&f.queue), WAIT)
        .await
        .unwrap();
    f.stop(consumer).await;

    assert_eq!(dead.data, b"poison");
    let reason = testing::header(&dead, DEAD_LETTER_REASON_HEADER).expect("reason header");
    assert!(reason.contains("panicked"), "{reason}");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        limit + 1,
        "one delivery plus `delivery_limit` redeliveries"
    );
    assert_eq!(f.handled("panic"), u64::from(limit + 1));
}

#[tokio::test]
async fn a_dead_letter_outcome_moves_the_message_to_the_dlq_at_once_with_its_reason() {
    let f = fixture("test.deadletter").await;
    let id = f.publish(b"not protobuf").await;
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let consumer = f.start(move |_delivery: Delivery| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Outcome::DeadLetter("body is not a valid Thing".into()) }
    });

    let dead = testing::wait_for_message(&f.broker, &dead_letter_queue_name(&f.queue), WAIT)
        .await
        .unwrap();
    f.stop(consumer).await;

    assert_eq!(
        testing::header(&dead, DEAD_LETTER_REASON_HEADER).as_deref(),
        Some("body is not a valid Thing")
    );
    assert_eq!(
        testing::header(&dead, "x-hubscore-original-routing-key").as_deref(),
        Some("test.thing")
    );
    assert_eq!(
        dead.properties
            .message_id()
            .as_ref()
            .map(ToString::to_string),
        Some(id.to_string())
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    assert_eq!(f.handled("dead_letter"), 1);
    assert_eq!(testing::ready_count(&f.broker, &f.queue).await.unwrap(), 0);
}

#[tokio::test]
async fn a_message_that_keeps_killing_its_consumer_is_dead_lettered_by_the_broker() {
    // No handler ever settles it: each consumer "dies" (the message is returned) before it
    // can ack, as a crashing process would. RabbitMQ's own delivery limit must catch it.
    let f = fixture("test.crashloop").await;
    let limit = f.broker.settings().delivery_limit;
    f.publish(b"crashes everyone").await;
    let channel = f.broker.channel().await.unwrap();
    for _ in 0..=limit {
        let got = channel
            .basic_get(f.queue.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap();
        let got = got.expect("still in the queue");
        got.delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }

    let dead = testing::wait_for_message(&f.broker, &dead_letter_queue_name(&f.queue), WAIT)
        .await
        .unwrap();
    assert_eq!(dead.data, b"crashes everyone");
    assert_eq!(
        testing::x_death_reason(&dead).as_deref(),
        Some("delivery_limit")
    );
    assert_eq!(testing::ready_count(&f.broker, &f.queue).await.unwrap(), 0);
}

#[tokio::test]
async fn a_message_without_a_uuid_message_id_is_dead_lettered_without_reaching_the_handler() {
    let f = fixture("test.noid").await;
    let channel = f.broker.channel().await.unwrap();
    channel
        .basic_publish(
            f.broker.settings().exchange.as_str().into(),
            "test.anonymous".into(),
            Default::default(),
            b"who am I",
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let consumer = f.start(move |_delivery: Delivery| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Outcome::Ack }
    });

    let dead = testing::wait_for_message(&f.broker, &dead_letter_queue_name(&f.queue), WAIT)
        .await
        .unwrap();
    f.stop(consumer).await;
    let reason = testing::header(&dead, DEAD_LETTER_REASON_HEADER).unwrap();
    assert!(reason.contains("message_id"), "{reason}");
    assert_eq!(attempts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn shutdown_lets_the_message_in_hand_finish_and_acks_it_and_takes_no_more() {
    let f = fixture("test.shutdown").await;
    let first = f.publish(b"first").await;
    f.publish(b"second").await;
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let seen = Seen::default();
    let (handler_started, handler_release, handler_seen) =
        (started.clone(), release.clone(), seen.clone());
    let consumer = f.start(move |delivery: Delivery| {
        let (started, release, seen) = (
            handler_started.clone(),
            handler_release.clone(),
            handler_seen.clone(),
        );
        async move {
            seen.push(delivery).await;
            started.notify_one();
            release.notified().await;
            Outcome::Ack
        }
    });

    tokio::time::timeout(WAIT, started.notified())
        .await
        .expect("handler started");
    f.shutdown.cancel();
    // Shutdown waits for the handler: the consumer is still running while it works.
    tokio::task::yield_now().await;
    assert!(
        !consumer.is_finished(),
        "stopped before the in-flight message finished"
    );
    release.notify_one();
    tokio::time::timeout(WAIT, consumer)
        .await
        .expect("consumer stops")
        .unwrap();

    let seen = seen.all().await;
    assert_eq!(seen.len(), 1, "no new delivery taken after shutdown");
    assert_eq!(seen[0].message_id, first);
    assert_eq!(f.handled("ack"), 1);
    // The finished message was acked; the untouched one is back in the queue for the next replica.
    let left = testing::drain(&f.broker, &f.queue).await.unwrap();
    assert_eq!(
        left.iter().map(|d| d.data.clone()).collect::<Vec<_>>(),
        vec![b"second".to_vec()]
    );
}

/// Sixteen messages in hand and more prefetched when the connection drops: the broker
/// returns them once. (With sixteen subscriptions instead of one, a returned message hopped
/// between subscriptions of the dead connection, each hop counting as a delivery, and the
/// broker dead-lettered healthy messages; with a delivery limit of 1 it did so every time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_returns_a_concurrent_consumers_messages_once_and_dead_letters_none() {
    let (proxy, mut settings) = through_proxy().await;
    settings.delivery_limit = 1;
    let f = fixture_with("test.cut", settings).await;
    const MESSAGES: usize = 100;
    let mut ids = std::collections::BTreeSet::new();
    for n in 0..MESSAGES {
        ids.insert(f.publish(&u32::try_from(n).unwrap().to_be_bytes()).await);
    }
    let started = Arc::new(AtomicU32::new(0));
    let acked: Arc<Mutex<std::collections::BTreeSet<Uuid>>> = Arc::default();
    let (handler_started, handler_acked) = (started.clone(), acked.clone());
    let consumer = tokio::spawn(platform::amqp::consume_concurrently(
        f.broker.clone(),
        f.queue.clone(),
        move |delivery: Delivery| {
            let (started, acked) = (handler_started.clone(), handler_acked.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                // Slow work: the messages stay in hand while the connection drops.
                tokio::time::sleep(Duration::from_millis(500)).await;
                acked.lock().await.insert(delivery.message_id);
                Outcome::Ack
            }
        },
        16,
        f.shutdown.clone(),
        f.metrics.clone(),
    ));
    assert!(
        testing::eventually(WAIT, || async { started.load(Ordering::SeqCst) >= 16 }).await,
        "the consumer never had sixteen messages in hand"
    );
    proxy.refuse();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.accept();

    assert!(
        testing::eventually(Duration::from_secs(30), || async {
            acked.lock().await.len() >= MESSAGES
        })
        .await,
        "only {} of {MESSAGES} messages were handled after the connection came back",
        acked.lock().await.len()
    );
    f.stop(consumer).await;
    assert_eq!(*acked.lock().await, ids, "every message was handled");
    assert_eq!(
        testing::ready_count(&f.broker, &dead_letter_queue_name(&f.queue))
            .await
            .unwrap(),
        0,
        "a message was dead-lettered for a lost connection"
    );
}

/// A message in hand whose handler never finishes (or whose ack on the dead channel never
/// completes) when the connection drops must not keep the consumer from resubscribing: it
/// resubscribes without it, and the message comes back with the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_never_finishes_does_not_keep_the_consumer_from_resubscribing() {
    let (proxy, settings) = through_proxy().await;
    let f = fixture_with("test.stuck", settings).await;
    const MESSAGES: u32 = 200;
    let mut ids = std::collections::BTreeSet::new();
    for n in 0..MESSAGES {
        ids.insert(f.publish(&n.to_be_bytes()).await);
    }
    let handled: Arc<Mutex<std::collections::BTreeSet<Uuid>>> = Arc::default();
    let stuck_once = Arc::new(AtomicU32::new(0));
    let (seen, stuck) = (handled.clone(), stuck_once.clone());
    let consumer = tokio::spawn(platform::amqp::consume_concurrently(
        f.broker.clone(),
        f.queue.clone(),
        move |delivery: Delivery| {
            let (handled, stuck) = (seen.clone(), stuck.clone());
            async move {
                // The first delivery of message 0 hangs for good.
                if delivery.body == 0u32.to_be_bytes() && stuck.fetch_add(1, Ordering::SeqCst) == 0
                {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                handled.lock().await.insert(delivery.message_id);
                Outcome::Ack
            }
        },
        16,
        f.shutdown.clone(),
        f.metrics.clone(),
    ));
    assert!(
        testing::eventually(WAIT, || async {
            stuck_once.load(Ordering::SeqCst) == 1 && handled.lock().await.len() >= 20
        })
        .await,
        "the consumer never got going"
    );
    proxy.refuse();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.accept();

    assert!(
        testing::eventually(Duration::from_secs(40), || async {
            handled.lock().await.len() >= ids.len()
        })
        .await,
        "only {} of {MESSAGES} messages were handled after the connection came back",
        handled.lock().await.len()
    );
    assert_eq!(
        stuck_once.load(Ordering::SeqCst),
        2,
        "the stuck message was not delivered again"
    );
    f.stop(consumer).await;
    assert_eq!(*handled.lock().await, ids, "every message was handled");
}
