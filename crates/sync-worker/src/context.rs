//! What every part of the worker shares: the pool, the HubSpot clients, settings, the
//! relay waker, metrics and the runner's wake-up.

use std::sync::Arc;

use platform::db::Pool;
use platform::outbox::RelayWaker;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};
use tokio::sync::Notify;

use crate::config::SyncSettings;
use crate::hubspot::Clients;

/// The worker's own metrics.
#[derive(Clone)]
pub struct SyncMetrics {
    /// Records written to the mirror, by object type and cause (`sync`, `webhook`).
    pub records_written: IntCounterVec,
    /// Webhook events not applied, by reason (`no_active_connection`, `duplicate`,
    /// `unsupported`).
    pub webhook_events_dropped: IntCounterVec,
    /// Sync runs ended, by mode and state.
    pub runs_finished: IntCounterVec,
    /// Deliveries applied together (one set of HubSpot reads), per application.
    pub webhook_deliveries_coalesced: Histogram,
}

impl SyncMetrics {
    /// Creates the series in `registry`.
    pub fn register(registry: &prometheus::Registry) -> anyhow::Result<Self> {
        let records_written = IntCounterVec::new(
            Opts::new(
                "sync_records_written_total",
                "Records written to the mirror, by object type and cause",
            ),
            &["object_type", "cause"],
        )?;
        let webhook_events_dropped = IntCounterVec::new(
            Opts::new(
                "sync_webhook_events_dropped_total",
                "Webhook events not applied, by reason",
            ),
            &["reason"],
        )?;
        let runs_finished = IntCounterVec::new(
            Opts::new(
                "sync_runs_finished_total",
                "Sync runs ended, by mode and state",
            ),
            &["mode", "state"],
        )?;
        let webhook_deliveries_coalesced = Histogram::with_opts(
            HistogramOpts::new(
                "sync_webhook_deliveries_coalesced",
                "Webhook deliveries applied together with one set of HubSpot reads",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )?;
        registry.register(Box::new(webhook_deliveries_coalesced.clone()))?;
        registry.register(Box::new(records_written.clone()))?;
        registry.register(Box::new(webhook_events_dropped.clone()))?;
        registry.register(Box::new(runs_finished.clone()))?;
        Ok(Self {
            records_written,
            webhook_events_dropped,
            runs_finished,
            webhook_deliveries_coalesced,
        })
    }
}

/// Shared by the consumers, the runner and the HTTP routes.
pub struct Context {
    /// The `sync` schema's pool.
    pub pool: Pool,
    /// The database URL, for the dedicated advisory-lock connections.
    pub database_url: String,
    /// HubSpot clients per connection.
    pub clients: Clients,
    /// `[sync]` settings.
    pub settings: SyncSettings,
    /// Wakes the outbox relay after a commit that enqueued messages.
    pub relay: RelayWaker,
    /// Metrics.
    pub metrics: SyncMetrics,
    /// Wakes the runner when a run was queued.
    pub runner_wake: Arc<Notify>,
}
