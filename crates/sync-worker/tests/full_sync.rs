//! The initial full sync, as the lead and scoring-engine see it: from
//! `connection.established` to an exact mirror, `crm.changed` batches and `sync.completed`.

mod common;

use common::*;
use contracts::v1;

#[tokio::test]
async fn a_new_connection_is_fully_synced_into_an_exact_mirror_and_announced() {
    let h = Harness::start().await;
    let portal = h.portal("professional").await;
    h.seed(&portal, 600, 120, 240).await;
    let app = h.app(&portal).await;
    let connection = h.connect(&portal).await;
    wait_for_run(&app.pool, &connection, "succeeded", 60).await;

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
