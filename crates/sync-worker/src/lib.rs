//! sync-worker: keeps hubscore's mirror of each connected portal's CRM data.
//!
//! It runs full, incremental and reconciliation syncs of contacts, companies, deals,
//! owners, pipelines and associations, applies webhook batches, maps records through the
//! `domain` crate, stores them in the `sync` schema and publishes `crm.changed`. It must
//! not touch another service's schema; it gets access tokens from auth-gateway.

pub mod config;
pub mod startup;

pub use config::Settings;
pub use startup::Application;

use platform::config::TelemetrySettings;
use platform::shutdown::Shutdown;

/// The `sync-worker` service, as the shared runner sees it.
pub struct SyncWorker;

impl platform::service::Service for SyncWorker {
    const NAME: &'static str = "sync-worker";
    const ABOUT: &'static str =
        "hubscore sync worker: full, incremental and reconciliation sync of HubSpot CRM data";
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
