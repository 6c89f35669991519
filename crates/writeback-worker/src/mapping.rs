//! The outbound mapping of one connection: which object types receive scores, which
//! HubSpot property receives each hubscore field, and the option values of the risk level.
//! Validated through `domain` against the portal's property definitions; also renders a
//! score into the property values to write.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::custom::{
    AttributeMapping, AttributeValue, Conversion, Direction, FieldType, MappingConfig,
    PropertyDefinition, PropertyOption, PropertyType, RiskLevelValues,
};
use domain::ids::ObjectType;
use domain::outbound::OutboundError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The property group every created property goes into.
pub const GROUP_NAME: &str = "hubscore";
/// The group's label in HubSpot.
pub const GROUP_LABEL: &str = "hubscore";

/// A HubSpot object type that receives scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetObject {
    /// Contacts (a customer's own score).
    Contacts,
    /// Companies (the company roll-up).
    Companies,
}

impl TargetObject {
    /// Both, in a fixed order.
    pub const ALL: [TargetObject; 2] = [TargetObject::Contacts, TargetObject::Companies];

    /// The name in HubSpot API paths and in our tables.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetObject::Contacts => "contacts",
            TargetObject::Companies => "companies",
        }
    }

    /// The object type of a stored name.
    pub fn parse(value: &str) -> Option<TargetObject> {
        match value {
            "contacts" => Some(TargetObject::Contacts),
            "companies" => Some(TargetObject::Companies),
            _ => None,
        }
    }

    /// `domain`'s name for it.
    pub fn domain(self) -> ObjectType {
        match self {
            TargetObject::Contacts => ObjectType::Contact,
            TargetObject::Companies => ObjectType::Company,
        }
    }

    /// The scope that allows writing its records.
    pub fn write_scope(self) -> &'static str {
        match self {
            TargetObject::Contacts => "crm.objects.contacts.write",
            TargetObject::Companies => "crm.objects.companies.write",
        }
    }

    /// The scope that allows creating its properties.
    pub fn schema_write_scope(self) -> &'static str {
        match self {
            TargetObject::Contacts => "crm.schemas.contacts.write",
            TargetObject::Companies => "crm.schemas.companies.write",
        }
    }
}

/// What a property receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The health score, 0-100 (number).
    Score,
    /// The risk level (enumeration).
    RiskLevel,
    /// When the written score was computed (datetime).
    ScoreUpdatedAt,
    /// The factor that moved the score most (text).
    TopFactor,
}

impl Purpose {
    /// Every purpose, in the order properties are prepared.
    pub const ALL: [Purpose; 4] = [
        Purpose::Score,
        Purpose::RiskLevel,
        Purpose::ScoreUpdatedAt,
        Purpose::TopFactor,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Score => "score",
            Purpose::RiskLevel => "risk_level",
            Purpose::ScoreUpdatedAt => "score_updated_at",
            Purpose::TopFactor => "top_factor",
        }
    }

    /// The purpose of a stored name.
    pub fn parse(value: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.as_str() == value)
    }

    /// The property types that can hold it.
    fn accepted_types(self) -> &'static [PropertyType] {
        match self {
            Purpose::Score => &[PropertyType::Number, PropertyType::String],
            Purpose::RiskLevel => &[PropertyType::Enumeration, PropertyType::String],
            Purpose::ScoreUpdatedAt => &[PropertyType::Datetime, PropertyType::String],
            Purpose::TopFactor => &[PropertyType::String],
        }
    }
}

/// Which property receives each field; `null` means the field is not written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PropertyNames {
    /// The health score (default `hubscore_health_score`, number).
    pub score: Option<String>,
    /// The risk level (default `hubscore_risk_level`, enumeration).
    pub risk_level: Option<String>,
    /// When the score was computed (default `hubscore_score_updated_at`, datetime).
    pub score_updated_at: Option<String>,
    /// The factor that moved the score most (default `hubscore_top_factor`, text).
    pub top_factor: Option<String>,
}

impl Default for PropertyNames {
    fn default() -> Self {
        Self {
            score: Some("hubscore_health_score".into()),
            risk_level: Some("hubscore_risk_level".into()),
            score_updated_at: Some("hubscore_score_updated_at".into()),
            top_factor: Some("hubscore_top_factor".into()),
        }
    }
}

impl PropertyNames {
    /// The property of a purpose, if it is written.
    pub fn of(&self, purpose: Purpose) -> Option<&str> {
        match purpose {
            Purpose::Score => self.score.as_deref(),
            Purpose::RiskLevel => self.risk_level.as_deref(),
            Purpose::ScoreUpdatedAt => self.score_updated_at.as_deref(),
            Purpose::TopFactor => self.top_factor.as_deref(),
        }
    }
}

/// The option value written for each risk level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskLevelOptions {
    /// Score at or above the healthy threshold.
    pub healthy: String,
    /// Between the thresholds.
    pub at_risk: String,
    /// Below the at-risk threshold.
    pub critical: String,
    /// No score (N/A).
    pub none: String,
}

impl Default for RiskLevelOptions {
    fn default() -> Self {
        Self {
            healthy: "healthy".into(),
            at_risk: "at_risk".into(),
            critical: "critical".into(),
            none: "none".into(),
        }
    }
}

/// A connection's outbound mapping, as `GET/PUT /api/v1/connections/{id}/writeback` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WritebackMapping {
    /// Scores are written at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The object types that receive scores.
    #[serde(default = "both")]
    pub object_types: Vec<TargetObject>,
    /// Which property receives which field.
    #[serde(default)]
    pub properties: PropertyNames,
    /// Option values of the risk level.
    #[serde(default)]
    pub risk_level_values: RiskLevelOptions,
    /// A timeline event on the record when its risk level changes (OAuth connections with
    /// the app's developer key configured; off by default).
    #[serde(default)]
    pub timeline_events: bool,
    /// Custom attributes written to properties of the portal's own (none by default).
    #[serde(default)]
    pub attributes: Vec<OutboundAttribute>,
}

/// One outbound custom attribute: the record's value of `attribute` (a custom attribute the
/// connection's inbound mapping fills, as `crm.changed` carries it) is written to
/// `property`, an existing property of the portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundAttribute {
    /// `contacts` or `companies`: the records whose attribute is written.
    pub object_type: TargetObject,
    /// The custom attribute's name.
    pub attribute: String,
    /// The HubSpot property receiving it.
    pub property: String,
}

/// The purpose under which preparing records an attribute's property.
pub fn attribute_purpose(attribute: &str) -> String {
    format!("{ATTRIBUTE_PREFIX}{attribute}")
}

/// What prefixes an attribute's name in a prepared target's purpose.
pub const ATTRIBUTE_PREFIX: &str = "attribute:";

fn yes() -> bool {
    true
}

fn both() -> Vec<TargetObject> {
    TargetObject::ALL.to_vec()
}

impl Default for WritebackMapping {
    fn default() -> Self {
        Self {
            enabled: true,
            object_types: both(),
            properties: PropertyNames::default(),
            risk_level_values: RiskLevelOptions::default(),
            timeline_events: false,
            attributes: Vec::new(),
        }
    }
}

/// One thing wrong with a submitted mapping, as the API reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappingProblem {
    /// The object type it concerns, when it concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_type: Option<TargetObject>,
    /// A stable code plus the fields naming what is at fault.
    pub detail: Value,
    /// A sentence for people.
    pub message: String,
}

impl MappingProblem {
    fn ours(object_type: Option<TargetObject>, code: &str, fields: Value, message: String) -> Self {
        let mut detail = json!({ "error": code });
        if let (Some(target), Value::Object(extra)) = (detail.as_object_mut(), fields) {
            target.extend(extra);
        }
        Self {
            object_type,
            detail,
            message,
        }
    }
}

/// HubSpot's rule for internal property names, kept a little stricter: lower-case
/// letters, digits and `_`, starting with a letter, at most 100 characters.
fn valid_property_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 100
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl WritebackMapping {
    /// The object types, each once, in a fixed order.
    pub fn targets(&self) -> Vec<TargetObject> {
        TargetObject::ALL
            .into_iter()
            .filter(|t| self.object_types.contains(t))
            .collect()
    }

    /// The outbound attributes of an object type, in mapping order.
    pub fn attributes_of(
        &self,
        object_type: TargetObject,
    ) -> impl Iterator<Item = &OutboundAttribute> {
        self.attributes
            .iter()
            .filter(move |a| a.object_type == object_type)
    }

    /// The four risk values in the order healthy, at risk, critical, none.
    fn risk_values(&self) -> [(&'static str, &str); 4] {
        let v = &self.risk_level_values;
        [
            ("healthy", v.healthy.as_str()),
            ("at_risk", v.at_risk.as_str()),
            ("critical", v.critical.as_str()),
            ("none", v.none.as_str()),
        ]
    }

    /// The definition hubscore creates for a purpose's property when the portal lacks it.
    pub fn definition_to_create(&self, purpose: Purpose, name: &str) -> PropertyDefinition {
        let (property_type, field_type, label) = match purpose {
            Purpose::Score => (
                PropertyType::Number,
                FieldType::Number,
                "hubscore health score",
            ),
            Purpose::RiskLevel => (
                PropertyType::Enumeration,
                FieldType::Select,
                "hubscore risk level",
            ),
            Purpose::ScoreUpdatedAt => (
                PropertyType::Datetime,
                FieldType::Date,
                "hubscore score updated at",
            ),
            Purpose::TopFactor => (PropertyType::String, FieldType::Text, "hubscore top factor"),
        };
        let options = if purpose == Purpose::RiskLevel {
            self.risk_values()
                .into_iter()
                .map(|(level, value)| PropertyOption {
                    label: risk_label(level).to_owned(),
                    value: value.to_owned(),
                    hidden: false,
                })
                .collect()
        } else {
            Vec::new()
        };
        PropertyDefinition {
            name: name.to_owned(),
            label: label.to_owned(),
            property_type,
            field_type,
            options,
            has_unique_value: false,
            read_only_value: false,
            calculated: false,
            archived: false,
        }
    }

    /// Checks the mapping against each object type's property definitions (those the
    /// portal has; missing mapped properties count as the ones hubscore would create) and
    /// returns every problem, not just the first. Validation of the score and risk-level
    /// targets, writability and double use is `domain`'s; the rest is checked here.
    pub fn validate(
        &self,
        definitions: &BTreeMap<TargetObject, Vec<PropertyDefinition>>,
    ) -> Result<(), Vec<MappingProblem>> {
        let mut problems = Vec::new();
        let mut names_ok = true;
        for purpose in Purpose::ALL {
            if let Some(name) = self.properties.of(purpose)
                && !valid_property_name(name)
            {
                names_ok = false;
                problems.push(MappingProblem::ours(
                    None,
                    "invalid_property_name",
                    json!({ "purpose": purpose, "property": name }),
                    format!(
                        "{name:?} ({}) is not a valid HubSpot property name: use a-z, 0-9 and _, starting with a letter",
                        purpose.as_str()
                    ),
                ));
            }
        }
        for a in &self.attributes {
            if !valid_property_name(&a.property) {
                names_ok = false;
                problems.push(MappingProblem::ours(
                    Some(a.object_type),
                    "invalid_property_name",
                    json!({ "attribute": a.attribute, "property": a.property }),
                    format!(
                        "{:?} (attribute {:?}) is not a valid HubSpot property name: use a-z, 0-9 and _, starting with a letter",
                        a.property, a.attribute
                    ),
                ));
            }
            if self.enabled && !self.object_types.contains(&a.object_type) {
                problems.push(MappingProblem::ours(
                    Some(a.object_type),
                    "object_type_not_written",
                    json!({ "attribute": a.attribute, "object_type": a.object_type }),
                    format!(
                        "attribute {:?} is written to {}, which object_types leaves out",
                        a.attribute,
                        a.object_type.as_str()
                    ),
                ));
            }
        }
        let risk_values = self.risk_values();
        for (i, (level, value)) in risk_values.iter().enumerate() {
            if value.trim().is_empty() {
                problems.push(MappingProblem::ours(
                    None,
                    "blank_risk_level_value",
                    json!({ "level": level }),
                    format!("the value for risk level {level} is blank; HubSpot would clear the property"),
                ));
            } else if let Some((first, _)) = risk_values[..i].iter().find(|(_, v)| v == value) {
                problems.push(MappingProblem::ours(
                    None,
                    "duplicate_risk_level_value",
                    json!({ "value": value, "first": first, "second": level }),
                    format!("risk levels {first} and {level} are both written as {value:?}"),
                ));
            }
        }
        if self.enabled && self.object_types.is_empty() {
            problems.push(MappingProblem::ours(
                None,
                "no_object_types",
                json!({}),
                "an enabled mapping needs at least one of contacts and companies".to_owned(),
            ));
        }
        if !names_ok {
            return Err(problems);
        }
        for target in self.targets() {
            let existing = definitions.get(&target).map(Vec::as_slice).unwrap_or(&[]);
            let mut defs: Vec<PropertyDefinition> = existing.to_vec();
            for purpose in Purpose::ALL {
                if let Some(name) = self.properties.of(purpose)
                    && !defs.iter().any(|d| d.name == name)
                {
                    defs.push(self.definition_to_create(purpose, name));
                }
            }
            self.validate_for(target, &defs, &mut problems);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn validate_for(
        &self,
        target: TargetObject,
        defs: &[PropertyDefinition],
        problems: &mut Vec<MappingProblem>,
    ) {
        let v = &self.risk_level_values;
        let mut attributes = Vec::new();
        for (purpose, attribute) in [
            (Purpose::ScoreUpdatedAt, SCORE_UPDATED_AT_FIELD),
            (Purpose::TopFactor, TOP_FACTOR_FIELD),
        ] {
            if let Some(name) = self.properties.of(purpose) {
                attributes.push(AttributeMapping {
                    property: name.to_owned(),
                    attribute: attribute.to_owned(),
                    direction: Direction::Outbound,
                });
            }
        }
        // The custom attributes: domain checks that their properties exist, take writes and
        // are not written twice (also not by a hubscore field).
        for a in self.attributes_of(target) {
            attributes.push(AttributeMapping {
                property: a.property.clone(),
                attribute: a.attribute.clone(),
                direction: Direction::Outbound,
            });
        }
        let config = MappingConfig {
            object_type: target.domain(),
            external_id_property: Some("hs_object_id".to_owned()),
            attributes,
            filters: Vec::new(),
            score_property: self.properties.score.clone(),
            risk_level_property: self.properties.risk_level.clone(),
            risk_level_values: RiskLevelValues {
                green: v.healthy.clone(),
                yellow: v.at_risk.clone(),
                red: v.critical.clone(),
            },
        };
        if let Err(invalid) = config.validate(defs) {
            for error in invalid.errors {
                // Blank and duplicate risk values are reported once above, with "none".
                if matches!(
                    error,
                    domain::custom::MappingConfigError::BlankRiskLevelValue { .. }
                        | domain::custom::MappingConfigError::DuplicateRiskLevelValue { .. }
                ) {
                    continue;
                }
                // The two hubscore fields stand in as attributes under names of their own;
                // a custom attribute sharing one is no duplicate.
                if let domain::custom::MappingConfigError::DuplicateAttribute { attribute } = &error
                    && [SCORE_UPDATED_AT_FIELD, TOP_FACTOR_FIELD].contains(&attribute.as_str())
                    && self
                        .attributes_of(target)
                        .filter(|a| &a.attribute == attribute)
                        .count()
                        < 2
                {
                    continue;
                }
                let problem = MappingProblem {
                    object_type: Some(target),
                    message: error.to_string(),
                    detail: serde_json::to_value(&error).unwrap_or(Value::Null),
                };
                // domain names a duplicate at each repetition; once is enough here.
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
        }
        // The two fields domain has no target for: their types, and the "none" option.
        for purpose in [Purpose::ScoreUpdatedAt, Purpose::TopFactor] {
            let Some(name) = self.properties.of(purpose) else {
                continue;
            };
            if let Some(def) = defs.iter().find(|d| d.name == name)
                && !def.archived
                && !purpose.accepted_types().contains(&def.property_type)
            {
                let expected: Vec<&str> = purpose
                    .accepted_types()
                    .iter()
                    .map(PropertyType::as_str)
                    .collect();
                problems.push(MappingProblem::ours(
                    Some(target),
                    "wrong_property_type",
                    json!({ "property": name, "purpose": purpose, "expected": expected, "found": def.property_type.as_str() }),
                    format!(
                        "property {name:?} has type {:?}; {} needs one of {expected:?}",
                        def.property_type.as_str(),
                        purpose.as_str()
                    ),
                ));
            }
        }
        if let Some(name) = self.properties.risk_level.as_deref()
            && let Some(def) = defs.iter().find(|d| d.name == name)
            && def.property_type == PropertyType::Enumeration
            && !v.none.trim().is_empty()
            && !def.options.iter().any(|o| o.value == v.none)
        {
            problems.push(MappingProblem::ours(
                Some(target),
                "option_not_in_enumeration",
                json!({ "property": name, "value": v.none }),
                format!("{:?} is not an option of {name:?}", v.none),
            ));
        }
    }

    /// The value to write for a risk level.
    pub fn risk_value(&self, level: RiskLevel) -> &str {
        let v = &self.risk_level_values;
        match level {
            RiskLevel::Healthy => &v.healthy,
            RiskLevel::AtRisk => &v.at_risk,
            RiskLevel::Critical => &v.critical,
            RiskLevel::None => &v.none,
        }
    }
}

fn risk_label(level: &str) -> &'static str {
    match level {
        "healthy" => "Healthy",
        "at_risk" => "At risk",
        "critical" => "Critical",
        _ => "No score",
    }
}

/// The name the score's update time stands under when domain validates the mapping.
const SCORE_UPDATED_AT_FIELD: &str = "score_updated_at";
/// The name the top factor stands under when domain validates the mapping.
const TOP_FACTOR_FIELD: &str = "top_factor";

/// An attribute whose property is ready: its values are rendered with `conversion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyAttribute {
    /// The custom attribute.
    pub attribute: String,
    /// The HubSpot property.
    pub property: String,
    /// How values become the property's strings.
    pub conversion: Conversion,
}

/// Renders a record's custom attribute values (domain's JSON form) for the ready
/// attributes: property -> value, and what could not be rendered. An attribute the record
/// has no value for is left out (its property is left as it is in HubSpot).
pub fn render_attributes(
    ready: &[ReadyAttribute],
    values: &Value,
) -> (BTreeMap<String, String>, Vec<OutboundError>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for a in ready {
        let Some(raw) = values.get(&a.attribute) else {
            continue;
        };
        let value = match serde_json::from_value::<AttributeValue>(raw.clone()) {
            // A multi-select arrives as one `;`-joined string (as HubSpot sends them).
            Ok(AttributeValue::Text(text))
                if matches!(a.conversion, Conversion::Enumeration { multiple: true, .. }) =>
            {
                AttributeValue::Options(text.split(';').map(str::to_owned).collect())
            }
            Ok(value) => value,
            Err(_) => continue,
        };
        match domain::outbound::render_value(&a.property, &value, &a.conversion) {
            Ok(rendered) => {
                out.insert(a.property.clone(), rendered);
            }
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

/// A customer's risk level as stored and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskLevel {
    /// Healthy.
    Healthy,
    /// At risk.
    AtRisk,
    /// Critical.
    Critical,
    /// No score.
    None,
}

impl RiskLevel {
    /// From the contract; unspecified counts as no score.
    pub fn from_proto(level: contracts::v1::RiskLevel) -> RiskLevel {
        use contracts::v1::RiskLevel as P;
        match level {
            P::Healthy => RiskLevel::Healthy,
            P::AtRisk => RiskLevel::AtRisk,
            P::Critical => RiskLevel::Critical,
            P::None | P::Unspecified => RiskLevel::None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Healthy => "healthy",
            RiskLevel::AtRisk => "at_risk",
            RiskLevel::Critical => "critical",
            RiskLevel::None => "none",
        }
    }

    /// From the stored name.
    pub fn parse(value: &str) -> RiskLevel {
        match value {
            "healthy" => RiskLevel::Healthy,
            "at_risk" => RiskLevel::AtRisk,
            "critical" => RiskLevel::Critical,
            _ => RiskLevel::None,
        }
    }
}

/// The score of one record, as the flusher renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreValues {
    /// 0-100, or none (N/A).
    pub score: Option<u8>,
    /// Its risk level.
    pub risk_level: RiskLevel,
    /// The factor that moved it most; empty when none.
    pub top_factor: String,
    /// When it was computed.
    pub computed_at: DateTime<Utc>,
}

/// The properties of one record to write, by purpose.
pub type Rendered = BTreeMap<Purpose, String>;

/// Renders a score into the value of each mapped purpose. An absent score clears the
/// score property (HubSpot's empty string); the risk level of N/A is the `none` option.
pub fn render(mapping: &WritebackMapping, values: &ScoreValues) -> Rendered {
    let mut out = BTreeMap::new();
    for purpose in Purpose::ALL {
        if mapping.properties.of(purpose).is_none() {
            continue;
        }
        let value = match purpose {
            Purpose::Score => values
                .score
                .and_then(domain::outbound::Score::new)
                .map(domain::outbound::render_score)
                .unwrap_or_default(),
            Purpose::RiskLevel => mapping.risk_value(values.risk_level).to_owned(),
            Purpose::ScoreUpdatedAt => domain::parse::format_datetime(values.computed_at),
            Purpose::TopFactor => values.top_factor.clone(),
        };
        out.insert(purpose, value);
    }
    out
}

/// What of `wanted` must be sent given what was `written` last (property name -> value):
/// the purposes whose value differs. The update time alone never makes a record differ; it
/// goes along whenever something else does.
pub fn changed(
    mapping: &WritebackMapping,
    wanted: &Rendered,
    written: &BTreeMap<String, String>,
    force: bool,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (purpose, value) in wanted {
        let Some(property) = mapping.properties.of(*purpose) else {
            continue;
        };
        if *purpose == Purpose::ScoreUpdatedAt {
            continue;
        }
        if force || written.get(property) != Some(value) {
            out.insert(property.to_owned(), value.clone());
        }
    }
    if !out.is_empty()
        && let (Some(property), Some(value)) = (
            mapping.properties.of(Purpose::ScoreUpdatedAt),
            wanted.get(&Purpose::ScoreUpdatedAt),
        )
    {
        out.insert(property.to_owned(), value.clone());
    }
    out
}

/// `domain`'s definition of a HubSpot property as the client returned it.
pub fn to_definition(p: &hubspot_client::Property) -> PropertyDefinition {
    PropertyDefinition {
        name: p.name.clone(),
        label: p.label.clone(),
        property_type: PropertyType::from_hubspot(&p.property_type),
        field_type: FieldType::from_hubspot(&p.field_type),
        options: p
            .options
            .iter()
            .map(|o| PropertyOption {
                label: o.label.clone(),
                value: o.value.clone(),
                hidden: o.hidden,
            })
            .collect(),
        has_unique_value: p.has_unique_value.unwrap_or(false),
        read_only_value: p
            .modification_metadata
            .as_ref()
            .is_some_and(|m| m.read_only_value),
        calculated: p.calculated.unwrap_or(false),
        archived: p.archived.unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
    }

    fn values(score: Option<u8>, level: RiskLevel) -> ScoreValues {
        ScoreValues {
            score,
            risk_level: level,
            top_factor: "deal_momentum".into(),
            computed_at: at(),
        }
    }

    #[test]
    fn the_default_mapping_validates_against_a_portal_without_the_properties() {
        let mapping = WritebackMapping::default();
        assert_eq!(mapping.validate(&BTreeMap::new()), Ok(()));
    }

    #[test]
    fn an_existing_property_of_the_wrong_type_is_reported_per_object_type() {
        let mapping = WritebackMapping::default();
        let mut bool_score = mapping.definition_to_create(Purpose::Score, "hubscore_health_score");
        bool_score.property_type = PropertyType::Bool;
        bool_score.field_type = FieldType::BooleanCheckbox;
        let definitions = BTreeMap::from([(TargetObject::Companies, vec![bool_score])]);
        let problems = mapping.validate(&definitions).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].object_type, Some(TargetObject::Companies));
        assert_eq!(problems[0].detail["error"], "wrong_property_type");
        assert_eq!(problems[0].detail["property"], "hubscore_health_score");
    }

    fn text_property(name: &str) -> PropertyDefinition {
        PropertyDefinition {
            name: name.into(),
            label: name.into(),
            property_type: PropertyType::String,
            field_type: FieldType::Text,
            options: Vec::new(),
            has_unique_value: false,
            read_only_value: false,
            calculated: false,
            archived: false,
        }
    }

    #[test]
    fn an_attribute_may_share_the_name_of_a_hubscore_field_but_not_another_attribute() {
        let mut mapping = WritebackMapping::default();
        mapping.attributes.push(OutboundAttribute {
            object_type: TargetObject::Contacts,
            attribute: "top_factor".into(),
            property: "their_top_factor".into(),
        });
        let definitions = BTreeMap::from([(
            TargetObject::Contacts,
            vec![text_property("their_top_factor"), text_property("other")],
        )]);
        assert_eq!(mapping.validate(&definitions), Ok(()));
        mapping.attributes.push(OutboundAttribute {
            object_type: TargetObject::Contacts,
            attribute: "top_factor".into(),
            property: "other".into(),
        });
        let problems = mapping.validate(&definitions).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].detail["error"], "duplicate_attribute");
    }

    #[test]
    fn attribute_values_render_by_the_property_type_and_misfits_are_reported() {
        let ready = [
            ReadyAttribute {
                attribute: "plans".into(),
                property: "plans".into(),
                conversion: Conversion::Enumeration {
                    options: vec!["a".into(), "b".into()],
                    multiple: true,
                },
            },
            ReadyAttribute {
                attribute: "seats".into(),
                property: "seats".into(),
                conversion: Conversion::Number,
            },
        ];
        let values = json!({
            "plans": {"type": "text", "value": "a;b"},
            "seats": {"type": "bool", "value": true},
            "unmapped": {"type": "text", "value": "x"},
        });
        let (rendered, errors) = render_attributes(&ready, &values);
        assert_eq!(
            rendered,
            BTreeMap::from([("plans".to_owned(), "a;b".to_owned())])
        );
        assert!(
            matches!(&errors[..], [OutboundError::TypeMismatch { property, .. }] if property == "seats"),
            "{errors:?}"
        );
        let (rendered, errors) = render_attributes(&ready, &json!({}));
        assert!(rendered.is_empty() && errors.is_empty());
    }

    #[test]
    fn bad_names_and_risk_values_are_all_reported() {
        let mut mapping = WritebackMapping::default();
        mapping.properties.top_factor = Some("Top Factor".into());
        mapping.risk_level_values.none = "critical".into();
        mapping.risk_level_values.at_risk = " ".into();
        let problems = mapping.validate(&BTreeMap::new()).unwrap_err();
        let codes: Vec<&Value> = problems.iter().map(|p| &p.detail["error"]).collect();
        assert_eq!(
            codes,
            [
                "invalid_property_name",
                "blank_risk_level_value",
                "duplicate_risk_level_value"
            ]
        );
    }

    #[test]
    fn a_risk_enumeration_without_the_none_option_is_reported() {
        let mapping = WritebackMapping::default();
        let mut risk = mapping.definition_to_create(Purpose::RiskLevel, "hubscore_risk_level");
        risk.options.retain(|o| o.value != "none");
        let definitions = BTreeMap::from([(TargetObject::Contacts, vec![risk])]);
        let problems = mapping.validate(&definitions).unwrap_err();
        assert_eq!(problems[0].detail["error"], "option_not_in_enumeration");
    }

    #[test]
    fn scores_render_as_hubspot_strings_and_no_score_clears_the_score() {
        let mapping = WritebackMapping::default();
        let rendered = render(&mapping, &values(Some(87), RiskLevel::Healthy));
        assert_eq!(rendered[&Purpose::Score], "87");
        assert_eq!(rendered[&Purpose::RiskLevel], "healthy");
        assert_eq!(
            rendered[&Purpose::ScoreUpdatedAt],
            "2026-01-01T00:00:00.000Z"
        );
        let none = render(&mapping, &values(None, RiskLevel::None));
        assert_eq!(none[&Purpose::Score], "");
        assert_eq!(none[&Purpose::RiskLevel], "none");
    }

    #[test]
    fn only_differing_values_are_sent_and_the_time_only_along_with_them() {
        let mapping = WritebackMapping::default();
        let wanted = render(&mapping, &values(Some(87), RiskLevel::Healthy));
        let mut written: BTreeMap<String, String> = BTreeMap::new();
        for (purpose, value) in &wanted {
            written.insert(
                mapping
                    .properties
                    .of(*purpose)
                    .unwrap_or_default()
                    .to_owned(),
                value.clone(),
            );
        }
        written.insert("hubscore_score_updated_at".into(), "earlier".into());
        assert!(changed(&mapping, &wanted, &written, false).is_empty());
        assert_eq!(changed(&mapping, &wanted, &written, true).len(), 4);
        written.insert("hubscore_health_score".into(), "12".into());
        let diff = changed(&mapping, &wanted, &written, false);
        assert_eq!(
            diff.keys().collect::<Vec<_>>(),
            ["hubscore_health_score", "hubscore_score_updated_at"]
        );
    }
}
