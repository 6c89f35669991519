//! Wiring: builds the running service from its settings.

use anyhow::Context as _;
use platform::db::Pool;
use platform::health::Readiness;
use platform::http::HttpContext;
use platform::metrics::Metrics;
use platform::service::Running;
use platform::shutdown::Shutdown;

use crate::Settings;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "sync";

/// Creates the `sync` schema and applies pending migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let applied = platform::db::run_migrations(
        &settings.database.url,
        SCHEMA,
        [platform::outbox::MIGRATIONS],
    )
    .await?;
    tracing::info!(
        db.schema = SCHEMA,
        migrations.applied = applied.len(),
        "migrations applied"
    );
    Ok(())
}

/// The started service.
pub struct Application {
    running: Running,
    pool: Pool,
}

impl Application {
    /// Connects, binds the HTTP port (0 picks a free one) and starts serving.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Metrics::new("sync-worker")?;
        let pool = platform::db::connect_pool(&settings.database, SCHEMA)?;
        let readiness = Readiness::new().with_database(pool.clone());
        let listener = platform::http::bind(&settings.http)?;
        let port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        let server = platform::http::serve(listener, HttpContext { metrics, readiness }, |_| {})?;
        tracing::info!(http.port = port, "listening");
        Ok(Self {
            running: Running::new(port, server),
            pool,
        })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.running.port()
    }

    /// The service's database pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs until `shutdown` is cancelled, then finishes in-flight work and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.running.run_until_stopped(shutdown).await
    }
}
