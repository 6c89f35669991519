//! `crm.changed` of contacts and companies: each record's custom attribute values (what the
//! connection's inbound mapping fills) are kept, so that the outbound attributes of the
//! writeback mapping can be written to HubSpot. A record whose mapped value changed waits
//! to be written like a changed score; nothing is sent here.
//!
//! Idempotent and order-proof: HubSpot's modified time decides, so a redelivered or late
//! message changes nothing. Records gone from HubSpot (deleted, merged away) that hubscore
//! holds only attribute values for are forgotten.

use std::collections::BTreeMap;

use contracts::v1::{AttributeValue as ProtoValue, CrmChanged, ObjectType, attribute_value};
use diesel_async::AsyncConnection as _;
use domain::custom::AttributeValue;
use domain::parse::DecimalNumber;
use platform::amqp::{Delivery, Outcome};
use platform::db::Pool;
use uuid::Uuid;

use crate::db::{self, AttributeSource, IncomingAttributes};
use crate::mapping::TargetObject;

/// The routing keys this handler's queue is bound to: only contacts and companies receive
/// scores and attributes.
pub const ROUTING_KEYS: [&str; 2] = ["crm.changed.contact", "crm.changed.company"];

/// A contract value in domain's form; `None` for an empty one.
pub fn to_domain(value: &ProtoValue) -> Option<AttributeValue> {
    use attribute_value::Kind;
    Some(match value.kind.as_ref()? {
        Kind::StringValue(text) => AttributeValue::Text(text.clone()),
        Kind::IntValue(i) => AttributeValue::Number(DecimalNumber::from_integer(*i)),
        Kind::DoubleValue(d) => {
            AttributeValue::Number(DecimalNumber::parse(&d.to_string()).ok()??.value)
        }
        Kind::BoolValue(b) => AttributeValue::Bool(*b),
        Kind::TimestampValue(t) => AttributeValue::Datetime(contracts::time::to_datetime(t).ok()?),
    })
}

fn values(attributes: &std::collections::HashMap<String, ProtoValue>) -> serde_json::Value {
    let map: BTreeMap<&String, AttributeValue> = attributes
        .iter()
        .filter_map(|(name, v)| Some((name, to_domain(v)?)))
        .collect();
    serde_json::to_value(map).unwrap_or_default()
}

/// Stores the attribute values one `crm.changed` carries.
pub async fn handle(pool: &Pool, delivery: Delivery) -> Outcome {
    let event: CrmChanged = match delivery.decode() {
        Ok(event) => event,
        Err(e) => return Outcome::DeadLetter(e.to_string()),
    };
    let object_type = match event.object_type() {
        ObjectType::Contact => TargetObject::Contacts,
        ObjectType::Company => TargetObject::Companies,
        // Bound to contacts and companies only; anything else carries nothing written back.
        _ => return Outcome::Ack,
    };
    let uuid = |field: &str, value: &str| {
        Uuid::parse_str(value)
            .map_err(|_| Outcome::DeadLetter(format!("{field} {value:?} is not a UUID")))
    };
    let source = match (
        uuid("connection_id", &event.connection_id),
        uuid("org_id", &event.org_id),
    ) {
        (Ok(connection_id), Ok(org_id)) => AttributeSource {
            connection_id,
            org_id,
            portal_id: event.portal_id,
            object_type,
            message_id: delivery.message_id,
        },
        (Err(outcome), _) | (_, Err(outcome)) => return outcome,
    };
    let committed = event
        .committed_at
        .as_ref()
        .and_then(|t| contracts::time::to_datetime(t).ok());
    let at = |t: Option<&prost_types::Timestamp>| {
        t.and_then(|t| contracts::time::to_datetime(t).ok())
            .or(committed)
            .unwrap_or_else(chrono::Utc::now)
    };
    // One statement touches each record once: the newest values per record.
    let mut records: BTreeMap<i64, IncomingAttributes> = BTreeMap::new();
    let incoming = event
        .customers
        .iter()
        .map(|c| {
            (
                c.external_id,
                &c.custom_attributes,
                at(c.source_updated_at.as_ref()),
            )
        })
        .chain(event.companies.iter().map(|c| {
            (
                c.external_id,
                &c.custom_attributes,
                at(c.source_updated_at.as_ref()),
            )
        }));
    for (object_id, attributes, at) in incoming {
        if object_id <= 0 {
            continue;
        }
        let record = IncomingAttributes {
            object_id,
            values: values(attributes),
            at,
        };
        match records.get(&object_id) {
            Some(kept) if kept.at > at => {}
            _ => {
                records.insert(object_id, record);
            }
        }
    }
    let gone: Vec<i64> = event
        .deleted_ids
        .iter()
        .copied()
        .chain(
            event
                .merges
                .iter()
                .flat_map(|m| m.merged_ids.iter().copied()),
        )
        .collect();
    let records: Vec<IncomingAttributes> = records.into_values().collect();
    let mut conn = match pool.get().await {
        Ok(conn) => conn,
        Err(e) => return Outcome::Retry(format!("no database connection: {e}")),
    };
    let stored = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let mapping = db::mapping(conn, source.connection_id).await?;
            let mapped: Vec<String> = if mapping.enabled {
                mapping
                    .attributes_of(object_type)
                    .map(|a| a.attribute.clone())
                    .collect()
            } else {
                Vec::new()
            };
            // Records removed by a message committed after this one stay removed. A
            // message without a commit time cannot be ordered and is stored as it is.
            let kept: Vec<IncomingAttributes>;
            let records: &[IncomingAttributes] = match committed {
                Some(committed) => {
                    let ids: Vec<i64> = records.iter().map(|r| r.object_id).collect();
                    let removed =
                        db::removed_after(conn, source.connection_id, object_type, &ids, committed)
                            .await?;
                    if removed.is_empty() {
                        &records
                    } else {
                        kept = records
                            .iter()
                            .filter(|r| !removed.contains(&r.object_id))
                            .cloned()
                            .collect();
                        &kept
                    }
                }
                None => &records,
            };
            db::store_attributes(conn, source, records, &mapped).await?;
            db::forget_unscored(conn, source.connection_id, object_type, &gone).await?;
            db::remember_removed(
                conn,
                source.connection_id,
                object_type,
                &gone,
                committed.unwrap_or_else(chrono::Utc::now),
            )
            .await?;
            Ok(())
        })
        .await;
    match stored {
        Ok(()) => Outcome::Ack,
        Err(e) => Outcome::Retry(format!("database: {e}")),
    }
}
