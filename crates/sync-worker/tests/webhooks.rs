//! Incremental sync from webhooks, end to end: a change in the simulator, its delivery
//! published as `webhook.batch`, the mirror and the `crm.changed` message.

mod common;

use std::time::Duration;

use common::*;
use contracts::v1;
use reqwest::Method;
use serde_json::json;

/// A synced connection with webhooks flowing.
async fn synced(h: &Harness) -> (Portal, RunningApp, Connection) {
    synced_with(h, 30).await
}

/// [`synced`] with `contacts` seeded contacts.
async fn synced_with(h: &Harness, contacts: usize) -> (Portal, RunningApp, Connection) {
    let (portal, app, connection) = h.synced((contacts, 6, 6)).await;
    let receiver = start_receiver(h).await;
    h.webhooks_to(&portal, Some(&receiver)).await;
    h.take_events().await;
    (portal, app, connection)
}

/// A simulator that batches webhook deliveries for 50 ms, so that changes arrive quickly.
async fn quick_webhooks() -> Harness {
    Harness::with_sim(hubspot_sim::SimConfig {
        webhook_batch_window_ms: 50,
        ..Default::default()
    })
    .await
}

/// Waits for `crm.changed` to carry `twin` as a customer, and checks the mirror agrees.
async fn twin_took_over(h: &Harness, app: &RunningApp, connection: &Connection, twin: i64) {
    until("crm.changed with the twin as the customer", async || {
        crm_changes(&h.take_events().await)
            .iter()
            .any(|c| c.customers.iter().any(|cu| cu.external_id == twin))
    })
    .await;
    let Some(state) = record_state(&app.pool, connection, "contacts", twin).await else {
        panic!("the twin {twin} is not mirrored");
    };
    assert_eq!(state.skip_reason, None, "the twin is the customer now");
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the worker's metrics count `n` webhook events dropped for `reason`.
async fn until_dropped(h: &Harness, app: &RunningApp, reason: &str, n: u64) {
    let metrics_url = format!("http://127.0.0.1:{}/metrics", app.port);
    let series = format!("reason=\"{reason}\"");
    let count = format!(" {n}");
    until(&format!("{n} events dropped as {reason}"), async || {
        // An unanswered scrape counts as "not yet".
        let Ok(response) = h.http.get(&metrics_url).send().await else {
            return false;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines().any(|l| {
            l.starts_with("hubscore_sync_webhook_events_dropped_total{")
                && l.contains(&series)
                && l.ends_with(&count)
        })
    })
    .await;
}

#[tokio::test]
async fn creations_property_and_association_changes_reach_the_mirror_and_crm_changed() {
    let h = quick_webhooks().await;
    let (portal, app, connection) = synced(&h).await;
    let contact = h
        .create(
            &portal,
            "contacts",
            json!({"email": "ada@lovelace.example", "firstname": "Ada"}),
        )
        .await;
    let company = h
        .create(&portal, "companies", json!({"name": "Analytical Engines"}))
        .await;
    until("the new contact", async || {
        record_state(&app.pool, &connection, "contacts", contact)
            .await
            .is_some_and(|c| c.email.as_deref() == Some("ada@lovelace.example"))
    })
    .await;
    h.control(
        Method::PATCH,
        &portal,
        &format!("/objects/contacts/{contact}"),
        json!({"properties": {"lastname": "Lovelace"}}),
    )
    .await;
    h.control(
        Method::POST,
        &portal,
        "/associations",
        json!({"from_type": "contacts", "from_id": contact, "to_type": "companies", "to_id": company, "primary": true}),
    )
    .await;
    until("the property change", async || {
        record_state(&app.pool, &connection, "contacts", contact)
            .await
            .is_some_and(|c| c.name.as_deref() == Some("Ada Lovelace"))
    })
    .await;
    until("the association", async || {
        mirror_edges(&app.pool, &connection).await["contact_companies"]
            .contains(&(contact, company))
    })
    .await;
    until("crm.changed with the associated customer", async || {
        crm_changes(&h.take_events().await).iter().any(|c| {
            matches!(
                c.cause,
                Some(v1::crm_changed::Cause::WebhookBatchMessageId(_))
            ) && c.customers.iter().any(|cu| {
                cu.external_id == contact
                    && cu.company_ids == vec![company]
                    && cu.primary_company_id == Some(company)
                    && cu.name.as_deref() == Some("Ada Lovelace")
            })
        })
    })
    .await;
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    app.stop().await;
}

#[tokio::test]
async fn deletions_are_flagged_restores_undelete_and_privacy_deletions_erase_the_person() {
    let h = quick_webhooks().await;
    let (portal, app, connection) = synced(&h).await;
    let contact = h
        .create(
            &portal,
            "contacts",
            json!({"email": "grace@hopper.example", "firstname": "Grace"}),
        )
        .await;
    until("the contact", async || {
        record_state(&app.pool, &connection, "contacts", contact)
            .await
            .is_some()
    })
    .await;
    h.control(
        Method::DELETE,
        &portal,
        &format!("/objects/contacts/{contact}"),
        json!({}),
    )
    .await;
    until("the deletion flag", async || {
        record_state(&app.pool, &connection, "contacts", contact)
            .await
            .is_some_and(|c| c.archived && c.email.is_some())
    })
    .await;
    until("crm.changed naming the deleted id", async || {
        crm_changes(&h.take_events().await)
            .iter()
            .any(|c| c.deleted_ids.contains(&contact))
    })
    .await;
    h.control(
        Method::POST,
        &portal,
        &format!("/objects/contacts/{contact}/restore"),
        json!({}),
    )
    .await;
    until("the restore", async || {
        record_state(&app.pool, &connection, "contacts", contact)
            .await
            .is_some_and(|c| !c.archived)
    })
    .await;
    h.control(
        Method::POST,
        &portal,
        &format!("/objects/contacts/{contact}/gdpr-delete"),
        json!({}),
    )
    .await;
    until("the erasure", async || {
        record_state(&app.pool, &connection, "contacts", contact)
            .await
            .is_some_and(|c| {
                c.privacy_deleted && c.archived && c.email.is_none() && c.name.is_none()
            })
    })
    .await;
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    app.stop().await;
}

#[tokio::test]
async fn merges_move_ids_onto_the_winner_even_ids_known_only_from_the_merge_trail() {
    let h = quick_webhooks().await;
    let (portal, app, connection) = synced(&h).await;
    let a = h
        .create(&portal, "contacts", json!({"email": "a@merge.example"}))
        .await;
    let b = h
        .create(&portal, "contacts", json!({"email": "b@merge.example"}))
        .await;
    let c = h
        .create(&portal, "contacts", json!({"email": "c@merge.example"}))
        .await;
    let deal = h.create(&portal, "deals", json!({"dealname": "Merged deal", "amount": "10", "pipeline": "default", "dealstage": "appointmentscheduled"})).await;
    h.control(
        Method::POST,
        &portal,
        "/associations",
        json!({"from_type": "deals", "from_id": deal, "to_type": "contacts", "to_id": a, "primary": false}),
    )
    .await;
    until("the three contacts and the edge", async || {
        mirror_edges(&app.pool, &connection).await["deal_contacts"].contains(&(deal, a))
            && record_state(&app.pool, &connection, "contacts", c)
                .await
                .is_some()
    })
    .await;
    // The first merge is missed: delivery is off.
    h.webhooks_to(&portal, None).await;
    h.control(
        Method::POST,
        &portal,
        "/objects/contacts/merge",
        json!({"primary_id": b, "merged_id": a}),
    )
    .await;
    let receiver = start_receiver(&h).await;
    h.webhooks_to(&portal, Some(&receiver)).await;
    h.take_events().await;
    // The second names only b; a is known only from c's hs_merged_object_ids.
    h.control(
        Method::POST,
        &portal,
        "/objects/contacts/merge",
        json!({"primary_id": c, "merged_id": b}),
    )
    .await;
    until("both merged ids on the winner", async || {
        let a = record_state(&app.pool, &connection, "contacts", a).await;
        let b = record_state(&app.pool, &connection, "contacts", b).await;
        a.is_some_and(|r| r.merged_into == Some(c)) && b.is_some_and(|r| r.merged_into == Some(c))
    })
    .await;
    until("the deal's association moved to the winner", async || {
        let edges = mirror_edges(&app.pool, &connection).await;
        edges["deal_contacts"].contains(&(deal, c)) && !edges["deal_contacts"].contains(&(deal, a))
    })
    .await;
    let changes = crm_changes(&h.take_events().await);
    assert!(
        changes.iter().any(|m| m
            .merges
            .iter()
            .any(|g| g.winner_id == c && g.merged_ids.contains(&b))),
        "the merge is announced"
    );
    assert!(
        changes.iter().any(|m| m.deleted_ids.contains(&a))
            && changes.iter().any(|m| m.deleted_ids.contains(&b)),
        "both merged-away ids leave the customers"
    );
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    app.stop().await;
}

#[tokio::test]
async fn duplicate_and_out_of_order_deliveries_change_nothing_twice() {
    let h = Harness::start().await;
    let portal = h.portal("professional").await;
    h.seed(&portal, 10, 2, 2).await;
    let contact = h
        .create(&portal, "contacts", json!({"email": "late@order.example"}))
        .await;
    let app = h.app(&portal).await;
    let connection = h.connect(&portal).await;
    wait_for_run(&app.pool, &connection, "succeeded", 30).await;
    h.control(
        Method::DELETE,
        &portal,
        &format!("/objects/contacts/{contact}"),
        json!({}),
    )
    .await;
    h.take_events().await;
    let now = chrono::Utc::now().timestamp_millis();
    let event = |id: i64, kind: &str, at: i64| {
        webhook_event(
            &json!({"eventId": id, "subscriptionId": 1, "portalId": portal.id, "appId": 1,
            "occurredAt": at, "subscriptionType": format!("contact.{kind}"), "attemptNumber": 0, "objectId": contact}),
        )
    };
    let batch = |events| v1::WebhookBatch {
        connection_id: None,
        portal_id: portal.id,
        received_at: None,
        events,
    };
    // The deletion (later) arrives first, the creation (earlier) after it.
    h.publish(&batch(vec![event(2, "deletion", now)]), None)
        .await;
    h.publish(&batch(vec![event(1, "creation", now - 1_000)]), None)
        .await;
    // And the deletion again, as HubSpot's retry would send it.
    h.publish(&batch(vec![event(2, "deletion", now)]), None)
        .await;
    until("the deletion applied", async || {
        record_state(&app.pool, &connection, "contacts", contact)
            .await
            .is_some_and(|c| c.archived)
    })
    .await;
    // A marker batch after them: once it is applied, the ones before it are too.
    let marker = h
        .create(
            &portal,
            "contacts",
            json!({"email": "marker@order.example"}),
        )
        .await;
    h.publish(
        &batch(vec![webhook_event(
            &json!({"eventId": 9, "subscriptionId": 1, "portalId": portal.id,
        "occurredAt": now, "subscriptionType": "contact.creation", "objectId": marker}),
        )]),
        None,
    )
    .await;
    until("the marker", async || {
        record_state(&app.pool, &connection, "contacts", marker)
            .await
            .is_some()
    })
    .await;
    let state = record_state(&app.pool, &connection, "contacts", contact)
        .await
        .unwrap();
    assert!(
        state.archived,
        "an older creation does not bring a deleted contact back"
    );
    let changes = crm_changes(&h.take_events().await);
    let mentions = changes
        .iter()
        .filter(|c| {
            c.deleted_ids.contains(&contact)
                || c.customers.iter().any(|cu| cu.external_id == contact)
        })
        .count();
    assert!(mentions <= 1, "the contact was announced {mentions} times");
    app.stop().await;
}

#[tokio::test]
async fn events_for_a_portal_without_an_active_connection_are_counted_and_dropped() {
    let h = Harness::start().await;
    let portal = h.portal("professional").await;
    let app = h.app(&portal).await;
    let batch = v1::WebhookBatch {
        connection_id: None,
        portal_id: 424_242,
        received_at: None,
        events: vec![webhook_event(
            &json!({"eventId": 1, "subscriptionId": 1, "portalId": 424_242,
            "occurredAt": 1, "subscriptionType": "contact.creation", "objectId": 5}),
        )],
    };
    h.publish(&batch, None).await;
    until_dropped(&h, &app, "no_active_connection", 1).await;
    app.stop().await;
}

#[tokio::test]
async fn the_echo_of_our_own_writeback_is_not_read_back() {
    let h = Harness::start().await;
    let (portal, app, connection) = synced(&h).await;
    let contact = mirror_records(&app.pool, &connection).await["contact"]
        .first()
        .expect("a mirrored contact")
        .id;
    let reads_before = h.stats(&portal).await["requests_total"].clone();
    let echo = |event_id: i64, property: &str| {
        webhook_event(
            &json!({"eventId": event_id, "subscriptionId": 7, "portalId": portal.id,
            "occurredAt": 1_700_000_000_000_i64, "subscriptionType": "contact.propertyChange",
            "objectId": contact, "propertyName": property, "propertyValue": "42",
            "changeSource": "INTEGRATION"}),
        )
    };
    h.publish(
        &v1::WebhookBatch {
            connection_id: None,
            portal_id: portal.id,
            received_at: None,
            events: vec![
                echo(1, "hubscore_health_score"),
                echo(2, "hubscore_risk_level"),
            ],
        },
        None,
    )
    .await;
    until_dropped(&h, &app, "writeback_echo", 2).await;
    // Nothing was read from HubSpot and nothing announced.
    assert_eq!(h.stats(&portal).await["requests_total"], reads_before);
    assert!(crm_changes(&h.take_events().await).is_empty());
    app.stop().await;
}

/// Two contacts share an e-mail (imports do that): one is the customer, the other skipped
/// as its duplicate. When the customer is deleted, the twin becomes the customer and must
/// go out in `crm.changed` with the deletion; before, it was only flagged for publishing
/// and scoring never heard of it until the next full run.
#[tokio::test]
async fn deleting_a_customer_publishes_the_duplicate_that_takes_its_place() {
    let h = quick_webhooks().await;
    let (portal, app, connection) = synced_with(&h, 200).await;

    let (twin, customer) = customer_with_twin(&app, &connection).await;

    h.control(
        Method::DELETE,
        &portal,
        &format!("/objects/contacts/{customer}"),
        json!({}),
    )
    .await;
    twin_took_over(&h, &app, &connection, twin).await;
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    app.stop().await;
}

#[tokio::test]
async fn a_customer_changing_its_email_hands_the_old_one_to_its_duplicate() {
    let h = quick_webhooks().await;
    let (portal, app, connection) = synced_with(&h, 200).await;
    let (twin, customer) = customer_with_twin(&app, &connection).await;

    h.control(
        Method::PATCH,
        &portal,
        &format!("/objects/contacts/{customer}"),
        json!({"properties": {"email": "a-new-address@example.com"}}),
    )
    .await;
    twin_took_over(&h, &app, &connection, twin).await;
    let moved = record_state(&app.pool, &connection, "contacts", customer)
        .await
        .expect("the customer is kept");
    assert_eq!(moved.email.as_deref(), Some("a-new-address@example.com"));
    assert_eq!(moved.skip_reason, None, "alone with its new e-mail");
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    app.stop().await;
}

#[tokio::test]
async fn merging_away_a_customer_publishes_the_duplicate_that_takes_its_place() {
    let h = quick_webhooks().await;
    let (portal, app, connection) = synced_with(&h, 200).await;
    let (twin, customer) = customer_with_twin(&app, &connection).await;
    // The customer is merged into a contact with another e-mail, which keeps its own.
    let winner = h
        .create(
            &portal,
            "contacts",
            json!({"email": "merge-winner@example.com"}),
        )
        .await;
    until("the winner mirrored", async || {
        record_state(&app.pool, &connection, "contacts", winner)
            .await
            .is_some()
    })
    .await;
    h.take_events().await;
    h.control(
        Method::POST,
        &portal,
        "/objects/contacts/merge",
        json!({"primary_id": winner, "merged_id": customer}),
    )
    .await;
    twin_took_over(&h, &app, &connection, twin).await;
    let merged = record_state(&app.pool, &connection, "contacts", customer)
        .await
        .expect("the merged contact is kept");
    assert_eq!(merged.merged_into, Some(winner));
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    app.stop().await;
}

/// The portal's HubSpot requests so far (the simulator's count).
async fn requests(h: &Harness, portal: &Portal) -> u64 {
    h.stats(portal).await["requests_total"]
        .as_u64()
        .unwrap_or_default()
}

/// One `contact.creation` delivery for `contact`.
fn creation(portal: &Portal, event_id: i64, object: &str, id: i64) -> v1::WebhookBatch {
    v1::WebhookBatch {
        connection_id: None,
        portal_id: portal.id,
        received_at: None,
        events: vec![webhook_event(&json!({
            "eventId": event_id, "subscriptionId": 1, "portalId": portal.id,
            "occurredAt": chrono::Utc::now().timestamp_millis(),
            "subscriptionType": format!("{object}.creation"), "objectId": id
        }))],
    }
}

/// Slows the portal's batch reads of `object` so that deliveries published meanwhile wait
/// in the worker's hand together.
async fn slow_reads(h: &Harness, portal: &Portal, object: &str) {
    h.sim_send(
        Method::POST,
        "/_sim/faults",
        json!({"path_prefix": format!("/crm/v3/objects/{object}/batch/read"),
               "latency_ms": 800, "portal_id": portal.id}),
    )
    .await;
}

#[tokio::test]
async fn deliveries_waiting_together_are_applied_with_one_set_of_hubspot_reads() {
    let h = Harness::start().await;
    let (portal, app, connection) = h.synced((10, 2, 2)).await;
    let mut contacts = Vec::new();
    for i in 0..12 {
        contacts.push(
            h.create(
                &portal,
                "contacts",
                json!({"email": format!("together-{i}@example.com")}),
            )
            .await,
        );
    }
    // What one delivery alone costs: the contact's batch read and its associations.
    let before = requests(&h, &portal).await;
    h.publish(&creation(&portal, 100, "contact", contacts[0]), None)
        .await;
    until("the first contact", async || {
        record_state(&app.pool, &connection, "contacts", contacts[0])
            .await
            .is_some()
    })
    .await;
    let alone = requests(&h, &portal).await - before;
    assert!(alone >= 1, "a delivery made no request");

    // Eleven more, published while the first of them is being read slowly: the other ten
    // wait in hand and are applied together.
    slow_reads(&h, &portal, "contacts").await;
    let before = requests(&h, &portal).await;
    for (i, id) in contacts.iter().enumerate().skip(1) {
        h.publish(&creation(&portal, 100 + i as i64, "contact", *id), None)
            .await;
    }
    until("every contact", async || {
        for id in &contacts {
            if record_state(&app.pool, &connection, "contacts", *id)
                .await
                .is_none()
            {
                return false;
            }
        }
        true
    })
    .await;
    let together = requests(&h, &portal).await - before;
    assert!(
        together <= 3 * alone,
        "eleven deliveries cost {together} requests; one alone costs {alone}"
    );
    let metrics = h
        .http
        .get(format!("http://127.0.0.1:{}/metrics", app.port))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hubscore_sync_webhook_deliveries_coalesced_count"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_delivery_that_fails_for_good_is_dead_lettered_alone_not_with_those_it_waited_with() {
    let h = Harness::start().await;
    // The private app may read contacts and companies, not deals: reading a deal is
    // refused for good (403, missing scopes).
    let created = h
        .sim_send(
            Method::POST,
            "/_sim/portals",
            json!({"tier": "professional", "private_app_scopes": [
                "crm.objects.contacts.read", "crm.objects.companies.read",
                "crm.schemas.contacts.read", "crm.schemas.companies.read"]}),
        )
        .await;
    let portal = Portal {
        id: created["portal_id"].as_i64().unwrap(),
        token: created["private_app_token"].as_str().unwrap().to_owned(),
    };
    let app = h.app(&portal).await;
    let connection = h.connect(&portal).await;
    // The initial sync fails at deals; the connection stays active for webhooks.
    until("the initial sync to end", async || {
        latest_state(&app.pool, &connection)
            .await
            .is_some_and(|s| s == "failed" || s == "succeeded")
    })
    .await;
    let first = h
        .create(&portal, "contacts", json!({"email": "first@example.com"}))
        .await;
    let fine = h
        .create(&portal, "contacts", json!({"email": "fine@example.com"}))
        .await;
    let deal = h
        .create(&portal, "deals", json!({"dealname": "Unreadable", "pipeline": "default", "dealstage": "appointmentscheduled"}))
        .await;
    slow_reads(&h, &portal, "contacts").await;
    // The first is read slowly; the deal and the fine contact wait together meanwhile.
    h.publish(&creation(&portal, 1, "contact", first), None)
        .await;
    h.publish(&creation(&portal, 2, "deal", deal), None).await;
    h.publish(&creation(&portal, 3, "contact", fine), None)
        .await;
    until("the fine contact", async || {
        record_state(&app.pool, &connection, "contacts", fine)
            .await
            .is_some()
    })
    .await;
    let dlq = format!("{}.dlq", h.settings.sync.webhooks_queue);
    until("the deal's delivery dead-lettered", async || {
        platform::amqp::testing::ready_count(&h.broker, &dlq)
            .await
            .is_ok_and(|n| n == 1)
    })
    .await;
    assert!(
        record_state(&app.pool, &connection, "contacts", first)
            .await
            .is_some()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        platform::amqp::testing::ready_count(&h.broker, &dlq)
            .await
            .unwrap(),
        1,
        "more than the deal's delivery was dead-lettered"
    );
    app.stop().await;
}

/// Burst tokens the portal's callers were granted in the last 10 s.
async fn spent_in_window(app: &RunningApp, portal: &Portal) -> i64 {
    use diesel_async::RunQueryDsl as _;
    #[derive(diesel::QueryableByName)]
    struct Spent {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        tokens: i64,
    }
    let Ok(mut conn) = app.pool.get().await else {
        return 0;
    };
    diesel::sql_query(
        "SELECT COALESCE(SUM(tokens), 0)::BIGINT AS tokens FROM hubspot_budget.grants \
         WHERE portal_id = $1 AND kind = 'burst' \
           AND granted_at > clock_timestamp() - interval '10 seconds'",
    )
    .bind::<diesel::sql_types::BigInt, _>(portal.id)
    .get_result::<Spent>(&mut conn)
    .await
    .map_or(0, |s| s.tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_a_full_sync_waits_for_its_next_window_is_applied_before_it_reads_on() {
    let h = quick_webhooks().await;
    // A free portal allows 100 requests in 10 s; sync runs spend 90 of them at once and
    // leave 10 (`hubspot.sync_reserve_percent` = 10) to webhook reads.
    let portal = h.portal("free").await;
    h.seed(&portal, 12_000, 0, 0).await;
    let mut settings = h.settings.clone();
    settings.hubspot.tier = sync_worker::config::TierSetting::Free;
    let app = h.app_with(&portal, settings).await;
    let receiver = start_receiver(&h).await;
    h.webhooks_to(&portal, Some(&receiver)).await;
    let connection = h.connect(&portal).await;

    until("the sync's first window spent", async || {
        spent_in_window(&app, &portal).await >= 90
    })
    .await;
    // Its last pages are written once the count of contacts read stands still.
    let mut read = fetched(&app.pool, &connection, "contact").await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = fetched(&app.pool, &connection, "contact").await;
        if now == read {
            break;
        }
        read = now;
    }
    assert!(read < 12_000, "the sync needs a second window: {read} read");

    let contact = h
        .create(
            &portal,
            "contacts",
            json!({"email": "between@windows.example", "firstname": "Between"}),
        )
        .await;
    until("the new contact", async || {
        record_state(&app.pool, &connection, "contacts", contact)
            .await
            .is_some()
    })
    .await;
    assert_eq!(
        fetched(&app.pool, &connection, "contact").await,
        read,
        "the webhook's read waited for the sync's next window"
    );
    wait_for_run(&app.pool, &connection, "succeeded", 60).await;
    assert_eq!(
        record_state(&app.pool, &connection, "contacts", contact)
            .await
            .and_then(|c| c.email)
            .as_deref(),
        Some("between@windows.example")
    );
}
