//! `/readyz` follows the broker: a proxy between the service and RabbitMQ cuts it off and
//! restores it, and the service recovers publishing and consuming without a restart.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use platform::amqp::{
    Broker, Delivery, MessageMeta, Outcome, OutgoingMessage, Publisher, QueueSpec, consume,
};
use platform::health::Readiness;
use platform::http::{self, HttpContext};
use platform::metrics::Metrics;
use platform::shutdown::Shutdown;
use platform::testing::{self, BrokerCleanup, TcpProxy};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const WAIT: Duration = Duration::from_secs(10);

/// The status code of `GET path`, over a plain HTTP/1.1 connection.
async fn get_status(address: SocketAddr, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap()
}

fn broker_address() -> SocketAddr {
    let url = testing::amqp_url();
    let host_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    host_port.parse().unwrap()
}

fn message() -> OutgoingMessage {
    OutgoingMessage {
        routing_key: "test.ready".to_owned(),
        message_type: "hubscore.test.Thing".to_owned(),
        body: b"x".to_vec(),
        meta: MessageMeta::default(),
        created_at: chrono::Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_while_the_broker_is_unreachable_and_200_once_it_is_back() {
    let proxy = TcpProxy::start(broker_address()).await.unwrap();
    let mut settings = testing::amqp_settings();
    settings.url = format!("amqp://guest:guest@{}/%2f", proxy.address());
    let queue = testing::unique_name("test.ready");
    let _cleanup = BrokerCleanup::new(&settings, &[&queue]);

    // The service starts while the broker is unreachable.
    proxy.refuse();
    let broker = Broker::start(settings, vec![QueueSpec::new(queue.as_str(), ["test.#"])]);
    let metrics = Metrics::new("test").unwrap();
    let readiness = Readiness::new().with_check("broker", broker.readiness_check());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server = http::serve(
        listener,
        HttpContext {
            metrics: metrics.clone(),
            readiness,
        },
        |_| {},
    )
    .unwrap();
    let server_handle = server.handle();
    tokio::spawn(server);

    assert_eq!(
        get_status(address, "/healthz").await,
        200,
        "alive even without a broker"
    );
    assert_eq!(get_status(address, "/readyz").await, 503);

    proxy.accept();
    assert!(
        testing::eventually(WAIT, || async {
            get_status(address, "/readyz").await == 200
        })
        .await,
        "never became ready once the broker was reachable"
    );

    // A consumer and a publisher started while it is up...
    let shutdown = Shutdown::new();
    // By message id: an ack that the cut swallows brings its message back (at least
    // once), so counting handler calls would not say which messages arrived.
    let handled = Arc::new(Mutex::new(HashSet::new()));
    let seen = handled.clone();
    let consumer = tokio::spawn(consume(
        broker.clone(),
        queue.clone(),
        move |d: Delivery| {
            seen.lock().unwrap().insert(d.message_id);
            async { Outcome::Ack }
        },
        shutdown.clone(),
        metrics.clone(),
    ));
    let was_handled = |message: &OutgoingMessage| {
        let handled = handled.clone();
        let id = message.meta.message_id;
        move || {
            let done = handled.lock().unwrap().contains(&id);
            async move { done }
        }
    };
    let publisher = Publisher::new(broker.clone());
    let before = message();
    publisher.publish(&before).await.unwrap();
    assert!(testing::eventually(WAIT, was_handled(&before)).await);

    // ...lose it...
    proxy.refuse();
    assert!(
        testing::eventually(WAIT, || async {
            get_status(address, "/readyz").await == 503
        })
        .await,
        "still ready after the broker went away"
    );
    assert!(
        publisher.publish(&message()).await.is_err(),
        "no confirm without a broker"
    );

    // ...and both work again once it is back, without a restart.
    proxy.accept();
    assert!(
        testing::eventually(WAIT, || async {
            get_status(address, "/readyz").await == 200
        })
        .await
    );
    let after = message();
    publisher.publish(&after).await.unwrap();
    assert!(
        testing::eventually(WAIT, was_handled(&after)).await,
        "the consumer did not resubscribe after the reconnect"
    );

    shutdown.cancel();
    tokio::time::timeout(WAIT, consumer).await.unwrap().unwrap();
    server_handle.stop(true).await;
}
