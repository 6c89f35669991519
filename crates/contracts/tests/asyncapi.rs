//! `docs/asyncapi.yaml`, the description internal consumers read, says exactly what the
//! contracts crate publishes: a channel for every routing key and no other, every
//! channel's message a real event type under its own key, every event type on some
//! channel, and every message's schema in the `.proto` file it names.
//!
//! The document's conformance to the AsyncAPI 3.0 JSON schema is checked by
//! `scripts/validate-deploy`, which needs the schema from the npm registry.

// Helpers outside #[test] fns are not covered by clippy.toml's test allowances;
// here a panic is exactly the failure report we want.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use contracts::v1::{
    ConnectionClosed, ConnectionEstablished, CrmChanged, ScoreAlert, ScoreAlertBatch, ScoreUpdated,
    ScoreUpdatedBatch, SyncCompleted, SyncProgress, SyncRequested, WebhookBatch,
    WritebackCompleted,
};
use contracts::{ALL_ROUTING_KEYS, ALL_TYPE_NAMES, EXCHANGE, Event};
use serde_norway::Value;

/// A key no service binds and no channel describes: a producer bug by design (see the
/// contracts crate's docs), so it is not part of the published interface.
const UNROUTED_KEY: &str = "crm.changed.unspecified";

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn document() -> Value {
    let path = docs_dir().join("asyncapi.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut here = value;
    for key in path {
        here = here
            .get(*key)
            .unwrap_or_else(|| panic!("no `{}` in {here:?}", path.join(".")));
    }
    here.as_str()
        .unwrap_or_else(|| panic!("`{}` is not a string", path.join(".")))
}

fn mapping<'a>(value: &'a Value, key: &str) -> &'a serde_norway::Mapping {
    value
        .get(key)
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("`{key}` is missing or not a mapping"))
}

/// Follows a local `$ref` such as `#/components/messages/ScoreUpdated`.
fn resolve<'a>(document: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference
        .strip_prefix("#/")
        .unwrap_or_else(|| panic!("{reference} is not a local reference"));
    pointer.split('/').fold(document, |here, key| {
        here.get(key)
            .unwrap_or_else(|| panic!("{reference} does not resolve (no `{key}`)"))
    })
}

/// One message a channel carries, as the document describes it.
#[derive(Debug)]
struct Message {
    /// `name`: the AMQP `type` a consumer sees.
    name: String,
    /// `bindings.amqp.messageType`.
    amqp_type: String,
    /// The `.proto` file the payload's schema names, relative to docs/.
    proto: String,
}

/// Channel address (the routing key) -> the messages on it.
fn channels(document: &Value) -> BTreeMap<String, Vec<Message>> {
    let mut channels = BTreeMap::new();
    for (id, channel) in mapping(document, "channels") {
        let id = id.as_str().unwrap();
        assert_eq!(
            str_at(channel, &["bindings", "amqp", "exchange", "name"]),
            EXCHANGE,
            "channel {id} is not on the exchange every event is published to"
        );
        let messages = mapping(channel, "messages")
            .values()
            .map(|message| {
                let message = resolve(document, str_at(message, &["$ref"]));
                Message {
                    name: str_at(message, &["name"]).to_owned(),
                    amqp_type: str_at(message, &["bindings", "amqp", "messageType"]).to_owned(),
                    proto: str_at(message, &["payload", "schema", "$ref"]).to_owned(),
                }
            })
            .collect();
        let previous = channels.insert(str_at(channel, &["address"]).to_owned(), messages);
        assert!(previous.is_none(), "two channels have the address of {id}");
    }
    channels
}

fn published_keys() -> BTreeSet<&'static str> {
    ALL_ROUTING_KEYS
        .iter()
        .copied()
        .filter(|key| *key != UNROUTED_KEY)
        .collect()
}

#[test]
fn every_routing_key_the_contracts_publish_has_a_channel() {
    let channels = channels(&document());
    let missing: Vec<_> = published_keys()
        .into_iter()
        .filter(|key| !channels.contains_key(*key))
        .collect();
    assert!(
        missing.is_empty(),
        "no channel in asyncapi.yaml for {missing:?}"
    );
}

#[test]
fn every_channel_is_a_routing_key_the_contracts_publish() {
    let published = published_keys();
    let unknown: Vec<_> = channels(&document())
        .into_keys()
        .filter(|address| !published.contains(address.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "asyncapi.yaml describes channels the contracts crate does not publish: {unknown:?}"
    );
}

#[test]
fn every_channel_message_names_an_event_type_of_the_contracts() {
    let types: BTreeSet<&str> = ALL_TYPE_NAMES.iter().copied().collect();
    for (address, messages) in channels(&document()) {
        assert!(!messages.is_empty(), "channel {address} carries no message");
        for message in messages {
            assert!(
                types.contains(message.name.as_str()),
                "channel {address} carries {}, which is not in contracts::ALL_TYPE_NAMES",
                message.name
            );
            assert_eq!(
                message.amqp_type, message.name,
                "channel {address}: the AMQP messageType differs from the message name"
            );
        }
    }
}

#[test]
fn every_event_type_of_the_contracts_is_carried_by_a_channel() {
    let described: BTreeSet<String> = channels(&document())
        .into_values()
        .flatten()
        .map(|message| message.name)
        .collect();
    let missing: Vec<_> = ALL_TYPE_NAMES
        .iter()
        .filter(|name| !described.contains(**name))
        .collect();
    assert!(
        missing.is_empty(),
        "no channel in asyncapi.yaml carries {missing:?}"
    );
}

/// The channels of `E`'s routing keys carry `E` and the kinds sharing its keys (`also`),
/// and nothing else.
fn carried_under_its_own_keys<E: Event>(
    channels: &BTreeMap<String, Vec<Message>>,
    also: &[&'static str],
) {
    for key in E::ROUTING_KEYS.iter().filter(|key| **key != UNROUTED_KEY) {
        let names: BTreeSet<&str> = channels
            .get(*key)
            .unwrap_or_else(|| panic!("no channel for {key}"))
            .iter()
            .map(|message| message.name.as_str())
            .collect();
        let expected: BTreeSet<&str> = also.iter().copied().chain([E::TYPE_NAME]).collect();
        assert_eq!(names, expected, "channel {key}");
    }
}

#[test]
fn each_channel_carries_the_event_type_published_under_its_key() {
    let channels = channels(&document());
    carried_under_its_own_keys::<ConnectionEstablished>(&channels, &[]);
    carried_under_its_own_keys::<ConnectionClosed>(&channels, &[]);
    carried_under_its_own_keys::<SyncRequested>(&channels, &[]);
    carried_under_its_own_keys::<WebhookBatch>(&channels, &[]);
    carried_under_its_own_keys::<CrmChanged>(&channels, &[]);
    carried_under_its_own_keys::<SyncProgress>(&channels, &[]);
    carried_under_its_own_keys::<SyncCompleted>(&channels, &[]);
    carried_under_its_own_keys::<ScoreUpdated>(&channels, &[ScoreUpdatedBatch::TYPE_NAME]);
    carried_under_its_own_keys::<ScoreUpdatedBatch>(&channels, &[ScoreUpdated::TYPE_NAME]);
    carried_under_its_own_keys::<ScoreAlert>(&channels, &[ScoreAlertBatch::TYPE_NAME]);
    carried_under_its_own_keys::<ScoreAlertBatch>(&channels, &[ScoreAlert::TYPE_NAME]);
    carried_under_its_own_keys::<WritebackCompleted>(&channels, &[]);
}

#[test]
fn every_message_schema_is_defined_in_the_proto_file_it_names() {
    for (address, messages) in channels(&document()) {
        for message in messages {
            let path = docs_dir().join(&message.proto);
            let proto = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("channel {address}: schema {}: {e}", message.proto));
            let short = message.name.rsplit('.').next().unwrap();
            assert!(
                proto.lines().any(|line| {
                    let mut words = line.split_whitespace();
                    words.next() == Some("message") && words.next() == Some(short)
                }),
                "channel {address}: {} does not define message {short}",
                message.proto
            );
            assert!(
                proto.contains("package hubscore.v1;"),
                "{} is not in package hubscore.v1",
                message.proto
            );
        }
    }
}

#[test]
fn every_operation_sends_on_a_described_channel() {
    let document = document();
    let channel_ids: BTreeSet<&str> = mapping(&document, "channels")
        .keys()
        .map(|id| id.as_str().unwrap())
        .collect();
    for (id, operation) in mapping(&document, "operations") {
        let reference = str_at(operation, &["channel", "$ref"]);
        let channel = reference
            .strip_prefix("#/channels/")
            .unwrap_or_else(|| panic!("operation {id:?} names {reference}"));
        assert!(
            channel_ids.contains(channel),
            "operation {id:?} sends on unknown channel {channel}"
        );
        assert_eq!(str_at(operation, &["action"]), "send", "operation {id:?}");
    }
}
