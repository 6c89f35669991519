//! A task holding a session-level advisory lock learns that its session ended (the lock
//! may then be another replica's), and the test helper that takes such a lock away.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use diesel::sql_types::{BigInt, Bool};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use platform::testing::{TestDatabase, take_over_advisory_lock};

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

async fn try_lock(conn: &mut AsyncPgConnection, key: i64) -> bool {
    diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(key)
        .get_result::<Locked>(conn)
        .await
        .unwrap()
        .locked
}

#[tokio::test]
async fn a_lock_holder_learns_that_its_session_ended_and_the_lock_passed_on() {
    let db = TestDatabase::create().await.unwrap();
    // A key whose high half has the sign bit set, as hashed keys often do.
    let key = -0x1234_5678_9abc_def0_i64;
    let mut holder = AsyncPgConnection::establish(&db.url).await.unwrap();
    assert!(try_lock(&mut holder, key).await);

    let watch = tokio::spawn(async move { platform::db::session_lost(&mut holder).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!watch.is_finished(), "a live session was reported lost");

    let taker = take_over_advisory_lock(&db.url, key).await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .expect("the ended session was not noticed within 5 s")
        .unwrap();
    assert!(
        format!("{lost:#}").contains("the lock session ended"),
        "{lost:#}"
    );
    let mut other = AsyncPgConnection::establish(&db.url).await.unwrap();
    assert!(
        !try_lock(&mut other, key).await,
        "the lock did not pass to the session that queued for it"
    );
    drop(taker);
    assert!(
        platform::testing::eventually(Duration::from_secs(5), || async {
            let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
            try_lock(&mut conn, key).await
        })
        .await,
        "dropping the taker's session did not free the lock"
    );
}
