//! Parsing HubSpot's webhook subscription types into the contract's enums, so
//! every producer of `WebhookEvent` (the receiver, the simulator, tests) fills
//! `object_type` and `change_kind` the same way.
//!
//! Pure string matching; JSON parsing of deliveries belongs to the receiver.

use crate::v1::{ObjectType, WebhookChangeKind};

/// The object type and change kind of a subscription type such as
/// `contact.propertyChange`, or of the generic `object.creation` together with
/// its `objectTypeId` (`"0-1"` contact, `"0-2"` company, `"0-3"` deal).
///
/// Unknown objects (tickets, custom objects, ...) give `ObjectType::Unspecified`
/// and unknown kinds `WebhookChangeKind::Unspecified`; the raw strings stay in
/// the event, so nothing is lost.
#[must_use]
pub fn classify_subscription_type(
    subscription_type: &str,
    object_type_id: Option<&str>,
) -> (ObjectType, WebhookChangeKind) {
    let (object, kind) = subscription_type
        .split_once('.')
        .unwrap_or((subscription_type, ""));
    let object_type = match object {
        "object" => object_type_id.map_or(ObjectType::Unspecified, object_type_from_id),
        "contact" => ObjectType::Contact,
        "company" => ObjectType::Company,
        "deal" => ObjectType::Deal,
        _ => ObjectType::Unspecified,
    };
    let change_kind = match kind {
        "creation" => WebhookChangeKind::Creation,
        "deletion" => WebhookChangeKind::Deletion,
        "propertyChange" => WebhookChangeKind::PropertyChange,
        "merge" => WebhookChangeKind::Merge,
        "restore" => WebhookChangeKind::Restore,
        "associationChange" => WebhookChangeKind::AssociationChange,
        "privacyDeletion" => WebhookChangeKind::PrivacyDeletion,
        _ => WebhookChangeKind::Unspecified,
    };
    (object_type, change_kind)
}

/// The object type of a HubSpot `objectTypeId` (`"0-1"`, `"0-2"`, `"0-3"`);
/// `Unspecified` for every other type.
#[must_use]
pub fn object_type_from_id(object_type_id: &str) -> ObjectType {
    match object_type_id {
        "0-1" => ObjectType::Contact,
        "0-2" => ObjectType::Company,
        "0-3" => ObjectType::Deal,
        _ => ObjectType::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_and_generic_forms_of_the_same_change_classify_alike() {
        assert_eq!(
            classify_subscription_type("deal.propertyChange", None),
            (ObjectType::Deal, WebhookChangeKind::PropertyChange)
        );
        assert_eq!(
            classify_subscription_type("object.propertyChange", Some("0-3")),
            (ObjectType::Deal, WebhookChangeKind::PropertyChange)
        );
    }

    #[test]
    fn every_documented_kind_is_recognised() {
        let kinds = [
            ("contact.creation", WebhookChangeKind::Creation),
            ("contact.deletion", WebhookChangeKind::Deletion),
            ("contact.merge", WebhookChangeKind::Merge),
            ("contact.restore", WebhookChangeKind::Restore),
            (
                "contact.associationChange",
                WebhookChangeKind::AssociationChange,
            ),
            (
                "contact.privacyDeletion",
                WebhookChangeKind::PrivacyDeletion,
            ),
        ];
        for (subscription_type, kind) in kinds {
            assert_eq!(
                classify_subscription_type(subscription_type, None),
                (ObjectType::Contact, kind)
            );
        }
        assert_eq!(
            classify_subscription_type("company.creation", None).0,
            ObjectType::Company
        );
    }

    #[test]
    fn objects_hubscore_does_not_mirror_stay_unspecified() {
        assert_eq!(
            classify_subscription_type("ticket.creation", None),
            (ObjectType::Unspecified, WebhookChangeKind::Creation)
        );
        assert_eq!(
            classify_subscription_type("object.creation", Some("2-12345")),
            (ObjectType::Unspecified, WebhookChangeKind::Creation)
        );
        assert_eq!(
            classify_subscription_type("object.creation", None).0,
            ObjectType::Unspecified
        );
        assert_eq!(
            classify_subscription_type("conversation", None),
            (ObjectType::Unspecified, WebhookChangeKind::Unspecified)
        );
    }
}
