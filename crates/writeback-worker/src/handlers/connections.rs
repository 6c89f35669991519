//! `connection.established` / `connection.closed`: which connections the worker writes to.
//! Idempotent: an event older than the stored status changes nothing.

use contracts::v1::{AuthKind, ConnectionClosed, ConnectionEstablished};
use platform::amqp::{Delivery, Outcome};
use platform::db::Pool;
use uuid::Uuid;

use crate::db;
use crate::hubspot::Clients;

/// The routing keys this handler's queue is bound to.
pub const ROUTING_KEYS: [&str; 2] = ["connection.established", "connection.closed"];

fn auth_kind(kind: AuthKind) -> &'static str {
    match kind {
        AuthKind::Oauth => "oauth",
        AuthKind::PrivateApp | AuthKind::Unspecified => "private_app",
    }
}

fn parse_uuid(field: &str, value: &str) -> Result<Uuid, Outcome> {
    Uuid::parse_str(value)
        .map_err(|_| Outcome::DeadLetter(format!("{field} {value:?} is not a UUID")))
}

fn instant(ts: Option<&prost_types::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    ts.and_then(|t| contracts::time::to_datetime(t).ok())
        .unwrap_or_else(chrono::Utc::now)
}

/// Applies one connection event.
pub async fn handle(pool: &Pool, clients: &Clients, delivery: Delivery) -> Outcome {
    match apply(pool, clients, &delivery).await {
        Ok(()) => Outcome::Ack,
        Err(outcome) => outcome,
    }
}

async fn apply(pool: &Pool, clients: &Clients, delivery: &Delivery) -> Result<(), Outcome> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| Outcome::Retry(format!("no database connection: {e}")))?;
    let retry = |e: diesel::result::Error| Outcome::Retry(format!("database: {e}"));
    match delivery.routing_key.as_str() {
        "connection.established" => {
            let event: ConnectionEstablished = delivery
                .decode()
                .map_err(|e| Outcome::DeadLetter(e.to_string()))?;
            let connection_id = parse_uuid("connection_id", &event.connection_id)?;
            let e = db::Established {
                connection_id,
                org_id: parse_uuid("org_id", &event.org_id)?,
                portal_id: event.portal_id,
                auth_kind: auth_kind(event.auth_kind()),
                scopes: &event.scopes,
                at: instant(event.established_at.as_ref()),
            };
            db::connection_established(&mut conn, &e)
                .await
                .map_err(retry)?;
            // A reconnect may bring a new token: the old client's source is dropped.
            clients.forget(connection_id);
            tracing::info!(connection_id = %connection_id, hubspot.portal_id = event.portal_id, "connection established");
        }
        "connection.closed" => {
            let event: ConnectionClosed = delivery
                .decode()
                .map_err(|e| Outcome::DeadLetter(e.to_string()))?;
            let connection_id = parse_uuid("connection_id", &event.connection_id)?;
            db::connection_closed(
                &mut conn,
                connection_id,
                parse_uuid("org_id", &event.org_id)?,
                event.portal_id,
                auth_kind(event.auth_kind()),
                instant(event.closed_at.as_ref()),
            )
            .await
            .map_err(retry)?;
            clients.forget(connection_id);
            tracing::info!(connection_id = %connection_id, "connection closed; its writes stop");
        }
        other => {
            return Err(Outcome::DeadLetter(format!(
                "routing key {other:?} is not a connection event"
            )));
        }
    }
    Ok(())
}
