//! Account info, owners, deal pipelines and timeline events.

use crate::client::{Call, HubSpotClient};
use crate::error::HubSpotError;
use crate::types::{
    AccountDetails, BatchResponse, DailyUsage, Owner, Page, Pipeline, TimelineEvent,
    TimelineEventResponse,
};

/// Timeline events created per request at most.
pub const TIMELINE_BATCH_SIZE: usize = 500;

impl HubSpotClient {
    /// The portal's id, time zone, currency and hosting location.
    pub async fn account_details(&self) -> Result<AccountDetails, HubSpotError> {
        let path = format!(
            "{}/details",
            self.config().family("/account-info/v3", "/account-info")
        );
        Ok(self.execute(&Call::get("account.details", path)).await?.1)
    }

    /// Today's private-app API usage against the daily quota.
    pub async fn daily_usage(&self) -> Result<Vec<DailyUsage>, HubSpotError> {
        // Only the v3 path exists for this endpoint.
        let call = Call::get(
            "account.daily_usage",
            "/account-info/v3/api-usage/daily/private-apps".to_owned(),
        );
        let (_, page): (u16, Page<DailyUsage>) = self.execute(&call).await?;
        Ok(page.results)
    }

    /// Every owner, all pages.
    pub async fn list_owners(&self) -> Result<Vec<Owner>, HubSpotError> {
        let path = self.config().family("/crm/v3/owners", "/crm/owners");
        let mut owners = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut call = Call::get("owners.list", path.clone()).query("limit", "100");
            if let Some(after) = &after {
                call = call.query("after", after.clone());
            }
            let (_, page): (u16, Page<Owner>) = self.execute(&call).await?;
            after = page.next_after().map(str::to_owned);
            owners.extend(page.results);
            if after.is_none() {
                return Ok(owners);
            }
        }
    }

    /// The deal pipelines with their stages.
    pub async fn deal_pipelines(&self) -> Result<Vec<Pipeline>, HubSpotError> {
        let path = format!(
            "{}/deals",
            self.config().family("/crm/v3/pipelines", "/crm/pipelines")
        );
        let (_, page): (u16, Page<Pipeline>) =
            self.execute(&Call::get("pipelines.list", path)).await?;
        Ok(page.results)
    }

    /// Creates a timeline event from an app event template. Always the v3 template API: the
    /// date-versioned timeline is a different model ("app events"). Not resent when HubSpot's
    /// answer leaves open whether the event was created ([`HubSpotError::OutcomeUnknown`]).
    pub async fn create_timeline_event(
        &self,
        event: &TimelineEvent,
    ) -> Result<TimelineEventResponse, HubSpotError> {
        let call = Call::post(
            "timeline.create",
            "/integrators/timeline/v3/events".to_owned(),
            event,
        )?;
        Ok(self.execute(&call).await?.1)
    }

    /// Creates up to [`TIMELINE_BATCH_SIZE`] timeline events in one request
    /// (`/integrators/timeline/v3/events/batch/create`). On a 207 the answer's `errors` name
    /// the events HubSpot refused (their ids in `context`, see
    /// [`crate::StandardError::failed_ids`]); `results` echo the created ones.
    ///
    /// Safe to send twice, so it is retried like a read: every event carries its own id, and
    /// HubSpot refuses a second event with an id it has (category `CONFLICT`), so a resend
    /// after a lost answer shows no event twice; the caller counts a `CONFLICT` as created.
    pub async fn create_timeline_events(
        &self,
        events: &[TimelineEvent],
    ) -> Result<BatchResponse<TimelineEventResponse>, HubSpotError> {
        if events.len() > TIMELINE_BATCH_SIZE {
            return Err(HubSpotError::Validation {
                message: format!(
                    "at most {TIMELINE_BATCH_SIZE} timeline events per request, not {}",
                    events.len()
                ),
                errors: Vec::new(),
            });
        }
        let call = Call::post(
            "timeline.batch_create",
            "/integrators/timeline/v3/events/batch/create".to_owned(),
            &serde_json::json!({ "inputs": events }),
        )?
        .idempotent();
        Ok(self.execute(&call).await?.1)
    }
}
