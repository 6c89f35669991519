//! The app-level developer API (timeline event templates) against the simulator, and against
//! a stub answering 502 for what is resent; the developer API key never shows in an error,
//! `Debug` output or a metric.

mod common;

use std::error::Error as _;
use std::sync::{Arc, Mutex};

use common::Sim;
use hubspot_client::{
    ClientConfig, ClientMetrics, DeveloperClient, EventTemplateToken, HubSpotError,
    NewEventTemplate, RetryPolicy, TokenOption,
};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const KEY: &str = "dev-key-7f3a9c21-secret";

/// Everything an error shows of itself: `Display` with its sources, and `Debug`.
fn shown(error: &HubSpotError) -> String {
    let mut text = format!("{error} / {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(" / {cause} / {cause:?}"));
        source = cause.source();
    }
    text
}

fn health_template() -> NewEventTemplate {
    NewEventTemplate {
        name: "Health score changed".into(),
        object_type: "companies".into(),
        header_template: Some("Health score {{health_score}}".into()),
        detail_template: Some("Band: {{band}}".into()),
        tokens: vec![
            EventTemplateToken {
                name: "health_score".into(),
                label: "Health score".into(),
                kind: "number".into(),
                ..EventTemplateToken::default()
            },
            EventTemplateToken {
                name: "band".into(),
                label: "Band".into(),
                kind: "enumeration".into(),
                options: vec![
                    TokenOption {
                        label: "Healthy".into(),
                        value: "healthy".into(),
                    },
                    TokenOption {
                        label: "At risk".into(),
                        value: "at_risk".into(),
                    },
                ],
                ..EventTemplateToken::default()
            },
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_listed_created_read_and_deleted_as_the_app() {
    let sim = Sim::start().await;
    let portal = sim
        .portal(json!({"app_id": 515_151, "developer_api_key": KEY}))
        .await;
    let developer = sim.developer(&portal);
    assert_eq!(developer.app_id(), 515_151);
    assert!(developer.list_event_templates().await.unwrap().is_empty());

    let created = developer
        .create_event_template(&health_template())
        .await
        .unwrap();
    assert!(
        created.id.bytes().all(|b| b.is_ascii_digit()),
        "{created:?}"
    );
    assert_eq!(created.name, "Health score changed");
    assert_eq!(created.object_type, "companies");
    assert_eq!(created.detail_template.as_deref(), Some("Band: {{band}}"));
    assert_eq!(created.tokens, health_template().tokens);

    let listed = developer.list_event_templates().await.unwrap();
    assert_eq!(listed, vec![created.clone()]);
    assert_eq!(
        developer.get_event_template(&created.id).await.unwrap(),
        created
    );
    developer.delete_event_template(&created.id).await.unwrap();
    let gone = developer.get_event_template(&created.id).await.unwrap_err();
    assert!(matches!(gone, HubSpotError::NotFound { .. }), "{gone:?}");
    let gone = developer
        .delete_event_template(&created.id)
        .await
        .unwrap_err();
    assert!(matches!(gone, HubSpotError::NotFound { .. }), "{gone:?}");
    assert!(developer.list_event_templates().await.unwrap().is_empty());

    let invalid = developer
        .create_event_template(&NewEventTemplate {
            name: "no type".into(),
            ..NewEventTemplate::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&invalid, HubSpotError::Validation { message, errors }
            if message.contains("objectType") && errors[0].location.as_deref() == Some("objectType")),
        "{invalid:?}"
    );
    let stats = sim.stats(&portal).await;
    assert_eq!(stats["requests_total"], 0, "no portal call: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_another_apps_key_is_unauthorized_and_the_key_shows_nowhere() {
    let sim = Sim::start().await;
    let portal = sim
        .portal(json!({"app_id": 616_161, "developer_api_key": KEY}))
        .await;
    let other = sim
        .portal(json!({"developer_api_key": "other-apps-key-0042"}))
        .await;
    let registry = prometheus::Registry::new();
    let metrics = ClientMetrics::register(&registry).unwrap();
    for (case, key) in [
        ("a wrong key", "wrong-key-1234"),
        ("another app's key", "other-apps-key-0042"),
    ] {
        let client = DeveloperClient::new(sim.config(), portal.app_id, key.to_owned().into())
            .unwrap()
            .with_metrics(metrics.clone());
        for error in [
            client.list_event_templates().await.unwrap_err(),
            client
                .create_event_template(&health_template())
                .await
                .unwrap_err(),
        ] {
            assert!(
                matches!(&error, HubSpotError::Unauthorized { expired: false, .. }),
                "{case}: {error:?}"
            );
            assert!(!error.is_retryable());
            let text = shown(&error);
            assert!(!text.contains(key), "{case}: {text}");
        }
        let debug = format!("{client:?}");
        assert!(!debug.contains(key), "{debug}");
        assert!(debug.contains(&portal.app_id.to_string()), "{debug}");
    }
    // The right key still works, and the other app's key works for its own app.
    assert!(sim.developer(&portal).list_event_templates().await.is_ok());
    assert!(sim.developer(&other).list_event_templates().await.is_ok());

    let mut exported = Vec::new();
    prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &registry.gather(),
        &mut exported,
    )
    .unwrap();
    let exported = String::from_utf8(exported).unwrap();
    assert!(
        exported.contains(r#"endpoint="developer.event_templates.list",status="401""#),
        "{exported}"
    );
    for key in [KEY, "wrong-key-1234", "other-apps-key-0042"] {
        assert!(!exported.contains(key), "{exported}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_a_transport_error_without_the_key() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut config = ClientConfig::for_base_url(&base);
    config.retry = quick_retries();
    let client = DeveloperClient::new(config, 7, KEY.to_owned().into()).unwrap();
    for error in [
        client.list_event_templates().await.unwrap_err(),
        client
            .create_event_template(&health_template())
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(error, HubSpotError::Transport(_)), "{error:?}");
        let text = shown(&error);
        assert!(!text.contains(KEY), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_502_is_outcome_unknown_and_sent_once_while_reads_are_retried() {
    let stub = Stub::start().await;
    let mut config = ClientConfig::for_base_url(&stub.base);
    config.retry = quick_retries();
    let client = DeveloperClient::new(config, 8080, KEY.to_owned().into()).unwrap();

    let error = client
        .create_event_template(&health_template())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            HubSpotError::OutcomeUnknown {
                operation: "developer.event_templates.create",
                status: Some(502),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!shown(&error).contains(KEY));
    assert_eq!(
        stub.requests().len(),
        1,
        "a create is not resent after a 502"
    );

    let error = client.list_event_templates().await.unwrap_err();
    assert!(
        matches!(error, HubSpotError::Transient { status: 502, .. }),
        "{error:?}"
    );
    let requests = stub.requests();
    assert_eq!(
        requests.len(),
        1 + 1 + 2,
        "a read is retried max_retries times"
    );
    let first = requests[0].to_ascii_lowercase();
    assert!(
        first.starts_with(&format!(
            "post /integrators/timeline/v3/8080/event-templates?hapikey={}",
            KEY.to_ascii_lowercase()
        )),
        "the key goes in the query: {first}"
    );
    assert!(!first.contains("authorization:"), "no bearer: {first}");
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        base_delay_ms: 10,
        max_delay_ms: 50,
        max_retry_after_ms: 1_000,
    }
}

/// An HTTP server answering every request 502, recording each request's head.
struct Stub {
    base: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Stub {
    async fn start() -> Self {
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("binding the stub");
        };
        let Ok(addr) = listener.local_addr() else {
            panic!("the stub's address");
        };
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let Some(head) = read_request(&mut socket).await else {
                        return;
                    };
                    if let Ok(mut heads) = recorded.lock() {
                        heads.push(head);
                    }
                    let answer = "HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\n\
                                  content-length: 2\r\nconnection: close\r\n\r\n{}";
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            base: format!("http://{addr}"),
            heads,
        }
    }

    fn requests(&self) -> Vec<String> {
        match self.heads.lock() {
            Ok(heads) => heads.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Reads one request (head and `content-length` body); answers its head.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Some(head)
}
