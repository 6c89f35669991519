//! The catalogue every new portal starts with: HubSpot's default properties of
//! contacts, companies and deals (with their groups, types and options), the
//! simulator's few sample custom properties, and the default deal pipelines.
//!
//! The data lives in `data/*.json`; `build.rs` checks it and compiles it into the
//! statics below, so a broken catalogue fails the build rather than a portal.

use std::sync::Arc;

use crate::model::{
    ObjectType, Pipeline, PropOption, PropType, PropertyDef, PropertyGroup, Schema, Stage,
};

/// One property definition of the catalogue.
#[derive(Debug)]
pub struct PropertySpec {
    /// Internal name.
    pub name: &'static str,
    /// Label.
    pub label: &'static str,
    /// Data type.
    pub ptype: PropType,
    /// UI field type.
    pub field_type: &'static str,
    /// Group name.
    pub group: &'static str,
    /// Description.
    pub description: &'static str,
    /// Enumeration options, `(value, label)`.
    pub options: &'static [(&'static str, &'static str)],
    /// The API cannot write its value.
    pub read_only: bool,
    /// HubSpot computes its value.
    pub calculated: bool,
    /// Hidden in the UI.
    pub hidden: bool,
    /// Values are unique per object type.
    pub unique: bool,
    /// One of HubSpot's (not one of the sample custom properties).
    pub hubspot_defined: bool,
}

/// One object type's groups and properties.
#[derive(Debug)]
pub struct TypeSpec {
    /// `(name, label)` of each property group, in display order.
    pub groups: &'static [(&'static str, &'static str)],
    /// Properties, in display order.
    pub properties: &'static [PropertySpec],
}

/// A deal stage of the catalogue.
#[derive(Debug)]
pub struct StageSpec {
    /// Stage id.
    pub id: &'static str,
    /// Label.
    pub label: &'static str,
    /// Win probability, 0 to 1.
    pub probability: f64,
    /// Closed (won or lost).
    pub closed: bool,
}

/// A deal pipeline of the catalogue.
#[derive(Debug)]
pub struct PipelineSpec {
    /// Pipeline id.
    pub id: &'static str,
    /// Label.
    pub label: &'static str,
    /// Stages in order.
    pub stages: &'static [StageSpec],
}

include!(concat!(env!("OUT_DIR"), "/catalogue.rs"));

/// Lifecycle stages in their forward order, `(value, label)`.
pub static LIFECYCLE_STAGES: &[(&str, &str)] = OPTIONS_LIFECYCLE_STAGES;

/// Contact lead statuses, `(value, label)`.
pub static LEAD_STATUSES: &[(&str, &str)] = OPTIONS_LEAD_STATUSES;

/// The catalogue of one object type.
pub fn of(ot: ObjectType) -> &'static TypeSpec {
    match ot {
        ObjectType::Contacts => &CONTACTS,
        ObjectType::Companies => &COMPANIES,
        ObjectType::Deals => &DEALS,
    }
}

/// A new portal's schema of `ot`, created at `created_ms`.
pub fn schema(ot: ObjectType, created_ms: i64) -> Schema {
    let spec = of(ot);
    let mut schema = Schema::default();
    for (i, (name, label)) in spec.groups.iter().enumerate() {
        schema.groups.insert(
            (*name).to_owned(),
            PropertyGroup {
                name: (*name).to_owned(),
                label: (*label).to_owned(),
                display_order: i as i64,
                archived: false,
            },
        );
    }
    for (i, p) in spec.properties.iter().enumerate() {
        let options = p
            .options
            .iter()
            .enumerate()
            .map(|(order, (value, label))| PropOption {
                label: (*label).to_owned(),
                value: (*value).to_owned(),
                display_order: order as i64,
                hidden: false,
            })
            .collect();
        schema.props.insert(
            p.name.to_owned(),
            PropertyDef {
                name: Arc::from(p.name),
                label: p.label.to_owned(),
                ptype: p.ptype,
                field_type: p.field_type.to_owned(),
                group_name: p.group.to_owned(),
                description: p.description.to_owned(),
                options,
                hubspot_defined: p.hubspot_defined,
                has_unique_value: p.unique,
                read_only_value: p.read_only,
                calculated: p.calculated,
                hidden: p.hidden,
                display_order: i as i64,
                form_field: !p.hubspot_defined,
                created_ms,
                updated_ms: created_ms,
                archived: false,
            },
        );
    }
    schema
}

/// A new portal's deal pipelines, created at `created_ms`.
pub fn pipelines(created_ms: i64) -> Vec<Pipeline> {
    PIPELINES
        .iter()
        .map(|p| Pipeline {
            id: p.id.to_owned(),
            label: p.label.to_owned(),
            created_ms,
            stages: p
                .stages
                .iter()
                .map(|s| Stage {
                    id: s.id.to_owned(),
                    label: s.label.to_owned(),
                    probability: s.probability,
                    closed: s.closed,
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_pairs_its_type_with_a_field_type_hubspot_allows() {
        for ot in ObjectType::ALL {
            for p in of(ot).properties {
                assert!(
                    p.ptype.accepts_field_type(p.field_type),
                    "{} {}: {} with {}",
                    ot.plural(),
                    p.name,
                    p.ptype.name(),
                    p.field_type
                );
            }
        }
    }

    #[test]
    fn the_records_every_type_needs_are_in_the_catalogue() {
        for ot in ObjectType::ALL {
            let schema = schema(ot, 0);
            for name in ot.default_properties() {
                assert!(schema.props.contains_key(*name), "{}: {name}", ot.plural());
            }
            assert!(schema.props.contains_key(ot.last_modified_property()));
            assert!(schema.props["hs_object_id"].read_only_value);
        }
        assert_eq!(LIFECYCLE_STAGES[0].0, "subscriber");
        assert_eq!(PIPELINES[0].id, "default");
    }
}
