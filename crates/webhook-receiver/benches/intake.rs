//! Open-loop load on one receiver process (release build): signed deliveries of 100
//! events each, sent on a fixed schedule, latency measured from each request's scheduled
//! send time (so a stalled receiver cannot slow the generator down and hide its own
//! queueing), publisher confirms to a quorum queue on the local RabbitMQ.
//!
//! Run: `cargo bench -p webhook-receiver --bench intake` (or `scripts/bench
//! webhook-receiver`). `BENCH_RATE` (deliveries/s, 2000), `BENCH_SECS` (measured
//! seconds, 20), `BENCH_WARMUP_SECS` (2) and `BENCH_EVENTS` (per delivery, 100) change the
//! run. Prints deliveries/s, events/s, p50/p99/max latency, the receiver's CPU and memory
//! (from /proc) and the ledger: sent = accepted = messages on the queue.

#![expect(clippy::expect_used, reason = "a benchmark fails loudly")]
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::amqp::testing::{BrokerCleanup, amqp_settings, ready_count};
use platform::amqp::{Broker, QueueSpec};
use platform::testing::{cpu_secs, unique_name};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const SECRET: &str = "bench-app-client-secret";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn body(portal: i64, first_id: i64, n: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let i = i64::try_from(i).expect("small");
            json!({"eventId": first_id + i, "subscriptionId": 77, "portalId": portal, "appId": 31337,
                   "occurredAt": 1_767_225_600_000_i64 + i, "subscriptionType": "deal.propertyChange",
                   "attemptNumber": 0, "objectId": 5_551_234 + i, "propertyName": "dealstage",
                   "propertyValue": "closedwon", "changeSource": "CRM_UI", "sourceId": "userId:42"})
        })
        .collect();
    serde_json::to_vec(&events).expect("json")
}

/// A `/proc/{pid}/status` value in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Outcome {
    measured: bool,
    latency: Duration,
    ok: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate: f64 = env_or("BENCH_RATE", 2000.0);
    let secs: f64 = env_or("BENCH_SECS", 20.0);
    let warmup: f64 = env_or("BENCH_WARMUP_SECS", 2.0);
    let events_per: usize = env_or("BENCH_EVENTS", 100);

    let amqp = amqp_settings();
    let queue = unique_name("bench.webhook-batches");
    let _cleanup = BrokerCleanup::new(&amqp, &[queue.as_str()]);
    let reader = Broker::start(
        amqp.clone(),
        vec![QueueSpec::new(queue.clone(), ["webhook.batch"])],
    );
    assert!(reader.wait_connected(Duration::from_secs(10)).await);

    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_webhook-receiver"))
        .arg("serve")
        .env("HUBSCORE__HTTP__PORT", port.to_string())
        .env("HUBSCORE__WEBHOOKS__PUBLIC_BASE_URL", &base)
        .env("HUBSCORE__WEBHOOKS__APP_CLIENT_SECRETS", SECRET)
        .env("HUBSCORE__AMQP__EXCHANGE", &amqp.exchange)
        .env(
            "HUBSCORE__AMQP__DEAD_LETTER_EXCHANGE",
            &amqp.dead_letter_exchange,
        )
        .env("HUBSCORE__TELEMETRY__LEVEL", "warn")
        // The internal JWT keys keep their built-in development values, which the service
        // refuses outside development mode.
        .env("HUBSCORE__RUNTIME__DEVELOPMENT", "true")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("receiver starts");
    let pid = child.id();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(512)
        .build()
        .expect("client");
    let ready = async {
        loop {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("receiver ready within 30 s");

    // Distinct bodies, signed once (the run is well inside the 5-minute window).
    let url = format!("{base}/webhooks/hubspot");
    let timestamp = chrono::Utc::now().timestamp_millis().to_string();
    let bodies: Arc<Vec<(actix_web::web::Bytes, String)>> = Arc::new(
        (0..256_i64)
            .map(|i| {
                let b = body(62_515, i * 1_000, events_per);
                let sig = hubspot_sim::signing::sign_v3(SECRET, "POST", &url, &b, &timestamp);
                (actix_web::web::Bytes::from(b), sig)
            })
            .collect(),
    );

    let total = ((warmup + secs) * rate).round() as u64;
    let warmup_n = (warmup * rate).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut cpu_at_measure = None;
    let mut wall_at_measure = None;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled).await;
        if i == warmup_n {
            cpu_at_measure = Some(cpu_secs(pid));
            wall_at_measure = Some(Instant::now());
        }
        let (payload, signature) = bodies[(i % 256) as usize].clone();
        let request = http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hubspot-signature-v3", signature)
            .header("x-hubspot-request-timestamp", &timestamp)
            .body(payload);
        let outcomes = outcomes.clone();
        tasks.push(tokio::spawn(async move {
            let ok = matches!(request.send().await, Ok(r) if r.status().is_success());
            let latency = tokio::time::Instant::now().duration_since(scheduled);
            outcomes.lock().await.push(Outcome {
                measured: i >= warmup_n,
                latency,
                ok,
            });
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let wall = wall_at_measure.map_or(0.0, |w| w.elapsed().as_secs_f64());
    let cpu = cpu_secs(pid) - cpu_at_measure.unwrap_or(0.0);
    let rss_kib = status_kib(pid, "VmRSS");
    let hwm_kib = status_kib(pid, "VmHWM");

    let outcomes = outcomes.lock().await;
    let accepted = outcomes.iter().filter(|o| o.ok).count() as u64;
    let mut latencies: Vec<Duration> = outcomes
        .iter()
        .filter(|o| o.measured)
        .map(|o| o.latency)
        .collect();
    latencies.sort_unstable();
    let measured_ok = outcomes.iter().filter(|o| o.measured && o.ok).count() as f64;
    // A quorum queue reports its length with a little lag: read until it holds still.
    let mut queued = u64::from(ready_count(&reader, &queue).await.expect("queue count"));
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = u64::from(ready_count(&reader, &queue).await.expect("queue count"));
        if now == queued {
            break;
        }
        queued = now;
    }
    let _ = child.kill();
    let _ = child.wait();

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "webhook-receiver intake, open loop at {rate} deliveries/s x {events_per} events, {secs} s measured after {warmup} s warm-up"
    );
    println!(
        "  machine: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.trim()
    );
    println!(
        "  throughput: {:.0} deliveries/s, {:.0} events/s (accepted in the measured window)",
        measured_ok / wall,
        measured_ok * events_per as f64 / wall
    );
    println!(
        "  latency from scheduled send: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  receiver: {:.0} % CPU ({:.1} CPU-s over {:.1} s), RSS {} MiB, peak RSS {} MiB",
        cpu / wall * 100.0,
        cpu,
        wall,
        rss_kib / 1024,
        hwm_kib / 1024
    );
    let failed = total - accepted;
    println!(
        "  ledger: sent {total} = accepted {accepted} + not accepted {failed}; messages on the queue {queued} (events {}) -> {}",
        queued * events_per as u64,
        if accepted == queued {
            "balanced"
        } else {
            "queue holds deliveries the client gave up on (5 s timeout) after the receiver confirmed them"
        }
    );
    assert!(
        accepted <= queued && queued <= total,
        "ledger: every accepted delivery is on the queue, and nothing unsent is"
    );
    println!(
        "bench: webhook-receiver, open loop at {rate} deliveries/s of {events_per} events (ledger {}) | >= 2,000/s, p99 < 25 ms | {:.0}/s, p99 {:.1} ms",
        if accepted == queued {
            "balanced"
        } else {
            "NOT balanced"
        },
        measured_ok / wall,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3
    );
}
