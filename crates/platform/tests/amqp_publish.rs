//! Confirmed publishing against the real RabbitMQ.

use std::time::Duration;

use lapin::options::ExchangeDeleteOptions;
use lapin::types::ShortString;
use platform::amqp::{Broker, MessageMeta, OutgoingMessage, PublishError, Publisher, QueueSpec};
use platform::testing::{self, BrokerCleanup};
use uuid::Uuid;

#[derive(Clone, PartialEq, prost::Message)]
struct Ping {
    #[prost(string, tag = "1")]
    text: String,
}

impl contracts::Event for Ping {
    const TYPE_NAME: &'static str = "hubscore.test.Ping";
    const ROUTING_KEYS: &'static [&'static str] = &["test.ping"];

    fn routing_key(&self) -> String {
        "test.ping".to_owned()
    }
}

fn raw(routing_key: &str, body: &[u8]) -> OutgoingMessage {
    OutgoingMessage {
        routing_key: routing_key.to_owned(),
        message_type: "hubscore.test.Raw".to_owned(),
        body: body.to_vec(),
        meta: MessageMeta::default(),
        created_at: chrono::Utc::now(),
    }
}

async fn connected_broker(queue: &str, keys: &[&str]) -> (Broker, BrokerCleanup) {
    let settings = testing::amqp_settings();
    let cleanup = BrokerCleanup::new(&settings, &[queue]);
    let broker = Broker::start(settings, vec![QueueSpec::new(queue, keys.iter().copied())]);
    assert!(
        broker.wait_connected(Duration::from_secs(10)).await,
        "broker did not connect"
    );
    (broker, cleanup)
}

#[tokio::test]
async fn a_confirmed_message_is_already_in_its_queue_when_publish_returns() {
    let queue = testing::unique_name("test.publish");
    let (broker, _cleanup) = connected_broker(&queue, &["test.#"]).await;
    let publisher = Publisher::new(broker.clone());

    for n in 0..3u8 {
        publisher.publish(&raw("test.one", &[n])).await.unwrap();
        // No waiting: the confirm means the quorum queue has the message.
        assert_eq!(
            testing::ready_count(&broker, &queue).await.unwrap(),
            u32::from(n) + 1
        );
    }
    let bodies: Vec<Vec<u8>> = testing::drain(&broker, &queue)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.data)
        .collect();
    assert_eq!(bodies, vec![vec![0], vec![1], vec![2]], "in publish order");
}

#[tokio::test]
async fn a_published_event_carries_every_property_consumers_rely_on() {
    let queue = testing::unique_name("test.properties");
    let (broker, _cleanup) = connected_broker(&queue, &["test.ping"]).await;
    let publisher = Publisher::new(broker.clone());
    let org = Uuid::new_v4();
    let meta = MessageMeta::new("corr-123", Some(org));
    let message_id = meta.message_id;

    publisher
        .publish_event(
            &Ping {
                text: "hello".into(),
            },
            meta,
        )
        .await
        .unwrap();

    let got = testing::take_message(&broker, &queue)
        .await
        .unwrap()
        .expect("the event is in the queue");
    let p = &got.properties;
    let text = |v: &Option<ShortString>| v.as_ref().map(ToString::to_string);
    assert_eq!(text(p.message_id()), Some(message_id.to_string()));
    assert_eq!(message_id.get_version_num(), 7);
    assert_eq!(text(p.kind()), Some("hubscore.test.Ping".to_owned()));
    assert_eq!(
        text(p.content_type()),
        Some("application/x-protobuf".to_owned())
    );
    assert_eq!(text(p.correlation_id()), Some("corr-123".to_owned()));
    assert_eq!(*p.delivery_mode(), Some(2), "persistent");
    assert!(p.timestamp().is_some());
    assert_eq!(testing::header(&got, "org_id"), Some(org.to_string()));
    assert_eq!(got.routing_key.as_str(), "test.ping");
    assert_eq!(
        <Ping as prost::Message>::decode(got.data.as_slice())
            .unwrap()
            .text,
        "hello"
    );
}

#[tokio::test]
async fn a_publish_whose_channel_the_broker_closes_fails_and_the_next_one_recovers() {
    let queue = testing::unique_name("test.closed");
    let (broker, _cleanup) = connected_broker(&queue, &["test.#"]).await;
    let publisher = Publisher::new(broker.clone());
    publisher.publish(&raw("test.before", b"1")).await.unwrap();

    // Publishing to an exchange that no longer exists makes the broker close the channel.
    let channel = broker.channel().await.unwrap();
    channel
        .exchange_delete(
            broker.settings().exchange.as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await
        .unwrap();
    let error = publisher
        .publish(&raw("test.lost", b"2"))
        .await
        .unwrap_err();
    assert!(matches!(error, PublishError::ChannelLost(_)), "{error:?}");

    // Once the exchange is back, the same publisher works again on a fresh channel.
    broker
        .declare_queue(QueueSpec::new(queue.as_str(), ["test.#"]))
        .await
        .unwrap();
    publisher.publish(&raw("test.after", b"3")).await.unwrap();
    let bodies: Vec<Vec<u8>> = testing::drain(&broker, &queue)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.data)
        .collect();
    assert_eq!(
        bodies,
        vec![b"1".to_vec(), b"3".to_vec()],
        "the unconfirmed message never arrived"
    );
}

#[tokio::test]
async fn an_event_nobody_subscribed_to_is_still_confirmed() {
    let queue = testing::unique_name("test.unbound");
    let (broker, _cleanup) = connected_broker(&queue, &["only.this"]).await;
    let publisher = Publisher::new(broker.clone());
    publisher
        .publish(&raw("nobody.listens", b"x"))
        .await
        .unwrap();
    assert_eq!(testing::ready_count(&broker, &queue).await.unwrap(), 0);
}

#[tokio::test]
async fn a_batch_is_confirmed_message_by_message_in_order() {
    let queue = testing::unique_name("test.batch");
    let (broker, _cleanup) = connected_broker(&queue, &["test.#"]).await;
    let publisher = Publisher::new(broker.clone());
    let messages: Vec<OutgoingMessage> = (0..50u8).map(|n| raw("test.batch", &[n])).collect();

    let results = publisher.publish_all(&messages).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let bodies: Vec<u8> = testing::drain(&broker, &queue)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.data[0])
        .collect();
    assert_eq!(bodies, (0..50).collect::<Vec<u8>>());
}

#[tokio::test]
async fn a_broker_that_never_answers_leaves_the_service_running_and_publishes_fail_fast() {
    let mut settings = testing::amqp_settings();
    // Nothing listens on port 1.
    settings.url = "amqp://guest:secret-pw@127.0.0.1:1/%2f".to_owned();
    let broker = Broker::start(settings, vec![]);
    assert!(!broker.wait_connected(Duration::from_millis(300)).await);
    assert!(!broker.is_connected());
    let error = Publisher::new(broker.clone())
        .publish(&raw("x", b"x"))
        .await
        .unwrap_err();
    assert!(matches!(error, PublishError::NotConnected), "{error:?}");
    let check = broker.readiness_check();
    let why = check().await.unwrap_err();
    assert!(!why.contains("secret-pw"), "{why}");
}
