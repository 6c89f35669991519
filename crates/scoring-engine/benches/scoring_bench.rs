//! scoring-engine benchmarks (run by `scripts/bench`; figures in docs/scoring-engine.md):
//!
//! 1. An org of `SCORING_BENCH_CUSTOMERS` contacts (default 1,000,000; a tenth as many
//!    companies, a deal per two contacts, three updates per contact in the activity log)
//!    seeded with set-based SQL, then scored once.
//! 2. The preview of a config change over the whole org (nothing stored).
//! 3. Saving that change: the org rescored with scores, history and outbox entries for
//!    every change committed, with the service's outbox relay publishing beside it to a
//!    quorum queue bound to `score.updated` and `score.alert`; then the time until every
//!    event is confirmed, checked against the queue's count (`SCORING_BENCH_PUBLISH=0`:
//!    the rescore alone, nothing published).
//! 4. Incremental scoring through the running service: `crm.changed` in, `score.updated`
//!    out, as throughput (customers/s, a burst of messages) and latency p50/p99 (one
//!    message at a time).
//!
//! The service's settings apply, with any `HUBSCORE__*` variables of the environment (say
//! `HUBSCORE__SCORING__RESCORE_LANES=4` or `HUBSCORE__SCORING__BATCH_SIZE=5000`).
//! `SCORING_BENCH_PREVIEW_ONLY=1` stops after step 2 (to measure the preview alone),
//! `SCORING_BENCH_RESCORE_ONLY=1` after step 3; `SCORING_BENCH_RESCORES=N` saves a config
//! N times (the proposed one and the default in turn), each rescore measured.
//!
//! Needs PostgreSQL and RabbitMQ (`scripts/services`).

#![expect(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark that reports"
)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use contracts::v1::{CrmChanged, Customer, ObjectType, ScoreUpdated, crm_changed};
use diesel::sql_types::Uuid as SqlUuid;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use futures::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use platform::amqp::{Broker, MessageMeta, Publisher, QueueSpec};
use platform::outbox::{Relay, RelaySettings};
use platform::shutdown::Shutdown;
use platform::testing::{BrokerCleanup, TestDatabase, unique_name};
use scoring_engine::engine;
use scoring_engine::model::ModelConfig;
use uuid::Uuid;

const SEED: &str = "
INSERT INTO companies (org_id, portal_id, company_id, connection_id, name, last_activity_at, source_updated_at)
SELECT $1, 1, g, $2, 'Company ' || g, $3 - (g % 40) * interval '1 day', $3 - interval '1 day'
FROM generate_series(1, $4 / 10) g;
INSERT INTO contacts (org_id, portal_id, contact_id, connection_id, email, name, lifecycle_stage,
    last_activity_at, primary_company_id, source_updated_at)
SELECT $1, 1, g, $2, 'c' || g || '@example.com', 'Contact ' || g,
    (ARRAY['subscriber','lead','marketingqualifiedlead','salesqualifiedlead','opportunity',
           'customer','evangelist','other'])[1 + g % 8],
    CASE WHEN g % 5 = 0 THEN NULL ELSE $3 - (g % 60) * interval '1 day' END,
    1 + g % ($4 / 10), $3 - interval '1 day'
FROM generate_series(1, $4) g;
INSERT INTO contact_companies (org_id, portal_id, contact_id, company_id)
SELECT $1, 1, g, 1 + g % ($4 / 10) FROM generate_series(1, $4) g;
INSERT INTO deals (org_id, portal_id, deal_id, connection_id, status, amount_cents, close_probability, source_updated_at)
SELECT $1, 1, g, $2, (1 + g % 3)::int2, 100000 + (g % 50) * 10000, (g % 10) / 10.0, $3 - interval '1 day'
FROM generate_series(1, $4 / 2) g;
INSERT INTO deal_contacts (org_id, portal_id, deal_id, contact_id)
SELECT $1, 1, g, g * 2 FROM generate_series(1, $4 / 2) g;
INSERT INTO activity_log (org_id, portal_id, object_type, object_id, occurred_at)
SELECT $1, 1, 1, g, $3 - (k * 11 + g % 11) * interval '1 day' - interval '1 hour'
FROM generate_series(1, $4) g, generate_series(0, 2) k;
ANALYZE;";

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The figures, printed as they come and again as one table at the end.
#[derive(Default)]
struct Report(Vec<(String, String, String)>);

impl Report {
    fn add(&mut self, what: &str, figure: String, detail: String) {
        println!("{what:<44} {figure:>16}  {detail}");
        // The line scripts/bench gathers into its summary table.
        let target = if what.starts_with("preview") {
            "< 5 s"
        } else if what.starts_with("rescore after") {
            "< 20 s"
        } else {
            "-"
        };
        println!("bench: scoring-engine, {what} ({detail}) | {target} | {figure}");
        self.0.push((what.to_owned(), figure, detail));
    }

    fn print(&self) {
        println!();
        println!("| measurement | figure | detail |");
        println!("|---|---:|---|");
        for (what, figure, detail) in &self.0 {
            println!("| {what} | {figure} | {detail} |");
        }
    }
}

/// `uptime`'s load averages.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index"
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let customers: i64 = std::env::var("SCORING_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let publish_events = std::env::var("SCORING_BENCH_PUBLISH").map_or(true, |v| v != "0");
    let db = TestDatabase::create().await.unwrap();
    let amqp = platform::testing::amqp_settings();
    let queue = unique_name("scoring-engine.crm");
    let observer = unique_name("bench.scores");
    let _cleanup = BrokerCleanup::new(&amqp, &[&queue, &observer]);
    // The service's settings, with any `HUBSCORE__*` of the environment (to try others, as
    // `HUBSCORE__SCORING__RESCORE_LANES=4`), then the bench's own database and queue.
    let mut settings: scoring_engine::Settings = platform::config::load_with_env(
        scoring_engine::config::DEFAULTS,
        None,
        std::env::vars().chain([
            ("HUBSCORE__HTTP__PORT".to_owned(), "0".to_owned()),
            ("HUBSCORE__DATABASE__URL".to_owned(), db.url.clone()),
            ("HUBSCORE__SCORING__QUEUE".to_owned(), queue.clone()),
            (
                "HUBSCORE__OUTBOX__POLL_INTERVAL_MS".to_owned(),
                "20".to_owned(),
            ),
        ]),
    )
    .unwrap();
    settings.amqp = amqp.clone();
    settings.amqp.prefetch = 64;
    scoring_engine::startup::migrate(&settings).await.unwrap();
    let pool = platform::db::connect_pool(&settings.database, "scoring").unwrap();
    let batch = settings.scoring.batch_size;
    let lanes = settings.scoring.rescore_lanes;
    println!(
        "== scoring-engine: org of {customers} contacts, {} companies, {} deals (load average {})",
        customers / 10,
        customers / 2,
        load()
    );
    let mut report = Report::default();

    // 1. Seed and score once.
    let org = Uuid::now_v7();
    let now = Utc::now();
    let started = Instant::now();
    {
        let mut conn = pool.get().await.unwrap();
        for statement in SEED.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            if statement == "ANALYZE" {
                conn.batch_execute("ANALYZE").await.unwrap();
                continue;
            }
            diesel::sql_query(statement)
                .bind::<SqlUuid, _>(org)
                .bind::<SqlUuid, _>(Uuid::now_v7())
                .bind::<Timestamptz, _>(now)
                .bind::<BigInt, _>(customers)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    report.add(
        "seed the projection (SQL, then ANALYZE)",
        secs(started.elapsed()),
        format!("{customers} contacts, 3 updates each"),
    );
    let started = Instant::now();
    let first = engine::rescore_org(
        engine::Rescorer {
            pool: &pool,
            relay: &platform::outbox::RelayWaker::default(),
            batch_size: batch,
            lanes,
            correlation_id: "bench",
        },
        org,
        now,
        engine::InputSource::Projection,
    )
    .await
    .unwrap();
    report.add(
        "first scoring of the org (from the projection)",
        secs(started.elapsed()),
        format!("{} scored, {} first scores", first.scored, first.changed),
    );
    {
        let mut conn = pool.get().await.unwrap();
        conn.batch_execute("DELETE FROM outbox; DELETE FROM outbox_bundles; ANALYZE")
            .await
            .unwrap();
    }

    // 2. Preview a change, 3. save it.
    let mut proposed = ModelConfig::default();
    proposed.weights.lifecycle_stage = 35.0;
    proposed.weights.deal_value = 0.0;
    proposed.thresholds.healthy_min = 60;
    let started = Instant::now();
    let preview = engine::preview(&pool, org, &proposed, now, batch, lanes)
        .await
        .unwrap();
    report.add(
        "preview of a config change (nothing stored)",
        secs(started.elapsed()),
        format!(
            "{} customers, {} scores would change",
            preview.customers, preview.score_changes
        ),
    );
    if std::env::var("SCORING_BENCH_PREVIEW_ONLY").is_ok_and(|v| v == "1") {
        // Where a preview's time goes: again as it is, then its parts one by one.
        let started = Instant::now();
        let again = engine::preview(&pool, org, &proposed, now, batch, lanes)
            .await
            .unwrap();
        assert_eq!(again, preview, "a second preview counts the same");
        report.add(
            "the same preview again",
            secs(started.elapsed()),
            String::new(),
        );
        let mut conn = pool.get().await.unwrap();
        let started = Instant::now();
        let means = scoring_engine::db::inputs::stored_input_means(&mut conn, org)
            .await
            .unwrap();
        report.add(
            "  its part: org means",
            secs(started.elapsed()),
            String::new(),
        );
        let started = Instant::now();
        let mut rows_read = Vec::new();
        for kind in [1_i16, 2] {
            let mut after = None;
            loop {
                let rows = engine::load_batch(
                    &mut conn,
                    org,
                    kind,
                    engine::InputSource::Stored,
                    after,
                    batch,
                    scoring_engine::db::inputs::Olds::ScoreAndLevel,
                )
                .await
                .unwrap();
                after = rows.last().map(|r| (r.portal_id, r.object_id));
                let done = i64::try_from(rows.len()).unwrap() < batch;
                rows_read.push((kind, rows));
                if done {
                    break;
                }
            }
        }
        report.add(
            "  its part: reading every stored input on one connection",
            secs(started.elapsed()),
            String::new(),
        );
        let config = scoring_engine::db::configs::VersionedConfig {
            version: 1,
            config: proposed.clone(),
            created_at: None,
        };
        let started = Instant::now();
        let mut scored = 0;
        for (kind, rows) in rows_read {
            scored += engine::compute(org, kind, rows, &config, means, now).len();
        }
        report.add(
            "  its part: scoring them on one thread",
            secs(started.elapsed()),
            format!("{scored} scored"),
        );
        report.print();
        return;
    }
    // With publishing on, the service's outbox relay runs beside the rescore, as it does in
    // the service, and publishes to a quorum queue bound to both keys (as writeback-worker's
    // is). The figure is the time until the last event is confirmed, and the queue must
    // then hold every event committed (the ledger), or the run fails. Further rounds
    // (`SCORING_BENCH_RESCORES`) save the default config and the proposed one in turn.
    let rounds: usize = std::env::var("SCORING_BENCH_RESCORES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for round in 0..rounds {
        let config = if round % 2 == 0 {
            proposed.clone()
        } else {
            ModelConfig::default()
        };
        let events_queue = unique_name("bench.score-events");
        let _events_cleanup = BrokerCleanup::new(&amqp, &[&events_queue]);
        let relaying = if publish_events {
            let broker = Broker::start(
                settings.amqp.clone(),
                vec![QueueSpec::new(
                    &events_queue,
                    ["score.updated", "score.alert"],
                )],
            );
            assert!(broker.wait_connected(Duration::from_secs(30)).await);
            let relay = Relay::new(
                pool.clone(),
                broker.clone(),
                RelaySettings {
                    // The service's poll (the settings above poll fast for step 4); the
                    // rescore wakes the relay after each batch, as the service's does.
                    poll_interval_ms: RelaySettings::default().poll_interval_ms,
                    ..settings.outbox.clone()
                },
            );
            let waker = relay.waker();
            let shutdown = Shutdown::new();
            let task = tokio::spawn(relay.run(shutdown.clone()));
            Some((broker, shutdown, task, waker))
        } else {
            None
        };
        let wal_before = wal_stats(&pool).await;
        let started = Instant::now();
        let cpu_before = platform::testing::cpu_secs(std::process::id());
        {
            let mut conn = pool.get().await.unwrap();
            conn.transaction(async |conn| {
                scoring_engine::db::lock_org(conn, org).await?;
                scoring_engine::db::configs::save(conn, org, &config, "bench", now).await
            })
            .await
            .unwrap();
        }
        let saved = engine::rescore_org(
            engine::Rescorer {
                pool: &pool,
                relay: &relaying
                    .as_ref()
                    .map(|(_, _, _, waker)| waker.clone())
                    .unwrap_or_default(),
                batch_size: batch,
                lanes,
                correlation_id: "bench",
            },
            org,
            now,
            engine::InputSource::Stored,
        )
        .await
        .unwrap();
        report.add(
        if relaying.is_some() {
            "rescore after the config change (stored), committed, the relay publishing beside it"
        } else {
            "rescore after the config change (stored)"
        },
        secs(started.elapsed()),
        format!(
            "{} scored, {} changed: scores, history, events for {} changes and {} alerts; \
             this process {:.1} s of CPU",
            saved.scored,
            saved.changed,
            saved.changed,
            saved.alerts,
            platform::testing::cpu_secs(std::process::id()) - cpu_before
        ),
    );
        let wal = wal_stats(&pool).await.since(&wal_before);
        report.add(
            "  WAL the rescore wrote (pg_stat_wal)",
            format!("{:.2} GB", wal.bytes as f64 / 1e9),
            format!(
                "{} records, {} full-page images, {} checkpoints meanwhile",
                wal.records, wal.fpi, wal.checkpoints
            ),
        );
        // Timed before the pause the statistics below need (until 2026-12-05, third
        // session, the pause was inside this figure and added up to 1.5 s to it).
        let mut published = None;
        if relaying.is_some() {
            loop {
                let pending = platform::outbox::pending_count(&mut pool.get().await.unwrap())
                    .await
                    .unwrap();
                if pending == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            published = Some(started.elapsed());
        }
        // Backends report their table counts when idle, at most once a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (updated, hot) = hot_updates(&pool).await;
        report.add(
            "  score rows rewritten in place (HOT updates)",
            format!("{hot} of {updated}"),
            "the rest moved, with an entry in every index of scores".to_owned(),
        );
        if let (Some((broker, shutdown, task, _)), Some(elapsed)) = (relaying, published) {
            shutdown.cancel();
            task.await.unwrap();
            let channel = broker.channel().await.unwrap();
            let on_queue = channel
                .queue_declare(
                    events_queue.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await
                .unwrap()
                .message_count();
            let ledger = read_ledger(&channel, &events_queue, on_queue).await;
            assert_eq!(
                ledger.changes.len(),
                saved.changed,
                "the ledger: every change committed is on the queue"
            );
            assert_eq!(
                ledger.entries, saved.changed,
                "the ledger: no change is on the queue twice"
            );
            assert_eq!(
                ledger.alert_ids.len(),
                saved.alerts,
                "the ledger: every alert"
            );
            assert_eq!(
                ledger.alerts, saved.alerts,
                "the ledger: no alert is on the queue twice"
            );
            report.add(
            "the same, until every event is published, confirmed and on a quorum queue",
            secs(elapsed),
            format!(
                "ledger: {} changes and {} alerts committed = on the queue, in {on_queue} messages \
                 ({} batches of changes, {} of alerts, {:.0} MB of bodies); {:.0} changes/s \
                 over the whole",
                saved.changed,
                saved.alerts,
                ledger.batches,
                ledger.alert_batches,
                ledger.bytes as f64 / 1e6,
                saved.changed as f64 / elapsed.as_secs_f64()
            ),
        );
            channel
                .queue_delete(
                    events_queue.as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await
                .unwrap();
            broker.close();
        }
    }
    if std::env::var("SCORING_BENCH_RESCORE_ONLY").is_ok_and(|v| v == "1") {
        report.print();
        return;
    }
    {
        // The big org is done; the incremental run gets a quiet database.
        let mut conn = pool.get().await.unwrap();
        conn.batch_execute(
            "TRUNCATE contacts, companies, deals, contact_companies, deal_contacts, \
             deal_companies, activity_log, scores, score_history, outbox, outbox_bundles, alerts, \
             org_state; ANALYZE",
        )
        .await
        .unwrap();
    }
    drop(pool);

    // 4. Incremental: crm.changed -> score.updated through the running service.
    let app = scoring_engine::Application::build(settings.clone())
        .await
        .unwrap();
    let shutdown = Shutdown::new();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let broker = Broker::start(
        settings.amqp.clone(),
        vec![
            QueueSpec::new(&observer, ["score.updated"]),
            QueueSpec::new(&queue, scoring_engine::handlers::ROUTING_KEYS),
        ],
    );
    assert!(broker.wait_connected(Duration::from_secs(30)).await);
    let publisher = Publisher::new(broker.clone());
    let channel = broker.channel().await.unwrap();
    let mut events = channel
        .basic_consume(
            observer.as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let org = Uuid::now_v7();
    let connection = Uuid::now_v7().to_string();
    let message = |ids: std::ops::Range<i64>| {
        let mut m = CrmChanged {
            org_id: org.to_string(),
            connection_id: connection.clone(),
            portal_id: 1,
            cause: Some(crm_changed::Cause::SyncRunId(Uuid::now_v7().to_string())),
            customers: ids
                .map(|id| Customer {
                    external_id: id,
                    email: format!("c{id}@example.com"),
                    lifecycle_stage: Some("customer".into()),
                    last_activity_at: Some(contracts::time::to_timestamp(Utc::now())),
                    source_updated_at: Some(contracts::time::to_timestamp(Utc::now())),
                    ..Customer::default()
                })
                .collect(),
            ..CrmChanged::default()
        };
        m.set_object_type(ObjectType::Contact);
        m
    };
    // Changes of a batch not yet returned (a write of 100 changes or more is batched).
    let mut pending: std::collections::VecDeque<ScoreUpdated> = std::collections::VecDeque::new();
    let mut next_event = async || -> ScoreUpdated {
        loop {
            if let Some(update) = pending.pop_front() {
                return update;
            }
            let delivery = tokio::time::timeout(Duration::from_secs(120), events.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            let kind = platform::testing::message_type(&delivery);
            pending.extend(
                contracts::score_changes(kind, &delivery.data)
                    .unwrap()
                    .unwrap(),
            );
        }
    };
    // Warm-up.
    publisher
        .publish_event(&message(0..1), MessageMeta::new("bench", Some(org)))
        .await
        .unwrap();
    next_event().await;

    // Throughput: a burst of messages of 10 contacts each.
    let burst_messages = 200;
    let per_message = 10;
    let started = Instant::now();
    for i in 0..burst_messages {
        let first = 1_000 + i * per_message;
        publisher
            .publish_event(
                &message(first..first + per_message),
                MessageMeta::new("bench", Some(org)),
            )
            .await
            .unwrap();
    }
    for _ in 0..burst_messages * per_message {
        next_event().await;
    }
    let elapsed = started.elapsed();
    report.add(
        "incremental throughput (crm.changed -> score.updated)",
        format!(
            "{:.0} customers/s",
            f64::from(u32::try_from(burst_messages * per_message).unwrap()) / elapsed.as_secs_f64()
        ),
        format!(
            "{burst_messages} messages of {per_message} new contacts in {}",
            secs(elapsed)
        ),
    );

    // Latency: one message of one contact at a time.
    let mut latencies = Vec::new();
    let mut sent_at: HashMap<i64, Instant> = HashMap::new();
    for id in 100_000..100_200 {
        sent_at.insert(id, Instant::now());
        publisher
            .publish_event(&message(id..id + 1), MessageMeta::new("bench", Some(org)))
            .await
            .unwrap();
        let event = next_event().await;
        latencies.push(sent_at[&event.object_id].elapsed());
    }
    latencies.sort_unstable();
    report.add(
        "incremental latency (crm.changed -> score.updated)",
        format!(
            "p50 {:.1} ms, p99 {:.1} ms",
            percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
            percentile(&latencies, 0.99).as_secs_f64() * 1000.0
        ),
        format!("{} messages of one contact, one at a time", latencies.len()),
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
    report.print();
    println!("load average at the end: {}", load());
}

/// What the events queue held, read back after the run.
struct Ledger {
    /// Distinct customers whose change arrived.
    changes: std::collections::HashSet<String>,
    /// Changes arrived (a repeat counts twice).
    entries: usize,
    /// Alerts arrived (a repeat counts twice), alone or in a `ScoreAlertBatch`.
    alerts: usize,
    /// Distinct alert ids arrived.
    alert_ids: std::collections::HashSet<String>,
    /// `ScoreAlertBatch` messages.
    alert_batches: usize,
    /// `ScoreUpdatedBatch` messages.
    batches: usize,
    /// Message bodies, in bytes.
    bytes: usize,
}

/// PostgreSQL's WAL counters, server-wide (nothing else writes during the rescore).
struct WalStats {
    bytes: i64,
    records: i64,
    fpi: i64,
    checkpoints: i64,
}

impl WalStats {
    fn since(&self, before: &WalStats) -> WalStats {
        WalStats {
            bytes: self.bytes - before.bytes,
            records: self.records - before.records,
            fpi: self.fpi - before.fpi,
            checkpoints: self.checkpoints - before.checkpoints,
        }
    }
}

/// Updates of `scores` so far, and how many of them were HOT.
async fn hot_updates(pool: &platform::db::Pool) -> (i64, i64) {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        updated: i64,
        #[diesel(sql_type = BigInt)]
        hot: i64,
    }
    let row: Row = diesel::sql_query(
        "SELECT n_tup_upd AS updated, n_tup_hot_upd AS hot FROM pg_stat_user_tables \
         WHERE relname = 'scores'",
    )
    .get_result(&mut pool.get().await.unwrap())
    .await
    .unwrap();
    (row.updated, row.hot)
}

async fn wal_stats(pool: &platform::db::Pool) -> WalStats {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        bytes: i64,
        #[diesel(sql_type = BigInt)]
        records: i64,
        #[diesel(sql_type = BigInt)]
        fpi: i64,
        #[diesel(sql_type = BigInt)]
        checkpoints: i64,
    }
    let row: Row = diesel::sql_query(
        "SELECT w.wal_bytes::bigint AS bytes, w.wal_records AS records, w.wal_fpi AS fpi, \
            b.checkpoints_timed + b.checkpoints_req AS checkpoints \
         FROM pg_stat_wal w, pg_stat_bgwriter b",
    )
    .get_result(&mut pool.get().await.unwrap())
    .await
    .unwrap();
    WalStats {
        bytes: row.bytes,
        records: row.records,
        fpi: row.fpi,
        checkpoints: row.checkpoints,
    }
}

/// Consumes the `messages` on `queue` and counts what they carry.
async fn read_ledger(channel: &lapin::Channel, queue: &str, messages: u32) -> Ledger {
    channel
        .basic_qos(1_000, lapin::options::BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "ledger".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let mut ledger = Ledger {
        changes: std::collections::HashSet::new(),
        entries: 0,
        alerts: 0,
        alert_ids: std::collections::HashSet::new(),
        alert_batches: 0,
        batches: 0,
        bytes: 0,
    };
    for _ in 0..messages {
        let delivery = tokio::time::timeout(Duration::from_secs(60), consumer.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        ledger.bytes += delivery.data.len();
        let kind = platform::testing::message_type(&delivery);
        if let Some(alerts) = contracts::score_alerts(kind, &delivery.data) {
            let alerts = alerts.unwrap();
            if kind == "hubscore.v1.ScoreAlertBatch" {
                ledger.alert_batches += 1;
            }
            ledger.alerts += alerts.len();
            ledger
                .alert_ids
                .extend(alerts.into_iter().map(|a| a.alert_id));
            continue;
        }
        if kind == "hubscore.v1.ScoreUpdatedBatch" {
            ledger.batches += 1;
        }
        let changes = contracts::score_changes(kind, &delivery.data)
            .unwrap_or_else(|| panic!("unexpected message type {kind}"))
            .unwrap();
        ledger.entries += changes.len();
        ledger
            .changes
            .extend(changes.into_iter().map(|u| u.customer_id));
    }
    ledger
}
