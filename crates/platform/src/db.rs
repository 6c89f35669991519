//! PostgreSQL access: a diesel-async pool whose connections live in one service's schema,
//! and the `migrate` step that creates that schema and applies the service's migrations.
//!
//! Every connection a service takes from its pool has `search_path` set to the service's
//! own schema, so queries name tables without a schema and cannot wander into another
//! service's tables by accident. Migrations run with the same `search_path`, which also
//! keeps each schema's `__diesel_schema_migrations` bookkeeping table to itself.

use std::time::Duration;

use anyhow::Context as _;
use diesel::ConnectionError;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use futures::FutureExt as _;
use serde::Deserialize;

/// A pool of connections to PostgreSQL, each scoped to one schema.
pub type Pool = DeadPool<AsyncPgConnection>;

/// A connection checked out of a [`Pool`]; it goes back when dropped.
pub type Connection = Object<AsyncPgConnection>;

/// Where the database is and how many connections a service may hold.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://user[:password]@host:port/database`. May carry a password: never log it.
    pub url: String,
    /// Upper bound on open connections held by this process.
    pub max_connections: usize,
    /// How long a caller waits for a free connection before failing.
    pub acquire_timeout_ms: u64,
}

impl DatabaseSettings {
    /// The URL with any password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// Replaces the password part of a `scheme://user:password@host` URL with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Schema names are spliced into SQL, so only plain lower-case identifiers are accepted.
fn checked_schema(schema: &str) -> anyhow::Result<&str> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    anyhow::ensure!(
        valid,
        "invalid schema name {schema:?}: use lower-case letters, digits and _"
    );
    Ok(schema)
}

async fn connect_in_schema(url: &str, schema: &str) -> Result<AsyncPgConnection, ConnectionError> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    conn.batch_execute(&format!("SET search_path TO {schema}"))
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Builds a pool whose connections use `schema`. Connects lazily: a database that is down
/// at start-up shows as not ready instead of stopping the service.
pub fn connect_pool(settings: &DatabaseSettings, schema: &str) -> anyhow::Result<Pool> {
    let schema = checked_schema(schema)?.to_owned();
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(move |url| {
        let schema = schema.clone();
        let url = url.to_owned();
        async move { connect_in_schema(&url, &schema).await }.boxed()
    });
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(&settings.url, config);
    let timeout = Duration::from_millis(settings.acquire_timeout_ms);
    DeadPool::builder(manager)
        .max_size(settings.max_connections)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .with_context(|| format!("building a pool for {}", settings.redacted_url()))
}

#[derive(diesel::QueryableByName)]
struct TableGrowth {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    planned: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    changed: i64,
}

/// Analyzes those of `tables` (in the connection's schema) that changed, since they were
/// last analyzed, by more than a tenth of the rows the planner believes they hold and by
/// at least `min_changes` rows; returns the tables analyzed.
///
/// autovacuum analyzes a table at most once a minute (`autovacuum_naptime`), and not at all
/// where it is turned off. A table that grows from nearly empty to a hundred thousand rows
/// within that minute (a portal's first full sync, a burst of scores) keeps the statistics
/// of its empty state, and PostgreSQL then plans a join against it as if it held a handful
/// of rows: it reads the whole table where an index lookup was meant, hundreds of
/// milliseconds a statement. The same happens to a second portal's rows in a table analyzed
/// while it held one portal: the planner expects none of them. A writer that calls this
/// every few seconds keeps its plans right; the check is one catalogue read, and an ANALYZE
/// samples a bounded number of rows.
pub async fn analyze_outgrown(
    conn: &mut AsyncPgConnection,
    tables: &[&str],
    min_changes: i64,
) -> diesel::QueryResult<Vec<String>> {
    use diesel_async::RunQueryDsl as _;
    let rows: Vec<TableGrowth> = diesel::sql_query(
        "SELECT c.relname::text AS table, GREATEST(c.reltuples, 0)::bigint AS planned, \
           s.n_mod_since_analyze AS changed \
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
         WHERE s.schemaname = current_schema() AND s.relname = ANY($1)",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(tables)
    .load(conn)
    .await?;
    let mut analyzed = Vec::new();
    for row in rows {
        if row.changed < min_changes.max(row.planned / 10) {
            continue;
        }
        // The name comes from the catalogue; quoting keeps it one identifier.
        let quoted = row.table.replace('"', "\"\"");
        conn.batch_execute(&format!("ANALYZE \"{quoted}\"")).await?;
        analyzed.push(row.table);
    }
    Ok(analyzed)
}

/// Runs until `shutdown`: every `every`, analyzes those of `tables` that outgrew their
/// statistics ([`analyze_outgrown`]: a tenth of their rows changed, and at least 1,000). A service whose tables can
/// grow from nearly empty to hundreds of thousands of rows within a minute (a portal's first
/// full sync, a burst of scores) runs this beside its writers.
pub async fn keep_statistics_fresh(
    pool: Pool,
    tables: &'static [&'static str],
    every: Duration,
    shutdown: crate::shutdown::Shutdown,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let Ok(mut conn) = pool.get().await else {
            continue;
        };
        match analyze_outgrown(&mut conn, tables, 1_000).await {
            Ok(analyzed) if !analyzed.is_empty() => {
                tracing::debug!(tables = ?analyzed, "table statistics refreshed");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "checking table statistics failed"),
        }
    }
}

/// How often [`session_lost`] checks a lock session, and how long one check may take.
pub const LOCK_SESSION_CHECK: (Duration, Duration) =
    (Duration::from_millis(250), Duration::from_secs(1));

/// Whether `session` still answers within `timeout`. For a session holding a
/// session-level advisory lock, an answer means the lock is still held: such a lock ends
/// only with its session or an explicit unlock.
pub async fn session_alive(
    session: &mut AsyncPgConnection,
    timeout: Duration,
) -> anyhow::Result<()> {
    tokio::time::timeout(timeout, session.batch_execute("SELECT 1"))
        .await
        .context("the lock session did not answer in time")?
        .context("the lock session ended")
}

/// Resolves, with the reason, once `session` stops answering ([`session_alive`] every
/// [`LOCK_SESSION_CHECK`]). A task that holds a session-level advisory lock races its work
/// against this and stops when it resolves: after a database restart or a cut connection
/// its pool works again while the lock may already be another replica's.
pub async fn session_lost(session: &mut AsyncPgConnection) -> anyhow::Error {
    let (every, timeout) = LOCK_SESSION_CHECK;
    loop {
        tokio::time::sleep(every).await;
        if let Err(error) = session_alive(session, timeout).await {
            return error;
        }
    }
}

/// Checks that a connection can be had and answers a trivial query.
pub async fn ping(pool: &Pool) -> anyhow::Result<()> {
    let mut conn = pool.get().await.context("no database connection")?;
    conn.batch_execute("SELECT 1")
        .await
        .context("database did not answer")?;
    Ok(())
}

/// Creates `schema` if needed and applies every pending migration of each set, in order.
/// Returns the versions applied; an up-to-date schema returns an empty list.
///
/// This is the `migrate` release step, never run on an ordinary start. diesel's migration
/// harness is synchronous, and diesel-async's wrapper for it panics on a current-thread
/// runtime, so the work runs on a thread of its own (with its own small runtime): callable
/// from any runtime, tests included.
pub async fn run_migrations(
    url: &str,
    schema: &str,
    sets: impl IntoIterator<Item = EmbeddedMigrations>,
) -> anyhow::Result<Vec<String>> {
    let schema = checked_schema(schema)?.to_owned();
    let url = url.to_owned();
    let sets: Vec<EmbeddedMigrations> = sets.into_iter().collect();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("migrate-{schema}"))
        .spawn(move || {
            let _ = sender.send(migrate_blocking(&url, &schema, sets));
        })
        .context("starting the migration thread")?;
    receiver.await.context("the migration thread died")?
}

fn migrate_blocking(
    url: &str,
    schema: &str,
    sets: Vec<EmbeddedMigrations>,
) -> anyhow::Result<Vec<String>> {
    // Outside any runtime, the wrapper builds its own current-thread runtime.
    let mut conn: AsyncConnectionWrapper<AsyncPgConnection> = diesel::Connection::establish(url)
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
    // Two releases (or two services sharing a schema such as `hubspot_budget`) may migrate
    // at once; the session lock makes the second wait and then find nothing pending.
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        &format!(
            "SELECT pg_advisory_lock(hashtext('hubscore.migrate.{schema}')); \
             CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
        ),
    )
    .with_context(|| format!("creating schema {schema}"))?;
    let mut applied = Vec::new();
    for set in sets {
        let versions = conn
            .run_pending_migrations(set)
            .map_err(|e| anyhow::anyhow!("applying migrations in schema {schema}: {e}"))?;
        applied.extend(versions.into_iter().map(|v| v.to_string()));
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn schema_names_that_could_inject_sql_are_refused() {
        assert!(checked_schema("sync").is_ok());
        assert!(checked_schema("sync; DROP TABLE x").is_err());
        assert!(checked_schema("Sync").is_err());
        assert!(checked_schema("").is_err());
    }
}
