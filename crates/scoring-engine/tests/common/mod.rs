//! Test support: the real Application on port 0 with a fresh database, its own exchange
//! and queue names, a clock the test moves, an observer queue bound to `score.updated` and
//! `score.alert`, and builders for `crm.changed` messages.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::v1::{
    Company, CrmChanged, Customer, Deal, DealStatus, ObjectType, ScoreAlert, ScoreAlertBatch,
    ScoreUpdated, ScoreUpdatedBatch, SyncCompleted, SyncMode, SyncSucceeded, crm_changed,
    sync_completed,
};
use platform::amqp::{AmqpSettings, Broker, MessageMeta, Publisher, QueueSpec};
use platform::shutdown::Shutdown;
use platform::testing::{BrokerCleanup, TestDatabase};
use prost::Message as _;
use scoring_engine::clock::ManualClock;
use scoring_engine::{Application, Settings};
use uuid::Uuid;

/// How long a test waits for anything asynchronous.
pub const WAIT: Duration = Duration::from_secs(30);

/// The instant tests start at.
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// What several replicas of one deployment share.
pub struct Shared {
    /// The database.
    pub db: Arc<TestDatabase>,
    /// Broker settings (the test's own exchanges).
    pub amqp: AmqpSettings,
    /// The consumer queue.
    pub queue: String,
    /// The observer queue (bound to score.updated and score.alert).
    pub observer_queue: String,
    /// Removes the test's queues and exchanges.
    pub cleanup: Arc<BrokerCleanup>,
    /// The clock every replica reads.
    pub clock: ManualClock,
}

impl Shared {
    /// A fresh deployment: database migrated, names unique.
    pub async fn new() -> Self {
        let db = TestDatabase::create().await.unwrap();
        let amqp = platform::testing::amqp_settings();
        let queue = platform::testing::unique_name("scoring-engine.crm");
        let observer_queue = platform::testing::unique_name("test.scores");
        let cleanup = BrokerCleanup::new(&amqp, &[&queue, &observer_queue]);
        let shared = Self {
            db: Arc::new(db),
            amqp,
            queue,
            observer_queue,
            cleanup: Arc::new(cleanup),
            clock: ManualClock::new(t0()),
        };
        scoring_engine::startup::migrate(&shared.settings())
            .await
            .unwrap();
        shared
    }

    /// Settings of a replica.
    pub fn settings(&self) -> Settings {
        let mut settings: Settings = platform::config::load_with_env(
            scoring_engine::config::DEFAULTS,
            None,
            vec![
                ("HUBSCORE__HTTP__PORT".to_owned(), "0".to_owned()),
                ("HUBSCORE__DATABASE__URL".to_owned(), self.db.url.clone()),
                ("HUBSCORE__SCORING__QUEUE".to_owned(), self.queue.clone()),
                (
                    "HUBSCORE__SCORING__SCHEDULE_POLL_MS".to_owned(),
                    "50".to_owned(),
                ),
                (
                    "HUBSCORE__OUTBOX__POLL_INTERVAL_MS".to_owned(),
                    "50".to_owned(),
                ),
            ],
        )
        .unwrap();
        settings.amqp = self.amqp.clone();
        settings
    }

    /// Starts one replica.
    pub async fn spawn(&self) -> Replica {
        self.spawn_with(self.settings()).await
    }

    /// Starts one replica with `settings` (from [`Shared::settings`], changed).
    pub async fn spawn_with(&self, settings: Settings) -> Replica {
        let app = Application::build_with_clock(settings, self.clock.clock())
            .await
            .unwrap();
        let port = app.port();
        let pool = app.pool().clone();
        let shutdown = Shutdown::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Replica {
            base: format!("http://127.0.0.1:{port}"),
            pool,
            shutdown,
            handle: Some(handle),
        }
    }
}

/// One running Application.
pub struct Replica {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its pool.
    pub pool: platform::db::Pool,
    shutdown: Shutdown,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    /// Stops it and waits.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A deployment with one replica, an observer and a publisher.
pub struct TestApp {
    /// The shared parts.
    pub shared: Shared,
    /// The replica.
    pub app: Replica,
    /// The test's own broker connection (observer and publisher).
    pub broker: Broker,
    /// Publishes test messages.
    pub publisher: Publisher,
    /// The org most tests use.
    pub org: Uuid,
    /// Its connection.
    pub connection: Uuid,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Changes of a `ScoreUpdatedBatch` received but not yet returned, in order.
    pending: std::sync::Mutex<std::collections::VecDeque<Event>>,
    /// `ScoreUpdatedBatch` messages received so far.
    pub batches_seen: std::sync::atomic::AtomicUsize,
    /// `ScoreAlertBatch` messages received so far.
    pub alert_batches_seen: std::sync::atomic::AtomicUsize,
}

/// The HubSpot portal tests use.
pub const PORTAL: i64 = 4242;

/// Starts a deployment with one replica.
pub async fn spawn_app() -> TestApp {
    let shared = Shared::new().await;
    let app = shared.spawn().await;
    test_app(shared, app).await
}

/// Wraps a started deployment.
pub async fn test_app(shared: Shared, app: Replica) -> TestApp {
    let broker = Broker::start(
        shared.amqp.clone(),
        vec![
            QueueSpec::new(&shared.observer_queue, ["score.updated", "score.alert"]),
            // Declared here too, so messages published before the replica's consumer
            // subscribes wait in its queue.
            QueueSpec::new(&shared.queue, scoring_engine::handlers::ROUTING_KEYS),
        ],
    );
    assert!(broker.wait_connected(WAIT).await, "broker did not connect");
    let publisher = Publisher::new(broker.clone());
    TestApp {
        shared,
        app,
        broker,
        publisher,
        org: Uuid::now_v7(),
        connection: Uuid::now_v7(),
        http: reqwest::Client::new(),
        pending: std::sync::Mutex::default(),
        batches_seen: std::sync::atomic::AtomicUsize::new(0),
        alert_batches_seen: std::sync::atomic::AtomicUsize::new(0),
    }
}

/// A contact as sync-worker publishes it.
pub fn contact(id: i64, modified: DateTime<Utc>) -> Customer {
    Customer {
        external_id: id,
        email: format!("c{id}@example.com"),
        name: Some(format!("Contact {id}")),
        source_updated_at: Some(contracts::time::to_timestamp(modified)),
        ..Customer::default()
    }
}

/// A deal as sync-worker publishes it.
pub fn deal(id: i64, contacts: &[i64], modified: DateTime<Utc>) -> Deal {
    let mut deal = Deal {
        external_id: id,
        stage: "appointmentscheduled".into(),
        pipeline: "default".into(),
        amount_cents: Some(100_000),
        close_probability: Some(0.6),
        source_updated_at: Some(contracts::time::to_timestamp(modified)),
        contact_ids: contacts.to_vec(),
        ..Deal::default()
    };
    deal.set_status(DealStatus::Open);
    deal
}

/// A company as sync-worker publishes it.
pub fn company(id: i64, modified: DateTime<Utc>) -> Company {
    Company {
        external_id: id,
        name: Some(format!("Company {id}")),
        source_updated_at: Some(contracts::time::to_timestamp(modified)),
        ..Company::default()
    }
}

/// Timestamp helper.
pub fn ts(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(contracts::time::to_timestamp(at))
}

impl TestApp {
    /// A `crm.changed` of `object_type` for the test org.
    pub fn changed(&self, object_type: ObjectType) -> CrmChanged {
        self.changed_for(self.org, object_type)
    }

    /// A `crm.changed` for another org.
    pub fn changed_for(&self, org: Uuid, object_type: ObjectType) -> CrmChanged {
        let mut message = CrmChanged {
            org_id: org.to_string(),
            connection_id: self.connection.to_string(),
            portal_id: PORTAL,
            cause: Some(crm_changed::Cause::SyncRunId(Uuid::now_v7().to_string())),
            committed_at: ts(Utc::now()),
            ..CrmChanged::default()
        };
        message.set_object_type(object_type);
        message
    }

    /// Publishes a message with a fresh id; returns its meta.
    pub async fn publish(&self, message: &CrmChanged) -> MessageMeta {
        let org = Uuid::parse_str(&message.org_id).ok();
        let meta = MessageMeta::new("test", org);
        self.publisher
            .publish_event(message, meta.clone())
            .await
            .unwrap();
        meta
    }

    /// Publishes a message with the given meta (replays).
    pub async fn publish_with(&self, message: &CrmChanged, meta: MessageMeta) {
        self.publisher.publish_event(message, meta).await.unwrap();
    }

    /// Publishes a successful full `sync.completed` for `org`.
    pub async fn sync_completed(&self, org: Uuid) {
        let mut message = SyncCompleted {
            org_id: org.to_string(),
            connection_id: self.connection.to_string(),
            portal_id: PORTAL,
            sync_run_id: Uuid::now_v7().to_string(),
            outcome: Some(sync_completed::Outcome::Succeeded(SyncSucceeded {})),
            ..SyncCompleted::default()
        };
        message.set_mode(SyncMode::Full);
        self.publisher
            .publish_event(&message, MessageMeta::new("test", Some(org)))
            .await
            .unwrap();
    }

    /// The next change or alert seen by the observer: each entry of a `ScoreUpdatedBatch`
    /// is returned as a change of its own, as consumers are to treat it.
    pub async fn next_event(&self) -> Event {
        loop {
            if let Some(event) = self.pending.lock().unwrap().pop_front() {
                return event;
            }
            let delivery = platform::testing::wait_for_message(
                &self.broker,
                &self.shared.observer_queue,
                WAIT,
            )
            .await
            .unwrap();
            let events = self.decode(&delivery);
            self.pending.lock().unwrap().extend(events);
        }
    }

    /// Every change and alert on the observer queue right now (and any not yet returned).
    pub async fn drain(&self) -> Vec<Event> {
        let deliveries = platform::testing::drain(&self.broker, &self.shared.observer_queue)
            .await
            .unwrap();
        let mut events: Vec<Event> = self.pending.lock().unwrap().drain(..).collect();
        for delivery in &deliveries {
            events.extend(self.decode(delivery));
        }
        events
    }

    /// A message's changes or alert; counts batches.
    fn decode(&self, delivery: &lapin_delivery::Delivery) -> Vec<Event> {
        let events = decode(delivery);
        if events.batched {
            self.batches_seen
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        if events.alert_batch {
            self.alert_batches_seen
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        events.events
    }

    /// Waits until `n` events arrived; returns them.
    pub async fn events(&self, n: usize) -> Vec<Event> {
        let mut events = Vec::new();
        while events.len() < n {
            events.push(self.next_event().await);
        }
        events
    }

    /// A bearer token for the test org.
    /// Puts the org's scheduled rescore off for good: a clock jump would make it due, and a
    /// rescore racing with a test's own would move the scores it checks.
    pub async fn put_off_the_schedule(&self) {
        use diesel_async::RunQueryDsl;
        diesel::sql_query(
            "UPDATE org_state SET next_rescore_at = '9999-01-01T00:00:00Z' WHERE org_id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(self.org)
        .execute(&mut self.app.pool.get().await.unwrap())
        .await
        .unwrap();
    }

    /// The next `score.updated` among the next `n` events (the others are alerts).
    pub async fn update_among(&self, n: usize) -> ScoreUpdated {
        self.events(n)
            .await
            .into_iter()
            .find_map(|e| match e {
                Event::Updated(u) => Some(u),
                Event::Alert(_) => None,
            })
            .unwrap()
    }

    /// Takes the org's rescore lock as a replica rescoring it would, on a connection of its
    /// own in an open transaction; [`LockHolder::release`] lets it go, as that replica's
    /// session ending would.
    pub async fn hold_rescore_lock(&self) -> LockHolder {
        self.hold_lock("scoring.org-rescore.").await
    }

    /// Takes the org's lock on its scores exclusively, as a `crm.changed` being applied
    /// would (see [`Self::hold_rescore_lock`]).
    pub async fn hold_org_lock(&self) -> LockHolder {
        self.hold_lock("scoring.org.").await
    }

    async fn hold_lock(&self, prefix: &str) -> LockHolder {
        use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
        let mut conn = self.app.pool.get().await.unwrap();
        conn.batch_execute("BEGIN").await.unwrap();
        diesel::sql_query(format!(
            "SELECT pg_advisory_xact_lock(hashtextextended('{prefix}{}', 0))",
            self.org
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        LockHolder(conn)
    }

    /// Waits until a session of the test database waits on an advisory lock.
    pub async fn until_a_session_waits_on_a_lock(&self) {
        use diesel_async::RunQueryDsl;
        let mut conn = self.app.pool.get().await.unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let waiting: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "(SELECT count(*) FROM pg_stat_activity \
                  WHERE datname = current_database() AND wait_event = 'advisory')",
            ))
            .get_result(&mut conn)
            .await
            .unwrap();
            if waiting > 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nobody waited on a lock"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    pub fn token(&self, org: Uuid, role: &str) -> String {
        let jwt = platform::testing::internal_token_signer().unwrap();
        jwt.mint(
            "scoring-engine",
            "user:test",
            Some(org),
            vec![role.to_owned()],
        )
        .unwrap()
    }

    /// GET as an admin of `org`.
    pub async fn get(&self, org: Uuid, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.app.base))
            .bearer_auth(self.token(org, "admin"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Sends a JSON body as `role` of `org`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        org: Uuid,
        role: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.app.base))
            .bearer_auth(self.token(org, role))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Saves `config` as the test org's scoring config, as an admin.
    pub async fn save_config(&self, config: &serde_json::Value) -> (u16, serde_json::Value) {
        self.send(
            reqwest::Method::PUT,
            self.org,
            "admin",
            "/api/v1/scoring/config",
            config,
        )
        .await
    }

    /// The stored score of a contact of the test org, through the API (None = N/A or none).
    pub async fn contact_score(&self, contact_id: i64) -> Option<i64> {
        let id = scoring_engine::engine::customer_id(self.org, PORTAL, 1, contact_id);
        let (status, body) = self.get(self.org, &format!("/api/v1/customers/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body["score"].as_i64()
    }
}

/// A message seen by the observer.
#[derive(Debug, Clone)]
pub enum Event {
    /// `score.updated`.
    Updated(ScoreUpdated),
    /// `score.alert`.
    Alert(ScoreAlert),
}

impl Event {
    /// The update, or a panic.
    pub fn updated(self) -> ScoreUpdated {
        match self {
            Event::Updated(u) => u,
            Event::Alert(a) => panic!("expected score.updated, got {a:?}"),
        }
    }
}

/// What one message carried.
struct Decoded {
    events: Vec<Event>,
    batched: bool,
    alert_batch: bool,
}

fn decode(delivery: &lapin_delivery::Delivery) -> Decoded {
    let kind = platform::testing::message_type(delivery);
    let body = delivery.data.as_slice();
    if let Some(alerts) = contracts::score_alerts(kind, body) {
        let alerts = alerts.unwrap();
        let alert_batch = kind == "hubscore.v1.ScoreAlertBatch";
        if alert_batch {
            let batch = ScoreAlertBatch::decode(body).unwrap();
            assert!(
                !batch.alerts.is_empty(),
                "an empty batch of alerts was published"
            );
            assert!(
                batch.alerts.iter().all(|a| a.org_id == batch.org_id),
                "a batch of alerts mixes orgs"
            );
        }
        return Decoded {
            events: alerts.into_iter().map(Event::Alert).collect(),
            batched: false,
            alert_batch,
        };
    }
    let batched = kind == "hubscore.v1.ScoreUpdatedBatch";
    let changes = if batched {
        let batch = ScoreUpdatedBatch::decode(body).unwrap();
        assert!(!batch.updates.is_empty(), "an empty batch was published");
        assert!(
            batch.updates.iter().all(|u| u.org_id == batch.org_id),
            "a batch mixes orgs"
        );
        batch.updates
    } else {
        contracts::score_changes(kind, body)
            .unwrap_or_else(|| panic!("unexpected message type {kind}"))
            .unwrap()
    };
    Decoded {
        events: changes.into_iter().map(Event::Updated).collect(),
        batched,
        alert_batch: false,
    }
}

/// The delivery type the platform's test helpers return.
mod lapin_delivery {
    pub use lapin::message::Delivery;
}

/// Seven successive versions of one contact (each a distinct update in the activity log),
/// lifecycle `customer`, last sales activity `activity_days_ago` before t0.
pub fn busy_customer(id: i64, activity_days_ago: i64) -> Vec<Customer> {
    (0..7)
        .map(|i| {
            let mut c = contact(id, t0() - chrono::Duration::hours(10 - i));
            c.lifecycle_stage = Some("customer".into());
            c.last_activity_at = ts(t0() - chrono::Duration::days(activity_days_ago));
            c
        })
        .collect()
}

/// A `lead` whose last activity was 60 days ago and whose one update is 45 days old: 4.
pub fn quiet_lead(id: i64) -> Customer {
    let mut lead = contact(id, t0() - chrono::Duration::days(45));
    lead.lifecycle_stage = Some("lead".into());
    lead.last_activity_at = ts(t0() - chrono::Duration::days(60));
    lead
}

impl TestApp {
    /// Contacts 1 to `n`, each the latest version of a [`busy_customer`] active 2 days
    /// ago, in one `crm.changed`: their first scores are one write of `n` changes.
    pub async fn publish_busy_contacts(&self, n: i64) {
        let mut message = self.changed(ObjectType::Contact);
        message.customers = (1..=n)
            .filter_map(|id| busy_customer(id, 2).pop())
            .collect();
        self.publish(&message).await;
    }

    /// A newer version of busy contact `id` whose lifecycle stage fell to `lead`, alone in
    /// one `crm.changed`: one record's change, and a drop.
    pub async fn publish_drop_to_lead(&self, id: i64) {
        let mut one = self.changed(ObjectType::Contact);
        one.customers = busy_customer(id, 2)
            .pop()
            .map(|mut customer| {
                customer.lifecycle_stage = Some("lead".into());
                customer.source_updated_at = ts(t0());
                customer
            })
            .into_iter()
            .collect();
        self.publish(&one).await;
    }

    /// Three contacts of the test org, one per band: 1 critical (4), 2 at risk (54),
    /// 3 healthy (78). Returns once their events arrived (drained).
    pub async fn seed_three_bands(&self) {
        let mut message = self.changed(ObjectType::Contact);
        message.customers = vec![quiet_lead(1)];
        message.customers.extend(busy_customer(2, 2));
        message.customers.extend(busy_customer(3, 2));
        self.publish(&message).await;
        let mut deals = self.changed(ObjectType::Deal);
        deals.deals = vec![deal(900, &[3], t0() - chrono::Duration::hours(1))];
        self.publish(&deals).await;
        // 1, 2, 3 scored, then 3 again with its deal.
        self.events(4).await;
        assert_eq!(self.contact_score(3).await, Some(78));
    }
}

/// A connection holding an org's rescore lock (see [`TestApp::hold_rescore_lock`]).
pub struct LockHolder(platform::db::Connection);

impl LockHolder {
    /// Lets the lock go.
    pub async fn release(mut self) {
        use diesel_async::SimpleAsyncConnection;
        self.0.batch_execute("ROLLBACK").await.unwrap();
    }
}
