//! What the handlers, routes and background tasks share.

use platform::db::Pool;
use platform::outbox::RelayWaker;
use prometheus::{IntCounterVec, Opts};

use crate::clock::Clock;
use crate::config::ScoringSettings;

/// Shared state of one running service.
#[derive(Clone)]
pub struct AppState {
    /// Connections in the `scoring` schema.
    pub pool: Pool,
    /// Wakes the outbox relay after a commit that enqueued events.
    pub relay_waker: RelayWaker,
    /// Where "now" comes from.
    pub clock: Clock,
    /// The `[scoring]` settings.
    pub settings: ScoringSettings,
    /// The service's own series.
    pub metrics: ScoringMetrics,
}

impl AppState {
    /// What this replica's whole-org rescores run with; their events carry
    /// `correlation_id`.
    pub fn rescorer<'a>(&'a self, correlation_id: &'a str) -> crate::engine::Rescorer<'a> {
        crate::engine::Rescorer {
            pool: &self.pool,
            relay: &self.relay_waker,
            batch_size: self.settings.batch_size,
            lanes: self.settings.rescore_lanes,
            correlation_id,
        }
    }
}

/// The scoring-engine's own Prometheus series.
#[derive(Clone)]
pub struct ScoringMetrics {
    /// `hubscore_scoring_scores_total{trigger, outcome}`: records scored, by what
    /// triggered it (`crm_changed`, `org_rescore`) and whether the score or level changed.
    pub scores: IntCounterVec,
    /// `hubscore_scoring_alerts_total{trigger}`: `score.alert` events raised.
    pub alerts: IntCounterVec,
}

impl ScoringMetrics {
    /// Registers the series in the service's registry.
    pub fn register(metrics: &platform::metrics::Metrics) -> anyhow::Result<Self> {
        let scores = IntCounterVec::new(
            Opts::new(
                "scoring_scores_total",
                "Records scored, by trigger and outcome",
            ),
            &["trigger", "outcome"],
        )?;
        let alerts = IntCounterVec::new(
            Opts::new(
                "scoring_alerts_total",
                "score.alert events raised, by trigger",
            ),
            &["trigger"],
        )?;
        metrics.registry().register(Box::new(scores.clone()))?;
        metrics.registry().register(Box::new(alerts.clone()))?;
        Ok(Self { scores, alerts })
    }

    /// Records what a scoring run did.
    pub fn record(&self, trigger: &str, summary: crate::engine::WriteSummary) {
        let unchanged = summary.scored.saturating_sub(summary.changed);
        self.scores
            .with_label_values(&[trigger, "changed"])
            .inc_by(summary.changed as u64);
        self.scores
            .with_label_values(&[trigger, "unchanged"])
            .inc_by(unchanged as u64);
        self.alerts
            .with_label_values(&[trigger])
            .inc_by(summary.alerts as u64);
    }
}
