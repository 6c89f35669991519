//! How an internal service outside this repository consumes hubscore's score events.
//!
//! It declares its own durable quorum queue, binds it to `score.updated` on the
//! `hubscore.events` exchange, and decodes each message by its AMQP `type`: a
//! `hubscore.v1.ScoreUpdated` is one change, a `hubscore.v1.ScoreUpdatedBatch` (a whole-org
//! rescore's) up to 100, each handled the same way. It acks only after handling the
//! message (here: printing one line per change). Redelivery is normal, so a real consumer
//! dedupes on the AMQP `message_id`, or makes its effect idempotent.
//!
//! ```sh
//! cargo run -p hubscore --example score_consumer -- amqp://guest:guest@127.0.0.1:5672/%2f
//! ```

use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let connection =
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(32, BasicQosOptions::default()).await?;

    // Your queue, named after your service; quorum, so it survives a broker node.
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let queue = "example-consumer.scores";
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await?;
    channel
        .queue_bind(
            queue.into(),
            "hubscore.events".into(),
            "score.updated".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "example-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery?;
        // One change (`hubscore.v1.ScoreUpdated`) or up to 100
        // (`hubscore.v1.ScoreUpdatedBatch`), by the AMQP type.
        let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
        let Some(changes) = contracts::score_changes(kind.unwrap_or_default(), &delivery.data)
        else {
            anyhow::bail!("unexpected message type {kind:?} on score.updated");
        };
        let changes = changes?;
        let show = |score: Option<u32>| score.map_or("N/A".to_owned(), |s| s.to_string());
        for score in changes {
            let line = format!(
                "org {} customer {}: {} -> {} (config v{})",
                score.org_id,
                score.customer_id,
                show(score.old_score),
                show(score.new_score),
                score.config_version
            );
            // Stand-in for your own handling; commit your effect, then ack.
            print_line(&line);
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}

fn print_line(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
