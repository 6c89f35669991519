//! The broker cut off (through a TCP proxy): deliveries get 503 and nothing is
//! acknowledged; once it is back the simulator's retries all land, and the events on the
//! queue are exactly the events the simulator delivered.

#![expect(clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{APP_SECRET, Sim, delivery, spawn_app};
use platform::amqp::testing::{TcpProxy, eventually};
use serde_json::json;

/// The proxy runs on the test's runtime, and lapin connects with blocking steps: the
/// tests need a multi-threaded runtime so the proxy keeps forwarding meanwhile.
async fn broker_proxy() -> TcpProxy {
    let upstream: std::net::SocketAddr = "127.0.0.1:5672".parse().expect("address");
    TcpProxy::start(upstream).await.expect("proxy")
}

fn through(proxy: &TcpProxy) -> String {
    let url = url::Url::parse(&platform::testing::amqp_url()).expect("amqp url");
    let mut url = url;
    url.set_port(Some(proxy.address().port())).expect("port");
    url.set_host(Some("127.0.0.1")).expect("host");
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_cut_off_deliveries_get_503_and_readiness_fails_until_it_is_back() {
    let proxy = broker_proxy().await;
    let broker_url = through(&proxy);
    let app = spawn_app(move |s| {
        s.amqp.url = broker_url;
        s.webhooks.confirm_timeout_ms = 2_000;
    })
    .await;
    proxy.refuse();
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.readyz().await == 503
        })
        .await,
        "readiness fails while the broker is unreachable"
    );
    let (status, answer) = app
        .post_signed("/webhooks/hubspot", delivery(62515, 1, 5))
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "broker_unavailable");
    proxy.accept();
    app.wait_ready().await;
    // HubSpot's retry of the same delivery is accepted after recovery.
    let (status, answer) = app
        .post_signed("/webhooks/hubspot", delivery(62515, 1, 5))
        .await;
    assert_eq!(status, 200, "{answer}");
    let batches = app.take_batches().await;
    assert_eq!(batches.len(), 1, "the refused attempt left nothing behind");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"hubscore_webhook_deliveries_total{outcome="broker_unavailable",route="public",service="webhook-receiver"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_the_simulators_retries_all_land_and_the_ledger_balances() {
    let proxy = broker_proxy().await;
    let broker_url = through(&proxy);
    let app = spawn_app(move |s| s.amqp.url = broker_url).await;
    let sim = Sim::start().await;
    let portal = sim.portal(&app.url("/webhooks/hubspot"), APP_SECRET).await;
    for i in 0..5 {
        sim.create(
            portal,
            "contacts",
            json!({"email": format!("before{i}@x.example")}),
        )
        .await;
    }
    proxy.refuse();
    for i in 0..20 {
        sim.create(
            portal,
            "contacts",
            json!({"email": format!("during{i}@x.example")}),
        )
        .await;
    }
    assert!(
        eventually(Duration::from_secs(20), || async {
            sim.hooks(portal).await["failed_attempts"].as_u64() >= Some(3)
        })
        .await,
        "deliveries are refused while the broker is away"
    );
    proxy.accept();
    for i in 0..5 {
        sim.create(
            portal,
            "contacts",
            json!({"email": format!("after{i}@x.example")}),
        )
        .await;
    }
    let hooks = sim.settled(portal).await;
    assert_eq!(hooks["abandoned_batches"], 0, "{hooks}");
    let delivered = hooks["delivered_events"].as_u64().expect("count");
    assert_eq!(delivered, 30, "one creation event per contact: {hooks}");
    let batches = app.take_batches().await;
    let events: Vec<_> = batches.iter().flat_map(|b| b.events.iter()).collect();
    let ids: HashSet<i64> = events.iter().map(|e| e.event_id).collect();
    // A publish confirmed after its 503 may add a copy; consumers dedupe by event id.
    assert_eq!(
        u64::try_from(ids.len()).expect("small"),
        delivered,
        "ledger: {hooks}"
    );
    assert!(u64::try_from(events.len()).expect("small") >= delivered);
    sim.sim.stop().await;
}

/// A TCP proxy that can stop forwarding without closing anything, as a broker that hangs
/// (disk alarm, overload) looks to its clients: the connection stays up, answers stop.
struct StallingProxy {
    address: std::net::SocketAddr,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StallingProxy {
    async fn start(upstream: std::net::SocketAddr) -> StallingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stalled.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, flag.clone()));
                tokio::spawn(forward(server_read, client_write, flag.clone()));
            }
        });
        StallingProxy { address, stalled }
    }

    fn stall(&self, stalled: bool) {
        self.stalled
            .store(stalled, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        // Hold what arrived while stalled; it goes through once the stall ends.
        while stalled.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stops_confirming_gets_503_at_the_deadline_and_the_retry_is_a_second_copy() {
    let upstream: std::net::SocketAddr = "127.0.0.1:5672".parse().expect("address");
    let proxy = StallingProxy::start(upstream).await;
    let mut url = url::Url::parse(&platform::testing::amqp_url()).expect("amqp url");
    url.set_port(Some(proxy.address.port())).expect("port");
    url.set_host(Some("127.0.0.1")).expect("host");
    let broker_url = url.to_string();
    let app = spawn_app(move |s| {
        s.amqp.url = broker_url;
        s.webhooks.confirm_timeout_ms = 500;
        // One channel, opened by the first delivery: the stalled publish then goes out
        // on it rather than waiting to open a channel of its own.
        s.webhooks.publisher_channels = 1;
    })
    .await;
    let (status, _) = app
        .post_signed("/webhooks/hubspot", delivery(62515, 1, 1))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.take_batches().await.len(), 1);
    proxy.stall(true);
    let body = delivery(62515, 10, 3);
    let (status, answer) = app.post_signed("/webhooks/hubspot", body.clone()).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "broker_unavailable");
    proxy.stall(false);
    // The late publish reaches the broker after all; HubSpot's retry is a second copy.
    let (status, answer) = app.post_signed("/webhooks/hubspot", body).await;
    assert_eq!(status, 200, "{answer}");
    app.wait_for_messages(2).await;
    let batches = app.take_batches().await;
    assert_eq!(batches.len(), 2);
    let ids = |i: usize| -> Vec<i64> { batches[i].events.iter().map(|e| e.event_id).collect() };
    assert_eq!(ids(0), ids(1), "both copies carry the same event ids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_limit_a_delivery_is_refused_at_once_and_lands_when_retried() {
    let upstream: std::net::SocketAddr = "127.0.0.1:5672".parse().expect("address");
    let proxy = StallingProxy::start(upstream).await;
    let mut url = url::Url::parse(&platform::testing::amqp_url()).expect("amqp url");
    url.set_port(Some(proxy.address.port())).expect("port");
    url.set_host(Some("127.0.0.1")).expect("host");
    let broker_url = url.to_string();
    let app = spawn_app(move |s| {
        s.amqp.url = broker_url;
        s.webhooks.confirm_timeout_ms = 3_000;
        s.webhooks.publisher_channels = 1;
        s.webhooks.max_in_flight_deliveries = 1;
    })
    .await;
    let (status, _) = app
        .post_signed("/webhooks/hubspot", delivery(62515, 1, 1))
        .await;
    assert_eq!(status, 200);
    app.take_batches().await;

    // The broker hangs: the first delivery holds the only slot while it waits.
    proxy.stall(true);
    let second = delivery(62515, 20, 3);
    let first = app.post_signed("/webhooks/hubspot", delivery(62515, 10, 2));
    let meanwhile = async {
        assert!(
            eventually(std::time::Duration::from_secs(5), || async {
                app.metrics().await.lines().any(|l| {
                    l.starts_with("hubscore_webhook_requests_in_flight") && l.ends_with(" 1")
                })
            })
            .await,
            "the first delivery is in flight"
        );
        let started = std::time::Instant::now();
        let (status, answer) = app.post_signed("/webhooks/hubspot", second.clone()).await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["error"], "overloaded");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "refused at once, not after the confirm deadline"
        );
        // The broker is back: the first delivery completes.
        proxy.stall(false);
    };
    let ((status, answer), ()) = tokio::join!(first, meanwhile);
    assert_eq!(status, 200, "{answer}");
    // HubSpot's retry of the refused delivery lands.
    let (status, answer) = app.post_signed("/webhooks/hubspot", second).await;
    assert_eq!(status, 200, "{answer}");
    app.wait_for_messages(2).await;
    let mut ids: Vec<i64> = app
        .take_batches()
        .await
        .iter()
        .flat_map(|b| b.events.iter().map(|e| e.event_id))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [10, 11, 20, 21, 22]);
    assert!(
        app.metrics()
            .await
            .lines()
            .any(|l| l.contains("outcome=\"overloaded\"") && l.ends_with(" 1")),
        "the refusal is counted"
    );
}
