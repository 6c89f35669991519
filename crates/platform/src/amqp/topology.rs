//! Exchanges and queues: the events exchange, the dead-letter exchange, and for each
//! consumer a durable quorum queue with its `{queue}.dlq`.
//!
//! Declarations are idempotent, so they run on every (re)connect. Declaring an existing
//! queue with different arguments (say a changed `delivery_limit`) is refused by the broker
//! and reported as an error rather than silently ignored: such a change needs the queue to
//! be deleted or a policy, an operator's decision.

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
