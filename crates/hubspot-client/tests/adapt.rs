//! How the shared budget reacts to what HubSpot reports: 429s pause every process, usage the
//! budget did not grant lowers its limit, and metrics show all of it.

mod common;

use std::sync::Arc;

use common::{Budget, Sim};
use futures::TryStreamExt as _;
use hubspot_client::{
    AuthKind, BudgetKind, BudgetSettings, ClientConfig, ClientMetrics, CrmObject, HubSpotClient,
    HubSpotError, LeaseOutcome, LeaseRequest, ListOptions, PortalAccess, PortalLimiter,
    RateLimitPolicy, StaticToken, Tier,
};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_portal_for_every_client_and_is_counted_by_policy() {
    let sim = Sim::start().await;
    let budget = Budget::create().await;
    let portal = sim.portal(common::professional()).await;
    let registry = prometheus::Registry::new();
    let metrics = ClientMetrics::register(&registry).unwrap();
    let access = PortalAccess {
        portal_id: portal.portal_id,
        auth: AuthKind::PrivateApp,
        tier: Tier::Professional,
        api_limit_increase: false,
        utc_offset_minutes: 0,
    };
    let mut config = sim.config();
    config.retry.max_retries = 1;
    let client = HubSpotClient::builder(config, Arc::new(StaticToken::new(portal.token.clone())))
        .limiter(Arc::new(PortalLimiter::new(
            budget.store(),
            access,
            BudgetSettings::default(),
        )))
        .metrics(metrics)
        .build()
        .unwrap();
    sim.control(
        Method::POST,
        "/_sim/faults",
        Some(json!({"path_prefix": "/crm/v3/owners", "rate_limit_storm": true})),
    )
    .await;

    let error = client.list_owners().await.unwrap_err();
    assert!(
        matches!(
            error,
            HubSpotError::RateLimited {
                policy: RateLimitPolicy::TenSecondlyRolling,
                ..
            }
        ),
        "{error:?}"
    );
    // Another process asking for the same portal's budget is told to wait.
    let other = LeaseRequest {
        portal_id: portal.portal_id,
        kind: BudgetKind::Burst,
        limit: 190,
        window_ms: 10_400,
        want: 1,
        give_back: None,
        observation: None,
        daily_limit: None,
        daily_remaining: None,
        utc_offset_minutes: 0,
        pace_slices: 10,
        reserve: 0,
    };
    assert!(matches!(
        budget.store().lease(&other).await.unwrap(),
        LeaseOutcome::Wait(_)
    ));

    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains(r#"hubspot_rate_limited_total{policy="TEN_SECONDLY_ROLLING"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"hubspot_retries_total{endpoint="owners.list",reason="rate_limited"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"hubspot_requests_total{endpoint="owners.list",status="429"} 2"#),
        "{text}"
    );
    // The retry waited out the pause the 429 put on the shared budget (2 s without Retry-After).
    let waited: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"hubspot_budget_wait_seconds_total{kind="burst"} "#))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no burst budget wait recorded: {text}"));
    assert!(waited >= 1.0, "{waited} s of budget wait recorded: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_someone_else_spent_on_the_portal_lower_the_budget_and_avoid_429s() {
    let sim = Sim::start().await;
    let budget = Budget::create().await;
    let portal = sim.portal(json!({"tier": "starter"})).await;
    sim.seed(
        &portal,
        json!({"seed": 2, "contacts": 50, "companies": 0, "deals": 0, "owners": 0}),
    )
    .await;
    // Another integration on the same app, outside hubscore's budget, spends 60 of 100.
    let foreign = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    for _ in 0..60 {
        foreign.account_details().await.unwrap();
    }
    let ours = sim.budgeted_client(&portal, Tier::Starter, &budget);
    let options = ListOptions {
        page_size: 1,
        ..ListOptions::default()
    };
    let listed: Vec<CrmObject> = ours
        .list_objects("contacts", options)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 50);
    sim.assert_kept_under(&portal, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_versioned_paths_serve_the_same_calls() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    sim.seed(
        &portal,
        json!({"seed": 4, "contacts": 120, "companies": 10, "deals": 10, "owners": 3}),
    )
    .await;
    let config = ClientConfig {
        api_version_segment: "2026-03".into(),
        ..sim.config()
    };
    let client = HubSpotClient::builder(config, Arc::new(StaticToken::new(portal.token.clone())))
        .build()
        .unwrap();
    let contacts: Vec<CrmObject> = client
        .list_objects("contacts", ListOptions::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(contacts.len(), 120);
    assert_eq!(client.list_owners().await.unwrap().len(), 3);
    assert!(!client.deal_pipelines().await.unwrap().is_empty());
    assert!(!client.list_properties("deals").await.unwrap().is_empty());
    assert_eq!(
        client.account_details().await.unwrap().portal_id,
        portal.portal_id
    );
    let deal_ids: Vec<String> = client
        .list_objects("deals", ListOptions::default())
        .map_ok(|d| d.id)
        .try_collect()
        .await
        .unwrap();
    let associations = client
        .batch_read_associations("deals", "companies", &deal_ids)
        .await
        .unwrap();
    assert_eq!(
        associations.results.len() + associations.errors.len(),
        deal_ids.len()
    );
}
