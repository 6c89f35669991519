//! Benchmarks the simulator's two hot paths and prints the figures: seeding
//! 100,000 contacts + 20,000 companies + 40,000 deals, and serving a full page of
//! 100 contacts (server time measured in-process through the real handler, and
//! round trips over loopback with a keep-alive client).

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![expect(clippy::expect_used, reason = "a benchmark fails loudly")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use hubspot_sim::seed::{SeedRequest, seed};
use hubspot_sim::state::{Limits, NewPortal, Portal};
use hubspot_sim::{SimConfig, spawn};

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len();
    let mean = samples.iter().sum::<Duration>() / n as u32;
    let pct = |p: f64| samples[((n as f64 * p) as usize).min(n - 1)];
    println!(
        "{name}: n={n} mean={:.1} µs p50={:.1} µs p99={:.1} µs max={:.1} µs",
        mean.as_secs_f64() * 1e6,
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        samples[n - 1].as_secs_f64() * 1e6
    );
}

fn unlimit(portal: &Portal) {
    // The benchmark measures serving, not the rate limiter's 429s.
    *portal.limits.lock() = Limits::default();
}

#[tokio::main]
async fn main() {
    let running = spawn(SimConfig::default()).await.expect("simulator starts");
    let sim = running.sim();
    let (portal, _) = sim
        .create_portal(NewPortal {
            tier: Some("enterprise".into()),
            ..NewPortal::default()
        })
        .expect("portal");

    let started = Instant::now();
    let counts = seed(
        &mut portal.data.write(),
        &SeedRequest {
            seed: 42,
            contacts: 100_000,
            companies: 20_000,
            deals: 40_000,
            owners: 25,
            anchor_ms: None,
        },
    );
    let seed_time = started.elapsed();
    println!(
        "seed: {} contacts + {} companies + {} deals ({} associations) in {:.2} s",
        counts.contacts,
        counts.companies,
        counts.deals,
        counts.associations,
        seed_time.as_secs_f64()
    );
    println!(
        "bench: simulator, seed 100,000 contacts + 20,000 companies + 40,000 deals | seconds | {:.2} s",
        seed_time.as_secs_f64()
    );

    // In-process: the real catch-all handler, from request to serialised response.
    let data = web::Data::new(sim.clone());
    let token = portal.private_app_token.clone();
    let first_id = *portal
        .data
        .read()
        .store(hubspot_sim::model::ObjectType::Contacts)
        .live
        .keys()
        .next()
        .expect("contacts");
    let mut samples = Vec::new();
    let mut body_bytes = 0;
    for i in 0..2_000u64 {
        unlimit(&portal);
        let after = first_id + (i * 100) % 99_000;
        let req = actix_web::test::TestRequest::get()
            .uri(&format!("/crm/v3/objects/contacts?limit=100&after={after}"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_http_request();
        let t = Instant::now();
        let resp = hubspot_sim::http::dispatch(req, web::Bytes::new(), data.clone()).await;
        let body = actix_web::body::to_bytes(resp.into_body())
            .await
            .expect("body");
        samples.push(t.elapsed());
        body_bytes = body.len();
    }
    println!("page of 100 contacts: {body_bytes} bytes of JSON");
    let p99 = {
        let mut sorted = samples.clone();
        sorted.sort();
        sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
    };
    println!(
        "bench: simulator, server time of a 100-contact page ({body_bytes} B of JSON) | well under 1 ms | p99 {:.0} µs",
        p99.as_secs_f64() * 1e6
    );
    summary("server time, in-process handler, 100-contact page", samples);

    let mut samples = Vec::new();
    for i in 0..500u64 {
        unlimit(&portal);
        let after = first_id + (i * 100) % 99_000;
        let req = actix_web::test::TestRequest::get()
            .uri(&format!("/crm/v3/objects/contacts?limit=100&after={after}&properties=email,lifecyclestage,hs_lead_status,notes_last_updated&associations=companies"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .to_http_request();
        let t = Instant::now();
        let resp = hubspot_sim::http::dispatch(req, web::Bytes::new(), data.clone()).await;
        let _ = actix_web::body::to_bytes(resp.into_body())
            .await
            .expect("body");
        samples.push(t.elapsed());
    }
    summary(
        "server time, in-process handler, 100-contact page with 4 properties + associations",
        samples,
    );

    // Loopback round trips with a keep-alive client (includes HTTP and client time).
    let client = reqwest::Client::new();
    let url = format!("{}/crm/v3/objects/contacts?limit=100", running.base_url());
    let mut samples = Vec::new();
    for i in 0..1_000u64 {
        unlimit(&portal);
        let after = first_id + (i * 100) % 99_000;
        let t = Instant::now();
        let resp = client
            .get(format!("{url}&after={after}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send");
        let _ = resp.bytes().await.expect("body");
        samples.push(t.elapsed());
    }
    summary("round trip over loopback, 100-contact page", samples);

    let portal: Arc<Portal> = portal;
    drop(portal);
    running.stop().await;
}
