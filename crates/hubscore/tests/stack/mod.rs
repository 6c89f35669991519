//! The whole stack as real processes, shared by the end-to-end tests (`tests/e2e.rs`) and
//! the freshness benchmark (`benches/freshness.rs`): the simulator with a seeded portal,
//! every service migrated and started (optionally several replicas of each worker, or
//! everything reaching RabbitMQ and PostgreSQL through proxies a test can cut), the
//! `hubscore` CLI, and checks of the outcome against the simulator's records.

#![allow(
    dead_code,
    reason = "the tests and the benchmark each use a different part of it"
)]
#![expect(
    clippy::expect_used,
    reason = "a failed step of an end-to-end run fails it loudly"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
use platform::testing::{
    BrokerCleanup, ServiceProcess, TcpProxy, TestDatabase, run_binary, unique_name,
};
use serde_json::{Value, json};

/// The binaries cargo built next to this test's executable (`target/debug`).
pub fn binary(name: &str) -> String {
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

pub struct Stack {
    pub sim: hubspot_sim::RunningSim,
    pub http: reqwest::Client,
    pub portal_id: u64,
    pub portal_token: String,
    /// The portal's app client secret: what the simulator signs webhooks with.
    pub client_secret: String,
    pub gateway_url: String,
    pub receiver_url: String,
    pub env: Vec<(&'static str, String)>,
    /// Each running service process with its name and the HTTP port it listens on.
    pub processes: Vec<(&'static str, u16, ServiceProcess)>,
    pub exchange: String,
    pub queues: Vec<String>,
    /// With [`Stack::start_proxied`]: every service reaches RabbitMQ and PostgreSQL
    /// through these, so a test can take either away from all of them.
    pub proxies: Option<Proxies>,
    pub database: TestDatabase,
    // Last: deletes the stack's queues and exchanges once every process has stopped.
    _cleanup: BrokerCleanup,
}

pub struct Proxies {
    pub broker: TcpProxy,
    pub database: TcpProxy,
}

/// The three workers, which run as `replicas` processes each (the gateway and the
/// receiver run once).
pub const WORKERS: [&str; 3] = ["sync-worker", "scoring-engine", "writeback-worker"];

pub const ORG: &str = "00000000-0000-7000-8000-0000000e2e01";
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
    pub async fn start(contacts: usize, companies: usize, deals: usize, replicas: usize) -> Stack {
        Self::start_with(contacts, companies, deals, replicas, false).await
    }

    /// [`Stack::start`] with one replica of each service, all of them reaching RabbitMQ
    /// and PostgreSQL through proxies the test can cut.
    pub async fn start_proxied(contacts: usize, companies: usize, deals: usize) -> Stack {
        Self::start_with(contacts, companies, deals, 1, true).await
    }

    pub async fn start_with(
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
            "writeback.attributes",
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
            (
                "HUBSCORE__WRITEBACK__ATTRIBUTES_QUEUE",
                format!("{prefix}.writeback.attributes"),
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
    pub async fn kill_and_restart(&mut self, service: &str) {
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
    pub async fn connect_and_sync(&self, token: &str) -> String {
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
    pub async fn hubspot_values(&self, object_type: &str, property: &str) -> BTreeMap<i64, String> {
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
    pub async fn query_pairs(&self, sql: &str) -> BTreeMap<i64, String> {
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
    /// stage, every customer among them is scored, and every contact scored by hubscore
    /// shows that score in HubSpot.
    pub async fn assert_converges(&self, within: Duration) {
        let started = tokio::time::Instant::now();
        let deadline = started + within;
        let mut last_report = started;
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
            let all_scored = self
                .query_pairs(
                    "select object_id as id, coalesce(score::text, 'N/A') as value \
                     from scoring.scores where object_type = 1",
                )
                .await;
            // Every customer the mirror holds has been scored (N/A counts).
            let unscored: Vec<&i64> = mirror_stages
                .iter()
                .filter(|(id, stage)| *stage != "(not a customer)" && !all_scored.contains_key(id))
                .map(|(id, _)| id)
                .take(5)
                .collect();
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
            if mirror_matches && !scores.is_empty() && unscored.is_empty() && unwritten.is_empty() {
                eprintln!("converged after {:?}", started.elapsed());
                return;
            }
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = tokio::time::Instant::now();
                eprintln!(
                    "not converged after {:?}: mirror matches HubSpot: {mirror_matches}; \
                     unscored {unscored:?}; not shown in HubSpot {unwritten:?}",
                    started.elapsed()
                );
                if !unscored.is_empty() {
                    let ids = unscored
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",");
                    let mirror = self
                        .query_pairs(&format!(
                            "select id, format('publish_pending=%s published_live=%s \
                             source_updated_at=%s', publish_pending, published_live, \
                             source_updated_at) as value from sync.contacts where id in ({ids})"
                        ))
                        .await;
                    let projection = self
                        .query_pairs(&format!(
                            "select contact_id as id, format('lifecycle_stage=%s \
                             source_updated_at=%s', lifecycle_stage, source_updated_at) \
                             as value from scoring.contacts where contact_id in ({ids})"
                        ))
                        .await;
                    eprintln!(
                        "  unscored in the mirror: {mirror:?}; in scoring's projection: {projection:?}"
                    );
                }
                if !unwritten.is_empty() {
                    let ids = unwritten
                        .iter()
                        .map(|(id, _, _)| id.to_string())
                        .collect::<Vec<_>>()
                        .join(",");
                    let scored = self
                        .query_pairs(&format!(
                            "select object_id as id, format('score=%s computed_at=%s', score, \
                             computed_at) as value from scoring.scores \
                             where object_type = 1 and object_id in ({ids})"
                        ))
                        .await;
                    let writeback = self
                        .query_pairs(&format!(
                            "select r.object_id as id, format('score=%s computed_at=%s \
                             revision=%s pending_since=%s inflight_revision=%s attempts=%s \
                             written=%s written_at=%s failure=%s', r.score, r.computed_at, \
                             r.revision, r.pending_since, r.inflight_revision, r.attempts, \
                             r.written, r.written_at, f.reason) as value \
                             from writeback.record_scores r left join writeback.record_failures f \
                             using (connection_id, object_type, object_id) \
                             where r.object_type = 'contacts' and r.object_id in ({ids})"
                        ))
                        .await;
                    let paused = self
                        .query_pairs(
                            "select 0::bigint as id, string_agg(format('%s paused_until=%s \
                             reason=%s needs_prepare=%s', status, paused_until, paused_reason, \
                             needs_prepare), '; ') as value from writeback.connections",
                        )
                        .await;
                    eprintln!(
                        "  not shown: scoring holds {scored:?}; writeback holds {writeback:?}; \
                         connections {paused:?}"
                    );
                }
            }
            if tokio::time::Instant::now() >= deadline {
                eprintln!("queues at the deadline: {:#?}", self.queue_states().await);
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
                     not shown in HubSpot (id, score, shown): {unwritten:?}; customers not \
                     scored: {unscored:?}",
                    hubspot_stages.len(),
                    mirror_stages.len(),
                    scores.len()
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Runs the `hubscore` CLI with a token for the test org; returns stdout.
    pub async fn cli(&self, token: &str, args: &[&str]) -> String {
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

    pub async fn issue_token(&self) -> String {
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
    pub async fn record(&self, object_type: &str, id: &str, properties: &str) -> Value {
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
    pub async fn sim_control(&self, method: reqwest::Method, path: &str, body: Value) {
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
    pub async fn webhook_ledger(&self) -> Value {
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
    pub async fn dead_letters(&self) -> BTreeMap<String, u32> {
        let (connection, channel) = broker_channel().await;
        let mut counts = BTreeMap::new();
        for queue in &self.queues {
            let dlq = platform::amqp::dead_letter_queue_name(queue);
            let count = declared(&channel, &dlq).await.message_count();
            counts.insert(dlq, count);
        }
        let _ = connection.close(200, "counted".into()).await;
        counts
    }

    /// Each work queue's waiting messages and consumers, and its dead-letter queue's
    /// messages: a queue with messages and no consumer is a consumer that stopped.
    pub async fn queue_states(&self) -> Vec<String> {
        let (connection, channel) = broker_channel().await;
        let mut states = Vec::new();
        for queue in &self.queues {
            let work = declared(&channel, queue).await;
            let dlq = declared(&channel, &platform::amqp::dead_letter_queue_name(queue)).await;
            states.push(format!(
                "{queue}: {} ready, {} consumers, {} dead-lettered",
                work.message_count(),
                work.consumer_count(),
                dlq.message_count()
            ));
        }
        let _ = connection.close(200, "counted".into()).await;
        states
    }

    /// A description of up to five messages of each non-empty dead-letter queue: who
    /// dead-lettered it and why (the consumer's reason header, or the broker's `x-death`).
    /// The messages stay where they are.
    pub async fn dead_letter_samples(&self) -> Vec<String> {
        let (connection, channel) = broker_channel().await;
        let mut samples = Vec::new();
        for queue in &self.queues {
            let dlq = platform::amqp::dead_letter_queue_name(queue);
            for _ in 0..5 {
                let Some(message) = channel
                    .basic_get(
                        dlq.as_str().into(),
                        lapin::options::BasicGetOptions::default(),
                    )
                    .await
                    .expect("basic.get")
                else {
                    break;
                };
                let headers = message
                    .delivery
                    .properties
                    .headers()
                    .as_ref()
                    .map(show_table)
                    .unwrap_or_default();
                samples.push(format!(
                    "{dlq}: type {:?}, routing key {}, headers {headers}",
                    message.delivery.properties.kind(),
                    message.delivery.routing_key
                ));
            }
        }
        let _ = connection.close(200, "sampled".into()).await;
        samples
    }

    pub async fn stop(self) {
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

/// The stage a contact moves to in the change tests: one the default model values
/// differently from `current`, so the score must move.
pub fn other_stage(current: &str) -> &'static str {
    if matches!(current, "customer" | "evangelist") {
        "subscriber"
    } else {
        "customer"
    }
}

/// AMQP headers as `{name: value, ...}` with strings as text rather than bytes.
fn show_table(table: &lapin::types::FieldTable) -> String {
    let fields: Vec<String> = table
        .inner()
        .iter()
        .map(|(name, value)| format!("{name}: {}", show_value(value)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn show_value(value: &lapin::types::AMQPValue) -> String {
    use lapin::types::AMQPValue;
    match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::FieldTable(t) => show_table(t),
        AMQPValue::FieldArray(a) => {
            let items: Vec<String> = a.as_slice().iter().map(show_value).collect();
            format!("[{}]", items.join(", "))
        }
        other => format!("{other:?}"),
    }
}

/// The queue `name` as the broker reports it now (it must exist).
async fn declared(channel: &lapin::Channel, name: &str) -> lapin::Queue {
    channel
        .queue_declare(
            name.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("queue {name} does not exist: {e}"))
}

/// A connection of the test's own to RabbitMQ (not through any proxy) and a channel on it.
async fn broker_channel() -> (lapin::Connection, lapin::Channel) {
    let connection = lapin::Connection::connect(
        &platform::testing::amqp_url(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    (connection, channel)
}
