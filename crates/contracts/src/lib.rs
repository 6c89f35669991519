//! Protobuf message contracts exchanged between hubscore services over RabbitMQ.
//!
//! The `.proto` sources live in `proto/hubscore/v1/`; this crate compiles them with
//! prost and names, in one place, the routing key and AMQP `type` of every message.
//! It holds types only: no I/O, no broker code.

/// Generated types for package `hubscore.v1`.
pub mod v1 {
    #![expect(missing_docs, reason = "generated code; the .proto files carry the docs")]
    include!(concat!(env!("OUT_DIR"), "/hubscore.v1.rs"));
}

/// The name of the one durable topic exchange every event is published to.
pub const EXCHANGE: &str = "hubscore.events";

/// A message that travels over the `hubscore.events` exchange.
pub trait Event: prost::Message + Default {
    /// The full protobuf message name, sent as the AMQP `type` property.
    const TYPE_NAME: &'static str;

    /// The routing key this message is published with.
    fn routing_key(&self) -> String;
}
