//! Shared test support: the real receiver on a free port with exchanges of its own, a
//! queue bound to `webhook.batch` to read what it published, the in-process simulator,
//! and signed requests made with the simulator's signing code (an independent oracle).

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use contracts::v1::WebhookBatch;
use platform::amqp::testing::{
    BrokerCleanup, amqp_settings, eventually, ready_count, take_message,
};
use platform::amqp::{Broker, QueueSpec};
use platform::testing::unique_name;
use prost::Message as _;
use secrecy::SecretString;
use serde_json::{Value, json};
use webhook_receiver::{Application, Settings};

/// The public app's client secret the receiver is configured with.
pub const APP_SECRET: &str = "test-app-client-secret";

/// A running receiver and what a test needs around it.
pub struct TestApp {
    /// `http://127.0.0.1:{port}`, also the configured public base URL.
    pub base_url: String,
    /// The queue bound to `webhook.batch` on this test's exchange.
    pub queue: String,
    /// A connection of the test's own, for reading the queue.
    pub reader: Broker,
    /// Plain HTTP client.
    pub http: reqwest::Client,
    /// The settings the receiver runs with.
    pub settings: Settings,
    shutdown: platform::shutdown::Shutdown,
    _cleanup: BrokerCleanup,
}

/// Default test settings: v3 only, the app secret, short broker backoffs.
pub fn test_settings() -> Settings {
    let mut settings: Settings =
        platform::config::load_with_env(webhook_receiver::config::DEFAULTS, None, Vec::new())
            .expect("defaults load");
    settings.amqp = amqp_settings();
    settings.http.host = "127.0.0.1".to_owned();
    settings.http.port = 0;
    settings.webhooks.app_client_secrets = vec![SecretString::from(APP_SECRET)];
    settings
}

/// Starts the receiver with `test_settings()` changed by `configure`.
pub async fn spawn_app(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings();
    configure(&mut settings);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let base_url = format!("http://127.0.0.1:{port}");
    settings.webhooks.public_base_url = base_url.clone();
    let queue = unique_name("test.webhook-batches");
    let cleanup = BrokerCleanup::new(&settings.amqp, &[queue.as_str()]);
    // The reader talks to the broker directly, even when the receiver goes through a proxy.
    let mut reader_settings = settings.amqp.clone();
    reader_settings.url = platform::testing::amqp_url();
    let reader = Broker::start(
        reader_settings,
        vec![QueueSpec::new(queue.clone(), ["webhook.batch"])],
    );
    assert!(
        reader.wait_connected(Duration::from_secs(10)).await,
        "test broker connection"
    );
    let app = Application::build_with_listener(settings.clone(), listener)
        .await
        .expect("application builds");
    let shutdown = platform::shutdown::Shutdown::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let test_app = TestApp {
        base_url,
        queue,
        reader,
        http: reqwest::Client::new(),
        settings,
        shutdown,
        _cleanup: cleanup,
    };
    test_app.wait_ready().await;
    test_app
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Epoch milliseconds now, as HubSpot sends them.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Headers HubSpot would send for `body` POSTed to `url`, signed v3 with `secret` at
/// `timestamp`.
pub fn v3_headers(secret: &str, url: &str, body: &[u8], timestamp: &str) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        (
            "x-hubspot-signature-v3".into(),
            hubspot_sim::signing::sign_v3(secret, "POST", url, body, timestamp),
        ),
        ("x-hubspot-request-timestamp".into(), timestamp.to_owned()),
    ]
}

/// A delivery body of `n` contact property changes of `portal`, event ids from `first_id`.
pub fn delivery(portal: i64, first_id: i64, n: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let i = i64::try_from(i).expect("small");
            json!({"eventId": first_id + i, "subscriptionId": 7, "portalId": portal, "appId": 31337,
                   "occurredAt": 1_767_225_600_000_i64 + i, "subscriptionType": "contact.propertyChange",
                   "attemptNumber": 0, "objectId": 5000 + i, "propertyName": "email",
                   "propertyValue": format!("c{i}@x.example"), "changeSource": "CRM_UI"})
        })
        .collect();
    serde_json::to_vec(&events).expect("json")
}

impl TestApp {
    /// The full URL of `path_and_query` on the receiver.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base_url, path_and_query)
    }

    /// POSTs `body` to `path_and_query` with exactly `headers`.
    pub async fn post(
        &self,
        path_and_query: &str,
        body: Vec<u8>,
        headers: &[(String, String)],
    ) -> (u16, Value) {
        let mut request = self.http.post(self.url(path_and_query)).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// POSTs `body` signed v3 with the app secret, now.
    pub async fn post_signed(&self, path_and_query: &str, body: Vec<u8>) -> (u16, Value) {
        let headers = v3_headers(
            APP_SECRET,
            &self.url(path_and_query),
            &body,
            &now_ms().to_string(),
        );
        self.post(path_and_query, body, &headers).await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        assert!(
            eventually(Duration::from_secs(15), || async {
                self.readyz().await == 200
            })
            .await,
            "receiver ready"
        );
    }

    /// `/readyz`'s status.
    pub async fn readyz(&self) -> u16 {
        self.http
            .get(self.url("/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Messages ready on the queue right now.
    pub async fn queued(&self) -> u32 {
        ready_count(&self.reader, &self.queue)
            .await
            .expect("queue count")
    }

    /// Every batch on the queue now, taken off it, checking each message's AMQP type.
    pub async fn take_batches(&self) -> Vec<WebhookBatch> {
        let mut batches = Vec::new();
        while let Some(message) = take_message(&self.reader, &self.queue)
            .await
            .expect("take message")
        {
            assert_eq!(
                message.properties.kind().as_ref().map(|t| t.as_str()),
                Some("hubscore.v1.WebhookBatch")
            );
            batches.push(WebhookBatch::decode(message.data.as_slice()).expect("a WebhookBatch"));
        }
        batches
    }

    /// Waits until at least `n` messages are on the queue.
    pub async fn wait_for_messages(&self, n: u32) {
        assert!(
            eventually(Duration::from_secs(20), || async {
                self.queued().await >= n
            })
            .await,
            "{n} messages on the queue"
        );
    }
}

/// The in-process simulator with fast webhook batching and retries.
pub struct Sim {
    /// The running simulator.
    pub sim: hubspot_sim::RunningSim,
    /// Its base URL.
    pub base: String,
    /// Plain HTTP client.
    pub http: reqwest::Client,
}

impl Sim {
    /// Starts the simulator.
    pub async fn start() -> Sim {
        let sim = hubspot_sim::spawn(hubspot_sim::SimConfig {
            webhook_retry_base_ms: 50,
            webhook_batch_window_ms: 50,
            ..hubspot_sim::SimConfig::default()
        })
        .await
        .expect("simulator starts");
        let base = sim.base_url();
        Sim {
            sim,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// Sends a control-API request and returns the JSON answer, asserting a 2xx.
    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("control call");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    /// Creates a portal whose webhooks go to `target_url`, signed with `secret`.
    pub async fn portal(&self, target_url: &str, secret: &str) -> i64 {
        let portal = self
            .control(
                reqwest::Method::POST,
                "/_sim/portals",
                json!({"webhook_target_url": target_url, "client_secret": secret}),
            )
            .await;
        portal["portal_id"].as_i64().expect("portal id")
    }

    /// Creates a record (which emits webhooks) and returns its id.
    pub async fn create(&self, portal: i64, object_type: &str, properties: Value) -> i64 {
        let record = self
            .control(
                reqwest::Method::POST,
                &format!("/_sim/portals/{portal}/objects/{object_type}"),
                json!({ "properties": properties }),
            )
            .await;
        record["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("record id")
    }

    /// The portal's webhook counters.
    pub async fn hooks(&self, portal: i64) -> Value {
        self.http
            .get(format!("{}/_sim/portals/{portal}/webhooks", self.base))
            .send()
            .await
            .expect("webhooks")
            .json()
            .await
            .expect("json")
    }

    /// Waits until nothing is queued or being retried for `portal`; answers the counters.
    pub async fn settled(&self, portal: i64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
        // Idle twice in a row, a batch window apart: the dispatcher moves events from the
        // queue to a delivery in two steps, so one idle reading can fall between them.
        let mut idle_before = false;
        loop {
            let hooks = self.hooks(portal).await;
            let idle = hooks["queued_events"] == 0 && hooks["in_flight_batches"] == 0;
            if idle && idle_before {
                return hooks;
            }
            idle_before = idle;
            assert!(
                tokio::time::Instant::now() < deadline,
                "the simulator's deliveries settle: {hooks}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
