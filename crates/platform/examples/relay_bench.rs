//! Outbox relay throughput: how many outbox entries per second one relay (and two side by
//! side, as two replicas would) publishes, with confirms, to a quorum queue.
//!
//! `cargo run --release -p platform --example relay_bench [ENTRIES]` against the local
//! PostgreSQL and RabbitMQ (see `scripts/services`); `scripts/bench` runs it. It works in a
//! throwaway database and deletes its queue and exchanges afterwards.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use diesel_async::SimpleAsyncConnection as _;
use platform::amqp::{Broker, QueueSpec};
use platform::db::{self, Pool};
use platform::outbox::{self, Relay, RelaySettings};
use platform::testing::{self, BrokerCleanup, TestDatabase};

const SCHEMA: &str = "bench";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let entries: u32 = match std::env::args().nth(1) {
        Some(n) => n.parse().context("ENTRIES must be a number")?,
        None => 50_000,
    };
    let database = TestDatabase::create().await?;
    db::run_migrations(&database.url, SCHEMA, [outbox::MIGRATIONS]).await?;
    let pool = db::connect_pool(&database.settings(), SCHEMA)?;
    let settings = testing::amqp_settings();
    let queue = testing::unique_name("bench.relay");
    let _cleanup = BrokerCleanup::new(&settings, &[&queue]);
    let broker = Broker::start(settings, vec![QueueSpec::new(queue.as_str(), ["bench.#"])]);
    anyhow::ensure!(
        broker.wait_connected(Duration::from_secs(10)).await,
        "the broker did not connect (is RabbitMQ running? see scripts/services)"
    );
    let relay_settings = RelaySettings::default();
    println!(
        "relay_bench: {entries} entries of 256 bytes per run, batch_size {}, quorum queue",
        relay_settings.batch_size
    );

    // The broker alone: the same messages, in the same batches, with confirms.
    let publisher = platform::amqp::Publisher::new(broker.clone());
    let batch: Vec<platform::amqp::OutgoingMessage> = (0..relay_settings.batch_size)
        .map(|_| platform::amqp::OutgoingMessage {
            routing_key: "bench.entry".to_owned(),
            message_type: "hubscore.bench.Entry".to_owned(),
            body: vec![b'x'; 256],
            meta: platform::amqp::MessageMeta::default(),
            created_at: chrono::Utc::now(),
        })
        .collect();
    let batches = entries / u32::try_from(relay_settings.batch_size)?;
    let started = Instant::now();
    for _ in 0..batches {
        for result in publisher.publish_all(&batch).await {
            result?;
        }
    }
    let published = batches * u32::try_from(relay_settings.batch_size)?;
    println!(
        "relay_bench: broker alone (one publisher, batches awaited in turn): {published} messages in {:.2} s = {:.0} messages/s",
        started.elapsed().as_secs_f64(),
        f64::from(published) / started.elapsed().as_secs_f64()
    );
    // The one-table summary scripts/bench prints: "bench: figure | target | measured".
    println!(
        "bench: outbox relay, broker alone ({published} x 256 B, quorum queue) | ceiling | {:.0} msg/s",
        f64::from(published) / started.elapsed().as_secs_f64()
    );
    purge(&broker, &queue).await?;

    for relays in [1, 2] {
        fill(&pool, entries).await?;
        let started = Instant::now();
        let mut runs = Vec::new();
        for _ in 0..relays {
            // Each replica has its own connection, as separate processes would.
            let broker = Broker::start(
                broker.settings().clone(),
                vec![QueueSpec::new(queue.as_str(), ["bench.#"])],
            );
            anyhow::ensure!(broker.wait_connected(Duration::from_secs(10)).await);
            let relay = Relay::new(pool.clone(), broker, relay_settings.clone());
            runs.push(tokio::spawn(async move { relay.relay_pending().await }));
        }
        let mut sent = 0;
        for run in runs {
            sent += run.await??;
        }
        let elapsed = started.elapsed();
        anyhow::ensure!(
            sent == usize::try_from(entries)?,
            "published {sent} of {entries}"
        );
        println!(
            "relay_bench: {relays} relay(s): {entries} messages in {:.2} s = {:.0} messages/s",
            elapsed.as_secs_f64(),
            f64::from(entries) / elapsed.as_secs_f64()
        );
        println!(
            "bench: outbox relay, {relays} relay(s), {entries} x 256 B to a quorum queue | {} | {:.0} msg/s",
            if relays == 1 { ">= 10,000 msg/s" } else { "-" },
            f64::from(entries) / elapsed.as_secs_f64()
        );
        purge(&broker, &queue).await?;
    }
    Ok(())
}

/// Writes `entries` unsent outbox entries in one statement, then refreshes the planner's
/// statistics as autovacuum would after such a burst.
async fn fill(pool: &Pool, entries: u32) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    conn.batch_execute(&format!(
        "INSERT INTO outbox (message_id, routing_key, message_type, correlation_id, body) \
         SELECT gen_random_uuid(), 'bench.entry', 'hubscore.bench.Entry', 'bench', \
                convert_to(repeat('x', 256), 'UTF8') \
         FROM generate_series(1, {entries}); \
         ANALYZE outbox"
    ))
    .await?;
    Ok(())
}

async fn purge(broker: &Broker, queue: &str) -> anyhow::Result<()> {
    let channel = broker.channel().await?;
    channel
        .queue_purge(queue.into(), lapin::options::QueuePurgeOptions::default())
        .await?;
    channel.close(200, "purged".into()).await?;
    Ok(())
}
