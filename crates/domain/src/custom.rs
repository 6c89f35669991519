//! Per-connection custom mappings: any HubSpot property (as discovered through the
//! properties API, with its type) to a named custom attribute, in a direction; the
//! property that serves as external id; record filters deciding which records sync; and
//! the properties that receive the score and risk level.
//!
//! A [`MappingConfig`] is what an admin submits. [`MappingConfig::validate`] checks it
//! against the portal's property definitions and returns every problem at once, each
//! naming the property, attribute or value at fault; only a [`ValidMappingConfig`] can be
//! used to read records, filter them or render values for HubSpot. Nothing here fetches
//! definitions or stores configs.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::ObjectType;
use crate::mapping::{self, HubSpotRecord, MappingWarning, SkipReason};
use crate::outbound::RiskLevel;
use crate::parse::{self, DecimalNumber};

hubspot_enum! {
    /// A HubSpot property's `type`.
    PropertyType {
        /// `string`.
        String => "string",
        /// `number`.
        Number => "number",
        /// `date`: midnight UTC.
        Date => "date",
        /// `datetime`.
        Datetime => "datetime",
        /// `enumeration`, with options.
        Enumeration => "enumeration",
        /// `bool`.
        Bool => "bool",
        /// `phone_number`.
        PhoneNumber => "phone_number",
    }
}

hubspot_enum! {
    /// A HubSpot property's `fieldType` (how the UI edits it).
    FieldType {
        /// `text`.
        Text => "text",
        /// `textarea`.
        Textarea => "textarea",
        /// `html`.
        Html => "html",
        /// `number`.
        Number => "number",
        /// `date`.
        Date => "date",
        /// `select`: one option.
        Select => "select",
        /// `radio`: one option.
        Radio => "radio",
        /// `checkbox`: several options, joined with `;`.
        Checkbox => "checkbox",
        /// `booleancheckbox`.
        BooleanCheckbox => "booleancheckbox",
        /// `phonenumber`.
        PhoneNumber => "phonenumber",
        /// `file`.
        File => "file",
        /// `calculation_equation`: computed by HubSpot, never written.
        CalculationEquation => "calculation_equation",
    }
}

/// One option of an enumeration property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyOption {
    /// Display label.
    pub label: String,
    /// The stored value: what HubSpot sends and accepts.
    pub value: String,
    /// Hidden in HubSpot's UI (still a valid value).
    #[serde(default)]
    pub hidden: bool,
}

/// A property definition from HubSpot's properties API (`hubspot-api.md` §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyDefinition {
    /// Internal name.
    pub name: String,
    /// Display label.
    pub label: String,
    /// `type`.
    pub property_type: PropertyType,
    /// `fieldType`.
    pub field_type: FieldType,
    /// `options` (enumerations).
    #[serde(default)]
    pub options: Vec<PropertyOption>,
    /// `hasUniqueValue`: may serve as external id.
    #[serde(default)]
    pub has_unique_value: bool,
    /// `modificationMetadata.readOnlyValue`: HubSpot refuses writes.
    #[serde(default)]
    pub read_only_value: bool,
    /// `calculated`: computed by HubSpot, refuses writes.
    #[serde(default)]
    pub calculated: bool,
    /// `archived`.
    #[serde(default)]
    pub archived: bool,
}

impl PropertyDefinition {
    /// True when HubSpot accepts values for this property.
    pub fn is_writable(&self) -> bool {
        !self.read_only_value
            && !self.calculated
            && self.field_type != FieldType::CalculationEquation
    }

    fn has_option(&self, value: &str) -> bool {
        self.options.iter().any(|o| o.value == value)
    }
}

/// Which way a custom attribute flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// HubSpot to hubscore.
    Inbound,
    /// hubscore to HubSpot.
    Outbound,
    /// Both ways.
    Both,
}

impl Direction {
    /// Values are read from HubSpot.
    pub fn reads(self) -> bool {
        matches!(self, Direction::Inbound | Direction::Both)
    }

    /// Values are written to HubSpot.
    pub fn writes(self) -> bool {
        matches!(self, Direction::Outbound | Direction::Both)
    }
}

/// How values move between a property and an attribute, chosen by the property's type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Conversion {
    /// `string` and `phone_number`: trimmed text.
    Text,
    /// `number`: exact decimal.
    Number,
    /// `date`: a calendar date, midnight UTC in HubSpot.
    Date,
    /// `datetime`: a UTC instant.
    Datetime,
    /// `bool`: `true` / `false`.
    Bool,
    /// `enumeration`: option values; several joined with `;` when `multiple`.
    Enumeration {
        /// The allowed option values.
        options: Vec<String>,
        /// A `checkbox` field: several values at once.
        multiple: bool,
    },
}

impl Conversion {
    /// The conversion for a property, or none for a type this version cannot convert.
    pub fn for_property(def: &PropertyDefinition) -> Option<Conversion> {
        Some(match def.property_type {
            PropertyType::String | PropertyType::PhoneNumber => Conversion::Text,
            PropertyType::Number => Conversion::Number,
            PropertyType::Date => Conversion::Date,
            PropertyType::Datetime => Conversion::Datetime,
            PropertyType::Bool => Conversion::Bool,
            PropertyType::Enumeration => Conversion::Enumeration {
                options: def.options.iter().map(|o| o.value.clone()).collect(),
                multiple: def.field_type == FieldType::Checkbox,
            },
            PropertyType::Unknown(_) => return None,
        })
    }
}

/// A custom attribute's value inside hubscore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum AttributeValue {
    /// Text.
    Text(String),
    /// An exact decimal.
    Number(DecimalNumber),
    /// A calendar date.
    Date(NaiveDate),
    /// A UTC instant.
    Datetime(DateTime<Utc>),
    /// A boolean.
    Bool(bool),
    /// Enumeration option values (one for single-select properties).
    Options(Vec<String>),
}

/// One property-to-attribute mapping, as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeMapping {
    /// The HubSpot property's internal name.
    pub property: String,
    /// The custom attribute's name: `[a-z0-9_]`, 1 to 64 characters, starting with a
    /// letter.
    pub attribute: String,
    /// Which way values flow.
    pub direction: Direction,
}

/// A record filter operator (HubSpot's search operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterOperator {
    /// Equal (text compares case-insensitively, numbers and dates by value).
    Eq,
    /// Not equal; a record without the value matches.
    Neq,
    /// Less than (numbers, dates).
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Between the two values, inclusive.
    Between,
    /// Equal to one of the values.
    In,
    /// Equal to none of the values.
    NotIn,
    /// Has a value.
    HasProperty,
    /// Has no value.
    NotHasProperty,
    /// Text contains the value, case-insensitively (`*` is ignored).
    ContainsToken,
    /// Text does not contain the value.
    NotContainsToken,
}

/// How many values an operator takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueCount {
    /// None.
    None,
    /// Exactly one.
    One,
    /// Exactly two.
    Two,
    /// One or more.
    AtLeastOne,
}

impl FilterOperator {
    /// How many values the operator takes.
    pub fn value_count(self) -> ValueCount {
        use FilterOperator::*;
        match self {
            HasProperty | NotHasProperty => ValueCount::None,
            Between => ValueCount::Two,
            In | NotIn => ValueCount::AtLeastOne,
            Eq | Neq | Lt | Lte | Gt | Gte | ContainsToken | NotContainsToken => ValueCount::One,
        }
    }

    /// Whether the operator makes sense for a property type.
    pub fn applies_to(self, property_type: &PropertyType) -> bool {
        use FilterOperator::*;
        match self {
            Eq | Neq | In | NotIn | HasProperty | NotHasProperty => true,
            Lt | Lte | Gt | Gte | Between => matches!(
                property_type,
                PropertyType::Number | PropertyType::Date | PropertyType::Datetime
            ),
            ContainsToken | NotContainsToken => {
                matches!(
                    property_type,
                    PropertyType::String | PropertyType::PhoneNumber
                )
            }
        }
    }
}

/// Only records whose `property` satisfies `operator` with `values` sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordFilter {
    /// The HubSpot property tested.
    pub property: String,
    /// How.
    pub operator: FilterOperator,
    /// The operand(s), as HubSpot-formatted strings.
    #[serde(default)]
    pub values: Vec<String>,
}

/// The option values written for each risk level to an enumeration property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskLevelValues {
    /// Written for [`RiskLevel::Green`].
    pub green: String,
    /// Written for [`RiskLevel::Yellow`].
    pub yellow: String,
    /// Written for [`RiskLevel::Red`].
    pub red: String,
}

impl Default for RiskLevelValues {
    fn default() -> Self {
        RiskLevelValues {
            green: "green".into(),
            yellow: "yellow".into(),
            red: "red".into(),
        }
    }
}

impl RiskLevelValues {
    /// The value written for `level`.
    pub fn value(&self, level: RiskLevel) -> &str {
        match level {
            RiskLevel::Green => &self.green,
            RiskLevel::Yellow => &self.yellow,
            RiskLevel::Red => &self.red,
        }
    }
}

/// A connection's custom mapping for one object type, as an admin submits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingConfig {
    /// The object type mapped.
    pub object_type: ObjectType,
    /// The property identifying records: `hs_object_id`, `email` for contacts, or a
    /// property with unique values.
    #[serde(default)]
    pub external_id_property: Option<String>,
    /// Property-to-attribute mappings.
    #[serde(default)]
    pub attributes: Vec<AttributeMapping>,
    /// Record filters; a record syncs only when all match.
    #[serde(default)]
    pub filters: Vec<RecordFilter>,
    /// The property receiving the health score (number or string).
    #[serde(default)]
    pub score_property: Option<String>,
    /// The property receiving the risk level (enumeration or string).
    #[serde(default)]
    pub risk_level_property: Option<String>,
    /// The values written for each risk level.
    #[serde(default)]
    pub risk_level_values: RiskLevelValues,
}

/// One thing wrong with a [`MappingConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "error")]
pub enum MappingConfigError {
    /// No external-id property was chosen.
    #[error("no external-id property chosen")]
    NoExternalIdProperty,
    /// The external-id property's values are not unique.
    #[error("property {name:?} cannot identify records: its values are not unique")]
    ExternalIdNotUnique {
        /// The property.
        name: String,
    },
    /// The portal has no such property for this object type.
    #[error("unknown property {name:?}")]
    UnknownProperty {
        /// The property.
        name: String,
    },
    /// The property is archived in HubSpot.
    #[error("property {name:?} is archived")]
    ArchivedProperty {
        /// The property.
        name: String,
    },
    /// The property's type cannot be converted.
    #[error("property {name:?} has unsupported type {property_type:?}")]
    UnsupportedPropertyType {
        /// The property.
        name: String,
        /// Its HubSpot type.
        property_type: String,
    },
    /// The attribute name is empty or not `[a-z][a-z0-9_]{0,63}`.
    #[error(
        "invalid attribute name {attribute:?}: use a-z, 0-9 and _, starting with a letter, at most 64"
    )]
    InvalidAttributeName {
        /// The attribute.
        attribute: String,
    },
    /// Two mappings feed the same attribute.
    #[error("attribute {attribute:?} is mapped more than once")]
    DuplicateAttribute {
        /// The attribute.
        attribute: String,
    },
    /// Writing to a read-only or calculated property.
    #[error("property {property:?} is read-only in HubSpot: direction {direction:?} not allowed")]
    DirectionNotAllowed {
        /// The property.
        property: String,
        /// The direction asked for.
        direction: Direction,
    },
    /// Two outbound values would be written to the same property.
    #[error("property {property:?} would be written by more than one mapping")]
    PropertyWrittenTwice {
        /// The property.
        property: String,
    },
    /// The property's type cannot hold what is written to it.
    #[error("property {property:?} has type {found:?}; {purpose} needs one of {expected:?}")]
    WrongPropertyType {
        /// The property.
        property: String,
        /// What it is for (`score`, `risk level`).
        purpose: String,
        /// Acceptable types.
        expected: Vec<String>,
        /// Its type.
        found: String,
    },
    /// An operator that does not apply to the property's type.
    #[error("operator {operator:?} does not apply to {property:?} of type {property_type:?}")]
    OperatorNotValidForType {
        /// The property.
        property: String,
        /// The operator.
        operator: FilterOperator,
        /// The property's type.
        property_type: String,
    },
    /// The filter has too few or too many values for its operator.
    #[error("filter on {property:?} with {operator:?} needs {expected:?} value(s), got {found}")]
    WrongValueCount {
        /// The property.
        property: String,
        /// The operator.
        operator: FilterOperator,
        /// What it needs.
        expected: ValueCount,
        /// What it got.
        found: usize,
    },
    /// A filter value does not parse as the property's type.
    #[error("filter value {value:?} is not a valid {property_type:?} for {property:?}")]
    InvalidFilterValue {
        /// The property.
        property: String,
        /// The value.
        value: String,
        /// The property's type.
        property_type: String,
    },
    /// A value that is not one of the enumeration's options.
    #[error("{value:?} is not an option of {property:?}")]
    OptionNotInEnumeration {
        /// The property.
        property: String,
        /// The value.
        value: String,
    },
    /// A `BETWEEN` filter whose lower bound is above its upper bound: no record could
    /// ever sync.
    #[error("filter on {property:?}: BETWEEN {low:?} and {high:?} is empty (low above high)")]
    EmptyRange {
        /// The property.
        property: String,
        /// The first value.
        low: String,
        /// The second value.
        high: String,
    },
    /// A risk level written as a blank value, which HubSpot takes as "clear the property".
    #[error("risk level {level} has a blank value; HubSpot would clear the property")]
    BlankRiskLevelValue {
        /// The level.
        level: RiskLevel,
    },
    /// Two risk levels written as the same value, so HubSpot could not tell them apart.
    #[error("risk levels {first} and {second} are both written as {value:?}")]
    DuplicateRiskLevelValue {
        /// The value.
        value: String,
        /// The first level using it.
        first: RiskLevel,
        /// The second level using it.
        second: RiskLevel,
    },
}

/// Every problem found in a [`MappingConfig`], in config order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct InvalidMappingConfig {
    /// The problems; never empty.
    pub errors: Vec<MappingConfigError>,
}

impl fmt::Display for InvalidMappingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid mapping config: ")?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A mapping with its conversion resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedAttribute {
    /// The HubSpot property.
    pub property: String,
    /// The custom attribute.
    pub attribute: String,
    /// Which way values flow.
    pub direction: Direction,
    /// How values convert.
    pub conversion: Conversion,
}

/// A filter with its property's type resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedFilter {
    /// The filter as submitted.
    pub filter: RecordFilter,
    /// How the property's values compare.
    pub conversion: Conversion,
}

/// An outbound target property and how its values are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundTarget {
    /// The HubSpot property.
    pub property: String,
    /// How values convert.
    pub conversion: Conversion,
}

/// A validated mapping config: the only form that reads, filters or writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidMappingConfig {
    /// The object type mapped.
    pub object_type: ObjectType,
    /// The property identifying records.
    pub external_id_property: String,
    /// Attribute mappings, in config order.
    pub attributes: Vec<ResolvedAttribute>,
    /// Record filters, in config order.
    pub filters: Vec<ResolvedFilter>,
    /// Where the score goes.
    pub score_target: Option<OutboundTarget>,
    /// Where the risk level goes.
    pub risk_level_target: Option<OutboundTarget>,
    /// Values written for each risk level.
    pub risk_level_values: RiskLevelValues,
}

/// Longest custom attribute name.
const MAX_ATTRIBUTE_LEN: usize = 64;

fn valid_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_ATTRIBUTE_LEN
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `value` parses as the property's type (enumerations are checked separately).
fn value_fits(property_type: &PropertyType, value: &str) -> bool {
    match property_type {
        PropertyType::Number => matches!(DecimalNumber::parse(value), Ok(Some(_))),
        PropertyType::Date | PropertyType::Datetime => {
            matches!(parse::parse_timestamp(value), Ok(Some(_)))
        }
        PropertyType::Bool => matches!(parse::parse_bool(value), Ok(Some(_))),
        _ => true,
    }
}

/// Each risk level needs its own non-blank value: a blank one would clear the property
/// (HubSpot's convention for an empty string) and a shared one would hide the level.
fn check_risk_level_values(values: &RiskLevelValues, errors: &mut Vec<MappingConfigError>) {
    let levels = [RiskLevel::Green, RiskLevel::Yellow, RiskLevel::Red];
    let mut seen: Vec<(&str, RiskLevel)> = Vec::with_capacity(levels.len());
    for level in levels {
        let value = values.value(level);
        if value.trim().is_empty() {
            errors.push(MappingConfigError::BlankRiskLevelValue { level });
            continue;
        }
        match seen.iter().find(|(v, _)| *v == value) {
            Some(&(_, first)) => errors.push(MappingConfigError::DuplicateRiskLevelValue {
                value: value.to_owned(),
                first,
                second: level,
            }),
            None => seen.push((value, level)),
        }
    }
}

impl MappingConfig {
    /// Checks the config against the portal's property definitions for its object type
    /// and reports every problem found, not just the first.
    pub fn validate(
        &self,
        definitions: &[PropertyDefinition],
    ) -> Result<ValidMappingConfig, InvalidMappingConfig> {
        let by_name: BTreeMap<&str, &PropertyDefinition> =
            definitions.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut errors = Vec::new();

        // Looks a property up, reporting unknown and archived ones, and resolves its
        // conversion, reporting unsupported types.
        let resolve = |name: &str, errors: &mut Vec<MappingConfigError>| {
            let Some(def) = by_name.get(name).copied() else {
                errors.push(MappingConfigError::UnknownProperty { name: name.into() });
                return None;
            };
            if def.archived {
                errors.push(MappingConfigError::ArchivedProperty { name: name.into() });
                return None;
            }
            match Conversion::for_property(def) {
                Some(conversion) => Some((def, conversion)),
                None => {
                    errors.push(MappingConfigError::UnsupportedPropertyType {
                        name: name.into(),
                        property_type: def.property_type.to_string(),
                    });
                    None
                }
            }
        };

        let external_id_property = match self.external_id_property.as_deref().map(str::trim) {
            None | Some("") => {
                errors.push(MappingConfigError::NoExternalIdProperty);
                String::new()
            }
            Some(name) => {
                let built_in = name == mapping::props::HS_OBJECT_ID
                    || (self.object_type == ObjectType::Contact && name == mapping::props::EMAIL);
                if !built_in
                    && let Some((def, _)) = resolve(name, &mut errors)
                    && !def.has_unique_value
                {
                    errors.push(MappingConfigError::ExternalIdNotUnique { name: name.into() });
                }
                name.to_owned()
            }
        };

        let mut written: BTreeSet<String> = BTreeSet::new();
        let mut note_written = |property: &str, errors: &mut Vec<MappingConfigError>| {
            if !written.insert(property.to_owned()) {
                errors.push(MappingConfigError::PropertyWrittenTwice {
                    property: property.into(),
                });
            }
        };

        let mut attributes = Vec::with_capacity(self.attributes.len());
        let mut seen_attributes: BTreeSet<&str> = BTreeSet::new();
        for m in &self.attributes {
            if !valid_attribute_name(&m.attribute) {
                errors.push(MappingConfigError::InvalidAttributeName {
                    attribute: m.attribute.clone(),
                });
            } else if !seen_attributes.insert(&m.attribute) {
                errors.push(MappingConfigError::DuplicateAttribute {
                    attribute: m.attribute.clone(),
                });
            }
            let Some((def, conversion)) = resolve(&m.property, &mut errors) else {
                continue;
            };
            if m.direction.writes() {
                if !def.is_writable() {
                    errors.push(MappingConfigError::DirectionNotAllowed {
                        property: m.property.clone(),
                        direction: m.direction,
                    });
                }
                note_written(&m.property, &mut errors);
            }
            attributes.push(ResolvedAttribute {
                property: m.property.clone(),
                attribute: m.attribute.clone(),
                direction: m.direction,
                conversion,
            });
        }

        let mut filters = Vec::with_capacity(self.filters.len());
        for f in &self.filters {
            let Some((def, conversion)) = resolve(&f.property, &mut errors) else {
                continue;
            };
            let mut ok = true;
            if !f.operator.applies_to(&def.property_type) {
                ok = false;
                errors.push(MappingConfigError::OperatorNotValidForType {
                    property: f.property.clone(),
                    operator: f.operator,
                    property_type: def.property_type.to_string(),
                });
            }
            let expected = f.operator.value_count();
            let count_ok = match expected {
                ValueCount::None => f.values.is_empty(),
                ValueCount::One => f.values.len() == 1,
                ValueCount::Two => f.values.len() == 2,
                ValueCount::AtLeastOne => !f.values.is_empty(),
            };
            if !count_ok {
                ok = false;
                errors.push(MappingConfigError::WrongValueCount {
                    property: f.property.clone(),
                    operator: f.operator,
                    expected,
                    found: f.values.len(),
                });
            }
            for value in &f.values {
                if def.property_type == PropertyType::Enumeration {
                    if !def.has_option(value) {
                        ok = false;
                        errors.push(MappingConfigError::OptionNotInEnumeration {
                            property: f.property.clone(),
                            value: value.clone(),
                        });
                    }
                } else if !value_fits(&def.property_type, value) {
                    ok = false;
                    errors.push(MappingConfigError::InvalidFilterValue {
                        property: f.property.clone(),
                        value: value.clone(),
                        property_type: def.property_type.to_string(),
                    });
                }
            }
            if ok
                && f.operator == FilterOperator::Between
                && let [low, high] = f.values.as_slice()
                && compare(&conversion, low, high) == Some(Ordering::Greater)
            {
                ok = false;
                errors.push(MappingConfigError::EmptyRange {
                    property: f.property.clone(),
                    low: low.clone(),
                    high: high.clone(),
                });
            }
            if ok {
                filters.push(ResolvedFilter {
                    filter: f.clone(),
                    conversion,
                });
            }
        }

        let mut outbound_target =
            |name: &Option<String>,
             purpose: &str,
             allowed: &[PropertyType],
             errors: &mut Vec<MappingConfigError>| {
                let name = name.as_deref()?;
                let (def, conversion) = resolve(name, errors)?;
                if !def.is_writable() {
                    errors.push(MappingConfigError::DirectionNotAllowed {
                        property: name.into(),
                        direction: Direction::Outbound,
                    });
                }
                if !allowed.contains(&def.property_type) {
                    errors.push(MappingConfigError::WrongPropertyType {
                        property: name.into(),
                        purpose: purpose.into(),
                        expected: allowed.iter().map(ToString::to_string).collect(),
                        found: def.property_type.to_string(),
                    });
                }
                note_written(name, errors);
                Some((
                    def,
                    OutboundTarget {
                        property: name.to_owned(),
                        conversion,
                    },
                ))
            };
        let score_target = outbound_target(
            &self.score_property,
            "score",
            &[PropertyType::Number, PropertyType::String],
            &mut errors,
        )
        .map(|(_, t)| t);
        let risk_level_target = outbound_target(
            &self.risk_level_property,
            "risk level",
            &[PropertyType::Enumeration, PropertyType::String],
            &mut errors,
        )
        .map(|(def, t)| {
            check_risk_level_values(&self.risk_level_values, &mut errors);
            if def.property_type == PropertyType::Enumeration {
                let v = &self.risk_level_values;
                for value in [&v.green, &v.yellow, &v.red] {
                    // A blank value is already reported as such.
                    if !value.trim().is_empty() && !def.has_option(value) {
                        errors.push(MappingConfigError::OptionNotInEnumeration {
                            property: def.name.clone(),
                            value: value.clone(),
                        });
                    }
                }
            }
            t
        });

        if !errors.is_empty() {
            return Err(InvalidMappingConfig { errors });
        }
        Ok(ValidMappingConfig {
            object_type: self.object_type,
            external_id_property,
            attributes,
            filters,
            score_target,
            risk_level_target,
            risk_level_values: self.risk_level_values.clone(),
        })
    }
}

impl ValidMappingConfig {
    /// Every property sync must request: the default mapping's, plus those this config
    /// reads, filters on or identifies records by. Sorted, without duplicates.
    pub fn properties_to_fetch(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = mapping::default_properties(self.object_type)
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        names.insert(self.external_id_property.clone());
        names.extend(
            self.attributes
                .iter()
                .filter(|a| a.direction.reads())
                .map(|a| a.property.clone()),
        );
        names.extend(self.filters.iter().map(|f| f.filter.property.clone()));
        names.into_iter().collect()
    }

    /// The record's external id: the chosen property's value, trimmed (e-mails lower
    /// case); `hs_object_id` falls back to the envelope id. `None` when it has no value.
    pub fn external_id(&self, record: &HubSpotRecord) -> Option<String> {
        let raw = record.property(&self.external_id_property);
        let raw = match raw {
            None if self.external_id_property == mapping::props::HS_OBJECT_ID => {
                Some(record.id.as_str())
            }
            other => other,
        };
        let value = parse::clean_text(raw)?;
        Some(if self.external_id_property == mapping::props::EMAIL {
            value.to_lowercase()
        } else {
            value
        })
    }

    /// Whether the record passes every filter; the first filter it fails is the reason.
    pub fn check_filters(&self, record: &HubSpotRecord) -> Result<(), SkipReason> {
        match self
            .filters
            .iter()
            .find(|f| !filter_matches(f, record.property(&f.filter.property)))
        {
            Some(f) => Err(SkipReason::FilteredOut {
                property: f.filter.property.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Reads the inbound attributes of a record. An attribute without a value is absent;
    /// a value that does not convert is absent and warned about.
    pub fn read_attributes(
        &self,
        record: &HubSpotRecord,
    ) -> (BTreeMap<String, AttributeValue>, Vec<MappingWarning>) {
        let mut values = BTreeMap::new();
        let mut warnings = Vec::new();
        for a in self.attributes.iter().filter(|a| a.direction.reads()) {
            let Some(raw) = record.property(&a.property) else {
                continue;
            };
            if let Some(value) = read_value(&a.property, raw, &a.conversion, &mut warnings) {
                values.insert(a.attribute.clone(), value);
            }
        }
        (values, warnings)
    }
}

/// Converts one inbound property value.
fn read_value(
    property: &str,
    raw: &str,
    conversion: &Conversion,
    warnings: &mut Vec<MappingWarning>,
) -> Option<AttributeValue> {
    let invalid = |warnings: &mut Vec<MappingWarning>, error| {
        warnings.push(MappingWarning::InvalidValue {
            property: property.into(),
            value: raw.into(),
            error,
        });
    };
    match conversion {
        Conversion::Text => parse::clean_text(Some(raw)).map(AttributeValue::Text),
        Conversion::Number => match DecimalNumber::parse(raw) {
            Ok(Some(r)) => {
                if r.rounded {
                    warnings.push(MappingWarning::Rounded {
                        property: property.into(),
                        value: raw.into(),
                    });
                }
                Some(AttributeValue::Number(r.value))
            }
            Ok(None) => None,
            Err(e) => {
                invalid(warnings, e);
                None
            }
        },
        Conversion::Date => match parse::parse_date(raw) {
            Ok(d) => d.map(AttributeValue::Date),
            Err(e) => {
                invalid(warnings, e);
                None
            }
        },
        Conversion::Datetime => match parse::parse_timestamp(raw) {
            Ok(d) => d.map(AttributeValue::Datetime),
            Err(e) => {
                invalid(warnings, e);
                None
            }
        },
        Conversion::Bool => match parse::parse_bool(raw) {
            Ok(b) => b.map(AttributeValue::Bool),
            Err(e) => {
                invalid(warnings, e);
                None
            }
        },
        Conversion::Enumeration { options, .. } => {
            let values = split_options(raw);
            for v in values.iter().filter(|v| !options.contains(v)) {
                warnings.push(MappingWarning::UnknownEnumValue {
                    property: property.into(),
                    value: v.clone(),
                });
            }
            (!values.is_empty()).then_some(AttributeValue::Options(values))
        }
    }
}

/// Splits a (multi-select) enumeration value on `;`.
fn split_options(raw: &str) -> Vec<String> {
    raw.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Compares a record value with a filter operand under the property's conversion;
/// `None` when either side does not parse.
fn compare(conversion: &Conversion, value: &str, operand: &str) -> Option<Ordering> {
    match conversion {
        Conversion::Number => {
            let a = DecimalNumber::parse(value).ok()??.value;
            let b = DecimalNumber::parse(operand).ok()??.value;
            Some(a.cmp(&b))
        }
        Conversion::Date => {
            let a = parse::parse_date(value).ok()??;
            let b = parse::parse_date(operand).ok()??;
            Some(a.cmp(&b))
        }
        Conversion::Datetime => {
            let a = parse::parse_timestamp(value).ok()??;
            let b = parse::parse_timestamp(operand).ok()??;
            Some(a.cmp(&b))
        }
        Conversion::Bool => {
            let a = parse::parse_bool(value).ok()??;
            let b = parse::parse_bool(operand).ok()??;
            Some(a.cmp(&b))
        }
        Conversion::Text => Some(
            value
                .trim()
                .to_lowercase()
                .cmp(&operand.trim().to_lowercase()),
        ),
        Conversion::Enumeration { .. } => {
            Some(if split_options(value).iter().any(|v| v == operand) {
                Ordering::Equal
            } else {
                value.cmp(operand)
            })
        }
    }
}

fn filter_matches(f: &ResolvedFilter, value: Option<&str>) -> bool {
    use FilterOperator::*;
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    let values = &f.filter.values;
    let Some(value) = value else {
        // No value: only the operators that ask for absence (or for "not this") match.
        return matches!(
            f.filter.operator,
            Neq | NotIn | NotHasProperty | NotContainsToken
        );
    };
    let cmp_first = || {
        values
            .first()
            .and_then(|op| compare(&f.conversion, value, op))
    };
    let equal_any = || {
        values
            .iter()
            .any(|op| compare(&f.conversion, value, op) == Some(Ordering::Equal))
    };
    let contains = || {
        values.first().is_some_and(|op| {
            let token = op.replace('*', "").to_lowercase();
            value.to_lowercase().contains(&token)
        })
    };
    match f.filter.operator {
        HasProperty => true,
        NotHasProperty => false,
        Eq => cmp_first() == Some(Ordering::Equal),
        Neq => cmp_first() != Some(Ordering::Equal),
        Lt => cmp_first() == Some(Ordering::Less),
        Lte => matches!(cmp_first(), Some(Ordering::Less | Ordering::Equal)),
        Gt => cmp_first() == Some(Ordering::Greater),
        Gte => matches!(cmp_first(), Some(Ordering::Greater | Ordering::Equal)),
        Between => {
            let lo = values
                .first()
                .and_then(|op| compare(&f.conversion, value, op));
            let hi = values
                .get(1)
                .and_then(|op| compare(&f.conversion, value, op));
            matches!(lo, Some(Ordering::Greater | Ordering::Equal))
                && matches!(hi, Some(Ordering::Less | Ordering::Equal))
        }
        In => equal_any(),
        NotIn => !equal_any(),
        ContainsToken => contains(),
        NotContainsToken => !contains(),
    }
}
