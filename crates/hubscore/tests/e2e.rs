//! The whole stack as real processes: the five service binaries, the `hubscore` CLI and
//! `auth-gateway issue-token`, against the real PostgreSQL and RabbitMQ, with the simulator
//! as HubSpot. Each test has its own database, exchanges and queue names, so it runs beside
//! any other test. Besides the happy path: a change reaching a `score.updated` consumer
//! and HubSpot; two replicas of every worker killed mid-sync and mid-stream; RabbitMQ,
//! PostgreSQL and HubSpot taken away during a webhook stream. Each ends by checking that
//! the mirror equals HubSpot and that HubSpot shows every score hubscore holds.

#![expect(
    clippy::expect_used,
    reason = "a failed step of an end-to-end test fails it loudly"
)]

use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeMap;

use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
use futures::StreamExt as _;
use platform::testing::{
    BrokerCleanup, ServiceProcess, TcpProxy, TestDatabase, run_binary, unique_name,
};
use prost::Message as _;
use serde_json::{Value, json};

/// The binaries cargo built next to this test's executable (`target/debug`).
fn binary(name: &str) -> String {
    let mut dir: PathBuf = std::env::current_exe().expect("test executable");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name).to_string_lossy().into_owned()
}

/// A free port on loopback (bound, read, released): the services need each other's
/// addresses before they start.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// Starts `service serve` listening on `port` and waits until it is ready (its queues
/// declared and bound: a message published before that would not reach it).
async fn start_service(service: &str, port: u16, env: &[(&'static str, String)]) -> ServiceProcess {
    let mut with_port = env.to_vec();
    with_port.push(("HUBSCORE__HTTP__PORT", port.to_string()));
    let process = ServiceProcess::start(&binary(service), &with_port)
        .await
        .unwrap_or_else(|e| panic!("{service} starts: {e:#}"));
    let ready = platform::testing::eventually(Duration::from_secs(60), || async {
        reqwest::get(format!("{}/readyz", process.base_url()))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(ready, "{service} did not become ready within 60 s");
    process
}

/// The `host:port` of a URL such as `amqp://guest:guest@127.0.0.1:5672/%2f`.
fn address_of(url: &str) -> std::net::SocketAddr {
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("a URL with an authority");
    let host_port = authority.rsplit('@').next().expect("host and port");
    std::net::ToSocketAddrs::to_socket_addrs(host_port)
        .expect("an address")
        .next()
        .expect("an address")
}

/// `url` with its host and port replaced by `proxy`.
fn via(url: &str, proxy: std::net::SocketAddr) -> String {
    let original = address_of(url);
    url.replacen(&original.to_string(), &proxy.to_string(), 1)
}

struct Stack {
    sim: hubspot_sim::RunningSim,
    http: reqwest::Client,
    portal_id: u64,
    portal_token: String,
    /// The portal's app client secret: what the simulator signs webhooks with.
    client_secret: String,
    gateway_url: String,
    receiver_url: String,
    env: Vec<(&'static str, String)>,
    /// Each running service process with its name and the HTTP port it listens on.
    processes: Vec<(&'static str, u16, ServiceProcess)>,
    exchange: String,
    queues: Vec<String>,
    /// With [`Stack::start_proxied`]: every service reaches RabbitMQ and PostgreSQL
    /// through these, so a test can take either away from all of them.
    proxies: Option<Proxies>,
    database: TestDatabase,
    // Last: deletes the stack's queues and exchanges once every process has stopped.
    _cleanup: BrokerCleanup,
}

struct Proxies {
    broker: TcpProxy,
    database: TcpProxy,
}

/// The three workers, which run as `replicas` processes each (the gateway and the
/// receiver run once).
const WORKERS: [&str; 3] = ["sync-worker", "scoring-engine", "writeback-worker"];

const ORG: &str = "00000000-0000-7000-8000-0000000e2e01";
const SERVICES: [&str; 5] = [
    "auth-gateway",
    "webhook-receiver",
    "sync-worker",
    "scoring-engine",
    "writeback-worker",
];

impl Stack {
    /// Starts the simulator with a seeded professional-tier portal, migrates and starts
    /// the five services wired to each other.
    async fn start(contacts: usize, companies: usize, deals: usize, replicas: usize) -> Stack {
        Self::start_with(contacts, companies, deals, replicas, false).await
    }

    /// [`Stack::start`] with one replica of each service, all of them reaching RabbitMQ
    /// and PostgreSQL through proxies the test can cut.
    async fn start_proxied(contacts: usize, companies: usize, deals: usize) -> Stack {
        Self::start_with(contacts, companies, deals, 1, true).await
    }

    async fn start_with(
        contacts: usize,
        companies: usize,
        deals: usize,
        replicas: usize,
        proxied: bool,
    ) -> Stack {
        let sim = hubspot_sim::spawn(hubspot_sim::SimConfig {
            webhook_retry_base_ms: 100,
            ..Default::default()
        })
        .await
        .expect("simulator");
        let http = reqwest::Client::new();
        let base = sim.base_url();
        let portal: Value = http
            .post(format!("{base}/_sim/portals"))
            .json(&json!({"tier": "professional"}))
            .send()
            .await
            .expect("create portal")
            .json()
            .await
            .expect("portal json");
        let portal_id = portal["portal_id"].as_u64().expect("portal id");
        let portal_token = portal["private_app_token"]
            .as_str()
            .expect("token")
            .to_owned();
        let client_secret = portal["client_secret"].as_str().expect("secret").to_owned();
        let seeded = http
            .post(format!("{base}/_sim/portals/{portal_id}/seed"))
            .json(&json!({"seed": 7, "contacts": contacts, "companies": companies, "deals": deals, "owners": 3}))
            .send()
            .await
            .expect("seed");
        assert!(seeded.status().is_success(), "seeding failed");

        let database = TestDatabase::create().await.expect("database");
        let prefix = unique_name("e2e");
        let ports: Vec<u16> = SERVICES.iter().map(|_| free_port()).collect();
        // Retries wait in delay queues named after their delay: fixed here so that the
        // cleanup knows every queue the services declare.
        let mut amqp = platform::testing::amqp_settings();
        amqp.exchange = format!("{prefix}.events");
        amqp.dead_letter_exchange = format!("{prefix}.dlx");
        amqp.retry_initial_backoff_ms = 200;
        amqp.retry_max_backoff_ms = 3_200;
        let queues: Vec<String> = [
            "sync.commands",
            "sync.webhooks",
            "scoring.crm",
            "writeback.scores",
            "writeback.connections",
        ]
        .iter()
        .map(|q| format!("{prefix}.{q}"))
        .collect();
        let cleanup = BrokerCleanup::new(
            &amqp,
            &queues.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        // Migrations run directly: a deployment runs them as a release step.
        let migrate_env: Vec<(&'static str, String)> = vec![
            ("HUBSCORE__RUNTIME__DEVELOPMENT", "true".into()),
            ("HUBSCORE__DATABASE__URL", database.url.clone()),
        ];
        let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
        let proxies = if proxied {
            Some(Proxies {
                broker: TcpProxy::start(address_of(&platform::testing::amqp_url()))
                    .await
                    .expect("broker proxy"),
                database: TcpProxy::start(address_of(&database.url))
                    .await
                    .expect("database proxy"),
            })
        } else {
            None
        };
        let (amqp_url, database_url) = match &proxies {
            Some(p) => (
                via(&platform::testing::amqp_url(), p.broker.address()),
                via(&database.url, p.database.address()),
            ),
            None => (platform::testing::amqp_url(), database.url.clone()),
        };
        let env: Vec<(&'static str, String)> = vec![
            ("HUBSCORE__RUNTIME__DEVELOPMENT", "true".into()),
            ("HUBSCORE__DATABASE__URL", database_url),
            ("HUBSCORE__AMQP__URL", amqp_url),
            ("HUBSCORE__AMQP__RECONNECT_MAX_BACKOFF_MS", "1000".into()),
            ("HUBSCORE__AMQP__EXCHANGE", amqp.exchange.clone()),
            (
                "HUBSCORE__AMQP__DEAD_LETTER_EXCHANGE",
                amqp.dead_letter_exchange.clone(),
            ),
            (
                "HUBSCORE__AMQP__RETRY_INITIAL_BACKOFF_MS",
                amqp.retry_initial_backoff_ms.to_string(),
            ),
            (
                "HUBSCORE__AMQP__RETRY_MAX_BACKOFF_MS",
                amqp.retry_max_backoff_ms.to_string(),
            ),
            ("HUBSCORE__HUBSPOT__API_BASE_URL", base.clone()),
            ("HUBSCORE__HUBSPOT__OAUTH_BASE_URL", base.clone()),
            ("HUBSCORE__UPSTREAMS__SYNC_WORKER", url(2)),
            ("HUBSCORE__UPSTREAMS__SCORING_ENGINE", url(3)),
            ("HUBSCORE__UPSTREAMS__WRITEBACK_WORKER", url(4)),
            ("HUBSCORE__GATEWAY__BASE_URL", url(0)),
            ("HUBSCORE__AUTH_GATEWAY__BASE_URL", url(0)),
            ("HUBSCORE__WEBHOOKS__PUBLIC_BASE_URL", url(1)),
            (
                "HUBSCORE__WEBHOOKS__APP_CLIENT_SECRETS",
                client_secret.clone(),
            ),
            (
                "HUBSCORE__SYNC__COMMANDS_QUEUE",
                format!("{prefix}.sync.commands"),
            ),
            (
                "HUBSCORE__SYNC__WEBHOOKS_QUEUE",
                format!("{prefix}.sync.webhooks"),
            ),
            ("HUBSCORE__SCORING__QUEUE", format!("{prefix}.scoring.crm")),
            (
                "HUBSCORE__WRITEBACK__SCORES_QUEUE",
                format!("{prefix}.writeback.scores"),
            ),
            (
                "HUBSCORE__WRITEBACK__CONNECTIONS_QUEUE",
                format!("{prefix}.writeback.connections"),
            ),
        ];
        for service in [
            "auth-gateway",
            "sync-worker",
            "scoring-engine",
            "writeback-worker",
        ] {
            let (status, _, stderr) = run_binary(&binary(service), &["migrate"], &migrate_env)
                .await
                .expect("migrate runs");
            assert!(status.success(), "{service} migrate failed: {stderr}");
        }
        let mut processes = Vec::new();
        for (i, service) in SERVICES.iter().enumerate() {
            let count = if WORKERS.contains(service) {
                replicas
            } else {
                1
            };
            for replica in 0..count {
                // The first replica listens where the others are told to find it.
                let port = if replica == 0 { ports[i] } else { free_port() };
                processes.push((*service, port, start_service(service, port, &env).await));
            }
        }
        // The webhooks of the portal go to the receiver's public-app route.
        let put = http
            .put(format!("{base}/_sim/portals/{portal_id}/webhooks"))
            .json(&json!({"target_url": format!("{}/webhooks/hubspot", url(1))}))
            .send()
            .await
            .expect("webhook target");
        assert!(
            put.status().is_success(),
            "setting the webhook target failed"
        );
        Stack {
            sim,
            http,
            portal_id,
            portal_token,
            client_secret,
            gateway_url: url(0),
            receiver_url: url(1),
            env,
            processes,
            exchange: amqp.exchange,
            queues,
            proxies,
            database,
            _cleanup: cleanup,
        }
    }

    /// Kills one process of `service` with SIGKILL, as a crash would, and starts a new one
    /// on the same port.
    async fn kill_and_restart(&mut self, service: &str) {
        let index = self
            .processes
            .iter()
            .position(|(name, _, _)| *name == service)
            .expect("a running process of the service");
        let (name, port, process) = self.processes.remove(index);
        process.kill().await.expect("kill -9");
        let restarted = start_service(name, port, &self.env).await;
        self.processes.push((name, port, restarted));
    }

    /// Connects the portal with the CLI and follows its initial sync to the end; returns
    /// the connection id.
    async fn connect_and_sync(&self, token: &str) -> String {
        let connection: Value = serde_json::from_str(
            &self
                .cli(token, &["--json", "connections", "add", "--name", "e2e"])
                .await,
        )
        .expect("connection json");
        assert_eq!(connection["portal_id"].as_u64(), Some(self.portal_id));
        let connection_id = connection["id"].as_str().expect("connection id").to_owned();
        let run: Value = serde_json::from_str(
            &self
                .cli(token, &["--json", "sync", "follow", &connection_id])
                .await,
        )
        .expect("sync json");
        assert_eq!(run["state"], "succeeded", "{run}");
        connection_id
    }

    /// One property of every live record of `object_type` in the simulator, by id, read
    /// from its store (reading through the API would spend the portal's rate limit, which
    /// the services under test share).
    async fn hubspot_values(&self, object_type: &str, property: &str) -> BTreeMap<i64, String> {
        let object_type = match object_type {
            "contacts" => hubspot_sim::model::ObjectType::Contacts,
            "companies" => hubspot_sim::model::ObjectType::Companies,
            other => panic!("no such object type {other}"),
        };
        let portal = self
            .sim
            .sim()
            .portal(self.portal_id)
            .expect("the portal in the simulator");
        let data = portal.data.read();
        data.store(object_type)
            .live
            .values()
            .map(|record| {
                (
                    i64::try_from(record.id).expect("id"),
                    record.props.get(property).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Rows of one SQL query over the stack's database, each as (id, text).
    async fn query_pairs(&self, sql: &str) -> BTreeMap<i64, String> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        let mut connection = diesel_async::AsyncPgConnection::establish(&self.database.url)
            .await
            .expect("database connection");
        let rows: Vec<Row> = diesel::sql_query(sql)
            .load(&mut connection)
            .await
            .expect("query");
        rows.into_iter().map(|r| (r.id, r.value)).collect()
    }

    /// Waits until the mirror holds every live HubSpot contact with HubSpot's lifecycle
    /// stage, and every contact scored by hubscore shows that score in HubSpot.
    async fn assert_converges(&self, within: Duration) {
        let started = tokio::time::Instant::now();
        let deadline = started + within;
        loop {
            let hubspot_stages = self.hubspot_values("contacts", "lifecyclestage").await;
            let mirror_stages = self
                .query_pairs(
                    "select id, case when skip_reason is null \
                     then coalesce(lifecycle_stage, '') else '(not a customer)' end as value \
                     from sync.contacts where not archived and merged_into is null",
                )
                .await;
            let scores = self
                .query_pairs(
                    "select object_id as id, score::text as value from scoring.scores \
                     where object_type = 1 and score is not null",
                )
                .await;
            let written = self
                .hubspot_values("contacts", "hubscore_health_score")
                .await;
            // Only records still in HubSpot can show a score.
            let unwritten: Vec<(&i64, &String, Option<&String>)> = scores
                .iter()
                .filter(|(id, _)| hubspot_stages.contains_key(id))
                .filter(|(id, score)| written.get(id) != Some(score))
                .map(|(id, score)| (id, score, written.get(id)))
                .take(5)
                .collect();
            // A contact that is not a customer (no valid e-mail, say) is mirrored without
            // its CRM fields; every other one carries HubSpot's current stage.
            let mirror_matches = hubspot_stages.len() == mirror_stages.len()
                && hubspot_stages.iter().all(|(id, stage)| {
                    mirror_stages
                        .get(id)
                        .is_some_and(|m| m == stage || m == "(not a customer)")
                });
            if mirror_matches && !scores.is_empty() && unwritten.is_empty() {
                eprintln!("converged after {:?}", started.elapsed());
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let missing: Vec<_> = hubspot_stages
                    .iter()
                    .filter(|(id, stage)| {
                        !mirror_stages
                            .get(id)
                            .is_some_and(|m| m == *stage || m == "(not a customer)")
                    })
                    .map(|(id, stage)| (id, stage, mirror_stages.get(id)))
                    .take(5)
                    .collect();
                let extra: Vec<_> = mirror_stages
                    .keys()
                    .filter(|id| !hubspot_stages.contains_key(id))
                    .take(5)
                    .collect();
                panic!(
                    "no convergence within {within:?}: {} contacts in HubSpot, {} in the \
                     mirror (differing (id, HubSpot, mirror): {missing:?}, not in HubSpot: {extra:?}); {} scored, \
                     not shown in HubSpot (id, score, shown): {unwritten:?}",
                    hubspot_stages.len(),
                    mirror_stages.len(),
                    scores.len()
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Runs the `hubscore` CLI with a token for the test org; returns stdout.
    async fn cli(&self, token: &str, args: &[&str]) -> String {
        let mut env = self.env.clone();
        env.push(("HUBSCORE_URL", self.gateway_url.clone()));
        env.push(("HUBSCORE_TOKEN", token.to_owned()));
        env.push(("HUBSPOT_ACCESS_TOKEN", self.portal_token.clone()));
        env.push(("HUBSPOT_WEBHOOK_SECRET", self.client_secret.clone()));
        let (status, stdout, stderr) = run_binary(&binary("hubscore"), args, &env)
            .await
            .expect("hubscore runs");
        assert!(status.success(), "hubscore {args:?} failed: {stderr}");
        stdout
    }

    async fn issue_token(&self) -> String {
        let (status, stdout, stderr) = run_binary(
            &binary("auth-gateway"),
            &[
                "issue-token",
                "--org",
                ORG,
                "--sub",
                "e2e-admin",
                "--role",
                "owner",
                "--ttl",
                "3600",
            ],
            &self.env,
        )
        .await
        .expect("issue-token runs");
        assert!(status.success(), "issue-token failed: {stderr}");
        stdout.trim().to_owned()
    }

    /// A HubSpot record as the simulator holds it, with the given properties.
    async fn record(&self, object_type: &str, id: &str, properties: &str) -> Value {
        self.http
            .get(format!(
                "{}/crm/v3/objects/{object_type}/{id}?properties={properties}",
                self.sim.base_url()
            ))
            .bearer_auth(&self.portal_token)
            .send()
            .await
            .expect("read record")
            .json()
            .await
            .expect("record json")
    }

    /// A control call to the simulator that must succeed.
    async fn sim_control(&self, method: reqwest::Method, path: &str, body: Value) {
        let response = self
            .http
            .request(method.clone(), format!("{}{path}", self.sim.base_url()))
            .json(&body)
            .send()
            .await
            .expect("simulator control");
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
    }

    /// The simulator's webhook ledger for the portal.
    async fn webhook_ledger(&self) -> Value {
        self.http
            .get(format!(
                "{}/_sim/portals/{}/webhooks",
                self.sim.base_url(),
                self.portal_id
            ))
            .send()
            .await
            .expect("webhook ledger")
            .json()
            .await
            .expect("ledger json")
    }

    /// How many messages each of the stack's dead-letter queues holds.
    async fn dead_letters(&self) -> BTreeMap<String, u32> {
        let connection = lapin::Connection::connect(
            &platform::testing::amqp_url(),
            lapin::ConnectionProperties::default(),
        )
        .await
        .expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        let mut counts = BTreeMap::new();
        for queue in &self.queues {
            let dlq = platform::amqp::dead_letter_queue_name(queue);
            let declared = channel
                .queue_declare(
                    dlq.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await
                .expect("the dead-letter queue exists");
            counts.insert(dlq, declared.message_count());
        }
        let _ = connection.close(200, "counted".into()).await;
        counts
    }

    async fn stop(self) {
        for (_, _, process) in self.processes {
            let status = process
                .terminate(Duration::from_secs(20))
                .await
                .expect("stops on SIGTERM");
            assert!(status.success(), "a service exited with {status}");
        }
        self.sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_portal_connected_with_the_cli_is_synced_scored_and_its_scores_written_back() {
    let stack = Stack::start(120, 30, 60, 1).await;
    let token = stack.issue_token().await;

    let connection: Value = serde_json::from_str(
        &stack
            .cli(&token, &["--json", "connections", "add", "--name", "e2e"])
            .await,
    )
    .expect("connection json");
    let connection_id = connection["id"].as_str().expect("connection id").to_owned();
    assert_eq!(connection["portal_id"].as_u64(), Some(stack.portal_id));

    // `sync follow` returns once the initial sync succeeded (it fails the test otherwise).
    let run: Value = serde_json::from_str(
        &stack
            .cli(&token, &["--json", "sync", "follow", &connection_id])
            .await,
    )
    .expect("sync json");
    assert_eq!(run["state"], "succeeded", "{run}");
    let written: i64 = run["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["object_type"] == "contacts" || o["object_type"] == "contact")
        .map(|o| o["written"].as_i64().unwrap_or(0))
        .sum();
    assert!(written > 0, "the sync wrote no contacts: {run}");

    // Scores arrive, and the worst customer's score is written back onto its HubSpot record.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let worst = loop {
        let list: Value = serde_json::from_str(
            &stack
                .cli(
                    &token,
                    &[
                        "--json",
                        "scores",
                        "--sort",
                        "score",
                        "--limit",
                        "1",
                        "--risk",
                        "critical,at_risk,healthy",
                    ],
                )
                .await,
        )
        .expect("scores json");
        let first = list["customers"][0].clone();
        if first["score"].is_number() {
            break first;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no customer was scored"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let object_type = if worst["object_type"] == "company" {
        "companies"
    } else {
        "contacts"
    };
    let object_id = worst["object_id"].to_string();
    let customer_id = worst["id"].as_str().expect("id").to_owned();
    // HubSpot ends up showing what hubscore shows for the customer now (the org is
    // rescored after the sync, so the value may move before it settles).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let current: Value = serde_json::from_str(
            &stack
                .cli(&token, &["--json", "customer", &customer_id])
                .await,
        )
        .expect("customer json");
        let record = stack
            .record(
                object_type,
                &object_id,
                "hubscore_health_score,hubscore_risk_level",
            )
            .await;
        let shown = &record["properties"];
        if shown["hubscore_health_score"].as_str() == Some(current["score"].to_string().as_str())
            && shown["hubscore_risk_level"] == current["risk_level"]
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{object_type} {object_id} shows {shown} in HubSpot, hubscore shows score {} ({})",
            current["score"],
            current["risk_level"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The explanation names every factor of the default model.
    let explained: Value = serde_json::from_str(
        &stack
            .cli(
                &token,
                &["--json", "customer", worst["id"].as_str().expect("id")],
            )
            .await,
    )
    .expect("customer json");
    let factors: Vec<&str> = explained["factors"]
        .as_array()
        .expect("factors")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        factors,
        [
            "engagement_recency",
            "deal_momentum",
            "lifecycle_stage",
            "activity_frequency",
            "deal_value"
        ]
    );
    stack.stop().await;
}

/// The stage a contact moves to in the change tests: one the default model values
/// differently from `current`, so the score must move.
fn other_stage(current: &str) -> &'static str {
    if matches!(current, "customer" | "evangelist") {
        "subscriber"
    } else {
        "customer"
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_in_hubspot_reaches_a_score_consumer_and_the_record() {
    let stack = Stack::start(60, 15, 30, 1).await;
    let token = stack.issue_token().await;

    // An internal service's consumer: its own queue bound to `score.updated`.
    let broker = lapin::Connection::connect(
        &platform::testing::amqp_url(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("broker");
    let channel = broker.create_channel().await.expect("channel");
    let queue = channel
        .queue_declare(
            "".into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.name().as_str().into(),
            stack.exchange.as_str().into(),
            "score.updated".into(),
            lapin::options::QueueBindOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("bind");
    let mut deliveries = channel
        .basic_consume(
            queue.name().as_str().into(),
            "e2e-consumer".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("consume");

    let connection_id = stack.connect_and_sync(&token).await;
    // HubSpot posts to the private-app route, whose secret the receiver asks auth-gateway
    // for (the connection was added with it).
    stack
        .sim_control(
            reqwest::Method::PUT,
            &format!("/_sim/portals/{}/webhooks", stack.portal_id),
            json!({"target_url": format!("{}/webhooks/hubspot/{connection_id}", stack.receiver_url)}),
        )
        .await;
    // Everything scored is in HubSpot before the change, so what follows is its effect.
    stack.assert_converges(Duration::from_secs(120)).await;
    while tokio::time::timeout(Duration::from_millis(300), deliveries.next())
        .await
        .is_ok()
    {}

    let scored = stack
        .query_pairs(
            "select object_id as id, score::text as value from scoring.scores \
             where object_type = 1 and score is not null order by object_id limit 1",
        )
        .await;
    let (&contact_id, old_score) = scored.iter().next().expect("a scored contact");
    let stages = stack.hubspot_values("contacts", "lifecyclestage").await;
    let new_stage = other_stage(stages.get(&contact_id).map_or("", String::as_str));

    // A sales rep changes the contact's lifecycle stage in HubSpot.
    let changed_at = std::time::Instant::now();
    let patched = stack
        .http
        .patch(format!(
            "{}/_sim/portals/{}/objects/contacts/{contact_id}",
            stack.sim.base_url(),
            stack.portal_id
        ))
        .json(&json!({"properties": {"lifecyclestage": new_stage}}))
        .send()
        .await
        .expect("change in HubSpot");
    assert!(patched.status().is_success(), "the change was refused");

    let event = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(delivery) = deliveries.next().await {
            let delivery = delivery.expect("delivery");
            let event = contracts::v1::ScoreUpdated::decode(delivery.data.as_slice())
                .expect("a ScoreUpdated message");
            if event.object_type == contracts::v1::ObjectType::Contact as i32
                && event.object_id == contact_id
            {
                return event;
            }
        }
        panic!("the consumer's queue closed");
    })
    .await
    .expect("a score.updated for the changed contact within 60 s");
    let to_event = changed_at.elapsed();
    assert_eq!(
        event.old_score.map(|s| s.to_string()).as_deref(),
        Some(old_score.as_str())
    );
    assert_ne!(event.new_score, event.old_score, "{event:?}");
    assert_eq!(event.top_factor, "lifecycle_stage", "{event:?}");
    let new_score = event.new_score.expect("a score").to_string();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let shown = stack
            .record("contacts", &contact_id.to_string(), "hubscore_health_score")
            .await;
        if shown["properties"]["hubscore_health_score"].as_str() == Some(new_score.as_str()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "HubSpot shows {shown}, not the new score {new_score}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Measured, not asserted (the freshness benchmark holds the target).
    eprintln!(
        "change to score.updated: {to_event:?}; change to the value in HubSpot: {:?}",
        changed_at.elapsed()
    );
    let ledger = stack.webhook_ledger().await;
    assert_eq!(
        ledger["failed_attempts"], 0,
        "the private-app route refused a delivery: {ledger}"
    );
    broker.close(200, "done".into()).await.expect("close");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_of_every_worker_killed_mid_sync_and_mid_stream_converge_exactly() {
    let mut stack = Stack::start(3000, 300, 1000, 2).await;
    let token = stack.issue_token().await;
    let connection: Value = serde_json::from_str(
        &stack
            .cli(&token, &["--json", "connections", "add", "--name", "e2e"])
            .await,
    )
    .expect("connection json");
    let connection_id = connection["id"].as_str().expect("connection id").to_owned();

    // Once the full sync has mirrored its first contacts, kill -9 both sync-worker
    // replicas in turn (whichever runs the sync dies mid-way) and start them again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let progress = stack
            .query_pairs("select count(*) as id, 'contacts' as value from sync.contacts")
            .await;
        if let Some((&mirrored, _)) = progress.iter().next()
            && mirrored > 0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sync mirrored nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unfinished = stack
        .query_pairs(
            "select count(*) as id, 'runs' as value from sync.sync_runs \
             where finished_at is null",
        )
        .await;
    assert_eq!(
        unfinished.keys().next(),
        Some(&1),
        "the full sync finished before a worker could be killed in it"
    );
    stack.kill_and_restart("sync-worker").await;
    stack.kill_and_restart("sync-worker").await;
    let run: Value = serde_json::from_str(
        &stack
            .cli(&token, &["--json", "sync", "follow", &connection_id])
            .await,
    )
    .expect("sync json");
    assert_eq!(run["state"], "succeeded", "{run}");

    // A stream of changes in HubSpot while one replica of every worker is killed.
    let start = stack
        .http
        .post(format!(
            "{}/_sim/portals/{}/changes/start",
            stack.sim.base_url(),
            stack.portal_id
        ))
        .json(&json!({"per_second": 20.0, "seed": 11}))
        .send()
        .await
        .expect("start changes");
    assert!(
        start.status().is_success(),
        "the change stream did not start"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for worker in WORKERS {
        stack.kill_and_restart(worker).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stop = stack
        .http
        .post(format!(
            "{}/_sim/portals/{}/changes/stop",
            stack.sim.base_url(),
            stack.portal_id
        ))
        .send()
        .await
        .expect("stop changes");
    assert!(stop.status().is_success(), "the change stream did not stop");

    stack.assert_converges(Duration::from_secs(180)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_and_database_outages_hubspot_down_and_chaos_during_a_webhook_stream_lose_nothing() {
    let stack = Stack::start_proxied(300, 60, 150).await;
    let proxies = stack.proxies.as_ref().expect("proxied");
    let token = stack.issue_token().await;
    stack.connect_and_sync(&token).await;
    let portal = format!("/_sim/portals/{}", stack.portal_id);
    stack
        .sim_control(
            reqwest::Method::POST,
            &format!("{portal}/changes/start"),
            json!({"per_second": 10.0, "seed": 5}),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // RabbitMQ unreachable for every service: the receiver refuses deliveries (503) and
    // HubSpot retries them later.
    proxies.broker.refuse();
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxies.broker.accept();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // PostgreSQL unreachable for every service.
    proxies.database.refuse();
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxies.database.accept();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // HubSpot's API down for longer than the client's own retries last: the work waits
    // in the retry queues instead of being dead-lettered.
    stack
        .sim_control(
            reqwest::Method::POST,
            "/_sim/faults",
            json!({"path_prefix": "/crm", "error_rate": 1.0, "error_status": 503}),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    stack
        .sim_control(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;

    // Then chaos: slow answers and one request in five failing.
    stack
        .sim_control(
            reqwest::Method::POST,
            "/_sim/faults",
            json!({"path_prefix": "/crm", "latency_ms": 50, "error_rate": 0.2, "error_status": 502}),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    stack
        .sim_control(
            reqwest::Method::POST,
            &format!("{portal}/changes/stop"),
            json!({}),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack
        .sim_control(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;

    stack.assert_converges(Duration::from_secs(240)).await;
    // Every delivery HubSpot made landed in the end: some were refused while the broker
    // was away, none was given up on, none is still waiting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let ledger = loop {
        let ledger = stack.webhook_ledger().await;
        if ledger["queued_events"] == 0 && ledger["in_flight_batches"] == 0 {
            break ledger;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhooks still pending: {ledger}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        ledger["failed_attempts"].as_u64() > Some(0),
        "the receiver never refused a delivery while the broker was away: {ledger}"
    );
    assert_eq!(ledger["abandoned_batches"], 0, "{ledger}");
    let dead = stack.dead_letters().await;
    assert!(dead.values().all(|n| *n == 0), "dead-lettered: {dead:?}");
    stack.stop().await;
}
