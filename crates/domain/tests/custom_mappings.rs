//! Custom mapping configs: each way a config can be wrong is reported precisely, a valid
//! config reads attributes, filters records and renders outbound values.

use std::collections::BTreeMap;

use domain::custom::{
    AttributeMapping, AttributeValue, Conversion, Direction, FieldType, FilterOperator,
    MappingConfig, MappingConfigError, PropertyDefinition, PropertyOption, PropertyType,
    RecordFilter, RiskLevelValues, ValidMappingConfig, ValueCount,
};
use domain::ids::ObjectType;
use domain::mapping::{HubSpotRecord, MappingWarning, SkipReason};
use domain::outbound::{OutboundError, OutboundUpdate, RiskLevel, Score};
use domain::parse::DecimalNumber;

fn def(name: &str, property_type: PropertyType, field_type: FieldType) -> PropertyDefinition {
    PropertyDefinition {
        name: name.into(),
        label: name.into(),
        property_type,
        field_type,
        options: vec![],
        has_unique_value: false,
        read_only_value: false,
        calculated: false,
        archived: false,
    }
}

fn options(d: PropertyDefinition, values: &[&str]) -> PropertyDefinition {
    PropertyDefinition {
        options: values
            .iter()
            .map(|v| PropertyOption {
                label: v.to_uppercase(),
                value: (*v).into(),
                hidden: false,
            })
            .collect(),
        ..d
    }
}

/// A company portal's properties, as the properties API would describe them.
fn definitions() -> Vec<PropertyDefinition> {
    vec![
        def("hs_object_id", PropertyType::Number, FieldType::Number),
        def("name", PropertyType::String, FieldType::Text),
        options(
            def(
                "lifecyclestage",
                PropertyType::Enumeration,
                FieldType::Radio,
            ),
            &["lead", "opportunity", "customer"],
        ),
        options(
            def("tier", PropertyType::Enumeration, FieldType::Select),
            &["gold", "silver"],
        ),
        options(
            def("regions", PropertyType::Enumeration, FieldType::Checkbox),
            &["emea", "apac", "amer"],
        ),
        def("seats", PropertyType::Number, FieldType::Number),
        def("renewal_date", PropertyType::Date, FieldType::Date),
        def("last_review_at", PropertyType::Datetime, FieldType::Date),
        def(
            "is_strategic",
            PropertyType::Bool,
            FieldType::BooleanCheckbox,
        ),
        PropertyDefinition {
            has_unique_value: true,
            ..def("erp_id", PropertyType::String, FieldType::Text)
        },
        PropertyDefinition {
            read_only_value: true,
            ..def(
                "hs_num_child_companies",
                PropertyType::Number,
                FieldType::Number,
            )
        },
        PropertyDefinition {
            calculated: true,
            ..def(
                "total_revenue",
                PropertyType::Number,
                FieldType::CalculationEquation,
            )
        },
        PropertyDefinition {
            archived: true,
            ..def("old_field", PropertyType::String, FieldType::Text)
        },
        def(
            "attachment",
            PropertyType::Unknown("object_coordinates".into()),
            FieldType::Text,
        ),
        def("health_score", PropertyType::Number, FieldType::Number),
        options(
            def("health_risk", PropertyType::Enumeration, FieldType::Select),
            &["green", "yellow", "red"],
        ),
        def("health_note", PropertyType::String, FieldType::Text),
    ]
}

fn attr(property: &str, attribute: &str, direction: Direction) -> AttributeMapping {
    AttributeMapping {
        property: property.into(),
        attribute: attribute.into(),
        direction,
    }
}

fn filter(property: &str, operator: FilterOperator, values: &[&str]) -> RecordFilter {
    RecordFilter {
        property: property.into(),
        operator,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

fn valid_config() -> MappingConfig {
    MappingConfig {
        object_type: ObjectType::Company,
        external_id_property: Some("erp_id".into()),
        attributes: vec![
            attr("tier", "tier", Direction::Both),
            attr("regions", "regions", Direction::Inbound),
            attr("seats", "seats", Direction::Inbound),
            attr("renewal_date", "renewal_date", Direction::Both),
            attr("last_review_at", "last_review_at", Direction::Inbound),
            attr("is_strategic", "strategic", Direction::Inbound),
            attr("health_note", "note", Direction::Outbound),
        ],
        filters: vec![filter("lifecyclestage", FilterOperator::Eq, &["customer"])],
        score_property: Some("health_score".into()),
        risk_level_property: Some("health_risk".into()),
        risk_level_values: RiskLevelValues::default(),
    }
}

fn validated() -> ValidMappingConfig {
    match valid_config().validate(&definitions()) {
        Ok(v) => v,
        Err(e) => panic!("the reference config must be valid: {e}"),
    }
}

/// Validates `config` and returns its errors (empty when valid).
fn errors_of(config: &MappingConfig) -> Vec<MappingConfigError> {
    config
        .validate(&definitions())
        .err()
        .map(|e| e.errors)
        .unwrap_or_default()
}

/// The reference config changed by `change`.
fn with(change: impl FnOnce(&mut MappingConfig)) -> MappingConfig {
    let mut c = valid_config();
    change(&mut c);
    c
}

#[test]
fn the_reference_config_is_valid_and_resolves_conversions_by_type() {
    let v = validated();
    let conv: BTreeMap<&str, &Conversion> = v
        .attributes
        .iter()
        .map(|a| (a.attribute.as_str(), &a.conversion))
        .collect();
    assert_eq!(conv["seats"], &Conversion::Number);
    assert_eq!(conv["renewal_date"], &Conversion::Date);
    assert_eq!(conv["last_review_at"], &Conversion::Datetime);
    assert_eq!(conv["strategic"], &Conversion::Bool);
    assert_eq!(conv["note"], &Conversion::Text);
    assert_eq!(
        conv["regions"],
        &Conversion::Enumeration {
            options: vec!["emea".into(), "apac".into(), "amer".into()],
            multiple: true
        }
    );
}

#[test]
fn a_missing_or_blank_external_id_property_is_reported() {
    assert_eq!(
        errors_of(&with(|c| c.external_id_property = None)),
        vec![MappingConfigError::NoExternalIdProperty]
    );
    assert_eq!(
        errors_of(&with(|c| c.external_id_property = Some("  ".into()))),
        vec![MappingConfigError::NoExternalIdProperty]
    );
}

#[test]
fn an_external_id_property_without_unique_values_is_reported() {
    assert_eq!(
        errors_of(&with(|c| c.external_id_property = Some("name".into()))),
        vec![MappingConfigError::ExternalIdNotUnique {
            name: "name".into()
        }]
    );
}

#[test]
fn hs_object_id_always_and_email_for_contacts_serve_as_external_id() {
    assert!(
        errors_of(&with(
            |c| c.external_id_property = Some("hs_object_id".into())
        ))
        .is_empty()
    );
    // Companies have no e-mail identity; the property does not even exist here.
    assert_eq!(
        errors_of(&with(|c| c.external_id_property = Some("email".into()))),
        vec![MappingConfigError::UnknownProperty {
            name: "email".into()
        }]
    );
    let contact = MappingConfig {
        object_type: ObjectType::Contact,
        external_id_property: Some("email".into()),
        attributes: vec![],
        filters: vec![],
        score_property: None,
        risk_level_property: None,
        risk_level_values: RiskLevelValues::default(),
    };
    assert!(contact.validate(&[]).is_ok());
}

#[test]
fn unknown_properties_are_reported_wherever_they_are_used() {
    let config = with(|c| {
        c.external_id_property = Some("sap_id".into());
        c.attributes.push(attr("nope", "nope", Direction::Inbound));
        c.filters
            .push(filter("ghost", FilterOperator::HasProperty, &[]));
        c.score_property = Some("score_x".into());
    });
    let names: Vec<String> = errors_of(&config)
        .into_iter()
        .map(|e| match e {
            MappingConfigError::UnknownProperty { name } => name,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(names, vec!["sap_id", "nope", "ghost", "score_x"]);
}

#[test]
fn archived_and_unsupported_properties_are_reported() {
    let config = with(|c| {
        c.attributes
            .push(attr("old_field", "old", Direction::Inbound));
        c.attributes
            .push(attr("attachment", "attachment", Direction::Inbound));
    });
    assert_eq!(
        errors_of(&config),
        vec![
            MappingConfigError::ArchivedProperty {
                name: "old_field".into()
            },
            MappingConfigError::UnsupportedPropertyType {
                name: "attachment".into(),
                property_type: "object_coordinates".into()
            },
        ]
    );
}

#[test]
fn bad_and_duplicate_attribute_names_are_reported() {
    let config = with(|c| {
        c.attributes.push(attr("name", "", Direction::Inbound));
        c.attributes
            .push(attr("name", "Company Name", Direction::Inbound));
        c.attributes
            .push(attr("name", "9lives", Direction::Inbound));
        c.attributes
            .push(attr("name", &"a".repeat(65), Direction::Inbound));
        c.attributes.push(attr("name", "tier", Direction::Inbound));
    });
    assert_eq!(
        errors_of(&config),
        vec![
            MappingConfigError::InvalidAttributeName {
                attribute: String::new()
            },
            MappingConfigError::InvalidAttributeName {
                attribute: "Company Name".into()
            },
            MappingConfigError::InvalidAttributeName {
                attribute: "9lives".into()
            },
            MappingConfigError::InvalidAttributeName {
                attribute: "a".repeat(65)
            },
            MappingConfigError::DuplicateAttribute {
                attribute: "tier".into()
            },
        ]
    );
}

#[test]
fn writing_to_read_only_or_calculated_properties_is_not_allowed() {
    let config = with(|c| {
        c.attributes
            .push(attr("hs_num_child_companies", "children", Direction::Both));
        c.attributes
            .push(attr("total_revenue", "revenue", Direction::Outbound));
        // Reading them is fine.
        c.attributes
            .push(attr("total_revenue", "revenue_in", Direction::Inbound));
    });
    assert_eq!(
        errors_of(&config),
        vec![
            MappingConfigError::DirectionNotAllowed {
                property: "hs_num_child_companies".into(),
                direction: Direction::Both
            },
            MappingConfigError::DirectionNotAllowed {
                property: "total_revenue".into(),
                direction: Direction::Outbound
            },
        ]
    );
}

#[test]
fn a_read_only_score_or_risk_property_is_reported() {
    let config = with(|c| {
        c.score_property = Some("hs_num_child_companies".into());
        c.risk_level_property = Some("total_revenue".into());
    });
    assert_eq!(
        errors_of(&config),
        vec![
            MappingConfigError::DirectionNotAllowed {
                property: "hs_num_child_companies".into(),
                direction: Direction::Outbound
            },
            MappingConfigError::DirectionNotAllowed {
                property: "total_revenue".into(),
                direction: Direction::Outbound
            },
            MappingConfigError::WrongPropertyType {
                property: "total_revenue".into(),
                purpose: "risk level".into(),
                expected: vec!["enumeration".into(), "string".into()],
                found: "number".into()
            },
        ]
    );
}

#[test]
fn blank_or_shared_risk_level_values_are_reported() {
    // A string property accepts any text, so only these checks stand between a green
    // customer and a cleared (or indistinguishable) risk property in HubSpot.
    let config = with(|c| {
        c.risk_level_property = Some("health_note".into());
        c.attributes.retain(|a| a.property != "health_note");
        c.risk_level_values = RiskLevelValues {
            green: " ".into(),
            yellow: "watch".into(),
            red: "watch".into(),
        };
    });
    assert_eq!(
        errors_of(&config),
        vec![
            MappingConfigError::BlankRiskLevelValue {
                level: RiskLevel::Green
            },
            MappingConfigError::DuplicateRiskLevelValue {
                value: "watch".into(),
                first: RiskLevel::Yellow,
                second: RiskLevel::Red
            },
        ]
    );
    // Without a risk property the values are never written, so they are not checked.
    let unused = with(|c| {
        c.risk_level_property = None;
        c.risk_level_values.green = String::new();
    });
    assert!(errors_of(&unused).is_empty());
}

#[test]
fn a_between_filter_whose_bounds_are_reversed_is_reported() {
    let config = with(|c| {
        c.filters = vec![
            filter("seats", FilterOperator::Between, &["100", "9"]),
            filter(
                "renewal_date",
                FilterOperator::Between,
                &["2026-12-31", "1767225600000"],
            ),
            // Equal bounds match exactly one value: allowed.
            filter("seats", FilterOperator::Between, &["10", "10.0"]),
        ];
    });
    assert_eq!(
        errors_of(&config),
        vec![
            MappingConfigError::EmptyRange {
                property: "seats".into(),
                low: "100".into(),
                high: "9".into()
            },
            MappingConfigError::EmptyRange {
                property: "renewal_date".into(),
                low: "2026-12-31".into(),
                high: "1767225600000".into()
            },
        ]
    );
}

#[test]
fn a_property_written_by_two_mappings_is_reported() {
    let config = with(|c| {
        c.attributes
            .push(attr("health_score", "my_score", Direction::Outbound));
    });
    assert_eq!(
        errors_of(&config),
        vec![MappingConfigError::PropertyWrittenTwice {
            property: "health_score".into()
        }]
    );
}

#[test]
fn score_and_risk_properties_of_the_wrong_type_are_reported() {
    let config = with(|c| {
        c.score_property = Some("is_strategic".into());
        c.risk_level_property = Some("seats".into());
    });
    assert_eq!(
        errors_of(&config),
        vec![
            MappingConfigError::WrongPropertyType {
                property: "is_strategic".into(),
                purpose: "score".into(),
                expected: vec!["number".into(), "string".into()],
                found: "bool".into()
            },
            MappingConfigError::WrongPropertyType {
                property: "seats".into(),
                purpose: "risk level".into(),
                expected: vec!["enumeration".into(), "string".into()],
                found: "number".into()
            },
        ]
    );
}

#[test]
fn risk_level_values_missing_from_the_enumeration_are_reported() {
    let config = with(|c| {
        c.risk_level_values = RiskLevelValues {
            green: "healthy".into(),
            yellow: "yellow".into(),
            red: "critical".into(),
        };
    });
    assert_eq!(
        errors_of(&config),
        vec![
            MappingConfigError::OptionNotInEnumeration {
                property: "health_risk".into(),
                value: "healthy".into()
            },
            MappingConfigError::OptionNotInEnumeration {
                property: "health_risk".into(),
                value: "critical".into()
            },
        ]
    );
}

#[test]
fn operators_that_do_not_apply_to_the_property_type_are_reported() {
    let config = with(|c| {
        c.filters = vec![
            filter("lifecyclestage", FilterOperator::Gt, &["lead"]),
            filter("seats", FilterOperator::ContainsToken, &["1"]),
            filter("is_strategic", FilterOperator::Lt, &["true"]),
        ];
    });
    assert_eq!(
        errors_of(&config),
        vec![
            MappingConfigError::OperatorNotValidForType {
                property: "lifecyclestage".into(),
                operator: FilterOperator::Gt,
                property_type: "enumeration".into()
            },
            MappingConfigError::OperatorNotValidForType {
                property: "seats".into(),
                operator: FilterOperator::ContainsToken,
                property_type: "number".into()
            },
            MappingConfigError::OperatorNotValidForType {
                property: "is_strategic".into(),
                operator: FilterOperator::Lt,
                property_type: "bool".into()
            },
        ]
    );
}

#[test]
fn filters_with_the_wrong_number_of_values_are_reported() {
    let config = with(|c| {
        c.filters = vec![
            filter("name", FilterOperator::Eq, &[]),
            filter("seats", FilterOperator::Between, &["1"]),
            filter("name", FilterOperator::HasProperty, &["x"]),
            filter("tier", FilterOperator::In, &[]),
        ];
    });
    assert_eq!(
        errors_of(&config),
        vec![
            MappingConfigError::WrongValueCount {
                property: "name".into(),
                operator: FilterOperator::Eq,
                expected: ValueCount::One,
                found: 0
            },
            MappingConfigError::WrongValueCount {
                property: "seats".into(),
                operator: FilterOperator::Between,
                expected: ValueCount::Two,
                found: 1
            },
            MappingConfigError::WrongValueCount {
                property: "name".into(),
                operator: FilterOperator::HasProperty,
                expected: ValueCount::None,
                found: 1
            },
            MappingConfigError::WrongValueCount {
                property: "tier".into(),
                operator: FilterOperator::In,
                expected: ValueCount::AtLeastOne,
                found: 0
            },
        ]
    );
}

#[test]
fn filter_values_that_do_not_fit_the_property_are_reported() {
    let config = with(|c| {
        c.filters = vec![
            filter("lifecyclestage", FilterOperator::Eq, &["Customer"]),
            filter("seats", FilterOperator::Gte, &["ten"]),
            filter("renewal_date", FilterOperator::Lt, &["next year"]),
            filter("is_strategic", FilterOperator::Eq, &["yes"]),
            filter("tier", FilterOperator::In, &["gold", "bronze"]),
        ];
    });
    assert_eq!(
        errors_of(&config),
        vec![
            MappingConfigError::OptionNotInEnumeration {
                property: "lifecyclestage".into(),
                value: "Customer".into()
            },
            MappingConfigError::InvalidFilterValue {
                property: "seats".into(),
                value: "ten".into(),
                property_type: "number".into()
            },
            MappingConfigError::InvalidFilterValue {
                property: "renewal_date".into(),
                value: "next year".into(),
                property_type: "date".into()
            },
            MappingConfigError::InvalidFilterValue {
                property: "is_strategic".into(),
                value: "yes".into(),
                property_type: "bool".into()
            },
            MappingConfigError::OptionNotInEnumeration {
                property: "tier".into(),
                value: "bronze".into()
            },
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once_and_the_message_names_each() {
    let config = with(|c| {
        c.external_id_property = None;
        c.attributes.push(attr("nope", "tier", Direction::Inbound));
    });
    let err = match config.validate(&definitions()) {
        Err(e) => e,
        Ok(_) => panic!("config must be invalid"),
    };
    assert_eq!(
        err.errors,
        vec![
            MappingConfigError::NoExternalIdProperty,
            MappingConfigError::DuplicateAttribute {
                attribute: "tier".into()
            },
            MappingConfigError::UnknownProperty {
                name: "nope".into()
            },
        ]
    );
    let message = err.to_string();
    assert!(message.contains("no external-id property"), "{message}");
    assert!(
        message.contains("\"tier\" is mapped more than once"),
        "{message}"
    );
    assert!(message.contains("unknown property \"nope\""), "{message}");
}

#[test]
fn configs_round_trip_through_json_as_an_api_would_receive_them() {
    let json = r#"{
        "object_type": "company",
        "external_id_property": "erp_id",
        "attributes": [{"property": "tier", "attribute": "tier", "direction": "both"}],
        "filters": [{"property": "lifecyclestage", "operator": "EQ", "values": ["customer"]}]
    }"#;
    let config: MappingConfig = match serde_json::from_str(json) {
        Ok(c) => c,
        Err(e) => panic!("config JSON must parse: {e}"),
    };
    assert!(config.validate(&definitions()).is_ok());
    let errors = serde_json::to_value(errors_of(&with(|c| c.external_id_property = None)))
        .unwrap_or_default();
    assert_eq!(
        errors,
        serde_json::json!([{"error": "no_external_id_property"}])
    );
}

fn record(props: &[(&str, &str)]) -> HubSpotRecord {
    HubSpotRecord {
        id: "900".into(),
        properties: props
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect(),
        ..HubSpotRecord::default()
    }
}

#[test]
fn record_filters_decide_which_records_sync() {
    let v = validated();
    assert_eq!(
        v.check_filters(&record(&[("lifecyclestage", "customer")])),
        Ok(())
    );
    let filtered = SkipReason::FilteredOut {
        property: "lifecyclestage".into(),
    };
    assert_eq!(
        v.check_filters(&record(&[("lifecyclestage", "lead")])),
        Err(filtered.clone())
    );
    assert_eq!(v.check_filters(&record(&[])), Err(filtered));
}

#[test]
fn filter_operators_compare_by_the_property_type() {
    let defs = definitions();
    let check = |f: RecordFilter, props: &[(&str, &str)]| {
        let config = with(|c| c.filters = vec![f]);
        match config.validate(&defs) {
            Ok(v) => v.check_filters(&record(props)).is_ok(),
            Err(e) => panic!("filter must validate: {e}"),
        }
    };
    // Numbers compare by value, not as text ("9" < "10").
    assert!(check(
        filter("seats", FilterOperator::Lt, &["10"]),
        &[("seats", "9")]
    ));
    assert!(check(
        filter("seats", FilterOperator::Eq, &["10"]),
        &[("seats", "10.00")]
    ));
    assert!(check(
        filter("seats", FilterOperator::Between, &["5", "10"]),
        &[("seats", "10")]
    ));
    assert!(!check(
        filter("seats", FilterOperator::Gt, &["10"]),
        &[("seats", "abc")]
    ));
    // Dates accept any HubSpot format on either side.
    assert!(check(
        filter("renewal_date", FilterOperator::Gte, &["2026-01-01"]),
        &[("renewal_date", "1767225600000")]
    ));
    assert!(check(
        filter(
            "last_review_at",
            FilterOperator::Lt,
            &["2026-01-01T00:00:00Z"]
        ),
        &[("last_review_at", "2025-12-31T23:59:59.999Z")]
    ));
    // Text is case-insensitive.
    assert!(check(
        filter("name", FilterOperator::Eq, &["northwind"]),
        &[("name", "NorthWind")]
    ));
    assert!(check(
        filter("name", FilterOperator::ContainsToken, &["*wind*"]),
        &[("name", "Northwind")]
    ));
    assert!(check(
        filter("name", FilterOperator::NotContainsToken, &["acme"]),
        &[("name", "Northwind")]
    ));
    // Multi-select matches any of its values.
    assert!(check(
        filter("regions", FilterOperator::Eq, &["apac"]),
        &[("regions", "emea;apac")]
    ));
    assert!(check(
        filter("tier", FilterOperator::NotIn, &["gold"]),
        &[("tier", "silver")]
    ));
    assert!(check(
        filter("is_strategic", FilterOperator::Eq, &["true"]),
        &[("is_strategic", "TRUE")]
    ));
    // Presence.
    assert!(check(
        filter("name", FilterOperator::NotHasProperty, &[]),
        &[("name", " ")]
    ));
    assert!(!check(
        filter("name", FilterOperator::HasProperty, &[]),
        &[]
    ));
    assert!(check(filter("name", FilterOperator::Neq, &["x"]), &[]));
}

#[test]
fn inbound_attributes_convert_by_type_and_warn_about_bad_values() {
    let v = validated();
    let (values, warnings) = v.read_attributes(&record(&[
        ("tier", "platinum"),
        ("regions", "emea;amer"),
        ("seats", "12.50"),
        ("renewal_date", "2026-09-01"),
        ("last_review_at", "not a date"),
        ("is_strategic", "false"),
        ("health_note", "outbound only, never read"),
    ]));
    let mut want = BTreeMap::new();
    want.insert(
        "tier".to_owned(),
        AttributeValue::Options(vec!["platinum".into()]),
    );
    want.insert(
        "regions".to_owned(),
        AttributeValue::Options(vec!["emea".into(), "amer".into()]),
    );
    want.insert(
        "seats".to_owned(),
        AttributeValue::Number(DecimalNumber::new(125, 1)),
    );
    want.insert(
        "renewal_date".to_owned(),
        AttributeValue::Date(chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap_or_default()),
    );
    want.insert("strategic".to_owned(), AttributeValue::Bool(false));
    assert_eq!(values, want);
    assert_eq!(
        warnings,
        vec![
            MappingWarning::UnknownEnumValue {
                property: "tier".into(),
                value: "platinum".into()
            },
            MappingWarning::InvalidValue {
                property: "last_review_at".into(),
                value: "not a date".into(),
                error: domain::parse::ValueError::NotATimestamp
            },
        ]
    );
}

#[test]
fn sync_fetches_default_custom_filter_and_external_id_properties() {
    let props = validated().properties_to_fetch();
    for name in [
        "hs_object_id",
        "annualrevenue",
        "erp_id",
        "tier",
        "regions",
        "lifecyclestage",
    ] {
        assert!(
            props.iter().any(|p| p == name),
            "{name} missing from {props:?}"
        );
    }
    // Outbound-only properties are written, not read.
    assert!(!props.iter().any(|p| p == "health_note"));
}

#[test]
fn external_ids_come_from_the_chosen_property() {
    let v = validated();
    assert_eq!(
        v.external_id(&record(&[("erp_id", " E-17 ")])),
        Some("E-17".into())
    );
    assert_eq!(v.external_id(&record(&[])), None);
    let by_object_id = with(|c| c.external_id_property = Some("hs_object_id".into()));
    let v = match by_object_id.validate(&definitions()) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(v.external_id(&record(&[])), Some("900".into()));
}

#[test]
fn outbound_updates_render_score_risk_and_attributes_for_hubspot() {
    let v = validated();
    let mut attributes = BTreeMap::new();
    attributes.insert("tier".to_owned(), AttributeValue::Text("gold".into()));
    attributes.insert(
        "renewal_date".to_owned(),
        AttributeValue::Date(chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap_or_default()),
    );
    // An inbound-only attribute is never written.
    attributes.insert(
        "seats".to_owned(),
        AttributeValue::Number(DecimalNumber::from_integer(3)),
    );
    let update = OutboundUpdate {
        score: Score::new(87),
        risk_level: Some(RiskLevel::Green),
        attributes,
    };
    let mut want = BTreeMap::new();
    want.insert("health_score".to_owned(), "87".to_owned());
    want.insert("health_risk".to_owned(), "green".to_owned());
    want.insert("tier".to_owned(), "gold".to_owned());
    want.insert("renewal_date".to_owned(), "2026-09-01".to_owned());
    assert_eq!(v.outbound_properties(&update), Ok(want));

    let cleared = v.outbound_properties(&OutboundUpdate::default());
    let mut want = BTreeMap::new();
    want.insert("health_score".to_owned(), String::new());
    want.insert("health_risk".to_owned(), String::new());
    assert_eq!(cleared, Ok(want));

    let mut attributes = BTreeMap::new();
    attributes.insert("tier".to_owned(), AttributeValue::Text("bronze".into()));
    attributes.insert("note".to_owned(), AttributeValue::Bool(true));
    let bad = OutboundUpdate {
        attributes,
        ..OutboundUpdate::default()
    };
    assert_eq!(
        v.outbound_properties(&bad),
        Err(vec![OutboundError::OptionNotInEnumeration {
            property: "tier".into(),
            value: "bronze".into()
        }])
    );
}
