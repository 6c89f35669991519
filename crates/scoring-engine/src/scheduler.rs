//! Time moves scores: recency and activity windows decay with no event at all, so every
//! org is rescored on a schedule (`scoring.rescore_interval_secs`, daily by default).
//! Replicas share the work: an org is rescored under its rescore lock (a transaction-level
//! advisory lock held for the whole rescore; the others skip the org), and only a finished
//! rescore moves its next due time, so a replica that dies mid-way leaves the org due for
//! the next pass of any replica. Events go out only for scores that changed. A config
//! change's rescore still owed (its replica died) is paid first, under the same lock.

use std::time::Duration;

use platform::amqp::MessageMeta;
use platform::shutdown::Shutdown;

use crate::db::configs;
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

/// Pays the org's owed rescore (see [`engine::pay_owed_rescore`]); `None` if another
/// holds it or it failed (logged; still owed).
async fn pay_owed_rescore(state: &AppState, org_id: uuid::Uuid) -> Option<engine::WriteSummary> {
    let trace = MessageMeta::start_trace(Some(org_id));
    let paid = engine::pay_owed_rescore(
        state.rescorer(&trace.correlation_id),
        org_id,
        state.clock.now(),
    )
    .await;
    config_rescored(state, org_id, paid)
}

/// Saves a new config version and pays its rescore (see
/// [`engine::save_config_and_pay`]); `Ok(None)` if another task or replica holds the
/// org's rescore (it pays this version too) or the rescore failed (logged; the version
/// stays owed and the scheduler retries it). An error means nothing was saved.
pub async fn save_config_and_pay(
    state: AppState,
    org_id: uuid::Uuid,
    mut save: engine::ConfigSave,
) -> Result<Option<engine::WriteSummary>, engine::RescoreError> {
    let trace = MessageMeta::start_trace(Some(org_id));
    let paid = engine::save_config_and_pay(
        state.rescorer(&trace.correlation_id),
        org_id,
        &mut save,
        state.clock.now(),
    )
    .await;
    match paid {
        Err(error) if save.saved.is_some() => Err(error),
        paid => Ok(config_rescored(&state, org_id, paid)),
    }
}

/// Counts a config change's rescore; logs one that failed. (The rescore woke the relay
/// after each batch it committed.)
fn config_rescored(
    state: &AppState,
    org_id: uuid::Uuid,
    paid: Result<Option<engine::WriteSummary>, engine::RescoreError>,
) -> Option<engine::WriteSummary> {
    match paid {
        Ok(Some(summary)) => {
            state.metrics.record("config_change", summary);
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
        if pay_owed_rescore(state, org_id).await.is_some() {
            paid += 1;
        }
    }
    Ok(paid + rescore_scheduled(state).await?)
}

/// Rescores every org due now on the schedule that no one else is rescoring; returns how
/// many.
async fn rescore_scheduled(state: &AppState) -> anyhow::Result<usize> {
    let interval = state.settings.rescore_interval();
    let mut done = 0;
    loop {
        let now = state.clock.now();
        let due = {
            let mut conn = state.pool.get().await?;
            configs::due_orgs(&mut conn, now, DUE_ORGS_PER_PASS).await?
        };
        let mut any = false;
        for org_id in due {
            let trace = MessageMeta::start_trace(Some(org_id));
            let Some(summary) = engine::scheduled_rescore(
                state.rescorer(&trace.correlation_id),
                org_id,
                now,
                now + interval,
            )
            .await?
            else {
                // Another replica is rescoring it, or has just done so.
                continue;
            };
            any = true;
            state.metrics.record("scheduled", summary);
            tracing::info!(%org_id, scored = summary.scored, changed = summary.changed, "scheduled rescore");
            done += 1;
        }
        if !any {
            return Ok(done);
        }
    }
}

/// Due orgs looked at per pass.
const DUE_ORGS_PER_PASS: i64 = 100;
