//! A config change (and its preview) re-weighs the raw inputs stored with each score
//! instead of re-reading the projection. That must give exactly what a full recompute from
//! the projection gives: at a later `now` (recency and the activity window move) and under
//! a config that changes every parameter (window, half-life, stage values, weights, bands).

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use chrono::Duration;
use common::{company, contact, deal, spawn_app, t0, ts};
use contracts::v1::{DealStatus, ObjectType};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use scoring_engine::db::inputs::Olds;
use scoring_engine::db::{configs, inputs, object_type};
use scoring_engine::engine::{self, InputSource};
use scoring_engine::model::ModelConfig;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Waits until the org has `n` rows in `table` (each message applies, and rescores what it
/// affected, in one transaction).
async fn wait_rows(app: &common::TestApp, table: &str, n: i64) {
    let mut conn = app.app.pool.get().await.unwrap();
    for _ in 0..300 {
        let count: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM {table} WHERE org_id = $1"
        ))
        .bind::<SqlUuid, _>(app.org)
        .get_result(&mut conn)
        .await
        .unwrap();
        if count.n == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{table} never reached {n} rows");
}

/// Every customer of the org recomputed from the projection under `config` at `now`,
/// compared with what is stored.
async fn recompute(
    app: &common::TestApp,
    conn: &mut diesel_async::AsyncPgConnection,
    config: &configs::VersionedConfig,
    means: configs::OrgMeans,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<engine::Computed> {
    let mut all = Vec::new();
    for kind in [object_type::CONTACT, object_type::COMPANY] {
        let rows = engine::load_batch(
            conn,
            app.org,
            kind,
            InputSource::Projection,
            None,
            1000,
            Olds::All,
        )
        .await
        .unwrap();
        all.extend(engine::compute(app.org, kind, rows, config, means, now));
    }
    all
}

fn proposed() -> ModelConfig {
    let mut c = ModelConfig::default();
    c.weights.engagement_recency = 30.0;
    c.weights.deal_momentum = 10.0;
    c.weights.lifecycle_stage = 25.0;
    c.weights.activity_frequency = 25.0;
    c.weights.deal_value = 10.0;
    c.thresholds.healthy_min = 55;
    c.thresholds.at_risk_min = 30;
    c.engagement_recency.half_life_days = 5.0;
    c.activity_frequency.window_days = 7;
    c.activity_frequency.target_updates = 3;
    // A company's best stage changes: lead now beats customer.
    c.lifecycle_stage.values.insert("lead".into(), 0.95);
    c.lifecycle_stage.values.insert("customer".into(), 0.3);
    c.deal_value.cap_multiple_of_mean = 1.0;
    assert!(c.validate().is_empty());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescoring_from_stored_inputs_equals_recomputing_from_the_projection() {
    let app = spawn_app().await;
    let t = t0();
    let mut companies = app.changed(ObjectType::Company);
    for (id, days) in [(10, 20), (11, 3)] {
        let mut c = company(id, t - Duration::days(days));
        c.last_activity_at = ts(t - Duration::days(days));
        companies.companies.push(c);
    }
    app.publish(&companies).await;
    wait_rows(&app, "companies", 2).await;

    // Eight contacts in two companies: several versions each (updates spread over 40
    // days), different stages, activity from none to recent; contact 8 is N/A.
    let stages = [Some("lead"), Some("customer"), Some("opportunity"), None];
    let mut contacts = app.changed(ObjectType::Contact);
    for id in 1..=8_i64 {
        for version in 0..id.min(5) {
            let mut c = contact(id, t - Duration::days(5 * version) - Duration::hours(id));
            c.lifecycle_stage = stages[usize::try_from(id).unwrap() % 4].map(str::to_owned);
            if id < 8 {
                let company = if id % 2 == 0 { 10 } else { 11 };
                c.company_ids = vec![company];
                c.primary_company_id = Some(company);
            }
            if id % 3 != 0 && id < 8 {
                c.last_activity_at = ts(t - Duration::days(4 * id));
            }
            contacts.customers.push(c);
        }
    }
    app.publish(&contacts).await;
    wait_rows(&app, "contacts", 8).await;

    // Deals: open on two contacts, won on a contact and a company, lost, open on a company
    // only; two versions each (deal updates count as activity).
    let mut deals = app.changed(ObjectType::Deal);
    for version in 0..2 {
        let at = t - Duration::days(3 + 9 * version);
        let mut open = deal(900, &[1, 2], at);
        open.close_probability = Some(0.7);
        let mut won = deal(901, &[3], at);
        won.company_ids = vec![11];
        won.amount_cents = Some(450_000);
        won.set_status(DealStatus::Won);
        let mut lost = deal(902, &[4], at);
        lost.set_status(DealStatus::Lost);
        let mut company_only = deal(903, &[], at);
        company_only.company_ids = vec![10];
        company_only.close_probability = Some(0.2);
        // Won without an amount: its contact has an open-or-won deal worth 0, which
        // counts in the org's mean (and an amount of 0 alone cannot say so).
        let mut won_unpriced = deal(904, &[5], at);
        won_unpriced.amount_cents = None;
        won_unpriced.set_status(DealStatus::Won);
        deals
            .deals
            .extend([open, won, lost, company_only, won_unpriced]);
    }
    app.publish(&deals).await;
    wait_rows(&app, "deals", 5).await;
    wait_rows(&app, "scores", 10).await;

    // Six days later, under a config that changes everything, the daily scheduled rescore
    // put off first.
    app.put_off_the_schedule().await;
    app.shared.clock.advance(Duration::days(6));
    let now = app.shared.clock.now();
    let proposed = proposed();
    let mut conn = app.app.pool.get().await.unwrap();
    let means = inputs::compute_means(&mut conn, app.org).await.unwrap();
    // The means a config change takes from the stored inputs are the projection's.
    assert_eq!(
        inputs::stored_input_means(&mut conn, app.org)
            .await
            .unwrap(),
        means
    );
    let config = configs::VersionedConfig {
        version: 1,
        config: proposed.clone(),
        created_at: None,
    };
    assert!(inputs::inputs_stored(&mut conn, app.org).await.unwrap());
    let mut moved = 0;
    for kind in [object_type::CONTACT, object_type::COMPANY] {
        let load = async |conn: &mut _, source| {
            engine::load_batch(conn, app.org, kind, source, None, 1000, Olds::All)
                .await
                .unwrap()
        };
        let projection = load(&mut conn, InputSource::Projection).await;
        let stored = load(&mut conn, InputSource::Stored).await;
        assert_eq!(
            projection.len(),
            if kind == object_type::CONTACT { 8 } else { 2 }
        );
        let recomputed = engine::compute(app.org, kind, projection, &config, means, now);
        let reweighed = engine::compute(app.org, kind, stored, &config, means, now);
        assert_eq!(reweighed, recomputed);
        moved += recomputed.iter().filter(|c| c.changed).count();
    }
    assert!(moved > 0, "the proposed config moves some score");

    // The preview reads the org in lanes, on connections sharing one snapshot, once there
    // are two batches of a kind: whatever the split, it counts the same.
    let whole = engine::preview(&app.app.pool, app.org, &proposed, now, 1000, 3)
        .await
        .unwrap();
    assert_eq!(whole.customers, 10);
    assert!(!whole.largest_movers.is_empty());
    for batch in [1, 2, 3] {
        for lanes in [1, 2, 3, 5] {
            let split = engine::preview(&app.app.pool, app.org, &proposed, now, batch, lanes)
                .await
                .unwrap();
            assert_eq!(split, whole, "batches of {batch} in {lanes} lanes");
        }
    }

    // Saving it (a rescore from the stored inputs) leaves nothing that a recompute from the
    // projection would change.
    let body = serde_json::to_value(&proposed).unwrap();
    let (status, saved) = app.save_config(&body).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["rescored"]["scored"], 10);
    assert_eq!(saved["rescored"]["changed"], moved);
    let saved_config = configs::current(&mut conn, app.org).await.unwrap();
    assert_eq!(saved_config.version, 1);
    let means = configs::stored_means(&mut conn, app.org, now)
        .await
        .unwrap();
    for c in recompute(&app, &mut conn, &saved_config, means, now).await {
        assert!(
            !c.store && !c.changed,
            "stored differs from a recompute: {c:?}"
        );
    }

    // Two days on, a rescore in batches of 2 splits the contacts into three lanes and the
    // companies into one, rescored side by side: it scores every customer once and stores
    // what one pass computes.
    app.shared.clock.advance(Duration::days(2));
    let later = app.shared.clock.now();
    let means = inputs::compute_means(&mut conn, app.org).await.unwrap();
    let moving = recompute(&app, &mut conn, &saved_config, means, later)
        .await
        .iter()
        .filter(|c| c.changed)
        .count();
    assert!(moving > 0, "two days move some score");
    let split = engine::rescore_org_unless_busy(
        engine::Rescorer {
            pool: &app.app.pool,
            relay: &platform::outbox::RelayWaker::default(),
            batch_size: 2,
            lanes: 3,
            correlation_id: "lanes",
        },
        app.org,
        later,
        InputSource::Projection,
    )
    .await
    .unwrap()
    .expect("no other rescore runs");
    assert_eq!((split.scored, split.changed), (10, moving));
    for c in recompute(&app, &mut conn, &saved_config, means, later).await {
        assert!(!c.store && !c.changed, "a customer the lanes missed: {c:?}");
    }
}

/// A large org's preview splits where a sample of the table's pages puts the split points
/// (counting and skipping half of a million keys took most of a second), and still counts
/// exactly what one pass does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_orgs_preview_splits_at_sampled_keys_and_counts_what_one_pass_does() {
    let app = spawn_app().await;
    let now = app.shared.clock.now();
    let mut conn = app.app.pool.get().await.unwrap();
    // 60,000 contacts' scores with their stored inputs, as scoring leaves them.
    diesel::sql_query(
        "INSERT INTO scores (score_id, org_id, portal_id, connection_id, object_type, object_id, \
            contact_id, display_name, score, risk_level, update_count, factor_values, weights, \
            contributions, config_version, computed_at, input_last_activity_at, \
            input_deal_count, input_open_probability, input_amount_cents, input_open_won_count, \
            input_stages, input_activity_at) \
         SELECT gen_random_uuid(), $1, 4242, $1, 1, g, g, 'Contact ' || g, (g % 100)::int2, \
            (1 + g % 3)::int2, 0, '{}', '{}', '{}', 0, $2, $2 - (g % 90) * interval '1 day', \
            g % 3, CASE WHEN g % 3 = 1 THEN 0.5 END, (g % 7) * 10000, g % 3, \
            ARRAY[(ARRAY['lead', 'customer', 'opportunity'])[1 + g % 3]], \
            ARRAY[$2 - (g % 20) * interval '1 day'] \
         FROM generate_series(1, 60000) g",
    )
    .bind::<SqlUuid, _>(app.org)
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query("ANALYZE scores")
        .execute(&mut conn)
        .await
        .unwrap();
    let split_keys = async |conn: &mut _, batch_size, parts| {
        inputs::split_keys(
            conn,
            app.org,
            object_type::CONTACT,
            InputSource::Stored,
            batch_size,
            parts,
        )
        .await
        .unwrap()
    };
    let [middle] = split_keys(&mut conn, 5000, 2).await[..] else {
        panic!("not one middle key");
    };
    assert_ne!(
        middle,
        (4242, 30_001),
        "the exact middle: the sample was not used"
    );
    assert!(
        (4242, 20_000) < middle && middle < (4242, 40_000),
        "a lopsided split: {middle:?}"
    );
    let [third, two_thirds] = split_keys(&mut conn, 5000, 3).await[..] else {
        panic!("not two keys for three parts");
    };
    assert!(
        (4242, 12_000) < third
            && third < (4242, 28_000)
            && (4242, 32_000) < two_thirds
            && two_thirds < (4242, 48_000),
        "a lopsided split: {third:?} {two_thirds:?}"
    );
    // Twenty parts of a batch or more are more than the org's 60,000 hold: as many as fit
    // (twelve, counted exactly), or none where not even two batches do.
    let keys = split_keys(&mut conn, 5000, 20).await;
    assert_eq!(keys.len(), 11, "{keys:?}");
    assert!(keys.is_sorted(), "{keys:?}");
    assert!(split_keys(&mut conn, 40_000, 3).await.is_empty());
    let proposed = proposed();
    // Batches of 100,000: no split.
    let whole = engine::preview(&app.app.pool, app.org, &proposed, now, 100_000, 3)
        .await
        .unwrap();
    assert_eq!(whole.customers, 60_000);
    assert!(whole.score_changes > 0);
    for lanes in [2, 3, 4] {
        let split = engine::preview(&app.app.pool, app.org, &proposed, now, 5000, lanes)
            .await
            .unwrap();
        assert_eq!(split, whole, "{lanes} lanes");
    }
}

/// How many of the org's scores were computed at `at`.
async fn scored_at(
    conn: &mut diesel_async::AsyncPgConnection,
    org: uuid::Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> i64 {
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM scores WHERE org_id = $1 AND computed_at = $2",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<diesel::sql_types::Timestamptz, _>(at)
    .get_result(conn)
    .await
    .unwrap();
    count.n
}

/// `crm.changed` applied while the org is rescored in two halves: each change waits for the
/// batch in hand (it takes the org lock exclusively, the halves' batches take it shared),
/// and neither is lost nor overwritten by a batch that read the record before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_applied_mid_way_through_a_split_rescore_are_neither_lost_nor_overwritten() {
    const CONTACTS: i64 = 600;
    let app = spawn_app().await;
    let t = t0();
    let mut contacts = app.changed(ObjectType::Contact);
    for id in 1..=CONTACTS {
        let mut c = contact(id, t - Duration::days(id % 20));
        c.lifecycle_stage = Some("customer".into());
        c.last_activity_at = ts(t - Duration::days(id % 30));
        contacts.customers.push(c);
    }
    app.publish(&contacts).await;
    wait_rows(&app, "scores", CONTACTS).await;
    app.put_off_the_schedule().await;

    // Two days on (recency moves every score), rescored from the projection in batches of
    // 2: 300 batches, in two halves side by side.
    app.shared.clock.advance(Duration::days(2));
    let later = app.shared.clock.now();
    let pool = app.app.pool.clone();
    let org = app.org;
    let rescore = tokio::spawn(async move {
        engine::rescore_org_unless_busy(
            engine::Rescorer {
                pool: &pool,
                relay: &platform::outbox::RelayWaker::default(),
                batch_size: 2,
                lanes: 2,
                correlation_id: "split",
            },
            org,
            later,
            InputSource::Projection,
        )
        .await
    });
    // Once it has written some batches, stop it mid-way: hold the org lock exclusively (it
    // waits for the batches in hand).
    let mut conn = app.app.pool.get().await.unwrap();
    for _ in 0..500 {
        if scored_at(&mut conn, app.org, later).await > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut holder = app.app.pool.get().await.unwrap();
    diesel_async::SimpleAsyncConnection::batch_execute(&mut *holder, "BEGIN")
        .await
        .unwrap();
    scoring_engine::db::lock_org(&mut holder, app.org)
        .await
        .unwrap();
    let done = scored_at(&mut conn, app.org, later).await;
    assert!(
        done > 0 && done < CONTACTS,
        "the rescore is mid-way ({done} of {CONTACTS} rescored)"
    );
    // Changes to contacts on both sides of the split and on both sides of the rescore's
    // progress: every tenth becomes a lead that was active just now.
    let mut changes = app.changed(ObjectType::Contact);
    for id in (10..=CONTACTS).step_by(10) {
        let mut c = contact(id, t + Duration::days(1));
        c.lifecycle_stage = Some("lead".into());
        c.last_activity_at = ts(later - Duration::hours(1));
        changes.customers.push(c);
    }
    app.publish(&changes).await;
    // The change waits for the lock too; let it queue behind the rescore's next batches.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    diesel_async::SimpleAsyncConnection::batch_execute(&mut *holder, "ROLLBACK")
        .await
        .unwrap();
    let summary = rescore
        .await
        .unwrap()
        .unwrap()
        .expect("no other rescore ran");
    assert_eq!(summary.scored, usize::try_from(CONTACTS).unwrap());
    let mut leads = 0;
    for _ in 0..300 {
        let count: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM scores WHERE org_id = $1 AND lifecycle_stage = 'lead'",
        )
        .bind::<SqlUuid, _>(app.org)
        .get_result(&mut conn)
        .await
        .unwrap();
        leads = count.n;
        if leads == CONTACTS / 10 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        leads,
        CONTACTS / 10,
        "every change reached its stored score"
    );
    // Every stored score is what a recompute from the projection (which holds the changes)
    // gives now: no change was lost, none overwritten by an older read.
    let config = configs::current(&mut conn, app.org).await.unwrap();
    let means = configs::stored_means(&mut conn, app.org, later)
        .await
        .unwrap();
    let recomputed = recompute(&app, &mut conn, &config, means, later).await;
    assert_eq!(recomputed.len(), usize::try_from(CONTACTS).unwrap());
    for c in recomputed {
        assert!(
            !c.store && !c.changed,
            "stored differs from a recompute: {c:?}"
        );
    }
}

/// A config change rewrites each score row where its batch read it (`ctid`). A row that is
/// not there (moved, or another row in its place) must still get its own score, and no
/// other row its values: the batch is then written by key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_row_not_where_its_batch_read_it_is_still_rewritten_by_its_key() {
    let app = spawn_app().await;
    let t = t0();
    let mut contacts = app.changed(ObjectType::Contact);
    for id in 1..=6_i64 {
        let mut c = contact(id, t - Duration::days(id));
        c.lifecycle_stage = Some(if id % 2 == 0 { "lead" } else { "customer" }.into());
        c.last_activity_at = ts(t - Duration::days(3 * id));
        contacts.customers.push(c);
    }
    app.publish(&contacts).await;
    wait_rows(&app, "scores", 6).await;
    app.put_off_the_schedule().await;

    #[derive(QueryableByName, Debug, PartialEq)]
    struct Stored {
        #[diesel(sql_type = SqlUuid)]
        score_id: uuid::Uuid,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Int2>)]
        score: Option<i16>,
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Double>)]
        contributions: Vec<f64>,
        #[diesel(sql_type = BigInt)]
        config_version: i64,
    }
    let stored = async |conn: &mut diesel_async::AsyncPgConnection| -> Vec<Stored> {
        diesel::sql_query(
            "SELECT score_id, score, contributions, config_version FROM scores \
             WHERE org_id = $1 ORDER BY score_id",
        )
        .bind::<SqlUuid, _>(app.org)
        .load(conn)
        .await
        .unwrap()
    };
    let mut conn = app.app.pool.get().await.unwrap();
    let now = app.shared.clock.now() + Duration::days(1);
    let means = inputs::stored_input_means(&mut conn, app.org)
        .await
        .unwrap();
    let config = configs::VersionedConfig {
        version: 7,
        config: proposed(),
        created_at: None,
    };
    let weights = config.config.weights.as_array();
    // The org's contacts read as a config change's batch reads them, scored under `config`.
    let rescored = async |conn: &mut diesel_async::AsyncPgConnection,
                          config: &configs::VersionedConfig| {
        let read = engine::load_batch(
            conn,
            app.org,
            object_type::CONTACT,
            InputSource::Stored,
            None,
            100,
            Olds::All,
        )
        .await
        .unwrap();
        engine::compute(app.org, object_type::CONTACT, read, config, means, now)
            .into_iter()
            .map(|c| c.row)
            .collect::<Vec<_>>()
    };
    let mut rows = rescored(&mut conn, &config).await;
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter().all(|r| r.row_tid.is_some()),
        "read with its place"
    );
    let expected = |rows: &[scoring_engine::db::writes::ScoreRow], version: i64| {
        let mut expected: Vec<Stored> = rows
            .iter()
            .map(|r| Stored {
                score_id: r.score_id,
                score: r.score,
                contributions: r.contributions.clone(),
                config_version: version,
            })
            .collect();
        expected.sort_by_key(|s| s.score_id);
        expected
    };
    assert_ne!(
        stored(&mut conn).await,
        expected(&rows, config.version),
        "the config moves scores"
    );

    // Where each was read: every row written, each with its own score.
    let written = scoring_engine::db::writes::update_score_columns(
        &mut conn,
        app.org,
        &rows.iter().collect::<Vec<_>>(),
        &weights,
        config.version,
        now,
    )
    .await
    .unwrap();
    assert_eq!(written, 6);
    assert_eq!(stored(&mut conn).await, expected(&rows, config.version));

    // Two more configs: first the first two rows' places swapped (each names the other
    // row), then the third's naming no row at all. Every row still gets its own values.
    for (version, config) in [(8, ModelConfig::default()), (9, proposed())] {
        let config = configs::VersionedConfig {
            version,
            config,
            created_at: None,
        };
        rows = rescored(&mut conn, &config).await;
        if version == 8 {
            let first = rows[0].row_tid.clone();
            rows[0].row_tid = rows[1].row_tid.clone();
            rows[1].row_tid = first;
        } else {
            rows[2].row_tid = Some("(99999,1)".to_owned());
        }
        let written = scoring_engine::db::writes::update_score_columns(
            &mut conn,
            app.org,
            &rows.iter().collect::<Vec<_>>(),
            &config.config.weights.as_array(),
            config.version,
            now,
        )
        .await
        .unwrap();
        assert_eq!(written, 6, "each row written once, by its key");
        assert_eq!(stored(&mut conn).await, expected(&rows, config.version));
    }
}
