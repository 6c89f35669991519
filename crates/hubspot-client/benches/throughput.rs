//! Throughput against the simulator with the shared PostgreSQL budget, printed as figures:
//!
//! 1. listing 50,000 contacts from a professional-tier portal with one client, in objects/s
//!    against the ceiling of 190 requests per 10 s × 100 objects = 1,900 objects/s;
//! 2. three independent clients (separate limiters and pools, one budget) hammering one
//!    professional-tier portal for 30 s: the share of the allowed requests they used.
//!
//! Run with `cargo bench -p hubspot-client` (PostgreSQL at 127.0.0.1:5432 as for the tests).

#![expect(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::TryStreamExt as _;
use hubspot_client::{
    AuthKind, BudgetSettings, ClientConfig, HubSpotClient, ListOptions, PgBudgetStore,
    PortalAccess, PortalLimiter, StaticToken, Tier,
};
use serde_json::{Value, json};

#[path = "../tests/common/db.rs"]
mod db;

use db::BudgetDatabase;

const BURST_LIMIT: f64 = 190.0;

struct Control {
    base: String,
    http: reqwest::Client,
}

impl Control {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?.error_for_status()?;
        let text = response.text().await?;
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// A professional-tier portal seeded with `contacts`; returns (portal id, token).
    async fn portal(&self, contacts: u64) -> anyhow::Result<(i64, String)> {
        let created = self
            .call(
                reqwest::Method::POST,
                "/_sim/portals",
                Some(json!({"tier": "professional"})),
            )
            .await?;
        let id = created["portal_id"].as_i64().context("portal_id")?;
        let token = created["private_app_token"]
            .as_str()
            .context("token")?
            .to_owned();
        let seed =
            json!({"seed": 1, "contacts": contacts, "companies": 0, "deals": 0, "owners": 0});
        self.call(
            reqwest::Method::POST,
            &format!("/_sim/portals/{id}/seed"),
            Some(seed),
        )
        .await?;
        Ok((id, token))
    }

    async fn stats(&self, portal_id: i64) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::GET,
            &format!("/_sim/portals/{portal_id}/stats"),
            None,
        )
        .await
    }
}

fn client(
    base: &str,
    db: &BudgetDatabase,
    portal_id: i64,
    token: &str,
) -> anyhow::Result<HubSpotClient> {
    let access = PortalAccess {
        portal_id,
        auth: AuthKind::PrivateApp,
        tier: Tier::Professional,
        api_limit_increase: false,
        utc_offset_minutes: 0,
    };
    // A pool of its own per client, as separate processes would have.
    let store = PgBudgetStore::new(db.pool()?);
    let limiter = Arc::new(PortalLimiter::new(store, access, BudgetSettings::default()));
    Ok(HubSpotClient::builder(
        ClientConfig::for_base_url(base),
        Arc::new(StaticToken::new(token)),
    )
    .limiter(limiter)
    .build()?)
}

async fn listing(control: &Control, db: &BudgetDatabase) -> anyhow::Result<()> {
    let (portal_id, token) = control.portal(50_000).await?;
    let client = client(&control.base, db, portal_id, &token)?;
    let ceiling = BURST_LIMIT / 10.0 * 100.0;
    // The first run starts with an empty window and gets a whole burst of 190 at once, which
    // the per-second ceiling does not count; the second starts with the window full, so it
    // shows the sustained rate.
    for run in ["cold start", "sustained"] {
        let started = Instant::now();
        let contacts: Vec<_> = client
            .list_objects("contacts", ListOptions::default())
            .try_collect()
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        let rate = contacts.len() as f64 / seconds;
        println!(
            "listing ({run}): {} contacts in {seconds:.1} s = {rate:.0} objects/s = {:.1}% of the ceiling {ceiling:.0} objects/s (190 req/10 s x 100)",
            contacts.len(),
            100.0 * rate / ceiling
        );
        if run == "sustained" {
            println!(
                "bench: client, list {} contacts, professional tier, share of the rate ceiling | >= 95 % | {:.1} %",
                contacts.len(),
                100.0 * rate / ceiling
            );
        }
    }
    let stats = control.stats(portal_id).await?;
    println!(
        "listing: simulator saw {} requests, max {} in any 10 s, 429s: {}",
        stats["requests_total"], stats["max_requests_in_any_10s_window"], stats["rate_limited"]
    );
    Ok(())
}

async fn three_instances(control: &Control, db: &BudgetDatabase) -> anyhow::Result<()> {
    let (portal_id, token) = control.portal(200).await?;
    let clients = (0..3)
        .map(|_| client(&control.base, db, portal_id, &token))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let mut tasks = Vec::new();
    for client in &clients {
        for _ in 0..4 {
            let client = client.clone();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                let options = ListOptions {
                    page_size: 10,
                    ..ListOptions::default()
                };
                while Instant::now() < deadline {
                    client.list_objects_page("contacts", &options, None).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, hubspot_client::HubSpotError>(())
            }));
        }
    }
    for task in tasks {
        task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let requests = done.load(Ordering::Relaxed) as f64;
    let stats = control.stats(portal_id).await?;
    // The most a rolling 10-s limit lets through in T seconds is a full burst per started
    // window; the average-rate view is 19/s.
    let allowed_bursting = BURST_LIMIT * (seconds / 10.0).ceil();
    let allowed_average = BURST_LIMIT / 10.0 * seconds;
    println!(
        "three instances: {requests} requests in {seconds:.1} s ({:.1}/s)",
        requests / seconds
    );
    println!(
        "three instances: {:.1}% of the allowed requests used (190 per 10 s over {seconds:.1} s = {allowed_average:.0}); \
         {:.1}% of the {allowed_bursting:.0} a perfectly aligned burst per started window could send",
        100.0 * requests / allowed_average,
        100.0 * requests / allowed_bursting
    );
    println!(
        "bench: client, three instances sharing one budget, share of 190 requests/10 s | >= 90 % | {:.1} %",
        100.0 * requests / allowed_average
    );
    println!(
        "three instances: simulator max {} requests in any 10 s (limit 190), 429s: {}, statuses: {}",
        stats["max_requests_in_any_10s_window"], stats["rate_limited"], stats["by_status"]
    );
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let sim = hubspot_sim::spawn(hubspot_sim::SimConfig::default()).await?;
    let control = Control {
        base: sim.base_url(),
        http: reqwest::Client::new(),
    };
    let db = BudgetDatabase::create().await?;
    listing(&control, &db).await?;
    three_instances(&control, &db).await?;
    sim.stop().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and should not
    // spend a minute, so only a real bench run measures.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
