//! The public-app route end to end: the simulator's signed deliveries land on the queue as
//! typed batches; every refusal has its own 4xx and publishes nothing.

#![expect(clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::collections::HashSet;

use common::{APP_SECRET, Sim, delivery, now_ms, spawn_app, v3_headers};
use contracts::v1::{ObjectType, WebhookChangeKind};
use serde_json::json;
use webhook_receiver::signature::SignatureVersion;

/// Drives a contact and a company through creation, association, merge, restore and
/// privacy deletion in the simulator.
async fn make_changes(sim: &Sim, portal: i64) {
    let first = sim
        .create(portal, "contacts", json!({"email": "a@x.example"}))
        .await;
    let second = sim
        .create(portal, "contacts", json!({"email": "b@x.example"}))
        .await;
    let company = sim
        .create(portal, "companies", json!({"name": "Acme"}))
        .await;
    sim.control(
        reqwest::Method::PATCH,
        &format!("/_sim/portals/{portal}/objects/contacts/{first}"),
        json!({"properties": {"firstname": "Ada"}}),
    )
    .await;
    sim.control(
        reqwest::Method::POST,
        &format!("/_sim/portals/{portal}/associations"),
        json!({"from_type": "contacts", "from_id": first.to_string(), "to_type": "companies",
               "to_id": company.to_string(), "primary": true}),
    )
    .await;
    sim.control(
        reqwest::Method::POST,
        &format!("/_sim/portals/{portal}/objects/contacts/merge"),
        json!({"primary_id": first, "merged_id": second}),
    )
    .await;
    sim.control(
        reqwest::Method::DELETE,
        &format!("/_sim/portals/{portal}/objects/companies/{company}"),
        json!({}),
    )
    .await;
    sim.control(
        reqwest::Method::POST,
        &format!("/_sim/portals/{portal}/objects/companies/{company}/restore"),
        json!({}),
    )
    .await;
    sim.control(
        reqwest::Method::POST,
        &format!("/_sim/portals/{portal}/objects/contacts/{first}/gdpr-delete"),
        json!({}),
    )
    .await;
}

/// Runs the simulator against a receiver accepting `accepted`, with the portal signing
/// `X-HubSpot-Signature` as `sim_version`; checks the ledger and answers the change kinds
/// that arrived.
async fn simulator_round_trip(
    accepted: Vec<SignatureVersion>,
    sim_version: &str,
) -> HashSet<WebhookChangeKind> {
    let app = spawn_app(|s| s.webhooks.accepted_signature_versions = accepted).await;
    let sim = Sim::start().await;
    // A query with an escape HubSpot's v3 rule decodes, as a real target URL might have.
    let target = app.url("/webhooks/hubspot?src=hs%3Asim");
    let portal = sim.portal(&target, APP_SECRET).await;
    sim.control(
        reqwest::Method::PUT,
        &format!("/_sim/portals/{portal}/webhooks"),
        json!({"signature_version": sim_version}),
    )
    .await;
    make_changes(&sim, portal).await;
    let hooks = sim.settled(portal).await;
    assert_eq!(hooks["failed_attempts"], 0, "{hooks}");
    let sent = hooks["delivered_events"].as_u64().expect("count");
    assert!(sent > 0);
    let batches = app.take_batches().await;
    assert_eq!(
        u64::try_from(batches.len()).expect("small"),
        hooks["delivered_batches"].as_u64().expect("count"),
        "one message per delivery"
    );
    let events: Vec<_> = batches.iter().flat_map(|b| b.events.iter()).collect();
    assert_eq!(u64::try_from(events.len()).expect("small"), sent, "ledger");
    for batch in &batches {
        assert_eq!(batch.portal_id, portal);
        assert_eq!(batch.connection_id, None);
        assert!(batch.received_at.is_some());
        assert!(batch.events.iter().all(|e| e.portal_id == portal));
    }
    assert!(events.iter().all(|e| e.occurred_at.is_some()));
    assert!(
        events
            .iter()
            .all(|e| matches!(e.object_type(), ObjectType::Contact | ObjectType::Company))
    );
    sim.sim.stop().await;
    events.iter().map(|e| e.change_kind()).collect()
}

#[tokio::test]
async fn the_simulators_v3_signed_deliveries_arrive_on_the_queue_as_typed_batches() {
    let kinds = simulator_round_trip(vec![SignatureVersion::V3], "v1").await;
    for kind in [
        WebhookChangeKind::Creation,
        WebhookChangeKind::PropertyChange,
        WebhookChangeKind::AssociationChange,
        WebhookChangeKind::Merge,
        WebhookChangeKind::Deletion,
        WebhookChangeKind::Restore,
        WebhookChangeKind::PrivacyDeletion,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} in {kinds:?}");
    }
}

#[tokio::test]
async fn the_simulators_v1_signatures_are_accepted_where_only_v1_is_configured() {
    let kinds = simulator_round_trip(vec![SignatureVersion::V1], "v1").await;
    assert!(kinds.contains(&WebhookChangeKind::Creation));
}

#[tokio::test]
async fn the_simulators_v2_signatures_are_accepted_where_only_v2_is_configured() {
    let kinds = simulator_round_trip(vec![SignatureVersion::V2], "v2").await;
    assert!(kinds.contains(&WebhookChangeKind::Creation));
}

#[tokio::test]
async fn a_valid_delivery_is_answered_200_after_its_batch_is_on_the_queue() {
    let app = spawn_app(|_| {}).await;
    let (status, body) = app
        .post_signed("/webhooks/hubspot", delivery(62515, 1, 100))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted_events"], 100);
    // Confirmed before the answer: the message is already there.
    assert_eq!(app.queued().await, 1);
    let batches = app.take_batches().await;
    assert_eq!(batches[0].portal_id, 62515);
    assert_eq!(batches[0].events.len(), 100);
    assert_eq!(batches[0].events[99].event_id, 100);
    assert_eq!(
        batches[0].events[0].change_kind(),
        WebhookChangeKind::PropertyChange
    );
    assert_eq!(
        batches[0].events[0].property_value.as_deref(),
        Some("c0@x.example")
    );
}

#[tokio::test]
async fn a_delivery_mixing_portals_is_published_as_one_batch_per_portal() {
    let app = spawn_app(|_| {}).await;
    let mut events: Vec<serde_json::Value> =
        serde_json::from_slice(&delivery(1, 1, 2)).expect("json");
    events.extend(
        serde_json::from_slice::<Vec<serde_json::Value>>(&delivery(2, 3, 1)).expect("json"),
    );
    let (status, body) = app
        .post_signed(
            "/webhooks/hubspot",
            serde_json::to_vec(&events).expect("json"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let batches = app.take_batches().await;
    let mut portals: Vec<(i64, usize)> = batches
        .iter()
        .map(|b| (b.portal_id, b.events.len()))
        .collect();
    portals.sort_unstable();
    assert_eq!(portals, vec![(1, 2), (2, 1)]);
}

#[tokio::test]
async fn a_retried_delivery_is_published_again_with_the_same_event_ids() {
    let app = spawn_app(|_| {}).await;
    let body = delivery(62515, 500, 3);
    for _ in 0..2 {
        let (status, _) = app.post_signed("/webhooks/hubspot", body.clone()).await;
        assert_eq!(status, 200);
    }
    let batches = app.take_batches().await;
    assert_eq!(batches.len(), 2);
    let ids = |i: usize| -> Vec<i64> { batches[i].events.iter().map(|e| e.event_id).collect() };
    assert_eq!(ids(0), ids(1));
}

/// (what is wrong, body, headers, expected status, expected error code)
type Refusal<'a> = (&'a str, Vec<u8>, Vec<(String, String)>, u16, &'a str);

#[tokio::test]
async fn every_refusal_has_its_own_4xx_code_and_publishes_nothing() {
    let app = spawn_app(|s| {
        s.webhooks.max_body_bytes = 64 * 1024;
        s.webhooks.max_events = 10;
    })
    .await;
    let path = "/webhooks/hubspot";
    let url = app.url(path);
    let body = delivery(62515, 1, 3);
    let now = now_ms().to_string();
    let signed = |body: &[u8], url: &str, ts: &str| v3_headers(APP_SECRET, url, body, ts);
    let without = |headers: Vec<(String, String)>, name: &str| -> Vec<(String, String)> {
        headers.into_iter().filter(|(k, _)| k != name).collect()
    };
    let replaced = |headers: Vec<(String, String)>, name: &str, value: &str| {
        headers
            .into_iter()
            .map(|(k, v)| {
                if k == name {
                    (k, value.to_owned())
                } else {
                    (k, v)
                }
            })
            .collect::<Vec<_>>()
    };
    let changed_body = delivery(62515, 2, 3);
    let big = delivery(62515, 1, 400);
    assert!(big.len() > 64 * 1024);
    let stale = (now_ms() - 301_000).to_string();
    let future = (now_ms() + 301_000).to_string();
    let cases: Vec<Refusal<'_>> = vec![
        (
            "changed body",
            changed_body,
            signed(&body, &url, &now),
            401,
            "invalid_signature",
        ),
        (
            "changed URL",
            body.clone(),
            signed(&body, &app.url("/webhooks/hubspot?x=1"), &now),
            401,
            "invalid_signature",
        ),
        (
            "changed timestamp",
            body.clone(),
            replaced(
                signed(&body, &url, &now),
                "x-hubspot-request-timestamp",
                &(now.parse::<i64>().expect("digits") - 1_000).to_string(),
            ),
            401,
            "invalid_signature",
        ),
        (
            "stale timestamp",
            body.clone(),
            signed(&body, &url, &stale),
            401,
            "stale_timestamp",
        ),
        (
            "future timestamp",
            body.clone(),
            signed(&body, &url, &future),
            401,
            "future_timestamp",
        ),
        (
            "missing signature",
            body.clone(),
            without(signed(&body, &url, &now), "x-hubspot-signature-v3"),
            401,
            "missing_signature",
        ),
        (
            "missing timestamp",
            body.clone(),
            without(signed(&body, &url, &now), "x-hubspot-request-timestamp"),
            401,
            "invalid_timestamp",
        ),
        (
            "wrong secret",
            body.clone(),
            v3_headers("not-the-secret", &url, &body, &now),
            401,
            "invalid_signature",
        ),
        (
            "body over the cap",
            big.clone(),
            signed(&big, &url, &now),
            413,
            "payload_too_large",
        ),
        (
            "not JSON content",
            body.clone(),
            replaced(signed(&body, &url, &now), "content-type", "text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            "malformed JSON",
            b"[{\"eventId\":".to_vec(),
            signed(b"[{\"eventId\":", &url, &now),
            400,
            "malformed_json",
        ),
        (
            "not an array",
            br#"{"eventId":1}"#.to_vec(),
            signed(br#"{"eventId":1}"#, &url, &now),
            400,
            "not_an_array",
        ),
        (
            "too many events",
            delivery(62515, 1, 11),
            signed(&delivery(62515, 1, 11), &url, &now),
            400,
            "too_many_events",
        ),
        (
            "event without portalId",
            br#"[{"eventId":1,"occurredAt":1,"subscriptionType":"contact.creation"}]"#.to_vec(),
            signed(
                br#"[{"eventId":1,"occurredAt":1,"subscriptionType":"contact.creation"}]"#,
                &url,
                &now,
            ),
            400,
            "invalid_event",
        ),
    ];
    for (name, body, headers, status, code) in cases {
        let (got, answer) = app.post(path, body, &headers).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["error"], code, "{name}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        assert_eq!(app.queued().await, 0, "{name}: nothing published");
    }
    // The fence: a valid delivery afterwards is the only message on the queue.
    let (status, _) = app.post_signed(path, delivery(62515, 900, 1)).await;
    assert_eq!(status, 200);
    let batches = app.take_batches().await;
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].events[0].event_id, 900);
}

#[tokio::test]
async fn a_chunked_body_over_the_cap_is_refused_while_streaming() {
    let app = spawn_app(|s| s.webhooks.max_body_bytes = 1024).await;
    // Raw HTTP/1.1 with a chunked body: no Content-Length to refuse it up front.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = app.base_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = "POST /webhooks/hubspot HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write");
    let chunk = format!("200\r\n{}\r\n", " ".repeat(512));
    for _ in 0..4 {
        // The server may answer and close before the last chunks; that is the point.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0_u8; 64];
    let n = stream.read(&mut answer).await.expect("read");
    let status_line = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");

    assert_eq!(app.queued().await, 0);
}

#[tokio::test]
async fn unknown_subscription_types_are_accepted_kept_and_counted() {
    let app = spawn_app(|_| {}).await;
    let body = serde_json::to_vec(&json!([
        {"eventId": 1, "subscriptionId": 1, "portalId": 5, "appId": 2, "occurredAt": 1,
         "subscriptionType": "ticket.creation", "objectId": 3},
        {"eventId": 2, "subscriptionId": 1, "portalId": 5, "appId": 2, "occurredAt": 1,
         "subscriptionType": "contact.creation", "objectId": 4}
    ]))
    .expect("json");
    let (status, answer) = app.post_signed("/webhooks/hubspot", body).await;
    assert_eq!(status, 200, "{answer}");
    let batches = app.take_batches().await;
    assert_eq!(batches[0].events[0].subscription_type, "ticket.creation");
    assert_eq!(batches[0].events[0].object_type(), ObjectType::Unspecified);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("hubscore_webhook_unknown_events_total{service=\"webhook-receiver\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"hubscore_webhook_events_total{outcome="accepted",subscription_type="other",service="webhook-receiver"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_count_deliveries_by_outcome_and_signature_failures_by_reason() {
    let app = spawn_app(|_| {}).await;
    let (status, _) = app
        .post_signed("/webhooks/hubspot", delivery(62515, 1, 2))
        .await;
    assert_eq!(status, 200);
    let body = delivery(62515, 1, 2);
    let headers = v3_headers(
        "wrong",
        &app.url("/webhooks/hubspot"),
        &body,
        &now_ms().to_string(),
    );
    let (status, _) = app.post("/webhooks/hubspot", body, &headers).await;
    assert_eq!(status, 401);
    let metrics = app.metrics().await;
    for line in [
        r#"hubscore_webhook_deliveries_total{outcome="accepted",route="public",service="webhook-receiver"} 1"#,
        r#"hubscore_webhook_deliveries_total{outcome="invalid_signature",route="public",service="webhook-receiver"} 1"#,
        r#"hubscore_webhook_signature_failures_total{reason="invalid_signature",service="webhook-receiver"} 1"#,
        r#"hubscore_webhook_events_total{outcome="accepted",subscription_type="contact.propertyChange",service="webhook-receiver"} 2"#,
        r#"hubscore_webhook_publish_confirm_seconds_count{service="webhook-receiver"} 1"#,
        r#"hubscore_webhook_requests_in_flight{service="webhook-receiver"} 0"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(!metrics.contains(common::APP_SECRET));
}

#[tokio::test]
async fn the_public_route_refuses_everything_with_503_when_no_secret_is_configured() {
    let app = spawn_app(|s| s.webhooks.app_client_secrets.clear()).await;
    let (status, answer) = app
        .post_signed("/webhooks/hubspot", delivery(1, 1, 1))
        .await;
    assert_eq!(status, 503);
    assert_eq!(answer["error"], "not_configured");
    assert_eq!(app.queued().await, 0);
}
