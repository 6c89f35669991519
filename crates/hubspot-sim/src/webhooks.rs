//! Webhook events and their delivery (hubspot-api.md §9): every change becomes
//! events in HubSpot's payload shapes, gathered for a short window, posted in
//! JSON arrays of at most 100 with v1 and v3 signatures (re-signed with a fresh
//! timestamp on every attempt), retried with growing delays and `attemptNumber`
//! counting up, at most 10 deliveries in flight per portal.
//!
//! Delivery never holds a portal lock across the HTTP call.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use rand::seq::SliceRandom as _;
use serde_json::{Map, Value, json};

use crate::model::{ObjectType, now_ms};
use crate::signing::{sign_v1, sign_v2, sign_v3};
use crate::state::{Portal, Sim};

/// HubSpot's default cap on concurrent deliveries per installing account.
pub const MAX_CONCURRENT_DELIVERIES: usize = 10;
/// Events per delivery at most.
pub const MAX_EVENTS_PER_BATCH: usize = 100;

/// What happened to a record.
#[derive(Debug, Clone)]
pub enum ChangeKind {
    /// Created.
    Creation,
    /// Archived (deleted).
    Deletion,
    /// One property got a new value (`""` when cleared).
    PropertyChange {
        /// Property name.
        name: String,
        /// The new value.
        value: String,
    },
    /// Other records were merged into this one.
    Merge {
        /// The ids merged in.
        merged: Vec<u64>,
        /// How many property values moved.
        moved: usize,
    },
    /// Restored from the recycle bin.
    Restore,
    /// An association to another record was added or removed.
    AssociationChange {
        /// The other side's type.
        to_type: ObjectType,
        /// The other side's id.
        to_id: u64,
        /// Removed rather than added.
        removed: bool,
        /// This event is about the primary association (the unlabeled one gets its own).
        primary: bool,
        /// The v4 association type id.
        type_id: u32,
    },
    /// Permanently deleted for privacy (GDPR).
    PrivacyDeletion,
}

/// One change of one record.
#[derive(Debug, Clone)]
pub struct Change {
    /// The record's type.
    pub ot: ObjectType,
    /// The record's id.
    pub object_id: u64,
    /// What happened.
    pub kind: ChangeKind,
}

/// Who made a change: `changeSource` and `sourceId`.
#[derive(Debug, Clone)]
pub struct Source {
    /// `API`, `CRM_UI`, ...
    pub change_source: &'static str,
    /// e.g. `userId:42`.
    pub source_id: Option<String>,
}

impl Source {
    /// A change made through the public API.
    pub fn api() -> Source {
        Source {
            change_source: "API",
            source_id: None,
        }
    }

    /// A change made by a user in HubSpot (the control API and the change stream).
    pub fn crm_ui() -> Source {
        Source {
            change_source: "CRM_UI",
            source_id: Some("userId:42".to_owned()),
        }
    }
}

/// One subscription: `contact.propertyChange`, `object.creation`, optionally limited to one property.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The id in payloads.
    pub id: u64,
    /// `contact`, `company`, `deal` or `object`.
    pub object: String,
    /// `creation`, `deletion`, `propertyChange`, `merge`, `restore`, `associationChange`, `privacyDeletion`.
    pub event: String,
    /// For property changes: only this property.
    pub property: Option<String>,
}

const EVENTS: [&str; 6] = [
    "creation",
    "deletion",
    "propertyChange",
    "merge",
    "restore",
    "associationChange",
];

/// Parses `contact.propertyChange` or `contact.propertyChange:email`.
pub fn parse_subscription(id: u64, text: &str) -> Option<Subscription> {
    let (kind, property) = match text.split_once(':') {
        Some((k, p)) => (k, Some(p.to_owned())),
        None => (text, None),
    };
    let (object, event) = kind.split_once('.')?;
    if !["contact", "company", "deal", "object"].contains(&object) {
        return None;
    }
    if !(EVENTS.contains(&event) || (event == "privacyDeletion" && object == "contact")) {
        return None;
    }
    Some(Subscription {
        id,
        object: object.to_owned(),
        event: event.to_owned(),
        property,
    })
}

/// The legacy subscriptions every portal has unless told otherwise.
pub fn default_subscriptions() -> Vec<Subscription> {
    let mut subs = Vec::new();
    for object in ["contact", "company", "deal"] {
        for event in EVENTS {
            subs.push(format!("{object}.{event}"));
        }
    }
    subs.push("contact.privacyDeletion".to_owned());
    subs.iter()
        .enumerate()
        .filter_map(|(i, s)| parse_subscription(1000 + i as u64, s))
        .collect()
}

/// The algorithm behind a delivery's `X-HubSpot-Signature` header (hubspot-api.md §9.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// SHA-256 of `client_secret + body`.
    #[default]
    V1,
    /// SHA-256 of `client_secret + method + uri + body`.
    V2,
}

impl SignatureVersion {
    /// `v1` or `v2`, as in `X-HubSpot-Signature-Version`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

/// A portal's webhook configuration, pending events and counters.
#[derive(Debug)]
pub struct HookState {
    /// Where batches go; no events are kept while unset.
    pub target_url: Option<String>,
    /// Probability that a batch is delivered twice.
    pub duplicate_rate: f64,
    /// Deliver events and batches out of order.
    pub shuffle: bool,
    /// What `X-HubSpot-Signature` carries: `v1` (what HubSpot sends for Webhooks-API CRM
    /// events, the default) or `v2`; `X-HubSpot-Signature-v3` is always sent too.
    pub signature_version: SignatureVersion,
    /// Active subscriptions.
    pub subscriptions: Vec<Subscription>,
    /// Events waiting for the next batch window.
    pub queue: Vec<Map<String, Value>>,
    /// The next `eventId`.
    pub next_event_id: u64,
    /// Batches answered 2xx.
    pub delivered_batches: u64,
    /// Events in those batches.
    pub delivered_events: u64,
    /// Attempts that failed (non-2xx, timeout, connection error).
    pub failed_attempts: u64,
    /// Batches that gave up after the last attempt.
    pub abandoned_batches: u64,
    /// Batches queued or being retried.
    pub in_flight_batches: u64,
}

impl Default for HookState {
    fn default() -> Self {
        HookState {
            target_url: None,
            duplicate_rate: 0.0,
            shuffle: false,
            signature_version: SignatureVersion::default(),
            subscriptions: default_subscriptions(),
            queue: Vec::new(),
            next_event_id: 100_001,
            delivered_batches: 0,
            delivered_events: 0,
            failed_attempts: 0,
            abandoned_batches: 0,
            in_flight_batches: 0,
        }
    }
}

impl HookState {
    /// The `/_sim/.../webhooks` JSON.
    pub fn to_json(&self) -> Value {
        let subs: Vec<String> = self
            .subscriptions
            .iter()
            .map(|s| match &s.property {
                Some(p) => format!("{}.{}:{}", s.object, s.event, p),
                None => format!("{}.{}", s.object, s.event),
            })
            .collect();
        json!({
            "target_url": self.target_url, "duplicate_rate": self.duplicate_rate, "shuffle": self.shuffle,
            "signature_version": self.signature_version.as_str(),
            "subscriptions": subs, "queued_events": self.queue.len(),
            "delivered_batches": self.delivered_batches, "delivered_events": self.delivered_events,
            "failed_attempts": self.failed_attempts, "abandoned_batches": self.abandoned_batches,
            "in_flight_batches": self.in_flight_batches,
        })
    }
}

/// The legacy association type name of a direction (`CONTACT_TO_COMPANY`).
fn association_type_name(from: ObjectType, to: ObjectType) -> String {
    format!("{}_TO_{}", from.upper(), to.upper())
}

/// Turns changes into events for the portal's subscriptions and queues them.
/// Does nothing while the portal has no webhook target.
pub fn emit(portal: &Portal, changes: &[Change], source: &Source) {
    if changes.is_empty() {
        return;
    }
    let mut hooks = portal.hooks.lock();
    if hooks.target_url.is_none() {
        return;
    }
    let occurred_at = now_ms();
    let mut events = Vec::new();
    for change in changes {
        for sub in &hooks.subscriptions {
            let generic = sub.object == "object";
            if !generic && sub.object != change.ot.singular() {
                continue;
            }
            let (event, mut fields) = match &change.kind {
                ChangeKind::Creation => (
                    "creation",
                    json!({"objectId": change.object_id, "changeFlag": if generic { "CREATED" } else { "NEW" }}),
                ),
                ChangeKind::Deletion => (
                    "deletion",
                    json!({"objectId": change.object_id, "changeFlag": "DELETED"}),
                ),
                ChangeKind::Restore => (
                    "restore",
                    json!({"objectId": change.object_id, "changeFlag": "RESTORED"}),
                ),
                ChangeKind::PrivacyDeletion => {
                    if generic {
                        continue;
                    }
                    (
                        "privacyDeletion",
                        json!({"objectId": change.object_id, "changeFlag": "PRIVACY_DELETED"}),
                    )
                }
                ChangeKind::PropertyChange { name, value } => {
                    if sub.property.as_deref().is_some_and(|p| p != name) {
                        continue;
                    }
                    (
                        "propertyChange",
                        json!({"objectId": change.object_id, "propertyName": name, "propertyValue": value}),
                    )
                }
                ChangeKind::Merge { merged, moved } => (
                    "merge",
                    json!({"objectId": change.object_id, "primaryObjectId": change.object_id, "mergedObjectIds": merged,
                           "newObjectId": change.object_id, "numberOfPropertiesMoved": moved, "changeFlag": "MERGED"}),
                ),
                ChangeKind::AssociationChange {
                    to_type,
                    to_id,
                    removed,
                    primary,
                    type_id,
                } => {
                    let mut f = json!({"associationType": association_type_name(change.ot, *to_type),
                        "fromObjectId": change.object_id, "toObjectId": to_id,
                        "associationRemoved": removed, "isPrimaryAssociation": primary});
                    if generic {
                        f["fromObjectTypeId"] = json!(change.ot.type_id());
                        f["toObjectTypeId"] = json!(to_type.type_id());
                        f["associationTypeId"] = json!(type_id);
                        f["associationCategory"] = json!("HUBSPOT_DEFINED");
                    }
                    ("associationChange", f)
                }
            };
            if sub.event != event {
                continue;
            }
            let mut e = Map::new();
            e.insert("eventId".into(), json!(0));
            e.insert("subscriptionId".into(), json!(sub.id));
            e.insert("portalId".into(), json!(portal.id));
            e.insert("appId".into(), json!(portal.app_id));
            e.insert("occurredAt".into(), json!(occurred_at));
            e.insert(
                "subscriptionType".into(),
                json!(format!("{}.{}", sub.object, event)),
            );
            e.insert("attemptNumber".into(), json!(0));
            if generic {
                e.insert("objectTypeId".into(), json!(change.ot.type_id()));
            }
            if let Value::Object(extra) = fields.take() {
                e.extend(extra);
            }
            e.insert("changeSource".into(), json!(source.change_source));
            if let Some(id) = &source.source_id {
                e.insert("sourceId".into(), json!(id));
            }
            events.push(e);
        }
    }
    for mut e in events {
        let id = hooks.next_event_id;
        hooks.next_event_id += 1;
        e.insert("eventId".into(), json!(id));
        hooks.queue.push(e);
    }
}

/// Gathers queued events every batch window and starts their deliveries. Runs until aborted.
pub async fn run_dispatcher(sim: Arc<Sim>) {
    let window = Duration::from_millis(sim.config.webhook_batch_window_ms.max(1));
    loop {
        tokio::time::sleep(window).await;
        let portals: Vec<Arc<Portal>> = sim.portals.read().values().cloned().collect();
        for portal in portals {
            let (url, mut events, shuffle, duplicate_rate) = {
                let mut hooks = portal.hooks.lock();
                if hooks.queue.is_empty() {
                    continue;
                }
                let Some(url) = hooks.target_url.clone() else {
                    hooks.queue.clear();
                    continue;
                };
                (
                    url,
                    std::mem::take(&mut hooks.queue),
                    hooks.shuffle,
                    hooks.duplicate_rate,
                )
            };
            if shuffle {
                events.shuffle(&mut rand::rng());
            }
            let mut batches: Vec<Vec<Map<String, Value>>> = Vec::new();
            while !events.is_empty() {
                let rest = events.split_off(events.len().min(MAX_EVENTS_PER_BATCH));
                batches.push(std::mem::replace(&mut events, rest));
            }
            if shuffle {
                batches.shuffle(&mut rand::rng());
            }
            for batch in batches {
                let copies = if duplicate_rate > 0.0
                    && rand::rng().random_bool(duplicate_rate.clamp(0.0, 1.0))
                {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    portal.hooks.lock().in_flight_batches += 1;
                    sim.runtime.spawn(deliver(
                        sim.clone(),
                        portal.clone(),
                        url.clone(),
                        batch.clone(),
                    ));
                }
            }
        }
    }
}

/// The delay before retry number `attempt` (1-based): doubling from the base, with jitter.
fn retry_delay(base_ms: u64, attempt: u32) -> Duration {
    let grown = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(10));
    let jitter = rand::rng().random_range(0..=grown / 4);
    Duration::from_millis(grown + jitter)
}

/// Whether `portal` is still the simulator's portal of that id (not dropped by a reset).
fn is_registered(sim: &Sim, portal: &Arc<Portal>) -> bool {
    sim.portal(portal.id)
        .is_some_and(|current| Arc::ptr_eq(&current, portal))
}

/// Delivers one batch, retrying until a 2xx or the attempts run out.
async fn deliver(
    sim: Arc<Sim>,
    portal: Arc<Portal>,
    url: String,
    mut events: Vec<Map<String, Value>>,
) {
    let max_attempts = sim.config.webhook_max_attempts.max(1);
    for attempt in 0..max_attempts {
        if attempt > 0 {
            tokio::time::sleep(retry_delay(sim.config.webhook_retry_base_ms, attempt)).await;
        }
        for e in &mut events {
            e.insert("attemptNumber".into(), json!(attempt));
        }
        let Ok(body) = serde_json::to_vec(&events) else {
            return;
        };
        let Ok(_permit) = portal.delivery_slots.clone().acquire_owned().await else {
            return;
        };
        if !is_registered(&sim, &portal) {
            // A reset (or a stopped simulator) dropped the portal: its deliveries die with it.
            return;
        }
        // A fresh timestamp per attempt, so retries pass the receiver's 5-minute check.
        let timestamp = now_ms().to_string();
        let version = portal.hooks.lock().signature_version;
        let signature = match version {
            SignatureVersion::V1 => sign_v1(&portal.client_secret, &body),
            SignatureVersion::V2 => sign_v2(&portal.client_secret, "POST", &url, &body),
        };
        let response = sim
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("User-Agent", "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks-nio-http-client) - WebhooksExecutorDaemon-executor")
            .header("X-HubSpot-Signature", signature)
            .header("X-HubSpot-Signature-Version", version.as_str())
            .header("X-HubSpot-Signature-v3", sign_v3(&portal.client_secret, "POST", &url, &body, &timestamp))
            .header("X-HubSpot-Request-Timestamp", &timestamp)
            .header("X-HubSpot-Timeout-Millis", sim.config.webhook_timeout_ms.to_string())
            .body(body)
            .send()
            .await;
        let ok = match response {
            Ok(r) => r.status().is_success(),
            Err(e) => {
                tracing::debug!(error = %e, "webhook delivery failed");
                false
            }
        };
        let mut hooks = portal.hooks.lock();
        if ok {
            hooks.delivered_batches += 1;
            hooks.delivered_events += events.len() as u64;
            hooks.in_flight_batches = hooks.in_flight_batches.saturating_sub(1);
            return;
        }
        hooks.failed_attempts += 1;
    }
    let mut hooks = portal.hooks.lock();
    hooks.abandoned_batches += 1;
    hooks.in_flight_batches = hooks.in_flight_batches.saturating_sub(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_from_the_base_with_at_most_a_quarter_of_jitter() {
        for attempt in 1..=10u32 {
            let floor = 100u64 << (attempt - 1);
            for _ in 0..20 {
                let ms = retry_delay(100, attempt).as_millis() as u64;
                assert!(
                    (floor..=floor + floor / 4).contains(&ms),
                    "retry {attempt} waited {ms} ms"
                );
            }
        }
    }

    #[test]
    fn subscriptions_parse_legacy_generic_and_per_property_forms() {
        let s = parse_subscription(1, "deal.propertyChange:dealstage").expect("parses");
        assert_eq!(
            (s.object.as_str(), s.event.as_str(), s.property.as_deref()),
            ("deal", "propertyChange", Some("dealstage"))
        );
        assert!(parse_subscription(2, "object.associationChange").is_some());
        assert!(parse_subscription(3, "contact.privacyDeletion").is_some());
        assert!(parse_subscription(4, "deal.privacyDeletion").is_none());
        assert!(parse_subscription(5, "ticket.creation").is_none());
        assert_eq!(default_subscriptions().len(), 19);
    }
}
