//! Publishing a delivery's `WebhookBatch`es with publisher confirms under a deadline
//! well inside HubSpot's 5 s, so a slow or absent broker turns into a 503 HubSpot
//! retries rather than a timeout.
//!
//! Publishes are spread over a few confirm channels: one channel serialises its
//! publishes, and a delivery waits only for its own confirms. At most
//! `max_pending_publishes` deliveries are handed to the broker connection at once; the
//! rest wait for a slot within the same deadline. Without that bound a broker slower than
//! the arrival rate makes publishes pile up in the client's buffers (memory grows, and
//! publishes answered 503 still reach the queue late, so HubSpot's retries double the
//! load): overload would feed itself.

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
    slots: Arc<tokio::sync::Semaphore>,
}

impl BatchPublisher {
    /// Publishes on `broker` over `channels` confirm channels, at most `max_pending`
    /// deliveries at once, waiting at most `deadline` per delivery.
    pub fn new(broker: &Broker, channels: usize, max_pending: usize, deadline: Duration) -> Self {
        let publishers = (0..channels.max(1))
            .map(|_| Publisher::new(broker.clone()))
            .collect();
        Self {
            publishers: Arc::new(publishers),
            next: Arc::new(AtomicUsize::new(0)),
            deadline,
            slots: Arc::new(tokio::sync::Semaphore::new(max_pending.max(1))),
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
        let publish = async {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = self.slots.acquire().await.ok();
            self.publishers[index].publish_all(&messages).await
        };
        let result = match tokio::time::timeout(self.deadline, publish).await {
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
