//! Protobuf message contracts exchanged between hubscore services over RabbitMQ.
//!
//! The `.proto` sources live in `proto/hubscore/v1/`; this crate compiles them with
//! prost and names, in one place (the `events!` table below), the routing key and
//! AMQP `type` of every message. It holds types and pure conversions only: no I/O,
//! no broker code, no HubSpot wire types.
//!
//! # Routing
//!
//! | message | routing key |
//! |---|---|
//! | `ConnectionEstablished` | `connection.established` |
//! | `ConnectionClosed` | `connection.closed` |
//! | `SyncRequested` | `sync.requested` |
//! | `WebhookBatch` | `webhook.batch` |
//! | `CrmChanged` | `crm.changed.{contact,company,deal,owner,pipeline}` by its `object_type` |
//! | `SyncProgress` | `sync.progress` |
//! | `SyncCompleted` | `sync.completed` |
//! | `ScoreUpdated` | `score.updated` |
//! | `ScoreUpdatedBatch` | `score.updated` (shared with `ScoreUpdated`) |
//! | `ScoreAlert` | `score.alert` |
//! | `ScoreAlertBatch` | `score.alert` (shared with `ScoreAlert`) |
//! | `WritebackCompleted` | `writeback.completed` |
//!
//! DESIGN.md lists `crm.changed.{contact,company,deal}`; owners and deal pipelines
//! are mirrored too, so they get `crm.changed.owner` and `crm.changed.pipeline`.
//! Association changes have no key of their own: they travel as the upserted
//! records of each affected side, which carry their association ids. A
//! `CrmChanged` whose object type is unset or unknown goes to
//! `crm.changed.unspecified`, which no service binds and [`ALL_ROUTING_KEYS`]
//! omits: that is a producer bug, for the publisher's unroutable handling to see.
//!
//! Two keys carry two kinds each: `score.updated` carries a change alone
//! (`ScoreUpdated`) or changes computed together (`ScoreUpdatedBatch`, a whole-org
//! rescore's), and `score.alert` an alert alone (`ScoreAlert`) or the alerts of such a
//! rescore (`ScoreAlertBatch`), so that a queue bound to the key sees every change or
//! alert; their consumers dispatch on the AMQP `type`. Every other key carries exactly
//! one kind.

pub mod time;
pub mod webhook;

/// Generated types for package `hubscore.v1`.
pub mod v1 {
    #![expect(
        missing_docs,
        reason = "generated code; the .proto files carry the docs"
    )]
    include!(concat!(env!("OUT_DIR"), "/hubscore.v1.rs"));
}

/// The score changes a `score.updated` message carries, by its AMQP `type`: the one of a
/// `ScoreUpdated`, every entry of a `ScoreUpdatedBatch`. `None` when the type is neither
/// (not a message of that key); `Some(Err(_))` when the body does not decode as the type.
pub fn score_changes(
    message_type: &str,
    body: &[u8],
) -> Option<Result<Vec<v1::ScoreUpdated>, prost::DecodeError>> {
    use prost::Message as _;
    if message_type == <v1::ScoreUpdated as Event>::TYPE_NAME {
        Some(v1::ScoreUpdated::decode(body).map(|update| vec![update]))
    } else if message_type == <v1::ScoreUpdatedBatch as Event>::TYPE_NAME {
        Some(v1::ScoreUpdatedBatch::decode(body).map(|batch| batch.updates))
    } else {
        None
    }
}

/// The alerts a `score.alert` message carries, by its AMQP `type`: the one of a
/// `ScoreAlert`, every entry of a `ScoreAlertBatch`. `None` when the type is neither (not
/// a message of that key); `Some(Err(_))` when the body does not decode as the type.
pub fn score_alerts(
    message_type: &str,
    body: &[u8],
) -> Option<Result<Vec<v1::ScoreAlert>, prost::DecodeError>> {
    use prost::Message as _;
    if message_type == <v1::ScoreAlert as Event>::TYPE_NAME {
        Some(v1::ScoreAlert::decode(body).map(|alert| vec![alert]))
    } else if message_type == <v1::ScoreAlertBatch as Event>::TYPE_NAME {
        Some(v1::ScoreAlertBatch::decode(body).map(|batch| batch.alerts))
    } else {
        None
    }
}

/// The name of the one durable topic exchange every event is published to.
pub const EXCHANGE: &str = "hubscore.events";

/// A message that travels over the `hubscore.events` exchange.
pub trait Event: prost::Message + Default {
    /// The full protobuf message name, sent as the AMQP `type` property.
    const TYPE_NAME: &'static str;

    /// Every routing key a message of this kind may be published with: bind a
    /// queue to these (or to a subset) to receive the kind.
    const ROUTING_KEYS: &'static [&'static str];

    /// The routing key this message is published with.
    fn routing_key(&self) -> String;
}

/// Implements [`Event`] for each message and builds [`ALL_ROUTING_KEYS`] and
/// [`ALL_TYPE_NAMES`], so every key and type name is written exactly once.
macro_rules! events {
    (
        fixed: $( $fixed:ident => $key:literal ),+ ;
        by_object_type: $(
            $routed:ident => { $( $variant:ident => $rkey:literal ),+ $(,)? } else $fallback:literal
        ),+ ;
        sharing: $( $sharing:ident => $owner:ident ),+ ;
    ) => {
        $(
            impl Event for v1::$fixed {
                const TYPE_NAME: &'static str = concat!("hubscore.v1.", stringify!($fixed));
                const ROUTING_KEYS: &'static [&'static str] = &[$key];

                fn routing_key(&self) -> String {
                    $key.to_owned()
                }
            }
        )+
        $(
            impl Event for v1::$routed {
                const TYPE_NAME: &'static str = concat!("hubscore.v1.", stringify!($routed));
                const ROUTING_KEYS: &'static [&'static str] = &[$($rkey),+];

                fn routing_key(&self) -> String {
                    match self.object_type() {
                        $( v1::ObjectType::$variant => $rkey, )+
                        _ => $fallback,
                    }
                    .to_owned()
                }
            }
        )+

        $(
            impl Event for v1::$sharing {
                const TYPE_NAME: &'static str = concat!("hubscore.v1.", stringify!($sharing));
                const ROUTING_KEYS: &'static [&'static str] = <v1::$owner as Event>::ROUTING_KEYS;

                fn routing_key(&self) -> String {
                    Self::ROUTING_KEYS[0].to_owned()
                }
            }
        )+

        /// Every routing key any hubscore event is published with (fallback keys
        /// of malformed messages excluded), for binding queues and for tests.
        pub const ALL_ROUTING_KEYS: &[&str] = &[$($key,)+ $($($rkey,)+)+];

        /// The AMQP `type` of every hubscore event, for dispatching on receipt.
        pub const ALL_TYPE_NAMES: &[&str] = &[
            $(concat!("hubscore.v1.", stringify!($fixed)),)+
            $(concat!("hubscore.v1.", stringify!($routed)),)+
            $(concat!("hubscore.v1.", stringify!($sharing)),)+
        ];
    };
}

// The one table of type names and routing keys (see "Routing" above).
events! {
    fixed:
        ConnectionEstablished => "connection.established",
        ConnectionClosed => "connection.closed",
        SyncRequested => "sync.requested",
        WebhookBatch => "webhook.batch",
        SyncProgress => "sync.progress",
        SyncCompleted => "sync.completed",
        ScoreUpdated => "score.updated",
        ScoreAlert => "score.alert",
        WritebackCompleted => "writeback.completed";
    by_object_type:
        CrmChanged => {
            Contact => "crm.changed.contact",
            Company => "crm.changed.company",
            Deal => "crm.changed.deal",
            Owner => "crm.changed.owner",
            Pipeline => "crm.changed.pipeline",
        } else "crm.changed.unspecified";
    sharing:
        ScoreUpdatedBatch => ScoreUpdated,
        ScoreAlertBatch => ScoreAlert;
}
