//! HubSpot clients per connection: where their tokens come from (auth-gateway in
//! production, a fixed token in tests) and the portal's shared rate budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hubspot_client::{
    BudgetSettings, ClientConfig, ClientMetrics, GatewayCredentials, GatewayTokenSource,
    HubSpotClient, PgBudgetStore, PortalAccess, PortalLimiter, StaticToken, TokenSource,
};
use uuid::Uuid;

use crate::config::{GatewaySettings, HubSpotSettings};
use crate::db::connections::Connection;

/// Gives the HubSpot client of a connection its token source. Production uses
/// [`GatewayTokens`]; tests inject [`StaticTokens`] through
/// [`crate::startup::Application::build_with_tokens`].
pub trait TokenProvider: Send + Sync {
    /// The token source for `connection`.
    fn token_source(&self, connection: &Connection) -> Arc<dyn TokenSource>;
}

/// Tokens from auth-gateway's internal API, with this service's own credentials.
pub struct GatewayTokens {
    http: reqwest::Client,
    credentials: GatewayCredentials,
}

impl GatewayTokens {
    /// A provider calling the gateway configured in `settings`.
    pub fn new(settings: &GatewaySettings) -> Self {
        Self {
            http: reqwest::Client::new(),
            credentials: GatewayCredentials {
                base_url: settings.base_url.clone(),
                service: settings.service.clone(),
                secret: settings.secret.clone(),
            },
        }
    }
}

impl TokenProvider for GatewayTokens {
    fn token_source(&self, connection: &Connection) -> Arc<dyn TokenSource> {
        Arc::new(GatewayTokenSource::new(
            self.http.clone(),
            self.credentials.clone(),
            connection.connection_id.to_string(),
        ))
    }
}

/// One fixed token for every connection: a simulator portal's private-app token in tests.
pub struct StaticTokens(String);

impl StaticTokens {
    /// Answers `token` for every connection.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl TokenProvider for StaticTokens {
    fn token_source(&self, _connection: &Connection) -> Arc<dyn TokenSource> {
        Arc::new(StaticToken::new(self.0.clone()))
    }
}

/// Builds and caches one client per connection, all drawing on the shared budget.
pub struct Clients {
    config: ClientConfig,
    settings: HubSpotSettings,
    tokens: Arc<dyn TokenProvider>,
    store: PgBudgetStore,
    metrics: ClientMetrics,
    cache: Mutex<HashMap<Uuid, HubSpotClient>>,
}

impl Clients {
    /// A factory for clients of `settings`' HubSpot.
    pub fn new(
        settings: HubSpotSettings,
        tokens: Arc<dyn TokenProvider>,
        store: PgBudgetStore,
        metrics: ClientMetrics,
    ) -> Self {
        Self {
            config: ClientConfig::for_base_url(&settings.api_base_url),
            settings,
            tokens,
            store,
            metrics,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client of `connection`, built on first use.
    pub fn client(&self, connection: &Connection) -> anyhow::Result<HubSpotClient> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = cache.get(&connection.connection_id) {
            return Ok(client.clone());
        }
        let access = PortalAccess {
            portal_id: connection.portal_id,
            auth: if connection.auth_kind == "oauth" {
                hubspot_client::AuthKind::OAuth
            } else {
                hubspot_client::AuthKind::PrivateApp
            },
            tier: self.settings.tier.tier(),
            api_limit_increase: false,
            utc_offset_minutes: 0,
        };
        let limiter = Arc::new(PortalLimiter::new(
            self.store.clone(),
            access,
            BudgetSettings {
                pace_slices: self.settings.pace_slices.get(),
                ..BudgetSettings::default()
            },
        ));
        let client =
            HubSpotClient::builder(self.config.clone(), self.tokens.token_source(connection))
                .limiter(limiter)
                .metrics(self.metrics.clone())
                .build()?;
        cache.insert(connection.connection_id, client.clone());
        Ok(client)
    }

    /// Forgets the client of a closed connection.
    pub fn forget(&self, connection_id: Uuid) {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&connection_id);
    }
}
