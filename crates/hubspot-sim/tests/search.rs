//! Search over plain HTTP: filters, sorts, totals, paging, the 10,000 cap and the body limit.

mod common;

use common::Harness;
use serde_json::{Value, json};

#[tokio::test]
async fn search_past_10000_results_is_a_400_even_when_all_share_one_timestamp() {
    let h = Harness::start().await;
    let p = h.portal(json!({"tier": "enterprise"})).await;
    h.seed(p.id, 10_050, 5, 0).await;
    let touched: Value = h
        .http
        .post(h.url(&format!("/_sim/portals/{}/objects/contacts/touch", p.id)))
        .json(&json!({"count": 10_050, "modified_at_ms": 1_767_225_600_000_i64}))
        .send()
        .await
        .expect("touch")
        .json()
        .await
        .expect("json");
    assert_eq!(touched["touched"], 10_050);
    let query = |after: &str| {
        json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "EQ", "value": "1767225600000"}]}],
               "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "limit": 100, "after": after,
               "properties": ["email"]})
    };
    let (status, _, body) = h
        .post(&p.token, "/crm/v3/objects/contacts/search", query("9900"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 10_050);
    assert_eq!(body["results"].as_array().map(Vec::len), Some(100));
    assert_eq!(body["paging"]["next"]["after"], "10000");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, body) = h
        .post(&p.token, "/crm/v3/objects/contacts/search", query("10000"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    h.sim.stop().await;
}

#[tokio::test]
async fn filters_sorts_and_limits_behave_as_documented() {
    let h = Harness::start().await;
    let p = h.portal(json!({"tier": "enterprise"})).await;
    for (name, amount, stage) in [
        ("A", "100", "closedwon"),
        ("B", "900", "closedlost"),
        ("C", "500", "qualifiedtobuy"),
    ] {
        h.create(
            &p.token,
            "deals",
            json!({"dealname": name, "amount": amount, "pipeline": "default", "dealstage": stage}),
        )
        .await;
    }
    let search = |body: Value| {
        let h = &h;
        let token = p.token.clone();
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(220)).await;
            h.post(&token, "/crm/v3/objects/deals/search", body).await
        }
    };
    let (_, _, body) = search(json!({"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "GTE", "value": "500"}]}],
        "sorts": ["-amount"], "properties": ["dealname", "amount"]}))
    .await;
    let names: Vec<&str> = body["results"]
        .as_array()
        .expect("r")
        .iter()
        .map(|r| r["properties"]["dealname"].as_str().expect("n"))
        .collect();
    assert_eq!(
        names,
        vec!["B", "C"],
        "numbers compare as numbers, string sort form works"
    );
    assert_eq!(body["total"], 2);
    let (_, _, body) = search(json!({"filterGroups": [
        {"filters": [{"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"}]},
        {"filters": [{"propertyName": "dealstage", "operator": "IN", "values": ["closedlost"]}]}]}))
    .await;
    assert_eq!(body["total"], 2, "groups are ORed");
    let (status, _, _) = search(json!({"limit": 201})).await;
    assert_eq!(status, 400);
    let (status, _, _) = search(json!({"sorts": ["amount", "dealname"]})).await;
    assert_eq!(status, 400);
    let (status, _, _) = search(json!({"after": "abc"})).await;
    assert_eq!(status, 400);
    let long = "x".repeat(3000);
    let (status, _, _) = search(json!({"query": long})).await;
    assert_eq!(status, 400, "bodies over 3,000 characters are refused");
    let (status, _, body) = search(json!({"limit": 2})).await;
    assert_eq!(status, 200);
    assert_eq!(body["paging"]["next"]["after"], "2");
    let (_, _, last) = search(json!({"limit": 2, "after": "2"})).await;
    assert!(last.get("paging").is_none());
    h.sim.stop().await;
}
