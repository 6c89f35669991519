//! End-to-end freshness: how long a change made in HubSpot takes to come out of hubscore,
//! under a steady stream of changes, with every service running as a release-built process
//! against the simulator (run by `scripts/bench freshness`, which builds the binaries).
//!
//! Open loop: change `i` is sent at `start + i / rate` whether or not earlier ones are done,
//! and both latencies count from that scheduled time: to the `score.updated` event a
//! consumer of our own receives, and to the new value on the simulator's record (written
//! back). Each change moves a scored contact's lifecycle stage between two stages the
//! default model values differently, so every change must produce exactly one event and
//! one write. The ledger (changes sent = events matched = values written) must balance or
//! the run does not count.
//!
//! `FRESHNESS_RATE` (changes/s, default 10) and `FRESHNESS_SECONDS` (default 60).

#![expect(
    clippy::print_stdout,
    clippy::expect_used,
    reason = "a benchmark that reports, and fails loudly"
)]

#[path = "../tests/stack/mod.rs"]
mod stack;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::json;
use stack::{Stack, other_stage};

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Messages in `queues`, ready or being handled, as `rabbitmqctl` counts them (the AMQP
/// protocol only tells the ready ones).
fn in_flight(queues: &[String]) -> u64 {
    let output = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "name", "messages"])
        .output()
        .expect("rabbitmqctl (run the benchmark where it works, as root or the rabbitmq user)");
    assert!(output.status.success(), "rabbitmqctl list_queues failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(char::is_whitespace))
        .filter(|(name, _)| queues.iter().any(|q| q == name))
        .filter_map(|(_, count)| count.trim().parse::<u64>().ok())
        .sum()
}

/// One change: when it was due, and when its effects were seen.
struct Change {
    contact: i64,
    scheduled: Instant,
    event: Option<(Instant, u32)>,
    written: Option<Instant>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rate = env_number("FRESHNESS_RATE", 10.0);
    let seconds = env_number("FRESHNESS_SECONDS", 60.0);
    let count = (rate * seconds).round() as usize;
    let stack = Stack::start(3_000, 300, 1_000, 1).await;

    // The consumer: its own queue bound to score.updated, as an internal service's.
    let broker = lapin::Connection::connect(
        &platform::testing::amqp_url(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("broker");
    let channel = broker.create_channel().await.expect("channel");
    let queue = channel
        .queue_declare(
            "".into(),
            lapin::options::QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.name().as_str().into(),
            stack.exchange.as_str().into(),
            "score.updated".into(),
            lapin::options::QueueBindOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("bind");
    let mut deliveries = channel
        .basic_consume(
            queue.name().as_str().into(),
            "freshness".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("consume");

    // The initial sync, its scores and the org's rescore after it are done, and written
    // back, before the measurement: what follows is the steady state.
    let token = stack.issue_token().await;
    stack.connect_and_sync(&token).await;
    stack.assert_converges(Duration::from_secs(600)).await;
    let settling = Instant::now();
    // Nothing left in flight: every queue of the stack empty, handled messages included
    // (the whole-org rescore after a sync holds its message for a while), for 5 s.
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(5) {
        assert!(
            settling.elapsed() < Duration::from_secs(600),
            "the stack was still busy 10 minutes after the sync"
        );
        if in_flight(&stack.queues) > 0 {
            quiet_since = Instant::now();
        }
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(50), deliveries.next()).await
        {
            quiet_since = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "freshness: the stack settled {:.0} s after the initial sync",
        settling.elapsed().as_secs_f64()
    );

    let scored = stack
        .query_pairs(
            "select object_id as id, score::text as value from scoring.scores \
             where object_type = 1 and score is not null order by object_id",
        )
        .await;
    assert!(
        scored.len() >= count,
        "{count} changes need as many scored contacts; {} are scored",
        scored.len()
    );
    let stages = stack.hubspot_values("contacts", "lifecyclestage").await;
    let targets: Vec<(i64, &'static str)> = scored
        .keys()
        .take(count)
        .map(|id| (*id, other_stage(stages.get(id).map_or("", String::as_str))))
        .collect();

    let changes: Arc<Mutex<Vec<Change>>> = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let by_contact: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    // score.updated events that answer none of our changes, and how many of them are
    // first scores.
    let other_events = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let first_scores = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (changes, by_contact, other, first) = (
            changes.clone(),
            by_contact.clone(),
            other_events.clone(),
            first_scores.clone(),
        );
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = deliveries.next().await {
                let at = Instant::now();
                let events = contracts::score_changes(
                    platform::testing::message_type(&delivery),
                    &delivery.data,
                )
                .expect("a score.updated message type")
                .expect("a score.updated body");
                for event in events {
                    let index = by_contact
                        .lock()
                        .expect("lock")
                        .get(&event.object_id)
                        .copied();
                    let mut changes = changes.lock().expect("lock");
                    match index.and_then(|i| changes.get_mut(i)) {
                        Some(change)
                            if change.event.is_none()
                                && event.object_type
                                    == contracts::v1::ObjectType::Contact as i32 =>
                        {
                            change.event = Some((at, event.new_score.unwrap_or(0)));
                        }
                        _ => {
                            other.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if event.old_score.is_none() {
                                first.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        });
    }
    // Watches the simulator's records for the written-back value of each scored change.
    let portal = stack.sim.sim().portal(stack.portal_id).expect("the portal");
    let watcher = {
        let changes = changes.clone();
        tokio::spawn(async move {
            loop {
                {
                    let data = portal.data.read();
                    let store = data.store(hubspot_sim::model::ObjectType::Contacts);
                    let mut changes = changes.lock().expect("lock");
                    let now = Instant::now();
                    for change in changes.iter_mut().filter(|c| c.written.is_none()) {
                        let Some((_, score)) = change.event else {
                            continue;
                        };
                        let shown = u64::try_from(change.contact)
                            .ok()
                            .and_then(|id| store.live.get(&id))
                            .and_then(|r| r.props.get("hubscore_health_score").cloned());
                        if shown.as_deref() == Some(score.to_string().as_str()) {
                            change.written = Some(now);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    println!(
        "freshness: {count} lifecycle-stage changes at {rate}/s over {seconds} s \
         (simulator batches webhooks for 200 ms, as HubSpot batches them)"
    );
    let start = Instant::now() + Duration::from_secs(1);
    let mut sends = Vec::with_capacity(count);
    for (i, (contact, stage)) in targets.iter().copied().enumerate() {
        let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
        {
            let mut changes = changes.lock().expect("lock");
            by_contact
                .lock()
                .expect("lock")
                .insert(contact, changes.len());
            changes.push(Change {
                contact,
                scheduled,
                event: None,
                written: None,
            });
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let http = stack.http.clone();
        let url = format!(
            "{}/_sim/portals/{}/objects/contacts/{contact}",
            stack.sim.base_url(),
            stack.portal_id
        );
        sends.push(tokio::spawn(async move {
            http.patch(url)
                .json(&json!({"properties": {"lifecyclestage": stage}}))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }));
    }
    let mut sent = 0;
    for send in sends {
        if send.await.expect("send task") {
            sent += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = changes
            .lock()
            .expect("lock")
            .iter()
            .all(|c| c.written.is_some());
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watcher.abort();

    let (mut to_event, mut to_hubspot): (Vec<Duration>, Vec<Duration>) = {
        let changes = changes.lock().expect("lock");
        (
            changes
                .iter()
                .filter_map(|c| c.event.map(|(at, _)| at - c.scheduled))
                .collect(),
            changes
                .iter()
                .filter_map(|c| c.written.map(|at| at - c.scheduled))
                .collect(),
        )
    };
    to_event.sort();
    to_hubspot.sort();
    let balanced = sent == count && to_event.len() == count && to_hubspot.len() == count;
    println!(
        "  ledger: {count} scheduled, {sent} sent, {} score.updated matched ({} other events: {} first scores), {} written back -> {}",
        to_event.len(),
        other_events.load(std::sync::atomic::Ordering::Relaxed),
        first_scores.load(std::sync::atomic::Ordering::Relaxed),
        to_hubspot.len(),
        if balanced {
            "balanced"
        } else {
            "NOT balanced: the run does not count"
        }
    );
    println!(
        "  change -> score.updated: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms(percentile(&to_event, 50.0)),
        ms(percentile(&to_event, 99.0)),
        ms(to_event.last().copied().unwrap_or_default())
    );
    println!(
        "  change -> value in HubSpot: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms(percentile(&to_hubspot, 50.0)),
        ms(percentile(&to_hubspot, 99.0)),
        ms(to_hubspot.last().copied().unwrap_or_default())
    );
    println!(
        "  machine: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "bench: end-to-end freshness, {rate}/s changes, change -> score.updated (ledger {}) | p99 < 2 s | p50 {:.0} ms, p99 {:.0} ms",
        if balanced { "balanced" } else { "NOT balanced" },
        ms(percentile(&to_event, 50.0)),
        ms(percentile(&to_event, 99.0))
    );
    println!(
        "bench: end-to-end freshness, {rate}/s changes, change -> value written back to HubSpot | - | p50 {:.0} ms, p99 {:.0} ms",
        ms(percentile(&to_hubspot, 50.0)),
        ms(percentile(&to_hubspot, 99.0))
    );
    let _ = broker.close(200, "done".into()).await;
    stack.stop().await;
    assert!(balanced, "the ledger did not balance");
}
