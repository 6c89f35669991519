//! Dead-letter queues for operators: list what is in a `{queue}.dlq` and replay it.
//!
//! [`list_dead_letters`] reads messages without removing them (they go back when its
//! channel closes). [`replay_dead_letters`] republishes each message, with publisher
//! confirms, straight into the queue it died in (through the default exchange, so no other
//! queue bound to the same routing key sees it twice) with its original routing key kept in
//! [`ORIGINAL_ROUTING_KEY_HEADER`], and removes it from the DLQ only once the broker
//! confirmed the copy. A message whose copy is not confirmed stays in the DLQ. The replayed
//! copy starts afresh: its dead-letter reason and retry count are dropped.
//!
//! Both are reached as `<service> dlq list|replay [--queue Q] [--limit N]`.

use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};

use super::broker::{Broker, BrokerError};
use super::consumer::{
    DEAD_LETTER_QUEUE_HEADER, DEAD_LETTER_REASON_HEADER, DEAD_LETTERED_AT_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER, RETRY_COUNT_HEADER, amqp_integer, amqp_string, without_headers,
};
use super::publisher::Publisher;
use super::topology::dead_letter_queue_name;

/// Headers describing a message's failed life, dropped from its replayed copy.
const DROPPED_ON_REPLAY: &[&str] = &[
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTERED_AT_HEADER,
    RETRY_COUNT_HEADER,
    super::consumer::FIRST_FAILURE_HEADER,
    "x-delivery-count",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];

/// One message in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message's `message_id` (empty when it had none).
    pub message_id: String,
    /// The AMQP `type` (empty when it had none).
    pub message_type: String,
    /// The routing key it was originally published with.
    pub routing_key: String,
    /// Why it was dead-lettered: the handler's reason, or the broker's (`delivery_limit`).
    pub reason: String,
    /// How long ago it was dead-lettered (or, failing that, published), when known.
    pub age: Option<Duration>,
}

impl std::fmt::Display for DeadLetter {
    /// `message_id type routing_key age reason`, tab-separated, for `dlq list`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = self.age.map_or_else(|| "?".to_owned(), format_age);
        write!(
            f,
            "{}\t{}\t{}\t{}\t{}",
            or_dash(&self.message_id),
            or_dash(&self.message_type),
            or_dash(&self.routing_key),
            age,
            self.reason.replace(['\n', '\t'], " ")
        )
    }
}

fn or_dash(value: &str) -> &str {
    if value.is_empty() { "-" } else { value }
}

fn format_age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m{}s", secs / 60, secs % 60),
        3_600..86_400 => format!("{}h{}m", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{}d{}h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// What [`replay_dead_letters`] did.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// The messages republished (confirmed) and removed from the DLQ.
    pub replayed: Vec<DeadLetter>,
    /// The messages left in the DLQ because their copy was not confirmed, with the error.
    pub failed: Vec<(DeadLetter, String)>,
}

/// Up to `limit` messages at the head of `queue`'s DLQ, oldest first, left in place.
pub async fn list_dead_letters(
    broker: &Broker,
    queue: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>, BrokerError> {
    let dlq = dead_letter_queue_name(queue);
    let channel = broker.channel().await?;
    let mut listed = Vec::new();
    while listed.len() < limit {
        // Unacked: every message read stays with this channel, so the next get returns the
        // next one, and all of them go back to the queue when the channel closes.
        let Some(message) = channel
            .basic_get(dlq.as_str().into(), BasicGetOptions::default())
            .await?
        else {
            break;
        };
        listed.push(describe(&message.delivery));
    }
    channel.close(200, "listed".into()).await?;
    Ok(listed)
}

/// Republishes up to `limit` messages of `queue`'s DLQ (all of them with `None`) into
/// `queue` and removes each from the DLQ once the broker confirmed its copy. Only the
/// messages present when it starts are considered, so a message that dies again at once is
/// not replayed in a loop.
pub async fn replay_dead_letters(
    broker: &Broker,
    queue: &str,
    limit: Option<usize>,
) -> Result<ReplayReport, BrokerError> {
    let dlq = dead_letter_queue_name(queue);
    let channel = broker.channel().await?;
    let present = channel
        .queue_declare(
            dlq.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?
        .message_count();
    let limit = limit
        .unwrap_or(usize::MAX)
        .min(usize::try_from(present).unwrap_or(usize::MAX));
    let publisher = Publisher::new(broker.clone());
    let mut report = ReplayReport::default();
    while report.replayed.len() + report.failed.len() < limit {
        let Some(message) = channel
            .basic_get(dlq.as_str().into(), BasicGetOptions::default())
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        let described = describe(&delivery);
        let mut headers =
            without_headers(delivery.properties.headers().as_ref(), DROPPED_ON_REPLAY);
        headers.insert(
            ORIGINAL_ROUTING_KEY_HEADER.into(),
            AMQPValue::LongString(described.routing_key.as_str().into()),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        match publisher
            .publish_raw("", queue, true, &delivery.data, properties)
            .await
        {
            Ok(()) => {
                delivery.acker.ack(BasicAckOptions::default()).await?;
                tracing::info!(amqp.queue = %queue, message_id = %described.message_id, "dead letter replayed");
                report.replayed.push(described);
            }
            // Left unacked, so it is not read again here and returns to the DLQ when the
            // channel closes.
            Err(error) => {
                tracing::warn!(amqp.queue = %queue, message_id = %described.message_id, %error, "dead letter not replayed");
                report.failed.push((described, error.to_string()));
            }
        }
    }
    channel.close(200, "replayed".into()).await?;
    Ok(report)
}

fn describe(delivery: &lapin::message::Delivery) -> DeadLetter {
    let properties = &delivery.properties;
    let headers = properties.headers().as_ref();
    let header = |name: &str| headers.and_then(|h| h.inner().get(name));
    let last_death = header("x-death").and_then(|deaths| match deaths {
        AMQPValue::FieldArray(deaths) => match deaths.as_slice().first() {
            Some(AMQPValue::FieldTable(death)) => Some(death.clone()),
            _ => None,
        },
        _ => None,
    });
    let death = |name: &str| {
        last_death
            .as_ref()
            .and_then(|d| d.inner().get(name).cloned())
    };
    let routing_key = header(ORIGINAL_ROUTING_KEY_HEADER)
        .and_then(amqp_string)
        .or_else(|| match death("routing-keys") {
            Some(AMQPValue::FieldArray(keys)) => keys.as_slice().first().and_then(amqp_string),
            _ => None,
        })
        .unwrap_or_else(|| delivery.routing_key.to_string());
    let reason = header(DEAD_LETTER_REASON_HEADER)
        .and_then(amqp_string)
        .or_else(|| death("reason").as_ref().and_then(amqp_string))
        .unwrap_or_else(|| "unknown".to_owned());
    // Milliseconds from our header; seconds from the broker's x-death time or the timestamp.
    let at_ms = header(DEAD_LETTERED_AT_HEADER)
        .and_then(amqp_integer)
        .or_else(|| {
            death("time")
                .as_ref()
                .and_then(amqp_integer)
                .map(|s| s * 1_000)
        })
        .or_else(|| properties.timestamp().map(|s| s * 1_000));
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    DeadLetter {
        message_id: properties
            .message_id()
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        message_type: properties
            .kind()
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        routing_key,
        reason,
        age: at_ms.map(|at| Duration::from_millis(now_ms.saturating_sub(at))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_dead_letter_is_one_tab_separated_line() {
        let letter = DeadLetter {
            message_id: "0190-abc".into(),
            message_type: "hubscore.v1.ScoreUpdated".into(),
            routing_key: "score.updated".into(),
            reason: "bad\tbody\nreally".into(),
            age: Some(Duration::from_secs(3_725)),
        };
        assert_eq!(
            letter.to_string(),
            "0190-abc\thubscore.v1.ScoreUpdated\tscore.updated\t1h2m\tbad body really"
        );
        let unknown = DeadLetter {
            message_id: String::new(),
            age: None,
            ..letter
        };
        assert!(unknown.to_string().starts_with("-\t"), "{unknown}");
        assert!(unknown.to_string().contains("\t?\t"), "{unknown}");
    }

    #[test]
    fn ages_read_in_the_largest_sensible_units() {
        assert_eq!(format_age(Duration::from_secs(5)), "5s");
        assert_eq!(format_age(Duration::from_secs(125)), "2m5s");
        assert_eq!(format_age(Duration::from_secs(2 * 86_400 + 7_200)), "2d2h");
    }
}
