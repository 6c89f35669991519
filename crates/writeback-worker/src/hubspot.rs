//! HubSpot clients per connection: where their tokens come from (injectable), and one rate
//! limiter per portal in this process, drawing on the budget every process shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hubspot_client::{
    AuthKind, BudgetSettings, ClientConfig, ClientMetrics, GatewayCredentials, GatewayTokenSource,
    HubSpotClient, HubSpotError, PgBudgetStore, PortalAccess, PortalLimiter, Tier, TokenSource,
};
use uuid::Uuid;

use crate::config::GatewaySettings;

/// Gives the access-token source of a connection. Production asks auth-gateway
/// ([`TokenSources::gateway`]); tests hand out a fixed private-app token
/// ([`TokenSources::fixed`]).
#[derive(Clone)]
pub struct TokenSources(Arc<dyn Fn(Uuid) -> Arc<dyn TokenSource> + Send + Sync>);

impl TokenSources {
    /// Any function from a connection id to its token source.
    pub fn new(f: impl Fn(Uuid) -> Arc<dyn TokenSource> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Tokens from auth-gateway's internal API, with this service's credentials.
    pub fn gateway(settings: &GatewaySettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        let credentials = GatewayCredentials {
            base_url: settings.base_url.clone(),
            service: settings.service.clone(),
            secret: settings.secret.clone(),
        };
        Ok(Self::new(move |connection_id| {
            Arc::new(GatewayTokenSource::new(
                http.clone(),
                credentials.clone(),
                connection_id.to_string(),
            ))
        }))
    }

    /// The same source for every connection (tests, single private-app setups).
    pub fn fixed(source: Arc<dyn TokenSource>) -> Self {
        Self::new(move |_| source.clone())
    }

    fn source(&self, connection_id: Uuid) -> Arc<dyn TokenSource> {
        (self.0)(connection_id)
    }
}

/// What a client needs to know about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionAccess {
    /// The connection.
    pub connection_id: Uuid,
    /// Its portal.
    pub portal_id: i64,
    /// OAuth or private app.
    pub oauth: bool,
}

/// Builds and caches one client per connection, with one limiter per portal.
#[derive(Clone)]
pub struct Clients {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    tokens: TokenSources,
    budget: PgBudgetStore,
    tier: Tier,
    api_limit_increase: bool,
    metrics: ClientMetrics,
    clients: Mutex<HashMap<Uuid, (ConnectionAccess, HubSpotClient)>>,
    limiters: Mutex<HashMap<(i64, bool), Arc<PortalLimiter>>>,
}

impl Clients {
    /// Clients calling `config`'s HubSpot with tokens from `tokens`, budgeted in `budget`.
    pub fn new(
        config: ClientConfig,
        tokens: TokenSources,
        budget: PgBudgetStore,
        tier: Tier,
        api_limit_increase: bool,
        metrics: ClientMetrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                tokens,
                budget,
                tier,
                api_limit_increase,
                metrics,
                clients: Mutex::new(HashMap::new()),
                limiters: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The client of a connection (created on first use).
    pub fn client(&self, access: ConnectionAccess) -> Result<HubSpotClient, HubSpotError> {
        let mut clients = self
            .inner
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((known, client)) = clients.get(&access.connection_id)
            && *known == access
        {
            return Ok(client.clone());
        }
        let limiter = self.limiter(access);
        let client = HubSpotClient::builder(
            self.inner.config.clone(),
            self.inner.tokens.source(access.connection_id),
        )
        .limiter(limiter)
        .metrics(self.inner.metrics.clone())
        .build()?;
        clients.insert(access.connection_id, (access, client.clone()));
        Ok(client)
    }

    /// Forgets a connection's client (its token source may hold a dead token).
    pub fn forget(&self, connection_id: Uuid) {
        self.inner
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&connection_id);
    }

    fn limiter(&self, access: ConnectionAccess) -> Arc<PortalLimiter> {
        let mut limiters = self
            .inner
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        limiters
            .entry((access.portal_id, access.oauth))
            .or_insert_with(|| {
                let portal = PortalAccess {
                    portal_id: access.portal_id,
                    auth: if access.oauth {
                        AuthKind::OAuth
                    } else {
                        AuthKind::PrivateApp
                    },
                    tier: self.inner.tier,
                    api_limit_increase: self.inner.api_limit_increase,
                    // The daily quota resets at the portal's midnight; the connection event
                    // names a zone, not an offset, so UTC is assumed.
                    utc_offset_minutes: 0,
                };
                Arc::new(PortalLimiter::new(
                    self.inner.budget.clone(),
                    portal,
                    BudgetSettings::default(),
                ))
            })
            .clone()
    }
}
