//! hubscore's internal records: what a HubSpot contact, company, deal, owner or pipeline
//! becomes once mapped. Typed fields only: money in integer cents, instants in UTC,
//! enums that keep values they do not know.
//!
//! These are plain data. They know nothing of how they are stored or sent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{HubSpotObjectId, OwnerId, PipelineId, StageId};

/// A customer: hubscore's view of a HubSpot contact, the unit that gets a health score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// `hs_object_id`.
    pub external_id: HubSpotObjectId,
    /// `email`: trimmed, lower case, validated. A contact without one is not a customer.
    pub email: String,
    /// `firstname` + `lastname`, joined with one space.
    pub name: Option<String>,
    /// `company`: the free-text company name on the contact.
    pub company_name: Option<String>,
    /// `phone`, trimmed.
    pub phone: Option<String>,
    /// `jobtitle`, trimmed.
    pub job_title: Option<String>,
    /// `city`, trimmed.
    pub city: Option<String>,
    /// `state`, trimmed.
    pub state: Option<String>,
    /// `country`, trimmed.
    pub country: Option<String>,
    /// `website`, normalised like a company domain (lower case, no scheme, no trailing `/`).
    pub website: Option<String>,
    /// `hs_lead_status`.
    pub lead_status: Option<LeadStatus>,
    /// `lifecyclestage`.
    pub lifecycle_stage: Option<LifecycleStage>,
    /// `hubspot_owner_id`.
    pub owner_id: Option<OwnerId>,
    /// `hs_last_sales_activity_date`.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// `createdate`, falling back to the record's `createdAt`.
    pub first_seen_at: Option<DateTime<Utc>>,
    /// `lastmodifieddate`, falling back to the record's `updatedAt`; decides dedupe.
    pub source_updated_at: Option<DateTime<Utc>>,
    /// The record is archived (deleted) in HubSpot.
    pub archived: bool,
    /// Associated companies, in HubSpot's order, without duplicates.
    pub company_ids: Vec<HubSpotObjectId>,
}

/// A HubSpot company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    /// `hs_object_id`.
    pub external_id: HubSpotObjectId,
    /// `name`, trimmed.
    pub name: Option<String>,
    /// `domain`, normalised (lower case, no scheme, no trailing slash).
    pub domain: Option<String>,
    /// `website`, normalised the same way.
    pub website: Option<String>,
    /// `industry`: HubSpot's enumeration value (e.g. `COMPUTER_SOFTWARE`), kept as sent.
    pub industry: Option<String>,
    /// `numberofemployees`.
    pub employee_count: Option<u64>,
    /// `annualrevenue`, in cents.
    pub annual_revenue_cents: Option<i64>,
    /// `lifecyclestage` of the company.
    pub lifecycle_stage: Option<LifecycleStage>,
    /// `hubspot_owner_id`.
    pub owner_id: Option<OwnerId>,
    /// `hs_last_sales_activity_date`.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// `createdate`, falling back to the record's `createdAt`.
    pub created_at: Option<DateTime<Utc>>,
    /// `hs_lastmodifieddate`, falling back to the record's `updatedAt`.
    pub source_updated_at: Option<DateTime<Utc>>,
    /// The record is archived (deleted) in HubSpot.
    pub archived: bool,
    /// Associated contacts.
    pub contact_ids: Vec<HubSpotObjectId>,
}

/// A HubSpot deal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deal {
    /// `hs_object_id`.
    pub external_id: HubSpotObjectId,
    /// `dealname`, trimmed.
    pub name: Option<String>,
    /// `pipeline`.
    pub pipeline_id: Option<PipelineId>,
    /// `dealstage`; its meaning (open, won, lost) comes from the pipeline's [`Stage`].
    pub stage_id: Option<StageId>,
    /// `amount`, in cents.
    pub amount_cents: Option<i64>,
    /// `closedate`.
    pub closed_at: Option<DateTime<Utc>>,
    /// `hs_deal_stage_probability`, 0..=1.
    pub close_probability: Option<Probability>,
    /// `hubspot_owner_id`.
    pub owner_id: Option<OwnerId>,
    /// `createdate`, falling back to the record's `createdAt`.
    pub created_at: Option<DateTime<Utc>>,
    /// `hs_lastmodifieddate`, falling back to the record's `updatedAt`.
    pub source_updated_at: Option<DateTime<Utc>>,
    /// The record is archived (deleted) in HubSpot.
    pub archived: bool,
    /// Associated contacts.
    pub contact_ids: Vec<HubSpotObjectId>,
    /// Associated companies.
    pub company_ids: Vec<HubSpotObjectId>,
}

/// A HubSpot owner (a user or a queue that records are assigned to).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    /// `id`: the value found in `hubspot_owner_id`.
    pub id: OwnerId,
    /// `email`, trimmed and lower case when valid; kept as sent otherwise (owners are
    /// not skipped for a bad address, records point at them).
    pub email: Option<String>,
    /// `firstName` + `lastName`.
    pub name: Option<String>,
    /// `type`.
    pub kind: OwnerKind,
    /// `userId`; none for deactivated users.
    pub user_id: Option<u64>,
    /// The owner is archived.
    pub archived: bool,
    /// `updatedAt`.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A deal pipeline and its stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// `id` (`"default"` for the built-in one).
    pub id: PipelineId,
    /// `label`.
    pub label: String,
    /// `displayOrder`.
    pub display_order: i64,
    /// The pipeline is archived.
    pub archived: bool,
    /// Stages in display order.
    pub stages: Vec<Stage>,
}

impl Pipeline {
    /// The stage with this id, if the pipeline has it.
    pub fn stage(&self, id: &StageId) -> Option<&Stage> {
        self.stages.iter().find(|s| &s.id == id)
    }
}

/// One stage of a deal pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// `id`, e.g. `closedwon`.
    pub id: StageId,
    /// `label`.
    pub label: String,
    /// `displayOrder`.
    pub display_order: i64,
    /// `metadata.probability` (0 closed lost, 1 closed won).
    pub probability: Option<Probability>,
    /// `metadata.isClosed`.
    pub is_closed: bool,
    /// The stage is archived.
    pub archived: bool,
}

impl Stage {
    /// Where a deal in this stage stands: closed with probability 1 is won, any other
    /// closed stage is lost, the rest are open.
    pub fn deal_status(&self) -> DealStatus {
        match (self.is_closed, self.probability) {
            (false, _) => DealStatus::Open,
            (true, Some(p)) if p.value() >= 1.0 => DealStatus::Won,
            (true, _) => DealStatus::Lost,
        }
    }
}

/// Where a deal stands, from its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    /// Not closed.
    Open,
    /// Closed won.
    Won,
    /// Closed lost.
    Lost,
}

/// A probability in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Probability(f64);

impl Probability {
    /// The probability, or none when `value` is outside 0..=1 or not a number.
    pub fn new(value: f64) -> Option<Probability> {
        (0.0..=1.0).contains(&value).then_some(Probability(value))
    }

    /// The value, in 0..=1.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Probability {
    type Error = ProbabilityOutOfRange;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Probability::new(value).ok_or(ProbabilityOutOfRange(value))
    }
}

impl From<Probability> for f64 {
    fn from(p: Probability) -> f64 {
        p.0
    }
}

/// A probability outside 0..=1 was given.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("probability {0} is outside 0..=1")]
pub struct ProbabilityOutOfRange(pub f64);

hubspot_enum! {
    /// `lifecyclestage`. HubSpot's own `other` stage is [`LifecycleStage::Other`]; values
    /// this crate does not know (custom stages) are `Unknown`.
    LifecycleStage {
        /// `subscriber`.
        Subscriber => "subscriber",
        /// `lead`.
        Lead => "lead",
        /// `marketingqualifiedlead`.
        MarketingQualifiedLead => "marketingqualifiedlead",
        /// `salesqualifiedlead`.
        SalesQualifiedLead => "salesqualifiedlead",
        /// `opportunity`.
        Opportunity => "opportunity",
        /// `customer`.
        Customer => "customer",
        /// `evangelist`.
        Evangelist => "evangelist",
        /// `other`: HubSpot's catch-all stage.
        Other => "other",
    }
}

hubspot_enum! {
    /// `hs_lead_status` (HubSpot's default options).
    LeadStatus {
        /// `NEW`.
        New => "NEW",
        /// `OPEN`.
        Open => "OPEN",
        /// `IN_PROGRESS`.
        InProgress => "IN_PROGRESS",
        /// `OPEN_DEAL`.
        OpenDeal => "OPEN_DEAL",
        /// `UNQUALIFIED`.
        Unqualified => "UNQUALIFIED",
        /// `ATTEMPTED_TO_CONTACT`.
        AttemptedToContact => "ATTEMPTED_TO_CONTACT",
        /// `CONNECTED`.
        Connected => "CONNECTED",
        /// `BAD_TIMING`.
        BadTiming => "BAD_TIMING",
    }
}

hubspot_enum! {
    /// An owner's `type`.
    OwnerKind {
        /// `PERSON`: a user.
        Person => "PERSON",
        /// `QUEUE`: a team queue.
        Queue => "QUEUE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_lifecycle_stages_are_kept_verbatim() {
        assert_eq!(
            LifecycleStage::from_hubspot("customer"),
            LifecycleStage::Customer
        );
        let custom = LifecycleStage::from_hubspot("1234567");
        assert_eq!(custom, LifecycleStage::Unknown("1234567".into()));
        assert_eq!(custom.as_str(), "1234567");
    }

    #[test]
    fn enums_serialize_as_the_hubspot_value_and_read_back() {
        for stage in [
            LifecycleStage::Opportunity,
            LifecycleStage::Other,
            LifecycleStage::Unknown("x".into()),
        ] {
            let json = serde_json::to_string(&stage).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", stage.as_str()));
            let back: Option<LifecycleStage> = serde_json::from_str(&json).ok();
            assert_eq!(back, Some(stage));
        }
        assert_eq!(
            serde_json::to_string(&LeadStatus::InProgress).unwrap_or_default(),
            "\"IN_PROGRESS\""
        );
    }

    #[test]
    fn closed_stages_with_probability_one_are_won_and_other_closed_ones_lost() {
        let stage = |closed, p: f64| Stage {
            id: StageId("s".into()),
            label: "S".into(),
            display_order: 0,
            probability: Probability::new(p),
            is_closed: closed,
            archived: false,
        };
        assert_eq!(stage(true, 1.0).deal_status(), DealStatus::Won);
        assert_eq!(stage(true, 0.0).deal_status(), DealStatus::Lost);
        assert_eq!(stage(false, 0.4).deal_status(), DealStatus::Open);
    }

    #[test]
    fn probabilities_outside_zero_to_one_do_not_deserialize() {
        assert!(serde_json::from_str::<Probability>("1.5").is_err());
        assert!(serde_json::from_str::<Probability>("0.5").is_ok());
    }
}
