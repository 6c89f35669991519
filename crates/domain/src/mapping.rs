//! The default inbound mappings (DESIGN.md "Field mappings"): a HubSpot contact, company,
//! deal, owner or pipeline, in HubSpot's shape (string properties that may be null or
//! missing, plus the envelope's id, timestamps, archived flag and association ids),
//! becomes an internal record, or is skipped with a reason; either way with the warnings
//! sync reports (rounded, clamped, unknown enum value, unparseable value).
//!
//! Mappers are total: no input makes them panic, and a bad optional value costs only that
//! field (and a warning), never the record. Only what identifies a record can skip it:
//! its id, and for a contact its e-mail.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{HubSpotObjectId, ObjectType, OwnerId, PipelineId, StageId};
use crate::parse::{self, ValueError};
use crate::records::{
    Company, Customer, Deal, LeadStatus, LifecycleStage, Owner, OwnerKind, Pipeline, Probability,
    Stage,
};

/// HubSpot property names the default mappings read.
pub mod props {
    /// Record id, on every object.
    pub const HS_OBJECT_ID: &str = "hs_object_id";
    /// Creation time, on every object.
    pub const CREATEDATE: &str = "createdate";
    /// Contact last-modified time (contacts use this one, not `hs_lastmodifieddate`).
    pub const LASTMODIFIEDDATE: &str = "lastmodifieddate";
    /// Company and deal last-modified time.
    pub const HS_LASTMODIFIEDDATE: &str = "hs_lastmodifieddate";
    /// Last sales activity, on contacts and companies.
    pub const HS_LAST_SALES_ACTIVITY_DATE: &str = "hs_last_sales_activity_date";
    /// Lifecycle stage, on contacts and companies.
    pub const LIFECYCLESTAGE: &str = "lifecyclestage";
    /// Owner, on every object.
    pub const HUBSPOT_OWNER_ID: &str = "hubspot_owner_id";
    /// Contact e-mail.
    pub const EMAIL: &str = "email";
    /// Contact first name.
    pub const FIRSTNAME: &str = "firstname";
    /// Contact last name.
    pub const LASTNAME: &str = "lastname";
    /// Contact company name (free text).
    pub const COMPANY: &str = "company";
    /// Contact lead status.
    pub const HS_LEAD_STATUS: &str = "hs_lead_status";
    /// Contact phone.
    pub const PHONE: &str = "phone";
    /// Contact job title.
    pub const JOBTITLE: &str = "jobtitle";
    /// Contact city.
    pub const CITY: &str = "city";
    /// Contact state.
    pub const STATE: &str = "state";
    /// Contact country.
    pub const COUNTRY: &str = "country";
    /// Website, on contacts and companies.
    pub const WEBSITE: &str = "website";
    /// Company name.
    pub const NAME: &str = "name";
    /// Company domain.
    pub const DOMAIN: &str = "domain";
    /// Company industry.
    pub const INDUSTRY: &str = "industry";
    /// Company employee count.
    pub const NUMBEROFEMPLOYEES: &str = "numberofemployees";
    /// Company annual revenue.
    pub const ANNUALREVENUE: &str = "annualrevenue";
    /// Deal name.
    pub const DEALNAME: &str = "dealname";
    /// Deal stage id.
    pub const DEALSTAGE: &str = "dealstage";
    /// Deal pipeline id.
    pub const PIPELINE: &str = "pipeline";
    /// Deal amount.
    pub const AMOUNT: &str = "amount";
    /// Deal close date.
    pub const CLOSEDATE: &str = "closedate";
    /// Deal stage probability.
    pub const HS_DEAL_STAGE_PROBABILITY: &str = "hs_deal_stage_probability";
}

const CONTACT_PROPERTIES: &[&str] = &[
    props::HS_OBJECT_ID,
    props::EMAIL,
    props::FIRSTNAME,
    props::LASTNAME,
    props::COMPANY,
    props::PHONE,
    props::JOBTITLE,
    props::CITY,
    props::STATE,
    props::COUNTRY,
    props::WEBSITE,
    props::HS_LEAD_STATUS,
    props::HS_LAST_SALES_ACTIVITY_DATE,
    props::CREATEDATE,
    props::LIFECYCLESTAGE,
    props::HUBSPOT_OWNER_ID,
    props::LASTMODIFIEDDATE,
];

const COMPANY_PROPERTIES: &[&str] = &[
    props::HS_OBJECT_ID,
    props::NAME,
    props::DOMAIN,
    props::WEBSITE,
    props::INDUSTRY,
    props::NUMBEROFEMPLOYEES,
    props::ANNUALREVENUE,
    props::LIFECYCLESTAGE,
    props::HUBSPOT_OWNER_ID,
    props::HS_LAST_SALES_ACTIVITY_DATE,
    props::CREATEDATE,
    props::HS_LASTMODIFIEDDATE,
];

const DEAL_PROPERTIES: &[&str] = &[
    props::HS_OBJECT_ID,
    props::DEALNAME,
    props::DEALSTAGE,
    props::PIPELINE,
    props::AMOUNT,
    props::CLOSEDATE,
    props::HS_DEAL_STAGE_PROBABILITY,
    props::HUBSPOT_OWNER_ID,
    props::CREATEDATE,
    props::HS_LASTMODIFIEDDATE,
];

/// The properties the default mapping of `object` reads: what sync asks HubSpot for
/// (add the custom mapping's properties to it).
pub fn default_properties(object: ObjectType) -> &'static [&'static str] {
    match object {
        ObjectType::Contact => CONTACT_PROPERTIES,
        ObjectType::Company => COMPANY_PROPERTIES,
        ObjectType::Deal => DEAL_PROPERTIES,
    }
}

/// A contact, company or deal as HubSpot sends it (`hubspot-api.md` §3.2), reduced to what
/// mapping needs. `hubspot-client` converts its wire type into this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSpotRecord {
    /// The envelope `id`.
    pub id: String,
    /// `properties`: every value a string; `None` (JSON null) and a missing key both mean
    /// no value.
    pub properties: BTreeMap<String, Option<String>>,
    /// The envelope `createdAt` (already parsed by the client).
    pub created_at: Option<DateTime<Utc>>,
    /// The envelope `updatedAt` (already parsed by the client).
    pub updated_at: Option<DateTime<Utc>>,
    /// The envelope `archived`.
    pub archived: bool,
    /// Ids of associated contacts.
    pub contact_ids: Vec<String>,
    /// Ids of associated companies.
    pub company_ids: Vec<String>,
}

impl HubSpotRecord {
    /// The value of a property; `None` when missing or null.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }
}

/// An owner as HubSpot's owners API sends it (`hubspot-api.md` §6.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSpotOwner {
    /// `id`.
    pub id: String,
    /// `email`.
    pub email: Option<String>,
    /// `firstName`.
    pub first_name: Option<String>,
    /// `lastName`.
    pub last_name: Option<String>,
    /// `type`: `PERSON` or `QUEUE`.
    pub kind: Option<String>,
    /// `userId`.
    pub user_id: Option<u64>,
    /// `archived`.
    pub archived: bool,
    /// `updatedAt` (already parsed by the client).
    pub updated_at: Option<DateTime<Utc>>,
}

/// A deal pipeline as HubSpot's pipelines API sends it (`hubspot-api.md` §6.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSpotPipeline {
    /// `id`.
    pub id: String,
    /// `label`.
    pub label: String,
    /// `displayOrder`.
    pub display_order: i64,
    /// `archived`.
    pub archived: bool,
    /// `stages`.
    pub stages: Vec<HubSpotStage>,
}

/// A pipeline stage as HubSpot sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSpotStage {
    /// `id`.
    pub id: String,
    /// `label`.
    pub label: String,
    /// `displayOrder`.
    pub display_order: i64,
    /// `archived`.
    pub archived: bool,
    /// `metadata`: strings, e.g. `probability` `"0.4"` and `isClosed` `"false"`.
    pub metadata: BTreeMap<String, Option<String>>,
}

/// The result of mapping one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum MappingOutcome<T> {
    /// The record, and what was lost or guessed on the way.
    Mapped {
        /// The mapped record.
        record: T,
        /// Warnings, in property order.
        warnings: Vec<MappingWarning>,
    },
    /// The record cannot be used.
    Skipped {
        /// Why.
        reason: SkipReason,
        /// Warnings collected before the skip was decided.
        warnings: Vec<MappingWarning>,
    },
}

impl<T> MappingOutcome<T> {
    /// The record, when mapped.
    pub fn record(&self) -> Option<&T> {
        match self {
            MappingOutcome::Mapped { record, .. } => Some(record),
            MappingOutcome::Skipped { .. } => None,
        }
    }

    /// The skip reason, when skipped.
    pub fn skip_reason(&self) -> Option<&SkipReason> {
        match self {
            MappingOutcome::Mapped { .. } => None,
            MappingOutcome::Skipped { reason, .. } => Some(reason),
        }
    }

    /// The warnings, whatever the outcome.
    pub fn warnings(&self) -> &[MappingWarning] {
        match self {
            MappingOutcome::Mapped { warnings, .. } | MappingOutcome::Skipped { warnings, .. } => {
                warnings
            }
        }
    }

    /// Splits into the record (or skip reason) and the warnings.
    pub fn into_parts(self) -> (Result<T, SkipReason>, Vec<MappingWarning>) {
        match self {
            MappingOutcome::Mapped { record, warnings } => (Ok(record), warnings),
            MappingOutcome::Skipped { reason, warnings } => (Err(reason), warnings),
        }
    }
}

/// Why a record was not mapped. Sync counts these per reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum SkipReason {
    /// A contact without an e-mail.
    MissingEmail,
    /// A contact whose e-mail is not a valid address.
    InvalidEmail {
        /// The e-mail as sent.
        value: String,
    },
    /// Neither `hs_object_id` nor the envelope id is present.
    MissingId,
    /// The id is not a HubSpot record id.
    InvalidId {
        /// The id as sent.
        value: String,
    },
    /// A custom mapping's record filter excluded the record.
    FilteredOut {
        /// The property of the first filter that did not match.
        property: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::MissingEmail => f.write_str("contact has no e-mail"),
            SkipReason::InvalidEmail { value } => write!(f, "invalid e-mail {value:?}"),
            SkipReason::MissingId => f.write_str("record has no id"),
            SkipReason::InvalidId { value } => write!(f, "invalid record id {value:?}"),
            SkipReason::FilteredOut { property } => {
                write!(f, "excluded by the record filter on {property}")
            }
        }
    }
}

/// Something a mapper lost or guessed. The record was still mapped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "warning")]
pub enum MappingWarning {
    /// A value could not be read; the field was left empty.
    InvalidValue {
        /// The HubSpot property (or envelope field).
        property: String,
        /// The value as sent.
        value: String,
        /// Why it was refused.
        error: ValueError,
    },
    /// A number had more digits than its field holds and was rounded half-even.
    Rounded {
        /// The HubSpot property.
        property: String,
        /// The value as sent.
        value: String,
    },
    /// A value outside its range was clamped into it.
    Clamped {
        /// The HubSpot property.
        property: String,
        /// The value as sent.
        value: String,
    },
    /// An enumeration value this version does not know; it was kept as received.
    UnknownEnumValue {
        /// The HubSpot property.
        property: String,
        /// The value as sent.
        value: String,
    },
    /// `hs_object_id` and the envelope id disagree; `hs_object_id` was used (HubSpot
    /// documents it as the record id).
    IdMismatch {
        /// The envelope id.
        id: String,
        /// The `hs_object_id` property.
        hs_object_id: String,
    },
    /// An associated record id that is not a HubSpot id was dropped.
    InvalidAssociation {
        /// The associated object's type (`contacts`, `companies`).
        object: String,
        /// The id as sent.
        value: String,
    },
    /// A pipeline stage without an id was dropped.
    StageWithoutId {
        /// Its position in `stages`.
        index: usize,
    },
}

impl fmt::Display for MappingWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MappingWarning::InvalidValue {
                property,
                value,
                error,
            } => write!(f, "{property}: {value:?} ignored: {error}"),
            MappingWarning::Rounded { property, value } => {
                write!(f, "{property}: {value:?} rounded half-even")
            }
            MappingWarning::Clamped { property, value } => {
                write!(f, "{property}: {value:?} clamped into range")
            }
            MappingWarning::UnknownEnumValue { property, value } => {
                write!(f, "{property}: unknown value {value:?} kept")
            }
            MappingWarning::IdMismatch { id, hs_object_id } => {
                write!(f, "id {id:?} differs from hs_object_id {hs_object_id:?}")
            }
            MappingWarning::InvalidAssociation { object, value } => {
                write!(f, "associated {object} id {value:?} dropped")
            }
            MappingWarning::StageWithoutId { index } => {
                write!(f, "pipeline stage #{index} has no id and was dropped")
            }
        }
    }
}

/// Reads typed values out of one record's properties, collecting warnings.
struct Reader<'a> {
    properties: &'a BTreeMap<String, Option<String>>,
    warnings: Vec<MappingWarning>,
}

impl<'a> Reader<'a> {
    fn new(properties: &'a BTreeMap<String, Option<String>>) -> Self {
        Reader {
            properties,
            warnings: Vec::new(),
        }
    }

    fn raw(&self, name: &str) -> Option<&'a str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }

    fn invalid(&mut self, property: &str, value: &str, error: ValueError) {
        self.warnings.push(MappingWarning::InvalidValue {
            property: property.to_owned(),
            value: value.to_owned(),
            error,
        });
    }

    /// Runs `parse` on the property's value; a refusal becomes a warning and `None`.
    fn parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<Option<T>, ValueError>,
    ) -> Option<(T, &'a str)> {
        let raw = self.raw(name)?;
        match parse(raw) {
            Ok(value) => value.map(|v| (v, raw)),
            Err(error) => {
                self.invalid(name, raw, error);
                None
            }
        }
    }

    fn text(&self, name: &str) -> Option<String> {
        parse::clean_text(self.raw(name))
    }

    fn web_address(&self, name: &str) -> Option<String> {
        self.raw(name).and_then(parse::normalize_web_address)
    }

    fn timestamp(&mut self, name: &str) -> Option<DateTime<Utc>> {
        self.parsed(name, parse::parse_timestamp).map(|(v, _)| v)
    }

    /// `name`, else the envelope's `createdAt` / `updatedAt`.
    fn timestamp_or(
        &mut self,
        name: &str,
        fallback: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        self.timestamp(name).or(fallback)
    }

    fn rounded<T>(&mut self, name: &str, value: Option<(parse::Rounded<T>, &str)>) -> Option<T> {
        let (r, raw) = value?;
        if r.rounded {
            self.warnings.push(MappingWarning::Rounded {
                property: name.to_owned(),
                value: raw.to_owned(),
            });
        }
        Some(r.value)
    }

    fn money_cents(&mut self, name: &str) -> Option<i64> {
        let parsed = self.parsed(name, parse::parse_money_cents);
        self.rounded(name, parsed)
    }

    fn count(&mut self, name: &str) -> Option<u64> {
        let parsed = self.parsed(name, parse::parse_count);
        self.rounded(name, parsed)
    }

    fn probability(&mut self, name: &str) -> Option<Probability> {
        let (c, raw) = self.parsed(name, parse::parse_probability)?;
        if c.clamped {
            self.warnings.push(MappingWarning::Clamped {
                property: name.to_owned(),
                value: raw.to_owned(),
            });
        }
        Probability::new(c.value)
    }

    fn owner_id(&mut self, name: &str) -> Option<OwnerId> {
        let raw = self.raw(name)?;
        if raw.trim().is_empty() {
            return None;
        }
        match raw.parse() {
            Ok(id) => Some(id),
            Err(_) => {
                self.invalid(name, raw, ValueError::NotADecimal);
                None
            }
        }
    }

    fn lifecycle_stage(&mut self, name: &str) -> Option<LifecycleStage> {
        let raw = self.text(name)?;
        let stage = LifecycleStage::from(raw);
        self.warn_unknown(name, stage.is_unknown(), stage.as_str());
        Some(stage)
    }

    fn lead_status(&mut self, name: &str) -> Option<LeadStatus> {
        let raw = self.text(name)?;
        let status = LeadStatus::from(raw);
        self.warn_unknown(name, status.is_unknown(), status.as_str());
        Some(status)
    }

    fn warn_unknown(&mut self, property: &str, unknown: bool, value: &str) {
        if unknown {
            self.warnings.push(MappingWarning::UnknownEnumValue {
                property: property.to_owned(),
                value: value.to_owned(),
            });
        }
    }

    /// The record id: `hs_object_id`, falling back to the envelope id.
    fn record_id(&mut self, envelope_id: &str) -> Result<HubSpotObjectId, SkipReason> {
        let property = parse::clean_text(self.raw(props::HS_OBJECT_ID));
        let envelope = parse::clean_text(Some(envelope_id));
        let parse_id = |s: &String| s.parse::<HubSpotObjectId>().ok();
        match (&property, &envelope) {
            (None, None) => Err(SkipReason::MissingId),
            (Some(p), e) => match (parse_id(p), e.as_ref().and_then(parse_id)) {
                (Some(pid), eid) => {
                    if let Some(e) = e.as_ref().filter(|_| eid != Some(pid)) {
                        self.warnings.push(MappingWarning::IdMismatch {
                            id: e.clone(),
                            hs_object_id: p.clone(),
                        });
                    }
                    Ok(pid)
                }
                // A garbled hs_object_id must not cost a record whose envelope id is fine.
                (None, Some(eid)) => {
                    self.invalid(props::HS_OBJECT_ID, p, ValueError::NotADecimal);
                    Ok(eid)
                }
                (None, None) => Err(SkipReason::InvalidId { value: p.clone() }),
            },
            (None, Some(e)) => {
                parse_id(e).ok_or_else(|| SkipReason::InvalidId { value: e.clone() })
            }
        }
    }

    fn associations(&mut self, object: &str, ids: &[String]) -> Vec<HubSpotObjectId> {
        let mut out: Vec<HubSpotObjectId> = Vec::with_capacity(ids.len());
        for raw in ids {
            match raw.parse() {
                Ok(id) if !out.contains(&id) => out.push(id),
                Ok(_) => {}
                Err(_) => self.warnings.push(MappingWarning::InvalidAssociation {
                    object: object.to_owned(),
                    value: raw.clone(),
                }),
            }
        }
        out
    }

    fn skip<T>(self, reason: SkipReason) -> MappingOutcome<T> {
        MappingOutcome::Skipped {
            reason,
            warnings: self.warnings,
        }
    }

    fn mapped<T>(self, record: T) -> MappingOutcome<T> {
        MappingOutcome::Mapped {
            record,
            warnings: self.warnings,
        }
    }
}

/// Maps a HubSpot contact to a [`Customer`]. Skipped without a valid e-mail or id.
pub fn map_contact(input: &HubSpotRecord) -> MappingOutcome<Customer> {
    let mut r = Reader::new(&input.properties);
    let external_id = match r.record_id(&input.id) {
        Ok(id) => id,
        Err(reason) => return r.skip(reason),
    };
    let email = match r.raw(props::EMAIL).map(str::trim) {
        None | Some("") => return r.skip(SkipReason::MissingEmail),
        Some(raw) => match parse::normalize_email(raw) {
            Ok(email) => email,
            Err(_) => {
                return r.skip(SkipReason::InvalidEmail {
                    value: raw.to_owned(),
                });
            }
        },
    };
    let customer = Customer {
        external_id,
        email,
        name: parse::join_name(r.raw(props::FIRSTNAME), r.raw(props::LASTNAME)),
        company_name: r.text(props::COMPANY),
        phone: r.text(props::PHONE),
        job_title: r.text(props::JOBTITLE),
        city: r.text(props::CITY),
        state: r.text(props::STATE),
        country: r.text(props::COUNTRY),
        website: r.web_address(props::WEBSITE),
        lead_status: r.lead_status(props::HS_LEAD_STATUS),
        lifecycle_stage: r.lifecycle_stage(props::LIFECYCLESTAGE),
        owner_id: r.owner_id(props::HUBSPOT_OWNER_ID),
        last_activity_at: r.timestamp(props::HS_LAST_SALES_ACTIVITY_DATE),
        first_seen_at: r.timestamp_or(props::CREATEDATE, input.created_at),
        source_updated_at: r.timestamp_or(props::LASTMODIFIEDDATE, input.updated_at),
        archived: input.archived,
        company_ids: r.associations("companies", &input.company_ids),
    };
    r.mapped(customer)
}

/// Maps a HubSpot company to a [`Company`]. Skipped only without a valid id.
pub fn map_company(input: &HubSpotRecord) -> MappingOutcome<Company> {
    let mut r = Reader::new(&input.properties);
    let external_id = match r.record_id(&input.id) {
        Ok(id) => id,
        Err(reason) => return r.skip(reason),
    };
    let company = Company {
        external_id,
        name: r.text(props::NAME),
        domain: r.web_address(props::DOMAIN),
        website: r.web_address(props::WEBSITE),
        industry: r.text(props::INDUSTRY),
        employee_count: r.count(props::NUMBEROFEMPLOYEES),
        annual_revenue_cents: r.money_cents(props::ANNUALREVENUE),
        lifecycle_stage: r.lifecycle_stage(props::LIFECYCLESTAGE),
        owner_id: r.owner_id(props::HUBSPOT_OWNER_ID),
        last_activity_at: r.timestamp(props::HS_LAST_SALES_ACTIVITY_DATE),
        created_at: r.timestamp_or(props::CREATEDATE, input.created_at),
        source_updated_at: r.timestamp_or(props::HS_LASTMODIFIEDDATE, input.updated_at),
        archived: input.archived,
        contact_ids: r.associations("contacts", &input.contact_ids),
    };
    r.mapped(company)
}

/// Maps a HubSpot deal to a [`Deal`]. Skipped only without a valid id.
pub fn map_deal(input: &HubSpotRecord) -> MappingOutcome<Deal> {
    let mut r = Reader::new(&input.properties);
    let external_id = match r.record_id(&input.id) {
        Ok(id) => id,
        Err(reason) => return r.skip(reason),
    };
    let deal = Deal {
        external_id,
        name: r.text(props::DEALNAME),
        pipeline_id: r.text(props::PIPELINE).map(PipelineId),
        stage_id: r.text(props::DEALSTAGE).map(StageId),
        amount_cents: r.money_cents(props::AMOUNT),
        closed_at: r.timestamp(props::CLOSEDATE),
        close_probability: r.probability(props::HS_DEAL_STAGE_PROBABILITY),
        owner_id: r.owner_id(props::HUBSPOT_OWNER_ID),
        created_at: r.timestamp_or(props::CREATEDATE, input.created_at),
        source_updated_at: r.timestamp_or(props::HS_LASTMODIFIEDDATE, input.updated_at),
        archived: input.archived,
        contact_ids: r.associations("contacts", &input.contact_ids),
        company_ids: r.associations("companies", &input.company_ids),
    };
    r.mapped(deal)
}

/// Maps a HubSpot owner to an [`Owner`]. Skipped only without a valid id; a bad e-mail is
/// kept as sent with a warning, because records still point at the owner.
pub fn map_owner(input: &HubSpotOwner) -> MappingOutcome<Owner> {
    let empty = BTreeMap::new();
    let mut r = Reader::new(&empty);
    let id = match parse::clean_text(Some(&input.id)) {
        None => return r.skip(SkipReason::MissingId),
        Some(raw) => match raw.parse::<OwnerId>() {
            Ok(id) => id,
            Err(_) => return r.skip(SkipReason::InvalidId { value: raw }),
        },
    };
    let email = parse::clean_text(input.email.as_deref()).map(|raw| {
        parse::normalize_email(&raw).unwrap_or_else(|error| {
            r.invalid("email", &raw, error);
            raw
        })
    });
    let kind = parse::clean_text(input.kind.as_deref()).map_or(OwnerKind::Person, |raw| {
        let kind = OwnerKind::from(raw);
        r.warn_unknown("type", kind.is_unknown(), kind.as_str());
        kind
    });
    let owner = Owner {
        id,
        email,
        name: parse::join_name(input.first_name.as_deref(), input.last_name.as_deref()),
        kind,
        user_id: input.user_id,
        archived: input.archived,
        updated_at: input.updated_at,
    };
    r.mapped(owner)
}

/// Maps a HubSpot deal pipeline to a [`Pipeline`], stages in display order. Skipped only
/// without an id; a stage without an id is dropped with a warning.
pub fn map_pipeline(input: &HubSpotPipeline) -> MappingOutcome<Pipeline> {
    let empty = BTreeMap::new();
    let mut r = Reader::new(&empty);
    let Some(id) = parse::clean_text(Some(&input.id)) else {
        return r.skip(SkipReason::MissingId);
    };
    let mut stages = Vec::with_capacity(input.stages.len());
    for (index, stage) in input.stages.iter().enumerate() {
        let Some(stage_id) = parse::clean_text(Some(&stage.id)) else {
            r.warnings.push(MappingWarning::StageWithoutId { index });
            continue;
        };
        let mut m = Reader::new(&stage.metadata);
        let probability = m.probability("probability");
        let is_closed = m
            .parsed("isClosed", parse::parse_bool)
            .is_some_and(|(closed, _)| closed);
        // Name metadata warnings after the stage, so sync can say which one is wrong.
        r.warnings.extend(m.warnings.into_iter().map(|w| match w {
            MappingWarning::InvalidValue {
                property,
                value,
                error,
            } => MappingWarning::InvalidValue {
                property: format!("stages.{stage_id}.metadata.{property}"),
                value,
                error,
            },
            MappingWarning::Clamped { property, value } => MappingWarning::Clamped {
                property: format!("stages.{stage_id}.metadata.{property}"),
                value,
            },
            other => other,
        }));
        stages.push(Stage {
            id: StageId(stage_id),
            label: stage.label.trim().to_owned(),
            display_order: stage.display_order,
            probability,
            is_closed,
            archived: stage.archived,
        });
    }
    stages.sort_by_key(|s| s.display_order);
    let pipeline = Pipeline {
        id: PipelineId(id),
        label: input.label.trim().to_owned(),
        display_order: input.display_order,
        archived: input.archived,
        stages,
    };
    r.mapped(pipeline)
}
