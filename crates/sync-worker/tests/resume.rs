//! Resumable and scale-out syncs: a worker killed mid-sync is resumed from its
//! checkpoint by another, and replicas side by side sync each portal once.

mod common;

use std::time::Duration;

use common::*;
use contracts::v1;
use platform::amqp::testing::eventually;
use serde_json::json;
use sync_worker::Settings;

/// A portal of 4,000 contacts whose contact pages answer slowly, so that a full sync can
/// be interrupted mid-way.
async fn slow_contacts_portal(h: &Harness) -> Portal {
    let portal = h.portal("professional").await;
    h.seed(&portal, 4000, 1, 1).await;
    h.sim_send(
        reqwest::Method::POST,
        "/_sim/faults",
        json!({"path_prefix": "/crm/v3/objects/contacts", "latency_ms": 60, "portal_id": portal.id}),
    )
    .await;
    portal
}

/// A worker in a thread of its own that the test can kill, once it is ready.
async fn start_killable(h: &Harness, portal: &Portal) -> Killable {
    start_killable_with(h, portal, h.settings.clone()).await
}

async fn start_killable_with(h: &Harness, portal: &Portal, settings: Settings) -> Killable {
    let worker = Killable::start(settings, portal.token.clone());
    let ready = eventually(Duration::from_secs(30), || async {
        h.http
            .get(format!("http://127.0.0.1:{}/readyz", worker.port))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(ready, "the killable worker never became ready");
    worker
}

#[tokio::test]
async fn a_worker_killed_mid_sync_is_resumed_from_its_checkpoint_with_an_exact_mirror() {
    let h = Harness::start().await;
    let portal = slow_contacts_portal(&h).await;
    let pool = pool_for(&h);
    let first = start_killable(&h, &portal).await;
    let connection = h.connect(&portal).await;
    let halfway = eventually(Duration::from_secs(40), || async {
        fetched(&pool, &connection, "contact").await >= 2000
    })
    .await;
    assert!(
        halfway,
        "the first worker never got half-way: {:?}, {} contacts",
        latest_state(&pool, &connection).await,
        fetched(&pool, &connection, "contact").await
    );
    first.kill();
    let fetched_at_kill = fetched(&pool, &connection, "contact").await;
    assert!(
        fetched_at_kill < 4000,
        "the kill came too late to prove anything"
    );
    let requests_at_kill = h.stats(&portal).await["requests_total"].as_u64().unwrap();

    h.sim_send(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;
    let second = h.app(&portal).await;
    wait_for_run(&second.pool, &connection, "succeeded", 60).await;
    let requests_after =
        h.stats(&portal).await["requests_total"].as_u64().unwrap() - requests_at_kill;
    // Listing every contact again would take 40 pages on its own.
    assert!(
        requests_after < 40,
        "the second worker made {requests_after} requests: it started over"
    );
    assert_eq!(
        fetched(&second.pool, &connection, "contact").await,
        4000,
        "no page counted twice"
    );
    assert_mirror_exact(&h, &portal, &second.pool, &connection).await;
    second.stop().await;
}

#[tokio::test]
async fn two_replicas_side_by_side_sync_each_portal_once_into_an_exact_mirror() {
    let h = Harness::start().await;
    let portal = h.portal("professional").await;
    h.seed(&portal, 800, 100, 200).await;
    let one = h.app(&portal).await;
    let two = h.app(&portal).await;
    let connection = h.connect(&portal).await;
    wait_for_run(&one.pool, &connection, "succeeded", 60).await;
    assert_mirror_exact(&h, &portal, &one.pool, &connection).await;
    let events = h.take_events().await;
    let completed: Vec<v1::SyncCompleted> = decode_all(&events, "sync.completed");
    assert_eq!(completed.len(), 1, "one run, completed once");
    let customers: usize = crm_changes(&events).iter().map(|c| c.customers.len()).sum();
    assert_eq!(
        customers,
        mirror_records(&one.pool, &connection).await["contact"].len(),
        "no customer published twice"
    );
    one.stop().await;
    two.stop().await;
}

/// A replica whose lock session ends while it lives on (a database restart, a cut
/// connection) must stop its run before another replica can take it over, and the next
/// holder finishes it from its checkpoint.
#[tokio::test]
async fn a_run_whose_lock_session_ends_stops_and_the_next_holder_finishes_it() {
    let h = Harness::start().await;
    let portal = slow_contacts_portal(&h).await;
    let app = h.app(&portal).await;
    let connection = h.connect(&portal).await;
    let started = eventually(Duration::from_secs(40), || async {
        fetched(&app.pool, &connection, "contact").await >= 1000
    })
    .await;
    assert!(started, "the run never got going");

    // The lock passes to the test, as if another replica had taken the run over.
    let key = sync_worker::runner::lock_key(connection.connection_id);
    let taker = platform::testing::take_over_advisory_lock(&h.settings.database.url, key)
        .await
        .unwrap();
    assert!(
        fetched(&app.pool, &connection, "contact").await < 3000,
        "the run was nearly done before the lock was taken: nothing proven"
    );
    // A request already on the way may still land; after that the portal sees nothing
    // from this worker while the test holds the lock, though the run is unfinished.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before = h.stats(&portal).await["requests_total"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = h.stats(&portal).await["requests_total"].as_u64().unwrap();
    assert_eq!(
        after - before,
        0,
        "a run that lost its lock kept reading HubSpot ({} requests)",
        after - before
    );

    drop(taker);
    h.sim_send(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;
    wait_for_run(&app.pool, &connection, "succeeded", 60).await;
    assert_eq!(
        fetched(&app.pool, &connection, "contact").await,
        4000,
        "no page counted twice"
    );
    assert_mirror_exact(&h, &portal, &app.pool, &connection).await;
    app.stop().await;
}

#[derive(diesel::QueryableByName)]
struct Checkpoint {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    after: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    remaining: i64,
}

/// The latest run's contact-association checkpoint and how many live contacts lie after it.
async fn contact_associations_checkpoint(
    pool: &platform::db::Pool,
    connection: &Connection,
) -> Option<Checkpoint> {
    use diesel_async::RunQueryDsl as _;
    let mut conn = pool.get().await.ok()?;
    diesel::sql_query(format!(
        "SELECT o.associations_after AS after,
            (SELECT count(*) FROM contacts c WHERE c.connection_id = r.connection_id
               AND NOT c.archived AND c.id > coalesce(o.associations_after, 0)) AS remaining
         FROM sync_run_objects o JOIN sync_runs r ON r.id = o.run_id
         WHERE r.connection_id = '{}' AND o.object_type = 'contact'
         ORDER BY r.requested_at DESC LIMIT 1",
        connection.connection_id
    ))
    .get_result(&mut conn)
    .await
    .ok()
}

/// With `sync.inline_associations` off, a full sync reads a type's associations after its
/// records, several batches at a time, and writes them in order. A worker killed with
/// reads in flight leaves the checkpoint at the last batch it wrote; the next worker,
/// though its setting is on, finishes the run the way it began: it reads only what lies
/// after the checkpoint and ends with the exact mirror.
#[tokio::test]
async fn a_worker_killed_with_association_reads_in_flight_resumes_after_the_last_batch_written() {
    let h = Harness::start().await;
    let portal = h.portal("professional").await;
    h.seed(&portal, 20_000, 200, 1).await;
    // Association reads answer slowly, so that several are in flight when the kill comes.
    h.sim_send(
        reqwest::Method::POST,
        "/_sim/faults",
        json!({"path_prefix": "/crm/v4/associations", "latency_ms": 1000, "portal_id": portal.id}),
    )
    .await;
    let pool = pool_for(&h);
    let mut settings = h.settings.clone();
    settings.sync.inline_associations = false;
    let first = start_killable_with(&h, &portal, settings).await;
    let connection = h.connect(&portal).await;
    // At least 5 of the 20 batches of 1,000 contacts written, at most 12.
    let midway = eventually(Duration::from_secs(90), || async {
        contact_associations_checkpoint(&pool, &connection)
            .await
            .is_some_and(|c| c.after.is_some() && c.remaining <= 15_000)
    })
    .await;
    assert!(midway, "the contacts' association reads never got going");
    first.kill();
    let at_kill = contact_associations_checkpoint(&pool, &connection)
        .await
        .unwrap();
    assert!(at_kill.after.is_some());
    assert!(
        at_kill.remaining >= 8_000,
        "the kill came too late to prove anything: {} contacts left",
        at_kill.remaining
    );
    let requests_at_kill = h.stats(&portal).await["requests_total"].as_u64().unwrap();

    h.sim_send(reqwest::Method::DELETE, "/_sim/faults", json!({}))
        .await;
    let second = h.app(&portal).await;
    wait_for_run(&second.pool, &connection, "succeeded", 90).await;
    let requests_after =
        h.stats(&portal).await["requests_total"].as_u64().unwrap() - requests_at_kill;
    // The batches after the checkpoint, the deal's two edges and the owners' and
    // pipelines' reads at most; starting over would read 20 batches of contacts.
    let batches_left = u64::try_from(at_kill.remaining).unwrap().div_ceil(1000);
    assert!(
        requests_after <= batches_left + 6 && requests_after < 20,
        "the second worker made {requests_after} requests for {batches_left} batches left"
    );
    assert_mirror_exact(&h, &portal, &second.pool, &connection).await;
    second.stop().await;
}
