//! Publishing with publisher confirms: a publish counts only once the broker has taken
//! responsibility for the message.
//!
//! Events go to the topic exchange without the `mandatory` flag: an event nobody has bound
//! a queue for yet (say `score.updated` before any internal consumer exists) is normal
//! publish/subscribe, not a failure, and consumers declare their queues on start. Dead
//! letters, which must land in their `{queue}.dlq`, are published mandatory: a dead letter
//! with nowhere to go is an error and the original message is kept.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use tokio::sync::Mutex;

use super::broker::Broker;
use super::message::OutgoingMessage;

/// How long to wait for the broker's confirm before giving up on a message. The message
/// may still arrive; callers retry and consumers dedupe.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a failed publish waits for the broker to acknowledge closing its channel.
const DISCARD_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A message was not confirmed; whether to retry is the caller's decision.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No connection is up (the broker is unreachable or reconnecting).
    #[error("not connected to the broker")]
    NotConnected,
    /// The broker refused the message (`basic.nack`).
    #[error("the broker refused the message")]
    Nacked,
    /// A mandatory message matched no queue.
    #[error("the message could not be routed: {0}")]
    Unroutable(String),
    /// The channel or connection closed before the confirm arrived (or the exchange does
    /// not exist, which makes the broker close the channel).
    #[error("channel lost before the broker confirmed: {0}")]
    ChannelLost(#[source] lapin::Error),
    /// No confirm before the deadline.
    #[error("no confirm from the broker before the deadline")]
    ConfirmTimeout,
}

/// Publishes with confirms over one lazily opened channel, reopened after any failure.
/// Clones share the channel; concurrent publishes are fine.
#[derive(Clone)]
pub struct Publisher {
    broker: Broker,
    channel: Arc<Mutex<Option<Channel>>>,
}

impl Publisher {
    /// A publisher on `broker`'s connection. Opens nothing until the first publish.
    pub fn new(broker: Broker) -> Self {
        Self {
            broker,
            channel: Arc::new(Mutex::new(None)),
        }
    }

    /// Publishes `message` on the events exchange and returns once the broker confirmed it.
    pub async fn publish(&self, message: &OutgoingMessage) -> Result<(), PublishError> {
        let exchange = self.broker.settings().exchange.clone();
        let properties = message.properties();
        self.publish_raw(
            &exchange,
            &message.routing_key,
            false,
            &message.body,
            properties,
        )
        .await
    }

    /// Encodes and publishes an event; see [`Publisher::publish`].
    pub async fn publish_event<E: contracts::Event>(
        &self,
        event: &E,
        meta: super::MessageMeta,
    ) -> Result<(), PublishError> {
        self.publish(&OutgoingMessage::from_event(event, meta))
            .await
    }

    /// Publishes every message, then waits for all the confirms: one round trip for the
    /// batch instead of one per message, and at most 30 s for the lot. Results are in the
    /// order of `messages`; the broker receives the messages in that order too.
    pub async fn publish_all(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), PublishError>> {
        self.publish_all_within(messages, CONFIRM_TIMEOUT).await
    }

    /// [`Publisher::publish_all`] with one deadline, `timeout` from now, for all of it:
    /// opening a channel, sending and the confirms. A message not confirmed by then is
    /// [`PublishError::ConfirmTimeout`], also when a broker that stopped answering never
    /// opened the channel or took the message.
    pub async fn publish_all_within(
        &self,
        messages: &[OutgoingMessage],
        timeout: Duration,
    ) -> Vec<Result<(), PublishError>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let channel = match tokio::time::timeout_at(deadline, self.channel()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(error)) => return messages.iter().map(|_| Err(clone_error(&error))).collect(),
            Err(_) => {
                return messages
                    .iter()
                    .map(|_| Err(PublishError::ConfirmTimeout))
                    .collect();
            }
        };
        let exchange = self.broker.settings().exchange.clone();
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let send = channel.basic_publish(
                exchange.as_str().into(),
                message.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &message.body,
                message.properties(),
            );
            let sent = match tokio::time::timeout_at(deadline, send).await {
                Ok(sent) => sent.map_err(PublishError::ChannelLost),
                Err(_) => Err(PublishError::ConfirmTimeout),
            };
            pending.push(sent);
        }
        let mut results = Vec::with_capacity(messages.len());
        for sent in pending {
            let result = match sent {
                Ok(confirm) => await_confirm_until(confirm, deadline).await,
                Err(error) => Err(error),
            };
            results.push(result);
        }
        if results.iter().any(Result::is_err) {
            self.discard(&channel).await;
        }
        results
    }

    /// Publishes to any exchange; `mandatory` turns "no queue matched" into an error.
    pub(crate) async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        let options = BasicPublishOptions {
            mandatory,
            ..BasicPublishOptions::default()
        };
        let result = match channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                options,
                body,
                properties,
            )
            .await
        {
            Ok(confirm) => await_confirm(confirm).await,
            Err(error) => Err(PublishError::ChannelLost(error)),
        };
        if result.is_err() {
            self.discard(&channel).await;
        }
        result
    }

    /// The cached confirm channel, or a new one on the current connection.
    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut slot = self.channel.lock().await;
        if let Some(channel) = slot.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *slot = None;
        let connection = self.broker.current().ok_or(PublishError::NotConnected)?;
        let channel = connection
            .create_channel()
            .await
            .map_err(PublishError::ChannelLost)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(PublishError::ChannelLost)?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    /// Forgets `channel` after a failure so the next publish starts clean; a channel that
    /// is still open (a nack, a timeout) is closed so its late confirms go nowhere.
    async fn discard(&self, channel: &Channel) {
        let mut slot = self.channel.lock().await;
        if slot.as_ref().is_some_and(|c| c.id() == channel.id()) {
            *slot = None;
        }
        drop(slot);
        // Bounded: a broker that stopped answering never acknowledges the close either.
        if channel.status().connected() {
            let _ = tokio::time::timeout(
                DISCARD_CLOSE_WAIT,
                channel.close(200, "discarded after a failed publish".into()),
            )
            .await;
        }
    }
}

async fn await_confirm(confirm: PublisherConfirm) -> Result<(), PublishError> {
    await_confirm_until(confirm, tokio::time::Instant::now() + CONFIRM_TIMEOUT).await
}

async fn await_confirm_until(
    confirm: PublisherConfirm,
    deadline: tokio::time::Instant,
) -> Result<(), PublishError> {
    match tokio::time::timeout_at(deadline, confirm).await {
        Err(_) => Err(PublishError::ConfirmTimeout),
        Ok(Err(error)) => Err(PublishError::ChannelLost(error)),
        Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => Ok(()),
        Ok(Ok(Confirmation::Ack(Some(returned)))) => {
            Err(PublishError::Unroutable(returned.reply_text.to_string()))
        }
        Ok(Ok(Confirmation::Nack(_))) => Err(PublishError::Nacked),
    }
}

fn clone_error(error: &PublishError) -> PublishError {
    match error {
        PublishError::NotConnected => PublishError::NotConnected,
        PublishError::Nacked => PublishError::Nacked,
        PublishError::Unroutable(text) => PublishError::Unroutable(text.clone()),
        PublishError::ChannelLost(e) => PublishError::ChannelLost(e.clone()),
        PublishError::ConfirmTimeout => PublishError::ConfirmTimeout,
    }
}
