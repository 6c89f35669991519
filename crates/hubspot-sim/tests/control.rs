//! The control API over plain HTTP: portals with known credentials, deterministic
//! and realistic seeding, reading records back, the change stream, stats and reset.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::Harness;
use common::receiver::{Delivery, drain, next, receiver};
use serde_json::{Value, json};

async fn control(h: &Harness, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let resp = h
        .http
        .request(method, h.url(path))
        .json(&body)
        .send()
        .await
        .expect("control call");
    let (status, _, body) = common::split(resp).await;
    (status, body)
}

/// Every live record of a type, with the given properties, paging to the end.
async fn all(h: &Harness, token: &str, object: &str, props: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let (status, _, page) = h
            .get(
                token,
                &format!("/crm/v3/objects/{object}?limit=100&properties={props}&after={after}"),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        out.extend(page["results"].as_array().expect("results").iter().cloned());
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = a.to_owned(),
            None => return out,
        }
    }
}

const ANCHOR_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY_MS: i64 = 86_400_000;

#[tokio::test]
async fn portals_are_created_with_known_credentials_and_tier() {
    let h = Harness::start().await;
    let (status, created) = control(
        &h,
        reqwest::Method::POST,
        "/_sim/portals",
        json!({"portal_id": 4242, "tier": "enterprise", "private_app_token": "pat-na1-11111111-2222-3333-4444-555555555555",
               "client_id": "known-client", "client_secret": "known-secret", "app_id": 31337}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["tier"], "enterprise");
    let (_, read) = control(&h, reqwest::Method::GET, "/_sim/portals/4242", Value::Null).await;
    assert_eq!(
        read["private_app_token"],
        "pat-na1-11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(
        (&read["client_id"], &read["client_secret"], &read["app_id"]),
        (
            &json!("known-client"),
            &json!("known-secret"),
            &json!(31337)
        )
    );
    let (status, headers, details) = h
        .get(
            "pat-na1-11111111-2222-3333-4444-555555555555",
            "/account-info/v3/details",
        )
        .await;
    assert_eq!((status, &details["portalId"]), (200, &json!(4242)));
    assert_eq!(headers["x-hubspot-ratelimit-daily"], "1000000");
    let page = h
        .http
        .get(h.url(
            "/oauth/authorize?client_id=known-client&redirect_uri=http://localhost/cb&scope=oauth",
        ))
        .send()
        .await
        .expect("consent page");
    assert_eq!(page.status(), 200, "the known client id is an OAuth app");
    let (status, _) = control(
        &h,
        reqwest::Method::POST,
        "/_sim/portals",
        json!({"portal_id": 4242}),
    )
    .await;
    assert_eq!(status, 409, "portal ids are unique");
    let (status, _) = control(
        &h,
        reqwest::Method::POST,
        "/_sim/portals",
        json!({"tier": "platinum"}),
    )
    .await;
    assert_eq!(status, 400, "an unknown tier is a bad request");
    let (_, list) = control(&h, reqwest::Method::GET, "/_sim/portals", Value::Null).await;
    assert_eq!(list["portal_ids"], json!([4242]));
    h.sim.stop().await;
}

#[tokio::test]
async fn seeding_is_deterministic_and_realistic() {
    let h = Harness::start().await;
    let a = h.portal(json!({})).await;
    let b = h.portal(json!({})).await;
    let seed = json!({"seed": 11, "contacts": 600, "companies": 60, "deals": 150, "owners": 8, "anchor_ms": ANCHOR_MS});
    for p in [&a, &b] {
        let (status, counts) = control(
            &h,
            reqwest::Method::POST,
            &format!("/_sim/portals/{}/seed", p.id),
            seed.clone(),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            (&counts["contacts"], &counts["companies"], &counts["deals"]),
            (&json!(600), &json!(60), &json!(150))
        );
    }
    let props = "email,lifecyclestage,hs_lead_status,notes_last_updated,hubspot_owner_id,nps_score,preferred_channel";
    let contacts = all(&h, &a.token, "contacts", props).await;
    assert_eq!(
        contacts,
        all(&h, &b.token, "contacts", props).await,
        "one seed, one data set"
    );
    assert_eq!(contacts.len(), 600);

    let values = |records: &[Value], name: &str| -> Vec<String> {
        records
            .iter()
            .filter_map(|r| r["properties"][name].as_str().map(str::to_owned))
            .collect()
    };
    let stages: BTreeSet<String> = values(&contacts, "lifecyclestage").into_iter().collect();
    assert!(stages.len() >= 5, "lifecycle stages: {stages:?}");
    let statuses: BTreeSet<String> = values(&contacts, "hs_lead_status").into_iter().collect();
    assert!(statuses.len() >= 5, "lead statuses: {statuses:?}");
    let emails = values(&contacts, "email");
    assert!(emails.len() < contacts.len(), "some contacts have no email");
    let mut seen = HashMap::new();
    for e in &emails {
        *seen.entry(e.to_lowercase()).or_insert(0) += 1;
    }
    assert!(seen.values().any(|n| *n > 1), "some emails are shared");
    let activity: Vec<i64> = values(&contacts, "notes_last_updated")
        .iter()
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .expect("ISO 8601")
                .timestamp_millis()
        })
        .collect();
    assert!(
        activity.iter().any(|t| ANCHOR_MS - t < 30 * DAY_MS),
        "recent activity"
    );
    assert!(
        activity.iter().any(|t| ANCHOR_MS - t > 90 * DAY_MS),
        "old activity"
    );
    assert!(
        !values(&contacts, "nps_score").is_empty()
            && !values(&contacts, "preferred_channel").is_empty()
    );
    let (_, _, custom) = h
        .get(&a.token, "/crm/v3/properties/contacts/nps_score")
        .await;
    assert_eq!(custom["hubspotDefined"], false, "a custom property");

    let (_, _, owners) = h.get(&a.token, "/crm/v3/owners").await;
    let owner_ids: BTreeSet<String> = owners["results"]
        .as_array()
        .expect("owners")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(owner_ids.len(), 8);
    assert!(
        values(&contacts, "hubspot_owner_id")
            .iter()
            .all(|o| owner_ids.contains(o))
    );

    let deals = all(
        &h,
        &a.token,
        "deals",
        "amount,dealstage,pipeline,hs_deal_stage_probability,hs_is_closed_won,closedate",
    )
    .await;
    assert_eq!(deals.len(), 150);
    let deal_stages: BTreeSet<String> = values(&deals, "dealstage").into_iter().collect();
    assert!(deal_stages.len() >= 6, "deal stages: {deal_stages:?}");
    assert!(deal_stages.contains("closedwon") && deal_stages.contains("closedlost"));
    assert_eq!(values(&deals, "amount").len(), 150);
    for d in &deals {
        let p = &d["properties"];
        let probability: f64 = p["hs_deal_stage_probability"]
            .as_str()
            .expect("probability")
            .parse()
            .expect("number");
        assert!((0.0..=1.0).contains(&probability));
        assert_eq!(
            p["hs_is_closed_won"] == "true",
            p["dealstage"] == "closedwon" || p["dealstage"] == "renewal_won"
        );
    }
    let inputs: Vec<Value> = deals.iter().map(|d| json!({"id": d["id"]})).collect();
    let (_, _, companies) = h
        .post(
            &a.token,
            "/crm/v4/associations/deals/companies/batch/read",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(
        companies["results"].as_array().map(Vec::len),
        Some(150),
        "every deal has a company"
    );
    let (_, _, contacts_of_deals) = h
        .post(
            &a.token,
            "/crm/v4/associations/deals/contacts/batch/read",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(
        contacts_of_deals["results"].as_array().map(Vec::len),
        Some(150)
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn a_record_reads_back_with_every_property_and_its_associations() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let (_, company) = control(
        &h,
        reqwest::Method::POST,
        &format!("/_sim/portals/{}/objects/companies", p.id),
        json!({"properties": {"name": "Acme"}}),
    )
    .await;
    let (_, contact) = control(
        &h,
        reqwest::Method::POST,
        &format!("/_sim/portals/{}/objects/contacts", p.id),
        json!({"properties": {"email": "a@acme.example", "jobtitle": "CTO"}}),
    )
    .await;
    let (status, _) = control(
        &h,
        reqwest::Method::POST,
        &format!("/_sim/portals/{}/associations", p.id),
        json!({"from_type": "contacts", "from_id": contact["id"], "to_type": "companies", "to_id": company["id"], "primary": true}),
    )
    .await;
    assert_eq!(status, 204);
    let contact_path = format!(
        "/_sim/portals/{}/objects/contacts/{}",
        p.id,
        contact["id"].as_str().expect("id")
    );
    let (status, _) = control(
        &h,
        reqwest::Method::PATCH,
        &contact_path,
        json!({"properties": {"jobtitle": "CEO"}}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, read) = control(&h, reqwest::Method::GET, &contact_path, Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(read["properties"]["jobtitle"], "CEO");
    assert_eq!(read["properties"]["email"], "a@acme.example");
    assert!(read["properties"]["lastmodifieddate"].is_string());
    assert_eq!(
        read["associations"]["companies"]["results"][0]["id"],
        company["id"]
    );
    let stats = h.stats(p.id).await;
    assert_eq!(stats["requests_total"], 0, "control calls are not counted");
    h.sim.stop().await;
}

#[tokio::test]
async fn the_change_stream_mutates_records_and_emits_webhooks_until_stopped() {
    let h = Harness::with(hubspot_sim::SimConfig {
        webhook_batch_window_ms: 50,
        ..Default::default()
    })
    .await;
    let mut r = receiver(0).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    h.seed(p.id, 200, 20, 40).await;
    let (status, _) = control(
        &h,
        reqwest::Method::POST,
        &format!("/_sim/portals/{}/changes/start", p.id),
        json!({"per_second": 200, "seed": 3}),
    )
    .await;
    assert_eq!(status, 200);
    let mut events = Vec::new();
    while events.len() < 100 {
        events.extend(next(&mut r.rx).await.events());
    }
    let (status, _) = control(
        &h,
        reqwest::Method::POST,
        &format!("/_sim/portals/{}/changes/stop", p.id),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    let kinds: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e["subscriptionType"].as_str())
        .collect();
    assert!(kinds.contains("contact.propertyChange"), "{kinds:?}");
    assert!(kinds.len() >= 3, "a mix of changes: {kinds:?}");
    assert!(events.iter().all(|e| e["changeSource"] == "CRM_UI"));
    // Let the last window drain, then nothing more comes.
    events.extend(
        drain(&mut r.rx, 400)
            .await
            .iter()
            .flat_map(Delivery::events),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(600), r.rx.recv())
            .await
            .is_err(),
        "the stream stopped"
    );
    // The newest change of a contact property is what the record holds now.
    let last = events
        .iter()
        .filter(|e| e["subscriptionType"] == "contact.propertyChange")
        .max_by_key(|e| e["eventId"].as_u64())
        .expect("a contact change");
    let (_, record) = control(
        &h,
        reqwest::Method::GET,
        &format!(
            "/_sim/portals/{}/objects/contacts/{}",
            p.id, last["objectId"]
        ),
        Value::Null,
    )
    .await;
    let name = last["propertyName"].as_str().expect("name");
    assert_eq!(
        record["properties"][name].as_str().unwrap_or(""),
        last["propertyValue"].as_str().expect("value"),
        "{record}"
    );
    r.handle.stop(false).await;
    h.sim.stop().await;
}

#[tokio::test]
async fn stats_count_requests_by_status_and_a_reset_drops_everything() {
    let h = Harness::start().await;
    let p = h.portal(json!({"tier": "enterprise"})).await;
    h.get(&p.token, "/crm/v3/objects/contacts").await;
    h.get(&p.token, "/crm/v3/objects/contacts/1").await;
    h.post(&p.token, "/crm/v3/objects/contacts/search", json!({}))
        .await;
    let stats = h.stats(p.id).await;
    assert_eq!(stats["requests_total"], 3);
    assert_eq!(stats["by_status"], json!({"200": 2, "404": 1}));
    assert_eq!(stats["search_requests"], 1);
    assert_eq!(stats["daily_used"], 3);
    assert_eq!(
        stats["max_requests_in_any_10s_window"], 2,
        "search has its own limit and is not in the window"
    );
    h.add_fault(
        json!({"path_prefix": "/crm/v3/objects/deals", "error_rate": 1.0, "error_status": 503}),
    )
    .await;
    let (status, _, _) = h.get(&p.token, "/crm/v3/objects/deals").await;
    assert_eq!(status, 503);
    let stats = h.stats(p.id).await;
    assert_eq!(
        stats["requests_total"], 4,
        "a request answered by an injected fault is still a request: {stats}"
    );
    assert_eq!(stats["by_status"], json!({"200": 2, "404": 1, "503": 1}));
    h.clear_faults().await;
    control(
        &h,
        reqwest::Method::POST,
        "/_sim/faults",
        json!({"path_prefix": "/crm", "latency_ms": 1}),
    )
    .await;
    let (status, _) = control(&h, reqwest::Method::POST, "/_sim/reset", Value::Null).await;
    assert_eq!(status, 204);
    let (_, portals) = control(&h, reqwest::Method::GET, "/_sim/portals", Value::Null).await;
    assert_eq!(portals["portal_ids"], json!([]));
    let (_, faults) = control(&h, reqwest::Method::GET, "/_sim/faults", Value::Null).await;
    assert_eq!(faults["faults"], json!([]));
    let (status, _, _) = h.get(&p.token, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 401, "the old token is gone");
    let again = h.portal(json!({"portal_id": p.id})).await;
    assert_eq!(h.stats(again.id).await["requests_total"], 0);
    h.sim.stop().await;
}
