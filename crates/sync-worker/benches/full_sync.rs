//! sync-worker benchmark, figures printed:
//!
//! 1. A full sync of 50,000 contacts, 10,000 companies and 20,000 deals with their
//!    associations from a professional-tier simulated portal (190 requests per 10 s):
//!    wall time against the floor the rate limit sets for the requests the sync made,
//!    objects/s, requests refused (429), and the process's peak memory.
//! 2. The worker's own side with no rate limit in the way: the same 80,000 records
//!    (synthesized in the simulator's shape) mapped through `domain` and written in bulk
//!    by three concurrent writers, as a full sync writes them: objects/s.
//!
//! Run with `cargo bench -p sync-worker` (PostgreSQL and RabbitMQ as for the tests).

#![expect(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]
#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use common::*;
use diesel_async::RunQueryDsl as _;
use hubspot_client::CrmObject;
use sync_worker::db::connections::Connection as Row;
use sync_worker::db::mirror::{MappedPage, RecordType, upsert_page};
use uuid::Uuid;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[derive(diesel::QueryableByName)]
struct MirrorCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    what: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn synthesize(record_type: RecordType, id: u64) -> CrmObject {
    let now = Utc::now().to_rfc3339();
    let mut p: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        p.insert(k.to_owned(), Some(v));
    };
    set("hs_object_id", id.to_string());
    set("createdate", now.clone());
    match record_type {
        RecordType::Contact => {
            set("email", format!("person{id}@example{}.com", id % 97));
            set("firstname", "Ada".into());
            set("lastname", format!("Person {id}"));
            set("company", "Northwind".into());
            set("lifecyclestage", "customer".into());
            set("hs_lead_status", "OPEN".into());
            set("hubspot_owner_id", "101".into());
            set("hs_last_sales_activity_date", now.clone());
            set("lastmodifieddate", now);
        }
        RecordType::Company => {
            set("name", format!("Company {id}"));
            set("domain", format!("company{id}.example"));
            set("industry", "COMPUTER_SOFTWARE".into());
            set("numberofemployees", "250".into());
            set("annualrevenue", "1250000.50".into());
            set("hs_lastmodifieddate", now);
        }
        RecordType::Deal => {
            set("dealname", format!("Deal {id}"));
            set("dealstage", "qualifiedtobuy".into());
            set("pipeline", "default".into());
            set("amount", "12500.75".into());
            set("hs_deal_stage_probability", "0.4".into());
            set("closedate", now.clone());
            set("hs_lastmodifieddate", now);
        }
    }
    CrmObject {
        id: id.to_string(),
        properties: p,
        properties_with_history: None,
        created_at: None,
        updated_at: None,
        archived: false,
        archived_at: None,
        associations: None,
        created: None,
    }
}

async fn write_path(h: &Harness) {
    let pool = pool_for(h);
    let connection = Row {
        connection_id: Uuid::new_v4(),
        org_id: Uuid::new_v4(),
        portal_id: 1,
        auth_kind: "private_app".to_owned(),
        status: "active".to_owned(),
    };
    // The service keeps the mirror's statistics fresh while it writes; so does this run
    // (the tables were analyzed while they held the full sync's portal alone, and a plan
    // made for that reads every row of the new one).
    let shutdown = platform::shutdown::Shutdown::new();
    let statistics = tokio::spawn(platform::db::keep_statistics_fresh(
        pool.clone(),
        sync_worker::db::mirror::TABLES,
        std::time::Duration::from_secs(2),
        shutdown.clone(),
    ));
    let started = Instant::now();
    let writers = [
        (RecordType::Contact, 50_000u64),
        (RecordType::Company, 10_000),
        (RecordType::Deal, 20_000),
    ]
    .map(|(record_type, count)| {
        let pool = pool.clone();
        let connection = connection.clone();
        tokio::spawn(async move {
            let mut conn = pool.get().await.unwrap();
            let ids: Vec<u64> = (1..=count).collect();
            let started = Instant::now();
            for chunk in ids.chunks(100) {
                let objects: Vec<CrmObject> = chunk
                    .iter()
                    .map(|id| synthesize(record_type, *id))
                    .collect();
                let page = MappedPage::map(record_type, &objects);
                upsert_page(
                    &mut conn,
                    &connection,
                    record_type,
                    &page,
                    Utc::now(),
                    None,
                    &mut Vec::new(),
                )
                .await
                .unwrap();
            }
            (record_type, started.elapsed().as_secs_f64())
        })
    });
    let mut each = Vec::new();
    for writer in writers {
        let (record_type, secs) = writer.await.unwrap();
        each.push(format!("{} {secs:.2} s", record_type.name()));
    }
    let secs = started.elapsed().as_secs_f64();
    shutdown.cancel();
    statistics.await.unwrap();
    println!(
        "write path (map + bulk upsert, 3 writers, no HubSpot): 80,000 objects in {secs:.2} s = {:.0} objects/s ({})",
        80_000.0 / secs,
        each.join(", ")
    );
    println!(
        "bench: sync-worker, write path alone (map + bulk upsert, 3 writers) | >= 20,000 objects/s | {:.0} objects/s",
        80_000.0 / secs
    );
}

#[tokio::main]
async fn main() {
    let h = Harness::start().await;
    let portal = h.portal("professional").await;
    let seeding = Instant::now();
    h.seed(&portal, 50_000, 10_000, 20_000).await;
    println!(
        "seeded 50,000 contacts, 10,000 companies, 20,000 deals in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_mb();
    // `SYNC_BENCH_PACE_SLICES` and `SYNC_BENCH_RESERVE_PERCENT` set the sync runs'
    // `hubspot.sync_pace_slices` and `hubspot.sync_reserve_percent` (1 and 10 as deployed).
    let mut settings = h.settings.clone();
    if let Some(slices) = std::env::var("SYNC_BENCH_PACE_SLICES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.hubspot.sync_pace_slices = slices;
    }
    if let Some(percent) = std::env::var("SYNC_BENCH_RESERVE_PERCENT")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .and_then(|v| v.try_into().ok())
    {
        settings.hubspot.sync_reserve_percent = percent;
    }
    println!(
        "hubspot.sync_pace_slices = {}, hubspot.sync_reserve_percent = {}",
        settings.hubspot.sync_pace_slices,
        settings.hubspot.sync_reserve_percent.get()
    );
    let app = h.app_with(&portal, settings).await;
    let connection = h.connect(&portal).await;
    let started = Instant::now();
    // Where the time goes: the portal's requests and what the mirror holds, every 5 s.
    let mut report = Instant::now();
    while latest_state(&app.pool, &connection).await.as_deref() != Some("succeeded") {
        assert!(
            started.elapsed().as_secs() < 600,
            "the full sync did not succeed within 600 s"
        );
        if report.elapsed().as_secs() >= 5 {
            report = Instant::now();
            let requests = h.stats(&portal).await["requests_total"]
                .as_u64()
                .unwrap_or(0);
            let mut conn = app.pool.get().await.unwrap();
            let rows: Vec<MirrorCount> = diesel::sql_query(
                "SELECT 'contacts' AS what, count(*) AS n FROM contacts \
                 UNION ALL SELECT 'companies', count(*) FROM companies \
                 UNION ALL SELECT 'deals', count(*) FROM deals \
                 UNION ALL SELECT 'contact-company', count(*) FROM contact_companies \
                 UNION ALL SELECT 'deal-contact', count(*) FROM deal_contacts \
                 UNION ALL SELECT 'deal-company', count(*) FROM deal_companies",
            )
            .load(&mut conn)
            .await
            .unwrap();
            let counts: Vec<String> = rows.iter().map(|r| format!("{} {}", r.n, r.what)).collect();
            println!(
                "  at {:>5.1} s: {requests} requests; {}",
                started.elapsed().as_secs_f64(),
                counts.join(", ")
            );
        }
        // Polled often enough that the figure is the sync's time, not the poll's.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = h.stats(&portal).await;
    let requests = stats["requests_total"].as_u64().unwrap_or(0);
    let searches = stats["search_requests"].as_u64().unwrap_or(0);
    let refused = stats["by_status"]["429"].as_u64().unwrap_or(0);
    let burst = requests.saturating_sub(searches);
    // HubSpot's burst limit is a rolling window (policy TEN_SECONDLY_ROLLING): no 10 s
    // span may hold more than 190 requests. Cut the run into consecutive 10 s spans from
    // its first request: each holds at most 190, so N requests span at least
    // 10 s x (ceil(N / 190) - 1), and whole windows at t = 0, just after 10 s, ... reach it.
    let floor = 10.0 * burst.div_ceil(190).saturating_sub(1) as f64;
    // What "190 at once, then 19 per second" would give: a token bucket's floor, which
    // the rolling window does not allow (190 at t = 0 and 19 at t = 1 s are 209 in 10 s).
    let bucket = (burst.saturating_sub(190)) as f64 / 19.0;
    println!(
        "full sync (professional, 190/10 s): {secs:.1} s for {burst} API requests (+{searches} searches); \
         floor {floor:.1} s ({secs:.1} s = {:.2}x a token bucket's {bucket:.1} s); {:.2}x the floor; \
         {refused} refused (429); {:.0} objects/s; max in any 10 s window {}",
        secs / bucket.max(0.001),
        secs / floor.max(0.001),
        80_000.0 / secs,
        stats["max_requests_in_any_10s_window"]
    );
    println!(
        "bench: sync-worker, full sync of 80,000 records, professional tier, time / rate-limit floor | <= 1.1 x | {:.2} x ({secs:.1} s, {refused} x 429)",
        secs / floor.max(0.001)
    );
    println!(
        "peak RSS of the process (simulator holding 80,000 records + worker): {:.0} MB (before the sync: {rss_before:.0} MB)",
        peak_rss_mb()
    );
    app.stop().await;
    write_path(&h).await;
}
