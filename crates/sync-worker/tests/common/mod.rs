//! The test harness: a real Application on port 0 against a fresh database, a unique
//! exchange on the real broker and the in-process HubSpot simulator; helpers to publish
//! commands and webhook batches, capture what the worker publishes, and compare the
//! mirror with the simulator's records.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![expect(clippy::expect_used, reason = "test helpers fail loudly")]
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use contracts::v1;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl;
use futures::TryStreamExt as _;
use hubspot_client::{ClientConfig, HubSpotClient, ListOptions, StaticToken};
use hubspot_sim::{RunningSim, SimConfig};
use platform::amqp::testing::{BrokerCleanup, amqp_settings, eventually};
use platform::amqp::{Broker, MessageMeta, Publisher, QueueSpec};
use platform::shutdown::Shutdown;
use platform::testing::{TestDatabase, unique_name};
use serde_json::{Value, json};
use sync_worker::hubspot::StaticTokens;
use sync_worker::{Application, Settings};
use uuid::Uuid;

/// A simulator portal.
pub struct Portal {
    pub id: i64,
    pub token: String,
}

pub struct Harness {
    pub database: TestDatabase,
    pub settings: Settings,
    pub sim: RunningSim,
    pub http: reqwest::Client,
    pub broker: Broker,
    pub publisher: Publisher,
    /// Bound to every key the worker publishes.
    pub events_queue: String,
    _cleanup: BrokerCleanup,
}

pub struct RunningApp {
    pub port: u16,
    pub pool: platform::db::Pool,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningApp {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with_sim(SimConfig::default()).await
    }

    pub async fn with_sim(config: SimConfig) -> Harness {
        let database = TestDatabase::create().await.expect("database");
        let sim = hubspot_sim::spawn(config).await.expect("simulator");
        let env = [
            ("HUBSCORE__HTTP__PORT", "0".to_owned()),
            ("HUBSCORE__DATABASE__URL", database.url.clone()),
            ("HUBSCORE__HUBSPOT__API_BASE_URL", sim.base_url()),
            ("HUBSCORE__HUBSPOT__TIER", "professional".to_owned()),
            ("HUBSCORE__SYNC__POLL_INTERVAL_MS", "100".to_owned()),
            ("HUBSCORE__SYNC__PROGRESS_INTERVAL_MS", "0".to_owned()),
            ("HUBSCORE__SYNC__RECONCILE_INTERVAL_SECS", "0".to_owned()),
            ("HUBSCORE__OUTBOX__POLL_INTERVAL_MS", "50".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let mut settings: Settings =
            platform::config::load_with_env(sync_worker::config::DEFAULTS, None, env)
                .expect("settings");
        settings.amqp = amqp_settings();
        // Queue names are global on the broker: each test gets its own.
        settings.sync.commands_queue = unique_name("test.sync-worker.commands");
        settings.sync.webhooks_queue = unique_name("test.sync-worker.webhooks");
        sync_worker::startup::migrate(&settings)
            .await
            .expect("migrate");
        let events_queue = unique_name("test.sync-events");
        let mut queue_names: Vec<String> = sync_worker::startup::queues(&settings.sync)
            .into_iter()
            .map(|q| q.name)
            .collect();
        queue_names.push(events_queue.clone());
        let names: Vec<&str> = queue_names.iter().map(String::as_str).collect();
        let cleanup = BrokerCleanup::new(&settings.amqp, &names);
        let broker = Broker::start(
            settings.amqp.clone(),
            vec![QueueSpec::new(
                events_queue.clone(),
                ["crm.changed.*", "sync.progress", "sync.completed"],
            )],
        );
        assert!(broker.wait_connected(Duration::from_secs(10)).await);
        let publisher = Publisher::new(broker.clone());
        Harness {
            database,
            settings,
            sim,
            http: reqwest::Client::new(),
            broker,
            publisher,
            events_queue,
            _cleanup: cleanup,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sim.base_url(), path)
    }

    /// Starts an Application using `portal`'s private-app token for every connection.
    pub async fn app(&self, portal: &Portal) -> RunningApp {
        self.app_with(portal, self.settings.clone()).await
    }

    pub async fn app_with(&self, portal: &Portal, settings: Settings) -> RunningApp {
        let app = Application::build_with_tokens(
            settings,
            Arc::new(StaticTokens::new(portal.token.clone())),
        )
        .await
        .expect("app");
        let port = app.port();
        let pool = app.pool().clone();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        // Publish only once the worker's queues exist (it declares them on connect).
        let http = self.http.clone();
        let ready = eventually(Duration::from_secs(45), || async {
            http.get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        if !ready {
            let body = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .ok();
            let body = match body {
                Some(r) => r.text().await.unwrap_or_default(),
                None => "no answer".to_owned(),
            };
            panic!("the worker never became ready: {body}");
        }
        RunningApp {
            port,
            pool,
            shutdown,
            task,
        }
    }

    pub async fn portal(&self, tier: &str) -> Portal {
        let resp = self
            .http
            .post(self.url("/_sim/portals"))
            .json(&json!({ "tier": tier }))
            .send()
            .await
            .expect("create portal");
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.expect("json");
        Portal {
            id: v["portal_id"].as_i64().expect("id"),
            token: v["private_app_token"].as_str().expect("token").to_owned(),
        }
    }

    pub async fn seed(&self, portal: &Portal, contacts: usize, companies: usize, deals: usize) {
        let resp = self
            .http
            .post(self.url(&format!("/_sim/portals/{}/seed", portal.id)))
            .json(&json!({"seed": 11, "contacts": contacts, "companies": companies, "deals": deals, "owners": 5}))
            .send()
            .await
            .expect("seed");
        assert_eq!(resp.status(), 200);
    }

    pub async fn sim_get(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("control get")
            .json()
            .await
            .expect("json")
    }

    pub async fn sim_send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, self.url(path))
            .json(&body)
            .send()
            .await
            .expect("control call");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    pub async fn stats(&self, portal: &Portal) -> Value {
        self.sim_get(&format!("/_sim/portals/{}/stats", portal.id))
            .await
    }

    /// Publishes `connection.established` for a new connection of `portal`.
    /// A professional portal seeded with (`contacts`, `companies`, `deals`), a running app
    /// and the portal's connection, once its first full sync has succeeded.
    pub async fn synced(
        &self,
        (contacts, companies, deals): (usize, usize, usize),
    ) -> (Portal, RunningApp, Connection) {
        let portal = self.portal("professional").await;
        self.seed(&portal, contacts, companies, deals).await;
        let app = self.app(&portal).await;
        let connection = self.connect(&portal).await;
        wait_for_run(&app.pool, &connection, "succeeded", 60).await;
        (portal, app, connection)
    }

    pub async fn connect(&self, portal: &Portal) -> Connection {
        let connection = Connection {
            org_id: Uuid::new_v4(),
            connection_id: Uuid::new_v4(),
            portal_id: portal.id,
        };
        let message = v1::ConnectionEstablished {
            org_id: connection.org_id.to_string(),
            connection_id: connection.connection_id.to_string(),
            portal_id: portal.id,
            auth_kind: v1::AuthKind::PrivateApp as i32,
            established_at: Some(contracts::time::to_timestamp(chrono::Utc::now())),
            ..Default::default()
        };
        self.publisher
            .publish_event(&message, MessageMeta::start_trace(Some(connection.org_id)))
            .await
            .expect("publish");
        connection
    }

    pub async fn publish<E: contracts::Event>(&self, event: &E, org: Option<Uuid>) -> Uuid {
        let meta = MessageMeta::start_trace(org);
        let id = meta.message_id;
        self.publisher
            .publish_event(event, meta)
            .await
            .expect("publish");
        id
    }

    /// Every message the worker published so far (taken off the test queue).
    pub async fn take_events(&self) -> Vec<(String, Vec<u8>)> {
        platform::amqp::testing::drain(&self.broker, &self.events_queue)
            .await
            .expect("drain")
            .into_iter()
            .map(|d| (d.routing_key.to_string(), d.data))
            .collect()
    }

    pub fn client(&self, portal: &Portal) -> HubSpotClient {
        HubSpotClient::builder(
            ClientConfig::for_base_url(&self.sim.base_url()),
            Arc::new(StaticToken::new(portal.token.clone())),
        )
        .build()
        .expect("client")
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Connection {
    pub org_id: Uuid,
    pub connection_id: Uuid,
    pub portal_id: i64,
}

#[derive(QueryableByName)]
struct StateRow {
    #[diesel(sql_type = Text)]
    state: String,
}

/// The state of the latest run of a connection.
pub async fn latest_state(pool: &platform::db::Pool, connection: &Connection) -> Option<String> {
    let mut conn = pool.get().await.ok()?;
    let rows: Vec<StateRow> = sql_query(format!(
        "SELECT state FROM sync_runs WHERE connection_id = '{}' ORDER BY requested_at DESC LIMIT 1",
        connection.connection_id
    ))
    .load(&mut conn)
    .await
    .ok()?;
    rows.into_iter().next().map(|r| r.state)
}

/// Waits until the connection's latest run has ended with `state`.
pub async fn wait_for_run(
    pool: &platform::db::Pool,
    connection: &Connection,
    state: &str,
    secs: u64,
) {
    let done = eventually(Duration::from_secs(secs), || async {
        latest_state(pool, connection).await.as_deref() == Some(state)
    })
    .await;
    assert!(
        done,
        "the run did not reach {state}; it is {:?}",
        latest_state(pool, connection).await
    );
}

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
pub struct RecordRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub a: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub b: Option<String>,
}

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct EdgeRow {
    #[diesel(sql_type = BigInt)]
    f: i64,
    #[diesel(sql_type = BigInt)]
    t: i64,
}

/// The mirror's live records: contacts as (id, email, name), companies (id, name,
/// domain), deals (id, name, amount_cents).
pub async fn mirror_records(
    pool: &platform::db::Pool,
    connection: &Connection,
) -> BTreeMap<&'static str, Vec<RecordRow>> {
    let mut conn = pool.get().await.expect("db");
    let live = "skip_reason IS NULL AND NOT archived AND merged_into IS NULL";
    let c = connection.connection_id;
    let mut out = BTreeMap::new();
    for (name, sql) in [
        (
            "contact",
            format!(
                "SELECT id, email AS a, name AS b FROM contacts WHERE connection_id = '{c}' AND {live} ORDER BY id"
            ),
        ),
        (
            "company",
            format!(
                "SELECT id, name AS a, domain AS b FROM companies WHERE connection_id = '{c}' AND {live} ORDER BY id"
            ),
        ),
        (
            "deal",
            format!(
                "SELECT id, name AS a, amount_cents::text AS b FROM deals WHERE connection_id = '{c}' AND {live} ORDER BY id"
            ),
        ),
    ] {
        let rows: Vec<RecordRow> = sql_query(sql).load(&mut conn).await.expect("query");
        out.insert(name, rows);
    }
    out
}

/// The mirror's associations, as (from, to) per table.
pub async fn mirror_edges(
    pool: &platform::db::Pool,
    connection: &Connection,
) -> BTreeMap<&'static str, BTreeSet<(i64, i64)>> {
    let mut conn = pool.get().await.expect("db");
    let c = connection.connection_id;
    let mut out = BTreeMap::new();
    // Edges of deleted records stay in the mirror (a restore brings them back) but are
    // not part of what HubSpot shows, nor of what is published.
    let live = |table: &str, column: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM {table} x WHERE x.connection_id = e.connection_id \
             AND x.id = e.{column} AND x.archived)"
        )
    };
    let edge = |table: &str, f: (&str, &str), t: (&str, &str)| {
        format!(
            "SELECT {} AS f, {} AS t FROM {table} e WHERE connection_id = '{c}' AND {} AND {}",
            f.1,
            t.1,
            live(f.0, f.1),
            live(t.0, t.1)
        )
    };
    for (name, sql) in [
        (
            "contact_companies",
            edge(
                "contact_companies",
                ("contacts", "contact_id"),
                ("companies", "company_id"),
            ),
        ),
        (
            "deal_contacts",
            edge(
                "deal_contacts",
                ("deals", "deal_id"),
                ("contacts", "contact_id"),
            ),
        ),
        (
            "deal_companies",
            edge(
                "deal_companies",
                ("deals", "deal_id"),
                ("companies", "company_id"),
            ),
        ),
    ] {
        let rows: Vec<EdgeRow> = sql_query(sql).load(&mut conn).await.expect("query");
        out.insert(name, rows.into_iter().map(|r| (r.f, r.t)).collect());
    }
    out
}

/// What the mirror should hold: every live record of the simulator portal, mapped and
/// deduplicated through `domain`, and every association.
pub async fn expected_records(
    client: &HubSpotClient,
) -> (
    BTreeMap<&'static str, Vec<RecordRow>>,
    BTreeMap<&'static str, BTreeSet<(i64, i64)>>,
) {
    use domain::mapping::{HubSpotRecord, map_company, map_contact, map_deal};
    let list = async |object: &str, props: &[&str]| -> Vec<hubspot_client::CrmObject> {
        let options = ListOptions {
            properties: props.iter().map(|p| (*p).to_owned()).collect(),
            ..ListOptions::default()
        };
        client
            .list_objects(object, options)
            .try_collect()
            .await
            .expect("list")
    };
    let record = |o: &hubspot_client::CrmObject| HubSpotRecord {
        id: o.id.clone(),
        properties: o.properties.clone(),
        created_at: o.created_at,
        updated_at: o.updated_at,
        archived: o.archived,
        contact_ids: vec![],
        company_ids: vec![],
    };
    let contacts = list(
        "contacts",
        domain::mapping::default_properties(domain::ids::ObjectType::Contact),
    )
    .await;
    let companies = list(
        "companies",
        domain::mapping::default_properties(domain::ids::ObjectType::Company),
    )
    .await;
    let deals = list(
        "deals",
        domain::mapping::default_properties(domain::ids::ObjectType::Deal),
    )
    .await;
    let customers = domain::dedupe::dedupe_by_email(
        contacts
            .iter()
            .filter_map(|o| map_contact(&record(o)).record().cloned()),
    );
    let mut out = BTreeMap::new();
    let mut rows: Vec<RecordRow> = customers
        .customers
        .into_iter()
        .map(|c| RecordRow {
            id: c.external_id.0 as i64,
            a: Some(c.email),
            b: c.name,
        })
        .collect();
    rows.sort();
    out.insert("contact", rows);
    let mut rows: Vec<RecordRow> = companies
        .iter()
        .filter_map(|o| map_company(&record(o)).record().cloned())
        .map(|c| RecordRow {
            id: c.external_id.0 as i64,
            a: c.name,
            b: c.domain,
        })
        .collect();
    rows.sort();
    out.insert("company", rows);
    let mut rows: Vec<RecordRow> = deals
        .iter()
        .filter_map(|o| map_deal(&record(o)).record().cloned())
        .map(|d| RecordRow {
            id: d.external_id.0 as i64,
            a: d.name,
            b: d.amount_cents.map(|a| a.to_string()),
        })
        .collect();
    rows.sort();
    out.insert("deal", rows);

    let mut edges = BTreeMap::new();
    for (name, from, to, ids) in [
        ("contact_companies", "contacts", "companies", &contacts),
        ("deal_contacts", "deals", "contacts", &deals),
        ("deal_companies", "deals", "companies", &deals),
    ] {
        let ids: Vec<String> = ids.iter().map(|o| o.id.clone()).collect();
        let batch = client
            .batch_read_associations(from, to, &ids)
            .await
            .expect("associations");
        let set: BTreeSet<(i64, i64)> = batch
            .results
            .iter()
            .flat_map(|r| {
                r.to.iter()
                    .map(|t| (r.from_id.parse().unwrap(), t.to_object_id.parse().unwrap()))
            })
            .collect();
        edges.insert(name, set);
    }
    (out, edges)
}

/// Asserts the mirror equals the simulator portal, record for record and edge for edge.
pub async fn assert_mirror_exact(
    h: &Harness,
    portal: &Portal,
    pool: &platform::db::Pool,
    connection: &Connection,
) {
    let (records, edges) = expected_records(&h.client(portal)).await;
    let mirror = mirror_records(pool, connection).await;
    for (name, expected) in &records {
        let got = &mirror[name];
        assert_eq!(got.len(), expected.len(), "{name} count");
        assert!(got == expected, "{name} records differ");
    }
    let mirror_edges = mirror_edges(pool, connection).await;
    for (name, expected) in &edges {
        assert_eq!(mirror_edges[name].len(), expected.len(), "{name} count");
        assert!(&mirror_edges[name] == expected, "{name} edges differ");
    }
}

/// Decodes every `crm.changed` message among `events`.
pub fn crm_changes(events: &[(String, Vec<u8>)]) -> Vec<v1::CrmChanged> {
    use prost::Message as _;
    events
        .iter()
        .filter(|(key, _)| key.starts_with("crm.changed."))
        .map(|(_, body)| v1::CrmChanged::decode(body.as_slice()).expect("crm.changed"))
        .collect()
}

/// Decodes every message of type `E` among `events` with routing key `key`.
pub fn decode_all<E: prost::Message + Default>(events: &[(String, Vec<u8>)], key: &str) -> Vec<E> {
    events
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, body)| E::decode(body.as_slice()).expect("decode"))
        .collect()
}

/// An internal token for `org` (the gateway's part in production).
pub fn token_for(_settings: &Settings, org: Uuid) -> String {
    platform::testing::internal_token_signer()
        .expect("jwt")
        .mint(
            "sync-worker",
            "user:test",
            Some(org),
            vec!["admin".to_owned()],
        )
        .expect("mint")
}

/// Converts one HubSpot webhook event (JSON) into the contract, as webhook-receiver does.
pub fn webhook_event(e: &Value) -> v1::WebhookEvent {
    let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
    let i = |k: &str| e.get(k).and_then(Value::as_i64);
    let subscription_type = s("subscriptionType").unwrap_or_default();
    let (object_type, change_kind) = contracts::webhook::classify_subscription_type(
        &subscription_type,
        s("objectTypeId").as_deref(),
    );
    v1::WebhookEvent {
        event_id: i("eventId").unwrap_or_default(),
        subscription_id: i("subscriptionId").unwrap_or_default(),
        portal_id: i("portalId").unwrap_or_default(),
        app_id: i("appId").unwrap_or_default(),
        occurred_at: i("occurredAt").map(contracts::time::from_epoch_ms),
        subscription_type,
        object_type: object_type as i32,
        change_kind: change_kind as i32,
        attempt_number: i("attemptNumber").unwrap_or_default() as i32,
        object_id: i("objectId"),
        object_type_id: s("objectTypeId"),
        change_source: s("changeSource"),
        change_flag: s("changeFlag"),
        source_id: s("sourceId"),
        property_name: s("propertyName"),
        property_value: s("propertyValue"),
        primary_object_id: i("primaryObjectId"),
        merged_object_ids: e
            .get("mergedObjectIds")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default(),
        new_object_id: i("newObjectId"),
        number_of_properties_moved: i("numberOfPropertiesMoved").map(|n| n as i32),
        association_type: s("associationType"),
        from_object_id: i("fromObjectId"),
        to_object_id: i("toObjectId"),
        association_removed: e.get("associationRemoved").and_then(Value::as_bool),
        is_primary_association: e.get("isPrimaryAssociation").and_then(Value::as_bool),
        from_object_type_id: s("fromObjectTypeId"),
        to_object_type_id: s("toObjectTypeId"),
        association_type_id: i("associationTypeId").map(|n| n as i32),
        association_category: s("associationCategory"),
        is_sensitive: e.get("isSensitive").and_then(Value::as_bool),
    }
}

/// A `sync.requested` for `connection` with a new run id.
pub fn sync_request(
    connection: &Connection,
    mode: v1::SyncMode,
    scope: v1::sync_requested::Scope,
    reason: v1::SyncReason,
) -> v1::SyncRequested {
    v1::SyncRequested {
        org_id: connection.org_id.to_string(),
        connection_id: connection.connection_id.to_string(),
        portal_id: connection.portal_id,
        sync_run_id: Uuid::now_v7().to_string(),
        mode: mode as i32,
        scope: Some(scope),
        reason: reason as i32,
        ..Default::default()
    }
}

/// A stand-in for webhook-receiver: takes the simulator's deliveries and publishes each
/// as one `webhook.batch`. Returns its URL; it stops with the test's runtime.
pub async fn start_receiver(h: &Harness) -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let publisher = h.publisher.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(move || {
        let publisher = publisher.clone();
        App::new().route(
            "/hooks",
            web::post().to(move |body: web::Bytes| {
                let publisher = publisher.clone();
                async move {
                    let events: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
                    let portal_id = <[Value]>::first(&events)
                        .and_then(|e| e["portalId"].as_i64())
                        .unwrap_or_default();
                    let batch = v1::WebhookBatch {
                        connection_id: None,
                        portal_id,
                        received_at: Some(contracts::time::to_timestamp(chrono::Utc::now())),
                        events: events.iter().map(webhook_event).collect(),
                    };
                    match publisher
                        .publish_event(&batch, MessageMeta::start_trace(None))
                        .await
                    {
                        Ok(()) => HttpResponse::NoContent().finish(),
                        Err(_) => HttpResponse::ServiceUnavailable().finish(),
                    }
                }
            }),
        )
    })
    .listen(listener)
    .expect("listen")
    .workers(1)
    .disable_signals()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/hooks")
}

impl Harness {
    /// Points the portal's webhooks at `target` (None stops delivery).
    pub async fn webhooks_to(&self, portal: &Portal, target: Option<&str>) {
        self.sim_send(
            reqwest::Method::PUT,
            &format!("/_sim/portals/{}/webhooks", portal.id),
            json!({ "target_url": target }),
        )
        .await;
    }

    /// Creates a record through the simulator's control API (emits webhooks); its id.
    pub async fn create(&self, portal: &Portal, object: &str, properties: Value) -> i64 {
        let v = self
            .sim_send(
                reqwest::Method::POST,
                &format!("/_sim/portals/{}/objects/{object}", portal.id),
                json!({ "properties": properties }),
            )
            .await;
        v["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v["id"].as_i64())
            .expect("record id")
    }

    pub async fn control(
        &self,
        method: reqwest::Method,
        portal: &Portal,
        path: &str,
        body: Value,
    ) -> Value {
        self.sim_send(method, &format!("/_sim/portals/{}{path}", portal.id), body)
            .await
    }
}

#[derive(QueryableByName, Debug)]
pub struct ContactState {
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub archived: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub merged_into: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub privacy_deleted: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub skip_reason: Option<String>,
}

/// One record's row (contacts table columns; for companies/deals email is NULL).
pub async fn record_state(
    pool: &platform::db::Pool,
    connection: &Connection,
    table: &str,
    id: i64,
) -> Option<ContactState> {
    let mut conn = pool.get().await.ok()?;
    let email = if table == "contacts" {
        "email"
    } else {
        "NULL::text AS email"
    };
    let privacy = if table == "contacts" {
        "privacy_deleted"
    } else {
        "false AS privacy_deleted"
    };
    let rows: Vec<ContactState> = sql_query(format!(
        "SELECT {email}, name, archived, merged_into, {privacy}, skip_reason FROM {table}
         WHERE connection_id = '{}' AND id = {id}",
        connection.connection_id
    ))
    .load(&mut conn)
    .await
    .ok()?;
    rows.into_iter().next()
}

/// An Application in a runtime of its own, so a test can kill it as a crash would:
/// every task dropped mid-flight, every connection closed, nothing shut down cleanly.
pub struct Killable {
    pub port: u16,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Killable {
    pub fn start(settings: Settings, token: String) -> Killable {
        let (kill, killed) = std::sync::mpsc::channel::<()>();
        let (port_tx, port_rx) = std::sync::mpsc::channel::<u16>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.spawn(async move {
                let app = match Application::build_with_tokens(
                    settings,
                    Arc::new(StaticTokens::new(token)),
                )
                .await
                {
                    Ok(app) => app,
                    Err(error) => {
                        eprintln!("killable app failed to start: {error:#}");
                        return;
                    }
                };
                let _ = port_tx.send(app.port());
                if let Err(error) = app.run_until_stopped(Shutdown::new()).await {
                    eprintln!("killable app failed: {error:#}");
                }
            });
            let _ = killed.recv();
            runtime.shutdown_background();
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the app started");
        Killable {
            port,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    pub fn kill(mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(QueryableByName)]
struct Fetched {
    #[diesel(sql_type = BigInt)]
    fetched: i64,
}

/// Records of `object_type` fetched so far by the connection's latest run.
pub async fn fetched(pool: &platform::db::Pool, connection: &Connection, object_type: &str) -> i64 {
    let Ok(mut conn) = pool.get().await else {
        return 0;
    };
    let rows: Vec<Fetched> = sql_query(format!(
        "SELECT o.fetched FROM sync_run_objects o JOIN sync_runs r ON r.id = o.run_id
         WHERE r.connection_id = '{}' AND o.object_type = '{object_type}'
         ORDER BY r.requested_at DESC LIMIT 1",
        connection.connection_id
    ))
    .load(&mut conn)
    .await
    .unwrap_or_default();
    rows.into_iter().next().map_or(0, |r| r.fetched)
}

pub fn pool_for(h: &Harness) -> platform::db::Pool {
    platform::db::connect_pool(&h.settings.database, "sync").expect("pool")
}

/// Waits until run `id` has ended with `state`.
pub async fn wait_for_run_id(pool: &platform::db::Pool, id: Uuid, state: &str, secs: u64) {
    let current = async || -> Option<String> {
        let mut conn = pool.get().await.ok()?;
        let rows: Vec<StateRow> =
            sql_query(format!("SELECT state FROM sync_runs WHERE id = '{id}'"))
                .load(&mut conn)
                .await
                .ok()?;
        rows.into_iter().next().map(|r| r.state)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let now = current().await;
        if now.as_deref() == Some(state) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} did not reach {state}; it is {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Harness {
    /// Takes published messages until one with routing key `key` satisfying `check`
    /// arrives (within 20 s); returns everything taken.
    pub async fn events_until(
        &self,
        key: &str,
        check: impl Fn(&[u8]) -> bool,
    ) -> Vec<(String, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut all = Vec::new();
        loop {
            let batch = self.take_events().await;
            let found = batch.iter().any(|(k, body)| k == key && check(body));
            all.extend(batch);
            if found {
                return all;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {key} message arrived"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A mirrored customer and its twin: a live contact with the same e-mail that is not the
/// customer (`duplicate_email`), as `(twin, customer)`.
pub async fn customer_with_twin(app: &RunningApp, connection: &Connection) -> (i64, i64) {
    use diesel_async::RunQueryDsl as _;
    let mut conn = app.pool.get().await.expect("db");
    // (twin, customer id as text, shared e-mail)
    let pairs: Vec<RecordRow> = diesel::sql_query(format!(
        "SELECT l.id, w.id::text AS a, l.email AS b FROM contacts l
         JOIN contacts w ON w.connection_id = l.connection_id AND w.email = l.email
           AND w.skip_reason IS NULL AND NOT w.archived
         WHERE l.connection_id = '{}' AND l.skip_reason = 'duplicate_email'
           AND NOT l.archived
         ORDER BY l.id LIMIT 1",
        connection.connection_id
    ))
    .load(&mut conn)
    .await
    .expect("query");
    let pair = pairs
        .into_iter()
        .next()
        .expect("the seeded portal has two contacts sharing an e-mail");
    let customer = pair.a.as_deref().and_then(|a| a.parse().ok()).expect("id");
    (pair.id, customer)
}
