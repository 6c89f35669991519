//! Structured logs through `tracing`.
//!
//! In JSON format each line is one object carrying the fields of every enclosing span, so a
//! handler that runs inside [`message_span`] (or any span with a `correlation_id` field)
//! stamps the correlation id on every line of its work without repeating it.

use tracing::Span;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, TelemetrySettings};

/// Installs the global subscriber writing to stdout. Call once, at start-up.
pub fn init(service: &'static str, settings: &TelemetrySettings) -> anyhow::Result<()> {
    init_with_writer(service, settings, std::io::stdout)
}

/// Installs the global subscriber with a custom writer.
pub fn init_with_writer<W>(
    service: &'static str,
    settings: &TelemetrySettings,
    writer: W,
) -> anyhow::Result<()>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.level).map_err(|e| {
        anyhow::anyhow!(
            "telemetry.level {:?} is not a valid filter: {e}",
            settings.level
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))?;
    tracing::info!(service, "telemetry initialised");
    Ok(())
}

/// The span a message handler runs in: every log line inside it carries these fields.
pub fn message_span(
    queue: &str,
    message_type: &str,
    message_id: &str,
    correlation_id: &str,
) -> Span {
    tracing::info_span!(
        "message",
        amqp.queue = queue,
        message.r#type = message_type,
        message.id = message_id,
        correlation_id = correlation_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::LogCapture;

    #[test]
    fn every_line_inside_a_message_span_carries_the_correlation_id() {
        let buffer = LogCapture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = message_span(
                "sync-worker.webhooks",
                "hubscore.v1.WebhookBatch",
                "m-1",
                "corr-42",
            );
            let _guard = span.enter();
            tracing::info!("first");
            let inner = tracing::info_span!("fetch", hubspot.portal_id = 7);
            let _inner = inner.enter();
            tracing::warn!(duration_ms = 12, "second");
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 2);
        for line in &lines {
            let spans = line["spans"].as_array().unwrap();
            assert!(
                spans.iter().any(|s| s["correlation_id"] == "corr-42"),
                "{line}"
            );
        }
        assert_eq!(lines[1]["duration_ms"], 12);
    }
}
