//! Every event survives encode/decode with all fields set, carries its real
//! protobuf name as AMQP `type`, and is published under DESIGN.md's routing keys.

// Helpers outside #[test] fns are not covered by clippy.toml's test allowances;
// here a panic is exactly the failure report we want.
#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;

use contracts::v1::{
    Actor, AttributeValue, AuthKind, CloseReason, Company, ConnectionClosed, ConnectionEstablished,
    CrmChanged, Customer, Deal, DealStatus, FullScope, Merge, ObjectCounts, ObjectType, Owner,
    OwnerKind, Pipeline, PipelineStage, PortalInfo, RecordIds, RiskLevel, ScoreAlert,
    ScoreAlertBatch, ScoreAlertReason, ScoreFactor, ScoreUpdated, ScoreUpdatedBatch, SkipReason,
    SkippedRecord, SyncCompleted, SyncFailed, SyncMode, SyncProgress, SyncReason, SyncRequested,
    SyncSucceeded, WebhookBatch, WebhookChangeKind, WebhookEvent, WritebackCompleted,
    WritebackFailure, actor, attribute_value, crm_changed, score_factor, sync_completed,
    sync_requested,
};
use contracts::{ALL_ROUTING_KEYS, ALL_TYPE_NAMES, Event};
use prost::{Message, Name};
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FileDescriptorSet, Timestamp};

const ORG: &str = "0190a6d2-0000-7000-8000-000000000001";
const CONNECTION: &str = "0190a6d2-0000-7000-8000-000000000002";
const SYNC_RUN: &str = "0190a6d2-0000-7000-8000-000000000003";
const PORTAL: i64 = 9_990_001;

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds,
        nanos: 500_000_000,
    })
}

fn user() -> Option<Actor> {
    Some(Actor {
        kind: Some(actor::Kind::UserId(
            "0190a6d2-0000-7000-8000-0000000000aa".into(),
        )),
    })
}

fn attributes() -> HashMap<String, AttributeValue> {
    let values = [
        ("tier", attribute_value::Kind::StringValue("gold".into())),
        ("seats", attribute_value::Kind::IntValue(42)),
        ("nps", attribute_value::Kind::DoubleValue(8.5)),
        ("churned", attribute_value::Kind::BoolValue(false)),
        (
            "renewal",
            attribute_value::Kind::TimestampValue(Timestamp {
                seconds: 1_767_225_600,
                nanos: 0,
            }),
        ),
    ];
    values
        .into_iter()
        .map(|(name, kind)| (name.to_owned(), AttributeValue { kind: Some(kind) }))
        .collect()
}

fn connection_established() -> ConnectionEstablished {
    ConnectionEstablished {
        org_id: ORG.into(),
        connection_id: CONNECTION.into(),
        portal_id: PORTAL,
        auth_kind: AuthKind::Oauth.into(),
        scopes: vec![
            "crm.objects.contacts.read".into(),
            "crm.objects.deals.read".into(),
        ],
        established_by: user(),
        established_at: at(1_767_225_600),
        portal: Some(PortalInfo {
            account_type: "STANDARD".into(),
            time_zone: "Europe/Berlin".into(),
            company_currency: "EUR".into(),
            ui_domain: "app-eu1.hubspot.com".into(),
            data_hosting_location: "eu1".into(),
        }),
    }
}

fn connection_closed() -> ConnectionClosed {
    ConnectionClosed {
        org_id: ORG.into(),
        connection_id: CONNECTION.into(),
        portal_id: PORTAL,
        auth_kind: AuthKind::PrivateApp.into(),
        closed_by: Some(Actor {
            kind: Some(actor::Kind::Service("auth-gateway".into())),
        }),
        closed_at: at(1_767_225_700),
        reason: CloseReason::CredentialRevoked.into(),
        reason_detail: "401 from account-info".into(),
    }
}

fn sync_requested(scope: sync_requested::Scope) -> SyncRequested {
    SyncRequested {
        org_id: ORG.into(),
        connection_id: CONNECTION.into(),
        portal_id: PORTAL,
        sync_run_id: SYNC_RUN.into(),
        mode: SyncMode::Reconciliation.into(),
        scope: Some(scope),
        requested_by: user(),
        reason: SyncReason::MappingChanged.into(),
        reason_detail: "new inbound mapping for 'tier'".into(),
        requested_at: at(1_767_225_800),
    }
}

fn webhook_batch() -> WebhookBatch {
    WebhookBatch {
        connection_id: Some(CONNECTION.into()),
        portal_id: PORTAL,
        received_at: at(1_767_225_603),
        events: vec![WebhookEvent {
            event_id: 100_005,
            subscription_id: 81,
            portal_id: PORTAL,
            app_id: 31_337,
            occurred_at: at(1_767_225_602),
            subscription_type: "object.associationChange".into(),
            object_type: ObjectType::Contact.into(),
            change_kind: WebhookChangeKind::AssociationChange.into(),
            attempt_number: 2,
            object_id: Some(51),
            object_type_id: Some("0-1".into()),
            change_source: Some("CRM_UI".into()),
            change_flag: Some("CREATED".into()),
            source_id: Some("userId:42".into()),
            property_name: Some("dealstage".into()),
            property_value: Some("closedwon".into()),
            primary_object_id: Some(51),
            merged_object_ids: vec![77, 78],
            new_object_id: Some(52),
            number_of_properties_moved: Some(12),
            association_type: Some("CONTACT_TO_COMPANY".into()),
            from_object_id: Some(51),
            to_object_id: Some(8123),
            association_removed: Some(true),
            is_primary_association: Some(false),
            from_object_type_id: Some("0-1".into()),
            to_object_type_id: Some("0-2".into()),
            association_type_id: Some(279),
            association_category: Some("HUBSPOT_DEFINED".into()),
            is_sensitive: Some(false),
        }],
    }
}

fn customer() -> Customer {
    Customer {
        external_id: 51,
        email: "ada@example.com".into(),
        name: Some("Ada Lovelace".into()),
        company_name: Some("Analytical Engines".into()),
        lead_status: Some("IN_PROGRESS".into()),
        last_activity_at: at(1_767_000_000),
        first_seen_at: at(1_700_000_000),
        lifecycle_stage: Some("opportunity".into()),
        owner_id: Some(1_234_567),
        source_updated_at: at(1_767_225_600),
        company_ids: vec![8123, 8124],
        primary_company_id: Some(8123),
        deal_ids: vec![7001],
        custom_attributes: attributes(),
    }
}

fn company() -> Company {
    Company {
        external_id: 8123,
        name: Some("Analytical Engines".into()),
        domain: Some("example.com".into()),
        industry: Some("COMPUTER_SOFTWARE".into()),
        employee_count: Some(250),
        annual_revenue_cents: Some(100_000_000_000),
        last_activity_at: at(1_767_100_000),
        source_updated_at: at(1_767_225_600),
        contact_ids: vec![51],
        deal_ids: vec![7001],
        custom_attributes: attributes(),
    }
}

fn deal() -> Deal {
    Deal {
        external_id: 7001,
        name: Some("Engine retrofit".into()),
        stage: "qualifiedtobuy".into(),
        pipeline: "default".into(),
        amount_cents: Some(1_234_567),
        closed_at: at(1_770_000_000),
        close_probability: Some(0.4),
        status: DealStatus::Open.into(),
        owner_id: Some(1_234_567),
        source_updated_at: at(1_767_225_600),
        contact_ids: vec![51],
        company_ids: vec![8123],
        custom_attributes: attributes(),
    }
}

fn owner() -> Owner {
    Owner {
        external_id: 1_234_567,
        email: Some("rep@example.com".into()),
        first_name: Some("Grace".into()),
        last_name: Some("Hopper".into()),
        kind: OwnerKind::Person.into(),
        user_id: Some(42),
        archived: true,
        source_updated_at: at(1_767_225_600),
    }
}

fn pipeline() -> Pipeline {
    Pipeline {
        external_id: "default".into(),
        label: "Sales Pipeline".into(),
        display_order: 1,
        archived: true,
        stages: vec![PipelineStage {
            id: "closedwon".into(),
            label: "Closed won".into(),
            display_order: 5,
            archived: true,
            probability: Some(1.0),
            is_closed: true,
        }],
        source_updated_at: at(1_767_225_600),
    }
}

fn crm_changed(object_type: ObjectType) -> CrmChanged {
    CrmChanged {
        org_id: ORG.into(),
        connection_id: CONNECTION.into(),
        portal_id: PORTAL,
        object_type: object_type.into(),
        cause: Some(crm_changed::Cause::WebhookBatchMessageId(
            "0190a6d2-0000-7000-8000-0000000000bb".into(),
        )),
        // Every list is filled here only so the round trip covers every field;
        // producers fill the one matching object_type.
        customers: vec![customer()],
        companies: vec![company()],
        deals: vec![deal()],
        owners: vec![owner()],
        pipelines: vec![pipeline()],
        deleted_ids: vec![99, 100],
        merges: vec![Merge {
            winner_id: 51,
            merged_ids: vec![77],
        }],
        committed_at: at(1_767_225_604),
    }
}

fn counts() -> Vec<ObjectCounts> {
    vec![ObjectCounts {
        object_type: ObjectType::Contact.into(),
        fetched: 1000,
        upserted: 990,
        skipped: 7,
        deleted: 3,
    }]
}

fn skipped() -> Vec<SkippedRecord> {
    vec![SkippedRecord {
        object_type: ObjectType::Contact.into(),
        object_id: 61,
        reason: SkipReason::MissingEmail.into(),
        detail: "email is empty".into(),
    }]
}

fn sync_progress() -> SyncProgress {
    SyncProgress {
        org_id: ORG.into(),
        connection_id: CONNECTION.into(),
        portal_id: PORTAL,
        sync_run_id: SYNC_RUN.into(),
        mode: SyncMode::Full.into(),
        counts: counts(),
        skipped_records: skipped(),
        started_at: at(1_767_225_600),
        reported_at: at(1_767_225_660),
    }
}

fn sync_completed(outcome: sync_completed::Outcome) -> SyncCompleted {
    SyncCompleted {
        org_id: ORG.into(),
        connection_id: CONNECTION.into(),
        portal_id: PORTAL,
        sync_run_id: SYNC_RUN.into(),
        mode: SyncMode::Incremental.into(),
        counts: counts(),
        skipped_records: skipped(),
        skipped_records_not_listed: 6,
        started_at: at(1_767_225_600),
        finished_at: at(1_767_225_900),
        outcome: Some(outcome),
    }
}

/// Two changes of one org, as a whole-org rescore publishes them.
fn score_updated_batch() -> ScoreUpdatedBatch {
    let mut second = score_updated();
    second.customer_id = "0190a6d2-0000-7000-8000-000000000099".into();
    second.contact_id = 501;
    second.object_id = 501;
    ScoreUpdatedBatch {
        org_id: ORG.into(),
        updates: vec![score_updated(), second],
    }
}

fn score_updated() -> ScoreUpdated {
    ScoreUpdated {
        org_id: ORG.into(),
        connection_id: CONNECTION.into(),
        portal_id: PORTAL,
        customer_id: "0190a6d2-0000-7000-8000-0000000000cc".into(),
        contact_id: 51,
        company_id: Some(8123),
        old_score: Some(35),
        new_score: Some(72),
        old_risk_level: RiskLevel::Critical.into(),
        new_risk_level: RiskLevel::Healthy.into(),
        factors: vec![
            ScoreFactor {
                name: "engagement_recency".into(),
                raw_input: Some(score_factor::RawInput::InputNumber(12.0)),
                input_unit: "days".into(),
                input_description: "last activity 12 days ago".into(),
                value: 0.552,
                weight: 25.0,
                contribution: 13.8,
            },
            ScoreFactor {
                name: "lifecycle_stage".into(),
                raw_input: Some(score_factor::RawInput::InputText("opportunity".into())),
                input_unit: String::new(),
                input_description: "lifecycle stage opportunity".into(),
                value: 0.65,
                weight: 15.0,
                contribution: 9.75,
            },
        ],
        config_version: 3,
        computed_at: at(1_767_225_605),
        object_type: ObjectType::Contact.into(),
        object_id: 51,
        top_factor: "engagement_recency".into(),
        contribution_deltas: vec![6.3, 0.0],
    }
}

fn score_alert() -> ScoreAlert {
    ScoreAlert {
        alert_id: "0190a6d2-0000-7000-8000-0000000000dd".into(),
        org_id: ORG.into(),
        connection_id: CONNECTION.into(),
        portal_id: PORTAL,
        customer_id: "0190a6d2-0000-7000-8000-0000000000cc".into(),
        object_type: ObjectType::Contact.into(),
        object_id: 51,
        reasons: vec![
            ScoreAlertReason::WorseRiskLevel.into(),
            ScoreAlertReason::ScoreDrop.into(),
        ],
        old_score: Some(72),
        new_score: 55,
        old_risk_level: RiskLevel::Healthy.into(),
        new_risk_level: RiskLevel::AtRisk.into(),
        reference_score: Some(74),
        drop_points: 19,
        window_days: 7,
        top_factor: "engagement_recency".into(),
        config_version: 3,
        computed_at: at(1_767_225_605),
    }
}

/// Two alerts of one org, as a whole-org rescore publishes them.
fn score_alert_batch() -> ScoreAlertBatch {
    let mut second = score_alert();
    second.alert_id = "0190a6d2-0000-7000-8000-0000000000de".into();
    second.customer_id = "0190a6d2-0000-7000-8000-000000000099".into();
    second.object_id = 501;
    ScoreAlertBatch {
        org_id: ORG.into(),
        alerts: vec![score_alert(), second],
    }
}

fn writeback_completed() -> WritebackCompleted {
    WritebackCompleted {
        org_id: ORG.into(),
        connection_id: CONNECTION.into(),
        portal_id: PORTAL,
        written: 95,
        unchanged: 4,
        failed: 1,
        failures: vec![WritebackFailure {
            object_type: ObjectType::Contact.into(),
            object_id: 51,
            reason: "OBJECT_NOT_FOUND".into(),
            retryable: true,
        }],
        score_message_ids: vec!["0190a6d2-0000-7000-8000-0000000000dd".into()],
        started_at: at(1_767_225_606),
        finished_at: at(1_767_225_607),
    }
}

fn assert_round_trip<T: Event + PartialEq + Debug>(message: &T) -> (&'static str, Vec<u8>) {
    let bytes = message.encode_to_vec();
    let decoded = T::decode(bytes.as_slice()).unwrap();
    assert_eq!(&decoded, message, "{} changed on the wire", T::TYPE_NAME);
    (T::TYPE_NAME, bytes)
}

/// Every sample, one per oneof alternative, round-tripped and encoded.
fn round_tripped_samples() -> Vec<(&'static str, Vec<u8>)> {
    let mut by_sync = crm_changed(ObjectType::Deal);
    by_sync.cause = Some(crm_changed::Cause::SyncRunId(SYNC_RUN.into()));
    vec![
        assert_round_trip(&connection_established()),
        assert_round_trip(&connection_closed()),
        assert_round_trip(&sync_requested(sync_requested::Scope::Full(FullScope {}))),
        assert_round_trip(&sync_requested(sync_requested::Scope::ObjectType(
            ObjectType::Deal.into(),
        ))),
        assert_round_trip(&sync_requested(sync_requested::Scope::Records(RecordIds {
            object_type: ObjectType::Company.into(),
            object_ids: vec![8123, 8124],
        }))),
        assert_round_trip(&webhook_batch()),
        assert_round_trip(&crm_changed(ObjectType::Contact)),
        assert_round_trip(&by_sync),
        assert_round_trip(&sync_progress()),
        assert_round_trip(&sync_completed(sync_completed::Outcome::Succeeded(
            SyncSucceeded {},
        ))),
        assert_round_trip(&sync_completed(sync_completed::Outcome::Failed(
            SyncFailed {
                reason: "HubSpot answered 401 for the access token".into(),
            },
        ))),
        assert_round_trip(&score_updated()),
        assert_round_trip(&score_updated_batch()),
        assert_round_trip(&score_alert()),
        assert_round_trip(&score_alert_batch()),
        assert_round_trip(&writeback_completed()),
    ]
}

#[test]
fn every_event_with_all_fields_set_survives_encode_and_decode() {
    // The round trips assert inside; samples_set_every_field_of_every_hubscore_message
    // proves the samples leave no field unset.
    let kinds: BTreeSet<_> = round_tripped_samples()
        .into_iter()
        .map(|(type_name, _)| type_name)
        .collect();
    assert_eq!(kinds, ALL_TYPE_NAMES.iter().copied().collect());
}

/// Reads one base-128 varint, advancing `bytes`.
fn varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().unwrap();
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    value
}

/// Records `(message, field number)` for every field present on the wire in
/// `bytes`, descending into hubscore.v1 sub-messages (map entries included).
fn fields_on_the_wire(
    messages: &HashMap<String, DescriptorProto>,
    message: &str,
    mut bytes: &[u8],
    seen: &mut BTreeSet<(String, i32)>,
) {
    let descriptor = &messages[message];
    while !bytes.is_empty() {
        let key = varint(&mut bytes);
        let number = i32::try_from(key >> 3).unwrap();
        seen.insert((message.to_owned(), number));
        match key & 7 {
            0 => {
                varint(&mut bytes);
            }
            1 => bytes = &bytes[8..],
            5 => bytes = &bytes[4..],
            2 => {
                let len = usize::try_from(varint(&mut bytes)).unwrap();
                let (payload, rest) = bytes.split_at(len);
                bytes = rest;
                let field = descriptor
                    .field
                    .iter()
                    .find(|field| field.number() == number)
                    .unwrap();
                if field.r#type() == Type::Message && messages.contains_key(field.type_name()) {
                    fields_on_the_wire(messages, field.type_name(), payload, seen);
                }
            }
            other => panic!("unexpected wire type {other} in {message}"),
        }
    }
}

fn collect_messages(
    prefix: &str,
    descriptors: &[DescriptorProto],
    into: &mut HashMap<String, DescriptorProto>,
) {
    for descriptor in descriptors {
        let name = format!("{prefix}.{}", descriptor.name());
        collect_messages(&name, &descriptor.nested_type, into);
        into.insert(name, descriptor.clone());
    }
}

#[test]
fn samples_set_every_field_of_every_hubscore_message() {
    // A field added to a .proto without a sample value here fails this test, so
    // the round trip keeps covering everything.
    let fds = FileDescriptorSet::decode(
        include_bytes!(concat!(env!("OUT_DIR"), "/hubscore.v1.fds")).as_slice(),
    )
    .unwrap();
    let mut messages = HashMap::new();
    for file in fds
        .file
        .iter()
        .filter(|file| file.package() == "hubscore.v1")
    {
        collect_messages(".hubscore.v1", &file.message_type, &mut messages);
    }
    assert!(messages.contains_key(".hubscore.v1.WebhookEvent"));
    let mut seen = BTreeSet::new();
    for (type_name, bytes) in round_tripped_samples() {
        fields_on_the_wire(&messages, &format!(".{type_name}"), &bytes, &mut seen);
    }
    let mut missing = Vec::new();
    for (name, descriptor) in &messages {
        for field in &descriptor.field {
            if !seen.contains(&(name.clone(), field.number())) {
                missing.push(format!("{name}.{}", field.name()));
            }
        }
    }
    missing.sort();
    assert!(missing.is_empty(), "never set in a sample: {missing:?}");
}

#[test]
fn score_without_a_value_stays_not_applicable_rather_than_zero() {
    let mut update = score_updated();
    update.old_score = Some(0);
    update.new_score = None;
    update.new_risk_level = RiskLevel::None.into();
    update.factors.clear();
    let decoded = ScoreUpdated::decode(update.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded.old_score, Some(0));
    assert_eq!(decoded.new_score, None);
    assert_eq!(decoded.new_risk_level(), RiskLevel::None);
}

fn assert_type_name<T: Event + Name>() {
    assert_eq!(T::TYPE_NAME, T::full_name());
}

#[test]
fn every_amqp_type_is_the_protobuf_full_name() {
    assert_type_name::<ConnectionEstablished>();
    assert_type_name::<ConnectionClosed>();
    assert_type_name::<SyncRequested>();
    assert_type_name::<WebhookBatch>();
    assert_type_name::<CrmChanged>();
    assert_type_name::<SyncProgress>();
    assert_type_name::<SyncCompleted>();
    assert_type_name::<ScoreUpdated>();
    assert_type_name::<ScoreUpdatedBatch>();
    assert_type_name::<ScoreAlert>();
    assert_type_name::<ScoreAlertBatch>();
    assert_type_name::<WritebackCompleted>();
    assert_eq!(ScoreUpdated::TYPE_NAME, "hubscore.v1.ScoreUpdated");
    assert_eq!(ScoreAlertBatch::TYPE_NAME, "hubscore.v1.ScoreAlertBatch");
    let unique: BTreeSet<_> = ALL_TYPE_NAMES.iter().collect();
    assert_eq!(unique.len(), 12);
    assert_eq!(ALL_TYPE_NAMES.len(), 12);
}

#[test]
fn fixed_routing_keys_are_the_ones_design_lists() {
    let fixed = [
        (
            connection_established().routing_key(),
            "connection.established",
        ),
        (connection_closed().routing_key(), "connection.closed"),
        (
            sync_requested(sync_requested::Scope::Full(FullScope {})).routing_key(),
            "sync.requested",
        ),
        (webhook_batch().routing_key(), "webhook.batch"),
        (sync_progress().routing_key(), "sync.progress"),
        (
            sync_completed(sync_completed::Outcome::Succeeded(SyncSucceeded {})).routing_key(),
            "sync.completed",
        ),
        (score_updated().routing_key(), "score.updated"),
        (score_updated_batch().routing_key(), "score.updated"),
        (score_alert().routing_key(), "score.alert"),
        (writeback_completed().routing_key(), "writeback.completed"),
    ];
    for (actual, expected) in fixed {
        assert_eq!(actual, expected);
    }
}

#[test]
fn crm_changed_is_routed_by_its_object_type() {
    let routed = [
        (ObjectType::Contact, "crm.changed.contact"),
        (ObjectType::Company, "crm.changed.company"),
        (ObjectType::Deal, "crm.changed.deal"),
        (ObjectType::Owner, "crm.changed.owner"),
        (ObjectType::Pipeline, "crm.changed.pipeline"),
        (ObjectType::Unspecified, "crm.changed.unspecified"),
    ];
    for (object_type, key) in routed {
        assert_eq!(crm_changed(object_type).routing_key(), key);
    }
    let mut unknown = crm_changed(ObjectType::Contact);
    unknown.object_type = 999;
    assert_eq!(unknown.routing_key(), "crm.changed.unspecified");
    assert!(!CrmChanged::ROUTING_KEYS.contains(&"crm.changed.unspecified"));
}

#[test]
fn every_routing_key_belongs_to_exactly_one_message_kind() {
    let per_kind: [&[&str]; 10] = [
        ConnectionEstablished::ROUTING_KEYS,
        ConnectionClosed::ROUTING_KEYS,
        SyncRequested::ROUTING_KEYS,
        WebhookBatch::ROUTING_KEYS,
        CrmChanged::ROUTING_KEYS,
        SyncProgress::ROUTING_KEYS,
        SyncCompleted::ROUTING_KEYS,
        ScoreUpdated::ROUTING_KEYS,
        ScoreAlert::ROUTING_KEYS,
        WritebackCompleted::ROUTING_KEYS,
    ];
    let listed: Vec<&str> = per_kind
        .iter()
        .flat_map(|keys| keys.iter().copied())
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a key is shared: {listed:?}");
    // The two kinds that share a key on purpose: a batch of score changes (of alerts)
    // travels where a single change (alert) does, so that a queue bound to score.updated
    // (score.alert) sees them all.
    assert_eq!(ScoreUpdatedBatch::ROUTING_KEYS, ScoreUpdated::ROUTING_KEYS);
    assert_eq!(ScoreAlertBatch::ROUTING_KEYS, ScoreAlert::ROUTING_KEYS);
    assert_eq!(unique, ALL_ROUTING_KEYS.iter().copied().collect());
    let expected: BTreeSet<&str> = [
        "connection.established",
        "connection.closed",
        "sync.requested",
        "webhook.batch",
        "crm.changed.contact",
        "crm.changed.company",
        "crm.changed.deal",
        "crm.changed.owner",
        "crm.changed.pipeline",
        "sync.progress",
        "sync.completed",
        "score.updated",
        "score.alert",
        "writeback.completed",
    ]
    .into_iter()
    .collect();
    assert_eq!(unique, expected);
}

#[test]
fn routing_key_of_each_sample_is_among_its_kinds_declared_keys() {
    fn declared<T: Event>(message: &T) -> bool {
        T::ROUTING_KEYS.contains(&message.routing_key().as_str())
    }
    assert!(declared(&connection_established()));
    assert!(declared(&score_updated()));
    assert!(declared(&crm_changed(ObjectType::Pipeline)));
    assert!(declared(&crm_changed(ObjectType::Owner)));
}

#[test]
fn score_changes_reads_a_change_alone_or_every_change_of_a_batch() {
    let one = score_updated();
    let batch = score_updated_batch();
    assert_eq!(
        contracts::score_changes(ScoreUpdated::TYPE_NAME, &one.encode_to_vec())
            .unwrap()
            .unwrap(),
        vec![one]
    );
    assert_eq!(
        contracts::score_changes(ScoreUpdatedBatch::TYPE_NAME, &batch.encode_to_vec())
            .unwrap()
            .unwrap(),
        batch.updates
    );
    assert!(
        contracts::score_changes(ScoreAlert::TYPE_NAME, &score_alert().encode_to_vec()).is_none()
    );
    assert!(
        contracts::score_changes(ScoreUpdatedBatch::TYPE_NAME, &[0xff, 0xff])
            .unwrap()
            .is_err()
    );
}

#[test]
fn score_alerts_reads_an_alert_alone_or_every_alert_of_a_batch() {
    let one = score_alert();
    let batch = score_alert_batch();
    assert_eq!(
        contracts::score_alerts(ScoreAlert::TYPE_NAME, &one.encode_to_vec())
            .unwrap()
            .unwrap(),
        vec![one]
    );
    assert_eq!(
        contracts::score_alerts(ScoreAlertBatch::TYPE_NAME, &batch.encode_to_vec())
            .unwrap()
            .unwrap(),
        batch.alerts
    );
    assert_eq!(
        score_alert_batch().routing_key(),
        "score.alert",
        "a batch of alerts travels where one alert does"
    );
    assert!(
        contracts::score_alerts(ScoreUpdated::TYPE_NAME, &score_updated().encode_to_vec())
            .is_none()
    );
    assert!(
        contracts::score_alerts(ScoreAlertBatch::TYPE_NAME, &[0xff, 0xff])
            .unwrap()
            .is_err()
    );
}
