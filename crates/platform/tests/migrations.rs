//! The `migrate` release step against a real PostgreSQL.

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use platform::db;
use platform::testing::TestDatabase;

/// A release's migrations, and the next release's (one more, slow migration).
const RELEASE_1: EmbeddedMigrations = embed_migrations!("tests/fixtures/v1");
const RELEASE_2: EmbeddedMigrations = embed_migrations!("tests/fixtures/v2");

#[tokio::test]
async fn concurrent_migrations_of_one_schema_all_succeed_and_apply_each_migration_once() {
    let database = TestDatabase::create().await.unwrap();
    let first = db::run_migrations(&database.url, "shared", [RELEASE_1])
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // Several replicas' release steps (or several services sharing a schema) at once.
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let url = database.url.clone();
            tokio::spawn(async move { db::run_migrations(&url, "shared", [RELEASE_2]).await })
        })
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.unwrap().unwrap());
    }
    assert_eq!(
        applied.len(),
        1,
        "the new migration applied exactly once: {applied:?}"
    );
    let again = db::run_migrations(&database.url, "shared", [RELEASE_2])
        .await
        .unwrap();
    assert!(again.is_empty(), "a later migrate is a no-op: {again:?}");
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_fails_migrate_without_printing_its_password() {
    let error = db::run_migrations(
        "postgres://app:hunter2@127.0.0.1:1/none",
        "sync",
        [RELEASE_1],
    )
    .await
    .unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("connecting to postgres://app:***@127.0.0.1:1/none"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}
