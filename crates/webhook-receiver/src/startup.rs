//! Wiring: builds the running service from its settings.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use platform::amqp::Broker;
use platform::health::Readiness;
use platform::http::HttpContext;
use platform::metrics::Metrics;
use platform::service::Running;
use platform::service::Service as _;
use platform::shutdown::Shutdown;

use crate::Settings;
use crate::metrics::ReceiverMetrics;
use crate::publish::BatchPublisher;
use crate::routes::webhooks::{self, Intake};
use crate::secrets::{GatewaySecretSource, SecretCache};
use crate::signature::VerifyPolicy;

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
        let listener = platform::http::bind(&settings.http)?;
        Self::build_with_listener(settings, listener).await
    }

    /// Like [`Application::build`] on a listener bound beforehand, for tests that must
    /// know the port (it is part of the signed URL) before the service starts.
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::new(crate::WebhookReceiver::NAME)?;
        let receiver_metrics = ReceiverMetrics::register(metrics.registry())?;
        let broker = Broker::start(settings.amqp.clone(), Vec::new());
        let readiness = Readiness::new().with_check("broker", broker.readiness_check());
        let hooks = &settings.webhooks;
        let gateway = &settings.auth_gateway;
        let intake = web::Data::new(Intake {
            policy: VerifyPolicy {
                accepted: hooks.accepted_signature_versions.clone(),
                timestamp_tolerance_ms: hooks.timestamp_tolerance_ms,
            },
            public_base_url: hooks.public_base_url.clone(),
            app_secrets: hooks.app_client_secrets.clone(),
            max_body_bytes: hooks.max_body_bytes,
            max_events: hooks.max_events,
            secrets: SecretCache::new(
                Arc::new(GatewaySecretSource::new(gateway)?),
                Duration::from_secs(gateway.secrets_cache_ttl_secs),
                Duration::from_millis(gateway.refresh_min_interval_ms),
            ),
            publisher: BatchPublisher::new(
                &broker,
                hooks.publisher_channels,
                hooks.max_pending_publishes,
                Duration::from_millis(hooks.confirm_timeout_ms),
            ),
            metrics: receiver_metrics,
            admission: Arc::new(tokio::sync::Semaphore::new(
                hooks.max_in_flight_deliveries.max(1),
            )),
        });
        if hooks.app_client_secrets.is_empty() {
            tracing::warn!(
                "webhooks.app_client_secrets is empty: the public-app route refuses every delivery"
            );
        }
        let port = listener.local_addr()?.port();
        let server =
            platform::http::serve(listener, HttpContext { metrics, readiness }, move |cfg| {
                webhooks::configure(cfg, intake.clone());
            })?;
        tracing::info!(http.port = port, "listening");
        Ok(Self {
            running: Running::new(port, server),
            broker,
        })
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
