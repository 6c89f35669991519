//! `sync-worker.webhooks`: applies `webhook.batch`. Events already applied (by their
//! identity) are skipped. Deletions, merges and privacy deletions are applied directly,
//! ordered by when they occurred; creations, property changes, restores and association
//! changes are coalesced per object type and read back from HubSpot with batch reads
//! (100 ids per call, associations 1,000 per call), so whatever order events arrive in,
//! the mirror ends at HubSpot's current state. Everything one batch changes is written,
//! and published as `crm.changed`, in one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use contracts::v1::{self, WebhookChangeKind};
use diesel::sql_types::{Array, BigInt, Timestamptz, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use platform::amqp::{Delivery, Outcome};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::retry;
use crate::context::Context;
use crate::db::connections::{self, Connection};
use crate::db::mirror::{self, Edge, MappedPage, RecordType};
use crate::db::publish::{self, PublishContext};
use crate::hubspot::Purpose;
use crate::sync::{read_associations, read_batch};

/// The routing keys it is bound to.
pub const ROUTING_KEYS: [&str; 1] = ["webhook.batch"];

/// An event's identity: HubSpot's eventId alone is not unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Identity {
    subscription_id: i64,
    event_id: i64,
    object_id: i64,
    occurred_at: DateTime<Utc>,
}

fn occurred_at(event: &v1::WebhookEvent) -> DateTime<Utc> {
    event
        .occurred_at
        .as_ref()
        .and_then(|t| contracts::time::to_datetime(t).ok())
        .unwrap_or_else(Utc::now)
}

fn identity(event: &v1::WebhookEvent) -> Identity {
    Identity {
        subscription_id: event.subscription_id,
        event_id: event.event_id,
        object_id: event.object_id.or(event.from_object_id).unwrap_or_default(),
        occurred_at: occurred_at(event),
    }
}

/// Where a (possibly coalesced) batch came from: named on the `crm.changed` it causes.
struct Source {
    message_id: Uuid,
    correlation_id: String,
}

/// One delivery waiting for the applier.
pub struct Waiting {
    batch: v1::WebhookBatch,
    source: Source,
    reply: oneshot::Sender<Outcome>,
}

/// Hands decoded deliveries to the applier task and waits for their outcome.
#[derive(Clone)]
pub struct WebhookSink {
    sender: mpsc::Sender<Waiting>,
}

impl WebhookSink {
    /// A sink and the applier's receiving end (see [`apply_coalesced`]).
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Waiting>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (Self { sender }, receiver)
    }

    /// Handles one `webhook.batch`: acked once the applier applied it (with whatever else
    /// was waiting).
    pub async fn handle(&self, delivery: Delivery) -> Outcome {
        let batch: v1::WebhookBatch = match delivery.decode() {
            Ok(batch) => batch,
            Err(error) => return Outcome::DeadLetter(error.to_string()),
        };
        let (reply, outcome) = oneshot::channel();
        let waiting = Waiting {
            batch,
            source: Source {
                message_id: delivery.message_id,
                correlation_id: delivery.correlation_id.clone(),
            },
            reply,
        };
        if self.sender.send(waiting).await.is_err() {
            return Outcome::Retry("the webhook applier stopped".to_owned());
        }
        outcome
            .await
            .unwrap_or_else(|_| Outcome::Retry("the webhook applier stopped".to_owned()))
    }
}

/// Applies what the sink hands over until every sink is dropped. Deliveries that wait
/// together (up to `max_deliveries`, about 1,000 events) are coalesced per portal into one
/// batch: one set of reads from HubSpot and one transaction for all of them. Idle, a
/// delivery is applied alone at once; behind, the groups grow, so each change costs fewer
/// of the portal's requests exactly when they are scarce. A group whose application fails
/// for good is applied again delivery by delivery, so only the offending one is
/// dead-lettered.
pub async fn apply_coalesced(
    ctx: Arc<Context>,
    mut receiver: mpsc::Receiver<Waiting>,
    max_deliveries: usize,
) {
    while let Some(first) = receiver.recv().await {
        let mut events = first.batch.events.len();
        let mut group = vec![first];
        while group.len() < max_deliveries.max(1) && events < MAX_COALESCED_EVENTS {
            match receiver.try_recv() {
                Ok(next) => {
                    events += next.batch.events.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let mut by_portal: BTreeMap<(i64, Option<String>), Vec<Waiting>> = BTreeMap::new();
        for waiting in group {
            let key = (waiting.batch.portal_id, waiting.batch.connection_id.clone());
            by_portal.entry(key).or_default().push(waiting);
        }
        for (_, waiting) in by_portal {
            ctx.metrics
                .webhook_deliveries_coalesced
                .observe(waiting.len() as f64);
            let mut merged = waiting[0].batch.clone();
            merged.events = waiting
                .iter()
                .flat_map(|w| w.batch.events.iter().cloned())
                .collect();
            let outcome = handle_batch(&ctx, &merged, &waiting[0].source).await;
            if waiting.len() > 1 && matches!(outcome, Outcome::DeadLetter(_)) {
                for w in waiting {
                    let alone = handle_batch(&ctx, &w.batch, &w.source).await;
                    let _ = w.reply.send(alone);
                }
                continue;
            }
            for w in waiting {
                let _ = w.reply.send(outcome.clone());
            }
        }
    }
}

/// Events coalesced into one application at most (ten full deliveries).
const MAX_COALESCED_EVENTS: usize = 1_000;

/// Applies one batch (a delivery, or several coalesced) to every active connection of its
/// portal.
async fn handle_batch(ctx: &Context, batch: &v1::WebhookBatch, source: &Source) -> Outcome {
    let mut conn = match ctx.pool.get().await {
        Ok(conn) => conn,
        Err(error) => return retry(error),
    };
    let targets = match connections::active_for_portal(&mut conn, batch.portal_id).await {
        Ok(targets) => targets,
        Err(error) => return retry(error),
    };
    drop(conn);
    if targets.is_empty() {
        ctx.metrics
            .webhook_events_dropped
            .with_label_values(&["no_active_connection"])
            .inc_by(batch.events.len() as u64);
        tracing::info!(
            hubspot.portal_id = batch.portal_id,
            events = batch.events.len(),
            "webhook events for a portal with no active connection dropped"
        );
        return Outcome::Ack;
    }
    for connection in &targets {
        if let Err(outcome) = apply(ctx, connection, batch, source).await {
            return outcome;
        }
    }
    Outcome::Ack
}

#[derive(QueryableByName)]
struct SeenRow {
    #[diesel(sql_type = BigInt)]
    subscription_id: i64,
    #[diesel(sql_type = BigInt)]
    event_id: i64,
    #[diesel(sql_type = BigInt)]
    object_id: i64,
    #[diesel(sql_type = Timestamptz)]
    occurred_at: DateTime<Utc>,
}

async fn already_applied(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    identities: &[Identity],
) -> diesel::QueryResult<BTreeSet<Identity>> {
    let rows: Vec<SeenRow> = sql_query(
        "SELECT w.subscription_id, w.event_id, w.object_id, w.occurred_at
         FROM webhook_events w
         JOIN UNNEST($2::bigint[], $3::bigint[], $4::bigint[], $5::timestamptz[]) AS u(s, e, o, t)
           ON w.subscription_id = u.s AND w.event_id = u.e AND w.object_id = u.o AND w.occurred_at = u.t
         WHERE w.connection_id = $1",
    )
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<Array<BigInt>, _>(identities.iter().map(|i| i.subscription_id).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(identities.iter().map(|i| i.event_id).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(identities.iter().map(|i| i.object_id).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(identities.iter().map(|i| i.occurred_at).collect::<Vec<_>>())
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Identity {
            subscription_id: r.subscription_id,
            event_id: r.event_id,
            object_id: r.object_id,
            occurred_at: r.occurred_at,
        })
        .collect())
}

async fn record_applied(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    identities: &[Identity],
) -> diesel::QueryResult<()> {
    sql_query(
        "INSERT INTO webhook_events (connection_id, subscription_id, event_id, object_id, occurred_at)
         SELECT $1, u.* FROM UNNEST($2::bigint[], $3::bigint[], $4::bigint[], $5::timestamptz[]) AS u
         ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<Array<BigInt>, _>(identities.iter().map(|i| i.subscription_id).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(identities.iter().map(|i| i.event_id).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(identities.iter().map(|i| i.object_id).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(identities.iter().map(|i| i.occurred_at).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map(drop)
}

/// What a batch asks for, coalesced.
#[derive(Default)]
struct Plan {
    /// Records to read back, per type.
    refetch: BTreeMap<RecordType, BTreeSet<i64>>,
    /// Canonical ids whose associations to read back, per edge.
    associations: Vec<(Edge, BTreeSet<i64>)>,
    /// (type, id) -> when it was deleted (the latest deletion event).
    deletions: BTreeMap<(RecordType, i64), DateTime<Utc>>,
    /// (type, winner, loser, when).
    merges: Vec<(RecordType, i64, i64, DateTime<Utc>)>,
    /// Contacts erased for privacy, with when.
    privacy: BTreeMap<i64, DateTime<Utc>>,
}

impl Plan {
    fn associations_of(&mut self, edge: Edge, id: i64) {
        match self.associations.iter_mut().find(|(e, _)| *e == edge) {
            Some((_, ids)) => {
                ids.insert(id);
            }
            None => self.associations.push((edge, BTreeSet::from([id]))),
        }
    }

    fn refetch(&mut self, record_type: RecordType, id: i64) {
        self.refetch.entry(record_type).or_default().insert(id);
        for edge in Edge::from_side(record_type) {
            self.associations_of(edge, id);
        }
    }

    fn add(&mut self, event: &v1::WebhookEvent) -> bool {
        let object_type =
            v1::ObjectType::try_from(event.object_type).unwrap_or(v1::ObjectType::Unspecified);
        let Some(record_type) = RecordType::from_proto(object_type) else {
            return false;
        };
        let at = occurred_at(event);
        let kind = WebhookChangeKind::try_from(event.change_kind)
            .unwrap_or(WebhookChangeKind::Unspecified);
        match kind {
            WebhookChangeKind::Creation
            | WebhookChangeKind::PropertyChange
            | WebhookChangeKind::Restore => {
                let Some(id) = event.object_id else {
                    return false;
                };
                self.refetch(record_type, id);
            }
            WebhookChangeKind::Deletion => {
                let Some(id) = event.object_id else {
                    return false;
                };
                let entry = self.deletions.entry((record_type, id)).or_insert(at);
                *entry = (*entry).max(at);
            }
            WebhookChangeKind::PrivacyDeletion => {
                let Some(id) = event.object_id else {
                    return false;
                };
                let entry = self.privacy.entry(id).or_insert(at);
                *entry = (*entry).max(at);
            }
            WebhookChangeKind::Merge => {
                let Some(winner) = event
                    .new_object_id
                    .or(event.primary_object_id)
                    .or(event.object_id)
                else {
                    return false;
                };
                for loser in &event.merged_object_ids {
                    if *loser != winner {
                        self.merges.push((record_type, winner, *loser, at));
                    }
                }
                self.refetch(record_type, winner);
            }
            WebhookChangeKind::AssociationChange => {
                let (Some(from_id), Some(to_id)) = (event.from_object_id, event.to_object_id)
                else {
                    return false;
                };
                let to_type = event
                    .to_object_type_id
                    .as_deref()
                    .and_then(RecordType::parse)
                    .or_else(|| {
                        event
                            .association_type
                            .as_deref()
                            .and_then(|t| t.split_once("_TO_"))
                            .and_then(|(_, to)| RecordType::parse(&to.to_ascii_lowercase()))
                    });
                let from_type = event
                    .from_object_type_id
                    .as_deref()
                    .and_then(RecordType::parse)
                    .unwrap_or(record_type);
                let Some(to_type) = to_type else {
                    return false;
                };
                let Some(edge) = Edge::between(from_type, to_type) else {
                    return false;
                };
                let canonical = if edge.from == from_type {
                    from_id
                } else {
                    to_id
                };
                self.associations_of(edge, canonical);
            }
            WebhookChangeKind::Unspecified => return false,
        }
        true
    }
}

/// Associations read along one edge: the canonical ids asked about, and the edges found
/// as `(from, to, primary)`.
type EdgeRead = (Edge, Vec<i64>, Vec<(i64, i64, bool)>);

/// What was read from HubSpot for a plan.
struct Reads {
    read_at: DateTime<Utc>,
    pages: Vec<(RecordType, MappedPage)>,
    associations: Vec<EdgeRead>,
}

async fn read(
    client: &hubspot_client::HubSpotClient,
    plan: &Plan,
    custom: &mirror::CustomMappings,
) -> Result<Reads, hubspot_client::HubSpotError> {
    let read_at = Utc::now();
    let mut pages = Vec::new();
    for (record_type, ids) in &plan.refetch {
        let ids: Vec<i64> = ids.iter().copied().collect();
        let (found, _missing) = read_batch(client, *record_type, &ids, custom).await?;
        pages.push((
            *record_type,
            MappedPage::map_with(*record_type, &found, custom.get(record_type)),
        ));
    }
    let mut associations = Vec::new();
    for (edge, ids) in &plan.associations {
        let ids: Vec<i64> = ids.iter().copied().collect();
        let edges = read_associations(client, *edge, &ids).await?;
        associations.push((*edge, ids, edges));
    }
    Ok(Reads {
        read_at,
        pages,
        associations,
    })
}

/// A property change to one of the `hubscore_*` properties writeback-worker writes: the
/// echo of our own write, which changes nothing the mirror holds, so it is not read back
/// (each write would otherwise cost a batch read and a `crm.changed`).
fn is_writeback_echo(event: &v1::WebhookEvent) -> bool {
    event.change_kind == WebhookChangeKind::PropertyChange as i32
        && event
            .property_name
            .as_deref()
            .is_some_and(|name| name.starts_with(WRITEBACK_PROPERTY_PREFIX))
}

/// The prefix of the HubSpot properties writeback-worker creates and writes by default.
const WRITEBACK_PROPERTY_PREFIX: &str = "hubscore_";

async fn apply(
    ctx: &Context,
    connection: &Connection,
    batch: &v1::WebhookBatch,
    source: &Source,
) -> Result<(), Outcome> {
    let identities: Vec<Identity> = batch.events.iter().map(identity).collect();
    let mut conn = ctx.pool.get().await.map_err(retry)?;
    let seen = already_applied(&mut conn, connection, &identities)
        .await
        .map_err(retry)?;
    drop(conn);
    let mut plan = Plan::default();
    let mut fresh = Vec::new();
    let mut unsupported = 0u64;
    let mut echoes = 0u64;
    for (event, id) in batch.events.iter().zip(&identities) {
        if seen.contains(id) || fresh.contains(id) {
            ctx.metrics
                .webhook_events_dropped
                .with_label_values(&["duplicate"])
                .inc();
            continue;
        }
        if is_writeback_echo(event) {
            echoes += 1;
            fresh.push(*id);
            continue;
        }
        if !plan.add(event) {
            unsupported += 1;
        }
        fresh.push(*id);
    }
    if unsupported > 0 {
        ctx.metrics
            .webhook_events_dropped
            .with_label_values(&["unsupported"])
            .inc_by(unsupported);
    }
    if echoes > 0 {
        ctx.metrics
            .webhook_events_dropped
            .with_label_values(&["writeback_echo"])
            .inc_by(echoes);
    }
    if fresh.is_empty() {
        return Ok(());
    }
    let client = ctx
        .clients
        .client(connection, Purpose::Changes)
        .map_err(|e| Outcome::Retry(format!("{e:#}")))?;
    let mut conn = ctx.pool.get().await.map_err(retry)?;
    let custom = crate::db::fields::valid_mappings(&mut conn, connection.connection_id)
        .await
        .map_err(retry)?;
    drop(conn);
    let reads = read(&client, &plan, &custom).await.map_err(|error| {
        if error.is_retryable()
            || matches!(
                error,
                hubspot_client::HubSpotError::Unauthorized { .. }
                    | hubspot_client::HubSpotError::TokenUnavailable(_)
            )
        {
            Outcome::Retry(error.to_string())
        } else {
            Outcome::DeadLetter(error.to_string())
        }
    })?;
    let context = PublishContext {
        cause: v1::crm_changed::Cause::WebhookBatchMessageId(source.message_id.to_string()),
        correlation_id: source.correlation_id.clone(),
    };
    let publish_limit = ctx.settings.publish_batch_size;
    let mut conn = ctx.pool.get().await.map_err(retry)?;
    let (plan, reads, fresh, context) = (&plan, &reads, &fresh, &context);
    let written = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            let mut touched: BTreeSet<(RecordType, i64)> = BTreeSet::new();
            // Contacts that became, or stopped being, the customer for their e-mail because
            // of what this batch changed: published with it.
            let mut promoted: Vec<i64> = Vec::new();
            let mut written = 0usize;
            record_applied(conn, connection, fresh).await?;
            for ((record_type, id), at) in &plan.deletions {
                mirror::mark_deleted(conn, connection, *record_type, &[*id], *at, &mut promoted)
                    .await?;
                touched.insert((*record_type, *id));
            }
            for (id, at) in &plan.privacy {
                mirror::erase_personal_data(conn, connection, &[*id], *at, &mut promoted).await?;
                touched.insert((RecordType::Contact, *id));
            }
            let mut merges: BTreeMap<RecordType, BTreeMap<i64, Vec<i64>>> = BTreeMap::new();
            for (record_type, winner, loser, at) in &plan.merges {
                let moved = mirror::mark_merged(
                    conn,
                    connection,
                    *record_type,
                    &[*winner],
                    &[*loser],
                    *at,
                    &mut promoted,
                )
                .await?;
                touched.extend(moved);
                touched.insert((*record_type, *winner));
                touched.insert((*record_type, *loser));
                merges
                    .entry(*record_type)
                    .or_default()
                    .entry(*winner)
                    .or_default()
                    .push(*loser);
            }
            for (record_type, page) in &reads.pages {
                let ids = mirror::upsert_page(
                    conn,
                    connection,
                    *record_type,
                    page,
                    reads.read_at,
                    None,
                    &mut promoted,
                )
                .await?;
                written += ids.len();
                touched.extend(page.ids.iter().map(|id| (*record_type, *id)));
                // Ids merged into a refetched record are among the changes too.
                for (_, merged) in &page.merged {
                    touched.extend(merged.iter().map(|id| (*record_type, *id)));
                }
            }
            touched.extend(promoted.iter().map(|id| (RecordType::Contact, *id)));
            for (edge, ids, found) in &reads.associations {
                let changed =
                    mirror::replace_associations(conn, connection, *edge, ids, found).await?;
                touched.extend(changed);
            }
            for record_type in RecordType::ALL {
                let ids: Vec<i64> = touched
                    .iter()
                    .filter(|(t, _)| *t == record_type)
                    .map(|(_, id)| *id)
                    .collect();
                let mut type_merges: Vec<v1::Merge> = merges
                    .remove(&record_type)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(winner_id, merged_ids)| v1::Merge {
                        winner_id,
                        merged_ids,
                    })
                    .collect();
                if ids.is_empty() && type_merges.is_empty() {
                    continue;
                }
                loop {
                    let taken = publish::publish_pending(
                        conn,
                        connection,
                        record_type,
                        Some(&ids),
                        publish_limit,
                        std::mem::take(&mut type_merges),
                        context,
                    )
                    .await?;
                    if taken == 0 {
                        break;
                    }
                }
            }
            Ok(written)
        })
        .await
        .map_err(retry)?;
    ctx.relay.wake();
    ctx.metrics
        .records_written
        .with_label_values(&["all", "webhook"])
        .inc_by(written as u64);
    Ok(())
}
