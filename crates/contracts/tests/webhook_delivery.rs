//! A `WebhookEvent` built from HubSpot's delivery JSON (hubspot-api.md §9.3)
//! keeps every field through encode/decode: turning the decoded event back
//! into HubSpot's JSON gives the original object, key for key.

// Helpers outside #[test] fns are not covered by clippy.toml's test allowances;
// here a panic is exactly the failure report we want.
#![allow(clippy::unwrap_used, reason = "test helpers")]

use contracts::time::{from_epoch_ms, to_epoch_ms};
use contracts::v1::{ObjectType, WebhookBatch, WebhookChangeKind, WebhookEvent};
use contracts::webhook::classify_subscription_type;
use prost::Message;
use serde_json::{Map, Value, json};

/// The composed delivery body of §9.3, verbatim.
const COMPOSED_DELIVERY: &str = r#"[
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

fn int(event: &Map<String, Value>, key: &str) -> Option<i64> {
    event.get(key).and_then(Value::as_i64)
}

fn int32(event: &Map<String, Value>, key: &str) -> Option<i32> {
    int(event, key).map(|n| i32::try_from(n).unwrap())
}

fn text(event: &Map<String, Value>, key: &str) -> Option<String> {
    event.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn flag(event: &Map<String, Value>, key: &str) -> Option<bool> {
    event.get(key).and_then(Value::as_bool)
}

/// What webhook-receiver does for each event of a delivery.
fn event_from_json(event: &Map<String, Value>) -> WebhookEvent {
    // The legacy docs call the field eventType; parse both.
    let subscription_type = text(event, "subscriptionType")
        .or_else(|| text(event, "eventType"))
        .unwrap();
    let object_type_id = text(event, "objectTypeId");
    let (object_type, change_kind) =
        classify_subscription_type(&subscription_type, object_type_id.as_deref());
    WebhookEvent {
        event_id: int(event, "eventId").unwrap(),
        subscription_id: int(event, "subscriptionId").unwrap(),
        portal_id: int(event, "portalId").unwrap(),
        app_id: int(event, "appId").unwrap(),
        occurred_at: int(event, "occurredAt").map(from_epoch_ms),
        subscription_type,
        object_type: object_type.into(),
        change_kind: change_kind.into(),
        attempt_number: int32(event, "attemptNumber").unwrap(),
        object_id: int(event, "objectId"),
        object_type_id,
        change_source: text(event, "changeSource"),
        change_flag: text(event, "changeFlag"),
        source_id: text(event, "sourceId"),
        property_name: text(event, "propertyName"),
        property_value: text(event, "propertyValue"),
        primary_object_id: int(event, "primaryObjectId"),
        merged_object_ids: event
            .get("mergedObjectIds")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().map(|id| id.as_i64().unwrap()).collect())
            .unwrap_or_default(),
        new_object_id: int(event, "newObjectId"),
        number_of_properties_moved: int32(event, "numberOfPropertiesMoved"),
        association_type: text(event, "associationType"),
        from_object_id: int(event, "fromObjectId"),
        to_object_id: int(event, "toObjectId"),
        association_removed: flag(event, "associationRemoved"),
        is_primary_association: flag(event, "isPrimaryAssociation"),
        from_object_type_id: text(event, "fromObjectTypeId"),
        to_object_type_id: text(event, "toObjectTypeId"),
        association_type_id: int32(event, "associationTypeId"),
        association_category: text(event, "associationCategory"),
        is_sensitive: flag(event, "isSensitive"),
    }
}

/// The HubSpot JSON an event stands for: only the fields that are present.
fn event_to_json(event: &WebhookEvent) -> Map<String, Value> {
    let mut out = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            out.insert(key.to_owned(), value);
        }
    };
    put("eventId", Some(json!(event.event_id)));
    put("subscriptionId", Some(json!(event.subscription_id)));
    put("portalId", Some(json!(event.portal_id)));
    put("appId", Some(json!(event.app_id)));
    put(
        "occurredAt",
        event.occurred_at.as_ref().map(|ts| json!(to_epoch_ms(ts))),
    );
    put("subscriptionType", Some(json!(event.subscription_type)));
    put("attemptNumber", Some(json!(event.attempt_number)));
    put("objectId", event.object_id.map(|v| json!(v)));
    put(
        "objectTypeId",
        event.object_type_id.as_ref().map(|v| json!(v)),
    );
    put(
        "changeSource",
        event.change_source.as_ref().map(|v| json!(v)),
    );
    put("changeFlag", event.change_flag.as_ref().map(|v| json!(v)));
    put("sourceId", event.source_id.as_ref().map(|v| json!(v)));
    put(
        "propertyName",
        event.property_name.as_ref().map(|v| json!(v)),
    );
    put(
        "propertyValue",
        event.property_value.as_ref().map(|v| json!(v)),
    );
    put("primaryObjectId", event.primary_object_id.map(|v| json!(v)));
    put(
        "mergedObjectIds",
        (!event.merged_object_ids.is_empty()).then(|| json!(event.merged_object_ids)),
    );
    put("newObjectId", event.new_object_id.map(|v| json!(v)));
    put(
        "numberOfPropertiesMoved",
        event.number_of_properties_moved.map(|v| json!(v)),
    );
    put(
        "associationType",
        event.association_type.as_ref().map(|v| json!(v)),
    );
    put("fromObjectId", event.from_object_id.map(|v| json!(v)));
    put("toObjectId", event.to_object_id.map(|v| json!(v)));
    put(
        "associationRemoved",
        event.association_removed.map(|v| json!(v)),
    );
    put(
        "isPrimaryAssociation",
        event.is_primary_association.map(|v| json!(v)),
    );
    put(
        "fromObjectTypeId",
        event.from_object_type_id.as_ref().map(|v| json!(v)),
    );
    put(
        "toObjectTypeId",
        event.to_object_type_id.as_ref().map(|v| json!(v)),
    );
    put(
        "associationTypeId",
        event.association_type_id.map(|v| json!(v)),
    );
    put(
        "associationCategory",
        event.association_category.as_ref().map(|v| json!(v)),
    );
    put("isSensitive", event.is_sensitive.map(|v| json!(v)));
    out
}

fn delivered_through_the_broker(events: &[Map<String, Value>]) -> Vec<WebhookEvent> {
    let batch = WebhookBatch {
        connection_id: None,
        portal_id: 9_990_001,
        received_at: Some(from_epoch_ms(1_767_225_603_000)),
        events: events.iter().map(event_from_json).collect(),
    };
    WebhookBatch::decode(batch.encode_to_vec().as_slice())
        .unwrap()
        .events
}

fn objects(json: &str) -> Vec<Map<String, Value>> {
    serde_json::from_str::<Vec<Value>>(json)
        .unwrap()
        .into_iter()
        .map(|event| event.as_object().unwrap().clone())
        .collect()
}

#[test]
fn composed_delivery_keeps_every_field_through_the_broker() {
    let sent = objects(COMPOSED_DELIVERY);
    let received = delivered_through_the_broker(&sent);
    assert_eq!(received.len(), 4);
    for (original, event) in sent.iter().zip(&received) {
        assert_eq!(&event_to_json(event), original);
    }
}

#[test]
fn composed_delivery_events_are_classified_by_object_and_change() {
    let received = delivered_through_the_broker(&objects(COMPOSED_DELIVERY));
    let classified: Vec<_> = received
        .iter()
        .map(|event| (event.object_type(), event.change_kind()))
        .collect();
    assert_eq!(
        classified,
        [
            (ObjectType::Deal, WebhookChangeKind::PropertyChange),
            (ObjectType::Contact, WebhookChangeKind::Merge),
            (ObjectType::Contact, WebhookChangeKind::AssociationChange),
            (ObjectType::Company, WebhookChangeKind::Creation),
        ]
    );
    assert_eq!(received[1].merged_object_ids, [77]);
    assert_eq!(received[2].association_removed, Some(false));
}

#[test]
fn generic_association_change_keeps_its_type_ids_and_sensitivity() {
    // The generic association fields are community-observed only (§9.3); this
    // event is composed from that list.
    let sent = objects(
        r#"[{"eventId":100005,"subscriptionId":81,"portalId":9990001,"appId":31337,
        "occurredAt":1767225603000,"subscriptionType":"object.associationChange",
        "objectTypeId":"0-3","attemptNumber":3,"fromObjectId":7001,"toObjectId":51,
        "fromObjectTypeId":"0-3","toObjectTypeId":"0-1","associationTypeId":3,
        "associationCategory":"HUBSPOT_DEFINED","associationRemoved":true,
        "isPrimaryAssociation":false,"isSensitive":false,"changeSource":"CRM_UI"}]"#,
    );
    let received = delivered_through_the_broker(&sent);
    assert_eq!(event_to_json(&received[0]), sent[0]);
    assert_eq!(received[0].object_type(), ObjectType::Deal);
    assert_eq!(received[0].is_sensitive, Some(false));
}
