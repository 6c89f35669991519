//! Scale-out: two replicas consuming one queue side by side end with exactly the scores
//! one replica computes from the same messages.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use chrono::Duration;
use common::{Shared, TestApp, WAIT, company, contact, deal, t0, test_app, ts};
use contracts::v1::{CrmChanged, DealStatus, ObjectType};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Double, Int2, Nullable};
use diesel_async::RunQueryDsl;

/// A small deterministic generator, so both deployments get the same messages.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        i64::try_from((self.0 >> 33) % below).unwrap()
    }
}

const STAGES: [&str; 5] = [
    "subscriber",
    "lead",
    "opportunity",
    "customer",
    "evangelist",
];

fn contact_version(id: i64, version: i64) -> contracts::v1::Customer {
    let mut c = contact(id, t0() - Duration::hours(20 - version));
    c.lifecycle_stage = Some(STAGES[usize::try_from(version % 5).unwrap()].into());
    c.last_activity_at = ts(t0() - Duration::days(version * 3));
    c.company_ids = vec![200 + id % 5];
    c.primary_company_id = Some(200 + id % 5);
    c
}

fn deal_version(id: i64, version: i64) -> contracts::v1::Deal {
    let mut d = deal(
        id,
        &[id % 30 + 1, (id * 7) % 30 + 1],
        t0() - Duration::hours(20 - version),
    );
    d.amount_cents = Some(10_000 * id);
    d.close_probability = Some(f64::from(u32::try_from(version).unwrap()) / 10.0);
    d.set_status(match version % 3 {
        0 => DealStatus::Open,
        1 => DealStatus::Won,
        _ => DealStatus::Lost,
    });
    d.company_ids = vec![200 + id % 5];
    d
}

fn messages(app: &TestApp) -> Vec<CrmChanged> {
    let mut rng = Lcg(42);
    // First every deal once, so the org means are taken from all of them.
    let mut seed = app.changed(ObjectType::Deal);
    seed.deals = (100..116).map(|id| deal_version(id, 0)).collect();
    let mut all = vec![seed];
    for _ in 0..30 {
        let kind = rng.next(3);
        let message = match kind {
            0 => {
                let mut m = app.changed(ObjectType::Contact);
                m.customers = (0..5)
                    .map(|_| contact_version(rng.next(30) + 1, rng.next(10) + 1))
                    .collect();
                m
            }
            1 => {
                let mut m = app.changed(ObjectType::Deal);
                m.deals = (0..3)
                    .map(|_| deal_version(100 + rng.next(16), rng.next(10) + 1))
                    .collect();
                m
            }
            _ => {
                let mut m = app.changed(ObjectType::Company);
                m.companies = (0..2)
                    .map(|_| {
                        let id = 200 + rng.next(5);
                        let version = rng.next(10) + 1;
                        let mut c = company(id, t0() - Duration::hours(20 - version));
                        c.last_activity_at = ts(t0() - Duration::days(version));
                        c
                    })
                    .collect();
                m
            }
        };
        all.push(message);
    }
    all
}

#[derive(Debug, PartialEq, QueryableByName)]
struct Stored {
    #[diesel(sql_type = Int2)]
    object_type: i16,
    #[diesel(sql_type = BigInt)]
    object_id: i64,
    #[diesel(sql_type = Nullable<Int2>)]
    score: Option<i16>,
    #[diesel(sql_type = Int2)]
    risk_level: i16,
    #[diesel(sql_type = Array<Double>)]
    contributions: Vec<f64>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn processed(pool: &platform::db::Pool) -> i64 {
    let mut conn = pool.get().await.unwrap();
    diesel::sql_query("SELECT count(*) AS n FROM processed_messages")
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n
}

async fn final_scores(pool: &platform::db::Pool) -> Vec<Stored> {
    let mut conn = pool.get().await.unwrap();
    diesel::sql_query(
        "SELECT object_type, object_id, score, risk_level, contributions FROM scores \
         ORDER BY object_type, object_id",
    )
    .load(&mut conn)
    .await
    .unwrap()
}

async fn run(app: &TestApp) -> Vec<Stored> {
    let all = messages(app);
    let (seed, rest) = all.split_first().unwrap();
    app.publish(seed).await;
    assert!(
        platform::testing::eventually(WAIT, || async { processed(&app.app.pool).await == 1 }).await
    );
    for message in rest {
        app.publish(message).await;
    }
    let expected = i64::try_from(all.len()).unwrap();
    assert!(
        platform::testing::eventually(WAIT, || async {
            processed(&app.app.pool).await == expected
        })
        .await,
        "not every message was handled"
    );
    final_scores(&app.app.pool).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_side_by_side_give_the_same_final_scores_as_one() {
    let single = Shared::new().await;
    let replica = single.spawn().await;
    let one = test_app(single, replica).await;

    let pair = Shared::new().await;
    let first = pair.spawn().await;
    let second = pair.spawn().await;
    let mut two = test_app(pair, first).await;
    two.org = one.org;
    two.connection = one.connection;

    let by_one = run(&one).await;
    let by_two = run(&two).await;
    assert!(by_one.len() > 20, "{by_one:?}");
    assert_eq!(by_one, by_two);
    // Every history row of the pair is a real change, and the last one is the score.
    let mut conn = two.app.pool.get().await.unwrap();
    #[derive(QueryableByName)]
    struct Bad {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let bad: Bad = diesel::sql_query(
        "SELECT count(*) AS n FROM scores s CROSS JOIN LATERAL ( \
            SELECT h.score, h.risk_level FROM score_history h WHERE h.score_id = s.score_id \
            ORDER BY h.computed_at DESC, h.id DESC LIMIT 1) last \
         WHERE (s.score, s.risk_level) IS DISTINCT FROM (last.score, last.risk_level)",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(bad.n, 0, "a stored score is not its latest history row");
    second.stop().await;
}
