//! writeback-worker: writes scores back into HubSpot.
//!
//! It stores each `score.updated` as its record's latest score (acked once stored), and a
//! flusher per connection (one replica at a time, by PostgreSQL advisory lock) writes them
//! with HubSpot batch updates of 100, only the values that differ from what it last wrote
//! successfully (kept in the `writeback` schema), at the portal's shared rate budget. It
//! prepares the `hubscore` properties on connect, serves the outbound mapping, status and
//! backfill routes, and publishes `writeback.completed` through its outbox. It must not
//! touch another service's schema (except the shared `hubspot_budget`) nor call HubSpot
//! other than through `hubspot-client`.

pub mod config;
pub mod db;
pub mod error;
pub mod flush;
pub mod handlers;
pub mod hubspot;
pub mod mapping;
pub mod prepare;
pub mod retention;
pub mod routes;
pub mod startup;
pub mod timeline;

pub use config::Settings;
pub use hubspot::TokenSources;
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
    const QUEUES: &'static [&'static str] = &[
        "writeback-worker.scores",
        "writeback-worker.connections",
        "writeback-worker.attributes",
    ];
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
