//! sync-worker: keeps hubscore's mirror of each connected portal's CRM data.
//!
//! It runs full, incremental (webhook) and reconciliation syncs of contacts, companies,
//! deals, owners, pipelines and associations, maps records through the `domain` crate,
//! stores them in the `sync` schema and publishes `crm.changed`, `sync.progress` and
//! `sync.completed` through its outbox. It must not touch another service's schema, and
//! it gets HubSpot access tokens from auth-gateway (never stores credentials).
//!
//! Modules: [`handlers`] (the two queues), [`runner`] (which replica runs which sync),
//! [`sync`] (executing a run), [`db`] (the schema), [`routes`] (HTTP API), [`hubspot`]
//! (clients and token sources).

pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod handlers;
pub mod hubspot;
pub mod routes;
pub mod runner;
pub mod startup;
pub mod sync;

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
    const QUEUES: &'static [&'static str] = &["sync-worker.commands", "sync-worker.webhooks"];
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
