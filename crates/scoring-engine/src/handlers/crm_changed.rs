//! `crm.changed.{contact,company,deal}`: update the projection, rescore the customers the
//! change touches, publish what changed. One transaction under the org lock; a replayed
//! message is recognised by its id and changes nothing.

use chrono::{DateTime, Utc};
use contracts::v1::{CrmChanged, ObjectType};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use platform::amqp::{Delivery, Outcome};
use uuid::Uuid;

use crate::db::object_type;
use crate::db::projection::{self, Affected, Source};
use crate::engine;
use crate::state::AppState;

/// Handles one `CrmChanged`.
pub async fn handle(state: &AppState, delivery: &Delivery) -> Outcome {
    let message: CrmChanged = match delivery.decode() {
        Ok(message) => message,
        Err(error) => return Outcome::DeadLetter(error.to_string()),
    };
    let source = match source_of(&message) {
        Ok(source) => source,
        Err(reason) => return Outcome::DeadLetter(reason),
    };
    let kind = match message.object_type() {
        ObjectType::Contact => object_type::CONTACT,
        ObjectType::Company => object_type::COMPANY,
        ObjectType::Deal => object_type::DEAL,
        // Owners and pipelines do not move scores (a deal carries its own status).
        _ => return Outcome::Ack,
    };
    let now = state.clock.now();
    let mut conn = match state.pool.get().await {
        Ok(conn) => conn,
        Err(error) => return Outcome::Retry(format!("no database connection: {error}")),
    };
    let interval = state.settings.rescore_interval();
    let result = conn
        .transaction(async |conn| {
            if !super::first_delivery(conn, &delivery.queue, delivery.message_id).await? {
                return Ok(None);
            }
            crate::db::lock_org(conn, source.org_id).await?;
            crate::db::configs::ensure_org(conn, source.org_id, now + interval).await?;
            let affected = apply(conn, &source, kind, &message, now).await?;
            let summary = engine::rescore_affected(
                conn,
                source.org_id,
                &affected,
                now,
                &delivery.correlation_id,
            )
            .await?;
            Ok::<_, diesel::result::Error>(Some(summary))
        })
        .await;
    match result {
        Ok(Some(summary)) => {
            if summary.changed > 0 {
                state.relay_waker.wake();
            }
            state.metrics.record("crm_changed", summary);
            tracing::debug!(
                scored = summary.scored,
                changed = summary.changed,
                "crm.changed applied"
            );
            Outcome::Ack
        }
        Ok(None) => {
            tracing::info!("duplicate crm.changed skipped");
            Outcome::Ack
        }
        Err(error) => Outcome::Retry(format!("applying crm.changed failed: {error}")),
    }
}

fn source_of(message: &CrmChanged) -> Result<Source, String> {
    let org_id = Uuid::parse_str(&message.org_id)
        .map_err(|_| format!("org_id {:?} is not a UUID", message.org_id))?;
    let connection_id = Uuid::parse_str(&message.connection_id)
        .map_err(|_| format!("connection_id {:?} is not a UUID", message.connection_id))?;
    Ok(Source {
        org_id,
        connection_id,
        portal_id: message.portal_id,
    })
}

async fn apply(
    conn: &mut AsyncPgConnection,
    source: &Source,
    kind: i16,
    message: &CrmChanged,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Affected> {
    let mut affected = Affected::default();
    let committed = message
        .committed_at
        .as_ref()
        .and_then(|t| contracts::time::to_datetime(t).ok());
    // Records removed by a message committed after this one stay removed.
    let ids: Vec<i64> = message
        .customers
        .iter()
        .map(|c| c.external_id)
        .chain(message.companies.iter().map(|c| c.external_id))
        .chain(message.deals.iter().map(|d| d.external_id))
        .collect();
    let removed = projection::removed_after(conn, source, kind, &ids, committed).await?;
    for contact in &message.customers {
        if !removed.contains(&contact.external_id) {
            projection::upsert_contact(conn, source, contact, now, &mut affected).await?;
        }
    }
    for company in &message.companies {
        if !removed.contains(&company.external_id) {
            projection::upsert_company(conn, source, company, &mut affected).await?;
        }
    }
    for deal in &message.deals {
        if !removed.contains(&deal.external_id) {
            projection::upsert_deal(conn, source, deal, now, &mut affected).await?;
        }
    }
    let mut gone: Vec<i64> = message.deleted_ids.clone();
    gone.extend(
        message
            .merges
            .iter()
            .flat_map(|m| m.merged_ids.iter().copied()),
    );
    projection::delete_records(conn, source, kind, &gone, &mut affected).await?;
    projection::remember_removed(conn, source, kind, &gone, committed.unwrap_or(now), now).await?;
    projection::add_companies_of_contacts(conn, source.org_id, &mut affected).await?;
    Ok(affected)
}
