//! Preparing a connection's properties: the `hubscore` group and every mapped property are
//! created where missing; an existing property that cannot hold its field, or a missing
//! write scope, is recorded (and shown on the status) and nothing is written to it.

use domain::custom::{Conversion, PropertyType};
use hubspot_client::{HubSpotClient, HubSpotError, PropertyCreate, PropertyGroup};

use crate::db::PropertyTarget;
use crate::mapping::{
    GROUP_LABEL, GROUP_NAME, Purpose, TargetObject, WritebackMapping, attribute_purpose,
    to_definition,
};

/// Checks and creates the mapped properties of every mapped object type. `scopes` are the
/// connection's granted scopes (empty when unknown). A failure that concerns the whole
/// connection (credentials, HubSpot down) is returned; per-property findings are targets.
pub async fn prepare(
    client: &HubSpotClient,
    mapping: &WritebackMapping,
    scopes: &[String],
) -> Result<Vec<PropertyTarget>, HubSpotError> {
    let mut targets = Vec::new();
    if !mapping.enabled {
        return Ok(targets);
    }
    for object_type in mapping.targets() {
        prepare_object(client, mapping, scopes, object_type, &mut targets).await?;
    }
    Ok(targets)
}

fn target(
    object_type: TargetObject,
    purpose: Purpose,
    property: &str,
    state: &str,
    detail: String,
) -> PropertyTarget {
    target_of(object_type, purpose.as_str(), property, state, detail)
}

/// What preparing found for one purpose (a property's, or `timeline`) of an object type.
pub(crate) fn target_of(
    object_type: TargetObject,
    purpose: &str,
    property: &str,
    state: &str,
    detail: String,
) -> PropertyTarget {
    PropertyTarget {
        object_type: object_type.as_str().to_owned(),
        purpose: purpose.to_owned(),
        property: property.to_owned(),
        state: state.to_owned(),
        detail,
        conversion: None,
    }
}

async fn prepare_object(
    client: &HubSpotClient,
    mapping: &WritebackMapping,
    scopes: &[String],
    object_type: TargetObject,
    targets: &mut Vec<PropertyTarget>,
) -> Result<(), HubSpotError> {
    let mapped: Vec<(Purpose, &str)> = Purpose::ALL
        .into_iter()
        .filter_map(|p| mapping.properties.of(p).map(|name| (p, name)))
        .collect();
    // Every mapped property as (purpose, property): the hubscore fields, then the attributes.
    let all: Vec<(String, &str)> = mapped
        .iter()
        .map(|(p, name)| (p.as_str().to_owned(), *name))
        .chain(
            mapping
                .attributes_of(object_type)
                .map(|a| (attribute_purpose(&a.attribute), a.property.as_str())),
        )
        .collect();
    if !scopes.is_empty() && !scopes.iter().any(|s| s == object_type.write_scope()) {
        for (purpose, name) in &all {
            targets.push(target_of(
                object_type,
                purpose,
                name,
                "missing_scope",
                format!(
                    "the connection lacks the scope {}",
                    object_type.write_scope()
                ),
            ));
        }
        return Ok(());
    }
    let existing = match client.list_properties(object_type.as_str()).await {
        Ok(list) => list,
        Err(HubSpotError::MissingScopes { required }) => {
            for (purpose, name) in &all {
                targets.push(target_of(
                    object_type,
                    purpose,
                    name,
                    "missing_scope",
                    format!(
                        "reading {} properties needs one of the scopes {required:?}",
                        object_type.as_str()
                    ),
                ));
            }
            return Ok(());
        }
        Err(other) => return Err(other),
    };
    prepare_attributes(mapping, object_type, &existing, targets);
    let mut group_ready = false;
    for (purpose, name) in mapped {
        if let Some(found) = existing.iter().find(|p| p.name == name) {
            let def = to_definition(found);
            let wanted = mapping.definition_to_create(purpose, name);
            let problem = if def.archived {
                Some("the property is archived".to_owned())
            } else if !def.is_writable() {
                Some("the property is read-only in HubSpot".to_owned())
            } else if !accepts(purpose, &def.property_type) {
                Some(format!(
                    "the property has type {:?}, which cannot hold the {}",
                    def.property_type.as_str(),
                    purpose.as_str().replace('_', " ")
                ))
            } else if def.property_type == PropertyType::Enumeration
                && let Some(missing) = wanted
                    .options
                    .iter()
                    .find(|o| !def.options.iter().any(|d| d.value == o.value))
            {
                Some(format!(
                    "the enumeration lacks the option {:?}",
                    missing.value
                ))
            } else {
                None
            };
            match problem {
                Some(detail) => {
                    targets.push(target(object_type, purpose, name, "incompatible", detail))
                }
                None => targets.push(target(object_type, purpose, name, "ready", String::new())),
            }
            continue;
        }
        if !scopes.is_empty() && !scopes.iter().any(|s| s == object_type.schema_write_scope()) {
            targets.push(target(
                object_type,
                purpose,
                name,
                "missing_scope",
                format!(
                    "the property does not exist and creating it needs the scope {}",
                    object_type.schema_write_scope()
                ),
            ));
            continue;
        }
        let created = async {
            if !group_ready {
                client
                    .create_property_group(
                        object_type.as_str(),
                        &PropertyGroup {
                            name: GROUP_NAME.to_owned(),
                            label: GROUP_LABEL.to_owned(),
                            display_order: None,
                            archived: false,
                        },
                    )
                    .await?;
            }
            let def = mapping.definition_to_create(purpose, name);
            client
                .create_property(
                    object_type.as_str(),
                    &PropertyCreate {
                        name: def.name.clone(),
                        label: def.label.clone(),
                        property_type: def.property_type.as_str().to_owned(),
                        field_type: def.field_type.as_str().to_owned(),
                        group_name: GROUP_NAME.to_owned(),
                        description: Some(format!(
                            "Written by hubscore: the {}.",
                            purpose.as_str().replace('_', " ")
                        )),
                        options: def
                            .options
                            .iter()
                            .enumerate()
                            .map(|(i, o)| hubspot_client::PropertyOption {
                                label: o.label.clone(),
                                value: o.value.clone(),
                                display_order: i64::try_from(i).ok(),
                                hidden: false,
                            })
                            .collect(),
                        ..PropertyCreate::default()
                    },
                )
                .await
        }
        .await;
        match created {
            Ok(_) => {
                group_ready = true;
                targets.push(target(object_type, purpose, name, "ready", String::new()));
            }
            Err(HubSpotError::MissingScopes { required }) => targets.push(target(
                object_type,
                purpose,
                name,
                "missing_scope",
                format!("creating the property needs one of the scopes {required:?}"),
            )),
            Err(error @ (HubSpotError::Validation { .. } | HubSpotError::Forbidden { .. })) => {
                targets.push(target(
                    object_type,
                    purpose,
                    name,
                    "error",
                    error.to_string(),
                ));
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

/// Checks the properties the custom attributes go to. hubscore creates only its own
/// properties: an attribute's must exist, be writable and have a type values convert to.
fn prepare_attributes(
    mapping: &WritebackMapping,
    object_type: TargetObject,
    existing: &[hubspot_client::Property],
    targets: &mut Vec<PropertyTarget>,
) {
    for a in mapping.attributes_of(object_type) {
        let purpose = attribute_purpose(&a.attribute);
        let found = existing
            .iter()
            .find(|p| p.name == a.property)
            .map(to_definition);
        let (state, detail, conversion) = match found {
            None => (
                "missing",
                "the property does not exist in HubSpot; hubscore creates only its own".to_owned(),
                None,
            ),
            Some(def) if def.archived => {
                ("incompatible", "the property is archived".to_owned(), None)
            }
            Some(def) if !def.is_writable() => (
                "incompatible",
                "the property is read-only in HubSpot".to_owned(),
                None,
            ),
            Some(def) => match Conversion::for_property(&def) {
                Some(conversion) => (
                    "ready",
                    String::new(),
                    serde_json::to_value(conversion).ok(),
                ),
                None => (
                    "incompatible",
                    format!(
                        "the property has type {:?}, which hubscore cannot write",
                        def.property_type.as_str()
                    ),
                    None,
                ),
            },
        };
        let mut t = target_of(object_type, &purpose, &a.property, state, detail);
        t.conversion = conversion;
        targets.push(t);
    }
}

fn accepts(purpose: Purpose, property_type: &PropertyType) -> bool {
    match purpose {
        Purpose::Score => matches!(property_type, PropertyType::Number | PropertyType::String),
        Purpose::RiskLevel => matches!(
            property_type,
            PropertyType::Enumeration | PropertyType::String
        ),
        Purpose::ScoreUpdatedAt => {
            matches!(property_type, PropertyType::Datetime | PropertyType::String)
        }
        Purpose::TopFactor => matches!(property_type, PropertyType::String),
    }
}
