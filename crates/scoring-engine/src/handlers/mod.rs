//! Message handlers of the `scoring-engine.crm` queue: `crm.changed.{contact,company,deal}`
//! and `sync.completed`, dispatched by the AMQP `type`.

pub mod crm_changed;
pub mod sync_completed;

use contracts::Event as _;
use contracts::v1::{CrmChanged, SyncCompleted};
use diesel_async::AsyncPgConnection;
use platform::amqp::{Delivery, Outcome};
use uuid::Uuid;

use crate::state::AppState;

/// The routing keys the queue is bound to.
pub const ROUTING_KEYS: [&str; 4] = [
    "crm.changed.contact",
    "crm.changed.company",
    "crm.changed.deal",
    "sync.completed",
];

/// Handles one delivery of the queue.
pub async fn handle(state: &AppState, delivery: Delivery) -> Outcome {
    match delivery.message_type.as_str() {
        CrmChanged::TYPE_NAME => crm_changed::handle(state, &delivery).await,
        SyncCompleted::TYPE_NAME => sync_completed::handle(state, &delivery).await,
        other => Outcome::DeadLetter(format!(
            "scoring-engine does not handle messages of type {other:?}"
        )),
    }
}

/// Records that this queue is applying `message_id` (false: a duplicate). The one place
/// that names the platform's consumer-side dedupe.
pub(crate) async fn first_delivery(
    conn: &mut AsyncPgConnection,
    queue: &str,
    message_id: Uuid,
) -> diesel::QueryResult<bool> {
    platform::outbox::first_delivery(conn, queue, message_id).await
}
