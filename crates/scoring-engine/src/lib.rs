//! scoring-engine: computes each customer's health score (0-100) with its factors.
//!
//! It keeps its own projection of the CRM fields it needs in the `scoring` schema,
//! recomputes affected customers on `crm.changed` and `sync.completed`, rescores every org
//! on a schedule (time moves scores), stores every score with its breakdown and config
//! version, and publishes `score.updated` (and `score.alert`) through its outbox. It must
//! not call HubSpot or read another service's schema.
//!
//! Modules: [`model`] (the pure scoring function and configs), [`engine`] (scoring runs),
//! [`db`] (the schema), [`handlers`] (messages), [`routes`] (HTTP), [`scheduler`].

pub mod clock;
pub mod config;
pub mod db;
pub mod engine;
pub mod error;
pub mod handlers;
pub mod model;
pub mod routes;
pub mod scheduler;
pub mod startup;
pub mod state;

pub use config::Settings;
pub use startup::Application;

use platform::config::TelemetrySettings;
use platform::shutdown::Shutdown;

/// The `scoring-engine` service, as the shared runner sees it.
pub struct ScoringEngine;

impl platform::service::Service for ScoringEngine {
    const NAME: &'static str = "scoring-engine";
    const ABOUT: &'static str =
        "hubscore scoring engine: customer health scores with explained factors";
    const DEFAULTS: &'static str = config::DEFAULTS;
    const QUEUES: &'static [&'static str] = &["scoring-engine.crm"];
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
