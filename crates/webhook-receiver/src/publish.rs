//! Publishing a delivery's `WebhookBatch`es with publisher confirms under a deadline
//! well inside HubSpot's 5 s, so a slow or absent broker turns into a 503 HubSpot
//! retries rather than a timeout.
//!
//! Publishes are spread over a few confirm channels: one channel serialises its
//! publishes, and a delivery waits only for its own confirms.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use contracts::v1::WebhookBatch;
use platform::amqp::{Broker, MessageMeta, OutgoingMessage, Publisher};

/// Why a delivery's batches were not all confirmed.
#[derive(Debug, thiserror::Error)]
pub enum BatchPublishError {
    /// The broker refused, lost the channel, or is not connected.
    #[error("publish failed: {0}")]
    Failed(#[from] platform::amqp::PublishError),
    /// No confirm within the deadline.
    #[error("no confirm within {0:?}")]
    Deadline(Duration),
}

/// Publishes webhook batches and waits for their confirms.
#[derive(Clone)]
pub struct BatchPublisher {
    publishers: Arc<Vec<Publisher>>,
    next: Arc<AtomicUsize>,
    deadline: Duration,
}

impl BatchPublisher {
    /// Publishes on `broker` over `channels` confirm channels, waiting at most `deadline`.
    pub fn new(broker: &Broker, channels: usize, deadline: Duration) -> Self {
        let publishers = (0..channels.max(1))
            .map(|_| Publisher::new(broker.clone()))
            .collect();
        Self {
            publishers: Arc::new(publishers),
            next: Arc::new(AtomicUsize::new(0)),
            deadline,
        }
    }

    /// Publishes every batch (one message each, in a trace of their own with
    /// `correlation_id`) and returns once all are confirmed, with the time the confirms
    /// took.
    ///
    /// # Errors
    /// [`BatchPublishError`] when any batch was not confirmed in time; some may have been,
    /// which HubSpot's retry then repeats and consumers dedupe by event.
    pub async fn publish(
        &self,
        batches: &[WebhookBatch],
        correlation_id: &str,
    ) -> (Duration, Result<(), BatchPublishError>) {
        let messages: Vec<OutgoingMessage> = batches
            .iter()
            .map(|batch| OutgoingMessage::from_event(batch, MessageMeta::new(correlation_id, None)))
            .collect();
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.publishers.len();
        let started = Instant::now();
        let result = match tokio::time::timeout(
            self.deadline,
            self.publishers[index].publish_all(&messages),
        )
        .await
        {
            Err(_) => Err(BatchPublishError::Deadline(self.deadline)),
            Ok(results) => results
                .into_iter()
                .collect::<Result<Vec<()>, _>>()
                .map(|_| ())
                .map_err(BatchPublishError::from),
        };
        (started.elapsed(), result)
    }
}
