//! The initial full sync, as the lead and scoring-engine see it: from
//! `connection.established` to an exact mirror, `crm.changed` batches and `sync.completed`.

mod common;

use common::*;
use contracts::v1;

#[tokio::test]
async fn a_new_connection_is_fully_synced_into_an_exact_mirror_and_announced() {
    let h = Harness::start().await;
    let (portal, app, connection) = h.synced((600, 120, 240)).await;

    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;

    let events = h.take_events().await;
    let changes = crm_changes(&events);
    let customers: usize = changes.iter().map(|c| c.customers.len()).sum();
    let mirror = mirror_records(&app.pool, &connection).await;
    assert_eq!(
        customers,
        mirror["contact"].len(),
        "each customer published once"
    );
    let deals: usize = changes.iter().map(|c| c.deals.len()).sum();
    assert_eq!(deals, mirror["deal"].len());
    assert!(
        changes.iter().any(|c| !c.pipelines.is_empty()),
        "pipelines published"
    );
    assert!(
        changes.iter().any(|c| !c.owners.is_empty()),
        "owners published"
    );
    assert!(
        changes
            .iter()
            .flat_map(|c| &c.deals)
            .any(|d| !d.contact_ids.is_empty() && d.status != v1::DealStatus::Unspecified as i32),
        "deals carry their associations and status"
    );
    let completed: Vec<v1::SyncCompleted> = decode_all(&events, "sync.completed");
    assert_eq!(completed.len(), 1);
    let done = &completed[0];
    assert!(matches!(
        done.outcome,
        Some(v1::sync_completed::Outcome::Succeeded(_))
    ));
    let contacts = done
        .counts
        .iter()
        .find(|c| c.object_type == v1::ObjectType::Contact as i32)
        .expect("contact counts");
    assert_eq!(contacts.fetched, 600);
    assert_eq!(
        contacts.skipped as usize,
        600 - mirror["contact"].len(),
        "skipped = no e-mail + invalid + duplicates"
    );
    app.stop().await;
}

/// Every published record's association ids are exactly the mirror's edges for it (the
/// mirror is checked against HubSpot separately).
async fn assert_published_associations_complete(
    changes: &[v1::CrmChanged],
    pool: &platform::db::Pool,
    connection: &Connection,
) {
    use std::collections::BTreeSet;
    let edges = mirror_edges(pool, connection).await;
    let from = |table: &str, id: i64| -> BTreeSet<i64> {
        edges[table]
            .iter()
            .filter(|(f, _)| *f == id)
            .map(|(_, t)| *t)
            .collect()
    };
    let to = |table: &str, id: i64| -> BTreeSet<i64> {
        edges[table]
            .iter()
            .filter(|(_, t)| *t == id)
            .map(|(f, _)| *f)
            .collect()
    };
    let set = |ids: &[i64]| ids.iter().copied().collect::<BTreeSet<i64>>();
    for c in changes.iter().flat_map(|c| &c.customers) {
        let id = c.external_id;
        assert_eq!(
            set(&c.company_ids),
            from("contact_companies", id),
            "contact {id}"
        );
        assert_eq!(set(&c.deal_ids), to("deal_contacts", id), "contact {id}");
    }
    for d in changes.iter().flat_map(|c| &c.deals) {
        let id = d.external_id;
        assert_eq!(set(&d.contact_ids), from("deal_contacts", id), "deal {id}");
        assert_eq!(set(&d.company_ids), from("deal_companies", id), "deal {id}");
    }
    for c in changes.iter().flat_map(|c| &c.companies) {
        let id = c.external_id;
        assert_eq!(
            set(&c.contact_ids),
            to("contact_companies", id),
            "company {id}"
        );
        assert_eq!(set(&c.deal_ids), to("deal_companies", id), "company {id}");
    }
}

/// A full sync with one object type's requests slowed down: what the other types publish
/// before the run ends, and that every record goes out once with all its associations.
async fn sync_with_slow(
    slow: &str,
    slow_type: &str,
    slow_total: i64,
) -> (Vec<v1::CrmChanged>, Vec<v1::CrmChanged>) {
    let h = Harness::start().await;
    let portal = h.portal("professional").await;
    h.seed(&portal, 600, 120, 240).await;
    h.sim_send(
        reqwest::Method::POST,
        "/_sim/faults",
        serde_json::json!({"path_prefix": format!("/crm/v3/objects/{slow}"),
            "latency_ms": 1500, "portal_id": portal.id}),
    )
    .await;
    let app = h.app(&portal).await;
    let connection = h.connect(&portal).await;
    // What went out before the slow type's last page was read: events taken, then the
    // count checked, so everything taken was published before that check.
    let mut early = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let late = loop {
        let batch = h.take_events().await;
        if fetched(&app.pool, &connection, slow_type).await >= slow_total {
            break batch;
        }
        early.extend(batch);
        assert!(
            std::time::Instant::now() < deadline,
            "the slow type was never read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let before_end = crm_changes(&early);
    wait_for_run(&app.pool, &connection, "succeeded", 60).await;
    h.sim_send(
        reqwest::Method::DELETE,
        "/_sim/faults",
        serde_json::json!({}),
    )
    .await;
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    let mut all = early;
    all.extend(late);
    all.extend(h.take_events().await);
    let changes = crm_changes(&all);
    let mirror = mirror_records(&app.pool, &connection).await;
    let count = |f: fn(&v1::CrmChanged) -> usize| changes.iter().map(f).sum::<usize>();
    assert_eq!(
        count(|c| c.customers.len()),
        mirror["contact"].len(),
        "each customer once"
    );
    assert_eq!(
        count(|c| c.deals.len()),
        mirror["deal"].len(),
        "each deal once"
    );
    assert_eq!(
        count(|c| c.companies.len()),
        mirror["company"].len(),
        "each company once"
    );
    assert_published_associations_complete(&changes, &app.pool, &connection).await;
    app.stop().await;
    (before_end, changes)
}

#[tokio::test]
async fn deals_go_out_while_contacts_are_still_read_and_every_record_carries_its_associations() {
    let (before_end, all) = sync_with_slow("contacts", "contact", 600).await;
    let deals: usize = all.iter().map(|c| c.deals.len()).sum();
    let early: usize = before_end.iter().map(|c| c.deals.len()).sum();
    assert_eq!(
        early, deals,
        "every deal was published before the last page of the slow contacts was read"
    );
    assert_eq!(
        before_end.iter().map(|c| c.companies.len()).sum::<usize>(),
        0,
        "companies wait for both sides of their associations"
    );
}

#[tokio::test]
async fn contacts_read_before_the_deals_wait_for_them_to_carry_every_deal() {
    // Contacts are read long before the slow deals: had they gone out then, their deal
    // ids would be missing (the helper compares each record with the mirror's edges).
    let (_, all) = sync_with_slow("deals", "deal", 240).await;
    assert!(
        all.iter()
            .flat_map(|c| &c.customers)
            .any(|c| !c.deal_ids.is_empty()),
        "some customer has deals"
    );
}

#[tokio::test]
async fn a_resync_leaves_a_deal_deleted_in_hubspot_out_of_the_contacts_it_publishes() {
    let h = Harness::start().await;
    let (portal, app, connection) = h.synced((200, 40, 60)).await;
    let edges = mirror_edges(&app.pool, &connection).await;
    let customers = mirror_records(&app.pool, &connection).await["contact"]
        .iter()
        .map(|r| r.id)
        .collect::<std::collections::BTreeSet<i64>>();
    let (deal, contact) = *edges["deal_contacts"]
        .iter()
        .find(|(_, c)| customers.contains(c))
        .expect("a deal with a customer");

    // While nothing is delivered: the deal is deleted and the contact changed.
    h.control(
        reqwest::Method::DELETE,
        &portal,
        &format!("/objects/deals/{deal}"),
        serde_json::json!({}),
    )
    .await;
    h.control(
        reqwest::Method::PATCH,
        &portal,
        &format!("/objects/contacts/{contact}"),
        serde_json::json!({"properties": {"firstname": "Changed"}}),
    )
    .await;
    // Contacts are read slowly, so their chunk goes out early, after the deals are read.
    h.sim_send(
        reqwest::Method::POST,
        "/_sim/faults",
        serde_json::json!({"path_prefix": "/crm/v3/objects/contacts",
            "latency_ms": 500, "portal_id": portal.id}),
    )
    .await;
    h.take_events().await;
    let resync = sync_request(
        &connection,
        v1::SyncMode::Full,
        v1::sync_requested::Scope::Full(v1::FullScope {}),
        v1::SyncReason::UserRequest,
    );
    h.publish(&resync, Some(connection.org_id)).await;
    let events = h
        .events_until("sync.completed", |body| {
            use prost::Message as _;
            v1::SyncCompleted::decode(body).is_ok_and(|c| c.sync_run_id == resync.sync_run_id)
        })
        .await;
    h.sim_send(
        reqwest::Method::DELETE,
        "/_sim/faults",
        serde_json::json!({}),
    )
    .await;
    let changes = crm_changes(&events);
    let published = changes
        .iter()
        .flat_map(|c| &c.customers)
        .find(|c| c.external_id == contact)
        .expect("the changed contact is published");
    assert_eq!(
        published.name.as_deref().map(|n| n.starts_with("Changed")),
        Some(true)
    );
    assert!(
        !published.deal_ids.contains(&deal),
        "the deleted deal {deal} went out with contact {contact}: {:?}",
        published.deal_ids
    );
    assert!(
        changes.iter().any(|c| c.deleted_ids.contains(&deal)),
        "the deal's deletion is published"
    );
    app.stop().await;
}

#[tokio::test]
async fn associations_hubspot_embeds_only_in_part_are_read_whole() {
    // Every contact's companies and every deal's contacts come cut after the first entry
    // (a primary company is two entries): those records' associations are read with v4
    // batch reads, and the mirror still holds every association.
    let h = Harness::with_sim(hubspot_sim::SimConfig {
        embedded_associations_limit: Some(1),
        ..Default::default()
    })
    .await;
    let (portal, app, connection) = h.synced((300, 60, 120)).await;
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    let edges = mirror_edges(&app.pool, &connection).await;
    assert!(
        !edges["contact_companies"].is_empty() && !edges["deal_contacts"].is_empty(),
        "the portal has lists long enough to be cut"
    );
    app.stop().await;
}
