//! Rate limits over plain HTTP: the ten-second burst, the daily quota, the search
//! limit, their headers and 429 bodies (hubspot-api.md §8).

mod common;

use common::Harness;
use serde_json::json;

#[tokio::test]
async fn free_private_app_gets_100_per_10s_then_a_ten_secondly_429_with_headers() {
    let h = Harness::start().await;
    let p = h.portal(json!({"tier": "free"})).await;
    let (status, headers, _) = h.get(&p.token, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-hubspot-ratelimit-max"], "100");
    assert_eq!(
        headers["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    assert_eq!(headers["x-hubspot-ratelimit-remaining"], "99");
    assert_eq!(headers["x-hubspot-ratelimit-daily"], "250000");
    assert_eq!(headers["x-hubspot-ratelimit-daily-remaining"], "249999");
    for _ in 1..100 {
        let (status, _, _) = h.get(&p.token, "/crm/v3/objects/contacts").await;
        assert_eq!(status, 200);
    }
    let (status, headers, body) = h.get(&p.token, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert!(body["correlationId"].is_string() && body["requestId"].is_string());
    assert_eq!(headers["x-hubspot-ratelimit-remaining"], "0");
    let stats = h.stats(p.id).await;
    assert_eq!(stats["rate_limited"]["TEN_SECONDLY_ROLLING"], 1);
    assert_eq!(stats["by_status"]["200"], 100);
    assert_eq!(stats["max_requests_in_any_10s_window"], 101);
    h.sim.stop().await;
}

#[tokio::test]
async fn professional_private_apps_get_190_and_oauth_tokens_110_without_daily_headers() {
    let h = Harness::start().await;
    let p = h.portal(json!({"tier": "professional"})).await;
    let (_, headers, _) = h.get(&p.token, "/crm/v3/objects/deals").await;
    assert_eq!(headers["x-hubspot-ratelimit-max"], "190");
    assert_eq!(headers["x-hubspot-ratelimit-daily"], "625000");
    let access = oauth_token(&h, &p).await;
    let (status, headers, _) = h.get(&access, "/crm/v3/objects/deals").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-hubspot-ratelimit-max"], "110");
    assert!(headers.get("x-hubspot-ratelimit-daily").is_none());
    assert!(headers.get("x-hubspot-ratelimit-daily-remaining").is_none());
    h.sim.stop().await;
}

#[tokio::test]
async fn an_exhausted_daily_quota_answers_429_daily() {
    let h = Harness::start().await;
    let p = h.portal(json!({"tier": "starter"})).await;
    let (_, _, usage) = h
        .get(&p.token, "/account-info/v3/api-usage/daily/private-apps")
        .await;
    assert_eq!(usage["results"][0]["usageLimit"], 250_000);
    assert_eq!(usage["results"][0]["currentUsage"], 1);
    h.http
        .put(h.url(&format!("/_sim/portals/{}/usage", p.id)))
        .json(&json!({"daily_used": 249_999}))
        .send()
        .await
        .expect("usage");
    let (status, headers, _) = h.get(&p.token, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-hubspot-ratelimit-daily-remaining"], "0");
    let (status, _, body) = h.get(&p.token, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "DAILY");
    assert_eq!(body["message"], "You have reached your daily limit.");
    h.sim.stop().await;
}

#[tokio::test]
async fn search_allows_5_per_second_sends_no_headers_and_429s_secondly() {
    let h = Harness::start().await;
    let p = h.portal(json!({"tier": "enterprise"})).await;
    for _ in 0..5 {
        let (status, headers, body) = h
            .post(&p.token, "/crm/v3/objects/contacts/search", json!({}))
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["total"], 0);
        assert!(
            headers
                .keys()
                .all(|k| !k.as_str().starts_with("x-hubspot-ratelimit")),
            "search sends no rate-limit headers"
        );
    }
    let (status, headers, body) = h
        .post(&p.token, "/crm/v3/objects/contacts/search", json!({}))
        .await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "SECONDLY");
    assert_eq!(body["message"], "You have reached your secondly limit.");
    assert!(
        headers
            .keys()
            .all(|k| !k.as_str().starts_with("x-hubspot-ratelimit"))
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn a_rate_limit_storm_fault_answers_429_until_cleared() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    h.add_fault(json!({"path_prefix": "/crm/v3/objects/deals", "rate_limit_storm": true}))
        .await;
    let (status, _, body) = h.get(&p.token, "/crm/v3/objects/deals").await;
    assert_eq!(
        (status, body["policyName"].as_str()),
        (429, Some("TEN_SECONDLY_ROLLING"))
    );
    let (status, _, _) = h.get(&p.token, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 200, "other paths are unaffected");
    h.clear_faults().await;
    let (status, _, _) = h.get(&p.token, "/crm/v3/objects/deals").await;
    assert_eq!(status, 200);
    h.add_fault(json!({"path_prefix": "/crm/v3/owners", "error_rate": 1.0, "error_status": 502}))
        .await;
    let (status, _, _) = h.get(&p.token, "/crm/v3/owners").await;
    assert_eq!(status, 502);
    h.sim.stop().await;
}

/// Exchanges a fresh code for an OAuth access token of portal `p`.
async fn oauth_token(h: &Harness, p: &common::PortalInfo) -> String {
    h.oauth_access(p, json!({"redirect_uri": "http://localhost/cb"}))
        .await
}

#[tokio::test]
async fn oauth_portals_get_110_per_10s_then_a_429_without_daily_headers_while_the_private_app_keeps_its_own_budget()
 {
    let h = Harness::start().await;
    let p = h.portal(json!({"tier": "enterprise"})).await;
    let access = oauth_token(&h, &p).await;
    // Two tokens of one install share the portal's budget.
    let other = oauth_token(&h, &p).await;
    for i in 0..110 {
        let token = if i % 2 == 0 { &access } else { &other };
        let (status, headers, _) = h.get(token, "/crm/v3/objects/contacts").await;
        assert_eq!(status, 200, "request {i}");
        assert_eq!(
            headers["x-hubspot-ratelimit-remaining"],
            (109 - i).to_string().as_str()
        );
    }
    let (status, headers, body) = h.get(&other, "/crm/v3/objects/companies").await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert!(body["message"].is_string() && body["correlationId"].is_string());
    assert_eq!(headers["x-hubspot-ratelimit-max"], "110");
    assert_eq!(headers["x-hubspot-ratelimit-remaining"], "0");
    assert_eq!(
        headers["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    assert!(headers.get("x-hubspot-ratelimit-daily").is_none());
    let (status, headers, _) = h.get(&p.token, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 200, "the private app has its own window");
    assert_eq!(headers["x-hubspot-ratelimit-max"], "190");
    h.sim.stop().await;
}

#[tokio::test]
async fn professional_private_apps_get_190_and_the_limit_increase_250() {
    let h = Harness::start().await;
    for (body, max) in [
        (json!({"tier": "professional"}), 190),
        (json!({"tier": "starter", "api_limit_increase": true}), 250),
    ] {
        let p = h.portal(body).await;
        for i in 0..max {
            let (status, _, _) = h.get(&p.token, "/crm/v3/objects/deals").await;
            assert_eq!(status, 200, "request {i} of {max}");
        }
        let (status, headers, body) = h.get(&p.token, "/crm/v3/objects/deals").await;
        assert_eq!(status, 429);
        assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
        assert_eq!(headers["x-hubspot-ratelimit-max"], max.to_string().as_str());
        assert!(headers.get("x-hubspot-ratelimit-daily-remaining").is_some());
        let stats = h.stats(p.id).await;
        assert_eq!(stats["max_requests_in_any_10s_window"], max + 1);
        assert_eq!(stats["rate_limited"]["TEN_SECONDLY_ROLLING"], 1);
    }
    h.sim.stop().await;
}
