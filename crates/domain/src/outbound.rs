//! The outbound mapping: a health score, its risk level and custom attributes become the
//! strings HubSpot property updates need (numbers as decimal strings, enumeration option
//! values, `true`/`false`, datetimes as ISO 8601 with milliseconds and `Z`, dates as
//! `YYYY-MM-DD`). Also home of the risk-level thresholds, which scoring and writeback
//! must agree on.
//!
//! It renders values; it does not decide whether HubSpot already holds them (writeback
//! compares with what it last wrote) and does not send anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::custom::{AttributeValue, Conversion, OutboundTarget, ValidMappingConfig};
use crate::parse;

/// A health score, 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Score(u8);

impl Score {
    /// Highest score.
    pub const MAX: Score = Score(100);

    /// The score, or none above 100.
    pub fn new(value: u8) -> Option<Score> {
        (value <= 100).then_some(Score(value))
    }

    /// Rounds a weighted sum (half away from zero, as `f64::round`) into 0..=100; NaN is 0.
    pub fn from_points(points: f64) -> Score {
        if points.is_nan() {
            return Score(0);
        }
        // The clamp makes the cast exact: the value is a whole number in 0..=100.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped to 0..=100 first"
        )]
        let value = points.round().clamp(0.0, 100.0) as u8;
        Score(value)
    }

    /// The value, 0..=100.
    pub fn value(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Score {
    type Error = ScoreOutOfRange;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Score::new(value).ok_or(ScoreOutOfRange(value))
    }
}

impl From<Score> for u8 {
    fn from(s: Score) -> u8 {
        s.0
    }
}

/// A score above 100 was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("score {0} is above 100")]
pub struct ScoreOutOfRange(pub u8);

/// How healthy a customer is, from its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Healthy.
    Green,
    /// At risk.
    Yellow,
    /// Critical.
    Red,
}

impl RiskLevel {
    /// `green`, `yellow` or `red`.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Green => "green",
            RiskLevel::Yellow => "yellow",
            RiskLevel::Red => "red",
        }
    }
}

impl std::fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the risk levels start. Default: 70-100 healthy, 40-69 at risk, 0-39 critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RiskThresholds {
    /// Lowest green score.
    pub healthy_min: u8,
    /// Lowest yellow score; below is red.
    pub at_risk_min: u8,
}

impl Default for RiskThresholds {
    fn default() -> Self {
        RiskThresholds {
            healthy_min: 70,
            at_risk_min: 40,
        }
    }
}

/// Thresholds that do not split 0..=100 into three ordered bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "risk thresholds must satisfy 0 < at_risk_min ({at_risk_min}) < healthy_min ({healthy_min}) <= 100"
)]
pub struct InvalidRiskThresholds {
    /// The given lowest green score.
    pub healthy_min: u8,
    /// The given lowest yellow score.
    pub at_risk_min: u8,
}

impl RiskThresholds {
    /// Checks that each band is non-empty.
    pub fn validate(self) -> Result<RiskThresholds, InvalidRiskThresholds> {
        if 0 < self.at_risk_min && self.at_risk_min < self.healthy_min && self.healthy_min <= 100 {
            Ok(self)
        } else {
            Err(InvalidRiskThresholds {
                healthy_min: self.healthy_min,
                at_risk_min: self.at_risk_min,
            })
        }
    }

    /// The risk level of a score.
    pub fn risk_level(&self, score: Score) -> RiskLevel {
        if score.value() >= self.healthy_min {
            RiskLevel::Green
        } else if score.value() >= self.at_risk_min {
            RiskLevel::Yellow
        } else {
            RiskLevel::Red
        }
    }
}

/// Why a value cannot be written to a property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "error")]
pub enum OutboundError {
    /// The value's kind does not fit the property's type.
    #[error("a {value_kind} value cannot be written to {property:?} ({conversion})")]
    TypeMismatch {
        /// The property.
        property: String,
        /// The value's kind.
        value_kind: String,
        /// The property's conversion.
        conversion: String,
    },
    /// Not one of the enumeration's options.
    #[error("{value:?} is not an option of {property:?}")]
    OptionNotInEnumeration {
        /// The property.
        property: String,
        /// The value.
        value: String,
    },
    /// Several options for a single-select property.
    #[error("{property:?} takes one option, got {count}")]
    MultipleOptionsForSingleSelect {
        /// The property.
        property: String,
        /// How many were given.
        count: usize,
    },
}

fn kind_of(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::Text(_) => "text",
        AttributeValue::Number(_) => "number",
        AttributeValue::Date(_) => "date",
        AttributeValue::Datetime(_) => "datetime",
        AttributeValue::Bool(_) => "bool",
        AttributeValue::Options(_) => "options",
    }
}

fn conversion_name(conversion: &Conversion) -> &'static str {
    match conversion {
        Conversion::Text => "text",
        Conversion::Number => "number",
        Conversion::Date => "date",
        Conversion::Datetime => "datetime",
        Conversion::Bool => "bool",
        Conversion::Enumeration { .. } => "enumeration",
    }
}

/// Renders a value as the string a property of this conversion accepts.
///
/// Text properties take any value in its canonical string form. Numbers take numbers,
/// booleans booleans, dates dates, datetimes datetimes or dates (midnight UTC).
/// Enumerations take option values (several, `;`-joined, only for checkbox fields), and
/// a text or boolean value that is one of the options.
pub fn render_value(
    property: &str,
    value: &AttributeValue,
    conversion: &Conversion,
) -> Result<String, OutboundError> {
    let mismatch = || OutboundError::TypeMismatch {
        property: property.into(),
        value_kind: kind_of(value).into(),
        conversion: conversion_name(conversion).into(),
    };
    match (conversion, value) {
        (Conversion::Text, AttributeValue::Text(s)) => Ok(s.clone()),
        (Conversion::Text, AttributeValue::Options(o)) => Ok(o.join(";")),
        (Conversion::Text | Conversion::Number, AttributeValue::Number(n)) => Ok(n.to_string()),
        (Conversion::Text | Conversion::Bool, AttributeValue::Bool(b)) => {
            Ok(parse::format_bool(*b).to_owned())
        }
        (Conversion::Text | Conversion::Date, AttributeValue::Date(d)) => {
            Ok(parse::format_date(*d))
        }
        (Conversion::Datetime, AttributeValue::Date(d)) => {
            Ok(parse::format_datetime(parse::midnight_utc(*d)))
        }
        (Conversion::Text | Conversion::Datetime, AttributeValue::Datetime(t)) => {
            Ok(parse::format_datetime(*t))
        }
        (Conversion::Enumeration { options, multiple }, value) => {
            let chosen: Vec<&str> = match value {
                AttributeValue::Options(o) => o.iter().map(String::as_str).collect(),
                AttributeValue::Text(s) => vec![s.as_str()],
                AttributeValue::Bool(b) => vec![parse::format_bool(*b)],
                _ => return Err(mismatch()),
            };
            if !multiple && chosen.len() > 1 {
                return Err(OutboundError::MultipleOptionsForSingleSelect {
                    property: property.into(),
                    count: chosen.len(),
                });
            }
            if let Some(bad) = chosen.iter().find(|v| !options.iter().any(|o| o == *v)) {
                return Err(OutboundError::OptionNotInEnumeration {
                    property: property.into(),
                    value: (*bad).to_owned(),
                });
            }
            Ok(chosen.join(";"))
        }
        _ => Err(mismatch()),
    }
}

/// Renders a score for the score property: the whole number as a string (`"87"`).
pub fn render_score(score: Score) -> String {
    score.value().to_string()
}

/// What writeback wants to put on one HubSpot record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundUpdate {
    /// The score; `None` (no score yet, "N/A") clears the property.
    pub score: Option<Score>,
    /// The risk level; `None` clears the property.
    pub risk_level: Option<RiskLevel>,
    /// Custom attribute values by attribute name; outbound attributes missing here are
    /// left untouched in HubSpot.
    pub attributes: BTreeMap<String, AttributeValue>,
}

impl ValidMappingConfig {
    /// The HubSpot property values for an update, by property name. An empty string
    /// clears a property (HubSpot's convention). Reports every value that cannot be
    /// written, not just the first.
    pub fn outbound_properties(
        &self,
        update: &OutboundUpdate,
    ) -> Result<BTreeMap<String, String>, Vec<OutboundError>> {
        let mut properties = BTreeMap::new();
        let mut errors = Vec::new();
        if let Some(OutboundTarget { property, .. }) = &self.score_target {
            properties.insert(
                property.clone(),
                update.score.map(render_score).unwrap_or_default(),
            );
        }
        if let Some(OutboundTarget { property, .. }) = &self.risk_level_target {
            let value = update
                .risk_level
                .map(|level| self.risk_level_values.value(level).to_owned())
                .unwrap_or_default();
            properties.insert(property.clone(), value);
        }
        for a in self.attributes.iter().filter(|a| a.direction.writes()) {
            let Some(value) = update.attributes.get(&a.attribute) else {
                continue;
            };
            match render_value(&a.property, value, &a.conversion) {
                Ok(s) => {
                    properties.insert(a.property.clone(), s);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(properties)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;
    use crate::parse::DecimalNumber;

    fn score(v: u8) -> Score {
        Score::new(v).unwrap_or(Score::MAX)
    }

    #[test]
    fn default_thresholds_split_scores_into_the_documented_bands() {
        let t = RiskThresholds::default();
        let level = |v| t.risk_level(score(v));
        assert_eq!(
            [
                level(100),
                level(70),
                level(69),
                level(40),
                level(39),
                level(0)
            ],
            [
                RiskLevel::Green,
                RiskLevel::Green,
                RiskLevel::Yellow,
                RiskLevel::Yellow,
                RiskLevel::Red,
                RiskLevel::Red
            ]
        );
    }

    #[test]
    fn thresholds_that_leave_a_band_empty_are_refused() {
        for (healthy_min, at_risk_min) in [(40, 40), (30, 40), (101, 40), (70, 0)] {
            let t = RiskThresholds {
                healthy_min,
                at_risk_min,
            };
            assert!(t.validate().is_err(), "{t:?}");
        }
        assert!(RiskThresholds::default().validate().is_ok());
    }

    #[test]
    fn scores_round_and_stay_within_zero_to_a_hundred() {
        assert_eq!(Score::from_points(86.5).value(), 87);
        assert_eq!(Score::from_points(-3.0).value(), 0);
        assert_eq!(Score::from_points(140.0).value(), 100);
        assert_eq!(Score::from_points(f64::NAN).value(), 0);
        assert_eq!(Score::new(101), None);
        assert_eq!(render_score(score(87)), "87");
    }

    #[test]
    fn values_render_in_the_format_each_property_type_needs() {
        let n = DecimalNumber::new(-1250, 2);
        let d = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default();
        let t = Utc
            .timestamp_millis_opt(1_772_323_200_123)
            .single()
            .unwrap_or_default();
        let enumeration = Conversion::Enumeration {
            options: vec!["a".into(), "b".into(), "true".into()],
            multiple: true,
        };
        let cases = [
            (AttributeValue::Number(n), Conversion::Number, "-12.5"),
            (AttributeValue::Bool(false), Conversion::Bool, "false"),
            (AttributeValue::Date(d), Conversion::Date, "2026-03-01"),
            (
                AttributeValue::Date(d),
                Conversion::Datetime,
                "2026-03-01T00:00:00.000Z",
            ),
            (
                AttributeValue::Datetime(t),
                Conversion::Datetime,
                "2026-03-01T00:00:00.123Z",
            ),
            (
                AttributeValue::Options(vec!["a".into(), "b".into()]),
                enumeration.clone(),
                "a;b",
            ),
            (AttributeValue::Bool(true), enumeration, "true"),
            (AttributeValue::Number(n), Conversion::Text, "-12.5"),
        ];
        for (value, conversion, want) in cases {
            assert_eq!(
                render_value("p", &value, &conversion).as_deref(),
                Ok(want),
                "{value:?} as {conversion:?}"
            );
        }
    }

    #[test]
    fn values_that_do_not_fit_the_property_are_refused_with_the_reason() {
        let single = Conversion::Enumeration {
            options: vec!["a".into(), "b".into()],
            multiple: false,
        };
        assert!(matches!(
            render_value("p", &AttributeValue::Text("x".into()), &Conversion::Number),
            Err(OutboundError::TypeMismatch { .. })
        ));
        assert!(matches!(
            render_value("p", &AttributeValue::Text("c".into()), &single),
            Err(OutboundError::OptionNotInEnumeration { value, .. }) if value == "c"
        ));
        assert!(matches!(
            render_value(
                "p",
                &AttributeValue::Options(vec!["a".into(), "b".into()]),
                &single
            ),
            Err(OutboundError::MultipleOptionsForSingleSelect { count: 2, .. })
        ));
        let t = Utc.timestamp_opt(0, 0).single().unwrap_or_default();
        assert!(matches!(
            render_value("p", &AttributeValue::Datetime(t), &Conversion::Date),
            Err(OutboundError::TypeMismatch { .. })
        ));
    }
}
