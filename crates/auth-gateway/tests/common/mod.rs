//! The gateway under test: a real `Application` on port 0 over a fresh database, its own
//! exchanges, and an in-process HubSpot simulator.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use auth_gateway::caller::Role;
use auth_gateway::{Application, Settings};
use hubspot_sim::{RunningSim, SimConfig};
use platform::amqp::{AmqpSettings, Broker, QueueSpec};
use platform::shutdown::Shutdown;
use platform::testing::{BrokerCleanup, TestDatabase};
use serde_json::{Value, json};
use uuid::Uuid;

/// The OAuth app the gateway is configured with; test portals are created with it.
pub const CLIENT_ID: &str = "test-client-id";
/// Its secret.
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";
/// The development secret of sync-worker (built-in default).
pub const SYNC_WORKER_SECRET: &str = "dev-only-sync-worker-secret";
/// The development secret of webhook-receiver (built-in default).
pub const RECEIVER_SECRET: &str = "dev-only-webhook-receiver-secret";

/// Settings for a gateway over `db`, talking to `sim_base`, publishing on `amqp`.
pub fn settings(db: &TestDatabase, amqp: &AmqpSettings, sim_base: &str) -> Settings {
    let env = vec![
        (
            "HUBSCORE__RUNTIME__DEVELOPMENT".to_owned(),
            "true".to_owned(),
        ),
        ("HUBSCORE__HTTP__PORT".to_owned(), "0".to_owned()),
        ("HUBSCORE__DATABASE__URL".to_owned(), db.url.clone()),
        (
            "HUBSCORE__HUBSPOT__API_BASE_URL".to_owned(),
            sim_base.to_owned(),
        ),
        (
            "HUBSCORE__HUBSPOT__OAUTH_BASE_URL".to_owned(),
            sim_base.to_owned(),
        ),
        (
            "HUBSCORE__OAUTH__CLIENT_ID".to_owned(),
            CLIENT_ID.to_owned(),
        ),
        (
            "HUBSCORE__OAUTH__CLIENT_SECRET".to_owned(),
            CLIENT_SECRET.to_owned(),
        ),
        (
            "HUBSCORE__OUTBOX__POLL_INTERVAL_MS".to_owned(),
            "100".to_owned(),
        ),
    ];
    let mut settings: Settings =
        platform::config::load_with_env(auth_gateway::config::DEFAULTS, None, env)
            .expect("settings load");
    settings.amqp = amqp.clone();
    settings.database.max_connections = 30;
    settings
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub sim: RunningSim,
    pub sim_base: String,
    pub settings: Settings,
    pub broker: Broker,
    pub events_queue: String,
    pub apps: Vec<(Shutdown, tokio::task::JoinHandle<anyhow::Result<()>>, u16)>,
    pub db: TestDatabase,
    _cleanup: BrokerCleanup,
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(SimConfig::default(), |_| {}).await
    }

    pub async fn start_with(sim_config: SimConfig, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let db = TestDatabase::create().await.expect("test database");
        let sim = hubspot_sim::spawn(sim_config).await.expect("simulator");
        let sim_base = sim.base_url();
        let amqp = platform::testing::amqp_settings();
        let events_queue = platform::testing::unique_name("auth-gateway-test.events");
        let cleanup = BrokerCleanup::new(&amqp, &[&events_queue]);
        let broker = Broker::start(
            amqp.clone(),
            vec![QueueSpec::new(
                events_queue.clone(),
                ["connection.*", "sync.requested"],
            )],
        );
        assert!(
            broker.wait_connected(Duration::from_secs(20)).await,
            "broker"
        );
        let mut settings = settings(&db, &amqp, &sim_base);
        tweak(&mut settings);
        auth_gateway::startup::migrate(&settings)
            .await
            .expect("migrate");
        let mut app = TestApp {
            base: String::new(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            sim,
            sim_base,
            settings,
            broker,
            events_queue,
            apps: Vec::new(),
            db,
            _cleanup: cleanup,
        };
        let port = app.spawn_replica().await;
        app.base = format!("http://127.0.0.1:{port}");
        app
    }

    /// Starts one more gateway process-like Application on the same database; returns its port.
    pub async fn spawn_replica(&mut self) -> u16 {
        let app = Application::build(self.settings.clone())
            .await
            .expect("application builds");
        let port = app.port();
        let shutdown = Shutdown::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        self.apps.push((shutdown, handle, port));
        port
    }

    pub fn token(&self, org: Uuid, role: Role) -> String {
        self.token_for(org, "user-1", role)
    }

    pub fn token_for(&self, org: Uuid, sub: &str, role: Role) -> String {
        auth_gateway::caller::mint_dev_token(
            &self.settings.caller_jwt,
            sub,
            org,
            role,
            Duration::from_secs(600),
        )
        .expect("mint")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `method path` with a bearer token and optional JSON body; returns status and JSON.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A portal in the simulator, under the gateway's OAuth app.
    pub async fn portal(&self) -> Portal {
        let response = self
            .http
            .post(format!("{}/_sim/portals", self.sim_base))
            .json(&json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "time_zone": "Europe/Berlin"}))
            .send()
            .await
            .expect("create portal");
        assert_eq!(response.status(), 201);
        let v: Value = response.json().await.expect("json");
        Portal {
            id: v["portal_id"].as_i64().expect("id"),
            token: v["private_app_token"].as_str().expect("token").to_owned(),
        }
    }

    /// Connects `portal` in `org` with its private-app token; returns the connection.
    pub async fn connect(&self, org: Uuid, portal: &Portal, webhook_secret: Option<&str>) -> Value {
        let mut body = json!({"name": "production", "access_token": portal.token});
        if let Some(secret) = webhook_secret {
            body["webhook_secret"] = json!(secret);
        }
        let (status, connection) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/connections",
                &self.token(org, Role::Admin),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{connection}");
        connection
    }

    /// Calls an internal route as `service` with `secret`.
    pub async fn internal(
        &self,
        method: reqwest::Method,
        path: &str,
        service: &str,
        secret: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .basic_auth(service, Some(secret));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits for the next event on the test's queue; returns (routing key, type, body).
    pub async fn next_event(&self) -> (String, String, Vec<u8>) {
        let delivery = platform::testing::wait_for_message(
            &self.broker,
            &self.events_queue,
            Duration::from_secs(20),
        )
        .await
        .expect("an event");
        let kind = delivery
            .properties
            .kind()
            .as_ref()
            .map(|k| k.to_string())
            .unwrap_or_default();
        (delivery.routing_key.to_string(), kind, delivery.data)
    }

    pub async fn stop(self) {
        for (shutdown, handle, _) in self.apps {
            shutdown.cancel();
            let _ = handle.await;
        }
        self.broker.close();
        self.sim.stop().await;
    }
}

pub struct Portal {
    pub id: i64,
    pub token: String,
}
