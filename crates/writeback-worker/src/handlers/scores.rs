//! `score.updated`: each change becomes its record's latest score, waiting to be written,
//! and its message is acked once that is stored. A message carries one change
//! (`ScoreUpdated`) or, from a whole-org rescore, up to 100 (`ScoreUpdatedBatch`),
//! acked once all of them are stored. Nothing is sent to HubSpot here; the flusher batches.
//!
//! Several messages are in hand at once (`writeback.score_consumers`, one subscription);
//! what is in hand at one moment is stored together in one statement by a single writer
//! task (group commit), so a burst of a million messages costs thousands of transactions,
//! not a million. Each message is acked only after the
//! statement that stored it (or found a newer score already stored) committed. An older
//! score never replaces a newer one: the upsert compares `computed_at` and the config
//! version, so redeliveries and reordering are harmless.

use std::collections::HashMap;

use contracts::Event as _;
use contracts::v1::{ObjectType, ScoreUpdated, ScoreUpdatedBatch};
use diesel_async::AsyncConnection as _;
use platform::amqp::{Delivery, Outcome};
use platform::db::Pool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::db::{self, IncomingScore, LevelChange};
use crate::mapping::{RiskLevel, TargetObject};

/// The routing key this handler's queue is bound to.
pub const ROUTING_KEY: &str = "score.updated";

/// Most scores stored in one statement.
const MAX_GROUP: usize = 1_000;

type Reply = oneshot::Sender<Result<(), String>>;

/// Hands scores to the writer task and waits for them to be stored.
#[derive(Clone)]
pub struct ScoreSink {
    sender: mpsc::Sender<(IncomingScore, Reply)>,
}

/// Why a `score.updated` cannot be stored, ever.
fn malformed(reason: impl Into<String>) -> Outcome {
    Outcome::DeadLetter(reason.into())
}

/// The changes a `score.updated` message carries: its one change, or a batch's. A batch's
/// entries that cannot be stored are reported (logged at error level, with the reason) and
/// left out: they can never be stored, and dead-lettering the batch would hold back all
/// the others with them.
fn carried(delivery: &Delivery) -> Result<Vec<IncomingScore>, Outcome> {
    if delivery.message_type != ScoreUpdatedBatch::TYPE_NAME {
        return incoming(delivery).map(|score| vec![score]);
    }
    let batch: ScoreUpdatedBatch = delivery.decode().map_err(|e| malformed(e.to_string()))?;
    let mut scores = Vec::with_capacity(batch.updates.len());
    for event in &batch.updates {
        match incoming_score(event, delivery.message_id) {
            Ok(score) => scores.push(score),
            Err(outcome) => tracing::error!(
                message_id = %delivery.message_id,
                customer_id = %event.customer_id,
                outcome = ?outcome,
                "a change in a score.updated batch cannot be stored; the others are"
            ),
        }
    }
    Ok(scores)
}

/// Reads the record and values of a `score.updated`.
pub fn incoming(delivery: &Delivery) -> Result<IncomingScore, Outcome> {
    let event: ScoreUpdated = delivery.decode().map_err(|e| malformed(e.to_string()))?;
    incoming_score(&event, delivery.message_id)
}

/// Reads the record and values of one change, carried by message `message_id`.
fn incoming_score(event: &ScoreUpdated, message_id: Uuid) -> Result<IncomingScore, Outcome> {
    let uuid = |field: &str, value: &str| {
        Uuid::parse_str(value).map_err(|_| malformed(format!("{field} {value:?} is not a UUID")))
    };
    // Producers before object_type existed named only the contact.
    let (object_type, object_id) = match event.object_type() {
        ObjectType::Contact => (TargetObject::Contacts, event.object_id),
        ObjectType::Company => (TargetObject::Companies, event.object_id),
        ObjectType::Unspecified if event.object_id == 0 && event.contact_id > 0 => {
            (TargetObject::Contacts, event.contact_id)
        }
        other => {
            return Err(malformed(format!(
                "scores of {other:?} records are not written back"
            )));
        }
    };
    if object_id <= 0 {
        return Err(malformed(format!(
            "object_id {object_id} is not a HubSpot id"
        )));
    }
    let score = match event.new_score {
        Some(s) if s > 100 => return Err(malformed(format!("score {s} is above 100"))),
        Some(s) => Some(i16::try_from(s).unwrap_or(100)),
        None => None,
    };
    let new_level = RiskLevel::from_proto(event.new_risk_level());
    let old_level = RiskLevel::from_proto(event.old_risk_level());
    // A first score, or a move to or from N/A, is no change of health to show.
    let level_change =
        (old_level != new_level && old_level != RiskLevel::None && new_level != RiskLevel::None)
            .then(|| LevelChange {
                old_risk_level: old_level.as_str().to_owned(),
                old_score: event
                    .old_score
                    .filter(|s| *s <= 100)
                    .and_then(|s| i16::try_from(s).ok()),
            });
    let computed_at = event
        .computed_at
        .as_ref()
        .ok_or_else(|| malformed("computed_at is missing"))
        .and_then(|t| contracts::time::to_datetime(t).map_err(|e| malformed(e.to_string())))?;
    Ok(IncomingScore {
        connection_id: uuid("connection_id", &event.connection_id)?,
        object_type,
        object_id,
        org_id: uuid("org_id", &event.org_id)?,
        portal_id: event.portal_id,
        score,
        risk_level: new_level.as_str().to_owned(),
        top_factor: event.top_factor.clone(),
        computed_at,
        config_version: event.config_version,
        message_id,
        level_change,
    })
}

impl ScoreSink {
    /// A sink and the writer task's receiving end.
    pub fn new() -> (Self, mpsc::Receiver<(IncomingScore, Reply)>) {
        let (sender, receiver) = mpsc::channel(4 * MAX_GROUP);
        (Self { sender }, receiver)
    }

    /// Stores one message's score, or every score of a batch; acks once all are committed
    /// (a batch that failed in part is retried whole: storing is idempotent).
    pub async fn handle(&self, delivery: Delivery) -> Outcome {
        let scores = match carried(&delivery) {
            Ok(scores) => scores,
            Err(outcome) => return outcome,
        };
        let mut replies = Vec::with_capacity(scores.len());
        for score in scores {
            let (reply, stored) = oneshot::channel();
            if self.sender.send((score, reply)).await.is_err() {
                return Outcome::Retry("the score writer stopped".to_owned());
            }
            replies.push(stored);
        }
        for stored in replies {
            match stored.await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return Outcome::Retry(reason),
                Err(_) => return Outcome::Retry("the score writer stopped".to_owned()),
            }
        }
        Outcome::Ack
    }
}

/// Stores what the consumers hand over, many scores per statement, until every sink is
/// dropped.
pub async fn write_scores(pool: Pool, mut receiver: mpsc::Receiver<(IncomingScore, Reply)>) {
    let mut group: Vec<(IncomingScore, Reply)> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = receiver.recv().await {
        group.push(first);
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let result = store(&pool, &group).await;
        for (_, reply) in group.drain(..) {
            let _ = reply.send(result.clone());
        }
    }
}

async fn store(pool: &Pool, group: &[(IncomingScore, Reply)]) -> Result<(), String> {
    // One statement may touch each record once: keep the newest score per record.
    let mut newest: HashMap<(Uuid, TargetObject, i64), &IncomingScore> = HashMap::new();
    for (score, _) in group {
        let key = (score.connection_id, score.object_type, score.object_id);
        match newest.get(&key) {
            Some(known) if !score.newer_than(known) => {}
            _ => {
                newest.insert(key, score);
            }
        }
    }
    // A fixed order keeps concurrent writers (other replicas) from deadlocking.
    let mut rows: Vec<IncomingScore> = newest.into_values().cloned().collect();
    rows.sort_by_key(|s| (s.connection_id, s.object_type, s.object_id));
    // Every change of risk level is an event of its own, even one a newer score replaced.
    let changes: Vec<&IncomingScore> = group
        .iter()
        .map(|(score, _)| score)
        .filter(|s| s.level_change.is_some())
        .collect();
    let mut conn = pool
        .get()
        .await
        .map_err(|e| format!("no database connection: {e}"))?;
    if changes.is_empty() {
        return db::store_scores(&mut conn, &rows)
            .await
            .map(drop)
            .map_err(|e| format!("storing scores failed: {e}"));
    }
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        db::store_scores(conn, &rows).await?;
        crate::timeline::store_level_changes(conn, &changes).await
    })
    .await
    .map(drop)
    .map_err(|e| format!("storing scores failed: {e}"))
}
