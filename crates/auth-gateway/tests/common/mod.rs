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
        self.portal_with(json!({})).await
    }

    /// A portal with extra `/_sim/portals` fields (`tier`, `api_limit_increase`, ...).
    pub async fn portal_with(&self, extra: Value) -> Portal {
        let mut body = json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "time_zone": "Europe/Berlin"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let response = self
            .http
            .post(format!("{}/_sim/portals", self.sim_base))
            .json(&body)
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

/// What a finished OAuth flow sent the browser to: the completion URL's query.
pub type Completion = std::collections::HashMap<String, String>;

fn query_of(url: &str) -> Completion {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// How the user answers the consent page.
pub enum Consent<'a> {
    Grant,
    Cancel,
    /// Grant only these scopes.
    GrantScopes(&'a str),
    /// Grant, but the page posts another redirect URI than the gateway uses.
    GrantTo(&'a str),
}

impl TestApp {
    /// Starts the flow as an admin of `org`; returns the authorize URL.
    pub async fn start_oauth(&self, org: Uuid) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/connections/hubspot/oauth",
                &self.token_for(org, "admin-7", Role::Admin),
                Some(json!({"name": "via oauth"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["authorize_url"].as_str().expect("url").to_owned()
    }

    /// Opens the consent page at `authorize_url` and answers it; returns the query HubSpot
    /// redirects back with (`code` and `state`, or `error` and `state`).
    pub async fn consent(&self, authorize_url: &str, consent: Consent<'_>) -> String {
        let page = self
            .http
            .get(authorize_url)
            .send()
            .await
            .expect("consent page")
            .text()
            .await
            .expect("html");
        assert!(page.contains("Grant access"), "{page}");
        let asked = query_of(authorize_url);
        let scope = format!(
            "{} {}",
            asked.get("scope").cloned().unwrap_or_default(),
            asked.get("optional_scope").cloned().unwrap_or_default()
        );
        let (decision, scope, redirect) = match consent {
            Consent::Grant => ("grant", scope, asked["redirect_uri"].clone()),
            Consent::Cancel => ("cancel", scope, asked["redirect_uri"].clone()),
            Consent::GrantScopes(scopes) => {
                ("grant", scopes.to_owned(), asked["redirect_uri"].clone())
            }
            Consent::GrantTo(redirect) => ("grant", scope, redirect.to_owned()),
        };
        let response = self
            .http
            .post(format!("{}/oauth/authorize/decision", self.sim_base))
            .form(&[
                ("client_id", asked["client_id"].as_str()),
                ("redirect_uri", redirect.as_str()),
                ("scope", scope.as_str()),
                ("state", asked["state"].as_str()),
                ("decision", decision),
            ])
            .send()
            .await
            .expect("decision");
        assert_eq!(response.status(), 302);
        let location = response.headers()["location"].to_str().expect("location");
        url::Url::parse(location)
            .expect("url")
            .query()
            .unwrap_or_default()
            .to_owned()
    }

    /// Calls the gateway's callback with `query`; returns the completion redirect's query.
    pub async fn callback(&self, query: &str) -> Completion {
        let response = self
            .http
            .get(self.url(&format!("/api/v1/oauth/hubspot/callback?{query}")))
            .send()
            .await
            .expect("callback");
        assert_eq!(response.status(), 302);
        let location = response.headers()["location"].to_str().expect("location");
        assert!(
            location.starts_with(&self.settings.oauth.completion_redirect_url),
            "{location}"
        );
        query_of(location)
    }

    /// Runs the whole flow with Grant for `org`; returns the new connection's id.
    pub async fn oauth_connect(&self, org: Uuid) -> String {
        let url = self.start_oauth(org).await;
        let back = self.consent(&url, Consent::Grant).await;
        let outcome = self.callback(&back).await;
        assert_eq!(outcome["outcome"], "connected", "{outcome:?}");
        outcome["connection_id"].clone()
    }

    /// The connection's stored refresh token, opened with the gateway's own vault.
    pub async fn stored_secret(
        &self,
        connection_id: &str,
        field: auth_gateway::vault::Field,
    ) -> Option<String> {
        use diesel_async::RunQueryDsl as _;
        use secrecy::ExposeSecret as _;
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            sealed: String,
        }
        let pool = platform::db::connect_pool(&self.settings.database, "auth").expect("pool");
        let mut conn = pool.get().await.expect("connection");
        let id = Uuid::parse_str(connection_id).expect("uuid");
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT sealed FROM credentials WHERE connection_id = $1 AND field = $2",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<diesel::sql_types::Text, _>(field.as_str())
        .load(&mut conn)
        .await
        .expect("query");
        let vault =
            auth_gateway::vault::Vault::from_keyring(&self.settings.vault.keyring).expect("vault");
        rows.into_iter().next().map(|r| {
            vault
                .open(id, field, &r.sealed)
                .expect("opens")
                .expose_secret()
                .to_owned()
        })
    }

    /// Runs `sql` on the gateway's schema.
    pub async fn sql(&self, sql: &str) {
        use diesel_async::SimpleAsyncConnection as _;
        let pool = platform::db::connect_pool(&self.settings.database, "auth").expect("pool");
        let mut conn = pool.get().await.expect("connection");
        conn.batch_execute(sql).await.expect("sql");
    }
}

/// A pass-through HTTP proxy in front of the simulator that counts refresh-token grants.
pub struct CountingProxy {
    pub base: String,
    pub refreshes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl CountingProxy {
    pub async fn start(upstream: String) -> CountingProxy {
        use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
        let refreshes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = refreshes.clone();
        let client = reqwest::Client::new();
        let server = HttpServer::new(move || {
            let counter = counter.clone();
            let client = client.clone();
            let upstream = upstream.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let counter = counter.clone();
                let client = client.clone();
                let upstream = upstream.clone();
                async move {
                    if req.path().ends_with("/token")
                        && String::from_utf8_lossy(&body).contains("grant_type=refresh_token")
                    {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
                        .expect("method");
                    let mut forwarded = client.request(method, format!("{upstream}{}", req.uri()));
                    for (name, value) in req.headers() {
                        if name != "host" {
                            forwarded = forwarded.header(name.as_str(), value.as_bytes());
                        }
                    }
                    let response = forwarded
                        .body(body.to_vec())
                        .send()
                        .await
                        .expect("upstream");
                    let status = response.status().as_u16();
                    let content_type = response
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("application/json")
                        .to_owned();
                    let bytes = response.bytes().await.expect("body");
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(status).expect("status"),
                    )
                    .content_type(content_type)
                    .body(bytes)
                }
            }))
        })
        .workers(2)
        .bind(("127.0.0.1", 0))
        .expect("bind");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        CountingProxy {
            base: format!("http://127.0.0.1:{port}"),
            refreshes,
            handle,
        }
    }

    pub fn count(&self) -> usize {
        self.refreshes.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
