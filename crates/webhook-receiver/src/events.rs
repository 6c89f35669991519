//! A delivery's JSON body parsed into the contract's typed `WebhookEvent`s.
//!
//! Lenient where HubSpot's documents disagree (`subscriptionType` or `eventType`; ids
//! as numbers or digit strings), strict where a consumer could not act on an event (no
//! `eventId`, `portalId`, `occurredAt` or subscription type). Unknown subscription types
//! are kept, with their raw name, and reported so they can be counted.

use contracts::v1::{ObjectType, WebhookChangeKind, WebhookEvent};
use serde::Deserialize;
use serde::de::{self, Deserializer};

/// Why a delivery body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// JSON, but not an array of events.
    #[error("the body must be a JSON array of events")]
    NotAnArray,
    /// More events than the configured maximum.
    #[error("a delivery may carry at most {max} events, this one has {count}")]
    TooManyEvents {
        /// The events in the delivery.
        count: usize,
        /// The configured maximum.
        max: usize,
    },
    /// An event lacks a field every event carries, or has one of the wrong type.
    #[error("event {index} is invalid: {message}")]
    InvalidEvent {
        /// Its position in the array.
        index: usize,
        /// What is wrong (field names only, never values).
        message: String,
    },
    /// The array is empty: there is nothing to accept.
    #[error("the delivery carries no events")]
    NoEvents,
}

impl PayloadError {
    /// The stable error code for the response body.
    pub fn code(&self) -> &'static str {
        match self {
            PayloadError::MalformedJson(_) => "malformed_json",
            PayloadError::NotAnArray => "not_an_array",
            PayloadError::TooManyEvents { .. } => "too_many_events",
            PayloadError::InvalidEvent { .. } => "invalid_event",
            PayloadError::NoEvents => "no_events",
        }
    }
}

/// An int64 HubSpot may send as a JSON number or as a string of digits.
#[derive(Debug, Clone, Copy)]
struct Int(i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Int;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer or a string of digits")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                v.trim()
                    .parse()
                    .map(Int)
                    .map_err(|_| E::custom("not a string of digits"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// HubSpot's event JSON, field for field; everything optional so the missing field can be
/// named in the error.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    event_id: Option<Int>,
    subscription_id: Option<Int>,
    portal_id: Option<Int>,
    app_id: Option<Int>,
    occurred_at: Option<Int>,
    subscription_type: Option<String>,
    event_type: Option<String>,
    attempt_number: Option<Int>,
    object_id: Option<Int>,
    object_type_id: Option<String>,
    change_source: Option<String>,
    change_flag: Option<String>,
    source_id: Option<String>,
    property_name: Option<String>,
    #[serde(default, deserialize_with = "any_as_string")]
    property_value: Option<String>,
    primary_object_id: Option<Int>,
    #[serde(default)]
    merged_object_ids: Vec<Int>,
    new_object_id: Option<Int>,
    number_of_properties_moved: Option<Int>,
    association_type: Option<String>,
    from_object_id: Option<Int>,
    to_object_id: Option<Int>,
    association_removed: Option<bool>,
    is_primary_association: Option<bool>,
    from_object_type_id: Option<String>,
    to_object_type_id: Option<String>,
    association_type_id: Option<Int>,
    association_category: Option<String>,
    is_sensitive: Option<bool>,
}

/// `propertyValue` is documented as a string; a number or boolean is kept as its text.
fn any_as_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(match value {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// The parsed events of a delivery, in delivery order.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedDelivery {
    /// The events.
    pub events: Vec<WebhookEvent>,
}

impl ParsedDelivery {
    /// Whether an event's subscription type is one hubscore does not know (kept anyway).
    pub fn is_unknown(event: &WebhookEvent) -> bool {
        event.change_kind() == WebhookChangeKind::Unspecified
            || event.object_type() == ObjectType::Unspecified
    }
}

/// Parses `body`, refusing more than `max_events` events.
///
/// # Errors
/// The [`PayloadError`] that refuses the body.
pub fn parse_delivery(body: &[u8], max_events: usize) -> Result<ParsedDelivery, PayloadError> {
    // The fast path: a well-formed delivery parses in one pass.
    if let Ok(raw) = serde_json::from_slice::<Vec<RawEvent>>(body) {
        if raw.len() > max_events {
            return Err(PayloadError::TooManyEvents {
                count: raw.len(),
                max: max_events,
            });
        }
        if raw.is_empty() {
            return Err(PayloadError::NoEvents);
        }
        let events = raw
            .into_iter()
            .enumerate()
            .map(|(index, event)| {
                to_contract(event).map_err(|message| PayloadError::InvalidEvent { index, message })
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(ParsedDelivery { events });
    }
    // Checked on the generic value first so "not an array" and "too many" are told apart
    // from malformed JSON without trusting serde's error text.
    let raw: Vec<serde_json::Value> = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(_) => return Err(PayloadError::NotAnArray),
        Err(error) => return Err(PayloadError::MalformedJson(error.to_string())),
    };
    if raw.len() > max_events {
        return Err(PayloadError::TooManyEvents {
            count: raw.len(),
            max: max_events,
        });
    }
    if raw.is_empty() {
        return Err(PayloadError::NoEvents);
    }
    let events = raw
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let event: RawEvent =
                serde_json::from_value(value).map_err(|error| PayloadError::InvalidEvent {
                    index,
                    message: error.to_string(),
                })?;
            to_contract(event).map_err(|message| PayloadError::InvalidEvent { index, message })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ParsedDelivery { events })
}

fn required(field: Option<Int>, name: &str) -> Result<i64, String> {
    field
        .map(|v| v.0)
        .ok_or_else(|| format!("missing `{name}`"))
}

fn to_contract(raw: RawEvent) -> Result<WebhookEvent, String> {
    let subscription_type = raw
        .subscription_type
        .or(raw.event_type)
        .ok_or_else(|| "missing `subscriptionType`".to_owned())?;
    let (object_type, change_kind) = contracts::webhook::classify_subscription_type(
        &subscription_type,
        raw.object_type_id.as_deref(),
    );
    let int32 = |field: Option<Int>, name: &str| -> Result<Option<i32>, String> {
        field
            .map(|v| i32::try_from(v.0).map_err(|_| format!("`{name}` out of range")))
            .transpose()
    };
    let mut event = WebhookEvent {
        event_id: required(raw.event_id, "eventId")?,
        subscription_id: raw.subscription_id.map_or(0, |v| v.0),
        portal_id: required(raw.portal_id, "portalId")?,
        app_id: raw.app_id.map_or(0, |v| v.0),
        occurred_at: Some(contracts::time::from_epoch_ms(required(
            raw.occurred_at,
            "occurredAt",
        )?)),
        subscription_type,
        object_type: 0,
        change_kind: 0,
        attempt_number: int32(raw.attempt_number, "attemptNumber")?.unwrap_or(0),
        object_id: raw.object_id.map(|v| v.0),
        object_type_id: raw.object_type_id,
        change_source: raw.change_source,
        change_flag: raw.change_flag,
        source_id: raw.source_id,
        property_name: raw.property_name,
        property_value: raw.property_value,
        primary_object_id: raw.primary_object_id.map(|v| v.0),
        merged_object_ids: raw.merged_object_ids.into_iter().map(|v| v.0).collect(),
        new_object_id: raw.new_object_id.map(|v| v.0),
        number_of_properties_moved: int32(
            raw.number_of_properties_moved,
            "numberOfPropertiesMoved",
        )?,
        association_type: raw.association_type,
        from_object_id: raw.from_object_id.map(|v| v.0),
        to_object_id: raw.to_object_id.map(|v| v.0),
        association_removed: raw.association_removed,
        is_primary_association: raw.is_primary_association,
        from_object_type_id: raw.from_object_type_id,
        to_object_type_id: raw.to_object_type_id,
        association_type_id: int32(raw.association_type_id, "associationTypeId")?,
        association_category: raw.association_category,
        is_sensitive: raw.is_sensitive,
    };
    event.set_object_type(object_type);
    event.set_change_kind(change_kind);
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENTED: &str = r#"[
      {"eventId":100001,"subscriptionId":77,"portalId":9990001,"appId":31337,"occurredAt":1767225600000,
       "subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":7001,
       "propertyName":"dealstage","propertyValue":"closedwon","changeSource":"CRM_UI","sourceId":"userId:42"},
      {"eventId":100002,"subscriptionId":78,"portalId":9990001,"appId":31337,"occurredAt":1767225600500,
       "subscriptionType":"contact.merge","attemptNumber":0,"objectId":51,
       "primaryObjectId":51,"mergedObjectIds":[77],"newObjectId":51,"numberOfPropertiesMoved":12,"changeSource":"CRM_UI"},
      {"eventId":100003,"subscriptionId":79,"portalId":9990001,"appId":31337,"occurredAt":1767225601000,
       "subscriptionType":"contact.associationChange","attemptNumber":0,
       "associationType":"CONTACT_TO_COMPANY","fromObjectId":51,"toObjectId":8123,
       "associationRemoved":false,"isPrimaryAssociation":true,"changeSource":"CRM_UI"},
      {"eventId":100004,"subscriptionId":80,"portalId":9990001,"appId":31337,"occurredAt":1767225602000,
       "subscriptionType":"object.creation","objectTypeId":"0-2","attemptNumber":0,"objectId":8124,
       "changeFlag":"CREATED","changeSource":"API"}
    ]"#;

    #[test]
    fn the_documented_delivery_parses_into_typed_events() {
        let events = parse_delivery(DOCUMENTED.as_bytes(), 100).unwrap().events;
        assert_eq!(events.len(), 4);
        let change = &events[0];
        assert_eq!(change.object_type(), ObjectType::Deal);
        assert_eq!(change.change_kind(), WebhookChangeKind::PropertyChange);
        assert_eq!(change.property_value.as_deref(), Some("closedwon"));
        assert_eq!(
            contracts::time::to_epoch_ms(change.occurred_at.as_ref().unwrap()),
            1_767_225_600_000
        );
        let merge = &events[1];
        assert_eq!(merge.change_kind(), WebhookChangeKind::Merge);
        assert_eq!(merge.primary_object_id, Some(51));
        assert_eq!(merge.merged_object_ids, vec![77]);
        assert_eq!(merge.number_of_properties_moved, Some(12));
        let association = &events[2];
        assert_eq!(
            association.change_kind(),
            WebhookChangeKind::AssociationChange
        );
        assert_eq!(association.to_object_id, Some(8123));
        assert_eq!(association.association_removed, Some(false));
        assert_eq!(association.object_id, None);
        let generic = &events[3];
        assert_eq!(generic.object_type(), ObjectType::Company);
        assert_eq!(generic.object_type_id.as_deref(), Some("0-2"));
        assert_eq!(generic.change_flag.as_deref(), Some("CREATED"));
    }

    #[test]
    fn restores_privacy_deletions_and_generic_associations_are_typed() {
        let body = r#"[
          {"eventId":1,"subscriptionId":1,"portalId":5,"appId":2,"occurredAt":1,"subscriptionType":"company.restore","objectId":"9"},
          {"eventId":2,"subscriptionId":1,"portalId":5,"appId":2,"occurredAt":1,"eventType":"contact.privacyDeletion","objectId":10},
          {"eventId":3,"subscriptionId":1,"portalId":5,"appId":2,"occurredAt":1,"subscriptionType":"object.associationChange",
           "objectTypeId":"0-1","fromObjectTypeId":"0-1","toObjectTypeId":"0-2","associationTypeId":279,
           "associationCategory":"HUBSPOT_DEFINED","fromObjectId":10,"toObjectId":11,"associationRemoved":true,"isSensitive":false}
        ]"#;
        let events = parse_delivery(body.as_bytes(), 100).unwrap().events;
        assert_eq!(events[0].change_kind(), WebhookChangeKind::Restore);
        assert_eq!(events[0].object_id, Some(9), "digit strings are ids too");
        assert_eq!(events[1].change_kind(), WebhookChangeKind::PrivacyDeletion);
        assert_eq!(events[1].subscription_type, "contact.privacyDeletion");
        assert_eq!(
            events[2].change_kind(),
            WebhookChangeKind::AssociationChange
        );
        assert_eq!(events[2].association_type_id, Some(279));
        assert_eq!(events[2].to_object_type_id.as_deref(), Some("0-2"));
        assert_eq!(events[2].is_sensitive, Some(false));
    }

    #[test]
    fn unknown_subscription_types_are_kept_with_their_raw_name() {
        let body = r#"[{"eventId":1,"subscriptionId":1,"portalId":5,"appId":2,"occurredAt":1,
                        "subscriptionType":"ticket.creation","objectId":3,"someNewField":{"x":1}}]"#;
        let events = parse_delivery(body.as_bytes(), 100).unwrap().events;
        assert_eq!(events[0].subscription_type, "ticket.creation");
        assert!(ParsedDelivery::is_unknown(&events[0]));
    }

    #[test]
    fn each_kind_of_bad_body_has_its_own_refusal() {
        assert!(matches!(
            parse_delivery(b"[{", 100),
            Err(PayloadError::MalformedJson(_))
        ));
        assert_eq!(
            parse_delivery(br#"{"eventId":1}"#, 100),
            Err(PayloadError::NotAnArray)
        );
        assert_eq!(parse_delivery(b"[]", 100), Err(PayloadError::NoEvents));
        assert_eq!(
            parse_delivery(b"[1,2,3]", 2),
            Err(PayloadError::TooManyEvents { count: 3, max: 2 })
        );
        assert!(matches!(
            parse_delivery(br#"[{"eventId":1,"portalId":2,"occurredAt":3}]"#, 100),
            Err(PayloadError::InvalidEvent { index: 0, .. })
        ));
        assert!(matches!(
            parse_delivery(b"[7]", 100),
            Err(PayloadError::InvalidEvent { index: 0, .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_delivery(&body, 100);
        }
    }
}
