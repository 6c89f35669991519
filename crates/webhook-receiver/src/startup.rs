//! Wiring: builds the running service from its settings.

use platform::amqp::Broker;
use platform::health::Readiness;
use platform::http::HttpContext;
use platform::metrics::Metrics;
use platform::service::Running;
use platform::service::Service as _;
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
    broker: Broker,
}

impl Application {
    /// Starts connecting to the broker, binds the HTTP port (0 picks a free one) and serves.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Metrics::new(crate::WebhookReceiver::NAME)?;
        let broker = Broker::start(settings.amqp.clone(), Vec::new());
        let readiness = Readiness::new().with_check("broker", broker.readiness_check());
        let running = platform::service::start_http(
            &settings.http,
            HttpContext { metrics, readiness },
            |_| {},
        )?;
        Ok(Self { running, broker })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.running.port()
    }

    /// The broker connection.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Runs until `shutdown` is cancelled, then finishes in-flight work and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.running.run_until_stopped(shutdown).await
    }
}
