//! `Retry-After` handling and the statuses the simulator cannot produce (423, 477). The
//! simulator sends no `Retry-After` (HubSpot documents it only for 477), so these tests talk to
//! a stub server that answers with a fixed sequence.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubspot_client::{HubSpotClient, HubSpotError, RateLimitPolicy, StaticToken};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// One canned answer: status line, extra header lines, body.
type Answer = (&'static str, &'static str, &'static str);

/// Serves `answers` in order to successive requests (the last one to every later request);
/// records when each request arrived.
async fn stub_sequence(answers: Vec<Answer>) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let recorded = arrivals.clone();
    let answers = Arc::new(answers);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let recorded = recorded.clone();
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buffer = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                }
                let index = {
                    let mut arrivals = recorded.lock().unwrap();
                    arrivals.push(Instant::now());
                    (arrivals.len() - 1).min(answers.len() - 1)
                };
                let (status, headers, body) = answers[index];
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (base, arrivals)
}

/// Serves `status` with `headers` and `body` to every request; records when each arrived.
async fn stub(
    status: &'static str,
    headers: &'static str,
    body: &'static str,
) -> (String, Arc<Mutex<Vec<Instant>>>) {
    stub_sequence(vec![(status, headers, body)]).await
}

const ACCOUNT: &str = r#"{"portalId":9990001,"accountType":"STANDARD","timeZone":"US/Eastern","companyCurrency":"USD","additionalCurrencies":[],"utcOffset":"-05:00","utcOffsetMilliseconds":-18000000,"uiDomain":"app.hubspot.com","dataHostingLocation":"na1"}"#;

/// Time between the first and the second request.
fn gap(arrivals: &Mutex<Vec<Instant>>) -> Duration {
    let arrivals = arrivals.lock().unwrap();
    assert_eq!(arrivals.len(), 2, "one try and one retry");
    arrivals[1] - arrivals[0]
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
    assert_eq!(requests.lock().unwrap().len(), 1, "no retry was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_477_migration_is_retried_once_its_retry_after_has_passed() {
    let (base, arrivals) = stub_sequence(vec![
        ("477 Migration In Progress", "retry-after: 1\r\n", ""),
        ("200 OK", "", ACCOUNT),
    ])
    .await;
    let account = client(&base).account_details().await.unwrap();
    assert_eq!(account.portal_id, 9_990_001);
    // The backoff alone would have retried after at most 20 ms.
    let waited = gap(&arrivals);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_423_lock_is_waited_out_for_at_least_two_seconds() {
    let (base, arrivals) = stub_sequence(vec![
        (
            "423 Locked",
            "",
            r#"{"status":"error","message":"locked","category":"LOCKED"}"#,
        ),
        ("200 OK", "", ACCOUNT),
    ])
    .await;
    client(&base).account_details().await.unwrap();
    let waited = gap(&arrivals);
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_477_asking_for_hours_is_returned_as_transient_with_its_retry_after() {
    let (base, arrivals) = stub("477 Migration In Progress", "retry-after: 7200\r\n", "").await;
    let error = tokio::time::timeout(Duration::from_secs(30), client(&base).account_details())
        .await
        .unwrap_or_else(|_| panic!("the client slept through a two-hour Retry-After"))
        .unwrap_err();
    assert!(
        matches!(
            error,
            HubSpotError::Transient {
                status: 477,
                retry_after: Some(after),
            } if after == Duration::from_secs(7200)
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(arrivals.lock().unwrap().len(), 1, "no retry was sent");
}
