//! Retention: the writeback log (a row per batch request) and sent timeline events are
//! deleted once older than `writeback.retention_days`, by a sweep each replica runs at start
//! and hourly. Two replicas sweeping at once delete each row once. Pending and failed
//! events stay (they are work and the status's failure reasons); the status's count of
//! sent events stays cumulative.

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use platform::db::Pool;
use platform::shutdown::Shutdown;

/// How often a replica sweeps.
const EVERY: Duration = Duration::from_secs(3600);

/// What one sweep deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Writeback log rows.
    pub log_rows: i64,
    /// Sent timeline events.
    pub events: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Deletes what is older than `days` days.
pub async fn sweep(conn: &mut AsyncPgConnection, days: u32) -> diesel::QueryResult<Swept> {
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    let log_rows = sql_query(
        "DELETE FROM writeback_log WHERE finished_at < now() - make_interval(days => $1)",
    )
    .bind::<Integer, _>(days)
    .execute(conn)
    .await?;
    // Counted into the connection's stats in the statement that deletes them.
    let events: Vec<Count> = sql_query(
        "WITH gone AS (DELETE FROM timeline_events \
             WHERE state = 'sent' AND sent_at < now() - make_interval(days => $1) \
             RETURNING connection_id), \
           counted AS (SELECT connection_id, count(*) AS n FROM gone GROUP BY connection_id), \
           kept AS (INSERT INTO writeback_stats (connection_id, timeline_sent_pruned) \
             SELECT connection_id, n FROM counted \
             ON CONFLICT (connection_id) DO UPDATE SET \
               timeline_sent_pruned = writeback_stats.timeline_sent_pruned \
                 + EXCLUDED.timeline_sent_pruned) \
         SELECT COALESCE(sum(n), 0)::bigint AS n FROM counted",
    )
    .bind::<Integer, _>(days)
    .load(conn)
    .await?;
    Ok(Swept {
        log_rows: i64::try_from(log_rows).unwrap_or(i64::MAX),
        events: events.into_iter().next().map_or(0, |c| c.n),
    })
}

/// Sweeps at start and every hour until `shutdown`.
pub async fn run(pool: Pool, days: u32, shutdown: Shutdown) {
    loop {
        match pool.get().await {
            Ok(mut conn) => match sweep(&mut conn, days).await {
                Ok(swept) if swept.log_rows > 0 || swept.events > 0 => {
                    tracing::info!(
                        log_rows = swept.log_rows,
                        events = swept.events,
                        days,
                        "retention sweep"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "retention sweep failed"),
            },
            Err(error) => tracing::warn!(%error, "retention sweep: no database connection"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
