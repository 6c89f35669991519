//! How an internal service outside this repository consumes hubscore's score events.
//!
//! It declares its own durable quorum queue, binds it to `score.updated` on the
//! `hubscore.events` exchange, decodes each message as `hubscore.v1.ScoreUpdated`, and acks
//! only after handling it (here: printing one line). Redelivery is normal, so a real
//! consumer dedupes on the AMQP `message_id`.
//!
//! ```sh
//! cargo run -p hubscore --example score_consumer -- amqp://guest:guest@127.0.0.1:5672/%2f
//! ```

use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use prost::Message as _;

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
        let score = contracts::v1::ScoreUpdated::decode(delivery.data.as_slice())?;
        let show = |score: Option<u32>| score.map_or("N/A".to_owned(), |s| s.to_string());
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
        delivery.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}

fn print_line(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
