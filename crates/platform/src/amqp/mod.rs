//! AMQP: a self-healing broker connection, topology declaration, confirmed publishing and
//! a consumer loop with manual acks and a dead-letter path.
//!
//! The pieces, and who uses them:
//! - [`Broker`] owns the one connection of a process and reconnects with exponential
//!   backoff; `/readyz` asks it [`Broker::is_connected`].
//! - [`QueueSpec`] describes a consumer's quorum queue; the broker (re)declares it, its
//!   dead-letter queue, its retry (delay) queues and the exchanges on every connect.
//! - [`Publisher`] publishes and returns only once the broker has confirmed the message.
//! - [`consume`] runs a [`Handler`] over a queue: one message at a time, acked only after
//!   the handler says so, retried through the queue's delay queues or dead-lettered
//!   otherwise.
//! - [`list_dead_letters`] and [`replay_dead_letters`] are the `dlq list` and `dlq replay`
//!   commands every service binary has.
//!
//! It knows nothing about what messages mean: bodies are bytes, typed only through
//! [`contracts::Event`]. It never logs the broker URL's password.

mod broker;
mod consumer;
mod dlq;
mod message;
mod publisher;
#[cfg(feature = "testing")]
pub mod testing;
mod topology;

pub use broker::{Broker, BrokerError};
pub use consumer::{
    DEAD_LETTER_QUEUE_HEADER, DEAD_LETTER_REASON_HEADER, DecodeError, Delivery, Handler,
    ORIGINAL_ROUTING_KEY_HEADER, Outcome, RETRY_COUNT_HEADER, consume, consume_concurrently,
};
pub use dlq::{DeadLetter, ReplayReport, list_dead_letters, replay_dead_letters};
pub use message::{MessageMeta, ORG_ID_HEADER, OutgoingMessage, PROTOBUF_CONTENT_TYPE};
pub use publisher::{PublishError, Publisher};
pub use topology::{QueueSpec, dead_letter_queue_name, retry_delays, retry_queue_name};

use serde::Deserialize;

/// The `[amqp]` configuration section.
#[derive(Clone, Deserialize)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost`. Carries a password: never log it.
    pub url: String,
    /// The durable topic exchange every event is published to (`hubscore.events`).
    pub exchange: String,
    /// Where rejected and poison messages go (`hubscore.dlx`); each queue's `{queue}.dlq`
    /// is bound to it with the queue's name as the routing key.
    pub dead_letter_exchange: String,
    /// How many unacknowledged deliveries the broker hands a consumer at once.
    pub prefetch: u16,
    /// Redeliveries of a message that was never settled (its consumer crashed or lost its
    /// channel mid-message, or its handler panicked) before the broker dead-letters it
    /// (`x-delivery-limit`). Handler-requested retries do not count: they go through the
    /// retry queues.
    pub delivery_limit: u32,
    /// First pause before reconnecting after the connection is lost.
    pub reconnect_initial_backoff_ms: u64,
    /// Longest pause between reconnection attempts; the pause doubles up to this.
    pub reconnect_max_backoff_ms: u64,
    /// Pause before a message whose handler asked for a retry ([`Outcome::Retry`]) is
    /// delivered again; it doubles with each retry of the same message. The pause is kept
    /// by the broker (the message waits in a `{queue}.retry.{ms}` delay queue), not by the
    /// consumer, which goes on with other messages.
    #[serde(default = "default_retry_initial_backoff_ms")]
    pub retry_initial_backoff_ms: u64,
    /// Longest such pause (minutes by default), so a dependency that is down for hours is
    /// retried a few times an hour rather than hammered.
    #[serde(default = "default_retry_max_backoff_ms")]
    pub retry_max_backoff_ms: u64,
    /// How long after its first retryable failure a message is still retried; past that
    /// the next failure dead-letters it, so a message that can never succeed but says
    /// "retry" does not circulate forever. Days by default: outages of hours are survived.
    #[serde(default = "default_retry_give_up_after_ms")]
    pub retry_give_up_after_ms: u64,
}

fn default_retry_initial_backoff_ms() -> u64 {
    1_000
}

fn default_retry_max_backoff_ms() -> u64 {
    5 * 60 * 1_000
}

fn default_retry_give_up_after_ms() -> u64 {
    3 * 24 * 3_600 * 1_000
}

impl AmqpSettings {
    /// The URL with any password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> String {
        crate::db::redact_url(&self.url)
    }
}

impl std::fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &self.redacted_url())
            .field("exchange", &self.exchange)
            .field("dead_letter_exchange", &self.dead_letter_exchange)
            .field("prefetch", &self.prefetch)
            .field("delivery_limit", &self.delivery_limit)
            .field(
                "reconnect_initial_backoff_ms",
                &self.reconnect_initial_backoff_ms,
            )
            .field("reconnect_max_backoff_ms", &self.reconnect_max_backoff_ms)
            .field("retry_initial_backoff_ms", &self.retry_initial_backoff_ms)
            .field("retry_max_backoff_ms", &self.retry_max_backoff_ms)
            .field("retry_give_up_after_ms", &self.retry_give_up_after_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Settings {
        amqp: AmqpSettings,
    }

    #[test]
    fn the_common_defaults_give_complete_amqp_settings() {
        let s: Settings = crate::config::load_with_env("", None, Vec::new()).unwrap();
        assert_eq!(s.amqp.exchange, "hubscore.events");
        assert_eq!(s.amqp.dead_letter_exchange, "hubscore.dlx");
        assert_eq!(s.amqp.retry_initial_backoff_ms, 1_000);
        assert_eq!(s.amqp.retry_max_backoff_ms, 300_000);
        assert_eq!(s.amqp.retry_give_up_after_ms, 3 * 24 * 3_600 * 1_000);
    }

    #[test]
    fn debug_output_hides_the_broker_password() {
        let s: Settings = crate::config::load_with_env(
            "",
            None,
            vec![(
                "HUBSCORE__AMQP__URL".to_owned(),
                "amqp://app:hunter2@mq:5672/%2f".to_owned(),
            )],
        )
        .unwrap();
        let text = format!("{:?}", s.amqp);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("amqp://app:***@mq:5672"), "{text}");
    }
}
