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

/// What a client's calls are for, which sets how it spends the portal's shared budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Webhook reads and field discovery: paced by `hubspot.pace_slices`, no reserve.
    Changes,
    /// Sync runs: paced by `hubspot.sync_pace_slices`, leaving
    /// `hubspot.sync_reserve_percent` of every window to [`Purpose::Changes`] and the
    /// portal's other callers.
    Sync,
}

/// Builds and caches one client per connection and purpose, all drawing on the shared budget.
pub struct Clients {
    config: ClientConfig,
    settings: HubSpotSettings,
    tokens: Arc<dyn TokenProvider>,
    store: PgBudgetStore,
    metrics: ClientMetrics,
    cache: Mutex<HashMap<(Uuid, Purpose), HubSpotClient>>,
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

    /// The client of `connection` for `purpose`, built on first use.
    pub fn client(
        &self,
        connection: &Connection,
        purpose: Purpose,
    ) -> anyhow::Result<HubSpotClient> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (connection.connection_id, purpose);
        if let Some(client) = cache.get(&key) {
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
            self.budget_settings(purpose),
        ));
        let client =
            HubSpotClient::builder(self.config.clone(), self.tokens.token_source(connection))
                .limiter(limiter)
                .metrics(self.metrics.clone())
                .build()?;
        cache.insert(key, client.clone());
        Ok(client)
    }

    fn budget_settings(&self, purpose: Purpose) -> BudgetSettings {
        match purpose {
            Purpose::Changes => BudgetSettings {
                pace_slices: self.settings.pace_slices.get(),
                ..BudgetSettings::default()
            },
            Purpose::Sync => BudgetSettings {
                pace_slices: self.settings.sync_pace_slices.get(),
                burst_reserve_percent: self.settings.sync_reserve_percent.get(),
                ..BudgetSettings::default()
            },
        }
    }

    /// Forgets the clients of a closed connection.
    pub fn forget(&self, connection_id: Uuid) {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(id, _), _| *id != connection_id);
    }
}
