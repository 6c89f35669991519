//! Time moves scores: recency and activity windows decay with no event at all, so every
//! org is rescored on a schedule (`scoring.rescore_interval_secs`, daily by default).
//! Replicas share the work: each due org is claimed by one replica (a row lock, then its
//! next due time moves), and events go out only for scores that changed.

use std::time::Duration;

use chrono::Duration as ChronoDuration;
use diesel_async::AsyncConnection;
use platform::amqp::MessageMeta;
use platform::shutdown::Shutdown;

use crate::db::{configs, projection};
use crate::engine;
use crate::state::AppState;

/// Runs until `shutdown`: claims due orgs and rescores them.
pub async fn run(state: AppState, shutdown: Shutdown) -> anyhow::Result<()> {
    let poll = Duration::from_millis(state.settings.schedule_poll_ms.max(10));
    loop {
        if let Err(error) = rescore_due(&state).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "scheduled rescore failed; will retry"
            );
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// Pays the org's owed rescore (see [`engine::pay_owed_rescore`]), then wakes the relay
/// and counts it; `None` if another holds it or it failed (logged; still owed).
pub async fn pay_owed_rescore(
    state: AppState,
    org_id: uuid::Uuid,
    trigger: &'static str,
) -> Option<engine::WriteSummary> {
    let trace = MessageMeta::start_trace(Some(org_id));
    let paid = engine::pay_owed_rescore(
        &state.pool,
        org_id,
        state.clock.now(),
        state.settings.batch_size,
        &trace.correlation_id,
    )
    .await;
    match paid {
        Ok(Some(summary)) => {
            state.relay_waker.wake();
            state.metrics.record(trigger, summary);
            tracing::info!(%org_id, scored = summary.scored, changed = summary.changed, "org rescored under its new config");
            Some(summary)
        }
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%org_id, error = %error, "config rescore failed; it stays owed and the scheduler retries it");
            None
        }
    }
}

/// Pays every owed config rescore no one is paying (a replica died mid-way), then
/// rescores every org due now; returns how many orgs were rescored.
pub async fn rescore_due(state: &AppState) -> anyhow::Result<usize> {
    let owed = {
        let mut conn = state.pool.get().await?;
        configs::orgs_owed_rescore(&mut conn).await?
    };
    let mut paid = 0;
    for org_id in owed {
        if pay_owed_rescore(state.clone(), org_id, "config_change")
            .await
            .is_some()
        {
            paid += 1;
        }
    }
    Ok(paid + rescore_scheduled(state).await?)
}

/// Rescores every org due now on the schedule; returns how many.
async fn rescore_scheduled(state: &AppState) -> anyhow::Result<usize> {
    let interval = ChronoDuration::seconds(
        i64::try_from(state.settings.rescore_interval_secs).unwrap_or(i64::MAX / 2),
    );
    let mut done = 0;
    loop {
        let now = state.clock.now();
        let mut conn = state.pool.get().await?;
        let claimed = conn
            .transaction(async |conn| configs::claim_due_org(conn, now, now + interval).await)
            .await?;
        let Some(org_id) = claimed else {
            return Ok(done);
        };
        projection::prune_activity(&mut conn, org_id, now).await?;
        drop(conn);
        let trace = MessageMeta::start_trace(Some(org_id));
        let summary = engine::rescore_org(
            &state.pool,
            org_id,
            now,
            state.settings.batch_size,
            &trace.correlation_id,
            engine::InputSource::Projection,
        )
        .await?;
        if summary.changed > 0 {
            state.relay_waker.wake();
        }
        state.metrics.record("scheduled", summary);
        tracing::info!(%org_id, scored = summary.scored, changed = summary.changed, "scheduled rescore");
        done += 1;
    }
}
