//! Property tests: the parsers are total and exact, formatting round-trips, no input makes
//! a mapper panic, and dedupe does not depend on input order.
//!
//! `rust_decimal` is the exact-decimal reference for money and decimals. Case counts are
//! kept moderate (256 by default, fewer for the mapper tests) so the suite runs in seconds.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use domain::custom::{
    AttributeMapping, Direction, FieldType, FilterOperator, MappingConfig, PropertyDefinition,
    PropertyOption, PropertyType, RecordFilter, RiskLevelValues,
};
use domain::dedupe::dedupe_by_email;
use domain::ids::{HubSpotObjectId, ObjectType};
use domain::mapping::{
    self, HubSpotOwner, HubSpotPipeline, HubSpotRecord, HubSpotStage, MappingOutcome,
};
use domain::parse::{self, DecimalNumber};
use domain::records::Customer;
use proptest::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

/// A plain decimal string: optional sign, 1-10 integer digits, optional fraction digits.
fn decimal_string(max_frac: usize) -> impl Strategy<Value = String> {
    decimal_string_with(10, max_frac)
}

/// A plain decimal string with up to `max_int` integer digits.
fn decimal_string_with(max_int: usize, max_frac: usize) -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(0u8..10, 1..=max_int),
        prop::option::of(prop::collection::vec(0u8..10, 1..=max_frac)),
    )
        .prop_map(|(neg, int, frac)| {
            let sign = if neg { "-" } else { "" };
            let int: String = int.iter().map(|d| char::from(b'0' + d)).collect();
            match frac {
                Some(f) => {
                    let f: String = f.iter().map(|d| char::from(b'0' + d)).collect();
                    format!("{sign}{int}.{f}")
                }
                None => format!("{sign}{int}"),
            }
        })
}

/// Exact midpoints between two cents (`12.345`, `-0.0050`): where half-even and half-up
/// differ, too rare in [`decimal_string`] to rely on.
fn midpoint_string() -> impl Strategy<Value = String> {
    (any::<bool>(), "[0-9]{1,10}", "[0-9]{2}", "0{0,3}").prop_map(|(neg, int, cents, zeros)| {
        let sign = if neg { "-" } else { "" };
        format!("{sign}{int}.{cents}5{zeros}")
    })
}

/// Strings that look a little like numbers and dates, to reach the parsers' edge cases.
fn numberish() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[-+0-9.,eE ]{0,24}",
        "[0-9]{0,40}",
        "[-0-9:TZ.+]{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn money_parsing_never_panics(s in numberish()) {
        let _ = parse::parse_money_cents(&s);
        let _ = parse::parse_count(&s);
        let _ = parse::parse_probability(&s);
        let _ = DecimalNumber::parse(&s);
    }

    #[test]
    fn money_parsing_agrees_with_an_exact_decimal_reference(
        // Up to 19 integer digits crosses i64::MAX cents (~9.2e16 units) both ways.
        s in prop_oneof![decimal_string_with(19, 8), midpoint_string()],
    ) {
        let reference = Decimal::from_str(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let rounded = reference.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven);
        let got = parse::parse_money_cents(&s);
        let Some(want_cents) = (rounded * Decimal::ONE_HUNDRED).to_i64() else {
            // Beyond what i64 cents hold: refused, never wrapped or saturated.
            prop_assert_eq!(got, Err(parse::ValueError::OutOfRange));
            return Ok(());
        };
        let got = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got.map(|r| r.value), Some(want_cents));
        prop_assert_eq!(got.map(|r| r.rounded), Some(rounded != reference));
        // Formatting the parsed cents gives back the (rounded) amount that was sent.
        let text = got.map(|r| parse::format_cents(r.value)).unwrap_or_default();
        let formatted = Decimal::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(formatted, rounded);
        prop_assert_eq!(parse::parse_money_cents(&text), Ok(got.map(|r| parse::Rounded { rounded: false, ..r })));
    }

    #[test]
    fn formatted_cents_parse_back_to_the_same_value(cents in any::<i64>()) {
        let text = parse::format_cents(cents);
        let back = parse::parse_money_cents(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.map(|r| (r.value, r.rounded)), Some((cents, false)));
        // And the reference reads the same amount.
        let reference = Decimal::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(reference * Decimal::ONE_HUNDRED, Decimal::from(cents));
    }

    #[test]
    fn decimal_numbers_print_as_the_reference_normalises_them(s in decimal_string(18)) {
        let reference = Decimal::from_str(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = if reference.is_zero() { "0".to_owned() } else { reference.normalize().to_string() };
        let got = DecimalNumber::parse(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got.map(|r| (r.value.to_string(), r.rounded)), Some((want.clone(), false)));
        // Printing and parsing again changes nothing.
        let again = DecimalNumber::parse(&want).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again.map(|r| r.value), got.map(|r| r.value));
    }

    #[test]
    fn decimal_numbers_order_as_the_reference_does(a in decimal_string(12), b in decimal_string(12)) {
        let ra = Decimal::from_str(&a).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let rb = Decimal::from_str(&b).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let da = DecimalNumber::parse(&a).ok().flatten().map(|r| r.value);
        let db = DecimalNumber::parse(&b).ok().flatten().map(|r| r.value);
        prop_assert_eq!(da.zip(db).map(|(x, y)| x.cmp(&y)), Some(ra.cmp(&rb)));
    }

    #[test]
    fn timestamp_parsing_never_panics(s in numberish()) {
        let _ = parse::parse_timestamp(&s);
        let _ = parse::parse_date(&s);
        let _ = parse::parse_bool(&s);
        let _ = parse::normalize_email(&s);
        let _ = parse::normalize_web_address(&s);
    }

    #[test]
    fn timestamps_round_trip_through_every_hubspot_format(
        // Years 0001 to 9999: what ISO 8601 prints with four digits.
        ms in -62_135_596_800_000i64..253_402_300_799_999,
    ) {
        let at = DateTime::<Utc>::from_timestamp_millis(ms)
            .ok_or_else(|| TestCaseError::fail("in range"))?;
        let iso = parse::format_datetime(at);
        prop_assert_eq!(parse::parse_timestamp(&iso), Ok(Some(at)));
        prop_assert_eq!(parse::parse_timestamp(&ms.to_string()), Ok(Some(at)));
        // Without milliseconds, the instant truncated to the second.
        let secs = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let truncated = DateTime::<Utc>::from_timestamp(at.timestamp(), 0);
        prop_assert_eq!(parse::parse_timestamp(&secs), Ok(truncated));
        // Date-only is midnight UTC of the same day.
        let date = parse::format_date(at.date_naive());
        prop_assert_eq!(parse::parse_timestamp(&date), Ok(Some(parse::midnight_utc(at.date_naive()))));
    }

    #[test]
    fn normalised_web_addresses_are_stable_and_carry_no_scheme_or_trailing_slash(
        s in prop_oneof![".{0,24}", "[ /:htpsHTPS.a-zA-Z]{0,24}"],
    ) {
        if let Some(n) = parse::normalize_web_address(&s) {
            prop_assert_eq!(parse::normalize_web_address(&n), Some(n.clone()));
            prop_assert!(!n.starts_with("http://") && !n.starts_with("https://"), "{n:?}");
            prop_assert!(!n.ends_with('/') && n.trim() == n, "{n:?}");
            prop_assert_eq!(n.to_lowercase(), n.clone());
        }
    }

    #[test]
    fn normalised_emails_are_stable(s in "[A-Za-z0-9._%+-]{1,12}@[A-Za-z0-9-]{1,10}\\.[A-Za-z]{2,6}") {
        if let Ok(email) = parse::normalize_email(&s) {
            prop_assert_eq!(parse::normalize_email(&email), Ok(email.clone()));
            prop_assert_eq!(email.clone(), email.to_lowercase());
        }
    }
}

/// The custom properties of [`custom_definitions`], each mapped to an attribute of its name.
const CUSTOM_PROPERTIES: [&str; 6] = [
    "tier",
    "seats",
    "renewal_date",
    "is_strategic",
    "reviewed_at",
    "segment",
];

/// Every property name the default mappings read, plus some they do not.
fn property_name() -> impl Strategy<Value = String> {
    let mut known: Vec<String> = [ObjectType::Contact, ObjectType::Company, ObjectType::Deal]
        .iter()
        .flat_map(|o| {
            mapping::default_properties(*o)
                .iter()
                .map(|s| (*s).to_owned())
        })
        .collect();
    known.extend(CUSTOM_PROPERTIES.map(String::from));
    prop_oneof![prop::sample::select(known), "[a-z_]{1,12}"]
}

fn property_value() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.85,
        prop_oneof![
            numberish(),
            "[ -~]{0,20}",
            "[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,3}"
        ],
    )
}

fn hubspot_record() -> impl Strategy<Value = HubSpotRecord> {
    (
        prop_oneof!["[0-9]{1,20}", ".{0,8}"],
        prop::collection::btree_map(property_name(), property_value(), 0..24),
        any::<bool>(),
        prop::collection::vec(prop_oneof!["[0-9]{1,20}", ".{0,6}"], 0..4),
        prop::collection::vec(prop_oneof!["[0-9]{1,20}", ".{0,6}"], 0..4),
        prop::option::of(-10_000_000_000_000i64..10_000_000_000_000),
    )
        .prop_map(
            |(id, properties, archived, contact_ids, company_ids, ms)| HubSpotRecord {
                id,
                properties,
                created_at: ms.and_then(DateTime::from_timestamp_millis),
                updated_at: ms.and_then(DateTime::from_timestamp_millis),
                archived,
                contact_ids,
                company_ids,
            },
        )
}

fn custom_config() -> MappingConfig {
    let attr = |property: &str| AttributeMapping {
        property: property.into(),
        attribute: property.into(),
        direction: Direction::Both,
    };
    MappingConfig {
        object_type: ObjectType::Company,
        external_id_property: Some("hs_object_id".into()),
        attributes: CUSTOM_PROPERTIES.map(attr).to_vec(),
        filters: vec![
            RecordFilter {
                property: "seats".into(),
                operator: FilterOperator::Between,
                values: vec!["1".into(), "100".into()],
            },
            RecordFilter {
                property: "tier".into(),
                operator: FilterOperator::In,
                values: vec!["gold".into(), "silver".into()],
            },
            RecordFilter {
                property: "segment".into(),
                operator: FilterOperator::NotContainsToken,
                values: vec!["*test*".into()],
            },
            RecordFilter {
                property: "reviewed_at".into(),
                operator: FilterOperator::Gte,
                values: vec!["2020-01-01T00:00:00Z".into()],
            },
            RecordFilter {
                property: "is_strategic".into(),
                operator: FilterOperator::Neq,
                values: vec!["false".into()],
            },
        ],
        score_property: None,
        risk_level_property: None,
        risk_level_values: RiskLevelValues::default(),
    }
}

fn custom_definitions() -> Vec<PropertyDefinition> {
    let def = |name: &str, property_type, field_type| PropertyDefinition {
        name: name.into(),
        label: name.into(),
        property_type,
        field_type,
        options: vec![],
        has_unique_value: false,
        read_only_value: false,
        calculated: false,
        archived: false,
    };
    let mut tier = def("tier", PropertyType::Enumeration, FieldType::Checkbox);
    tier.options = ["gold", "silver"]
        .map(|v| PropertyOption {
            label: v.into(),
            value: v.into(),
            hidden: false,
        })
        .to_vec();
    vec![
        tier,
        def("seats", PropertyType::Number, FieldType::Number),
        def("renewal_date", PropertyType::Date, FieldType::Date),
        def(
            "is_strategic",
            PropertyType::Bool,
            FieldType::BooleanCheckbox,
        ),
        def("reviewed_at", PropertyType::Datetime, FieldType::Date),
        def("segment", PropertyType::String, FieldType::Text),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn no_input_makes_a_mapper_panic_and_mapping_is_deterministic(record in hubspot_record()) {
        let contact = mapping::map_contact(&record);
        prop_assert_eq!(&contact, &mapping::map_contact(&record));
        if let MappingOutcome::Mapped { record: c, .. } = &contact {
            let raw = record.property("email").unwrap_or_default();
            prop_assert_eq!(parse::normalize_email(raw), Ok(c.email.clone()));
        }
        let company = mapping::map_company(&record);
        prop_assert_eq!(&company, &mapping::map_company(&record));
        let deal = mapping::map_deal(&record);
        if let Some(p) = deal.record().and_then(|d| d.close_probability) {
            prop_assert!((0.0..=1.0).contains(&p.value()));
        }

        let config = custom_config()
            .validate(&custom_definitions())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let _ = config.check_filters(&record);
        let _ = config.external_id(&record);
        let (values, _warnings) = config.read_attributes(&record);
        let update = domain::outbound::OutboundUpdate { attributes: values, ..Default::default() };
        let _ = config.outbound_properties(&update);
    }

    #[test]
    fn no_owner_or_pipeline_makes_a_mapper_panic(
        id in ".{0,12}",
        email in prop::option::of(".{0,20}"),
        first in prop::option::of(".{0,8}"),
        kind in prop::option::of(".{0,8}"),
        stages in prop::collection::vec(
            (".{0,6}", prop::collection::btree_map("[a-zA-Z]{1,10}", property_value(), 0..3), any::<i64>()),
            0..5,
        ),
    ) {
        let owner = HubSpotOwner { id: id.clone(), email, first_name: first, kind, ..Default::default() };
        let _ = mapping::map_owner(&owner);
        let pipeline = HubSpotPipeline {
            id,
            label: String::new(),
            display_order: 0,
            archived: false,
            stages: stages
                .into_iter()
                .map(|(id, metadata, display_order)| HubSpotStage {
                    id,
                    label: String::new(),
                    display_order,
                    archived: false,
                    metadata,
                })
                .collect(),
        };
        let _ = mapping::map_pipeline(&pipeline);
    }

    #[test]
    fn dedupe_does_not_depend_on_input_order(
        (original, shuffled) in prop::collection::vec(
            (0u64..6, 0usize..3, prop::option::of(0i64..3), prop::bool::weighted(0.2)),
            0..12,
        )
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
    ) {
        // Ids are unique per portal: a repeated id is the same contact, so it carries the
        // same fields (the first occurrence in the unshuffled list).
        let canonical: BTreeMap<u64, (usize, Option<i64>, bool)> = original
            .iter()
            .rev()
            .map(|(id, email, secs, archived)| (*id, (*email, *secs, *archived)))
            .collect();
        let to_customers = |v: &[(u64, usize, Option<i64>, bool)]| -> Vec<Customer> {
            v.iter()
                .map(|(id, ..)| {
                    let (email, secs, archived) = canonical[id];
                    Customer { archived, ..customer(*id, ["a@x.io", "b@x.io", "c@x.io"][email], secs) }
                })
                .collect()
        };
        let a = dedupe_by_email(to_customers(&original));
        let b = dedupe_by_email(to_customers(&shuffled));
        prop_assert_eq!(&a, &b);
        // One customer per e-mail: live if any is live, and the latest among those.
        let mut best: BTreeMap<String, (bool, Option<DateTime<Utc>>)> = BTreeMap::new();
        for c in to_customers(&original) {
            let e = best.entry(c.email.clone()).or_insert((false, None));
            *e = (*e).max((!c.archived, c.source_updated_at));
        }
        prop_assert_eq!(a.customers.len(), best.len());
        for c in &a.customers {
            prop_assert_eq!(Some(&(!c.archived, c.source_updated_at)), best.get(&c.email));
        }
    }
}

fn customer(id: u64, email: &str, secs: Option<i64>) -> Customer {
    Customer {
        external_id: HubSpotObjectId(id),
        email: email.into(),
        name: None,
        company_name: None,
        phone: None,
        job_title: None,
        city: None,
        state: None,
        country: None,
        website: None,
        lead_status: None,
        lifecycle_stage: None,
        owner_id: None,
        last_activity_at: None,
        first_seen_at: None,
        source_updated_at: secs.and_then(|s| DateTime::from_timestamp(s, 0)),
        archived: false,
        company_ids: vec![],
    }
}
