//! Webhook delivery to a local receiver: signatures, batching, retries and event shapes.

#![expect(clippy::expect_used, reason = "the receiver helpers fail loudly")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::Harness;
use hubspot_sim::SimConfig;
use hubspot_sim::signing::{sign_v1, sign_v3};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

struct Delivery {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Delivery {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }

    fn events(&self) -> Vec<Value> {
        serde_json::from_slice::<Vec<Value>>(&self.body).expect("a JSON array")
    }
}

struct Receiver {
    url: String,
    rx: mpsc::UnboundedReceiver<Delivery>,
    handle: actix_web::dev::ServerHandle,
}

/// A receiver that answers 500 to the first `fail_first` deliveries, then 200.
async fn receiver(fail_first: usize) -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(Mutex::new((tx, fail_first)));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new().route(
            "/hooks/hubspot",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let state = state.clone();
                async move {
                    let mut guard = state.lock().await;
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    let _ = guard.0.send(Delivery {
                        headers,
                        body: body.to_vec(),
                    });
                    if guard.1 > 0 {
                        guard.1 -= 1;
                        HttpResponse::InternalServerError().finish()
                    } else {
                        HttpResponse::NoContent().finish()
                    }
                }
            }),
        )
    })
    .listen(listener)
    .expect("listen")
    .workers(1)
    .disable_signals()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Receiver {
        url: format!("http://127.0.0.1:{port}/hooks/hubspot?src=hs%3Asim"),
        rx,
        handle,
    }
}

fn fast() -> SimConfig {
    SimConfig {
        webhook_retry_base_ms: 20,
        webhook_batch_window_ms: 50,
        ..SimConfig::default()
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a delivery within 5 s")
        .expect("channel open")
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_attempt_number_plus_one_and_fresh_signatures() {
    let h = Harness::with(fast()).await;
    let mut r = receiver(1).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    let (status, _, contact) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "hook@x.example"}}),
        )
        .await;
    assert_eq!(status, 201);
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
async fn changes_become_property_association_merge_and_generic_events() {
    let h = Harness::with(fast()).await;
    let mut r = receiver(0).await;
    let p = h.portal(json!({"webhook_target_url": r.url})).await;
    let resp = h
        .http
        .put(h.url(&format!("/_sim/portals/{}/webhooks", p.id)))
        .json(&json!({"target_url": r.url, "subscriptions": ["contact.propertyChange", "contact.associationChange", "contact.merge", "object.creation", "contact.privacyDeletion", "contact.deletion"]}))
        .send()
        .await
        .expect("webhooks");
    assert_eq!(resp.status(), 200);
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
    let (_, _, company) = h
        .post(
            &p.token,
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Acme"}}),
        )
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
    let (_, _, other) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "b@x.example"}}),
        )
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
    let inputs: Vec<Value> = (0..100)
        .map(|i| json!({"properties": {"email": format!("bulk{i}@x.example")}}))
        .collect();
    h.post(
        &p.token,
        "/crm/v3/objects/contacts/batch/create",
        json!({"inputs": inputs.clone()}),
    )
    .await;
    let inputs: Vec<Value> = (0..50)
        .map(|i| json!({"properties": {"email": format!("more{i}@x.example")}}))
        .collect();
    h.post(
        &p.token,
        "/crm/v3/objects/contacts/batch/create",
        json!({"inputs": inputs}),
    )
    .await;
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
