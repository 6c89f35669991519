//! Faults on demand over plain HTTP: added latency, 500/502/503/504 answers, slow
//! and truncated bodies, scoped by path prefix and portal, and cleared again.

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use serde_json::{Value, json};

#[tokio::test]
async fn each_error_status_is_answered_in_hubspots_error_shape_on_the_chosen_endpoint_only() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    for status in [500u16, 502, 503, 504] {
        h.add_fault(
            json!({"path_prefix": "/crm/v3/objects/companies", "error_rate": 1.0, "error_status": status}),
        )
        .await;
        let (got, _, body) = h.get(&p.token, "/crm/v3/objects/companies").await;
        assert_eq!(got, status);
        assert_eq!(body["status"], "error");
        assert!(body["message"].is_string() && body["correlationId"].is_string());
        let (other, _, _) = h.get(&p.token, "/crm/v3/objects/contacts").await;
        assert_eq!(other, 200, "other endpoints are unaffected");
        h.clear_faults().await;
    }
    let (status, _, _) = h.get(&p.token, "/crm/v3/objects/companies").await;
    assert_eq!(status, 200, "cleared faults are gone");
    let stats = h.stats(p.id).await;
    for status in ["500", "502", "503", "504"] {
        assert_eq!(stats["by_status"][status], 1, "{status} counted: {stats}");
    }
    h.sim.stop().await;
}

#[tokio::test]
async fn a_partial_error_rate_fails_some_requests_and_not_others() {
    let h = Harness::start().await;
    let p = h.portal(json!({"tier": "enterprise"})).await;
    h.add_fault(
        json!({"path_prefix": "/crm/v3/objects/deals", "error_rate": 0.5, "error_status": 503}),
    )
    .await;
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let (status, _, _) = h.get(&p.token, "/crm/v3/objects/deals").await;
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        vec![200, 503],
        "{statuses:?}"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn latency_and_slow_bodies_delay_the_answer_and_truncation_cuts_the_json() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    h.seed(p.id, 20, 0, 0).await;
    h.add_fault(json!({"path_prefix": "/crm/v3/objects/contacts", "latency_ms": 300}))
        .await;
    let started = Instant::now();
    let (status, _, body) = h.get(&p.token, "/crm/v3/objects/contacts").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, 200);
    assert_eq!(body["results"].as_array().map(Vec::len), Some(10));
    h.clear_faults().await;

    h.add_fault(json!({"path_prefix": "/crm/v3/objects/contacts", "slow_body_ms": 300}))
        .await;
    let started = Instant::now();
    let resp = h.get_raw(&p.token, "/crm/v3/objects/contacts").await;
    let text = resp.text().await.expect("the whole body arrives");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let body: Value = serde_json::from_str(&text).expect("a slow body is still whole");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(10));
    h.clear_faults().await;

    let (_, _, whole) = h.get(&p.token, "/crm/v3/objects/contacts").await;
    let whole_len = serde_json::to_vec(&whole).expect("json").len();
    h.add_fault(json!({"path_prefix": "/crm/v3/objects/contacts", "truncate_body": true}))
        .await;
    let resp = h.get_raw(&p.token, "/crm/v3/objects/contacts").await;
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.expect("a consistent length");
    assert!(
        serde_json::from_slice::<Value>(&bytes).is_err(),
        "a truncated body is not JSON"
    );
    assert!(bytes.len() < whole_len && !bytes.is_empty());
    h.sim.stop().await;
}

#[tokio::test]
async fn a_fault_scoped_to_one_portal_leaves_the_others_alone_and_oauth_paths_can_fail_too() {
    let h = Harness::start().await;
    let hit = h.portal(json!({})).await;
    let spared = h.portal(json!({})).await;
    h.add_fault(
        json!({"path_prefix": "", "error_rate": 1.0, "error_status": 500, "portal_id": hit.id}),
    )
    .await;
    let (status, _, _) = h.get(&hit.token, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 500);
    let (status, _, _) = h.get(&spared.token, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 200);
    let listed = h.sim_get("/_sim/faults").await;
    assert_eq!(listed["faults"][0]["portal_id"], hit.id);
    h.clear_faults().await;

    h.add_fault(json!({"path_prefix": "/oauth/v3/token", "error_rate": 1.0, "error_status": 502}))
        .await;
    let (status, _) = h.refresh(&hit, "/oauth/v3/token", "na1-x").await;
    assert_eq!(status, 502, "the token endpoint can fail on demand");
    h.sim.stop().await;
}

#[tokio::test]
async fn error_first_fails_exactly_the_next_requests_then_answers_again() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    h.add_fault(
        json!({"path_prefix": "/crm/v3/objects/deals", "error_first": 2, "error_status": 502}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, _, _) = h.get(&p.token, "/crm/v3/objects/deals").await;
        statuses.push(status);
    }
    assert_eq!(statuses, vec![502, 502, 200, 200]);
    h.sim.stop().await;
}
