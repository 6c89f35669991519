//! The receiver's own series, registered in the service's registry next to platform's
//! HTTP metrics.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// Confirm-latency buckets in seconds: the interesting range is 1 ms to the 2 s bound.
const CONFIRM_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
];

/// Subscription types reported under their own label; any other is `other`, so a
/// sender cannot grow the label set.
const KNOWN_SUBSCRIPTION_TYPES: &[&str] = &[
    "contact.creation",
    "contact.deletion",
    "contact.propertyChange",
    "contact.merge",
    "contact.restore",
    "contact.associationChange",
    "contact.privacyDeletion",
    "company.creation",
    "company.deletion",
    "company.propertyChange",
    "company.merge",
    "company.restore",
    "company.associationChange",
    "deal.creation",
    "deal.deletion",
    "deal.propertyChange",
    "deal.merge",
    "deal.restore",
    "deal.associationChange",
    "object.creation",
    "object.deletion",
    "object.propertyChange",
    "object.merge",
    "object.restore",
    "object.associationChange",
];

/// The receiver's series.
#[derive(Clone)]
pub struct ReceiverMetrics {
    deliveries: IntCounterVec,
    events: IntCounterVec,
    unknown_events: prometheus::IntCounter,
    signature_failures: IntCounterVec,
    confirm_latency: Histogram,
    in_flight: IntGauge,
}

impl ReceiverMetrics {
    /// Creates the series and registers them in `registry`.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn register(registry: &Registry) -> anyhow::Result<Self> {
        let deliveries = IntCounterVec::new(
            Opts::new(
                "webhook_deliveries_total",
                "Webhook deliveries by route and outcome (accepted or the refusal code)",
            ),
            &["route", "outcome"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "webhook_events_total",
                "Events of parsed deliveries by outcome (accepted, unpublished) and subscription type",
            ),
            &["outcome", "subscription_type"],
        )?;
        let unknown_events = prometheus::IntCounter::new(
            "webhook_unknown_events_total",
            "Accepted events whose subscription type hubscore does not know (kept, not refused)",
        )?;
        let signature_failures = IntCounterVec::new(
            Opts::new(
                "webhook_signature_failures_total",
                "Deliveries refused by the signature check, by reason",
            ),
            &["reason"],
        )?;
        let confirm_latency = Histogram::with_opts(
            HistogramOpts::new(
                "webhook_publish_confirm_seconds",
                "Time from publishing a delivery's batches to the broker's confirm (or giving up)",
            )
            .buckets(CONFIRM_BUCKETS.to_vec()),
        )?;
        let in_flight = IntGauge::new(
            "webhook_requests_in_flight",
            "Webhook deliveries being handled right now",
        )?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(unknown_events.clone()))?;
        registry.register(Box::new(signature_failures.clone()))?;
        registry.register(Box::new(confirm_latency.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(Self {
            deliveries,
            events,
            unknown_events,
            signature_failures,
            confirm_latency,
            in_flight,
        })
    }

    /// Counts one delivery on `route` (`public`, `private`) ending in `outcome`.
    pub fn delivery(&self, route: &str, outcome: &str) {
        self.deliveries.with_label_values(&[route, outcome]).inc();
    }

    /// Counts a delivery's events ending in `outcome`, by subscription type.
    pub fn events<'a>(&self, outcome: &str, subscription_types: impl Iterator<Item = &'a str>) {
        let mut counts: Vec<(&str, u64)> = Vec::new();
        for subscription_type in subscription_types {
            let label = KNOWN_SUBSCRIPTION_TYPES
                .iter()
                .find(|known| **known == subscription_type)
                .copied()
                .unwrap_or("other");
            match counts.iter_mut().find(|(l, _)| *l == label) {
                Some((_, n)) => *n += 1,
                None => counts.push((label, 1)),
            }
        }
        for (label, n) in counts {
            self.events.with_label_values(&[outcome, label]).inc_by(n);
        }
    }

    /// Counts accepted events of unknown subscription types.
    pub fn unknown_events(&self, n: u64) {
        self.unknown_events.inc_by(n);
    }

    /// Counts one signature refusal.
    pub fn signature_failure(&self, reason: &str) {
        self.signature_failures.with_label_values(&[reason]).inc();
    }

    /// Records how long a publish waited for its confirm.
    pub fn confirm_latency(&self, seconds: f64) {
        self.confirm_latency.observe(seconds);
    }

    /// Marks a delivery in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
