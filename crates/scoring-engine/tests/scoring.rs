//! Scores from `crm.changed`, as consumers of `score.updated` and API users see them.

mod common;

use chrono::Duration;
use common::{PORTAL, busy_customer, deal, spawn_app, t0, ts};
use contracts::v1::{ObjectType, RiskLevel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_healthy_example_scores_78_and_publishes_every_field() {
    let app = spawn_app().await;
    let mut contacts = app.changed(ObjectType::Contact);
    contacts.customers = busy_customer(51, 2);
    app.publish(&contacts).await;
    // First score, without a deal: 22.64 + 0 + 13.5 + 20 x 7/8 + 0 = 53.64.
    let first = app.next_event().await.updated();
    assert_eq!(first.old_score, None);
    assert_eq!(first.new_score, Some(54));
    assert_eq!(first.old_risk_level(), RiskLevel::None);
    assert_eq!(first.new_risk_level(), RiskLevel::AtRisk);
    assert!(first.contribution_deltas.is_empty());
    assert_eq!(first.top_factor, "");

    let mut deals = app.changed(ObjectType::Deal);
    deals.deals = vec![deal(900, &[51], t0() - Duration::hours(1))];
    app.publish(&deals).await;
    // The 8th update, a 60% open deal at the org mean: 22.64 + 12 + 13.5 + 20 + 10 = 78.14.
    let second = app.next_event().await.updated();
    assert_eq!(second.org_id, app.org.to_string());
    assert_eq!(second.connection_id, app.connection.to_string());
    assert_eq!(second.portal_id, PORTAL);
    assert_eq!(
        second.customer_id,
        scoring_engine::engine::customer_id(app.org, PORTAL, 1, 51).to_string()
    );
    assert_eq!(second.object_type(), ObjectType::Contact);
    assert_eq!((second.object_id, second.contact_id), (51, 51));
    assert_eq!(second.company_id, None);
    assert_eq!((second.old_score, second.new_score), (Some(54), Some(78)));
    assert_eq!(second.old_risk_level(), RiskLevel::AtRisk);
    assert_eq!(second.new_risk_level(), RiskLevel::Healthy);
    assert_eq!(second.config_version, 0);
    assert_eq!(second.computed_at, ts(t0()));
    let names: Vec<&str> = second.factors.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, scoring_engine::model::FACTOR_NAMES);
    let deltas: Vec<f64> = second
        .contribution_deltas
        .iter()
        .map(|d| (d * 1000.0).round() / 1000.0)
        .collect();
    assert_eq!(deltas, [0.0, 12.0, 0.0, 2.5, 10.0]);
    assert_eq!(second.top_factor, "deal_momentum");
    assert_eq!(app.contact_score(51).await, Some(78));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_critical_example_scores_4() {
    let app = spawn_app().await;
    let mut message = app.changed(ObjectType::Contact);
    message.customers = vec![common::quiet_lead(7)];
    app.publish(&message).await;
    // 25 x 0.5^(60/14) + 0 + 3 + 0 (its only update is 45 days old) + 0 = 4.28.
    let event = app.next_event().await.updated();
    assert_eq!(event.new_score, Some(4));
    assert_eq!(event.new_risk_level(), RiskLevel::Critical);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_crm_changed_produces_no_second_event() {
    let app = spawn_app().await;
    let mut message = app.changed(ObjectType::Contact);
    message.customers = busy_customer(1, 3);
    let meta = app.publish(&message).await;
    assert!(app.next_event().await.updated().new_score.is_some());
    // The same delivery again, and the same content under a new message id.
    app.publish_with(&message, meta).await;
    app.publish(&message).await;
    // A change of another contact marks the point where both replays were handled.
    let mut marker = app.changed(ObjectType::Contact);
    marker.customers = busy_customer(2, 3);
    app.publish(&marker).await;
    let next = app.next_event().await.updated();
    assert_eq!(next.object_id, 2, "a replay published {next:?}");
    assert!(app.drain().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_moves_neither_score_nor_level_publishes_nothing() {
    let app = spawn_app().await;
    let mut message = app.changed(ObjectType::Contact);
    message.customers = busy_customer(1, 3);
    app.publish(&message).await;
    let first = app.next_event().await.updated();
    // A new name under the same modified time, and an older version already seen (its
    // update is in the activity log): nothing to score. (An older version never seen
    // before does count as activity, whenever it arrives.)
    let mut renamed = message.customers[6].clone();
    renamed.name = Some("Renamed".into());
    let mut older = message.customers[0].clone();
    older.lifecycle_stage = Some("lead".into());
    let mut quiet = app.changed(ObjectType::Contact);
    quiet.customers = vec![renamed, older];
    app.publish(&quiet).await;
    let mut marker = app.changed(ObjectType::Contact);
    marker.customers = busy_customer(2, 3);
    app.publish(&marker).await;
    assert_eq!(app.next_event().await.updated().object_id, 2);
    assert!(app.drain().await.is_empty());
    // The rename is stored; the older version was not applied.
    let (_, list) = app.get(app.org, "/api/v1/customers?sort=name").await;
    let names: Vec<&str> = list["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Contact 2", "Renamed"]);
    assert_eq!(app.contact_score(1).await, first.new_score.map(i64::from));
}

/// Seven versions of a `customer` contact active at t0 plus an open deal of probability
/// `probability` without amount: 25 + 20p + 13.5 + 20 (8 updates) + 0.
async fn customer_active_now_with_a_deal(app: &common::TestApp, probability: f64) {
    let mut message = app.changed(ObjectType::Contact);
    message.customers = busy_customer(1, 0);
    app.publish(&message).await;
    let mut deals = app.changed(ObjectType::Deal);
    let mut open = deal(900, &[1], t0() - Duration::hours(1));
    open.amount_cents = None;
    open.close_probability = Some(probability);
    deals.deals = vec![open];
    app.publish(&deals).await;
    app.events(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_decay_moves_a_score_across_a_band_on_the_schedule_and_alerts() {
    let app = spawn_app().await;
    customer_active_now_with_a_deal(&app, 0.6).await;
    // 25 + 12 + 13.5 + 20 = 70.5: healthy.
    assert_eq!(app.contact_score(1).await, Some(71));
    // Nothing happens in the CRM; a day passes and the daily rescore comes due.
    app.shared
        .clock
        .advance(Duration::days(1) + Duration::minutes(1));
    let mut updated = None;
    let mut alert = None;
    for event in app.events(2).await {
        match event {
            common::Event::Updated(u) => updated = Some(u),
            common::Event::Alert(a) => alert = Some(a),
        }
    }
    // 25 x 0.5^(1/14) = 23.79: 69.29, at risk.
    let updated = updated.unwrap();
    assert_eq!((updated.old_score, updated.new_score), (Some(71), Some(69)));
    assert_eq!(updated.new_risk_level(), RiskLevel::AtRisk);
    assert_eq!(updated.top_factor, "engagement_recency");
    let alert = alert.unwrap();
    assert_eq!(
        alert.reasons().collect::<Vec<_>>(),
        [contracts::v1::ScoreAlertReason::WorseRiskLevel]
    );
    assert_eq!((alert.old_score, alert.new_score), (Some(71), 69));
    assert_eq!(alert.new_risk_level(), RiskLevel::AtRisk);
    assert_eq!(alert.customer_id, updated.customer_id);
    // The next run finds nothing changed within the same day: no event.
    app.shared.clock.advance(Duration::minutes(1));
    let mut marker = app.changed(ObjectType::Contact);
    marker.customers = busy_customer(2, 3);
    app.publish(&marker).await;
    assert_eq!(app.next_event().await.updated().object_id, 2);
    assert!(app.drain().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_of_the_configured_points_alerts_once_and_not_again_for_the_same_drop() {
    let app = spawn_app().await;
    // 25 + 20 + 13.5 + 20 = 78.5: 79.
    customer_active_now_with_a_deal(&app, 1.0).await;
    assert_eq!(app.contact_score(1).await, Some(79));
    // The deal is lost: 58.5, 20 points down within the week.
    let mut lost = deal(900, &[1], t0() - Duration::minutes(30));
    lost.amount_cents = None;
    lost.set_status(contracts::v1::DealStatus::Lost);
    let mut message = app.changed(ObjectType::Deal);
    message.deals = vec![lost.clone()];
    app.publish(&message).await;
    let events = app.events(2).await;
    let alert = events
        .iter()
        .find_map(|e| match e {
            common::Event::Alert(a) => Some(a.clone()),
            common::Event::Updated(_) => None,
        })
        .unwrap();
    let mut reasons = alert.reasons().collect::<Vec<_>>();
    reasons.sort_by_key(|r| *r as i32);
    assert_eq!(
        reasons,
        [
            contracts::v1::ScoreAlertReason::WorseRiskLevel,
            contracts::v1::ScoreAlertReason::ScoreDrop
        ]
    );
    assert_eq!(
        (alert.reference_score, alert.new_score, alert.drop_points),
        (Some(79), 59, 20)
    );
    assert_eq!(alert.window_days, 7);
    assert_eq!(alert.top_factor, "deal_momentum");
    // Two days later decay takes it down a little further: an update, but the drop was
    // already told.
    app.shared.clock.advance(Duration::days(2));
    let further = app.next_event().await.updated();
    assert_eq!(further.old_score, Some(59));
    assert!(further.new_score < Some(59));
    let mut marker = app.changed(ObjectType::Contact);
    marker.customers = busy_customer(2, 3);
    app.publish(&marker).await;
    let next = app.next_event().await;
    assert!(
        matches!(&next, common::Event::Updated(u) if u.object_id == 2),
        "expected only the marker, got {next:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_score_rolls_up_its_contacts() {
    let app = spawn_app().await;
    let mut message = app.changed(ObjectType::Contact);
    message.customers = busy_customer(1, 2)
        .into_iter()
        .map(|mut c| {
            c.primary_company_id = Some(10);
            c.company_ids = vec![10];
            c
        })
        .collect();
    let mut lead = common::quiet_lead(2);
    lead.source_updated_at = ts(t0() - Duration::days(3));
    lead.company_ids = vec![10];
    message.customers.push(lead);
    app.publish(&message).await;
    app.events(2).await;
    let mut companies = app.changed(ObjectType::Company);
    companies.companies = vec![common::company(10, t0() - Duration::days(5))];
    app.publish(&companies).await;
    let event = app.next_event().await.updated();
    assert_eq!(event.object_type(), ObjectType::Company);
    assert_eq!(
        (event.object_id, event.contact_id, event.company_id),
        (10, 0, Some(10))
    );
    // Latest contact activity 2 days ago: 22.64; no deal 0; best stage customer 13.5;
    // 7 + 1 contact updates: 20; no deal value: 56.14.
    assert_eq!(event.new_score, Some(56));
    let (_, list) = app
        .get(app.org, "/api/v1/customers?object_type=company")
        .await;
    assert_eq!(list["customers"][0]["object_id"], 10);
    assert_eq!(list["customers"][0]["name"], "Company 10");
    // The contact's own event said which company it belongs to.
    assert_eq!(app.contact_score(1).await, Some(54));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_naming_no_valid_org_is_dead_lettered_with_its_reason() {
    let app = spawn_app().await;
    let mut broken = app.changed(ObjectType::Contact);
    broken.org_id = "not-a-uuid".into();
    broken.customers = busy_customer(1, 1);
    app.publish(&broken).await;
    let dlq = platform::amqp::dead_letter_queue_name(&app.shared.queue);
    let dead = platform::testing::wait_for_message(&app.broker, &dlq, common::WAIT)
        .await
        .unwrap();
    let reason =
        platform::testing::header(&dead, platform::amqp::DEAD_LETTER_REASON_HEADER).unwrap();
    assert!(reason.contains("not-a-uuid"), "{reason}");
    // The queue goes on with the next message.
    let mut good = app.changed(ObjectType::Contact);
    good.customers = busy_customer(2, 1);
    app.publish(&good).await;
    assert_eq!(app.next_event().await.updated().object_id, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_customer_stays_removed_when_an_older_change_arrives_late() {
    let app = spawn_app().await;
    let mut before = app.changed(ObjectType::Contact);
    before.customers = busy_customer(1, 3);
    app.publish(&before).await;
    assert_eq!(app.next_event().await.updated().object_id, 1);

    // HubSpot deletes the contact; then a change sync-worker committed before the deletion
    // arrives (another replica was slower, or the broker redelivered it).
    let mut removal = app.changed(ObjectType::Contact);
    removal.deleted_ids = vec![1];
    app.publish(&removal).await;
    app.publish(&before).await;
    let mut marker = app.changed(ObjectType::Contact);
    marker.customers = busy_customer(2, 3);
    app.publish(&marker).await;
    let next = app.next_event().await.updated();
    assert_eq!(next.object_id, 2, "the late change scored {next:?}");
    assert!(app.drain().await.is_empty());
    let id = scoring_engine::engine::customer_id(app.org, PORTAL, 1, 1);
    let (status, body) = app.get(app.org, &format!("/api/v1/customers/{id}")).await;
    assert_eq!(status, 404, "the removed contact came back: {body}");

    // Restored in HubSpot: sync-worker commits it again, after the deletion.
    let mut restored = app.changed(ObjectType::Contact);
    restored.customers = busy_customer(1, 3);
    app.publish(&restored).await;
    let back = app.next_event().await.updated();
    assert_eq!((back.object_id, back.old_score), (1, None));
    assert!(app.contact_score(1).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_are_remembered_for_a_week_then_forgotten() {
    use diesel_async::RunQueryDsl as _;
    let app = spawn_app().await;
    let mut conn = app.app.pool.get().await.unwrap();
    // Removed a month and six days before the service's "now".
    diesel::sql_query(
        "INSERT INTO removed_records (org_id, portal_id, object_type, object_id, removed_at) \
         VALUES ($1, $2, 1, 7, $3 - interval '30 days'), ($1, $2, 1, 6, $3 - interval '6 days')",
    )
    .bind::<diesel::sql_types::Uuid, _>(app.org)
    .bind::<diesel::sql_types::BigInt, _>(PORTAL)
    .bind::<diesel::sql_types::Timestamptz, _>(app.shared.clock.now())
    .execute(&mut conn)
    .await
    .unwrap();
    let mut removal = app.changed(ObjectType::Contact);
    removal.deleted_ids = vec![8];
    app.publish(&removal).await;
    let mut marker = app.changed(ObjectType::Contact);
    marker.customers = busy_customer(2, 3);
    app.publish(&marker).await;
    assert_eq!(app.next_event().await.updated().object_id, 2);

    #[derive(diesel::QueryableByName)]
    struct Removed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        object_id: i64,
    }
    let kept: Vec<Removed> =
        diesel::sql_query("SELECT object_id FROM removed_records WHERE org_id = $1 ORDER BY 1")
            .bind::<diesel::sql_types::Uuid, _>(app.org)
            .load(&mut conn)
            .await
            .unwrap();
    let kept: Vec<i64> = kept.into_iter().map(|r| r.object_id).collect();
    assert_eq!(
        kept,
        [6, 8],
        "the month-old removal is forgotten, the six-day-old and the new one kept"
    );
}

/// A replica that dies during an org's scheduled rescore loses the org's rescore lock with
/// its session, and the org stays due: the next scheduler pass of any replica does it. While
/// the lock is held elsewhere, the others leave the org alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_rescore_cut_off_with_its_replica_is_done_by_the_next_pass() {
    let app = spawn_app().await;
    customer_active_now_with_a_deal(&app, 0.6).await;
    assert_eq!(app.contact_score(1).await, Some(71));
    // A replica is rescoring the org (it holds the lock), and dies without finishing.
    let holder = app.hold_rescore_lock().await;
    app.shared
        .clock
        .advance(Duration::days(1) + Duration::minutes(1));
    // The scheduler polls every 50 ms: a second of passes leaves the org to the holder.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        app.contact_score(1).await,
        Some(71),
        "rescored under the lock"
    );
    assert!(app.drain().await.is_empty());
    // Its session ends: the org is still due, and the next pass rescores it.
    holder.release().await;
    let updated = app.update_among(2).await;
    assert_eq!((updated.old_score, updated.new_score), (Some(71), Some(69)));
}

/// A `sync.completed` for an org whose whole-org rescore is running (another replica holds
/// its rescore lock) goes to a delay queue instead of waiting for the lock: the consumer
/// goes on with the next message, another org's change, at once. Once the lock is free the
/// sync's rescore runs, from the retried message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_of_an_org_being_rescored_holds_up_no_other_orgs_change() {
    let app = spawn_app().await;
    customer_active_now_with_a_deal(&app, 0.6).await;
    assert_eq!(app.contact_score(1).await, Some(71));
    // A day later (recency moves the score), with the schedule put off: only the sync's
    // rescore can move it.
    app.put_off_the_schedule().await;
    app.shared
        .clock
        .advance(Duration::days(1) + Duration::minutes(1));
    let holder = app.hold_rescore_lock().await;
    app.sync_completed(app.org).await;
    let other = uuid::Uuid::now_v7();
    let mut change = app.changed_for(other, ObjectType::Contact);
    change.customers = vec![common::quiet_lead(50)];
    app.publish(&change).await;
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), app.next_event())
        .await
        .expect("the other org's change waited for this org's rescore")
        .updated();
    assert_eq!(first.org_id, other.to_string());
    assert_eq!(
        app.contact_score(1).await,
        Some(71),
        "rescored under the lock"
    );

    holder.release().await;
    let updated = app.update_among(2).await;
    assert_eq!(updated.org_id, app.org.to_string());
    assert_eq!((updated.old_score, updated.new_score), (Some(71), Some(69)));
}

/// A whole-org rescore publishes each batch's changes as the batch commits, not once the
/// whole org is done: with the relay's own poll put off for an hour, the changes of the
/// batches committed so far arrive while the rescore is held up mid-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_rescore_publishes_each_batch_as_it_commits() {
    use diesel::QueryableByName;
    use diesel::sql_types::{BigInt, Uuid as SqlUuid};
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
    const CONTACTS: i64 = 400;
    let shared = common::Shared::new().await;
    let mut settings = shared.settings();
    settings.outbox.poll_interval_ms = 3_600_000;
    settings.scoring.batch_size = 10;
    let replica = shared.spawn_with(settings).await;
    let app = common::test_app(shared, replica).await;
    let t = t0();
    let mut contacts = app.changed(ObjectType::Contact);
    for id in 1..=CONTACTS {
        let mut c = common::contact(id, t - Duration::days(id % 20));
        c.lifecycle_stage = Some("customer".into());
        c.last_activity_at = ts(t - Duration::days(id % 45));
        contacts.customers.push(c);
    }
    app.publish(&contacts).await;
    // First scores: the consumer wakes the relay once the message is written.
    assert_eq!(
        app.events(usize::try_from(CONTACTS).unwrap()).await.len(),
        400
    );
    app.put_off_the_schedule().await;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rescored = async |conn: &mut diesel_async::AsyncPgConnection| -> i64 {
        let count: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM scores WHERE org_id = $1 AND config_version = 1",
        )
        .bind::<SqlUuid, _>(app.org)
        .get_result(conn)
        .await
        .unwrap();
        count.n
    };
    let mut config = scoring_engine::model::ModelConfig::default();
    config.weights.engagement_recency = 45.0;
    config.weights.deal_momentum = 10.0;
    config.weights.lifecycle_stage = 15.0;
    config.weights.activity_frequency = 20.0;
    config.weights.deal_value = 10.0;
    let body = serde_json::to_value(&config).unwrap();
    let held = async {
        let mut conn = app.app.pool.get().await.unwrap();
        for _ in 0..1000 {
            if rescored(&mut conn).await > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Hold the rescore up: its next batch waits for the org lock.
        let mut holder = app.app.pool.get().await.unwrap();
        holder.batch_execute("BEGIN").await.unwrap();
        scoring_engine::db::lock_org(&mut holder, app.org)
            .await
            .unwrap();
        let done = rescored(&mut conn).await;
        assert!(
            done > 0 && done < CONTACTS,
            "the rescore is mid-way ({done} of {CONTACTS} rescored)"
        );
        // What the committed batches changed is published meanwhile.
        let first = app.next_event().await.updated();
        assert_eq!(first.config_version, 1);
        holder.batch_execute("ROLLBACK").await.unwrap();
        first.customer_id
    };
    // The rescore is the request's, held up well inside its wait.
    let ((status, saved), first) = tokio::join!(app.save_config(&body), held);
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["rescored"]["scored"], CONTACTS, "{saved}");
    let mut conn = app.app.pool.get().await.unwrap();
    for _ in 0..3000 {
        if rescored(&mut conn).await == CONTACTS {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(rescored(&mut conn).await, CONTACTS);
    // One history row per change.
    let changed: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM score_history WHERE org_id = $1 AND config_version = 1",
    )
    .bind::<SqlUuid, _>(app.org)
    .get_result(&mut conn)
    .await
    .unwrap();
    let changed = changed.n;
    assert!(changed > 0, "the config moves scores");
    assert_eq!(saved["rescored"]["changed"], changed, "{saved}");
    // Every change arrives, once.
    let mut customers = std::collections::HashSet::from([first]);
    while i64::try_from(customers.len()).unwrap() < changed {
        let update = app.next_event().await.updated();
        assert_eq!(update.config_version, 1);
        assert!(
            customers.insert(update.customer_id),
            "a change arrived twice"
        );
    }
    assert!(
        app.drain().await.is_empty(),
        "nothing beyond the changes arrived"
    );
}
