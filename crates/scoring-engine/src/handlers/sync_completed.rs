//! `sync.completed`: after a successful full or reconciliation run, rescore the whole org
//! with fresh org means (deal value is measured against them). Rescoring is idempotent by
//! nature (unchanged scores publish nothing), so a redelivery simply runs it again.

use contracts::v1::{SyncCompleted, SyncMode, sync_completed};
use platform::amqp::{Delivery, Outcome};
use uuid::Uuid;

use crate::engine::{self, RescoreError};
use crate::state::AppState;

/// Handles one `SyncCompleted`.
pub async fn handle(state: &AppState, delivery: &Delivery) -> Outcome {
    let message: SyncCompleted = match delivery.decode() {
        Ok(message) => message,
        Err(error) => return Outcome::DeadLetter(error.to_string()),
    };
    let Ok(org_id) = Uuid::parse_str(&message.org_id) else {
        return Outcome::DeadLetter(format!("org_id {:?} is not a UUID", message.org_id));
    };
    let succeeded = matches!(message.outcome, Some(sync_completed::Outcome::Succeeded(_)));
    let whole = matches!(message.mode(), SyncMode::Full | SyncMode::Reconciliation);
    if !(succeeded && whole) {
        return Outcome::Ack;
    }
    let now = state.clock.now();
    match engine::rescore_org_unless_busy(
        state.rescorer(&delivery.correlation_id),
        org_id,
        now,
        engine::InputSource::Projection,
    )
    .await
    {
        Ok(Some(summary)) => {
            // Its batches woke the relay as each committed.
            state.metrics.record("org_rescore", summary);
            tracing::info!(
                scored = summary.scored,
                changed = summary.changed,
                "org rescored after a sync"
            );
            Outcome::Ack
        }
        // Another whole-org rescore of the org (a config change's, the schedule's) runs:
        // the sync's fresh data is scored after it, from a delay queue, instead of this
        // consumer (and every other org's changes behind it) waiting for it.
        Ok(None) => Outcome::Retry(
            "another whole-org rescore of the org is running; rescoring after it".to_owned(),
        ),
        Err(error @ (RescoreError::Pool(_) | RescoreError::Database(_))) => {
            Outcome::Retry(format!("rescoring after sync.completed failed: {error}"))
        }
    }
}
