//! writeback-worker: writes scores back into HubSpot.
//!
//! It coalesces `score.updated` per portal and writes the values with HubSpot batch
//! updates, only where the value differs from what it last wrote (kept in the
//! `writeback` schema). It must not touch another service's schema.

pub mod config;
pub mod startup;

pub use config::Settings;
pub use startup::Application;

use platform::config::TelemetrySettings;
use platform::shutdown::Shutdown;

/// The `writeback-worker` service, as the shared runner sees it.
pub struct WritebackWorker;

impl platform::service::Service for WritebackWorker {
    const NAME: &'static str = "writeback-worker";
    const ABOUT: &'static str =
        "hubscore writeback worker: writes changed scores back into HubSpot properties in batches";
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
