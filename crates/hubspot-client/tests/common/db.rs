//! A throwaway PostgreSQL database holding a migrated `hubspot_budget` schema, made with this
//! crate's own dependencies (the client does not depend on `platform`). Used by the tests and
//! the throughput benchmark.

use std::time::Duration;

use anyhow::Context as _;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness as _;
use futures::FutureExt as _;
use hubspot_client::{BUDGET_SCHEMA, BudgetPool, MIGRATIONS};

/// The server test databases are created on; override with `HUBSCORE_TEST_DATABASE_URL`.
fn admin_url() -> String {
    std::env::var("HUBSCORE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists until this value is dropped, with the budget schema migrated.
pub struct BudgetDatabase {
    /// Connection URL of the new database.
    pub url: String,
    name: String,
    admin_url: String,
}

impl BudgetDatabase {
    /// Creates a database with a unique name and applies [`MIGRATIONS`] in [`BUDGET_SCHEMA`].
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = admin_url();
        let name = format!("hubscore_test_client_{:016x}", rand::random::<u64>());
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .context("connecting to the test PostgreSQL server (is it running?)")?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        let database = Self {
            url: format!("{base}/{name}"),
            name,
            admin_url: admin_url.clone(),
        };
        migrate(&database.url).await?;
        Ok(database)
    }

    /// A pool of its own (as a separate process would have) whose connections use the
    /// budget schema.
    pub fn pool(&self) -> anyhow::Result<BudgetPool> {
        let mut config = ManagerConfig::default();
        config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            async move {
                let mut conn = AsyncPgConnection::establish(&url).await?;
                conn.batch_execute(&format!("SET search_path TO {BUDGET_SCHEMA}"))
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            }
            .boxed()
        });
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(&self.url, config);
        Ok(BudgetPool::builder(manager).max_size(5).build()?)
    }
}

/// diesel's migration harness is synchronous and diesel-async's wrapper for it needs a runtime
/// of its own, so it runs on a thread of its own.
async fn migrate(url: &str) -> anyhow::Result<()> {
    let url = url.to_owned();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| -> anyhow::Result<()> {
            let mut conn: AsyncConnectionWrapper<AsyncPgConnection> =
                diesel::Connection::establish(&url)?;
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                &format!(
                    "CREATE SCHEMA IF NOT EXISTS {BUDGET_SCHEMA}; SET search_path TO {BUDGET_SCHEMA}"
                ),
            )?;
            conn.run_pending_migrations(MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("applying the budget migrations: {e}"))?;
            Ok(())
        })();
        let _ = sender.send(result);
    });
    tokio::time::timeout(Duration::from_secs(60), receiver)
        .await
        .context("migrations took over 60 s")?
        .context("the migration thread died")?
}

impl Drop for BudgetDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside or outside a runtime; a thread of its own works in both.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
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
