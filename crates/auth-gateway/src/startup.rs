//! Wiring: builds the running service from its settings.

use std::time::Duration;

use actix_web::web;
use platform::db::Pool;
use platform::service::Service as _;
use platform::service::{Running, Stateful};
use platform::shutdown::Shutdown;
use prometheus::{IntCounterVec, Opts};

use crate::Settings;
use crate::caller::CallerVerifier;
use crate::hubspot::HubSpot;
use crate::internal_auth::InternalClients;
use crate::state::AppState;
use crate::vault::Vault;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "auth";

/// Creates the `auth` schema and applies pending migrations, and those of the shared
/// HubSpot rate budget (`hubspot_budget`), which every service that calls HubSpot draws on.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    platform::service::migrate_schema(&settings.database, SCHEMA, [crate::db::MIGRATIONS]).await?;
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
    /// Checks the secrets, connects, binds the HTTP port (0 picks a free one) and starts
    /// serving.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check_secrets()?;
        let vault = Vault::from_keyring(&settings.vault.keyring)?;
        let verifier = CallerVerifier::new(&settings.caller_jwt).await?;
        let hubspot = HubSpot::new(&settings.hubspot, &settings.oauth)?;
        let internal_jwt =
            platform::jwt::InternalTokenSigner::from_settings(&settings.internal_jwt)?;
        let (state, relay) = Stateful::connect(
            crate::AuthGateway::NAME,
            SCHEMA,
            &settings.database,
            &settings.amqp,
            &settings.outbox,
            Vec::new(),
        )?;
        let refreshes = IntCounterVec::new(
            Opts::new(
                "auth_token_refreshes_total",
                "OAuth access-token refreshes by outcome (refreshed, invalid_grant, failed)",
            ),
            &["outcome"],
        )?;
        state
            .metrics
            .registry()
            .register(Box::new(refreshes.clone()))?;
        let app_state = web::Data::new(AppState {
            pool: state.pool.clone(),
            vault,
            hubspot,
            relay_waker: state.relay_waker.clone(),
            oauth: settings.oauth.clone(),
            refresh_margin: chrono::Duration::seconds(
                i64::try_from(settings.hubspot.refresh_margin_secs).unwrap_or(300),
            ),
            internal_jwt,
            clients: InternalClients::new(settings.internal_clients.clone()),
            upstreams: settings.upstreams.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(settings.upstreams.timeout_ms))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            refreshes,
        });
        let jwks = verifier.jwks();
        let verifier = web::Data::new(verifier);
        let mut running =
            platform::service::start_http(&settings.http, state.http_context(), move |cfg| {
                cfg.app_data(app_state.clone()).app_data(verifier.clone());
                crate::routes::configure(cfg);
            })?
            .with_relay(relay);
        if let Some(jwks) = jwks {
            let every = Duration::from_secs(settings.caller_jwt.jwks_refresh_secs.max(1));
            running = running.with_task("jwks-refresh", async move |shutdown| {
                jwks.refresh_until(every, shutdown).await;
                Ok(())
            });
        }
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
