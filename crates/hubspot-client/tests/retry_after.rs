//! `Retry-After` handling. The simulator sends no `Retry-After` (HubSpot documents it only for
//! 477), so these tests talk to a stub server that answers every request the same way.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hubspot_client::{HubSpotClient, HubSpotError, RateLimitPolicy, StaticToken};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Serves `status` with `headers` and `body` to every request; counts the requests.
async fn stub(
    status: &'static str,
    headers: &'static str,
    body: &'static str,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buffer = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (base, requests)
}

fn client(base: &str) -> HubSpotClient {
    let mut config = hubspot_client::ClientConfig::for_base_url(base);
    config.retry.max_retries = 4;
    config.retry.base_delay_ms = 20;
    config.retry.max_retry_after_ms = 5_000;
    HubSpotClient::builder(config, Arc::new(StaticToken::new("pat-na1-stub")))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_asking_for_a_longer_wait_than_the_policy_allows_goes_to_the_caller_at_once() {
    let (base, requests) = stub(
        "429 Too Many Requests",
        "retry-after: 3600\r\n",
        r#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"}"#,
    )
    .await;
    // The guard only turns a hang (sleeping the hour) into a failure.
    let error = tokio::time::timeout(Duration::from_secs(30), client(&base).account_details())
        .await
        .unwrap_or_else(|_| panic!("the client slept through an hour-long Retry-After"))
        .unwrap_err();
    assert!(
        matches!(
            error,
            HubSpotError::RateLimited {
                policy: RateLimitPolicy::TenSecondlyRolling,
                retry_after: Some(after),
            } if after == Duration::from_secs(3600)
        ),
        "{error:?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1, "no retry was sent");
}
