//! The shared budget's rules, exercised on a real PostgreSQL database.

#![expect(clippy::unwrap_used, reason = "test set-up fails loudly")]

use std::time::Duration;

#[path = "common/db.rs"]
mod db;

use db::BudgetDatabase;
use hubspot_client::{BudgetKind, LeaseOutcome, LeaseRequest, PgBudgetStore};

async fn store() -> (BudgetDatabase, PgBudgetStore) {
    let db = BudgetDatabase::create().await.unwrap();
    let pool = db.pool().unwrap();
    (db, PgBudgetStore::new(pool))
}

fn request(limit: u32, want: u32) -> LeaseRequest {
    LeaseRequest {
        portal_id: 42,
        kind: BudgetKind::Burst,
        limit,
        window_ms: 2_000,
        want,
        give_back: None,
        observation: None,
        daily_limit: None,
        daily_remaining: None,
        utc_offset_minutes: 0,
        pace_slices: 1,
        reserve: 0,
    }
}

fn granted(outcome: &LeaseOutcome) -> (u32, i64) {
    match outcome {
        LeaseOutcome::Granted { tokens, grant_id } => (*tokens, *grant_id),
        other => panic!("expected a grant, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_stop_at_the_limit_and_say_when_tokens_free_up() {
    let (_db, store) = store().await;
    let mut total = 0;
    loop {
        match store.lease(&request(10, 4)).await.unwrap() {
            LeaseOutcome::Granted { tokens, .. } => total += tokens,
            LeaseOutcome::Wait(wait) => {
                assert!(
                    wait > Duration::ZERO && wait <= Duration::from_millis(2_000),
                    "{wait:?}"
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(total, 10);
    // Another portal is not affected.
    let other_portal = LeaseRequest {
        portal_id: 43,
        ..request(10, 4)
    };
    assert_eq!(granted(&store.lease(&other_portal).await.unwrap()).0, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unspent_tokens_given_back_can_be_leased_again() {
    let (_db, store) = store().await;
    let (tokens, grant_id) = granted(&store.lease(&request(4, 4)).await.unwrap());
    assert_eq!(tokens, 4);
    assert!(matches!(
        store.lease(&request(4, 4)).await.unwrap(),
        LeaseOutcome::Wait(_)
    ));
    let with_give_back = LeaseRequest {
        give_back: Some((grant_id, 3)),
        ..request(4, 4)
    };
    assert_eq!(granted(&store.lease(&with_give_back).await.unwrap()).0, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_portal_for_every_process() {
    let (_db, store) = store().await;
    store
        .slow_down(
            42,
            BudgetKind::Burst,
            10,
            Duration::from_millis(1_500),
            0.8,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    match store.lease(&request(10, 4)).await.unwrap() {
        LeaseOutcome::Wait(wait) => assert!(wait > Duration::from_millis(1_000), "{wait:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_hubspot_reports_beyond_our_grants_lowers_the_limit_for_the_window() {
    let (_db, store) = store().await;
    assert_eq!(granted(&store.lease(&request(10, 2)).await.unwrap()).0, 2);
    // HubSpot counted 8 of 10 used while we granted 2: someone else spends 6.
    let observed = LeaseRequest {
        observation: Some((10, 2, 2_000, 1)),
        ..request(10, 10)
    };
    assert_eq!(
        granted(&store.lease(&observed).await.unwrap()).0,
        2,
        "limit 10 - 6 foreign - 2 ours"
    );
    assert!(matches!(
        store.lease(&request(10, 1)).await.unwrap(),
        LeaseOutcome::Wait(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_quota_exhaustion_is_reported_with_the_reset_time() {
    let (_db, store) = store().await;
    let daily = LeaseRequest {
        daily_limit: Some(5),
        ..request(100, 4)
    };
    let mut total = 0;
    loop {
        match store.lease(&daily).await.unwrap() {
            LeaseOutcome::Granted { tokens, .. } => total += tokens,
            LeaseOutcome::DailyExhausted(until) => {
                assert!(until > chrono::Utc::now());
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(total, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_leases_spread_the_limit_evenly_over_the_window() {
    let (_db, store) = store().await;
    // 10 per 2 s in 10 slices: at most 1 per 200 ms.
    let paced = LeaseRequest {
        pace_slices: 10,
        ..request(10, 4)
    };
    assert_eq!(granted(&store.lease(&paced).await.unwrap()).0, 1);
    match store.lease(&paced).await.unwrap() {
        LeaseOutcome::Wait(wait) => assert!(wait <= Duration::from_millis(200), "{wait:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_with_a_reserve_leaves_it_to_callers_without_one() {
    let (_db, store) = store().await;
    let bulk = LeaseRequest {
        reserve: 3,
        ..request(10, 4)
    };
    let mut total = 0;
    loop {
        match store.lease(&bulk).await.unwrap() {
            LeaseOutcome::Granted { tokens, .. } => total += tokens,
            LeaseOutcome::Wait(wait) => {
                assert!(wait <= Duration::from_millis(2_000), "{wait:?}");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(total, 7, "the bulk caller stops three short of the limit");
    // A caller without a reserve gets the three at once, and nothing beyond the limit.
    assert_eq!(granted(&store.lease(&request(10, 4)).await.unwrap()).0, 3);
    assert!(matches!(
        store.lease(&request(10, 1)).await.unwrap(),
        LeaseOutcome::Wait(_)
    ));
}
