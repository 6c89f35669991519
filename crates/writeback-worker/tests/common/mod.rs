//! Shared set-up: the simulator with a portal, a migrated database, per-test exchanges and
//! queues, the real Application (on a runtime of its own, so a test can kill it outright),
//! and helpers to publish events and read what landed in HubSpot.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![expect(clippy::unwrap_used, reason = "test set-up fails loudly")]

use std::sync::Arc;
use std::time::Duration;

use contracts::v1::{
    AuthKind, ConnectionClosed, ConnectionEstablished, ObjectType, RiskLevel, ScoreUpdated,
};
use hubspot_client::StaticToken;
use hubspot_sim::{RunningSim, SimConfig};
use platform::amqp::{Broker, MessageMeta, OutgoingMessage, Publisher};
use platform::shutdown::Shutdown;
use platform::testing::{BrokerCleanup, TestDatabase, unique_name};
use serde_json::{Value, json};
use uuid::Uuid;
use writeback_worker::{Application, Settings, TokenSources};

/// Generous bound for anything the worker does asynchronously.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Everything one test needs.
pub struct World {
    pub sim: RunningSim,
    pub base: String,
    pub http: reqwest::Client,
    pub portal_id: i64,
    /// The simulator's answer to creating the portal (its apps' ids and keys).
    pub portal: Value,
    pub token: String,
    pub db: TestDatabase,
    pub settings: Settings,
    pub publisher: Publisher,
    pub broker: Broker,
    pub org_id: Uuid,
    pub connection_id: Uuid,
    _cleanup: BrokerCleanup,
}

/// A running Application on a runtime of its own.
pub struct TestApp {
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Shutdown,
    pub port: u16,
}

impl TestApp {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Kills the service as a crash would: every task stops where it is.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Stops the service gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(runtime) = self.runtime.take() {
            tokio::task::spawn_blocking(move || runtime.shutdown_timeout(Duration::from_secs(20)))
                .await
                .unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl World {
    /// A professional-tier portal, a database migrated for the worker, fresh exchanges and
    /// queues.
    pub async fn new() -> Self {
        Self::with_portal(json!({"tier": "professional"})).await
    }

    /// Like [`World::new`] with the portal created from `portal`.
    pub async fn with_portal(portal: Value) -> Self {
        let sim = hubspot_sim::spawn(SimConfig::default()).await.unwrap();
        let base = sim.base_url();
        let http = reqwest::Client::new();
        let created: Value = http
            .post(format!("{base}/_sim/portals"))
            .json(&portal)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let portal_id = created["portal_id"].as_i64().unwrap();
        let token = created["private_app_token"].as_str().unwrap().to_owned();

        let db = TestDatabase::create().await.unwrap();
        let env = vec![
            ("HUBSCORE__DATABASE__URL".to_owned(), db.url.clone()),
            ("HUBSCORE__HTTP__PORT".to_owned(), "0".to_owned()),
            ("HUBSCORE__HUBSPOT__API_BASE_URL".to_owned(), base.clone()),
            (
                "HUBSCORE__WRITEBACK__PRIVATE_APP_TIER".to_owned(),
                "professional".to_owned(),
            ),
            (
                "HUBSCORE__WRITEBACK__BATCH_WINDOW_MS".to_owned(),
                "200".to_owned(),
            ),
            (
                "HUBSCORE__WRITEBACK__RETRY_PAUSE_MS".to_owned(),
                "300".to_owned(),
            ),
            ("HUBSCORE__TELEMETRY__LEVEL".to_owned(), "warn".to_owned()),
        ];
        let mut settings: Settings =
            platform::config::load_with_env(writeback_worker::config::DEFAULTS, None, env).unwrap();
        settings.amqp = platform::testing::amqp_settings();
        settings.outbox.poll_interval_ms = 100;
        settings.hubspot.retry.base_delay_ms = 20;
        settings.hubspot.retry.max_delay_ms = 200;
        settings.writeback.scores_queue = unique_name("writeback-worker.scores");
        settings.writeback.connections_queue = unique_name("writeback-worker.connections");
        settings.writeback.attributes_queue = unique_name("writeback-worker.attributes");
        writeback_worker::startup::migrate(&settings).await.unwrap();
        let cleanup = BrokerCleanup::new(
            &settings.amqp,
            &[
                &settings.writeback.scores_queue,
                &settings.writeback.connections_queue,
                &settings.writeback.attributes_queue,
            ],
        );
        let broker = Broker::start(settings.amqp.clone(), Vec::new());
        assert!(broker.wait_connected(Duration::from_secs(10)).await);
        Self {
            sim,
            base,
            http,
            portal_id,
            portal: created,
            token,
            db,
            settings,
            publisher: Publisher::new(broker.clone()),
            broker,
            org_id: Uuid::now_v7(),
            connection_id: Uuid::now_v7(),
            _cleanup: cleanup,
        }
    }

    /// Starts an Application with the portal's private-app token.
    pub async fn start(&self) -> TestApp {
        self.start_with(self.settings.clone()).await
    }

    /// Starts an Application with these settings.
    pub async fn start_with(&self, settings: Settings) -> TestApp {
        let tokens = TokenSources::fixed(Arc::new(StaticToken::new(self.token.clone())));
        self.start_with_tokens(settings, tokens).await
    }

    /// Starts an Application with these settings and token sources.
    pub async fn start_with_tokens(&self, settings: Settings, tokens: TokenSources) -> TestApp {
        if std::env::var_os("WRITEBACK_TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_test_writer()
                .try_init();
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shutdown = Shutdown::new();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let stop = shutdown.clone();
        runtime.spawn(async move {
            let app = Application::build_with_tokens(settings, tokens)
                .await
                .unwrap();
            let _ = sender.send(app.port());
            app.run_until_stopped(stop).await
        });
        let port = receiver.await.unwrap();
        let app = TestApp {
            runtime: Some(runtime),
            shutdown,
            port,
        };
        // Consumers declare nothing: the broker declares the queues on connect; wait for them.
        let client = reqwest::Client::new();
        assert!(
            platform::testing::eventually(PATIENCE, || async {
                client
                    .get(app.url("/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            })
            .await,
            "the worker never became ready"
        );
        app
    }

    /// Starts an Application, connects the test's connection (a private app) and waits
    /// until its properties are prepared.
    pub async fn start_connected(&self) -> TestApp {
        let app = self.start().await;
        self.connect(Vec::new()).await;
        self.wait_prepared(&app).await;
        app
    }

    /// Publishes `connection.established` for the test's connection (a private app).
    pub async fn connect(&self, scopes: Vec<String>) {
        self.connect_as(AuthKind::PrivateApp, scopes).await;
    }

    /// Publishes `connection.established` for the test's connection, made with `kind`.
    pub async fn connect_as(&self, kind: AuthKind, scopes: Vec<String>) {
        let event = ConnectionEstablished {
            org_id: self.org_id.to_string(),
            connection_id: self.connection_id.to_string(),
            portal_id: self.portal_id,
            auth_kind: kind.into(),
            scopes,
            established_by: None,
            established_at: Some(contracts::time::to_timestamp(chrono::Utc::now())),
            portal: None,
        };
        self.publisher
            .publish_event(&event, MessageMeta::start_trace(Some(self.org_id)))
            .await
            .unwrap();
    }

    /// Publishes `connection.closed` for the test's connection.
    pub async fn close(&self) {
        let event = ConnectionClosed {
            org_id: self.org_id.to_string(),
            connection_id: self.connection_id.to_string(),
            portal_id: self.portal_id,
            auth_kind: AuthKind::PrivateApp.into(),
            closed_by: None,
            closed_at: Some(contracts::time::to_timestamp(chrono::Utc::now())),
            reason: 1,
            reason_detail: String::new(),
        };
        self.publisher
            .publish_event(&event, MessageMeta::start_trace(Some(self.org_id)))
            .await
            .unwrap();
    }

    /// A `score.updated` for a record, computed `at_ms` after the epoch.
    pub fn score(
        &self,
        object_type: ObjectType,
        object_id: i64,
        score: Option<u32>,
        at_ms: i64,
    ) -> ScoreUpdated {
        let level = match score {
            None => RiskLevel::None,
            Some(s) if s >= 70 => RiskLevel::Healthy,
            Some(s) if s >= 40 => RiskLevel::AtRisk,
            Some(_) => RiskLevel::Critical,
        };
        ScoreUpdated {
            org_id: self.org_id.to_string(),
            connection_id: self.connection_id.to_string(),
            portal_id: self.portal_id,
            customer_id: Uuid::now_v7().to_string(),
            contact_id: if object_type == ObjectType::Contact {
                object_id
            } else {
                0
            },
            company_id: (object_type == ObjectType::Company).then_some(object_id),
            old_score: None,
            new_score: score,
            old_risk_level: RiskLevel::None.into(),
            new_risk_level: level.into(),
            factors: Vec::new(),
            config_version: 1,
            computed_at: Some(contracts::time::from_epoch_ms(at_ms)),
            object_type: object_type.into(),
            object_id,
            top_factor: "deal_momentum".to_owned(),
            contribution_deltas: Vec::new(),
        }
    }

    /// Publishes scores (confirmed, in order).
    pub async fn publish_scores(&self, scores: &[ScoreUpdated]) {
        for chunk in scores.chunks(2_000) {
            let messages: Vec<OutgoingMessage> = chunk
                .iter()
                .map(|s| {
                    OutgoingMessage::from_event(s, MessageMeta::start_trace(Some(self.org_id)))
                })
                .collect();
            for result in self.publisher.publish_all(&messages).await {
                result.unwrap();
            }
        }
    }

    /// An OAuth access token of the portal's OAuth app, granted `scopes` (as auth-gateway
    /// holds one after a user connected the portal).
    pub async fn oauth_token(&self, scopes: &[&str]) -> String {
        const REDIRECT: &str = "https://hubscore.example/oauth/callback";
        let answer = self
            .sim_post(
                &format!("/_sim/portals/{}/oauth/authorize", self.portal_id),
                json!({"redirect_uri": REDIRECT, "scopes": scopes}),
            )
            .await;
        let app = hubspot_client::OAuthApp {
            client_id: self.portal["client_id"].as_str().unwrap().to_owned(),
            client_secret: self.portal["client_secret"].as_str().unwrap().to_owned(),
            redirect_uri: REDIRECT.to_owned(),
        };
        let oauth = hubspot_client::OAuthClient::new(
            hubspot_client::ClientConfig::for_base_url(&self.base),
            app,
        )
        .unwrap();
        oauth
            .exchange_code(answer["code"].as_str().unwrap())
            .await
            .unwrap()
            .access_token
    }

    /// Starts a simulator fault (`POST /_sim/faults`).
    pub async fn add_fault(&self, fault: Value) {
        let response = self
            .http
            .post(format!("{}/_sim/faults", self.base))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Ends every simulator fault.
    pub async fn clear_faults(&self) {
        let response = self
            .http
            .delete(format!("{}/_sim/faults", self.base))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The `results` of a simulator control route.
    async fn sim_results(&self, path: &str) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["results"].as_array().cloned().unwrap_or_default()
    }

    /// The timeline events the portal holds.
    pub async fn timeline_events(&self) -> Vec<Value> {
        self.sim_results(&format!("/_sim/portals/{}/timeline-events", self.portal_id))
            .await
    }

    /// The event templates of the portal's OAuth app.
    pub async fn event_templates(&self) -> Vec<Value> {
        self.sim_results(&format!(
            "/_sim/apps/{}/event-templates",
            self.portal["app_id"]
        ))
        .await
    }

    /// Posts `body` to a simulator control route; returns the answer.
    async fn sim_post(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Seeds `contacts` contacts into the portal (ids from 1001).
    pub async fn seed_contacts(&self, contacts: u64) {
        let response = self
            .http
            .post(format!(
                "{}/_sim/portals/{}/seed",
                self.base, self.portal_id
            ))
            .json(
                &json!({"seed": 7, "contacts": contacts, "companies": 0, "deals": 0, "owners": 0}),
            )
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// Creates a record in the simulator; returns its id.
    pub async fn create(&self, object_type: &str, properties: Value) -> i64 {
        let record = self
            .sim_post(
                &format!("/_sim/portals/{}/objects/{object_type}", self.portal_id),
                json!({ "properties": properties }),
            )
            .await;
        record["id"]
            .as_str()
            .map(|s| s.parse().unwrap())
            .or_else(|| record["id"].as_i64())
            .unwrap()
    }

    /// A record's properties as the simulator holds them.
    pub async fn properties(&self, object_type: &str, id: i64) -> Value {
        let record: Value = self
            .http
            .get(format!(
                "{}/_sim/portals/{}/objects/{object_type}/{id}",
                self.base, self.portal_id
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        record["properties"].clone()
    }

    /// Deletes (archives) a record.
    pub async fn delete(&self, object_type: &str, id: i64) {
        let status = self
            .http
            .delete(format!(
                "{}/_sim/portals/{}/objects/{object_type}/{id}",
                self.base, self.portal_id
            ))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
    }

    /// The simulator's request counters of the portal.
    pub async fn stats(&self) -> Value {
        self.http
            .get(format!(
                "{}/_sim/portals/{}/stats",
                self.base, self.portal_id
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Calls the HubSpot API of the portal directly (as the portal's own admin would).
    pub async fn hubspot(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A property definition of the portal, if it exists.
    pub async fn property(&self, object_type: &str, name: &str) -> Option<Value> {
        let (status, body) = self
            .hubspot(
                reqwest::Method::GET,
                &format!("/crm/v3/properties/{object_type}/{name}"),
                None,
            )
            .await;
        (status == 200).then_some(body)
    }

    /// An internal token for the test's org with `role`.
    pub fn token_for(&self, role: &str) -> String {
        platform::testing::internal_token_signer()
            .unwrap()
            .mint(
                "writeback-worker",
                "user:test",
                Some(self.org_id),
                vec![role.to_owned()],
            )
            .unwrap()
    }

    /// Calls the worker's API as an admin of the test's org.
    pub async fn api(
        &self,
        app: &TestApp,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.api_as(app, "admin", method, path, body).await
    }

    /// Calls the worker's API with a role.
    pub async fn api_as(
        &self,
        app: &TestApp,
        role: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, app.url(path))
            .bearer_auth(self.token_for(role));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The connection's writeback status.
    pub async fn status(&self, app: &TestApp) -> Value {
        let path = format!(
            "/api/v1/connections/{}/writeback/status",
            self.connection_id
        );
        let (code, body) = self.api(app, reqwest::Method::GET, &path, None).await;
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Waits until the status satisfies `done`; panics with the last status otherwise.
    pub async fn wait_status(
        &self,
        app: &TestApp,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let path = format!(
            "/api/v1/connections/{}/writeback/status",
            self.connection_id
        );
        loop {
            // 404 until the worker has handled connection.established.
            let (code, status) = self.api(app, reqwest::Method::GET, &path, None).await;
            assert!(code == 200 || code == 404, "{code}: {status}");
            if code == 200 && done(&status) {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: last status {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A pool on the worker's database schema, for what a test reads or backdates there.
    pub fn pool(&self) -> platform::db::Pool {
        platform::db::connect_pool(&self.settings.database, writeback_worker::startup::SCHEMA)
            .unwrap()
    }

    /// Waits until the writeback is paused for a reason starting with `reason`.
    pub async fn wait_paused(&self, app: &TestApp, reason: &str) -> Value {
        self.wait_status(app, &format!("paused: {reason}"), |s| {
            s["paused_reason"]
                .as_str()
                .is_some_and(|r| r.starts_with(reason))
        })
        .await
    }

    /// Starts a fault (`fault`'s keys, e.g. `error_rate`) on this portal's contact batch
    /// updates only.
    pub async fn fault_contact_updates(&self, mut fault: Value) {
        fault["path_prefix"] = json!("/crm/v3/objects/contacts/batch/update");
        fault["portal_id"] = json!(self.portal_id);
        self.add_fault(fault).await;
    }

    /// Waits until the connection is known and its properties are prepared.
    pub async fn wait_prepared(&self, app: &TestApp) -> Value {
        let path = format!(
            "/api/v1/connections/{}/writeback/status",
            self.connection_id
        );
        assert!(
            platform::testing::eventually(PATIENCE, || async {
                self.api(app, reqwest::Method::GET, &path, None).await.0 == 200
            })
            .await,
            "connection.established never arrived"
        );
        self.wait_status(app, "properties prepared", |s| {
            s["properties"].as_array().is_some_and(|p| !p.is_empty())
        })
        .await
    }
}
