//! The app-level developer API: calls made as the OAuth app with its developer API key
//! (`hapikey`), not as a portal. Today that is the app's timeline event templates, which every
//! portal that installed the app uses for its timeline events.
//!
//! HubSpot takes the key only in the query string, so it is in every request URL. It never
//! leaves the client in anything else: the calls go through the portal client's one request
//! loop (`client.rs`), whose errors carry the endpoint label, HubSpot's answer and `reqwest`
//! errors stripped of their URL; nothing logs a URL, metrics are labelled by endpoint only,
//! and `Debug` prints `***` for the key.
//!
//! These calls are not portal calls, so they draw nothing from a portal's rate budget
//! ([`crate::PortalLimiter`]). They are retried like the portal calls (see the crate docs,
//! "Retries"): reads and deletes after 429, 5xx, 423, 477, lost connections and unreadable
//! answers; a create only after answers that say HubSpot did nothing (429, connection
//! refused), otherwise it fails with [`HubSpotError::OutcomeUnknown`]. A 401 is not retried:
//! unlike a portal's access token, the key is not refreshed.

use std::fmt;

use secrecy::SecretString;

use crate::api::segment;
use crate::client::{Call, HubSpotClient};
use crate::config::ClientConfig;
use crate::error::HubSpotError;
use crate::metrics::ClientMetrics;
use crate::types::{EventTemplate, NewEventTemplate, Page};

/// Calls made as the app with its developer API key (not as a portal).
#[derive(Clone)]
pub struct DeveloperClient {
    client: HubSpotClient,
    app_id: u64,
}

impl fmt::Debug for DeveloperClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeveloperClient")
            .field("api_base_url", &self.client.config().api_base_url)
            .field("app_id", &self.app_id)
            .field("developer_api_key", &"***")
            .finish_non_exhaustive()
    }
}

impl DeveloperClient {
    /// A client for app `app_id` on the API host in `config`, authenticating with the app's
    /// developer API key. Retries follow `config.retry`.
    pub fn new(
        config: ClientConfig,
        app_id: u64,
        developer_api_key: SecretString,
    ) -> Result<Self, HubSpotError> {
        let client = HubSpotClient::for_developer_key(config, developer_api_key)?;
        Ok(Self { client, app_id })
    }

    /// Record into these series (`hubspot_requests_total` etc., with `developer.*` endpoint
    /// labels) instead of an unregistered set.
    pub fn with_metrics(self, metrics: ClientMetrics) -> Self {
        Self {
            client: self.client.with_metrics(metrics),
            app_id: self.app_id,
        }
    }

    /// The app's id.
    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    fn templates_path(&self) -> String {
        // Only the v3 path exists: the date-versioned timeline is a different model.
        format!("/integrators/timeline/v3/{}/event-templates", self.app_id)
    }

    /// Every event template of the app.
    pub async fn list_event_templates(&self) -> Result<Vec<EventTemplate>, HubSpotError> {
        let call = Call::get("developer.event_templates.list", self.templates_path());
        let (_, page): (u16, Page<EventTemplate>) = self.client.execute(&call).await?;
        Ok(page.results)
    }

    /// One event template; [`HubSpotError::NotFound`] when the app has none with that id.
    pub async fn get_event_template(
        &self,
        template_id: &str,
    ) -> Result<EventTemplate, HubSpotError> {
        let path = format!("{}/{}", self.templates_path(), segment(template_id));
        let call = Call::get("developer.event_templates.get", path);
        Ok(self.client.execute(&call).await?.1)
    }

    /// Creates an event template. Not resent when HubSpot's answer leaves open whether it
    /// was created ([`HubSpotError::OutcomeUnknown`]): list the templates (by name) before
    /// creating it again. HubSpot allows 750 templates per app.
    pub async fn create_event_template(
        &self,
        template: &NewEventTemplate,
    ) -> Result<EventTemplate, HubSpotError> {
        let call = Call::post(
            "developer.event_templates.create",
            self.templates_path(),
            template,
        )?;
        Ok(self.client.execute(&call).await?.1)
    }

    /// Deletes an event template; [`HubSpotError::NotFound`] when the app has none with that
    /// id (unless an earlier attempt of this call, resent after an unclear answer, deleted it).
    pub async fn delete_event_template(&self, template_id: &str) -> Result<(), HubSpotError> {
        let path = format!("{}/{}", self.templates_path(), segment(template_id));
        let call = Call::get("developer.event_templates.delete", path).delete();
        let (_, ()) = self.client.execute(&call).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_key() {
        let client = DeveloperClient::new(
            ClientConfig::for_base_url("http://sim"),
            42,
            SecretString::from("k3y-s3cret"),
        )
        .unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("k3y-s3cret"), "{debug}");
        assert!(debug.contains("42"), "{debug}");
        assert_eq!(client.app_id(), 42);
    }
}
