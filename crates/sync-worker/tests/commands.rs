//! Command messages that can never be applied end in the queue's dead-letter queue
//! rather than blocking it.

mod common;

use std::time::Duration;

use common::*;
use contracts::v1;
use platform::amqp::testing::wait_for_message;

#[tokio::test]
async fn a_sync_request_for_an_unknown_connection_is_dead_lettered_after_retries() {
    let h = Harness::start().await;
    let portal = h.portal("professional").await;
    let app = h.app(&portal).await;
    let request = v1::SyncRequested {
        org_id: uuid::Uuid::new_v4().to_string(),
        connection_id: uuid::Uuid::new_v4().to_string(),
        portal_id: portal.id,
        sync_run_id: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    };
    h.publish(&request, None).await;
    let dlq = platform::amqp::dead_letter_queue_name(&h.settings.sync.commands_queue);
    let dead = wait_for_message(&h.broker, &dlq, Duration::from_secs(30))
        .await
        .expect("dead-lettered");
    assert_eq!(
        dead.properties
            .kind()
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("hubscore.v1.SyncRequested")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_command_is_dead_lettered_with_its_reason() {
    let h = Harness::start().await;
    let portal = h.portal("professional").await;
    let app = h.app(&portal).await;
    let message = platform::amqp::OutgoingMessage {
        routing_key: "sync.requested".to_owned(),
        message_type: "hubscore.v1.SyncRequested".to_owned(),
        body: vec![0xff, 0xff, 0xff],
        meta: platform::amqp::MessageMeta::start_trace(None),
        created_at: chrono::Utc::now(),
    };
    h.publisher.publish(&message).await.expect("publish");
    let dlq = platform::amqp::dead_letter_queue_name(&h.settings.sync.commands_queue);
    let dead = wait_for_message(&h.broker, &dlq, Duration::from_secs(20))
        .await
        .expect("dead-lettered");
    let reason = platform::amqp::testing::header(&dead, platform::amqp::DEAD_LETTER_REASON_HEADER)
        .unwrap_or_default();
    assert!(reason.contains("malformed"), "{reason}");
    app.stop().await;
}
