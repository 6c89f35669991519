//! Webhook delivery to a local receiver: signatures, batching, retries and event shapes.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::Harness;
use common::receiver::{Delivery, drain, next, receiver, receiver_answering};
use hubspot_sim::SimConfig;
use hubspot_sim::signing::{sign_v1, sign_v2, sign_v3};
use serde_json::{Value, json};

fn fast() -> SimConfig {
    SimConfig {
        webhook_retry_base_ms: 20,
        webhook_batch_window_ms: 50,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_attempt_number_plus_one_and_fresh_signatures() {
    let h = Harness::with(fast()).await;
    let mut r = receiver(1).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    let contact = h
        .create(&p.token, "contacts", json!({"email": "hook@x.example"}))
        .await;
    let first = next(&mut r.rx).await;
    let second = next(&mut r.rx).await;
    for d in [&first, &second] {
        assert_eq!(d.header("content-type"), "application/json");
        assert_eq!(d.header("x-hubspot-signature-version"), "v1");
        assert_eq!(
            d.header("x-hubspot-signature"),
            sign_v1(&p.client_secret, &d.body)
        );
        let ts = d.header("x-hubspot-request-timestamp");
        assert_eq!(
            d.header("x-hubspot-signature-v3"),
            sign_v3(&p.client_secret, "POST", &r.url, &d.body, ts)
        );
    }
    assert_ne!(
        first.header("x-hubspot-request-timestamp"),
        second.header("x-hubspot-request-timestamp"),
        "each attempt is re-signed"
    );
    let (a, b) = (first.events(), second.events());
    assert_eq!(a.len(), b.len());
    assert_eq!(a[0]["attemptNumber"], 0);
    assert_eq!(b[0]["attemptNumber"], 1);
    assert_eq!(a[0]["eventId"], b[0]["eventId"]);
    let creation = a
        .iter()
        .find(|e| e["subscriptionType"] == "contact.creation")
        .expect("creation event");
    assert_eq!(
        creation["objectId"].to_string(),
        contact["id"].as_str().expect("id")
    );
    assert_eq!(creation["portalId"], p.id);
    assert_eq!(creation["appId"], p.app_id);
    assert_eq!(creation["changeSource"], "API");
    r.handle.stop(false).await;
    h.sim.stop().await;
}

#[tokio::test]
async fn a_portal_switched_to_v2_signs_x_hubspot_signature_with_method_and_uri() {
    let h = Harness::with(fast()).await;
    let mut r = receiver(0).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    let resp = h
        .http
        .put(h.url(&format!("/_sim/portals/{}/webhooks", p.id)))
        .json(&json!({"signature_version": "v3"}))
        .send()
        .await
        .expect("put");
    assert_eq!(
        resp.status(),
        400,
        "only v1 and v2 go in X-HubSpot-Signature"
    );
    configure_webhooks(&h, p.id, json!({"signature_version": "v2"})).await;
    assert_eq!(
        h.sim_get(&format!("/_sim/portals/{}/webhooks", p.id)).await["signature_version"],
        "v2"
    );
    h.create(&p.token, "contacts", json!({"email": "v2@x.example"}))
        .await;
    let d = next(&mut r.rx).await;
    assert_eq!(d.header("x-hubspot-signature-version"), "v2");
    assert_eq!(
        d.header("x-hubspot-signature"),
        sign_v2(&p.client_secret, "POST", &r.url, &d.body)
    );
    assert_ne!(
        d.header("x-hubspot-signature"),
        sign_v1(&p.client_secret, &d.body)
    );
    let ts = d.header("x-hubspot-request-timestamp");
    assert_eq!(
        d.header("x-hubspot-signature-v3"),
        sign_v3(&p.client_secret, "POST", &r.url, &d.body, ts),
        "v3 is sent whatever the version"
    );
    r.handle.stop(false).await;
    h.sim.stop().await;
}

#[tokio::test]
async fn changes_become_property_association_merge_and_generic_events() {
    let h = Harness::with(fast()).await;
    let mut r = receiver(0).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    configure_webhooks(
        &h,
        p.id,
        json!({"target_url": r.url, "subscriptions": ["contact.propertyChange", "contact.associationChange", "contact.merge", "object.creation", "contact.privacyDeletion", "contact.deletion"]}),
    )
    .await;
    let created: Value = h
        .http
        .post(h.url(&format!("/_sim/portals/{}/objects/contacts", p.id)))
        .json(&json!({"properties": {"email": "a@x.example"}}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let company = h
        .create(&p.token, "companies", json!({"name": "Acme"}))
        .await;
    h.http
        .patch(h.url(&format!("/_sim/portals/{}/objects/contacts/{id}", p.id)))
        .json(&json!({"properties": {"lifecyclestage": "customer", "jobtitle": "CTO"}}))
        .send()
        .await
        .expect("patch");
    h.http
        .post(h.url(&format!("/_sim/portals/{}/associations", p.id)))
        .json(&json!({"from_type": "contacts", "from_id": id, "to_type": "companies", "to_id": company["id"], "primary": true}))
        .send()
        .await
        .expect("associate");
    let other = h
        .create(&p.token, "contacts", json!({"email": "b@x.example"}))
        .await;
    h.post(
        &p.token,
        "/crm/v3/objects/contacts/merge",
        json!({"primaryObjectId": id, "objectIdToMerge": other["id"]}),
    )
    .await;
    let (status, _, _) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts/gdpr-delete",
            json!({"objectId": id}),
        )
        .await;
    assert_eq!(status, 204);
    let mut events = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(600), r.rx.recv()).await {
        let batch = d.events();
        assert!(batch.len() <= 100);
        events.extend(batch);
    }
    let of = |t: &str| {
        events
            .iter()
            .filter(|e| e["subscriptionType"] == t)
            .cloned()
            .collect::<Vec<_>>()
    };
    let props: Vec<(String, String)> = of("contact.propertyChange")
        .iter()
        .map(|e| {
            (
                e["propertyName"].as_str().expect("n").to_owned(),
                e["propertyValue"].as_str().expect("v").to_owned(),
            )
        })
        .collect();
    assert!(props.contains(&("lifecyclestage".to_owned(), "customer".to_owned())));
    assert!(props.contains(&("jobtitle".to_owned(), "CTO".to_owned())));
    assert!(
        props.iter().all(|(n, _)| n != "lastmodifieddate"),
        "last-modified changes are not subscribable"
    );
    let assoc = of("contact.associationChange");
    let primaries: Vec<bool> = assoc
        .iter()
        .map(|e| e["isPrimaryAssociation"].as_bool().expect("flag"))
        .collect();
    assert_eq!(
        primaries,
        vec![false, true],
        "a primary association fires for the unlabeled and the primary type"
    );
    assert_eq!(assoc[0]["associationType"], "CONTACT_TO_COMPANY");
    let generic = of("object.creation");
    assert!(generic.iter().any(|e| e["objectTypeId"] == "0-2"));
    assert!(generic.iter().any(|e| e["objectTypeId"] == "0-1"));
    let merge = of("contact.merge");
    assert_eq!(merge[0]["primaryObjectId"].to_string(), id);
    assert_eq!(
        merge[0]["mergedObjectIds"][0].to_string(),
        other["id"].as_str().expect("id")
    );
    assert_eq!(of("contact.privacyDeletion").len(), 1);
    assert_eq!(
        of("contact.deletion").len(),
        1,
        "privacy deletion also sends a deletion"
    );
    assert_eq!(
        events
            .iter()
            .find(|e| e["subscriptionType"] == "contact.propertyChange")
            .expect("pc")["changeSource"],
        "CRM_UI"
    );
    r.handle.stop(false).await;
    h.sim.stop().await;
}

#[tokio::test]
async fn more_than_100_changes_arrive_in_batches_of_at_most_100() {
    let h = Harness::with(fast()).await;
    let mut r = receiver(0).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    create_contacts(&h, &p.token, "bulk", 100).await;
    create_contacts(&h, &p.token, "more", 50).await;
    let mut total = 0;
    let mut sizes = Vec::new();
    while total < 150 {
        let d = next(&mut r.rx).await;
        sizes.push(d.events().len());
        total += d.events().len();
    }
    assert_eq!(total, 150);
    assert!(sizes.iter().all(|s| *s <= 100), "{sizes:?}");
    r.handle.stop(false).await;
    h.sim.stop().await;
}

async fn configure_webhooks(h: &Harness, portal: u64, settings: Value) {
    let resp = h
        .http
        .put(h.url(&format!("/_sim/portals/{portal}/webhooks")))
        .json(&settings)
        .send()
        .await
        .expect("webhooks");
    assert_eq!(resp.status(), 200);
}

async fn webhook_counters(h: &Harness, portal: u64) -> Value {
    h.sim_get(&format!("/_sim/portals/{portal}/webhooks")).await
}

async fn create_contacts(h: &Harness, token: &str, prefix: &str, n: usize) {
    let inputs: Vec<Value> = (0..n)
        .map(|i| json!({"properties": {"email": format!("{prefix}{i}@x.example")}}))
        .collect();
    let (status, _, body) = h
        .post(
            token,
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

fn event_ids(d: &Delivery) -> Vec<u64> {
    d.events()
        .iter()
        .map(|e| e["eventId"].as_u64().expect("eventId"))
        .collect()
}

#[tokio::test]
async fn company_deal_and_generic_object_subscriptions_each_get_their_events() {
    let h = Harness::with(fast()).await;
    let mut r = receiver(0).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    configure_webhooks(
        &h,
        p.id,
        json!({"subscriptions": ["company.creation", "company.merge", "company.associationChange",
            "deal.propertyChange:dealstage", "deal.deletion", "deal.restore", "deal.associationChange",
            "object.propertyChange", "object.deletion", "object.restore", "object.merge", "object.associationChange"]}),
    )
    .await;
    let company = |name: &'static str| {
        let h = &h;
        let token = p.token.clone();
        async move {
            let c = h.create(&token, "companies", json!({"name": name})).await;
            c["id"]
                .as_str()
                .expect("id")
                .parse::<u64>()
                .expect("numeric")
        }
    };
    let acme = company("Acme").await;
    let dupe = company("Acme (dupe)").await;
    let (status, _, deal) = h
        .post(&p.token, "/crm/v3/objects/deals", json!({"properties": {"dealname": "Platform", "pipeline": "default", "dealstage": "qualifiedtobuy"},
            "associations": [{"to": {"id": acme.to_string()}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}]}))
        .await;
    assert_eq!(status, 201);
    let deal_id: u64 = deal["id"].as_str().expect("id").parse().expect("numeric");
    h.send(
        reqwest::Method::PATCH,
        &p.token,
        &format!("/crm/v3/objects/deals/{deal_id}"),
        json!({"properties": {"dealstage": "closedwon", "amount": "5000"}}),
    )
    .await;
    h.send(
        reqwest::Method::DELETE,
        &p.token,
        &format!("/crm/v3/objects/deals/{deal_id}"),
        Value::Null,
    )
    .await;
    let resp = h
        .http
        .post(h.url(&format!(
            "/_sim/portals/{}/objects/deals/{deal_id}/restore",
            p.id
        )))
        .send()
        .await
        .expect("restore");
    assert_eq!(resp.status(), 200);
    let (status, _, _) = h
        .post(
            &p.token,
            "/crm/v3/objects/companies/merge",
            json!({"primaryObjectId": acme.to_string(), "objectIdToMerge": dupe.to_string()}),
        )
        .await;
    assert_eq!(status, 200);

    let events: Vec<Value> = drain(&mut r.rx, 600)
        .await
        .iter()
        .flat_map(Delivery::events)
        .collect();
    for e in &events {
        for field in [
            "eventId",
            "subscriptionId",
            "portalId",
            "appId",
            "occurredAt",
            "subscriptionType",
            "attemptNumber",
            "changeSource",
        ] {
            assert!(e.get(field).is_some(), "{field} missing in {e}");
        }
    }
    let of = |t: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["subscriptionType"] == t)
            .collect()
    };
    let created: Vec<u64> = of("company.creation")
        .iter()
        .map(|e| e["objectId"].as_u64().expect("id"))
        .collect();
    assert_eq!(created, vec![acme, dupe]);
    assert!(of("company.creation")[0].get("objectTypeId").is_none());
    let stage = of("deal.propertyChange");
    assert_eq!(stage.len(), 1, "only the subscribed property: {stage:?}");
    assert_eq!(
        (&stage[0]["propertyName"], &stage[0]["propertyValue"]),
        (&json!("dealstage"), &json!("closedwon"))
    );
    assert_eq!(stage[0]["objectId"], deal_id);
    assert_eq!(of("deal.deletion")[0]["objectId"], deal_id);
    assert_eq!(of("deal.restore")[0]["objectId"], deal_id);
    let deal_assoc: Vec<(&Value, &Value)> = of("deal.associationChange")
        .iter()
        .map(|e| (&e["associationType"], &e["isPrimaryAssociation"]))
        .collect();
    assert_eq!(
        deal_assoc,
        vec![
            (&json!("DEAL_TO_COMPANY"), &json!(false)),
            (&json!("DEAL_TO_COMPANY"), &json!(true))
        ]
    );
    assert!(
        of("company.associationChange")
            .iter()
            .any(|e| e["associationType"] == "COMPANY_TO_DEAL"
                && e["fromObjectId"] == acme
                && e["toObjectId"] == deal_id),
        "the other side hears about it too"
    );
    let merge = of("company.merge");
    assert_eq!(merge[0]["primaryObjectId"], acme);
    assert_eq!(merge[0]["mergedObjectIds"], json!([dupe]));

    let generic_changes: Vec<(&Value, &Value)> = of("object.propertyChange")
        .iter()
        .filter(|e| e["objectId"] == deal_id)
        .map(|e| (&e["propertyName"], &e["objectTypeId"]))
        .collect();
    assert!(generic_changes.contains(&(&json!("amount"), &json!("0-3"))));
    assert!(generic_changes.contains(&(&json!("dealstage"), &json!("0-3"))));
    assert_eq!(of("object.deletion")[0]["objectTypeId"], "0-3");
    assert_eq!(of("object.restore")[0]["objectTypeId"], "0-3");
    assert_eq!(of("object.merge")[0]["objectTypeId"], "0-2");
    let generic_assoc = of("object.associationChange");
    let primary = generic_assoc
        .iter()
        .find(|e| e["fromObjectTypeId"] == "0-3" && e["isPrimaryAssociation"] == true)
        .expect("primary deal-to-company event");
    assert_eq!(primary["toObjectTypeId"], "0-2");
    assert_eq!(primary["associationTypeId"], 5);
    assert_eq!(primary["associationCategory"], "HUBSPOT_DEFINED");
    r.handle.stop(false).await;
    h.sim.stop().await;
}

#[tokio::test]
async fn a_portal_never_has_more_than_10_deliveries_in_flight() {
    let h = Harness::with(fast()).await;
    let mut r = receiver_answering(vec![(204, 1000)]).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    configure_webhooks(&h, p.id, json!({"subscriptions": ["contact.creation"]})).await;
    for i in 0..15 {
        create_contacts(&h, &p.token, &format!("c{i}-"), 100).await;
    }
    let mut events = 0;
    let mut batches = 0;
    while events < 1500 {
        let d = next(&mut r.rx).await;
        assert!(d.events().len() <= 100);
        events += d.events().len();
        batches += 1;
    }
    assert!(batches >= 15);
    assert_eq!(
        r.max_in_flight.load(Ordering::SeqCst),
        10,
        "15 or more batches were ready at once; 10 went out together, no more"
    );
    r.handle.stop(false).await;
    h.sim.stop().await;
}

#[tokio::test]
async fn the_duplicate_switch_sends_each_batch_twice() {
    let h = Harness::with(fast()).await;
    let mut r = receiver(0).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    configure_webhooks(
        &h,
        p.id,
        json!({"duplicate_rate": 1.0, "subscriptions": ["contact.creation"]}),
    )
    .await;
    create_contacts(&h, &p.token, "dup", 3).await;
    let deliveries = drain(&mut r.rx, 600).await;
    assert_eq!(deliveries.len(), 2);
    assert_eq!(event_ids(&deliveries[0]), event_ids(&deliveries[1]));
    assert_eq!(event_ids(&deliveries[0]).len(), 3);
    r.handle.stop(false).await;
    h.sim.stop().await;
}

#[tokio::test]
async fn events_arrive_in_order_unless_the_shuffle_switch_is_on() {
    let h = Harness::with(fast()).await;
    let mut r = receiver(0).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    configure_webhooks(&h, p.id, json!({"subscriptions": ["contact.creation"]})).await;
    create_contacts(&h, &p.token, "ordered", 100).await;
    let ordered = drain(&mut r.rx, 600).await;
    assert_eq!(ordered.len(), 1);
    let ids = event_ids(&ordered[0]);
    assert!(ids.is_sorted(), "without the switch a batch is in order");
    configure_webhooks(&h, p.id, json!({"shuffle": true})).await;
    create_contacts(&h, &p.token, "shuffled", 100).await;
    let shuffled = drain(&mut r.rx, 600).await;
    let ids: Vec<u64> = shuffled.iter().flat_map(event_ids).collect();
    assert_eq!(ids.len(), 100);
    assert!(!ids.is_sorted(), "100 shuffled events are out of order");
    r.handle.stop(false).await;
    h.sim.stop().await;
}

#[tokio::test]
async fn a_timeout_and_a_4xx_are_retried_like_a_5xx() {
    let h = Harness::with(SimConfig {
        webhook_timeout_ms: 300,
        ..fast()
    })
    .await;
    let mut r = receiver_answering(vec![(204, 1500), (400, 0), (204, 0)]).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    configure_webhooks(&h, p.id, json!({"subscriptions": ["contact.creation"]})).await;
    create_contacts(&h, &p.token, "slow", 1).await;
    let deliveries = drain(&mut r.rx, 1500).await;
    let attempts: Vec<Value> = deliveries
        .iter()
        .map(|d| d.events()[0]["attemptNumber"].clone())
        .collect();
    assert_eq!(attempts, vec![json!(0), json!(1), json!(2)]);
    assert!(
        deliveries
            .iter()
            .all(|d| event_ids(d) == event_ids(&deliveries[0]))
    );
    let counters = webhook_counters(&h, p.id).await;
    assert_eq!(counters["failed_attempts"], 2);
    assert_eq!(counters["delivered_batches"], 1);
    r.handle.stop(false).await;
    h.sim.stop().await;
}

#[tokio::test]
async fn a_failing_target_gets_10_retries_and_an_unreachable_one_is_given_up_too() {
    let h = Harness::with(SimConfig {
        webhook_retry_base_ms: 1,
        ..fast()
    })
    .await;
    let mut r = receiver_answering(vec![(503, 0)]).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    configure_webhooks(&h, p.id, json!({"subscriptions": ["contact.creation"]})).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let unreachable = h
        .portal(json!({"webhook_target_url": format!("http://127.0.0.1:{closed}/hooks")}))
        .await;
    create_contacts(&h, &p.token, "fail", 1).await;
    create_contacts(&h, &unreachable.token, "gone", 1).await;
    let deliveries = drain(&mut r.rx, 2500).await;
    let attempts: Vec<u64> = deliveries
        .iter()
        .map(|d| d.events()[0]["attemptNumber"].as_u64().expect("n"))
        .collect();
    assert_eq!(attempts, (0..=10).collect::<Vec<_>>(), "1 try + 10 retries");
    for portal in [p.id, unreachable.id] {
        let counters = webhook_counters(&h, portal).await;
        assert_eq!(counters["failed_attempts"], 11, "{counters}");
        assert_eq!(counters["abandoned_batches"], 1);
        assert_eq!(counters["in_flight_batches"], 0);
    }
    r.handle.stop(false).await;
    h.sim.stop().await;
}

#[tokio::test]
async fn a_reset_stops_pending_retries() {
    let h = Harness::with(SimConfig {
        webhook_retry_base_ms: 300,
        ..fast()
    })
    .await;
    let mut r = receiver_answering(vec![(500, 0)]).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    create_contacts(&h, &p.token, "reset", 1).await;
    next(&mut r.rx).await;
    let resp = h
        .http
        .post(h.url("/_sim/reset"))
        .send()
        .await
        .expect("reset");
    assert_eq!(resp.status(), 204);
    let after = drain(&mut r.rx, 1500).await;
    assert!(
        after.is_empty(),
        "{} retries arrived after the reset",
        after.len()
    );
    r.handle.stop(false).await;
    h.sim.stop().await;
}
