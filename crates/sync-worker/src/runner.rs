//! The runner: finds queued runs (and runs orphaned by a dead replica), takes each
//! connection's PostgreSQL advisory lock on a dedicated connection, and executes the run.
//! The lock is a session lock: if the process dies, its connection closes and another
//! replica takes the run over from its checkpoints. A run whose lock session ends while its
//! process lives on (a database restart, a cut connection) stops within about a second, as
//! a killed one would, so that two replicas never run it at once. It also queues the scheduled
//! reconciliation runs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Bool};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use platform::shutdown::Shutdown;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::context::Context;
use crate::db::connections;
use crate::db::runs::{self, NewRun, Run, Scope};
use crate::sync::{self, RunError};

/// The advisory lock key of a connection's sync (the first 8 bytes of its id, with a
/// fixed tag folded in so other users of advisory locks do not collide).
pub fn lock_key(connection_id: Uuid) -> i64 {
    let bytes = connection_id.as_bytes();
    let mut key = [0u8; 8];
    key.copy_from_slice(&bytes[..8]);
    i64::from_be_bytes(key) ^ 0x5359_4e43_5759_4b52
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Tries to take `connection_id`'s lock on a new dedicated connection, which is held for
/// as long as the run lasts.
async fn try_lock(ctx: &Context, connection_id: Uuid) -> anyhow::Result<Option<AsyncPgConnection>> {
    let mut conn = AsyncPgConnection::establish(&ctx.database_url).await?;
    let locked: Locked = sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(lock_key(connection_id))
        .get_result(&mut conn)
        .await?;
    Ok(locked.locked.then_some(conn))
}

/// Runs, for a back-off after failures: when each connection may be tried again.
#[derive(Default)]
struct Backoff {
    until: HashMap<Uuid, (Instant, u32)>,
}

impl Backoff {
    fn ready(&self, connection_id: Uuid) -> bool {
        self.until
            .get(&connection_id)
            .is_none_or(|(until, _)| Instant::now() >= *until)
    }

    fn failed(&mut self, connection_id: Uuid) {
        let attempts = self.until.get(&connection_id).map_or(0, |(_, a)| *a) + 1;
        let delay = Duration::from_millis(250u64.saturating_mul(1 << attempts.min(8)));
        self.until
            .insert(connection_id, (Instant::now() + delay, attempts));
    }

    fn succeeded(&mut self, connection_id: Uuid) {
        self.until.remove(&connection_id);
    }
}

/// Runs until `shutdown`; in-flight runs stop at their next checkpoint.
pub async fn run(ctx: Arc<Context>, shutdown: Shutdown) -> anyhow::Result<()> {
    let busy: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let backoff: Arc<Mutex<Backoff>> = Arc::default();
    let mut tasks = JoinSet::new();
    let poll = Duration::from_millis(ctx.settings.poll_interval_ms.max(10));
    let mut last_schedule = Instant::now()
        .checked_sub(Duration::from_secs(3600))
        .unwrap_or_else(Instant::now);
    loop {
        while tasks.try_join_next().is_some() {}
        if last_schedule.elapsed() >= Duration::from_secs(30) {
            last_schedule = Instant::now();
            if let Err(error) = schedule_reconciliations(&ctx).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "scheduling reconciliations failed"
                );
            }
        }
        match next_runs(&ctx).await {
            Ok(open) => {
                for run in open {
                    let running = lock(&busy).len();
                    if running >= ctx.settings.max_concurrent_runs {
                        break;
                    }
                    if lock(&busy).contains(&run.connection_id)
                        || !lock(&backoff).ready(run.connection_id)
                    {
                        continue;
                    }
                    let held = match try_lock(&ctx, run.connection_id).await {
                        Ok(Some(held)) => held,
                        Ok(None) => continue,
                        Err(error) => {
                            tracing::warn!(error = format!("{error:#}"), "advisory lock failed");
                            continue;
                        }
                    };
                    lock(&busy).insert(run.connection_id);
                    let (ctx, busy, backoff, shutdown) =
                        (ctx.clone(), busy.clone(), backoff.clone(), shutdown.clone());
                    tasks.spawn(async move {
                        let connection_id = run.connection_id;
                        let mut held = held;
                        // After a database restart or a cut connection the pool works
                        // again while the lock may be another replica's: the run stops
                        // (as a killed one would) and resumes from its checkpoint.
                        // A panicking run ends like a failed one (backoff, lock given back,
                        // connection no longer busy), not with the connection busy for good.
                        let ok = tokio::select! {
                            ok = platform::panics::caught(execute(&ctx, &run, &shutdown)) => {
                                ok.unwrap_or_else(|panic| {
                                    tracing::error!(sync.run_id = %run.id, panic, "sync run panicked; it resumes from its checkpoint");
                                    false
                                })
                            }
                            lost = platform::db::session_lost(&mut held) => {
                                tracing::warn!(sync.run_id = %run.id, error = format!("{lost:#}"),
                                    "lost the connection's sync lock; the run stops and resumes from its checkpoint");
                                false
                            }
                        };
                        let _ = sql_query("SELECT pg_advisory_unlock_all()")
                            .execute(&mut held)
                            .await;
                        drop(held);
                        if ok {
                            lock(&backoff).succeeded(connection_id);
                        } else {
                            lock(&backoff).failed(connection_id);
                        }
                        lock(&busy).remove(&connection_id);
                        ctx.runner_wake.notify_one();
                    });
                }
            }
            Err(error) => tracing::warn!(error = format!("{error:#}"), "listing sync runs failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = ctx.runner_wake.notified() => {},
            () = tokio::time::sleep(poll) => {},
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn next_runs(ctx: &Context) -> anyhow::Result<Vec<Run>> {
    let mut conn = ctx.pool.get().await?;
    let open = runs::open(&mut conn).await?;
    // One run per connection at a time, oldest first.
    let mut seen = HashSet::new();
    Ok(open
        .into_iter()
        .filter(|r| seen.insert(r.connection_id))
        .collect())
}

/// Executes one run and settles it; true when it ended (not left for a retry).
async fn execute(ctx: &Context, run: &Run, shutdown: &Shutdown) -> bool {
    let span = tracing::info_span!("sync_run", sync.run_id = %run.id, correlation_id = %run.correlation_id,
        hubspot.portal_id = run.portal_id, sync.mode = %run.mode);
    let _entered = span.enter();
    tracing::info!("sync run started");
    let started = Instant::now();
    let result = sync::execute(ctx, run, shutdown).await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(()) => {
            tracing::info!(duration_ms, "sync run succeeded");
            true
        }
        Err(RunError::Interrupted) => {
            tracing::info!(
                duration_ms,
                "sync run interrupted; it resumes from its checkpoint"
            );
            false
        }
        Err(RunError::Cancelled) => {
            tracing::info!(duration_ms, "sync run cancelled");
            true
        }
        Err(error) if error.is_retryable() => {
            let message = error.to_string();
            tracing::warn!(error = %message, "sync run paused; it resumes from its checkpoint");
            if let Ok(mut conn) = ctx.pool.get().await {
                let _ = runs::note_error(&mut conn, run.id, &message).await;
            }
            false
        }
        Err(error) => {
            let message = error.to_string();
            tracing::error!(error = %message, "sync run failed");
            let failed = async {
                let mut conn = ctx.pool.get().await.map_err(|e| e.to_string())?;
                conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
                    sync::complete(conn, run, "failed", Some(&message)).await
                })
                .await
                .map_err(|e| e.to_string())
            };
            if let Err(error) = failed.await {
                tracing::error!(%error, "recording the failed run failed");
                return false;
            }
            ctx.relay.wake();
            ctx.metrics
                .runs_finished
                .with_label_values(&[run.mode.as_str(), "failed"])
                .inc();
            true
        }
    }
}

/// Queues a reconciliation run for each active connection that is due and has no open run.
async fn schedule_reconciliations(ctx: &Context) -> anyhow::Result<()> {
    let interval = ctx.settings.reconcile_interval_secs;
    if interval == 0 {
        return Ok(());
    }
    let before =
        chrono::Utc::now() - chrono::Duration::seconds(i64::try_from(interval).unwrap_or(i64::MAX));
    let mut conn = ctx.pool.get().await?;
    let due = connections::due_for_reconciliation(&mut conn, before).await?;
    let open = runs::open(&mut conn).await?;
    for connection in due {
        if open
            .iter()
            .any(|r| r.connection_id == connection.connection_id)
        {
            continue;
        }
        // A connection never synced gets its full run from connection.established.
        let id = sync::new_run_id();
        runs::create(
            &mut conn,
            &NewRun {
                id,
                org_id: connection.org_id,
                connection_id: connection.connection_id,
                portal_id: connection.portal_id,
                mode: "reconciliation".to_owned(),
                scope: Scope::Full,
                reason: "schedule".to_owned(),
                requested_at: chrono::Utc::now(),
                correlation_id: id.to_string(),
            },
        )
        .await?;
    }
    Ok(())
}
