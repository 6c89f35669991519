//! Shared set-up for the integration tests: an in-process simulator, its control API, a
//! migrated budget database, and clients wired to them.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![expect(clippy::unwrap_used, reason = "test set-up fails loudly")]

pub mod db;

use std::sync::Arc;

use hubspot_client::{
    AuthKind, BudgetSettings, ClientConfig, DeveloperClient, HubSpotClient, PgBudgetStore,
    PortalAccess, PortalLimiter, RetryPolicy, StaticToken, Tier, TokenSource,
};
use hubspot_sim::{RunningSim, SimConfig};
use serde_json::{Value, json};

/// A simulator and a control-API client.
pub struct Sim {
    pub running: RunningSim,
    pub base: String,
    pub http: reqwest::Client,
}

/// What `POST /_sim/portals` returned.
#[derive(Debug, Clone)]
pub struct Portal {
    pub portal_id: i64,
    pub token: String,
    pub client_id: String,
    pub client_secret: String,
    /// The portal's OAuth app.
    pub app_id: u64,
    /// That app's developer API key (`hapikey`).
    pub developer_api_key: String,
}

impl Sim {
    pub async fn start() -> Self {
        Self::start_with(SimConfig::default()).await
    }

    pub async fn start_with(config: SimConfig) -> Self {
        let running = hubspot_sim::spawn(config).await.unwrap();
        let base = running.base_url();
        Self {
            running,
            base,
            http: reqwest::Client::new(),
        }
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    pub async fn portal(&self, body: Value) -> Portal {
        let created = self
            .control(reqwest::Method::POST, "/_sim/portals", Some(body))
            .await;
        Portal {
            portal_id: created["portal_id"].as_i64().unwrap(),
            token: created["private_app_token"].as_str().unwrap().to_owned(),
            client_id: created["client_id"].as_str().unwrap().to_owned(),
            client_secret: created["client_secret"].as_str().unwrap().to_owned(),
            app_id: created["app_id"].as_u64().unwrap(),
            developer_api_key: created["developer_api_key"].as_str().unwrap().to_owned(),
        }
    }

    /// A developer API client for `portal`'s app with its developer key.
    pub fn developer(&self, portal: &Portal) -> DeveloperClient {
        DeveloperClient::new(
            self.config(),
            portal.app_id,
            portal.developer_api_key.clone().into(),
        )
        .unwrap()
    }

    pub async fn seed(&self, portal: &Portal, body: Value) -> Value {
        self.control(
            reqwest::Method::POST,
            &format!("/_sim/portals/{}/seed", portal.portal_id),
            Some(body),
        )
        .await
    }

    pub async fn stats(&self, portal: &Portal) -> Value {
        self.control(
            reqwest::Method::GET,
            &format!("/_sim/portals/{}/stats", portal.portal_id),
            None,
        )
        .await
    }

    /// Asserts the simulator refused no request of `portal` for its 10-second limit and
    /// never saw more than `limit` of its requests in any 10 s.
    pub async fn assert_kept_under(&self, portal: &Portal, limit: u64) {
        let stats = self.stats(portal).await;
        assert_eq!(stats["rate_limited"]["TEN_SECONDLY_ROLLING"], 0, "{stats}");
        let max_window = stats["max_requests_in_any_10s_window"].as_u64();
        assert!(max_window.is_some_and(|max| max <= limit), "{stats}");
    }

    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::for_base_url(&self.base);
        config.retry = RetryPolicy {
            max_retries: 4,
            base_delay_ms: 20,
            max_delay_ms: 500,
            max_retry_after_ms: 5_000,
        };
        config
    }

    /// A client without a shared budget (retries only).
    pub fn client(&self, tokens: Arc<dyn TokenSource>) -> HubSpotClient {
        HubSpotClient::builder(self.config(), tokens)
            .build()
            .unwrap()
    }

    /// A private-app client drawing from `budget`, with a limiter of its own.
    pub fn budgeted_client(&self, portal: &Portal, tier: Tier, budget: &Budget) -> HubSpotClient {
        let access = PortalAccess {
            portal_id: portal.portal_id,
            auth: AuthKind::PrivateApp,
            tier,
            api_limit_increase: false,
            utc_offset_minutes: 0,
        };
        let limiter = Arc::new(PortalLimiter::new(
            budget.store(),
            access,
            BudgetSettings::default(),
        ));
        HubSpotClient::builder(
            self.config(),
            Arc::new(StaticToken::new(portal.token.clone())),
        )
        .limiter(limiter)
        .build()
        .unwrap()
    }
}

/// A migrated `hubspot_budget` schema in a throwaway database.
pub struct Budget {
    pub db: db::BudgetDatabase,
}

impl Budget {
    pub async fn create() -> Self {
        Self {
            db: db::BudgetDatabase::create().await.unwrap(),
        }
    }

    /// A store with a pool of its own, as a separate process would have.
    pub fn store(&self) -> PgBudgetStore {
        PgBudgetStore::new(self.db.pool().unwrap())
    }
}

pub fn professional() -> Value {
    json!({ "tier": "professional" })
}
