//! Wiring: builds the running service from its settings.

use anyhow::Context as _;
use platform::health::Readiness;
use platform::http::HttpContext;
use platform::metrics::Metrics;
use platform::service::Running;
use platform::shutdown::Shutdown;

use crate::Settings;

/// webhook-receiver owns no schema: there is nothing to migrate.
pub async fn migrate(_settings: &Settings) -> anyhow::Result<()> {
    tracing::info!("webhook-receiver is stateless and owns no schema; nothing to migrate");
    Ok(())
}

/// The started service.
pub struct Application {
    running: Running,
}

impl Application {
    /// Binds the HTTP port (0 picks a free one) and starts serving.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Metrics::new("webhook-receiver")?;
        let readiness = Readiness::new();
        let listener = platform::http::bind(&settings.http)?;
        let port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        let server = platform::http::serve(listener, HttpContext { metrics, readiness }, |_| {})?;
        tracing::info!(http.port = port, "listening");
        Ok(Self {
            running: Running::new(port, server),
        })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.running.port()
    }

    /// Runs until `shutdown` is cancelled, then finishes in-flight work and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.running.run_until_stopped(shutdown).await
    }
}
