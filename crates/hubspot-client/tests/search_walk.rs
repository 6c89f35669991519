//! Walking a modified-since window while records are modified and deleted: HubSpot's search
//! cursor is an offset into a list sorted by modification time, so a change behind the cursor
//! shifts what lies ahead of it. The walk must still return every record that matched for the
//! whole walk, each exactly once.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::Sim;
use futures::TryStreamExt as _;
use hubspot_client::{CrmObject, ListOptions, ModifiedSince, StaticToken};
use reqwest::Method;
use serde_json::json;

fn modified_ms(record: &CrmObject) -> i64 {
    let value = record.property("lastmodifieddate").unwrap();
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|_| value.parse().unwrap())
}

/// What the walk returned, and which records were deleted while it ran.
struct Outcome {
    returned: Vec<CrmObject>,
    deleted: HashSet<String>,
    before: HashSet<String>,
}

impl Outcome {
    /// Every record that existed before the walk and was not deleted during it came back
    /// exactly once, nothing else came back, and in order of modification.
    fn assert_each_surviving_record_exactly_once(&self) {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for record in &self.returned {
            *counts.entry(record.id.as_str()).or_default() += 1;
        }
        let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "returned more than once: {repeated:?}");
        let missing: Vec<_> = self
            .before
            .difference(&self.deleted)
            .filter(|id| !counts.contains_key(id.as_str()))
            .collect();
        assert!(missing.is_empty(), "never returned: {missing:?}");
        let unknown: Vec<_> = counts
            .keys()
            .filter(|id| !self.before.contains(**id))
            .collect();
        assert!(unknown.is_empty(), "not in the portal: {unknown:?}");
        assert!(
            self.returned
                .windows(2)
                .all(|w| modified_ms(&w[0]) <= modified_ms(&w[1])),
            "oldest first"
        );
    }
}

/// Walks every contact modified since the epoch. Each time `at` records have come back, it
/// deletes one record already returned, modifies one already returned, and modifies and
/// deletes one each of those not returned yet, through the simulator's control API (as a
/// user in HubSpot's UI would, between two of the walk's requests).
async fn walk_while_changing(sim: &Sim, portal: &common::Portal, at: &[usize]) -> Outcome {
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let before: HashSet<String> = client
        .list_objects("contacts", ListOptions::default())
        .map_ok(|c| c.id)
        .try_collect()
        .await
        .unwrap();
    let query = ModifiedSince {
        object_type: "contacts".into(),
        since_ms: 0,
        until_ms: None,
        properties: vec!["email".into()],
        extra_filters: Vec::new(),
    };
    let mut walk = client.search_modified_since(query);
    let mut returned: Vec<CrmObject> = Vec::new();
    let mut deleted = HashSet::new();
    let contacts = format!("/_sim/portals/{}/objects/contacts", portal.portal_id);
    while let Some(record) = walk.try_next().await.unwrap() {
        returned.push(record);
        if !at.contains(&returned.len()) {
            continue;
        }
        let seen: HashSet<&str> = returned.iter().map(|r| r.id.as_str()).collect();
        let ahead: Vec<&String> = before
            .iter()
            .filter(|id| !seen.contains(id.as_str()) && !deleted.contains(*id))
            .collect();
        let n = returned.len();
        // HubSpot's search index lags its writes, so a page may still hold a record deleted
        // a moment ago: only records still live are changed.
        let live: Vec<&CrmObject> = returned
            .iter()
            .filter(|r| !deleted.contains(&r.id))
            .collect();
        let behind_deleted = live[live.len() / 2].id.clone();
        let behind_modified = live[live.len() / 3].id.clone();
        let ahead_modified = ahead[0].clone();
        let ahead_deleted = ahead[1].clone();
        for id in [&behind_modified, &ahead_modified] {
            sim.control(
                Method::PATCH,
                &format!("{contacts}/{id}"),
                Some(json!({"properties": {"firstname": format!("changed-{n}")}})),
            )
            .await;
        }
        for id in [behind_deleted, ahead_deleted] {
            sim.control(Method::DELETE, &format!("{contacts}/{id}"), None)
                .await;
            deleted.insert(id);
        }
    }
    Outcome {
        returned,
        deleted,
        before,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_modified_and_deleted_during_a_walk_are_neither_skipped_nor_repeated() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    sim.seed(
        &portal,
        json!({"seed": 21, "contacts": 1_000, "companies": 0, "deals": 0, "owners": 0}),
    )
    .await;
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        walk_while_changing(&sim, &portal, &[100, 300, 500, 700, 900]),
    )
    .await
    .unwrap();
    assert_eq!(outcome.deleted.len(), 10);
    outcome.assert_each_surviving_record_exactly_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sharing_one_timestamp_are_walked_by_id_even_while_some_of_them_change() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    sim.seed(
        &portal,
        json!({"seed": 22, "contacts": 700, "companies": 0, "deals": 0, "owners": 0}),
    )
    .await;
    // 450 records (more than two pages) at one instant older than every seeded one.
    let touched = sim
        .control(
            Method::POST,
            &format!("/_sim/portals/{}/objects/contacts/touch", portal.portal_id),
            Some(json!({"count": 450, "modified_at_ms": 946_684_800_000_i64})),
        )
        .await;
    assert_eq!(touched["touched"], 450);
    // The changes land while the tied records are being walked, and after.
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        walk_while_changing(&sim, &portal, &[150, 250, 350, 550]),
    )
    .await
    .unwrap();
    assert_eq!(outcome.deleted.len(), 8);
    outcome.assert_each_surviving_record_exactly_once();
}
