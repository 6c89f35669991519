//! `db::analyze_outgrown` against a real PostgreSQL: a table that outgrew the statistics
//! taken while it was nearly empty is analyzed; one that did not is left alone.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use platform::db;
use platform::testing::TestDatabase;

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    planned: i64,
    #[diesel(sql_type = BigInt)]
    changed: i64,
}

async fn counts(conn: &mut AsyncPgConnection, table: &str) -> Counts {
    diesel::sql_query(
        "SELECT GREATEST(c.reltuples, 0)::bigint AS planned, s.n_mod_since_analyze AS changed \
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
         WHERE s.schemaname = current_schema() AND s.relname = $1",
    )
    .bind::<Text, _>(table)
    .get_result(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_table_that_outgrew_its_statistics_is_analyzed_and_a_settled_one_is_not() {
    let database = TestDatabase::create().await.unwrap();
    let pool = db::connect_pool(&database.settings(), "public").unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.batch_execute(
        // autovacuum stays away, so what the test sees is the function's doing.
        "CREATE TABLE scores (id bigint PRIMARY KEY, value int NOT NULL) \
           WITH (autovacuum_enabled = false); \
         CREATE TABLE quiet (id bigint PRIMARY KEY) WITH (autovacuum_enabled = false); \
         INSERT INTO scores SELECT g, 1 FROM generate_series(1, 10) g; \
         INSERT INTO quiet SELECT g FROM generate_series(1, 10) g; \
         ANALYZE scores; ANALYZE quiet;",
    )
    .await
    .unwrap();
    // A burst: the table grows ten-thousandfold within seconds, far inside autovacuum's
    // one-minute nap; `quiet` gets a few rows, well within its statistics.
    conn.batch_execute(
        "INSERT INTO scores SELECT g, 2 FROM generate_series(11, 100010) g; \
         INSERT INTO quiet SELECT g FROM generate_series(11, 14) g;",
    )
    .await
    .unwrap();
    drop(conn);
    // The server counts changes once the writing session reports them (within seconds).
    let mut conn = pool.get().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while counts(&mut conn, "scores").await.changed < 100_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "PostgreSQL never counted the inserts"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(counts(&mut conn, "scores").await.planned < 100);

    let analyzed = db::analyze_outgrown(&mut conn, &["scores", "quiet", "absent"], 1_000)
        .await
        .unwrap();
    assert_eq!(analyzed, ["scores"]);
    let after = counts(&mut conn, "scores").await;
    assert!(
        after.planned > 90_000,
        "the planner still believes {} rows",
        after.planned
    );
    assert_eq!(counts(&mut conn, "quiet").await.planned, 10);
    let again = db::analyze_outgrown(&mut conn, &["scores", "quiet"], 1_000)
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "analyzed again without a change: {again:?}"
    );

    // Grown by less than a tenth: left alone; past a tenth: analyzed again.
    conn.batch_execute("INSERT INTO scores SELECT g, 3 FROM generate_series(100011, 105010) g")
        .await
        .unwrap();
    wait_counted(&mut conn, 5_000).await;
    let small = db::analyze_outgrown(&mut conn, &["scores"], 1_000)
        .await
        .unwrap();
    assert!(small.is_empty(), "analyzed after 5 % more rows: {small:?}");
    conn.batch_execute("INSERT INTO scores SELECT g, 4 FROM generate_series(105011, 111010) g")
        .await
        .unwrap();
    wait_counted(&mut conn, 11_000).await;
    let tenth = db::analyze_outgrown(&mut conn, &["scores"], 1_000)
        .await
        .unwrap();
    assert_eq!(tenth, ["scores"]);
}

/// Waits until the server counted `n` changes to `scores` since its last analysis.
async fn wait_counted(conn: &mut AsyncPgConnection, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while counts(conn, "scores").await.changed < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "PostgreSQL never counted the inserts"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
