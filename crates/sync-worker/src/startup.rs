//! Wiring: builds the running service from its settings.

use platform::db::Pool;
use platform::service::Service as _;
use platform::service::{Running, Stateful};
use platform::shutdown::Shutdown;

use crate::Settings;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "sync";

/// Creates the `sync` schema and applies pending migrations, and those of the shared
/// HubSpot rate budget (`hubspot_budget`), which every service that calls HubSpot draws on.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    platform::service::migrate_schema(&settings.database, SCHEMA, []).await?;
    platform::service::migrate_schema_without_outbox(
        &settings.database,
        hubspot_client::BUDGET_SCHEMA,
        [hubspot_client::MIGRATIONS],
    )
    .await
}

/// The started service.
pub struct Application {
    running: Running,
    state: Stateful,
}

impl Application {
    /// Connects, binds the HTTP port (0 picks a free one) and starts serving.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (state, relay) = Stateful::connect(
            crate::SyncWorker::NAME,
            SCHEMA,
            &settings.database,
            &settings.amqp,
            &settings.outbox,
            Vec::new(),
        )?;
        let running = platform::service::start_http(&settings.http, state.http_context(), |_| {})?
            .with_relay(relay);
        Ok(Self { running, state })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.running.port()
    }

    /// The service's database pool.
    pub fn pool(&self) -> &Pool {
        &self.state.pool
    }

    /// Runs until `shutdown` is cancelled, then finishes in-flight work and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.running.run_until_stopped(shutdown).await
    }
}
