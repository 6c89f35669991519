//! Table-driven test of every row of the default mappings (DESIGN.md "Field mappings"
//! plus the contact and company extras of issue 5), fed HubSpot-shaped input: every value
//! a string, some null, some keys missing.
//!
//! Each row starts from a minimal valid record, sets or removes properties, and states
//! the whole expected record as a change to the baseline, so a property that lands in the
//! wrong field, or changes a field it should not, fails the row.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use domain::ids::{HubSpotObjectId, ObjectType, OwnerId, PipelineId, StageId};
use domain::mapping::{
    HubSpotOwner, HubSpotPipeline, HubSpotRecord, HubSpotStage, MappingOutcome, MappingWarning,
    SkipReason, default_properties, map_company, map_contact, map_deal, map_owner, map_pipeline,
};
use domain::parse::ValueError;
use domain::records::{
    Company, Customer, Deal, LeadStatus, LifecycleStage, OwnerKind, Probability,
};

/// A property as a row sets it.
#[derive(Clone, Copy)]
enum In {
    /// `"name": "value"`.
    V(&'static str),
    /// `"name": null`.
    Null,
    /// The key is absent.
    Missing,
}
use In::{Missing, Null, V};

enum Expect<T> {
    /// Mapped: the baseline changed by the function, with exactly these warnings.
    Mapped(fn(&mut T), Vec<MappingWarning>),
    Skipped(SkipReason),
}

struct Row<T> {
    name: &'static str,
    set: Vec<(&'static str, In)>,
    expect: Expect<T>,
}

fn row<T>(name: &'static str, set: &[(&'static str, In)], expect: Expect<T>) -> Row<T> {
    Row {
        name,
        set: set.to_vec(),
        expect,
    }
}

fn row_owned<T>(name: &'static str, set: Vec<(&'static str, In)>, expect: Expect<T>) -> Row<T> {
    Row { name, set, expect }
}

fn ok<T>(change: fn(&mut T)) -> Expect<T> {
    Expect::Mapped(change, vec![])
}

fn warn<T>(change: fn(&mut T), warnings: Vec<MappingWarning>) -> Expect<T> {
    Expect::Mapped(change, warnings)
}

fn invalid(property: &str, value: &str, error: ValueError) -> MappingWarning {
    MappingWarning::InvalidValue {
        property: property.into(),
        value: value.into(),
        error,
    }
}

fn rounded(property: &str, value: &str) -> MappingWarning {
    MappingWarning::Rounded {
        property: property.into(),
        value: value.into(),
    }
}

fn unknown(property: &str, value: &str) -> MappingWarning {
    MappingWarning::UnknownEnumValue {
        property: property.into(),
        value: value.into(),
    }
}

fn at(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// 2026-02-14T16:01:09.874Z, the envelope `updatedAt` of every baseline record.
const UPDATED_MS: i64 = 1_771_084_869_874;
/// 2025-11-03T09:12:44.120Z, the envelope `createdAt`.
const CREATED_MS: i64 = 1_762_161_164_120;

fn base_record(props: &[(&str, &str)]) -> HubSpotRecord {
    HubSpotRecord {
        id: "51".into(),
        properties: props
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect(),
        created_at: at(CREATED_MS),
        updated_at: at(UPDATED_MS),
        archived: false,
        contact_ids: vec![],
        company_ids: vec![],
    }
}

fn apply(record: &mut HubSpotRecord, set: &[(&'static str, In)]) {
    for (k, v) in set {
        match v {
            V(s) => {
                record.properties.insert((*k).into(), Some((*s).into()));
            }
            Null => {
                record.properties.insert((*k).into(), None);
            }
            Missing => {
                record.properties.remove(*k);
            }
        }
    }
}

/// Every property the default mapping of `object` reads, except `keep`, set to JSON null:
/// what HubSpot sends for requested properties that hold no value.
fn all_null(object: ObjectType, keep: &[&str]) -> Vec<(&'static str, In)> {
    default_properties(object)
        .iter()
        .filter(|p| !keep.contains(p))
        .map(|p| (*p, Null))
        .collect()
}

fn run<T: PartialEq + std::fmt::Debug + Clone>(
    base: HubSpotRecord,
    baseline: T,
    map: fn(&HubSpotRecord) -> MappingOutcome<T>,
    rows: Vec<Row<T>>,
) {
    let mut failures = Vec::new();
    for r in rows {
        let mut input = base.clone();
        apply(&mut input, &r.set);
        let got = map(&input);
        let want = match r.expect {
            Expect::Mapped(change, warnings) => {
                let mut record = baseline.clone();
                change(&mut record);
                MappingOutcome::Mapped { record, warnings }
            }
            Expect::Skipped(reason) => MappingOutcome::Skipped {
                reason,
                warnings: vec![],
            },
        };
        if got != want {
            failures.push(format!("{}:\n  got  {got:?}\n  want {want:?}", r.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} row(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn contact_baseline() -> Customer {
    Customer {
        external_id: HubSpotObjectId(51),
        email: "ops@northwind.example".into(),
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
        first_seen_at: at(CREATED_MS),
        source_updated_at: at(UPDATED_MS),
        archived: false,
        company_ids: vec![],
    }
}

#[test]
fn every_contact_mapping_row_maps_as_documented() {
    let base = base_record(&[("hs_object_id", "51"), ("email", "ops@northwind.example")]);
    let rows: Vec<Row<Customer>> = vec![
        row("baseline", &[], ok(|_| {})),
        row_owned(
            "every other property null: envelope dates, nothing else",
            all_null(ObjectType::Contact, &["email"]),
            ok(|_| {}),
        ),
        // hs_object_id -> external_id
        row(
            "hs_object_id missing falls back to the envelope id",
            &[("hs_object_id", Missing)],
            ok(|_| {}),
        ),
        row(
            "hs_object_id null falls back to the envelope id",
            &[("hs_object_id", Null)],
            ok(|_| {}),
        ),
        row(
            "hs_object_id that differs from the envelope id wins, with a warning",
            &[("hs_object_id", V("52"))],
            warn(
                |c| c.external_id = HubSpotObjectId(52),
                vec![MappingWarning::IdMismatch {
                    id: "51".into(),
                    hs_object_id: "52".into(),
                }],
            ),
        ),
        row(
            "non-numeric hs_object_id falls back to the envelope id, with a warning",
            &[("hs_object_id", V("abc"))],
            warn(
                |_| {},
                vec![invalid("hs_object_id", "abc", ValueError::NotADecimal)],
            ),
        ),
        // email
        row(
            "email is trimmed and lower-cased",
            &[("email", V("  Ops@NorthWind.EXAMPLE "))],
            ok(|_| {}),
        ),
        row(
            "email missing skips",
            &[("email", Missing)],
            Expect::Skipped(SkipReason::MissingEmail),
        ),
        row(
            "email null skips",
            &[("email", Null)],
            Expect::Skipped(SkipReason::MissingEmail),
        ),
        row(
            "email blank skips",
            &[("email", V("   "))],
            Expect::Skipped(SkipReason::MissingEmail),
        ),
        row(
            "email invalid skips with the value",
            &[("email", V("not-an-email"))],
            Expect::Skipped(SkipReason::InvalidEmail {
                value: "not-an-email".into(),
            }),
        ),
        // firstname + lastname -> name
        row(
            "first and last name are joined",
            &[("firstname", V(" Ada ")), ("lastname", V("Lovelace"))],
            ok(|c| c.name = Some("Ada Lovelace".into())),
        ),
        row(
            "first name only",
            &[("firstname", V("Ada")), ("lastname", Null)],
            ok(|c| c.name = Some("Ada".into())),
        ),
        row(
            "last name only",
            &[("lastname", V("Lovelace"))],
            ok(|c| c.name = Some("Lovelace".into())),
        ),
        row(
            "both names blank",
            &[("firstname", V("")), ("lastname", V(" "))],
            ok(|_| {}),
        ),
        // company -> company_name, and the plain text extras
        row(
            "company",
            &[("company", V(" Northwind "))],
            ok(|c| c.company_name = Some("Northwind".into())),
        ),
        row("company blank", &[("company", V(""))], ok(|_| {})),
        row(
            "phone",
            &[("phone", V("+1 555 0100"))],
            ok(|c| c.phone = Some("+1 555 0100".into())),
        ),
        row(
            "jobtitle",
            &[("jobtitle", V("CTO"))],
            ok(|c| c.job_title = Some("CTO".into())),
        ),
        row(
            "city",
            &[("city", V("Lyon"))],
            ok(|c| c.city = Some("Lyon".into())),
        ),
        row(
            "state",
            &[("state", V("Rhône"))],
            ok(|c| c.state = Some("Rhône".into())),
        ),
        row(
            "country",
            &[("country", V("France"))],
            ok(|c| c.country = Some("France".into())),
        ),
        row(
            "website is normalised",
            &[("website", V("HTTPS://NorthWind.example/"))],
            ok(|c| c.website = Some("northwind.example".into())),
        ),
        row("website null", &[("website", Null)], ok(|_| {})),
        // hs_lead_status -> lead_status
        row(
            "lead status known",
            &[("hs_lead_status", V("IN_PROGRESS"))],
            ok(|c| c.lead_status = Some(LeadStatus::InProgress)),
        ),
        row(
            "lead status unknown is kept and warned about",
            &[("hs_lead_status", V("NURTURE"))],
            warn(
                |c| c.lead_status = Some(LeadStatus::Unknown("NURTURE".into())),
                vec![unknown("hs_lead_status", "NURTURE")],
            ),
        ),
        row(
            "lead status empty",
            &[("hs_lead_status", V(""))],
            ok(|_| {}),
        ),
        // hs_last_sales_activity_date -> last_activity_at
        row(
            "last activity ISO with ms",
            &[("hs_last_sales_activity_date", V("2026-02-01T10:00:00.250Z"))],
            ok(|c| c.last_activity_at = at(1_769_940_000_250)),
        ),
        row(
            "last activity ISO without ms",
            &[("hs_last_sales_activity_date", V("2026-02-01T10:00:00Z"))],
            ok(|c| c.last_activity_at = at(1_769_940_000_000)),
        ),
        row(
            "last activity epoch ms",
            &[("hs_last_sales_activity_date", V("1769940000250"))],
            ok(|c| c.last_activity_at = at(1_769_940_000_250)),
        ),
        row(
            "last activity date only is midnight UTC",
            &[("hs_last_sales_activity_date", V("2026-02-01"))],
            ok(|c| c.last_activity_at = at(1_769_904_000_000)),
        ),
        row(
            "last activity unparseable is dropped with a warning",
            &[("hs_last_sales_activity_date", V("last tuesday"))],
            warn(
                |_| {},
                vec![invalid(
                    "hs_last_sales_activity_date",
                    "last tuesday",
                    ValueError::NotATimestamp,
                )],
            ),
        ),
        // createdate -> first_seen_at
        row(
            "createdate wins over createdAt",
            &[("createdate", V("2025-01-01T00:00:00.000Z"))],
            ok(|c| c.first_seen_at = at(1_735_689_600_000)),
        ),
        row(
            "createdate unparseable falls back to createdAt with a warning",
            &[("createdate", V("soon"))],
            warn(
                |_| {},
                vec![invalid("createdate", "soon", ValueError::NotATimestamp)],
            ),
        ),
        // lifecyclestage -> lifecycle_stage
        row(
            "lifecycle stage known",
            &[("lifecyclestage", V("customer"))],
            ok(|c| c.lifecycle_stage = Some(LifecycleStage::Customer)),
        ),
        row(
            "lifecycle stage other",
            &[("lifecyclestage", V("other"))],
            ok(|c| c.lifecycle_stage = Some(LifecycleStage::Other)),
        ),
        row(
            "lifecycle stage custom is kept and warned about",
            &[("lifecyclestage", V("1234567"))],
            warn(
                |c| c.lifecycle_stage = Some(LifecycleStage::Unknown("1234567".into())),
                vec![unknown("lifecyclestage", "1234567")],
            ),
        ),
        // hubspot_owner_id -> owner_id
        row(
            "owner id",
            &[("hubspot_owner_id", V("9001"))],
            ok(|c| c.owner_id = Some(OwnerId(9001))),
        ),
        row(
            "owner id not numeric",
            &[("hubspot_owner_id", V("bob"))],
            warn(
                |_| {},
                vec![invalid("hubspot_owner_id", "bob", ValueError::NotADecimal)],
            ),
        ),
        row("owner id empty", &[("hubspot_owner_id", V(""))], ok(|_| {})),
        // lastmodifieddate -> source_updated_at
        row(
            "lastmodifieddate wins over updatedAt",
            &[("lastmodifieddate", V("2026-03-01T00:00:00.000Z"))],
            ok(|c| c.source_updated_at = at(1_772_323_200_000)),
        ),
        row(
            "lastmodifieddate null falls back to updatedAt",
            &[("lastmodifieddate", Null)],
            ok(|_| {}),
        ),
        row(
            "hs_lastmodifieddate is not the contact's last-modified property",
            &[("hs_lastmodifieddate", V("2030-01-01T00:00:00Z"))],
            ok(|_| {}),
        ),
    ];
    run(base, contact_baseline(), map_contact, rows);
}

#[test]
fn contact_associations_and_archived_flag_are_carried() {
    let mut input = base_record(&[("email", "a@b.io")]);
    input.archived = true;
    input.company_ids = vec!["7".into(), "x".into(), "7".into(), "8".into()];
    let outcome = map_contact(&input);
    let customer = outcome.record().cloned();
    assert_eq!(customer.as_ref().map(|c| c.archived), Some(true));
    assert_eq!(
        customer.map(|c| c.company_ids),
        Some(vec![HubSpotObjectId(7), HubSpotObjectId(8)])
    );
    assert_eq!(
        outcome.warnings(),
        &[MappingWarning::InvalidAssociation {
            object: "companies".into(),
            value: "x".into()
        }]
    );
}

#[test]
fn a_record_without_a_usable_id_is_skipped() {
    let mut input = base_record(&[("email", "a@b.io")]);
    input.id = String::new();
    assert_eq!(
        map_contact(&input).skip_reason(),
        Some(&SkipReason::MissingId)
    );
    assert_eq!(map_deal(&input).skip_reason(), Some(&SkipReason::MissingId));
    input.id = "x9".into();
    let want = SkipReason::InvalidId { value: "x9".into() };
    assert_eq!(map_company(&input).skip_reason(), Some(&want));
    input
        .properties
        .insert("hs_object_id".into(), Some("y".into()));
    let want = SkipReason::InvalidId { value: "y".into() };
    assert_eq!(map_contact(&input).skip_reason(), Some(&want));
}

fn company_baseline() -> Company {
    Company {
        external_id: HubSpotObjectId(51),
        name: None,
        domain: None,
        website: None,
        industry: None,
        employee_count: None,
        annual_revenue_cents: None,
        lifecycle_stage: None,
        owner_id: None,
        last_activity_at: None,
        created_at: at(CREATED_MS),
        source_updated_at: at(UPDATED_MS),
        archived: false,
        contact_ids: vec![],
    }
}

#[test]
fn every_company_mapping_row_maps_as_documented() {
    let base = base_record(&[("hs_object_id", "51")]);
    let rows: Vec<Row<Company>> = vec![
        row("baseline", &[], ok(|_| {})),
        row_owned(
            "every property null: envelope id and dates, nothing else",
            all_null(ObjectType::Company, &[]),
            ok(|_| {}),
        ),
        row(
            "no hs_object_id uses the envelope id",
            &[("hs_object_id", Missing)],
            ok(|_| {}),
        ),
        row(
            "bad hs_object_id falls back to the envelope id",
            &[("hs_object_id", V("-1"))],
            warn(
                |_| {},
                vec![invalid("hs_object_id", "-1", ValueError::NotADecimal)],
            ),
        ),
        row(
            "name",
            &[("name", V(" Northwind Traders "))],
            ok(|c| c.name = Some("Northwind Traders".into())),
        ),
        row("name null", &[("name", Null)], ok(|_| {})),
        row(
            "domain normalised",
            &[("domain", V(" https://NorthWind.Example/ "))],
            ok(|c| c.domain = Some("northwind.example".into())),
        ),
        row(
            "domain plain",
            &[("domain", V("northwind.example"))],
            ok(|c| c.domain = Some("northwind.example".into())),
        ),
        row(
            "website normalised",
            &[("website", V("http://www.northwind.example//"))],
            ok(|c| c.website = Some("www.northwind.example".into())),
        ),
        row(
            "industry kept as sent",
            &[("industry", V("COMPUTER_SOFTWARE"))],
            ok(|c| c.industry = Some("COMPUTER_SOFTWARE".into())),
        ),
        row(
            "employees",
            &[("numberofemployees", V("250"))],
            ok(|c| c.employee_count = Some(250)),
        ),
        row(
            "employees fractional rounds half-even",
            &[("numberofemployees", V("12.5"))],
            warn(
                |c| c.employee_count = Some(12),
                vec![rounded("numberofemployees", "12.5")],
            ),
        ),
        row(
            "employees negative dropped",
            &[("numberofemployees", V("-3"))],
            warn(
                |_| {},
                vec![invalid("numberofemployees", "-3", ValueError::Negative)],
            ),
        ),
        row(
            "annual revenue to cents",
            &[("annualrevenue", V("1000000000"))],
            ok(|c| c.annual_revenue_cents = Some(100_000_000_000)),
        ),
        row(
            "annual revenue with separators dropped",
            &[("annualrevenue", V("1,234.50"))],
            warn(
                |_| {},
                vec![invalid(
                    "annualrevenue",
                    "1,234.50",
                    ValueError::NotADecimal,
                )],
            ),
        ),
        row(
            "annual revenue empty",
            &[("annualrevenue", V(""))],
            ok(|_| {}),
        ),
        row(
            "lifecycle stage",
            &[("lifecyclestage", V("opportunity"))],
            ok(|c| c.lifecycle_stage = Some(LifecycleStage::Opportunity)),
        ),
        row(
            "owner",
            &[("hubspot_owner_id", V("12"))],
            ok(|c| c.owner_id = Some(OwnerId(12))),
        ),
        row(
            "last activity",
            &[("hs_last_sales_activity_date", V("2026-02-01"))],
            ok(|c| c.last_activity_at = at(1_769_904_000_000)),
        ),
        row(
            "createdate",
            &[("createdate", V("1735689600000"))],
            ok(|c| c.created_at = at(1_735_689_600_000)),
        ),
        row(
            "hs_lastmodifieddate",
            &[("hs_lastmodifieddate", V("2026-03-01T00:00:00Z"))],
            ok(|c| c.source_updated_at = at(1_772_323_200_000)),
        ),
        row(
            "lastmodifieddate is not the company's last-modified property",
            &[("lastmodifieddate", V("2030-01-01T00:00:00Z"))],
            ok(|_| {}),
        ),
    ];
    run(base, company_baseline(), map_company, rows);
}

fn deal_baseline() -> Deal {
    Deal {
        external_id: HubSpotObjectId(51),
        name: None,
        pipeline_id: None,
        stage_id: None,
        amount_cents: None,
        closed_at: None,
        close_probability: None,
        owner_id: None,
        created_at: at(CREATED_MS),
        source_updated_at: at(UPDATED_MS),
        archived: false,
        contact_ids: vec![],
        company_ids: vec![],
    }
}

#[test]
fn every_deal_mapping_row_maps_as_documented() {
    let base = base_record(&[("hs_object_id", "51")]);
    let rows: Vec<Row<Deal>> = vec![
        row("baseline", &[], ok(|_| {})),
        row_owned(
            "every property null: envelope id and dates, nothing else",
            all_null(ObjectType::Deal, &[]),
            ok(|_| {}),
        ),
        row(
            "hs_object_id blank uses the envelope id",
            &[("hs_object_id", V(" "))],
            ok(|_| {}),
        ),
        row(
            "dealname",
            &[("dealname", V("Renewal 2026"))],
            ok(|d| d.name = Some("Renewal 2026".into())),
        ),
        row(
            "dealstage",
            &[("dealstage", V("qualifiedtobuy"))],
            ok(|d| d.stage_id = Some(StageId("qualifiedtobuy".into()))),
        ),
        row(
            "pipeline",
            &[("pipeline", V("default"))],
            ok(|d| d.pipeline_id = Some(PipelineId("default".into()))),
        ),
        row(
            "amount decimal",
            &[("amount", V("1234.5"))],
            ok(|d| d.amount_cents = Some(123_450)),
        ),
        row(
            "amount negative cent",
            &[("amount", V("-0.01"))],
            ok(|d| d.amount_cents = Some(-1)),
        ),
        row(
            "amount large",
            &[("amount", V("1000000000"))],
            ok(|d| d.amount_cents = Some(100_000_000_000)),
        ),
        row(
            "amount past two decimals rounds half-even",
            &[("amount", V("10.005"))],
            warn(
                |d| d.amount_cents = Some(1000),
                vec![rounded("amount", "10.005")],
            ),
        ),
        row(
            "amount with thousands separator dropped",
            &[("amount", V("1,234.50"))],
            warn(
                |_| {},
                vec![invalid("amount", "1,234.50", ValueError::NotADecimal)],
            ),
        ),
        row("amount empty", &[("amount", V(""))], ok(|_| {})),
        row("amount null", &[("amount", Null)], ok(|_| {})),
        row(
            "closedate",
            &[("closedate", V("2026-06-30T00:00:00.000Z"))],
            ok(|d| d.closed_at = at(1_782_777_600_000)),
        ),
        row(
            "probability",
            &[("hs_deal_stage_probability", V("0.4"))],
            ok(|d| d.close_probability = Probability::new(0.4)),
        ),
        row(
            "probability above one clamps",
            &[("hs_deal_stage_probability", V("1.2"))],
            warn(
                |d| d.close_probability = Probability::new(1.0),
                vec![MappingWarning::Clamped {
                    property: "hs_deal_stage_probability".into(),
                    value: "1.2".into(),
                }],
            ),
        ),
        row(
            "probability below zero clamps",
            &[("hs_deal_stage_probability", V("-0.5"))],
            warn(
                |d| d.close_probability = Probability::new(0.0),
                vec![MappingWarning::Clamped {
                    property: "hs_deal_stage_probability".into(),
                    value: "-0.5".into(),
                }],
            ),
        ),
        row(
            "probability not a number",
            &[("hs_deal_stage_probability", V("high"))],
            warn(
                |_| {},
                vec![invalid(
                    "hs_deal_stage_probability",
                    "high",
                    ValueError::NotADecimal,
                )],
            ),
        ),
        row(
            "owner",
            &[("hubspot_owner_id", V("3"))],
            ok(|d| d.owner_id = Some(OwnerId(3))),
        ),
        row(
            "hs_lastmodifieddate",
            &[("hs_lastmodifieddate", V("2026-03-01T00:00:00.000Z"))],
            ok(|d| d.source_updated_at = at(1_772_323_200_000)),
        ),
        row(
            "createdate",
            &[("createdate", V("2026-01-01"))],
            ok(|d| d.created_at = at(1_767_225_600_000)),
        ),
    ];
    run(base, deal_baseline(), map_deal, rows);
}

#[test]
fn company_contacts_and_archived_flag_are_carried() {
    let mut input = base_record(&[]);
    input.archived = true;
    input.contact_ids = vec!["5".into(), "5".into(), "".into(), "6".into()];
    let outcome = map_company(&input);
    let company = outcome.record().cloned();
    assert_eq!(company.as_ref().map(|c| c.archived), Some(true));
    assert_eq!(
        company.map(|c| c.contact_ids),
        Some(vec![HubSpotObjectId(5), HubSpotObjectId(6)])
    );
    assert_eq!(
        outcome.warnings(),
        &[MappingWarning::InvalidAssociation {
            object: "contacts".into(),
            value: String::new()
        }]
    );
}

#[test]
fn a_record_without_envelope_dates_or_date_properties_has_no_dates() {
    let mut input = base_record(&[("email", "a@b.io")]);
    input.created_at = None;
    input.updated_at = None;
    let customer = map_contact(&input).record().cloned();
    assert_eq!(
        customer.map(|c| (c.first_seen_at, c.source_updated_at)),
        Some((None, None))
    );
    let deal = map_deal(&input).record().cloned();
    assert_eq!(
        deal.map(|d| (d.created_at, d.source_updated_at)),
        Some((None, None))
    );
}

#[test]
fn deal_associations_keep_contacts_and_companies_apart() {
    let mut input = base_record(&[]);
    input.contact_ids = vec!["1".into(), "2".into()];
    input.company_ids = vec!["3".into()];
    let deal = map_deal(&input).record().cloned();
    assert_eq!(
        deal.as_ref().map(|d| d.contact_ids.clone()),
        Some(vec![HubSpotObjectId(1), HubSpotObjectId(2)])
    );
    assert_eq!(deal.map(|d| d.company_ids), Some(vec![HubSpotObjectId(3)]));
}

#[test]
fn owners_map_with_name_kind_and_normalised_email() {
    let owner = HubSpotOwner {
        id: "9001".into(),
        email: Some(" Sam@Example.com ".into()),
        first_name: Some("Sam".into()),
        last_name: None,
        kind: Some("QUEUE".into()),
        user_id: Some(77),
        archived: false,
        updated_at: at(UPDATED_MS),
    };
    let mapped = map_owner(&owner);
    let o = mapped.record().cloned();
    assert_eq!(o.as_ref().map(|o| o.id), Some(OwnerId(9001)));
    assert_eq!(
        o.as_ref().and_then(|o| o.email.clone()),
        Some("sam@example.com".into())
    );
    assert_eq!(o.as_ref().and_then(|o| o.name.clone()), Some("Sam".into()));
    assert_eq!(o.as_ref().map(|o| o.kind.clone()), Some(OwnerKind::Queue));
    assert!(mapped.warnings().is_empty());

    let bad = HubSpotOwner {
        id: "x1".into(),
        ..owner.clone()
    };
    assert_eq!(
        map_owner(&bad).skip_reason(),
        Some(&SkipReason::InvalidId { value: "x1".into() })
    );
    let odd_email = HubSpotOwner {
        email: Some("queue-without-address".into()),
        ..owner
    };
    let mapped = map_owner(&odd_email);
    assert_eq!(
        mapped.record().and_then(|o| o.email.clone()),
        Some("queue-without-address".into())
    );
    assert_eq!(
        mapped.warnings(),
        &[invalid(
            "email",
            "queue-without-address",
            ValueError::InvalidEmail
        )]
    );
}

fn stage(id: &str, order: i64, meta: &[(&str, &str)]) -> HubSpotStage {
    HubSpotStage {
        id: id.into(),
        label: format!("{id} label"),
        display_order: order,
        archived: false,
        metadata: meta
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[test]
fn pipelines_map_stages_in_display_order_with_probability_and_closed_flag() {
    let input = HubSpotPipeline {
        id: "default".into(),
        label: "Sales Pipeline".into(),
        display_order: 0,
        archived: false,
        stages: vec![
            stage(
                "closedwon",
                5,
                &[("isClosed", "true"), ("probability", "1.0")],
            ),
            stage(
                "qualifiedtobuy",
                1,
                &[("isClosed", "false"), ("probability", "0.4")],
            ),
            stage("", 2, &[]),
            stage("odd", 3, &[("isClosed", "maybe"), ("probability", "2")]),
        ],
    };
    let mapped = map_pipeline(&input);
    let pipeline = mapped.record().cloned();
    let ids: Option<Vec<String>> = pipeline
        .as_ref()
        .map(|p| p.stages.iter().map(|s| s.id.0.clone()).collect());
    assert_eq!(
        ids,
        Some(vec![
            "qualifiedtobuy".into(),
            "odd".into(),
            "closedwon".into()
        ])
    );
    let won = pipeline
        .as_ref()
        .and_then(|p| p.stage(&StageId("closedwon".into())).cloned());
    assert_eq!(won.as_ref().map(|s| s.is_closed), Some(true));
    assert_eq!(won.and_then(|s| s.probability), Probability::new(1.0));
    assert_eq!(
        mapped.warnings(),
        &[
            MappingWarning::StageWithoutId { index: 2 },
            MappingWarning::Clamped {
                property: "stages.odd.metadata.probability".into(),
                value: "2".into()
            },
            invalid(
                "stages.odd.metadata.isClosed",
                "maybe",
                ValueError::NotABool
            ),
        ]
    );
    let no_id = HubSpotPipeline {
        id: " ".into(),
        ..input
    };
    assert_eq!(
        map_pipeline(&no_id).skip_reason(),
        Some(&SkipReason::MissingId)
    );
}
