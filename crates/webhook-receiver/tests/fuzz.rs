//! Arbitrary bodies, headers and paths thrown at the running receiver: it never fails
//! (no 500, no dropped connection from a panic) and never answers 2xx unless the request
//! carries a valid, fresh v3 signature, as the simulator's independent signing code
//! computes it.

mod common;

use common::{APP_SECRET, TestApp, delivery, now_ms, spawn_app};
use proptest::prelude::*;

/// One generated request.
#[derive(Debug, Clone)]
struct Attempt {
    path: String,
    body: Vec<u8>,
    /// Sign the body as sent (otherwise the signature header is `forged`).
    sign: bool,
    /// Offset of the timestamp from now, in ms.
    timestamp_offset_ms: i64,
    forged: String,
    content_type: String,
    extra_headers: Vec<(String, Vec<u8>)>,
    /// Flip one byte of the body after signing.
    tamper: Option<usize>,
}

fn attempts() -> impl Strategy<Value = Attempt> {
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        (1..120usize).prop_map(|n| delivery(62515, 1, n)),
        Just(b"[]".to_vec()),
        Just(b"[{}]".to_vec()),
        "\\PC{0,300}".prop_map(String::into_bytes),
    ];
    let path = prop_oneof![
        Just("/webhooks/hubspot".to_owned()),
        Just("/webhooks/hubspot?src=hs%3Asim&x=%20".to_owned()),
        "[a-zA-Z0-9%?=&/._-]{0,40}".prop_map(|s| format!("/webhooks/hubspot/{s}")),
    ];
    let header_name = prop_oneof![
        Just("x-hubspot-signature".to_owned()),
        Just("x-hubspot-signature-version".to_owned()),
        Just("x-hubspot-signature-v3".to_owned()),
        Just("x-hubspot-request-timestamp".to_owned()),
        Just("content-length".to_owned()),
        Just("content-type".to_owned()),
        "x-[a-z]{1,10}",
    ];
    (
        path,
        body,
        any::<bool>(),
        // Clear of the 300 s boundary, where the receiver's clock and this test's differ.
        prop_oneof![
            Just(0_i64),
            -290_000..290_000_i64,
            310_000..400_000_i64,
            -400_000..-310_000_i64,
            any::<i64>(),
        ],
        "\\PC{0,60}",
        prop_oneof![
            Just("application/json".to_owned()),
            Just("application/json; charset=utf-8".to_owned()),
            "[ -~]{0,40}",
        ],
        proptest::collection::vec(
            (header_name, proptest::collection::vec(any::<u8>(), 0..80)),
            0..4,
        ),
        proptest::option::of(any::<usize>()),
    )
        .prop_map(
            |(
                path,
                body,
                sign,
                timestamp_offset_ms,
                forged,
                content_type,
                extra_headers,
                tamper,
            )| {
                Attempt {
                    path,
                    body,
                    sign,
                    timestamp_offset_ms,
                    forged,
                    content_type,
                    extra_headers,
                    tamper,
                }
            },
        )
}

/// Sends `attempt`; answers the status (0 when the connection failed) and whether the
/// request as sent carried a valid, fresh v3 signature of the app secret.
async fn send(app: &TestApp, attempt: &Attempt) -> (u16, bool) {
    let timestamp = now_ms()
        .saturating_add(attempt.timestamp_offset_ms)
        .to_string();
    let url = app.url(&attempt.path);
    let signature = if attempt.sign {
        hubspot_sim::signing::sign_v3(APP_SECRET, "POST", &url, &attempt.body, &timestamp)
    } else {
        attempt.forged.clone()
    };
    let mut body = attempt.body.clone();
    if let Some(index) = attempt.tamper
        && !body.is_empty()
    {
        let i = index % body.len();
        body[i] ^= 0x01;
    }
    let mut headers = reqwest::header::HeaderMap::new();
    let mut put = |name: &str, value: &[u8]| {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value),
        ) {
            headers.insert(name, value);
        }
    };
    put("content-type", attempt.content_type.as_bytes());
    put("x-hubspot-signature-v3", signature.as_bytes());
    put("x-hubspot-request-timestamp", timestamp.as_bytes());
    for (name, value) in &attempt.extra_headers {
        // A wrong Content-Length would only make the client or server hang up.
        if name != "content-length" {
            put(name, value);
        }
    }
    // What the receiver will actually see, to judge the answer by.
    let sent_signature = headers
        .get("x-hubspot-signature-v3")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let sent_timestamp = headers
        .get("x-hubspot-request-timestamp")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let valid = match (sent_signature, sent_timestamp) {
        (Some(sig), Some(ts)) => {
            let fresh = ts
                .trim()
                .parse::<i64>()
                .is_ok_and(|t| now_ms().saturating_sub(t).saturating_abs() <= 300_000);
            fresh
                && hubspot_sim::signing::signatures_equal(
                    sig.trim(),
                    &hubspot_sim::signing::sign_v3(APP_SECRET, "POST", &url, &body, &ts),
                )
        }
        _ => false,
    };
    let status = match app.http.post(&url).headers(headers).body(body).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    };
    (status, valid)
}

#[test]
fn arbitrary_requests_never_crash_the_receiver_nor_get_a_2xx_without_a_valid_signature() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime.block_on(spawn_app(|s| s.webhooks.max_body_bytes = 16 * 1024));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&attempts(), |attempt| {
        let (status, valid) = runtime.block_on(send(&app, &attempt));
        prop_assert!(status != 0, "the connection failed: {attempt:?}");
        prop_assert!(status != 500, "500 for {attempt:?}");
        if (200..300).contains(&status) {
            prop_assert!(valid, "{status} without a valid signature: {attempt:?}");
            accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    });
    let published = runtime.block_on(async { app.take_batches().await.len() });
    drop(app);
    drop(runtime);
    if let Err(error) = result {
        panic!("{error}");
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        published,
        "every 2xx, and only those, published a batch"
    );
}
