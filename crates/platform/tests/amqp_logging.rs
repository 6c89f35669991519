//! Every log line of a handler's work, and of the consumer's verdict on it, carries the
//! message's correlation id. (Its own test binary: it installs the global log subscriber.)

use std::time::Duration;

use platform::amqp::{
    Broker, Delivery, MessageMeta, Outcome, OutgoingMessage, Publisher, QueueSpec, consume,
};
use platform::config::{LogFormat, TelemetrySettings};
use platform::metrics::Metrics;
use platform::shutdown::Shutdown;
use platform::testing::{self, BrokerCleanup};

#[tokio::test]
async fn every_line_of_a_handlers_work_carries_the_correlation_id() {
    let logs = testing::LogCapture::default();
    let settings = TelemetrySettings {
        level: "info".into(),
        format: LogFormat::Json,
    };
    platform::telemetry::init_with_writer("test", &settings, logs.clone()).unwrap();

    let amqp = testing::amqp_settings();
    let queue = testing::unique_name("test.logging");
    let _cleanup = BrokerCleanup::new(&amqp, &[&queue]);
    let broker = Broker::start(amqp, vec![QueueSpec::new(queue.as_str(), ["test.#"])]);
    assert!(broker.wait_connected(Duration::from_secs(10)).await);
    let message = OutgoingMessage {
        routing_key: "test.log".into(),
        message_type: "hubscore.test.Thing".into(),
        body: vec![],
        meta: MessageMeta::new("corr-logged", None),
        created_at: chrono::Utc::now(),
    };
    Publisher::new(broker.clone())
        .publish(&message)
        .await
        .unwrap();

    let shutdown = Shutdown::new();
    let metrics = Metrics::new("test").unwrap();
    let consumer = tokio::spawn(consume(
        broker.clone(),
        queue.clone(),
        |d: Delivery| async move {
            tracing::info!(attempt = d.retries, "handler working");
            if d.retries == 0 {
                Outcome::Retry("not yet".into())
            } else {
                Outcome::Ack
            }
        },
        shutdown.clone(),
        metrics.clone(),
    ));
    let acked = testing::eventually(Duration::from_secs(10), || async {
        metrics.render().contains(r#"outcome="ack""#)
    })
    .await;
    assert!(acked);
    shutdown.cancel();
    consumer.await.unwrap();

    let work: Vec<serde_json::Value> = logs
        .lines()
        .into_iter()
        .filter(|l| {
            l["message"] == "handler working" || l["message"] == "handler failed; will retry"
        })
        .collect();
    assert_eq!(
        work.len(),
        3,
        "two attempts and one retry verdict: {work:?}"
    );
    for line in &work {
        let spans = line["spans"].as_array().unwrap();
        assert!(
            spans.iter().any(|s| s["correlation_id"] == "corr-logged"),
            "{line}"
        );
    }
}
