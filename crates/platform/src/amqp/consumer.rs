//! The consumer loop: deliveries one at a time, each handled inside its message span, acked
//! only once the handler says the work is done.
//!
//! Outcomes:
//! - [`Outcome::Ack`]: done (its effects are committed).
//! - [`Outcome::Retry`]: a passing failure (a dependency is down). The message is
//!   republished (confirmed, mandatory) to one of the queue's retry queues, where the
//!   broker keeps it for a pause that doubles with each retry up to
//!   `amqp.retry_max_backoff_ms`, then acked; when the pause is over the broker puts it
//!   back into the work queue. Retries do not use up the queue's delivery limit, so an
//!   outage of hours dead-letters nothing; only a message still failing
//!   `amqp.retry_give_up_after_ms` after its first failure is dead-lettered. The retry
//!   count travels in [`RETRY_COUNT_HEADER`] ([`Delivery::retries`]).
//! - [`Outcome::DeadLetter`]: a permanent failure. The message is republished (confirmed,
//!   mandatory) to its `{queue}.dlq` with the reason in [`DEAD_LETTER_REASON_HEADER`],
//!   then acked.
//!
//! Poison messages: a handler that panics, or a process that dies mid-message, leaves the
//! message unsettled; it comes back at once (after a short local pause for a panic), and
//! after `delivery_limit` such redeliveries it is dead-lettered (by the consumer with the
//! panic as the reason, or by the broker's own delivery limit with reason
//! `delivery_limit` in the `x-death` header). Should the retry queue refuse a message,
//! the consumer falls back to that same local pause and requeue.
//!
//! Handling is sequential per consumer; the prefetch window hides the network round trip.
//! A retried message goes behind the messages that arrived meanwhile, so handlers must not
//! rely on order (compare versions instead). For parallelism within one process use
//! [`consume_concurrently`]: one subscription on one channel handling up to N messages at
//! once, rather than N subscriptions. When a connection drops, the broker returns each
//! subscription's unsettled messages in turn, and a message returned by one subscription
//! can be handed at once to another subscription of the same dead connection that the
//! broker has not yet noticed is gone; every such hop counts against the queue's delivery
//! limit, so with many subscriptions per process a single lost connection dead-lettered
//! healthy messages. One channel is noticed as gone in one step.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder as _, ExponentialBuilder};
use futures::FutureExt as _;
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection};
use tracing::Instrument as _;
use uuid::Uuid;

use super::broker::Broker;
use super::message::ORG_ID_HEADER;
use super::publisher::Publisher;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Header carrying why a message was dead-lettered by a handler.
pub const DEAD_LETTER_REASON_HEADER: &str = "x-hubscore-dead-letter-reason";

/// Header naming the queue a dead letter came from.
pub const DEAD_LETTER_QUEUE_HEADER: &str = "x-hubscore-dead-letter-queue";

/// Header keeping a message's original routing key while it travels through a retry queue
/// or the DLQ (both route it by queue name). [`Delivery::routing_key`] reads it.
pub const ORIGINAL_ROUTING_KEY_HEADER: &str = "x-hubscore-original-routing-key";

/// Header counting how often handlers asked to retry a message ([`Delivery::retries`]).
pub const RETRY_COUNT_HEADER: &str = "x-hubscore-retries";

/// Header with the time (Unix milliseconds) of a message's first retryable failure, from
/// which `amqp.retry_give_up_after_ms` is counted.
pub(crate) const FIRST_FAILURE_HEADER: &str = "x-hubscore-first-failure-ms";

/// Header with the time (Unix milliseconds) a handler's consumer dead-lettered a message.
pub(crate) const DEAD_LETTERED_AT_HEADER: &str = "x-hubscore-dead-lettered-at-ms";

/// The quorum queue's own redelivery counter; never copied onto a republished message, which
/// starts afresh.
const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// Longest local pause before requeueing a message whose handler panicked: the consumer
/// holds the message meanwhile and handles nothing else.
const LOCAL_PAUSE_MAX: Duration = Duration::from_secs(5);

/// Pause before re-subscribing after the channel was lost while the connection stayed up.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(500);

/// How long, once the connection is lost, the messages in hand get to finish before the
/// consumer resubscribes without them (they come back: the broker returns every message
/// a lost channel left unsettled).
const FINISH_AFTER_LOSS: Duration = Duration::from_secs(10);

/// What a handler decided about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: ack it.
    Ack,
    /// Failed for now (a dependency is down, a row is locked): deliver it again later.
    Retry(String),
    /// Can never succeed (malformed, refers to nothing): move it to the DLQ with this reason.
    DeadLetter(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Ack => "ack",
            Self::Retry(_) => "retry",
            Self::DeadLetter(_) => "dead_letter",
        }
    }
}

/// One received message, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message's unique id; record it with [`crate::outbox::first_delivery`] to skip
    /// duplicates.
    pub message_id: Uuid,
    /// AMQP `type`, the full protobuf message name (empty when the sender set none).
    pub message_type: String,
    /// Trace id; the message id when the sender set none.
    pub correlation_id: String,
    /// The `org_id` header, when present and a UUID.
    pub org_id: Option<Uuid>,
    /// The queue it was consumed from; dedupe with
    /// `first_delivery(conn, &delivery.queue, delivery.message_id)`.
    pub queue: String,
    /// The routing key it was published with (kept across retries and replays).
    pub routing_key: String,
    /// The encoded message.
    pub body: Vec<u8>,
    /// The broker delivered it before (to this or another consumer).
    pub redelivered: bool,
    /// Earlier deliveries of this copy that were never settled (a crash, a panic, a lost
    /// channel: the quorum queue's `x-delivery-count`; 0 on the first delivery).
    pub delivery_count: u32,
    /// How many times handlers answered [`Outcome::Retry`] for this message before (0 on
    /// its first attempt).
    pub retries: u32,
}

/// A message body did not decode as the expected event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The AMQP `type` names another message.
    #[error("expected a {expected} message, got type {actual:?}")]
    WrongType {
        /// The event type asked for.
        expected: &'static str,
        /// The `type` property received.
        actual: String,
    },
    /// The body is not valid protobuf for the type.
    #[error("malformed {message_type} body: {source}")]
    Malformed {
        /// The event type asked for.
        message_type: &'static str,
        /// What prost said.
        #[source]
        source: prost::DecodeError,
    },
}

impl Delivery {
    /// Decodes the body as `E`, checking the `type` property first. A failure is permanent:
    /// answer it with [`Outcome::DeadLetter`].
    pub fn decode<E: contracts::Event>(&self) -> Result<E, DecodeError> {
        if self.message_type != E::TYPE_NAME {
            return Err(DecodeError::WrongType {
                expected: E::TYPE_NAME,
                actual: self.message_type.clone(),
            });
        }
        E::decode(self.body.as_slice()).map_err(|source| DecodeError::Malformed {
            message_type: E::TYPE_NAME,
            source,
        })
    }

    /// Metadata for a message this one causes: same trace and organization, new id.
    pub fn follow_up(&self) -> super::MessageMeta {
        super::MessageMeta::new(self.correlation_id.clone(), self.org_id)
    }

    fn from_lapin(queue: &str, delivery: &lapin::message::Delivery) -> Result<Self, String> {
        let properties = &delivery.properties;
        let raw_id = properties
            .message_id()
            .as_ref()
            .map(ShortString::as_str)
            .unwrap_or_default();
        let message_id = Uuid::parse_str(raw_id).map_err(|_| {
            format!("message_id {raw_id:?} is missing or not a UUID; consumers dedupe by it")
        })?;
        let headers = properties.headers().as_ref();
        let header = |name: &str| headers.and_then(|h| h.inner().get(name));
        let org_id = header(ORG_ID_HEADER)
            .and_then(amqp_string)
            .and_then(|s| Uuid::parse_str(&s).ok());
        let delivery_count = header(DELIVERY_COUNT_HEADER)
            .and_then(amqp_integer)
            .unwrap_or(0);
        let retries = header(RETRY_COUNT_HEADER)
            .and_then(amqp_integer)
            .unwrap_or(0);
        Ok(Self {
            message_id,
            message_type: properties
                .kind()
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            correlation_id: properties
                .correlation_id()
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| message_id.to_string()),
            org_id,
            queue: queue.to_owned(),
            routing_key: original_routing_key(delivery),
            body: delivery.data.clone(),
            redelivered: delivery.redelivered,
            delivery_count: u32::try_from(delivery_count).unwrap_or(u32::MAX),
            retries: u32::try_from(retries).unwrap_or(u32::MAX),
        })
    }
}

/// The routing key the message was first published with: the header a retry or dead letter
/// carries, else the delivery's own.
pub(crate) fn original_routing_key(delivery: &lapin::message::Delivery) -> String {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ORIGINAL_ROUTING_KEY_HEADER))
        .and_then(amqp_string)
        .unwrap_or_else(|| delivery.routing_key.to_string())
}

pub(crate) fn amqp_string(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

pub(crate) fn amqp_integer(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::ShortShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::Timestamp(v) => Some(*v),
        AMQPValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

/// Handles one message. Implemented for every `Fn(Delivery) -> impl Future<Output = Outcome>`.
pub trait Handler: Send + Sync + 'static {
    /// Does the message's work (committing its effects) and says how it went.
    fn handle(&self, delivery: Delivery) -> impl Future<Output = Outcome> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    fn handle(&self, delivery: Delivery) -> impl Future<Output = Outcome> + Send {
        self(delivery)
    }
}

/// Consumes `queue` until `shutdown`, surviving broker restarts and reconnects.
///
/// On shutdown it stops taking deliveries, lets the message in hand finish and settles it,
/// cancels the subscription and returns; prefetched messages not yet started go back to
/// the queue when the channel closes.
pub async fn consume<H: Handler>(
    broker: Broker,
    queue: String,
    handler: H,
    shutdown: Shutdown,
    metrics: Metrics,
) {
    consume_concurrently(broker, queue, handler, 1, shutdown, metrics).await;
}

/// [`consume`] with up to `concurrency` messages handled at once by one subscription on one
/// channel (its prefetch is at least `concurrency`). Each message is settled on its own as
/// its handler finishes, in whatever order they finish. On shutdown the messages in hand
/// are finished and settled before it stops. When the connection is lost they get up to
/// 10 s to finish (settling on the dead channel is not waited for) before it resubscribes
/// without them: every message the lost channel left unsettled comes back, and handlers
/// are idempotent.
pub async fn consume_concurrently<H: Handler>(
    broker: Broker,
    queue: String,
    handler: H,
    concurrency: usize,
    shutdown: Shutdown,
    metrics: Metrics,
) {
    let handler = Arc::new(handler);
    let publisher = Publisher::new(broker.clone());
    let retry_delays = super::topology::retry_delays(broker.settings());
    let consumer = Consumer {
        broker,
        queue,
        publisher,
        retry_delays,
        shutdown,
        metrics,
        concurrency: concurrency.max(1),
    };
    loop {
        let connection = tokio::select! {
            () = consumer.shutdown.cancelled() => return,
            connection = consumer.broker.connected() => connection,
        };
        match consumer.session(&connection, handler.as_ref()).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(amqp.queue = %consumer.queue, %error, "consumer lost its channel; resubscribing");
                tokio::select! {
                    () = consumer.shutdown.cancelled() => return,
                    () = tokio::time::sleep(RESUBSCRIBE_PAUSE) => {}
                }
            }
        }
    }
}

struct Consumer {
    broker: Broker,
    queue: String,
    publisher: Publisher,
    /// The pauses of the queue's retry queues, shortest first.
    retry_delays: Vec<Duration>,
    shutdown: Shutdown,
    metrics: Metrics,
    /// Messages handled at once.
    concurrency: usize,
}

impl Consumer {
    /// One subscription on one channel. `Ok` at shutdown, `Err` when the channel is lost.
    async fn session<H: Handler>(
        &self,
        connection: &Arc<Connection>,
        handler: &H,
    ) -> Result<(), String> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| e.to_string())?;
        let prefetch = self
            .broker
            .settings()
            .prefetch
            .max(u16::try_from(self.concurrency).unwrap_or(u16::MAX));
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let tag = format!("{}.{}", self.queue, Uuid::new_v4().simple());
        let mut deliveries = channel
            .basic_consume(
                self.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(amqp.queue = %self.queue, "consuming");
        let lost = self.broker.lost(connection);
        tokio::pin!(lost);
        let mut in_hand = futures::stream::FuturesUnordered::new();
        let ended = loop {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break Ok(()),
                () = &mut lost => break Err("the broker connection was lost".to_owned()),
                Some(()) = in_hand.next(), if !in_hand.is_empty() => {}
                next = deliveries.next(), if in_hand.len() < self.concurrency => match next {
                    Some(Ok(delivery)) => in_hand.push(self.handle(delivery, handler, connection)),
                    Some(Err(error)) => break Err(error.to_string()),
                    None => break Err("the broker cancelled the subscription".to_owned()),
                },
            }
        };
        // A handler stopped half-way could leave its work half-done; let each finish. After
        // a lost connection, though, not for ever: one that does not finish must not keep
        // the consumer from resubscribing (its message comes back; handlers are idempotent).
        let finish = async { while in_hand.next().await.is_some() {} };
        if ended.is_ok() {
            finish.await;
        } else if tokio::time::timeout(FINISH_AFTER_LOSS, finish)
            .await
            .is_err()
        {
            tracing::warn!(amqp.queue = %self.queue, messages = in_hand.len(),
                "messages in hand did not finish after the connection was lost; resubscribing without them");
        }
        drop(in_hand);
        ended?;
        self.stop(&channel, &tag).await;
        Ok(())
    }

    async fn stop(&self, channel: &Channel, tag: &str) {
        let _ = channel
            .basic_cancel(tag.into(), BasicCancelOptions::default())
            .await;
        let _ = channel.close(200, "consumer shutting down".into()).await;
        tracing::info!(amqp.queue = %self.queue, "stopped consuming");
    }

    async fn handle<H: Handler>(
        &self,
        raw: lapin::message::Delivery,
        handler: &H,
        connection: &Arc<Connection>,
    ) {
        let started = Instant::now();
        let delivery = match Delivery::from_lapin(&self.queue, &raw) {
            Ok(delivery) => delivery,
            Err(reason) => {
                let span = tracing::info_span!("message", amqp.queue = %self.queue);
                self.dead_letter(&raw, &reason).instrument(span).await;
                self.metrics.observe_message(
                    &self.queue,
                    "dead_letter",
                    started.elapsed().as_secs_f64(),
                );
                return;
            }
        };
        let span = crate::telemetry::message_span(
            &self.queue,
            &delivery.message_type,
            &delivery.message_id.to_string(),
            &delivery.correlation_id,
        );
        let (delivery_count, retries) = (delivery.delivery_count, delivery.retries);
        let outcome = AssertUnwindSafe(handler.handle(delivery))
            .catch_unwind()
            .instrument(span.clone())
            .await;
        let label = match &outcome {
            Ok(outcome) => outcome.label(),
            Err(_) => "panic",
        };
        let settle = async {
            match outcome {
                Ok(outcome) => self.settle(&raw, &outcome, retries).await,
                Err(_) => {
                    self.requeue_later(&raw, delivery_count, "the handler panicked")
                        .await;
                }
            }
        };
        // Settling on a channel whose connection is gone is moot (the broker returns the
        // message) and may never complete: stop waiting once the connection is lost.
        tokio::select! {
            biased;
            () = settle.instrument(span.clone()) => {}
            () = self.broker.lost(connection) => {
                tracing::warn!(parent: &span, "the broker connection was lost before the message was settled; it will be delivered again");
            }
        }
        self.metrics
            .observe_message(&self.queue, label, started.elapsed().as_secs_f64());
    }

    async fn settle(&self, raw: &lapin::message::Delivery, outcome: &Outcome, retries: u32) {
        match outcome {
            Outcome::Ack => {
                if let Err(error) = raw.acker.ack(BasicAckOptions::default()).await {
                    // The message comes back and is handled again; handlers are idempotent.
                    tracing::warn!(%error, "ack failed; the message will be redelivered");
                }
            }
            Outcome::Retry(reason) => self.retry(raw, retries, reason).await,
            Outcome::DeadLetter(reason) => self.dead_letter(raw, reason).await,
        }
    }

    /// Parks the message in the retry queue for its next pause and acks it; dead-letters it
    /// instead once it has been failing for longer than `retry_give_up_after_ms`.
    async fn retry(&self, raw: &lapin::message::Delivery, retries: u32, reason: &str) {
        let settings = self.broker.settings();
        let now_ms = unix_millis();
        let first_failure_ms = header_integer(raw, FIRST_FAILURE_HEADER).unwrap_or(now_ms);
        let failing_ms = now_ms.saturating_sub(first_failure_ms);
        if failing_ms >= settings.retry_give_up_after_ms {
            let reason = format!(
                "gave up after {} retries over {} s; last failure: {reason}",
                retries,
                failing_ms / 1_000
            );
            self.dead_letter(raw, &reason).await;
            return;
        }
        let index = usize::try_from(retries).unwrap_or(usize::MAX);
        let Some(&delay) = self
            .retry_delays
            .get(index)
            .or_else(|| self.retry_delays.last())
        else {
            // No retry queue is configured (cannot happen: there is always one pause).
            self.requeue_later(raw, 0, reason).await;
            return;
        };
        let mut headers =
            without_headers(raw.properties.headers().as_ref(), &[DELIVERY_COUNT_HEADER]);
        headers.insert(
            RETRY_COUNT_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(retries.saturating_add(1))),
        );
        headers.insert(
            FIRST_FAILURE_HEADER.into(),
            AMQPValue::LongLongInt(i64::try_from(first_failure_ms).unwrap_or(i64::MAX)),
        );
        headers.insert(
            ORIGINAL_ROUTING_KEY_HEADER.into(),
            AMQPValue::LongString(original_routing_key(raw).into()),
        );
        let properties = raw.properties.clone().with_headers(headers);
        let target = super::topology::retry_queue_name(&self.queue, delay);
        // The default exchange routes by queue name; mandatory turns a missing retry queue
        // into an error instead of a silently dropped message.
        let parked = self
            .publisher
            .publish_raw("", &target, true, &raw.data, properties)
            .await;
        match parked {
            Ok(()) => {
                tracing::warn!(%reason, retries, retry_in_ms = delay.as_millis(), "handler failed; will retry");
                if let Err(error) = raw.acker.ack(BasicAckOptions::default()).await {
                    // Both copies will be handled; handlers are idempotent.
                    tracing::warn!(%error, "ack after scheduling a retry failed; the message may come twice");
                }
            }
            Err(error) => {
                tracing::error!(%reason, %error, "could not park the message for a retry; requeueing it");
                let delivery_count = header_integer(raw, DELIVERY_COUNT_HEADER).unwrap_or(0);
                self.requeue_later(
                    raw,
                    u32::try_from(delivery_count).unwrap_or(u32::MAX),
                    reason,
                )
                .await;
            }
        }
    }

    /// Returns the message to the queue after a short local pause, which counts against the
    /// queue's delivery limit; once that is used up, dead-letters it with `reason`.
    async fn requeue_later(
        &self,
        raw: &lapin::message::Delivery,
        delivery_count: u32,
        reason: &str,
    ) {
        let settings = self.broker.settings();
        // Returning it once more would make the broker dead-letter it without our reason.
        if delivery_count >= settings.delivery_limit {
            let reason = format!(
                "gave up after {} deliveries; last failure: {reason}",
                delivery_count.saturating_add(1)
            );
            self.dead_letter(raw, &reason).await;
            return;
        }
        let initial = Duration::from_millis(settings.retry_initial_backoff_ms.max(1));
        let pause = ExponentialBuilder::new()
            .with_min_delay(initial.min(LOCAL_PAUSE_MAX))
            .with_max_delay(LOCAL_PAUSE_MAX)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(usize::try_from(delivery_count).unwrap_or(usize::MAX))
            .unwrap_or(LOCAL_PAUSE_MAX)
            .min(LOCAL_PAUSE_MAX);
        tracing::warn!(%reason, delivery_count, retry_in_ms = pause.as_millis(), "message not handled; requeueing it");
        // At shutdown the message goes back at once instead of holding the stop up.
        tokio::select! {
            () = self.shutdown.cancelled() => {}
            () = tokio::time::sleep(pause) => {}
        }
        requeue(raw).await;
    }

    /// Republishes to the DLQ with the reason, then acks; if that publish fails the message
    /// is requeued instead, so it is never lost.
    async fn dead_letter(&self, raw: &lapin::message::Delivery, reason: &str) {
        let settings = self.broker.settings();
        let mut headers = raw.properties.headers().clone().unwrap_or_default();
        headers.insert(
            DEAD_LETTER_REASON_HEADER.into(),
            AMQPValue::LongString(reason.into()),
        );
        headers.insert(
            DEAD_LETTER_QUEUE_HEADER.into(),
            AMQPValue::LongString(self.queue.as_str().into()),
        );
        headers.insert(
            ORIGINAL_ROUTING_KEY_HEADER.into(),
            AMQPValue::LongString(original_routing_key(raw).into()),
        );
        headers.insert(
            DEAD_LETTERED_AT_HEADER.into(),
            AMQPValue::LongLongInt(i64::try_from(unix_millis()).unwrap_or(i64::MAX)),
        );
        let properties = raw.properties.clone().with_headers(headers);
        let published = self
            .publisher
            .publish_raw(
                &settings.dead_letter_exchange,
                &self.queue,
                true,
                &raw.data,
                properties,
            )
            .await;
        match published {
            Ok(()) => {
                tracing::error!(%reason, "message dead-lettered");
                if let Err(error) = raw.acker.ack(BasicAckOptions::default()).await {
                    tracing::warn!(%error, "ack after dead-lettering failed; the message may come back");
                }
            }
            Err(error) => {
                tracing::error!(%reason, %error, "could not dead-letter the message; requeueing it");
                requeue(raw).await;
            }
        }
    }
}

/// A copy of `headers` without the ones named.
pub(crate) fn without_headers(headers: Option<&FieldTable>, names: &[&str]) -> FieldTable {
    headers
        .map(|h| {
            h.inner()
                .iter()
                .filter(|(k, _)| !names.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::BTreeMap<_, _>>()
        })
        .unwrap_or_default()
        .into()
}

fn header_integer(raw: &lapin::message::Delivery, name: &str) -> Option<u64> {
    raw.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
        .and_then(amqp_integer)
}

fn unix_millis() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default()
}

async fn requeue(raw: &lapin::message::Delivery) {
    let options = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    if let Err(error) = raw.acker.nack(options).await {
        // The channel is gone, which returns the message to the queue anyway.
        tracing::warn!(%error, "requeue failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Ping {
        #[prost(string, tag = "1")]
        text: String,
    }

    impl contracts::Event for Ping {
        const TYPE_NAME: &'static str = "hubscore.test.Ping";
        const ROUTING_KEYS: &'static [&'static str] = &["test.ping"];

        fn routing_key(&self) -> String {
            "test.ping".to_owned()
        }
    }

    fn delivery(message_type: &str, body: Vec<u8>) -> Delivery {
        Delivery {
            message_id: Uuid::now_v7(),
            message_type: message_type.to_owned(),
            correlation_id: "corr".to_owned(),
            org_id: Some(Uuid::new_v4()),
            queue: "test.queue".to_owned(),
            routing_key: "test.ping".to_owned(),
            body,
            redelivered: false,
            delivery_count: 0,
            retries: 0,
        }
    }

    #[test]
    fn a_delivery_decodes_as_the_event_its_type_names() {
        let body = prost::Message::encode_to_vec(&Ping { text: "hi".into() });
        assert_eq!(
            delivery("hubscore.test.Ping", body)
                .decode::<Ping>()
                .unwrap()
                .text,
            "hi"
        );
    }

    #[test]
    fn a_delivery_of_another_type_or_with_a_broken_body_does_not_decode() {
        let body = prost::Message::encode_to_vec(&Ping { text: "hi".into() });
        let wrong = delivery("hubscore.v1.ScoreUpdated", body)
            .decode::<Ping>()
            .unwrap_err();
        assert!(matches!(wrong, DecodeError::WrongType { .. }), "{wrong}");
        let broken = delivery("hubscore.test.Ping", vec![0xff, 0xff, 0xff])
            .decode::<Ping>()
            .unwrap_err();
        assert!(matches!(broken, DecodeError::Malformed { .. }), "{broken}");
    }

    #[test]
    fn a_follow_up_message_stays_in_the_same_trace_and_organization() {
        let cause = delivery("hubscore.test.Ping", vec![]);
        let next = cause.follow_up();
        assert_eq!(next.correlation_id, cause.correlation_id);
        assert_eq!(next.org_id, cause.org_id);
        assert_ne!(next.message_id, cause.message_id);
    }
}
