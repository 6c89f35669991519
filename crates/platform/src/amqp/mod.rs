//! AMQP: a self-healing broker connection, topology declaration, confirmed publishing and
//! a consumer loop with manual acks and a dead-letter path.
//!
//! The pieces, and who uses them:
//! - [`Broker`] owns the one connection of a process and reconnects with exponential
//!   backoff; `/readyz` asks it [`Broker::is_connected`].
//! - [`QueueSpec`] describes a consumer's quorum queue; the broker (re)declares it, its
//!   dead-letter queue and the exchanges on every connect.
//! - [`Publisher`] publishes and returns only once the broker has confirmed the message.
//! - [`consume`] runs a [`Handler`] over a queue: one message at a time, acked only after
//!   the handler says so, retried or dead-lettered otherwise.
//!
//! It knows nothing about what messages mean: bodies are bytes, typed only through
//! [`contracts::Event`]. It never logs the broker URL's password.

mod broker;
mod consumer;
mod message;
mod publisher;
#[cfg(feature = "testing")]
pub mod testing;
mod topology;

pub use broker::{Broker, BrokerError};
pub use consumer::{
    DEAD_LETTER_QUEUE_HEADER, DEAD_LETTER_REASON_HEADER, DecodeError, Delivery, Handler, Outcome,
    consume,
};
pub use message::{MessageMeta, ORG_ID_HEADER, OutgoingMessage, PROTOBUF_CONTENT_TYPE};
pub use publisher::{PublishError, Publisher};
pub use topology::{QueueSpec, dead_letter_queue_name};

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
    /// Deliveries a message may fail before it is dead-lettered (`x-delivery-limit`).
    pub delivery_limit: u32,
    /// First pause before reconnecting after the connection is lost.
    pub reconnect_initial_backoff_ms: u64,
    /// Longest pause between reconnection attempts; the pause doubles up to this.
    pub reconnect_max_backoff_ms: u64,
    /// Pause before a message whose handler asked for a retry goes back to the queue; it
    /// doubles with each delivery of the same message, so a failing handler does not spin.
    #[serde(default = "default_retry_initial_backoff_ms")]
    pub retry_initial_backoff_ms: u64,
    /// Longest such pause.
    #[serde(default = "default_retry_max_backoff_ms")]
    pub retry_max_backoff_ms: u64,
}

fn default_retry_initial_backoff_ms() -> u64 {
    200
}

fn default_retry_max_backoff_ms() -> u64 {
    5_000
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
        assert_eq!(s.amqp.retry_initial_backoff_ms, 200);
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
