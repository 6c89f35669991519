//! Three independent clients (separate limiters and pools, one PostgreSQL budget) hammering
//! one professional-tier portal: HubSpot must never see more than 190 requests in 10 s.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Budget, Sim};
use hubspot_client::{HubSpotClient, ListOptions, Tier};
use serde_json::json;

/// Runs `clients` flat out with `tasks_per_client` concurrent callers each for `duration`;
/// returns the successful calls.
pub async fn hammer(clients: &[HubSpotClient], tasks_per_client: usize, duration: Duration) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut handles = Vec::new();
    for client in clients {
        for _ in 0..tasks_per_client {
            let client = client.clone();
            let done = done.clone();
            handles.push(tokio::spawn(async move {
                let options = ListOptions {
                    page_size: 10,
                    ..ListOptions::default()
                };
                while Instant::now() < deadline {
                    client
                        .list_objects_page("contacts", &options, None)
                        .await
                        .unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for handle in handles {
        handle.await.unwrap();
    }
    done.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_sharing_one_budget_never_exceed_the_portal_limit() {
    let sim = Sim::start().await;
    let budget = Budget::create().await;
    let portal = sim.portal(json!({"tier": "professional"})).await;
    sim.seed(
        &portal,
        json!({"seed": 5, "contacts": 200, "companies": 0, "deals": 0, "owners": 0}),
    )
    .await;
    let clients: Vec<HubSpotClient> = (0..3)
        .map(|_| sim.budgeted_client(&portal, Tier::Professional, &budget))
        .collect();

    let calls = hammer(&clients, 4, Duration::from_secs(31)).await;

    let stats = sim.stats(&portal).await;
    assert!(
        stats["by_status"].get("429").is_none(),
        "no 429 at all: {stats}"
    );
    assert_eq!(stats["rate_limited"]["TEN_SECONDLY_ROLLING"], 0, "{stats}");
    let max_window = stats["max_requests_in_any_10s_window"].as_u64().unwrap();
    assert!(max_window <= 190, "{stats}");
    assert_eq!(
        stats["by_status"]["200"].as_u64().unwrap(),
        calls,
        "every call the clients made succeeded once"
    );
}
