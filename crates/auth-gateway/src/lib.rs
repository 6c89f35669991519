//! auth-gateway: hubscore's public API entry.
//!
//! It authenticates callers (JWT bearer), checks their role, connects HubSpot portals
//! (OAuth code flow or a private-app token), keeps HubSpot credentials encrypted in the
//! `auth` schema, and proxies `/api/v1/...` to the service that owns the data with a
//! short-lived internal JWT. It is the only holder of the encryption key and the OAuth
//! client secret, and the only service that refreshes OAuth tokens (workers get them from
//! its `/internal/v1` API). It must not read or write any other service's schema, and no
//! secret it holds may reach a log line, an error, a metric or an audit entry.
//!
//! User documentation: `docs/auth-gateway.md`.

pub mod caller;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod hubspot;
pub mod internal_auth;
pub mod routes;
pub mod startup;
pub mod state;
pub mod tokens;
pub mod vault;

pub use config::Settings;
pub use startup::Application;

use platform::config::TelemetrySettings;
use platform::shutdown::Shutdown;

/// The `auth-gateway` service, as the shared runner sees it.
pub struct AuthGateway;

impl platform::service::Service for AuthGateway {
    const NAME: &'static str = "auth-gateway";
    const ABOUT: &'static str = "hubscore API entry: JWT auth and roles, HubSpot connections, encrypted token vault. \
         Also: `auth-gateway issue-token --help`, `auth-gateway rotate-keys --help`";
    const DEFAULTS: &'static str = config::DEFAULTS;
    type Settings = Settings;

    fn telemetry(settings: &Settings) -> &TelemetrySettings {
        &settings.telemetry
    }

    async fn migrate(settings: Settings) -> anyhow::Result<()> {
        startup::migrate(&settings).await
    }

    async fn serve(settings: Settings, shutdown: Shutdown) -> anyhow::Result<()> {
        // Every development value the gateway holds, its own and the internal-token keys,
        // is named in one refusal (Application::build checks again for tests).
        settings.check_secrets()?;
        Application::build(settings)
            .await?
            .run_until_stopped(shutdown)
            .await
    }
}

/// Starts logging for a tool subcommand, as `serve` does.
fn platform_telemetry(settings: &Settings) -> anyhow::Result<()> {
    platform::telemetry::init(
        <AuthGateway as platform::service::Service>::NAME,
        &settings.telemetry,
    )
}
