//! The private-app daily quota against the simulator: a `DAILY` 429 is reported with its reset
//! time and never retried, and once one client met it no client sharing the budget sends
//! another request to the portal until the reset.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Days, Utc};
use common::{Budget, Portal, Sim};
use hubspot_client::{HubSpotError, ListOptions, StaticToken, Tier};
use reqwest::Method;
use serde_json::json;

/// Spends the portal's whole daily quota in the simulator.
async fn use_up_the_day(sim: &Sim, portal: &Portal) {
    sim.control(
        Method::PUT,
        &format!("/_sim/portals/{}/usage", portal.portal_id),
        Some(json!({"daily_used": 625_000})),
    )
    .await;
}

/// The next UTC midnight (either side of one, should the test straddle it).
fn next_midnights() -> [DateTime<Utc>; 2] {
    let today = Utc::now().date_naive();
    [1, 2].map(|days| {
        (today + Days::new(days))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
    })
}

async fn requests_seen(sim: &Sim, portal: &Portal) -> u64 {
    sim.stats(portal).await["requests_total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_daily_quota_stops_every_client_until_the_portals_midnight() {
    let sim = Sim::start().await;
    let budget = Budget::create().await;
    let portal = sim
        .portal(json!({"tier": "professional", "time_zone": "UTC"}))
        .await;
    use_up_the_day(&sim, &portal).await;
    let client = sim.budgeted_client(&portal, Tier::Professional, &budget);

    let error = client.account_details().await.unwrap_err();
    let HubSpotError::DailyQuotaExhausted { until: Some(until) } = error else {
        panic!("{error:?}");
    };
    assert!(next_midnights().contains(&until), "{until}");
    assert!(!error.is_retryable());
    let stats = sim.stats(&portal).await;
    assert_eq!(stats["rate_limited"]["DAILY"], 1, "not retried: {stats}");
    let seen = requests_seen(&sim, &portal).await;

    // Neither this client nor another with a limiter of its own asks HubSpot again.
    let other = sim.budgeted_client(&portal, Tier::Professional, &budget);
    let again = client.list_owners().await.unwrap_err();
    let elsewhere = other
        .list_objects_page("contacts", &ListOptions::default(), None)
        .await
        .unwrap_err();
    for error in [again, elsewhere] {
        assert!(
            matches!(error, HubSpotError::DailyQuotaExhausted { until: Some(u) } if u == until),
            "{error:?}"
        );
    }
    assert_eq!(requests_seen(&sim, &portal).await, seen, "no request sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_budget_a_daily_429_is_returned_at_once() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    use_up_the_day(&sim, &portal).await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let error = client.list_owners().await.unwrap_err();
    assert!(
        matches!(error, HubSpotError::DailyQuotaExhausted { .. }),
        "{error:?}"
    );
    let stats = sim.stats(&portal).await;
    assert_eq!(stats["rate_limited"]["DAILY"], 1, "not retried: {stats}");
    assert_eq!(stats["requests_total"], 1, "{stats}");
}
