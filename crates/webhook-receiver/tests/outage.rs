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
