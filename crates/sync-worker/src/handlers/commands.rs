//! `sync-worker.commands`: `connection.established` (record the connection, queue its
//! initial full sync), `connection.closed` (stop all work for it) and `sync.requested`
//! (queue a run). Handlers only record; the runner does the work, so the queue never
//! waits for a sync.

use std::sync::Arc;

use chrono::Utc;
use contracts::Event as _;
use contracts::v1;
use diesel_async::AsyncConnection as _;
use platform::amqp::{Delivery, Outcome};
use uuid::Uuid;

use super::retry;
use crate::context::Context;
use crate::db::connections::{self, Connection};
use crate::db::runs::{self, NewRun, Scope};

/// The routing keys it is bound to.
pub const ROUTING_KEYS: [&str; 3] = [
    "connection.established",
    "connection.closed",
    "sync.requested",
];

fn auth_kind(kind: i32) -> &'static str {
    if kind == v1::AuthKind::Oauth as i32 {
        "oauth"
    } else {
        "private_app"
    }
}

fn uuid(field: &str, value: &str) -> Result<Uuid, Outcome> {
    Uuid::parse_str(value)
        .map_err(|_| Outcome::DeadLetter(format!("{field} {value:?} is not a UUID")))
}

/// Handles one command message.
pub async fn handle(ctx: Arc<Context>, delivery: Delivery) -> Outcome {
    let result = match delivery.message_type.as_str() {
        t if t == v1::ConnectionEstablished::TYPE_NAME => established(&ctx, &delivery).await,
        t if t == v1::ConnectionClosed::TYPE_NAME => closed(&ctx, &delivery).await,
        t if t == v1::SyncRequested::TYPE_NAME => requested(&ctx, &delivery).await,
        other => Err(Outcome::DeadLetter(format!(
            "unexpected message type {other:?} on the commands queue"
        ))),
    };
    match result {
        Ok(()) => Outcome::Ack,
        Err(outcome) => outcome,
    }
}

async fn established(ctx: &Context, delivery: &Delivery) -> Result<(), Outcome> {
    let message: v1::ConnectionEstablished = delivery
        .decode()
        .map_err(|e| Outcome::DeadLetter(e.to_string()))?;
    let connection = Connection {
        connection_id: uuid("connection_id", &message.connection_id)?,
        org_id: uuid("org_id", &message.org_id)?,
        portal_id: message.portal_id,
        auth_kind: auth_kind(message.auth_kind).to_owned(),
        status: "active".to_owned(),
    };
    let established_at = message
        .established_at
        .as_ref()
        .and_then(|t| contracts::time::to_datetime(t).ok())
        .unwrap_or_else(Utc::now);
    // The delivery's message id names the initial run, so a redelivery queues nothing new.
    let mut run = NewRun {
        id: delivery.message_id,
        org_id: connection.org_id,
        connection_id: connection.connection_id,
        portal_id: connection.portal_id,
        mode: "full".to_owned(),
        scope: Scope::Full,
        reason: "connection_established".to_owned(),
        requested_at: established_at,
        correlation_id: delivery.correlation_id.clone(),
    };
    let mut conn = ctx.pool.get().await.map_err(retry)?;
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        // A connection mirrored before (reconnected after a disconnect, or re-authorized)
        // catches up on what changed since instead of reading everything again.
        let (reconciled_through, _) =
            connections::reconciliation_state(conn, connection.connection_id).await?;
        if reconciled_through.is_some() {
            run.mode = "reconciliation".to_owned();
        }
        connections::upsert_established(conn, &connection, established_at).await?;
        runs::create(conn, &run).await.map(drop)
    })
    .await
    .map_err(retry)?;
    ctx.clients.forget(connection_id_of(&message.connection_id));
    ctx.runner_wake.notify_one();
    Ok(())
}

fn connection_id_of(value: &str) -> Uuid {
    Uuid::parse_str(value).unwrap_or_default()
}

async fn closed(ctx: &Context, delivery: &Delivery) -> Result<(), Outcome> {
    let message: v1::ConnectionClosed = delivery
        .decode()
        .map_err(|e| Outcome::DeadLetter(e.to_string()))?;
    let connection = Connection {
        connection_id: uuid("connection_id", &message.connection_id)?,
        org_id: uuid("org_id", &message.org_id)?,
        portal_id: message.portal_id,
        auth_kind: auth_kind(message.auth_kind).to_owned(),
        status: "closed".to_owned(),
    };
    let closed_at = message
        .closed_at
        .as_ref()
        .and_then(|t| contracts::time::to_datetime(t).ok())
        .unwrap_or_else(Utc::now);
    let mut conn = ctx.pool.get().await.map_err(retry)?;
    let connection = &connection;
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        connections::mark_closed(conn, connection, closed_at).await?;
        // Running syncs see their run cancelled at their next page and stop.
        for run in runs::cancel_open(conn, connection.connection_id).await? {
            crate::sync::complete(conn, &run, "cancelled", Some("the connection was closed"))
                .await?;
        }
        Ok(())
    })
    .await
    .map_err(retry)?;
    ctx.relay.wake();
    ctx.clients.forget(connection.connection_id);
    Ok(())
}

async fn requested(ctx: &Context, delivery: &Delivery) -> Result<(), Outcome> {
    let message: v1::SyncRequested = delivery
        .decode()
        .map_err(|e| Outcome::DeadLetter(e.to_string()))?;
    let connection_id = uuid("connection_id", &message.connection_id)?;
    let org_id = uuid("org_id", &message.org_id)?;
    let run_id = if message.sync_run_id.is_empty() {
        delivery.message_id
    } else {
        uuid("sync_run_id", &message.sync_run_id)?
    };
    let scope = match &message.scope {
        None | Some(v1::sync_requested::Scope::Full(_)) => Scope::Full,
        Some(v1::sync_requested::Scope::ObjectType(t)) => {
            let object_type = v1::ObjectType::try_from(*t).unwrap_or(v1::ObjectType::Unspecified);
            match crate::db::mirror::RecordType::from_proto(object_type) {
                Some(rt) => Scope::ObjectType(rt.name().to_owned()),
                None => Scope::Full,
            }
        }
        Some(v1::sync_requested::Scope::Records(records)) => {
            let object_type = v1::ObjectType::try_from(records.object_type)
                .unwrap_or(v1::ObjectType::Unspecified);
            let Some(rt) = crate::db::mirror::RecordType::from_proto(object_type) else {
                return Err(Outcome::DeadLetter(format!(
                    "records of object type {object_type:?} are not mirrored"
                )));
            };
            Scope::Records {
                object_type: rt.name().to_owned(),
                ids: records.object_ids.clone(),
            }
        }
    };
    let mode = match v1::SyncMode::try_from(message.mode).unwrap_or(v1::SyncMode::Full) {
        v1::SyncMode::Reconciliation | v1::SyncMode::Incremental => "reconciliation",
        _ => "full",
    };
    let reason = match v1::SyncReason::try_from(message.reason).unwrap_or_default() {
        v1::SyncReason::ConnectionEstablished => "connection_established",
        v1::SyncReason::UserRequest => "user_request",
        v1::SyncReason::Schedule => "schedule",
        v1::SyncReason::MappingChanged => "mapping_changed",
        v1::SyncReason::WebhookGap => "webhook_gap",
        v1::SyncReason::Unspecified => "unspecified",
    };
    let mut conn = ctx.pool.get().await.map_err(retry)?;
    let Some(connection) = connections::find(&mut conn, connection_id)
        .await
        .map_err(retry)?
        .filter(|c| c.org_id == org_id)
    else {
        // connection.established may still be on its way (it shares this queue, but a
        // redelivery can reorder them); after a few retries (each waits in a retry queue,
        // which counts in `retries`, not in the broker's delivery count) the request is
        // dead-lettered.
        return Err(if delivery.retries < 5 {
            Outcome::Retry(format!("connection {connection_id} is not known yet"))
        } else {
            Outcome::DeadLetter(format!("connection {connection_id} is unknown"))
        });
    };
    if !connection.is_active() {
        tracing::info!(sync.run_id = %run_id, "sync requested for a closed connection; ignored");
        return Ok(());
    }
    let run = NewRun {
        id: run_id,
        org_id,
        connection_id,
        portal_id: connection.portal_id,
        mode: mode.to_owned(),
        scope,
        reason: reason.to_owned(),
        requested_at: message
            .requested_at
            .as_ref()
            .and_then(|t| contracts::time::to_datetime(t).ok())
            .unwrap_or_else(Utc::now),
        correlation_id: delivery.correlation_id.clone(),
    };
    runs::create(&mut conn, &run).await.map_err(retry)?;
    ctx.runner_wake.notify_one();
    Ok(())
}
