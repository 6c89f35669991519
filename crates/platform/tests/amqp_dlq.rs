//! `dlq list` and `dlq replay` against the real RabbitMQ, through the runner's `run_dlq`.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicNackOptions, QueueDeleteOptions};
use platform::amqp::{
    Broker, Delivery, MessageMeta, Outcome, OutgoingMessage, Publisher, QueueSpec, consume,
    dead_letter_queue_name,
};
use platform::cli::{DlqArgs, DlqCommand};
use platform::metrics::Metrics;
use platform::service::run_dlq;
use platform::shutdown::Shutdown;
use platform::testing::{self, BrokerCleanup};
use tokio::sync::Mutex;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

struct Fixture {
    broker: Broker,
    publisher: Publisher,
    queue: String,
    _cleanup: BrokerCleanup,
}

async fn fixture(name: &str) -> Fixture {
    let settings = testing::amqp_settings();
    let queue = testing::unique_name(name);
    let cleanup = BrokerCleanup::new(&settings, &[&queue]);
    let broker = Broker::start(settings, vec![QueueSpec::new(queue.as_str(), ["test.#"])]);
    assert!(broker.wait_connected(WAIT).await, "broker did not connect");
    Fixture {
        publisher: Publisher::new(broker.clone()),
        broker,
        queue,
        _cleanup: cleanup,
    }
}

impl Fixture {
    async fn publish(&self, routing_key: &str) -> Uuid {
        let meta = MessageMeta::new("corr-dlq", Some(Uuid::new_v4()));
        let id = meta.message_id;
        let message = OutgoingMessage {
            routing_key: routing_key.to_owned(),
            message_type: "hubscore.test.Thing".to_owned(),
            body: id.as_bytes().to_vec(),
            meta,
            created_at: chrono::Utc::now(),
        };
        self.publisher.publish(&message).await.unwrap();
        id
    }

    async fn dlq_count(&self) -> u32 {
        testing::ready_count(&self.broker, &dead_letter_queue_name(&self.queue))
            .await
            .unwrap()
    }

    /// Runs a `dlq` command the way the service binary does; returns its result and output.
    async fn dlq(&self, command: DlqCommand, queues: &[&str]) -> (anyhow::Result<()>, String) {
        let mut out = Vec::new();
        let result = run_dlq(&command, self.broker.settings(), queues, &mut out).await;
        (result, String::from_utf8(out).unwrap())
    }
}

fn all() -> DlqArgs {
    DlqArgs {
        queue: None,
        limit: None,
    }
}

/// A handler whose dependency is broken (every message is dead-lettered) until repaired.
#[derive(Clone, Default)]
struct Flaky {
    broken: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Delivery>>>,
}

impl Flaky {
    fn start(&self, f: &Fixture, shutdown: &Shutdown) -> tokio::task::JoinHandle<()> {
        let handler = self.clone();
        tokio::spawn(consume(
            f.broker.clone(),
            f.queue.clone(),
            move |delivery: Delivery| {
                let handler = handler.clone();
                async move {
                    if handler.broken.load(Ordering::SeqCst) {
                        Outcome::DeadLetter("the scoring config is invalid".into())
                    } else {
                        handler.acked.lock().await.push(delivery);
                        Outcome::Ack
                    }
                }
            },
            shutdown.clone(),
            Metrics::new("test").unwrap(),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_replayed_consumed_again_and_the_dlq_is_left_empty() {
    let f = fixture("test.replay").await;
    let limit = f.broker.settings().delivery_limit;

    // One message kills every consumer that takes it: the broker dead-letters it itself.
    let crashed = f.publish("test.crash").await;
    let channel = f.broker.channel().await.unwrap();
    for _ in 0..=limit {
        let got = channel
            .basic_get(f.queue.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("still in the queue");
        got.delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // Two more are dead-lettered by a handler whose config is broken.
    let flaky = Flaky::default();
    flaky.broken.store(true, Ordering::SeqCst);
    let shutdown = Shutdown::new();
    let consumer = flaky.start(&f, &shutdown);
    let rejected = [f.publish("test.one").await, f.publish("test.two").await];
    assert!(
        testing::eventually(WAIT, || async { f.dlq_count().await == 3 }).await,
        "the three messages never reached the DLQ"
    );

    // `dlq list` (over the service's queues) shows them and leaves them there.
    let (listed, output) = f.dlq(DlqCommand::List(all()), &[&f.queue]).await;
    listed.unwrap();
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 3, "{output}");
    let crash_line = lines
        .iter()
        .find(|l| l.contains(&crashed.to_string()))
        .expect("the crashed message is listed");
    assert!(
        crash_line.contains("test.crash") && crash_line.contains("delivery_limit"),
        "{crash_line}"
    );
    for id in rejected {
        let line = lines
            .iter()
            .find(|l| l.contains(&id.to_string()))
            .expect("every dead letter is listed");
        assert!(
            line.contains("hubscore.test.Thing") && line.contains("the scoring config is invalid"),
            "{line}"
        );
    }
    assert!(
        testing::eventually(WAIT, || async { f.dlq_count().await == 3 }).await,
        "listing removed messages from the DLQ"
    );

    // The config is fixed; `dlq replay` sends them back and the handler takes them.
    flaky.broken.store(false, Ordering::SeqCst);
    let args = DlqArgs {
        queue: Some(f.queue.clone()),
        limit: None,
    };
    let (replayed, output) = f.dlq(DlqCommand::Replay(args), &[]).await;
    replayed.unwrap();
    assert!(output.contains("3 replayed, 0 left in the DLQ"), "{output}");
    assert!(
        testing::eventually(WAIT, || async { flaky.acked.lock().await.len() == 3 }).await,
        "the replayed messages were not consumed"
    );
    shutdown.cancel();
    consumer.await.unwrap();

    let acked = flaky.acked.lock().await.clone();
    let ids: BTreeSet<Uuid> = acked.iter().map(|d| d.message_id).collect();
    assert_eq!(
        ids,
        BTreeSet::from([crashed, rejected[0], rejected[1]]),
        "each replayed once"
    );
    let keys: BTreeSet<&str> = acked.iter().map(|d| d.routing_key.as_str()).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["test.crash", "test.one", "test.two"]),
        "handlers see the original routing keys"
    );
    assert!(acked.iter().all(|d| d.body == d.message_id.as_bytes()));
    assert_eq!(f.dlq_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_the_broker_does_not_accept_leaves_the_message_in_the_dlq() {
    let f = fixture("test.unreplayable").await;
    let flaky = Flaky::default();
    flaky.broken.store(true, Ordering::SeqCst);
    let shutdown = Shutdown::new();
    let consumer = flaky.start(&f, &shutdown);
    let id = f.publish("test.one").await;
    assert!(
        testing::eventually(WAIT, || async { f.dlq_count().await == 1 }).await,
        "the message never reached the DLQ"
    );
    shutdown.cancel();
    consumer.await.unwrap();
    // The queue it died in is gone, so the broker cannot take the copy.
    let channel = f.broker.channel().await.unwrap();
    channel
        .queue_delete(f.queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();

    let args = DlqArgs {
        queue: Some(f.queue.clone()),
        limit: None,
    };
    let (replayed, output) = f.dlq(DlqCommand::Replay(args), &[]).await;
    let error = replayed.unwrap_err();
    assert!(
        format!("{error:#}").contains("could not be replayed"),
        "{error:#}"
    );
    assert!(
        output.contains("left in the DLQ") && output.contains(&id.to_string()),
        "{output}"
    );
    assert!(
        testing::eventually(WAIT, || async { f.dlq_count().await == 1 }).await,
        "the message left the DLQ without a confirmed copy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_commands_on_a_service_without_queues_ask_for_one() {
    let f = fixture("test.noqueues").await;
    let (result, _) = f.dlq(DlqCommand::List(all()), &[]).await;
    let error = result.unwrap_err();
    assert!(error.to_string().contains("--queue"), "{error}");
}
