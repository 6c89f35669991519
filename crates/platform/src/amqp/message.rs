//! What a published message carries besides its body, and how it maps onto AMQP properties.

use chrono::{DateTime, Utc};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use uuid::Uuid;

/// `content_type` of every hubscore message.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

/// Header naming the organization a message is about.
pub const ORG_ID_HEADER: &str = "org_id";

/// AMQP `delivery_mode` for messages that survive a broker restart.
const PERSISTENT: u8 = 2;

/// Identity and tracing data of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// Unique per message (UUIDv7, so ids sort by creation time); consumers dedupe by it.
    pub message_id: Uuid,
    /// Follows one webhook or sync through every service; copied from the message that
    /// caused this one.
    pub correlation_id: String,
    /// The organization the message is about, sent as the `org_id` header. `None` only for
    /// messages published before the organization is known.
    pub org_id: Option<Uuid>,
}

impl MessageMeta {
    /// A new message in the trace `correlation_id`.
    pub fn new(correlation_id: impl Into<String>, org_id: Option<Uuid>) -> Self {
        Self {
            message_id: Uuid::now_v7(),
            correlation_id: correlation_id.into(),
            org_id,
        }
    }

    /// A new message that starts a trace of its own: its correlation id is its message id.
    pub fn start_trace(org_id: Option<Uuid>) -> Self {
        let message_id = Uuid::now_v7();
        Self {
            message_id,
            correlation_id: message_id.to_string(),
            org_id,
        }
    }
}

impl Default for MessageMeta {
    fn default() -> Self {
        Self::start_trace(None)
    }
}

/// A message ready to publish on the events exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Routing key on the topic exchange, e.g. `score.updated`.
    pub routing_key: String,
    /// AMQP `type`: the full protobuf message name, e.g. `hubscore.v1.ScoreUpdated`.
    pub message_type: String,
    /// The encoded protobuf message.
    pub body: Vec<u8>,
    /// Identity, trace and organization.
    pub meta: MessageMeta,
    /// When the message was created (the AMQP `timestamp`, second precision on the wire).
    pub created_at: DateTime<Utc>,
}

impl OutgoingMessage {
    /// Encodes `event` with its own routing key and type name.
    pub fn from_event<E: contracts::Event>(event: &E, meta: MessageMeta) -> Self {
        Self {
            routing_key: event.routing_key(),
            message_type: E::TYPE_NAME.to_owned(),
            body: event.encode_to_vec(),
            meta,
            created_at: Utc::now(),
        }
    }

    /// The AMQP properties every hubscore message carries.
    pub(crate) fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        if let Some(org_id) = self.meta.org_id {
            headers.insert(
                ORG_ID_HEADER.into(),
                AMQPValue::LongString(org_id.to_string().into()),
            );
        }
        let timestamp = u64::try_from(self.created_at.timestamp()).unwrap_or_default();
        BasicProperties::default()
            .with_message_id(ShortString::from(self.meta.message_id.to_string()))
            .with_type(short(&self.message_type))
            .with_content_type(PROTOBUF_CONTENT_TYPE.into())
            .with_correlation_id(short(&self.meta.correlation_id))
            .with_timestamp(timestamp)
            .with_delivery_mode(PERSISTENT)
            .with_headers(headers)
    }
}

/// AMQP short strings hold at most 255 bytes; longer values are cut at a char boundary
/// rather than failing the publish (only a pathological correlation id would be that long).
fn short(value: &str) -> ShortString {
    let mut end = value.len().min(255);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::from(&value[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_carries_the_properties_consumers_rely_on() {
        let org = Uuid::new_v4();
        let message = OutgoingMessage {
            routing_key: "score.updated".into(),
            message_type: "hubscore.v1.ScoreUpdated".into(),
            body: vec![1, 2, 3],
            meta: MessageMeta::new("corr-1", Some(org)),
            created_at: Utc::now(),
        };
        let p = message.properties();
        assert_eq!(
            p.message_id().as_ref().map(ShortString::as_str),
            Some(message.meta.message_id.to_string().as_str())
        );
        assert_eq!(message.meta.message_id.get_version_num(), 7);
        assert_eq!(
            p.kind().as_ref().map(ShortString::as_str),
            Some("hubscore.v1.ScoreUpdated")
        );
        assert_eq!(
            p.content_type().as_ref().map(ShortString::as_str),
            Some(PROTOBUF_CONTENT_TYPE)
        );
        assert_eq!(
            p.correlation_id().as_ref().map(ShortString::as_str),
            Some("corr-1")
        );
        assert_eq!(*p.delivery_mode(), Some(2));
        assert!(p.timestamp().is_some());
        let headers = p.headers().clone().unwrap();
        assert_eq!(
            headers.inner().get(ORG_ID_HEADER),
            Some(&AMQPValue::LongString(org.to_string().into()))
        );
    }

    #[test]
    fn a_new_trace_is_correlated_by_its_own_message_id() {
        let meta = MessageMeta::default();
        assert_eq!(meta.correlation_id, meta.message_id.to_string());
    }

    #[test]
    fn overlong_short_strings_are_cut_on_a_char_boundary() {
        let long = "é".repeat(200);
        assert!(short(&long).as_str().len() <= 255);
    }
}
