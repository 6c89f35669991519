//! The events the gateway publishes, written to the outbox in the transaction that makes
//! the change they announce.

use chrono::{DateTime, Utc};
use contracts::v1::{
    Actor, AuthKind, CloseReason, ConnectionClosed, ConnectionEstablished, FullScope, ObjectType,
    PortalInfo, RecordIds, SyncMode, SyncReason, SyncRequested, actor, sync_requested,
};
use diesel_async::AsyncPgConnection;
use platform::amqp::MessageMeta;
use uuid::Uuid;

use crate::db::{ConnectionRow, auth_kind};

/// Who caused an event.
pub fn user_actor(sub: &str) -> Actor {
    Actor {
        kind: Some(actor::Kind::UserId(sub.to_owned())),
    }
}

/// The gateway itself as the cause.
pub fn service_actor() -> Actor {
    Actor {
        kind: Some(actor::Kind::Service("auth-gateway".to_owned())),
    }
}

fn kind_of(row: &ConnectionRow) -> AuthKind {
    if row.auth_kind == auth_kind::OAUTH {
        AuthKind::Oauth
    } else {
        AuthKind::PrivateApp
    }
}

/// Enqueues `connection.established` for `row`.
pub async fn established(
    conn: &mut AsyncPgConnection,
    row: &ConnectionRow,
    by: Actor,
    at: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    let event = ConnectionEstablished {
        org_id: row.org_id.to_string(),
        connection_id: row.id.to_string(),
        portal_id: row.portal_id,
        auth_kind: kind_of(row).into(),
        scopes: row.scopes.clone(),
        established_by: Some(by),
        established_at: Some(contracts::time::to_timestamp(at)),
        portal: Some(PortalInfo {
            account_type: row.account_type.clone().unwrap_or_default(),
            time_zone: row.time_zone.clone().unwrap_or_default(),
            company_currency: row.company_currency.clone().unwrap_or_default(),
            ui_domain: row.ui_domain.clone().unwrap_or_default(),
            data_hosting_location: row.data_hosting_location.clone().unwrap_or_default(),
        }),
    };
    platform::outbox::enqueue_event(conn, &event, MessageMeta::start_trace(Some(row.org_id)))
        .await
        .map(|_| ())
}

/// Enqueues `connection.closed` for `row`.
pub async fn closed(
    conn: &mut AsyncPgConnection,
    row: &ConnectionRow,
    by: Actor,
    reason: CloseReason,
    detail: &str,
    at: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    let event = ConnectionClosed {
        org_id: row.org_id.to_string(),
        connection_id: row.id.to_string(),
        portal_id: row.portal_id,
        auth_kind: kind_of(row).into(),
        closed_by: Some(by),
        closed_at: Some(contracts::time::to_timestamp(at)),
        reason: reason.into(),
        reason_detail: detail.to_owned(),
    };
    platform::outbox::enqueue_event(conn, &event, MessageMeta::start_trace(Some(row.org_id)))
        .await
        .map(|_| ())
}

/// What a sync request covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncScope {
    /// Every object type.
    Full,
    /// One object type.
    ObjectType(ObjectType),
    /// Given records of one object type.
    Records(ObjectType, Vec<i64>),
}

/// Enqueues `sync.requested` for `row`; returns the sync run id.
pub async fn sync_requested(
    conn: &mut AsyncPgConnection,
    row: &ConnectionRow,
    scope: SyncScope,
    by: Actor,
    correlation_id: Option<&str>,
    at: DateTime<Utc>,
) -> diesel::QueryResult<Uuid> {
    let sync_run_id = Uuid::now_v7();
    let scope = match scope {
        SyncScope::Full => sync_requested::Scope::Full(FullScope {}),
        SyncScope::ObjectType(t) => sync_requested::Scope::ObjectType(t.into()),
        SyncScope::Records(t, ids) => sync_requested::Scope::Records(RecordIds {
            object_type: t.into(),
            object_ids: ids,
        }),
    };
    let event = SyncRequested {
        org_id: row.org_id.to_string(),
        connection_id: row.id.to_string(),
        portal_id: row.portal_id,
        sync_run_id: sync_run_id.to_string(),
        mode: SyncMode::Full.into(),
        scope: Some(scope),
        requested_by: Some(by),
        reason: SyncReason::UserRequest.into(),
        reason_detail: String::new(),
        requested_at: Some(contracts::time::to_timestamp(at)),
    };
    let meta = match correlation_id {
        Some(id) => MessageMeta::new(id, Some(row.org_id)),
        None => MessageMeta::start_trace(Some(row.org_id)),
    };
    platform::outbox::enqueue_event(conn, &event, meta).await?;
    Ok(sync_run_id)
}
