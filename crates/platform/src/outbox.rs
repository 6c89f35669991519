//! Transactional outbox: a service writes its rows and the messages about them in one
//! transaction, and a [`Relay`] publishes the messages (with publisher confirms) and marks
//! them sent.
//!
//! Delivery is at least once. A relay that dies between the broker's confirm and the
//! `sent_at` update publishes the same entries again on restart, with the same
//! `message_id`; consumers skip such duplicates with [`first_delivery`] inside their own
//! transaction. A message whose transaction rolled back never existed, so it is never sent.
//!
//! Several replicas may run a relay: each takes a batch with `FOR UPDATE SKIP LOCKED`, so
//! no entry is published by two relays at once. Within one relay entries go out in the
//! order they were written; across replicas only per batch.
//!
//! The tables are created by [`MIGRATIONS`], applied by each service's `migrate` step into
//! its own schema next to its own migrations. This module never touches another schema.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use serde::Deserialize;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::amqp::{Broker, MessageMeta, OutgoingMessage, PublishError, Publisher};
use crate::db::Pool;
use crate::shutdown::Shutdown;

/// Creates `outbox` and `processed_messages` in the current schema. Apply with
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
        }
    }

    diesel::table! {
        processed_messages (message_id) {
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

#[derive(Queryable, Selectable)]
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

/// Records that this consumer is applying `message_id`; `false` means it already did and the
/// delivery is a duplicate to ack without doing anything. Call it inside the handler's
/// transaction: if that rolls back, so does the record, and the redelivery is applied.
pub async fn first_delivery(conn: &mut AsyncPgConnection, message_id: Uuid) -> QueryResult<bool> {
    let inserted = diesel::insert_into(processed_messages::table)
        .values(processed_messages::message_id.eq(message_id))
        .on_conflict_do_nothing()
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

/// Deletes outbox entries sent longer ago than `older_than`.
pub async fn delete_sent(conn: &mut AsyncPgConnection, older_than: Duration) -> QueryResult<usize> {
    let cutoff = cutoff(older_than);
    diesel::delete(outbox::table.filter(outbox::sent_at.lt(cutoff)))
        .execute(conn)
        .await
}

/// Entries not yet marked sent.
pub async fn pending_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::sent_at.is_null())
        .count()
        .get_result(conn)
        .await
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
    /// Entries published per transaction.
    pub batch_size: i64,
    /// How long sent entries and processed message ids are kept before deletion.
    pub retention_secs: u64,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1_000,
            batch_size: 100,
            retention_secs: 7 * 24 * 3600,
        }
    }
}

/// How often the relay runs its retention sweep.
const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// The relay could not finish a batch; it tries again on the next wake-up or poll.
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
    /// the entries sent (its transaction rolls back, as a killed process's would, and
    /// [`Relay::run`] returns).
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
    /// poll interval; sweeps old entries now and then. Failures are logged and retried.
    pub async fn run(self, shutdown: Shutdown) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(1));
        let mut last_sweep: Option<Instant> = None;
        loop {
            // While the broker is away there is nothing to try; the connection's own task
            // logs that, and the next poll after it is back drains the backlog.
            let outcome = if self.broker.is_connected() {
                self.relay_pending().await
            } else {
                Ok(0)
            };
            match outcome {
                Ok(0) => {}
                Ok(sent) => tracing::debug!(sent, "outbox entries published"),
                #[cfg(feature = "testing")]
                Err(RelayError::InjectedCrash) => {
                    tracing::warn!("relay crashed on purpose between publish and mark");
                    return;
                }
                Err(error) => tracing::warn!(%error, "outbox relay failed; will retry"),
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
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Publishes batches until none is left; returns how many entries were marked sent.
    /// Stops at the first failure, keeping what was sent before it.
    pub async fn relay_pending(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let sent = self.relay_batch().await?;
            total += sent;
            if sent < usize::try_from(self.settings.batch_size).unwrap_or(usize::MAX) {
                return Ok(total);
            }
        }
    }

    /// Publishes one batch of unsent entries (locked so other relays skip them), waits for
    /// the confirms, and marks the confirmed ones sent, all in one transaction.
    pub async fn relay_batch(&self) -> Result<usize, RelayError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| RelayError::Pool(e.to_string()))?;
        let batch_size = self.settings.batch_size.max(1);
        conn.transaction(async |conn| {
            let entries: Vec<Entry> = outbox::table
                .filter(outbox::sent_at.is_null())
                .order(outbox::id)
                .limit(batch_size)
                .for_update()
                .skip_locked()
                .select(Entry::as_select())
                .load(conn)
                .await?;
            if entries.is_empty() {
                return Ok(0);
            }
            let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
            let messages: Vec<OutgoingMessage> =
                entries.into_iter().map(Entry::into_message).collect();
            let results = self.publisher.publish_all(&messages).await;

            #[cfg(feature = "testing")]
            if self.crash_after_publish {
                return Err(RelayError::InjectedCrash);
            }

            // Only the confirmed prefix is marked, so a failure leaves the rest in order.
            let confirmed = results.iter().take_while(|r| r.is_ok()).count();
            let first_error = results.into_iter().find_map(Result::err);
            diesel::update(outbox::table.filter(outbox::id.eq_any(&ids[..confirmed])))
                .set(outbox::sent_at.eq(diesel::dsl::now))
                .execute(conn)
                .await?;
            match first_error {
                // Marking what was confirmed must still commit, so the error is reported
                // outside the transaction.
                Some(error) if confirmed == 0 => Err(RelayError::Publish(error)),
                Some(error) => {
                    tracing::warn!(%error, confirmed, "part of an outbox batch was not confirmed");
                    Ok(confirmed)
                }
                None => Ok(confirmed),
            }
        })
        .await
    }

    async fn sweep(&self) -> Result<(), RelayError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| RelayError::Pool(e.to_string()))?;
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
