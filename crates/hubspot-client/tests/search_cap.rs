//! Walking a modified-since window past HubSpot's 10,000-results-per-query search cap.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::collections::HashSet;

use common::{Budget, Sim};
use futures::TryStreamExt as _;
use hubspot_client::{CrmObject, ModifiedSince, Tier};
use reqwest::Method;
use serde_json::json;

fn modified_ms(record: &CrmObject) -> i64 {
    let value = record.property("lastmodifieddate").unwrap();
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|_| value.parse().unwrap())
}

async fn walk_all(
    sim: &Sim,
    portal: &common::Portal,
    budget: &Budget,
    since_ms: i64,
) -> Vec<CrmObject> {
    let client = sim.budgeted_client(portal, Tier::Professional, budget);
    let query = ModifiedSince {
        object_type: "contacts".into(),
        since_ms,
        until_ms: None,
        properties: vec!["email".into()],
        extra_filters: Vec::new(),
    };
    client
        .search_modified_since(query)
        .try_collect()
        .await
        .unwrap()
}

fn assert_each_once_in_order(records: &[CrmObject], expected: usize) {
    let ids: HashSet<_> = records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), records.len(), "no record is returned twice");
    assert_eq!(records.len(), expected);
    assert!(
        records
            .windows(2)
            .all(|w| modified_ms(&w[0]) <= modified_ms(&w[1])),
        "oldest first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_with_more_than_10000_modified_records_is_walked_completely() {
    let sim = Sim::start().await;
    let budget = Budget::create().await;
    let portal = sim.portal(common::professional()).await;
    sim.seed(
        &portal,
        json!({"seed": 11, "contacts": 10_650, "companies": 0, "deals": 0, "owners": 0}),
    )
    .await;
    let records = walk_all(&sim, &portal, &budget, 0).await;
    assert_each_once_in_order(&records, 10_650);
    let stats = sim.stats(&portal).await;
    assert!(
        stats["by_status"].get("400").is_none(),
        "never paged past the cap: {stats}"
    );
    assert_eq!(stats["rate_limited"]["SECONDLY"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_10000_records_sharing_one_timestamp_are_walked_by_id() {
    let sim = Sim::start().await;
    let budget = Budget::create().await;
    let portal = sim.portal(common::professional()).await;
    sim.seed(
        &portal,
        json!({"seed": 12, "contacts": 10_450, "companies": 0, "deals": 0, "owners": 0}),
    )
    .await;
    // 10,250 records at one instant older than every seeded one, so the first capped query
    // is entirely that instant.
    let at_ms = 946_684_800_000_i64;
    let touched = sim
        .control(
            Method::POST,
            &format!("/_sim/portals/{}/objects/contacts/touch", portal.portal_id),
            Some(json!({"count": 10_250, "modified_at_ms": at_ms})),
        )
        .await;
    assert_eq!(touched["touched"], 10_250);
    let records = walk_all(&sim, &portal, &budget, 0).await;
    assert_each_once_in_order(&records, 10_450);
    assert_eq!(
        records.iter().filter(|r| modified_ms(r) == at_ms).count(),
        10_250
    );
    let stats = sim.stats(&portal).await;
    assert!(
        stats["by_status"].get("400").is_none(),
        "never paged past the cap: {stats}"
    );
}
