//! The shared service runner: how a started service stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use platform::config::HttpSettings;
use platform::health::Readiness;
use platform::http::HttpContext;
use platform::metrics::Metrics;
use platform::service::{Running, start_http};
use platform::shutdown::Shutdown;

fn try_running() -> anyhow::Result<Running> {
    let settings = HttpSettings {
        host: "127.0.0.1".into(),
        port: 0,
    };
    let context = HttpContext {
        metrics: Metrics::new("test")?,
        readiness: Readiness::new(),
    };
    start_http(&settings, context, |_| {})
}

#[tokio::test]
async fn shutdown_waits_for_background_work_in_flight_to_finish() {
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let service = try_running()
        .unwrap()
        .with_task("slow", async move |shutdown: Shutdown| {
            shutdown.cancelled().await;
            // In-flight work that takes a while to wind down.
            tokio::time::sleep(Duration::from_millis(300)).await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    service.run_until_stopped(shutdown).await.unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "returned before the task finished its work"
    );
}

#[tokio::test]
async fn a_failing_background_task_stops_the_service_with_its_error() {
    let service = try_running()
        .unwrap()
        .with_task("consumer", async |_shutdown: Shutdown| {
            anyhow::bail!("queue vanished")
        });
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        service.run_until_stopped(Shutdown::new()),
    )
    .await
    .expect("the service kept running after its task failed")
    .unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("consumer") && text.contains("queue vanished"),
        "{text}"
    );
}

#[tokio::test]
async fn the_http_server_stops_answering_after_shutdown() {
    let service = try_running().unwrap();
    let url = format!("http://127.0.0.1:{}/healthz", service.port());
    let shutdown = Shutdown::new();
    let handle = tokio::spawn(service.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::new();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    assert!(
        reqwest::Client::new().get(&url).send().await.is_err(),
        "still answering after shutdown"
    );
}
