//! webhook-receiver: takes HubSpot's webhook deliveries.
//!
//! It verifies each delivery's signature on the raw body (v3 by default; v1/v2 where
//! configured), parses the events into the contract's `WebhookEvent`, publishes one
//! `webhook.batch` message per portal of the delivery, waits for the broker's confirm
//! and only then answers 2xx (503 when the broker cannot take it in time, so HubSpot
//! retries). It is stateless: it owns no schema and must not call HubSpot or touch the
//! database; private-app secrets come from auth-gateway's internal API.

pub mod config;
pub mod error;
pub mod events;
pub mod metrics;
pub mod publish;
pub mod routes;
pub mod secrets;
pub mod signature;
pub mod startup;

pub use config::Settings;
pub use startup::Application;

use platform::config::TelemetrySettings;
use platform::shutdown::Shutdown;

/// The `webhook-receiver` service, as the shared runner sees it.
pub struct WebhookReceiver;

impl platform::service::Service for WebhookReceiver {
    const NAME: &'static str = "webhook-receiver";
    const ABOUT: &'static str = "hubscore webhook receiver: verifies HubSpot signatures and publishes webhook batches with publisher confirms";
    const DEFAULTS: &'static str = config::DEFAULTS;
    type Settings = Settings;

    fn telemetry(settings: &Settings) -> &TelemetrySettings {
        &settings.telemetry
    }

    async fn migrate(settings: Settings) -> anyhow::Result<()> {
        startup::migrate(&settings).await
    }

    async fn serve(settings: Settings, shutdown: Shutdown) -> anyhow::Result<()> {
        platform::config::refuse_development_values(
            settings.runtime.development,
            &settings.internal_jwt.development_values(),
        )?;
        Application::build(settings)
            .await?
            .run_until_stopped(shutdown)
            .await
    }
}
