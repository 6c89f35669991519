//! Test support for every crate's integration tests: a throwaway PostgreSQL database per
//! test, and unique names for AMQP exchanges and queues so tests never share broker state.

use anyhow::Context as _;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::db::DatabaseSettings;

/// The server tests create their databases on; override with `HUBSCORE_TEST_DATABASE_URL`.
pub fn admin_database_url() -> String {
    std::env::var("HUBSCORE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The broker tests use; override with `HUBSCORE_TEST_AMQP_URL`.
pub fn amqp_url() -> String {
    std::env::var("HUBSCORE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// `prefix` followed by a random suffix, safe as a database, exchange or queue name.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A database that exists for one test and is dropped when this value is.
pub struct TestDatabase {
    /// Connection URL of the new database.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates an empty database with a unique name.
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = admin_database_url();
        let name = unique_name("hubscore_test");
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .context("connecting to the test PostgreSQL server (is it running? see scripts/services)")?;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin_url);
        Ok(Self { url: format!("{base}/{name}"), name, admin_url })
    }

    /// Pool settings pointing at this database.
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings { url: self.url.clone(), max_connections: 5, acquire_timeout_ms: 5000 }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside or outside a runtime; a thread of its own works in both.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = dropper.join();
    }
}

// Broker helpers (unique settings, cleanup, a cuttable TCP proxy) live next to the AMQP code.
pub use crate::amqp::testing::{BrokerCleanup, TcpProxy, amqp_settings, eventually};
