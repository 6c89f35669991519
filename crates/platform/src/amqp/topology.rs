//! Exchanges and queues: the events exchange, the dead-letter exchange, and for each
//! consumer a durable quorum queue with its `{queue}.dlq` and its retry (delay) queues.
//!
//! A retry queue `{queue}.retry.{ms}` holds messages whose handler asked for a retry: it
//! has no consumer, and each message expires after `ms` milliseconds (a queue-wide TTL, so
//! messages expire in order and a short pause never waits behind a long one), whereupon the
//! broker dead-letters it through the default exchange straight back into `{queue}`. The
//! pauses are the exponential sequence from `retry_initial_backoff_ms` to
//! `retry_max_backoff_ms` ([`retry_delays`]). Expiry uses at-least-once dead-lettering, so
//! a waiting message survives a broker failover.
//!
//! Declarations are idempotent, so they run on every (re)connect. Declaring an existing
//! queue with different arguments (say a changed `delivery_limit`) is refused by the broker
//! and reported as an error rather than silently ignored: such a change needs the queue to
//! be deleted or a policy, an operator's decision.

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::AmqpSettings;

/// A consumer's queue: `{service}.{purpose}` bound to the routing keys it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Queue name, e.g. `scoring-engine.crm-changes`.
    pub name: String,
    /// Binding keys on the events exchange (topic patterns such as `crm.changed.*`).
    pub routing_keys: Vec<String>,
}

impl QueueSpec {
    /// A queue bound to `routing_keys`.
    pub fn new(
        name: impl Into<String>,
        routing_keys: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            routing_keys: routing_keys.into_iter().map(Into::into).collect(),
        }
    }
}

/// The name of `queue`'s dead-letter queue.
pub fn dead_letter_queue_name(queue: &str) -> String {
    format!("{queue}.dlq")
}

/// The name of `queue`'s retry queue for a pause of `delay`.
pub fn retry_queue_name(queue: &str, delay: Duration) -> String {
    format!("{queue}.retry.{}", delay.as_millis())
}

/// The pauses before the 1st, 2nd, ... retry of a message (the last one repeats for every
/// later retry): `retry_initial_backoff_ms` doubling up to `retry_max_backoff_ms`. Each has
/// its own retry queue. No jitter: the broker's queue TTLs are the timers, and messages
/// failing together already spread out as they are handled one by one.
pub fn retry_delays(settings: &super::AmqpSettings) -> Vec<Duration> {
    let initial = Duration::from_millis(settings.retry_initial_backoff_ms.max(1));
    let max = Duration::from_millis(settings.retry_max_backoff_ms).max(initial);
    let mut delays: Vec<Duration> = Vec::new();
    // Rounded to whole milliseconds, the unit of a queue TTL and of the queue's name
    // (backon multiplies in f32, so 40 ms may come out as 39.99 ms).
    let sequence = ExponentialBuilder::new()
        .with_min_delay(initial)
        .with_max_delay(max)
        .with_factor(2.0)
        .without_max_times()
        .build()
        .map(|d| {
            let millis = d.as_micros().saturating_add(500) / 1_000;
            Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
        });
    for delay in sequence {
        delays.push(delay);
        // 64 doublings exceed any u64 of milliseconds; the bound only guards the loop.
        if delay >= max || delays.len() >= 64 {
            break;
        }
    }
    delays
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args
}

/// Declares both exchanges and every queue in `queues`.
pub(crate) async fn declare(
    channel: &Channel,
    settings: &AmqpSettings,
    queues: &[QueueSpec],
) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            settings.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    // Direct: a dead letter is routed by the name of the queue it came from.
    channel
        .exchange_declare(
            settings.dead_letter_exchange.as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
    for queue in queues {
        declare_queue(channel, settings, queue).await?;
    }
    Ok(())
}

async fn declare_queue(
    channel: &Channel,
    settings: &AmqpSettings,
    queue: &QueueSpec,
) -> lapin::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let dlq = dead_letter_queue_name(&queue.name);
    channel
        .queue_declare(dlq.as_str().into(), durable, quorum())
        .await?;
    channel
        .queue_bind(
            dlq.as_str().into(),
            settings.dead_letter_exchange.as_str().into(),
            queue.name.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut args = quorum();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(settings.dead_letter_exchange.as_str().into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(queue.name.as_str().into()),
    );
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(settings.delivery_limit)),
    );
    channel
        .queue_declare(queue.name.as_str().into(), durable, args)
        .await?;
    for delay in retry_delays(settings) {
        let mut args = quorum();
        let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
        // The default exchange routes by queue name: back into the work queue.
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(queue.name.as_str().into()),
        );
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        // Required by at-least-once dead-lettering.
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        let name = retry_queue_name(&queue.name, delay);
        channel
            .queue_declare(name.as_str().into(), durable, args)
            .await?;
    }
    for key in &queue.routing_keys {
        channel
            .queue_bind(
                queue.name.as_str().into(),
                settings.exchange.as_str().into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Settings {
        amqp: super::super::AmqpSettings,
    }

    fn settings(initial_ms: u64, max_ms: u64) -> super::super::AmqpSettings {
        let s: Settings = crate::config::load_with_env("", None, Vec::new()).unwrap();
        super::super::AmqpSettings {
            retry_initial_backoff_ms: initial_ms,
            retry_max_backoff_ms: max_ms,
            ..s.amqp
        }
    }

    #[test]
    fn retry_pauses_double_from_the_initial_one_up_to_the_maximum() {
        let ms = |v: &[Duration]| v.iter().map(|d| d.as_millis()).collect::<Vec<_>>();
        assert_eq!(
            ms(&retry_delays(&settings(1_000, 300_000))),
            vec![
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000
            ]
        );
        assert_eq!(
            ms(&retry_delays(&settings(20, 200))),
            vec![20, 40, 80, 160, 200]
        );
        assert_eq!(
            ms(&retry_delays(&settings(50, 10))),
            vec![50],
            "max below initial"
        );
    }

    #[test]
    fn a_retry_queue_is_named_after_its_work_queue_and_pause() {
        assert_eq!(
            retry_queue_name("scoring-engine.crm", Duration::from_millis(4_000)),
            "scoring-engine.crm.retry.4000"
        );
    }
}
