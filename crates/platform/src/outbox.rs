//! Transactional outbox: a service writes its rows and the messages about them in one
//! transaction, and a [`Relay`] publishes the messages (with publisher confirms) and marks
//! them sent.
//!
//! What is guaranteed, and what is not:
//! - **At least once.** Every committed entry is published until the broker confirms it. A
//!   relay that dies between the confirm and marking the entry sent publishes it again
//!   after its claim runs out, with the same `message_id`; consumers skip such duplicates
//!   with [`first_delivery`] inside their own transaction. A message whose transaction
//!   rolled back never existed, so it is never sent.
//! - **No global order.** Entries are claimed in `id` order, but ids are assigned when a
//!   row is inserted, not when its transaction commits: a transaction that commits late
//!   makes a lower id visible after higher ones were published. Several relays publish
//!   side by side, failed entries are retried after later ones went out, and consumers
//!   retry messages through delay queues. A consumer must therefore never infer order from
//!   arrival: it compares a version the message carries (a `source_updated_at`, a
//!   sequence number, a score's computed time) with what it stored, and ignores stale
//!   messages.
//! - **No double publishing in the normal case.** A relay claims a batch for
//!   [`RelaySettings::claim_ttl_ms`] in one short statement (`FOR UPDATE SKIP LOCKED`, then
//!   `claimed_until`), publishes it outside any transaction, waits for all its confirms
//!   under one deadline, then marks the confirmed entries sent and releases the rest.
//!   Other relays (other replicas) skip claimed entries; only a relay that stalls past its
//!   claim can lead to a second publish. No row lock is held while waiting on the broker.
//!
//! - **Bundles** ([`enqueue_bundle`]): a transaction that writes thousands of messages
//!   writes them as rows of up to [`BUNDLE_MAX`] in `outbox_bundles`; the relay publishes
//!   each as its own message, under the same guarantees, and a bundle is sent or published
//!   again whole.
//!
//! The tables are created by [`MIGRATIONS`], applied by each service's `migrate` step into
//! its own schema next to its own migrations. This module never touches another schema.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder as _, ExponentialBuilder};
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Bytea, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use serde::Deserialize;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::amqp::{Broker, MessageMeta, OutgoingMessage, PublishError, Publisher};
use crate::db::Pool;
use crate::shutdown::Shutdown;

/// Creates `outbox` and `processed_messages` in the current schema (and migrates them). Apply with
/// `platform::db::run_migrations(url, schema, [service::MIGRATIONS, platform::outbox::MIGRATIONS])`.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/outbox");

mod schema {
    diesel::table! {
        outbox (id) {
            id -> Int8,
            message_id -> Uuid,
            routing_key -> Text,
            message_type -> Text,
            correlation_id -> Text,
            org_id -> Nullable<Uuid>,
            body -> Bytea,
            created_at -> Timestamptz,
            sent_at -> Nullable<Timestamptz>,
            claimed_until -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        processed_messages (queue, message_id) {
            queue -> Text,
            message_id -> Uuid,
            processed_at -> Timestamptz,
        }
    }
}

use schema::{outbox, processed_messages};

#[derive(Insertable)]
#[diesel(table_name = outbox)]
struct NewEntry<'a> {
    message_id: Uuid,
    routing_key: &'a str,
    message_type: &'a str,
    correlation_id: &'a str,
    org_id: Option<Uuid>,
    body: &'a [u8],
    created_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
#[diesel(table_name = outbox)]
#[diesel(check_for_backend(diesel::pg::Pg))]
struct Entry {
    id: i64,
    message_id: Uuid,
    routing_key: String,
    message_type: String,
    correlation_id: String,
    org_id: Option<Uuid>,
    body: Vec<u8>,
    created_at: DateTime<Utc>,
}

impl Entry {
    fn into_message(self) -> OutgoingMessage {
        OutgoingMessage {
            routing_key: self.routing_key,
            message_type: self.message_type,
            body: self.body,
            meta: MessageMeta {
                message_id: self.message_id,
                correlation_id: self.correlation_id,
                org_id: self.org_id,
            },
            created_at: self.created_at,
        }
    }
}

/// Writes `message` to the outbox. Call it inside the transaction that writes the rows the
/// message is about, so both commit or neither does; then wake the relay
/// ([`RelayWaker::wake`]) once the transaction has committed.
pub async fn enqueue(conn: &mut AsyncPgConnection, message: &OutgoingMessage) -> QueryResult<()> {
    diesel::insert_into(outbox::table)
        .values(NewEntry {
            message_id: message.meta.message_id,
            routing_key: &message.routing_key,
            message_type: &message.message_type,
            correlation_id: &message.meta.correlation_id,
            org_id: message.meta.org_id,
            body: &message.body,
            created_at: message.created_at,
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// Encodes `event` and writes it to the outbox; see [`enqueue`]. Returns its message id.
pub async fn enqueue_event<E: contracts::Event>(
    conn: &mut AsyncPgConnection,
    event: &E,
    meta: MessageMeta,
) -> QueryResult<Uuid> {
    let message = OutgoingMessage::from_event(event, meta);
    enqueue(conn, &message).await?;
    Ok(message.meta.message_id)
}

/// The outbox columns of many messages, an array each, for set-based writes.
struct Columns {
    message_ids: Vec<Uuid>,
    routing_keys: Vec<String>,
    message_types: Vec<String>,
    correlation_ids: Vec<String>,
    org_ids: Vec<Option<Uuid>>,
    bodies: Vec<Vec<u8>>,
    created_ats: Vec<DateTime<Utc>>,
}

impl Columns {
    fn of(messages: &[OutgoingMessage]) -> Self {
        Self {
            message_ids: messages.iter().map(|m| m.meta.message_id).collect(),
            routing_keys: messages.iter().map(|m| m.routing_key.clone()).collect(),
            message_types: messages.iter().map(|m| m.message_type.clone()).collect(),
            correlation_ids: messages
                .iter()
                .map(|m| m.meta.correlation_id.clone())
                .collect(),
            org_ids: messages.iter().map(|m| m.meta.org_id).collect(),
            bodies: messages.iter().map(|m| m.body.clone()).collect(),
            created_ats: messages.iter().map(|m| m.created_at).collect(),
        }
    }

    /// `query` with the columns bound as `$1` to `$7`, in the order above.
    fn bind(self, query: SqlQuery) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        query
            .into_boxed()
            .bind::<Array<SqlUuid>, _>(self.message_ids)
            .bind::<Array<Text>, _>(self.routing_keys)
            .bind::<Array<Text>, _>(self.message_types)
            .bind::<Array<Text>, _>(self.correlation_ids)
            .bind::<Array<Nullable<SqlUuid>>, _>(self.org_ids)
            .bind::<Array<Bytea>, _>(self.bodies)
            .bind::<Array<Timestamptz>, _>(self.created_ats)
    }
}

/// Writes many messages to the outbox in one statement, a row each; see [`enqueue`]. For
/// thousands, [`enqueue_bundle`] writes far less.
pub async fn enqueue_all(
    conn: &mut AsyncPgConnection,
    messages: &[OutgoingMessage],
) -> QueryResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    Columns::of(messages)
        .bind(diesel::sql_query(
            "INSERT INTO outbox (message_id, routing_key, message_type, correlation_id, org_id, \
                body, created_at) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], \
                $6::bytea[], $7::timestamptz[])",
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The most messages one bundle holds; [`enqueue_bundle`] writes more as several bundles.
pub const BUNDLE_MAX: usize = 2_000;

/// Writes `messages` to the outbox as bundles of up to [`BUNDLE_MAX`] (one row each, in
/// `outbox_bundles`); see [`enqueue`]. For a transaction that writes thousands of messages,
/// such as a whole-org rescore: a row per message was a third of its database time. The
/// relay publishes every message of a bundle as its own message, with its own id, routing
/// key and type, as if each had been enqueued alone; the bundle is marked sent once the
/// broker has confirmed all of them, and published again whole otherwise (consumers skip
/// the duplicates with [`first_delivery`]).
pub async fn enqueue_bundle(
    conn: &mut AsyncPgConnection,
    messages: &[OutgoingMessage],
) -> QueryResult<()> {
    for chunk in messages.chunks(BUNDLE_MAX) {
        let count = i32::try_from(chunk.len()).unwrap_or(i32::MAX);
        Columns::of(chunk)
            .bind(diesel::sql_query(
                "INSERT INTO outbox_bundles (message_ids, routing_keys, message_types, \
                    correlation_ids, org_ids, bodies, created_ats, messages) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            ))
            .bind::<Int4, _>(count)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Records that the consumer of `queue` is applying `message_id`; `false` means it already
/// did and the delivery is a duplicate to ack without doing anything. Call it inside the
/// handler's transaction: if that rolls back, so does the record, and the redelivery is
/// applied. Each queue keeps its own record, so two queues of one service that receive the
/// same message both apply it (pass [`crate::amqp::Delivery::queue`]).
///
/// An id recorded by a release before per-queue dedupe (under no queue) counts as processed
/// for every queue.
pub async fn first_delivery(
    conn: &mut AsyncPgConnection,
    queue: &str,
    message_id: Uuid,
) -> QueryResult<bool> {
    let inserted = diesel::sql_query(
        "INSERT INTO processed_messages (queue, message_id) \
         SELECT $1, $2 WHERE NOT EXISTS \
             (SELECT 1 FROM processed_messages WHERE queue = '' AND message_id = $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(queue)
    .bind::<SqlUuid, _>(message_id)
    .execute(conn)
    .await?;
    Ok(inserted == 1)
}

/// Forgets processed message ids older than `older_than`; duplicates arrive within minutes,
/// so a retention of days is ample. The relay calls this with its retention.
pub async fn prune_processed(
    conn: &mut AsyncPgConnection,
    older_than: Duration,
) -> QueryResult<usize> {
    let cutoff = cutoff(older_than);
    diesel::delete(processed_messages::table.filter(processed_messages::processed_at.lt(cutoff)))
        .execute(conn)
        .await
}

/// Deletes outbox entries and bundles sent longer ago than `older_than`; returns how many
/// rows went (a bundle counts once).
pub async fn delete_sent(conn: &mut AsyncPgConnection, older_than: Duration) -> QueryResult<usize> {
    let cutoff = cutoff(older_than);
    let entries = diesel::delete(outbox::table.filter(outbox::sent_at.lt(cutoff)))
        .execute(conn)
        .await?;
    let bundles = diesel::sql_query("DELETE FROM outbox_bundles WHERE sent_at < $1")
        .bind::<Timestamptz, _>(cutoff)
        .execute(conn)
        .await?;
    Ok(entries + bundles)
}

/// Messages not yet marked sent: entries, and every message of each unsent bundle.
pub async fn pending_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Pending {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let pending: Pending = diesel::sql_query(
        "SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL) \
            + (SELECT coalesce(sum(messages), 0) FROM outbox_bundles WHERE sent_at IS NULL)::int8 \
            AS n",
    )
    .get_result(conn)
    .await?;
    Ok(pending.n)
}

fn cutoff(older_than: Duration) -> DateTime<Utc> {
    let age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    Utc::now()
        .checked_sub_signed(age)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How the relay polls and how long it keeps what it sent (an optional `[outbox]` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RelaySettings {
    /// Pause between scans when nobody wakes the relay.
    pub poll_interval_ms: u64,
    /// Entries claimed and published at once; their confirms are awaited together.
    pub batch_size: i64,
    /// Batches one relay has in flight at once, so that claiming and marking in the
    /// database overlap with publishing and confirming on the broker.
    pub concurrent_batches: usize,
    /// How long a relay's claim on a batch lasts. Another relay publishes the batch only
    /// after that (the claiming relay died or stalled), so it must exceed the confirm
    /// deadline ([`RelaySettings::confirm_timeout_ms`]) by a margin.
    pub claim_ttl_ms: u64,
    /// How long the relay waits for all the confirms of one batch; unconfirmed entries are
    /// released and published again.
    pub confirm_timeout_ms: u64,
    /// Longest pause between attempts while publishing keeps failing (the pause doubles
    /// from the poll interval's tenth up to this).
    pub max_backoff_ms: u64,
    /// How long sent entries and processed message ids are kept before deletion.
    pub retention_secs: u64,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1_000,
            batch_size: 500,
            concurrent_batches: 2,
            claim_ttl_ms: 60_000,
            confirm_timeout_ms: 15_000,
            max_backoff_ms: 30_000,
            retention_secs: 7 * 24 * 3600,
        }
    }
}

/// How often the relay runs its retention sweep.
const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// How long a stopping relay may spend finishing the batch in hand before it lets go (its
/// claim then runs out and another replica publishes the batch).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The relay could not finish a batch; it tries again after a pause.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No database connection.
    #[error("no database connection: {0}")]
    Pool(String),
    /// A query failed.
    #[error("outbox query failed: {0}")]
    Database(#[from] diesel::result::Error),
    /// The broker did not confirm an entry; it stays unsent.
    #[error("publishing an outbox entry failed: {0}")]
    Publish(#[from] PublishError),
    /// The test-only crash between publish and mark fired.
    #[cfg(feature = "testing")]
    #[error("injected crash between publish and mark")]
    InjectedCrash,
}

/// Wakes a [`Relay`] early, e.g. right after a transaction that enqueued messages commits.
#[derive(Clone, Debug, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    /// Makes the relay scan now instead of at its next poll. Wake-ups before the relay is
    /// waiting are not lost.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Publishes unsent outbox entries and marks them sent.
pub struct Relay {
    pool: Pool,
    broker: Broker,
    publisher: Publisher,
    settings: RelaySettings,
    waker: RelayWaker,
    #[cfg(feature = "testing")]
    crash_after_publish: bool,
}

impl Relay {
    /// A relay over `pool`'s schema publishing through `broker`.
    pub fn new(pool: Pool, broker: Broker, settings: RelaySettings) -> Self {
        Self {
            pool,
            publisher: Publisher::new(broker.clone()),
            broker,
            settings,
            waker: RelayWaker::default(),
            #[cfg(feature = "testing")]
            crash_after_publish: false,
        }
    }

    /// Fault injection for tests: the relay "dies" after its first publish, before marking
    /// the entries sent (its claim stays until it runs out, as a killed process's would,
    /// and [`Relay::run`] returns).
    #[cfg(feature = "testing")]
    pub fn crash_after_publish(mut self) -> Self {
        self.crash_after_publish = true;
        self
    }

    /// A handle that wakes this relay.
    pub fn waker(&self) -> RelayWaker {
        self.waker.clone()
    }

    /// Runs until `shutdown`: publishes whatever is pending, then waits for a wake-up or the
    /// poll interval; sweeps old entries now and then. Failures are logged and retried with
    /// a growing pause. At shutdown the batch in hand gets a few seconds to finish.
    pub async fn run(self, shutdown: Shutdown) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(1));
        let backoff = ExponentialBuilder::new()
            .with_min_delay((poll / 10).max(Duration::from_millis(1)))
            .with_max_delay(Duration::from_millis(self.settings.max_backoff_ms).max(poll))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        let mut failures = backoff.build();
        let mut last_sweep: Option<Instant> = None;
        loop {
            // While the broker is away there is nothing to try; the connection's own task
            // logs that, and the next poll after it is back drains the backlog.
            let outcome = if self.broker.is_connected() {
                let grace = async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                };
                tokio::select! {
                    outcome = self.relay_pending_until(&shutdown) => outcome,
                    () = grace => {
                        tracing::warn!("outbox relay stopped mid-batch; its claim will run out and the batch be published again");
                        return;
                    }
                }
            } else {
                Ok(0)
            };
            let pause = match outcome {
                Ok(sent) => {
                    if sent > 0 {
                        tracing::debug!(sent, "outbox entries published");
                    }
                    failures = backoff.build();
                    poll
                }
                #[cfg(feature = "testing")]
                Err(RelayError::InjectedCrash) => {
                    tracing::warn!("relay crashed on purpose between publish and mark");
                    return;
                }
                Err(error) => {
                    let pause = failures.next().unwrap_or(poll);
                    tracing::warn!(%error, retry_in_ms = pause.as_millis(), "outbox relay failed; will retry");
                    pause
                }
            };
            if shutdown.is_cancelled() {
                return;
            }
            if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_INTERVAL) {
                last_sweep = Some(Instant::now());
                if let Err(error) = self.sweep().await {
                    tracing::warn!(%error, "outbox retention sweep failed");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.waker.0.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Publishes batches and bundles until none is left; returns how many messages were
    /// marked sent.
    /// Stops at the first failure, keeping what was sent before it.
    pub async fn relay_pending(&self) -> Result<usize, RelayError> {
        self.relay_pending_until(&Shutdown::new()).await
    }

    /// Runs `concurrent_batches` lanes of [`Relay::relay_batches_until`]: each claims its
    /// own batches, so they never publish the same entry.
    async fn relay_pending_until(&self, shutdown: &Shutdown) -> Result<usize, RelayError> {
        let lanes = self.settings.concurrent_batches.max(1);
        let results =
            futures::future::join_all((0..lanes).map(|_| self.relay_batches_until(shutdown))).await;
        let mut total = 0;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(sent) => total += sent,
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            #[cfg(feature = "testing")]
            Some(RelayError::InjectedCrash) => Err(RelayError::InjectedCrash),
            Some(error) if total == 0 => Err(error),
            Some(error) => {
                tracing::warn!(%error, sent = total, "outbox relay failed after publishing part of the backlog");
                Ok(total)
            }
            None => Ok(total),
        }
    }

    /// Publishes batches of entries, each followed by a bundle, until a batch is not full
    /// and no bundle is left; returns how many messages were marked sent. Stops at the
    /// first failure.
    async fn relay_batches_until(&self, shutdown: &Shutdown) -> Result<usize, RelayError> {
        let mut total = 0;
        let full = usize::try_from(self.settings.batch_size.max(1)).unwrap_or(usize::MAX);
        while !shutdown.is_cancelled() {
            let sent = self.relay_batch().await?;
            let bundled = self.relay_bundle().await?;
            total += sent + bundled;
            if sent < full && bundled == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Claims one unsent, unclaimed bundle, publishes each of its messages, waits for all
    /// the confirms under one deadline, and marks the bundle sent; returns how many
    /// messages it held (0: none was pending). If any is not confirmed the bundle is
    /// released whole, to be published again (the confirmed ones then reach consumers
    /// twice, with the same message ids), and this fails.
    pub async fn relay_bundle(&self) -> Result<usize, RelayError> {
        let mut conn = self.connection().await?;
        let Some(bundle) =
            claim_bundle(&mut conn, Duration::from_millis(self.settings.claim_ttl_ms)).await?
        else {
            return Ok(0);
        };
        let id = bundle.id;
        let messages = bundle.into_messages();
        // No transaction and no lock is held while the broker answers.
        let results = self.publish(&messages).await;

        #[cfg(feature = "testing")]
        if self.crash_after_publish {
            return Err(RelayError::InjectedCrash);
        }

        let unconfirmed = results.iter().filter(|r| r.is_err()).count();
        let first_error = results.into_iter().find_map(Result::err);
        let sql = match first_error {
            None => "UPDATE outbox_bundles SET sent_at = now(), claimed_until = NULL WHERE id = $1",
            // Released now rather than when the claim runs out, so the next try is soon.
            Some(_) => "UPDATE outbox_bundles SET claimed_until = NULL WHERE id = $1",
        };
        diesel::sql_query(sql)
            .bind::<BigInt, _>(id)
            .execute(&mut conn)
            .await?;
        match first_error {
            None => Ok(messages.len()),
            Some(error) => {
                tracing::warn!(%error, bundle = id, unconfirmed, messages = messages.len(), "part of an outbox bundle was not confirmed; it will be published again whole");
                Err(RelayError::Publish(error))
            }
        }
    }

    /// Claims one batch of unsent, unclaimed entries, publishes it, waits for all the
    /// confirms under one deadline, marks the confirmed entries sent and releases the
    /// others. Returns how many were marked sent.
    pub async fn relay_batch(&self) -> Result<usize, RelayError> {
        let mut conn = self.connection().await?;
        let entries = claim(
            &mut conn,
            self.settings.batch_size.max(1),
            Duration::from_millis(self.settings.claim_ttl_ms),
        )
        .await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
        let messages: Vec<OutgoingMessage> = entries.into_iter().map(Entry::into_message).collect();
        // No transaction and no lock is held while the broker answers.
        let results = self.publish(&messages).await;

        #[cfg(feature = "testing")]
        if self.crash_after_publish {
            return Err(RelayError::InjectedCrash);
        }

        let mut confirmed = Vec::with_capacity(ids.len());
        let mut unconfirmed = Vec::new();
        let mut first_error = None;
        for (id, result) in ids.into_iter().zip(results) {
            match result {
                Ok(()) => confirmed.push(id),
                Err(error) => {
                    unconfirmed.push(id);
                    first_error.get_or_insert(error);
                }
            }
        }
        diesel::update(outbox::table.filter(outbox::id.eq_any(&confirmed)))
            .set((
                outbox::sent_at.eq(diesel::dsl::now),
                outbox::claimed_until.eq(None::<DateTime<Utc>>),
            ))
            .execute(&mut conn)
            .await?;
        if !unconfirmed.is_empty() {
            // Released now rather than when the claim runs out, so the next try is soon.
            diesel::update(outbox::table.filter(outbox::id.eq_any(&unconfirmed)))
                .set(outbox::claimed_until.eq(None::<DateTime<Utc>>))
                .execute(&mut conn)
                .await?;
        }
        match first_error {
            Some(error) if confirmed.is_empty() => Err(RelayError::Publish(error)),
            Some(error) => {
                tracing::warn!(%error, confirmed = confirmed.len(), unconfirmed = unconfirmed.len(), "part of an outbox batch was not confirmed");
                Ok(confirmed.len())
            }
            None => Ok(confirmed.len()),
        }
    }

    /// A connection from the relay's pool.
    async fn connection(&self) -> Result<crate::db::Connection, RelayError> {
        self.pool
            .get()
            .await
            .map_err(|e| RelayError::Pool(e.to_string()))
    }

    /// Publishes `messages` and waits for all their confirms under one deadline
    /// ([`RelaySettings::confirm_timeout_ms`]); no transaction or lock is held meanwhile.
    async fn publish(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        self.publisher
            .publish_all_within(
                messages,
                Duration::from_millis(self.settings.confirm_timeout_ms),
            )
            .await
    }

    async fn sweep(&self) -> Result<(), RelayError> {
        let mut conn = self.connection().await?;
        let retention = Duration::from_secs(self.settings.retention_secs);
        let sent = delete_sent(&mut conn, retention).await?;
        let processed = prune_processed(&mut conn, retention).await?;
        if sent + processed > 0 {
            tracing::info!(
                outbox_deleted = sent,
                processed_deleted = processed,
                "outbox retention sweep"
            );
        }
        Ok(())
    }
}

/// A bundle as claimed: its messages, element by element.
#[derive(QueryableByName)]
struct Bundle {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Array<SqlUuid>)]
    message_ids: Vec<Uuid>,
    #[diesel(sql_type = Array<Text>)]
    routing_keys: Vec<String>,
    #[diesel(sql_type = Array<Text>)]
    message_types: Vec<String>,
    #[diesel(sql_type = Array<Text>)]
    correlation_ids: Vec<String>,
    #[diesel(sql_type = Array<Nullable<SqlUuid>>)]
    org_ids: Vec<Option<Uuid>>,
    #[diesel(sql_type = Array<Bytea>)]
    bodies: Vec<Vec<u8>>,
    #[diesel(sql_type = Array<Timestamptz>)]
    created_ats: Vec<DateTime<Utc>>,
}

impl Bundle {
    /// Its messages in the order they were written (the table's check constraint keeps
    /// every array the same length).
    fn into_messages(self) -> Vec<OutgoingMessage> {
        let mut routing_keys = self.routing_keys.into_iter();
        let mut message_types = self.message_types.into_iter();
        let mut correlation_ids = self.correlation_ids.into_iter();
        let mut org_ids = self.org_ids.into_iter();
        let mut bodies = self.bodies.into_iter();
        let mut created_ats = self.created_ats.into_iter();
        self.message_ids
            .into_iter()
            .map_while(|message_id| {
                Some(OutgoingMessage {
                    routing_key: routing_keys.next()?,
                    message_type: message_types.next()?,
                    body: bodies.next()?,
                    meta: MessageMeta {
                        message_id,
                        correlation_id: correlation_ids.next()?,
                        org_id: org_ids.next()?,
                    },
                    created_at: created_ats.next()?,
                })
            })
            .collect()
    }
}

/// Claims the oldest unsent bundle that nobody holds a live claim on, for `ttl`; one
/// statement, as [`claim`].
async fn claim_bundle(conn: &mut AsyncPgConnection, ttl: Duration) -> QueryResult<Option<Bundle>> {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    diesel::sql_query(
        "UPDATE outbox_bundles SET claimed_until = now() + make_interval(secs => $1::float8 / 1000) \
         WHERE id = ( \
             SELECT id FROM outbox_bundles \
             WHERE sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < now()) \
             ORDER BY id LIMIT 1 \
             FOR UPDATE SKIP LOCKED) \
         RETURNING id, message_ids, routing_keys, message_types, correlation_ids, org_ids, \
             bodies, created_ats",
    )
    .bind::<BigInt, _>(ttl_ms)
    .get_result(conn)
    .await
    .optional()
}

/// Claims up to `limit` unsent entries that nobody holds a live claim on, oldest id first,
/// for `ttl`. One statement, so its row locks last only as long as it runs; relays racing
/// for the same rows skip each other's (`SKIP LOCKED`) instead of waiting.
async fn claim(conn: &mut AsyncPgConnection, limit: i64, ttl: Duration) -> QueryResult<Vec<Entry>> {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let mut entries: Vec<Entry> = diesel::sql_query(
        "UPDATE outbox SET claimed_until = now() + make_interval(secs => $2::float8 / 1000) \
         WHERE id IN ( \
             SELECT id FROM outbox \
             WHERE sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < now()) \
             ORDER BY id LIMIT $1 \
             FOR UPDATE SKIP LOCKED) \
         RETURNING id, message_id, routing_key, message_type, correlation_id, org_id, body, \
             created_at",
    )
    .bind::<BigInt, _>(limit)
    .bind::<BigInt, _>(ttl_ms)
    .load(conn)
    .await?;
    entries.sort_by_key(|e| e.id);
    Ok(entries)
}
