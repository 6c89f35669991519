//! Prometheus series the client records, registered in a registry the service passes in
//! (normally `platform::metrics::Metrics::registry()`).

use prometheus::{CounterVec, IntCounterVec, Opts, Registry};

/// The client's series. Cheap to clone.
#[derive(Clone)]
pub struct ClientMetrics {
    requests: IntCounterVec,
    retries: IntCounterVec,
    rate_limited: IntCounterVec,
    budget_wait: CounterVec,
}

impl ClientMetrics {
    /// Creates the series and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "hubspot_requests_total",
                "HubSpot API responses, by endpoint and HTTP status",
            ),
            &["endpoint", "status"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new(
                "hubspot_retries_total",
                "HubSpot requests retried, by endpoint and reason",
            ),
            &["endpoint", "reason"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "hubspot_rate_limited_total",
                "HubSpot 429 answers, by policy",
            ),
            &["policy"],
        )?;
        let budget_wait = CounterVec::new(
            Opts::new(
                "hubspot_budget_wait_seconds_total",
                "Seconds spent waiting for the shared rate budget, by kind",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(budget_wait.clone()))?;
        Ok(Self {
            requests,
            retries,
            rate_limited,
            budget_wait,
        })
    }

    /// A set registered nowhere, for clients whose owner does not export metrics.
    pub fn unregistered() -> Self {
        #[expect(
            clippy::expect_used,
            reason = "registering fixed, valid series in a fresh registry cannot fail"
        )]
        Self::register(&Registry::new()).expect("fresh registry accepts the client series")
    }

    pub(crate) fn response(&self, endpoint: &str, status: u16) {
        self.requests
            .with_label_values(&[endpoint, &status.to_string()])
            .inc();
    }

    pub(crate) fn retry(&self, endpoint: &str, reason: &str) {
        self.retries.with_label_values(&[endpoint, reason]).inc();
    }

    pub(crate) fn rate_limited(&self, policy: &str) {
        self.rate_limited.with_label_values(&[policy]).inc();
    }

    pub(crate) fn waited(&self, kind: &str, seconds: f64) {
        self.budget_wait.with_label_values(&[kind]).inc_by(seconds);
    }
}
