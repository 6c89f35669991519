//! Prometheus metrics: one registry per service, HTTP and message-handling series, and the
//! text exposition served at `/metrics`.

use std::sync::Arc;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, from 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A service's registry and the series every service records.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    inner: Arc<Series>,
}

struct Series {
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    messages: IntCounterVec,
    message_duration: HistogramVec,
}

impl Metrics {
    /// A fresh registry whose series all carry `service="<name>"`.
    pub fn new(service: &str) -> anyhow::Result<Self> {
        let labels = std::iter::once(("service".to_owned(), service.to_owned())).collect();
        let registry = Registry::new_custom(Some("hubscore".to_owned()), Some(labels))?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route and status",
            ),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let messages = IntCounterVec::new(
            Opts::new(
                "messages_handled_total",
                "Messages handled, by queue and outcome",
            ),
            &["queue", "outcome"],
        )?;
        let message_duration = HistogramVec::new(
            HistogramOpts::new(
                "message_handling_duration_seconds",
                "Message handling latency",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["queue"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(message_duration.clone()))?;
        Ok(Self {
            registry,
            inner: Arc::new(Series {
                http_requests,
                http_duration,
                messages,
                message_duration,
            }),
        })
    }

    /// The registry, for crates that add their own series.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one answered HTTP request.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.inner
            .http_requests
            .with_label_values(&[method, route, &status])
            .inc();
        self.inner
            .http_duration
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// Records one handled message and how it ended (`ack`, `retry`, `dead_letter`, or
    /// `panic` when the handler panicked and the message was returned to the queue).
    pub fn observe_message(&self, queue: &str, outcome: &str, seconds: f64) {
        self.inner
            .messages
            .with_label_values(&[queue, outcome])
            .inc();
        self.inner
            .message_duration
            .with_label_values(&[queue])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every series in the registry.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "encoding metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_requests_and_messages_appear_in_the_exposition() {
        let metrics = Metrics::new("sync-worker").unwrap();
        metrics.observe_http("GET", "/healthz", 200, 0.002);
        metrics.observe_message("sync-worker.webhooks", "ack", 0.01);
        metrics.observe_message("sync-worker.webhooks", "ack", 0.02);
        let text = metrics.render();
        assert!(text.contains(
            r#"hubscore_http_requests_total{method="GET",route="/healthz",status="200",service="sync-worker"} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"hubscore_messages_handled_total{outcome="ack",queue="sync-worker.webhooks",service="sync-worker"} 2"#
        ), "{text}");
        assert!(
            text.contains("hubscore_message_handling_duration_seconds_bucket"),
            "{text}"
        );
    }
}
