//! Executing one sync run: full (every object type, or one), given records, or
//! reconciliation. Each page is written with its checkpoint and counts in one
//! transaction, so a run taken over after a crash continues from the last page written.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use contracts::time::to_timestamp;
use contracts::v1;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use futures::TryStreamExt as _;
use hubspot_client::{
    CrmObject, Filter, HubSpotClient, HubSpotError, ListOptions, ModifiedSince, SearchRequest,
};
use platform::amqp::MessageMeta;
use platform::shutdown::Shutdown;
use uuid::Uuid;

use crate::context::Context;
use crate::db::connections::{self, Connection};
use crate::db::mirror::{self, Edge, MappedPage, RecordType};
use crate::db::publish::{self, PublishContext};
use crate::db::runs::{self, PageProgress, Run, RunObject, Scope};
use crate::hubspot::Purpose;

/// Why a run stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The worker is shutting down; another start resumes from the checkpoint.
    #[error("interrupted by shutdown")]
    Interrupted,
    /// The run was cancelled (connection closed) while it ran.
    #[error("cancelled")]
    Cancelled,
    /// HubSpot failed; `is_retryable` on it says whether to try again later.
    #[error("HubSpot: {0}")]
    HubSpot(#[from] HubSpotError),
    /// The database failed (retried later).
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    /// No database connection (retried later).
    #[error("no database connection: {0}")]
    Pool(String),
    /// Anything else (e.g. a client that could not be built).
    #[error("{0}")]
    Other(String),
}

impl RunError {
    /// Whether the run should stay open and be tried again later. A rejected credential
    /// pauses the connection's run rather than failing it: it resumes once the
    /// connection works again.
    pub fn is_retryable(&self) -> bool {
        match self {
            RunError::Interrupted | RunError::Database(_) | RunError::Pool(_) => true,
            RunError::HubSpot(e) => {
                e.is_retryable()
                    || matches!(
                        e,
                        HubSpotError::Unauthorized { .. }
                            | HubSpotError::TokenUnavailable(_)
                            | HubSpotError::DailyQuotaExhausted { .. }
                            // Every call a sync makes is a read: an answer cut short
                            // is worth asking for again.
                            | HubSpotError::Decode { .. }
                    )
            }
            RunError::Cancelled | RunError::Other(_) => false,
        }
    }
}

type Db = platform::db::Connection;

async fn db(ctx: &Context) -> Result<Db, RunError> {
    ctx.pool
        .get()
        .await
        .map_err(|e| RunError::Pool(e.to_string()))
}

fn mode_of(run: &Run) -> v1::SyncMode {
    match run.mode.as_str() {
        "reconciliation" => v1::SyncMode::Reconciliation,
        "incremental" => v1::SyncMode::Incremental,
        _ => v1::SyncMode::Full,
    }
}

fn proto_type(name: &str) -> v1::ObjectType {
    match name {
        "contact" => v1::ObjectType::Contact,
        "company" => v1::ObjectType::Company,
        "deal" => v1::ObjectType::Deal,
        "owner" => v1::ObjectType::Owner,
        "pipeline" => v1::ObjectType::Pipeline,
        _ => v1::ObjectType::Unspecified,
    }
}

fn counts(objects: &[RunObject]) -> Vec<v1::ObjectCounts> {
    objects
        .iter()
        .map(|o| v1::ObjectCounts {
            object_type: proto_type(&o.object_type) as i32,
            fetched: u64::try_from(o.fetched).unwrap_or(0),
            upserted: u64::try_from(o.written).unwrap_or(0),
            skipped: u64::try_from(o.skipped).unwrap_or(0),
            deleted: u64::try_from(o.deleted).unwrap_or(0),
        })
        .collect()
}

fn meta(run: &Run) -> MessageMeta {
    MessageMeta::new(run.correlation_id.clone(), Some(run.org_id))
}

/// Enqueues a `sync.progress` if the last one is older than the interval.
async fn maybe_progress(
    conn: &mut AsyncPgConnection,
    run: &Run,
    interval_ms: u64,
) -> diesel::QueryResult<()> {
    if !runs::claim_progress(conn, run.id, i64::try_from(interval_ms).unwrap_or(i64::MAX)).await? {
        return Ok(());
    }
    let objects = runs::objects(conn, run.id).await?;
    let message = v1::SyncProgress {
        org_id: run.org_id.to_string(),
        connection_id: run.connection_id.to_string(),
        portal_id: run.portal_id,
        sync_run_id: run.id.to_string(),
        mode: mode_of(run) as i32,
        counts: counts(&objects),
        skipped_records: Vec::new(),
        started_at: run.started_at.map(to_timestamp),
        reported_at: Some(to_timestamp(Utc::now())),
    };
    platform::outbox::enqueue_event(conn, &message, meta(run))
        .await
        .map(drop)
}

/// Ends a run: its state, and `sync.completed` through the outbox, in one transaction.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    run: &Run,
    state: &str,
    error: Option<&str>,
) -> diesel::QueryResult<()> {
    runs::finish(conn, run.id, state, error).await?;
    let objects = runs::objects(conn, run.id).await?;
    let outcome = if state == "succeeded" {
        v1::sync_completed::Outcome::Succeeded(v1::SyncSucceeded {})
    } else {
        v1::sync_completed::Outcome::Failed(v1::SyncFailed {
            reason: error.unwrap_or(state).to_owned(),
        })
    };
    let message = v1::SyncCompleted {
        org_id: run.org_id.to_string(),
        connection_id: run.connection_id.to_string(),
        portal_id: run.portal_id,
        sync_run_id: run.id.to_string(),
        mode: mode_of(run) as i32,
        counts: counts(&objects),
        skipped_records: Vec::new(),
        skipped_records_not_listed: objects
            .iter()
            .map(|o| u64::try_from(o.skipped).unwrap_or(0))
            .sum(),
        started_at: run.started_at.map(to_timestamp),
        finished_at: Some(to_timestamp(Utc::now())),
        outcome: Some(outcome),
    };
    platform::outbox::enqueue_event(conn, &message, meta(run))
        .await
        .map(drop)
}

/// Runs `run` to its end. `Ok` means it was completed (succeeded) and `sync.completed`
/// enqueued; an error leaves it open unless the caller fails it.
pub async fn execute(ctx: &Context, run: &Run, shutdown: &Shutdown) -> Result<(), RunError> {
    let mut conn = db(ctx).await?;
    let Some(connection) = connections::find(&mut conn, run.connection_id).await? else {
        return Err(RunError::Cancelled);
    };
    if !connection.is_active() {
        return Err(RunError::Cancelled);
    }
    runs::start(&mut conn, run.id).await?;
    let run = runs::find(&mut conn, run.id)
        .await?
        .ok_or(RunError::Cancelled)?;
    drop(conn);
    let client = ctx
        .clients
        .client(&connection, Purpose::Sync)
        .map_err(|e| RunError::Other(format!("{e:#}")))?;
    let mut conn = db(ctx).await?;
    let custom = crate::db::fields::valid_mappings(&mut conn, connection.connection_id).await?;
    drop(conn);
    let job = Job {
        custom,
        ctx,
        run: &run,
        connection: &connection,
        client: &client,
        shutdown,
    };
    if run.mode == "reconciliation" || run.mode == "incremental" {
        job.reconcile().await?;
    } else {
        match run.scope() {
            Scope::Full => job.full(&RecordType::ALL, true).await?,
            Scope::ObjectType(name) => {
                let record_type = RecordType::parse(&name)
                    .ok_or_else(|| RunError::Other(format!("unknown object type {name:?}")))?;
                job.full(&[record_type], false).await?;
            }
            Scope::Records { object_type, ids } => {
                let record_type = RecordType::parse(&object_type).ok_or_else(|| {
                    RunError::Other(format!("unknown object type {object_type:?}"))
                })?;
                job.records(record_type, &ids).await?;
            }
        }
    }
    let mut conn = db(ctx).await?;
    let run = &run;
    let finished = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            if !runs::is_open(conn, run.id).await? {
                return Ok(false);
            }
            complete(conn, run, "succeeded", None).await?;
            if run.mode == "full" && matches!(run.scope(), Scope::Full) {
                // A full read is as good as a reconciliation up to its start.
                let through = run.started_at.unwrap_or_else(Utc::now);
                connections::record_reconciliation(conn, run.connection_id, through, true).await?;
            }
            Ok(true)
        })
        .await?;
    ctx.relay.wake();
    if finished {
        ctx.metrics
            .runs_finished
            .with_label_values(&[run.mode.as_str(), "succeeded"])
            .inc();
        Ok(())
    } else {
        Err(RunError::Cancelled)
    }
}

/// Reads the property definitions of `types` from HubSpot and stores them (field
/// discovery), one request per type.
pub async fn discover_properties(
    ctx: &Context,
    client: &HubSpotClient,
    connection: &Connection,
    types: &[RecordType],
) -> Result<(), RunError> {
    // One read per type, side by side.
    let each = types.iter().map(|record_type| async move {
        let found = client.list_properties(record_type.api_name()).await?;
        let discovered: Vec<crate::db::fields::DiscoveredProperty> = found
            .iter()
            .map(crate::db::fields::DiscoveredProperty::from_hubspot)
            .collect();
        let mut conn = db(ctx).await?;
        crate::db::fields::replace_properties(
            &mut conn,
            connection,
            record_type.name(),
            &discovered,
            Utc::now(),
        )
        .await?;
        Ok::<(), RunError>(())
    });
    futures::future::try_join_all(each).await?;
    Ok(())
}

/// Reads `ids` of `record_type` with batch reads (100 per call). Returns the records found
/// and the ids HubSpot did not find (deleted or merged away).
pub async fn read_batch(
    client: &HubSpotClient,
    record_type: RecordType,
    ids: &[i64],
    custom: &mirror::CustomMappings,
) -> Result<(Vec<CrmObject>, Vec<i64>), HubSpotError> {
    if ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let wanted: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let properties = mirror::properties_for(record_type, custom);
    let props: Vec<&str> = properties.iter().map(String::as_str).collect();
    match client
        .batch_read(record_type.api_name(), &wanted, &props)
        .await
    {
        Ok(found) => {
            let missing = missing_ids(ids, &found);
            Ok((found, missing))
        }
        Err(HubSpotError::PartialBatch {
            succeeded,
            failed_chunks,
            ..
        }) => {
            if let Some(chunk) = failed_chunks.into_iter().next() {
                return Err(chunk.cause);
            }
            let missing = missing_ids(ids, &succeeded);
            Ok((succeeded, missing))
        }
        Err(HubSpotError::NotFound { .. }) => Ok((Vec::new(), ids.to_vec())),
        Err(other) => Err(other),
    }
}

fn missing_ids(ids: &[i64], found: &[CrmObject]) -> Vec<i64> {
    let found: std::collections::BTreeSet<i64> =
        found.iter().filter_map(|o| o.id.parse().ok()).collect();
    ids.iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect()
}

/// Reads the associations of `from_ids` along each edge of their canonical side.
pub async fn read_associations(
    client: &HubSpotClient,
    edge: Edge,
    from_ids: &[i64],
) -> Result<Vec<(i64, i64, bool)>, HubSpotError> {
    let ids: Vec<String> = from_ids.iter().map(ToString::to_string).collect();
    let batch = client
        .batch_read_associations(edge.from.api_name(), edge.to.api_name(), &ids)
        .await?;
    let mut edges = Vec::new();
    for result in batch.results {
        let Ok(from) = result.from_id.parse::<i64>() else {
            continue;
        };
        for to in result.to {
            let Ok(to_id) = to.to_object_id.parse::<i64>() else {
                continue;
            };
            let primary = edge == Edge::CONTACT_COMPANY
                && to
                    .association_types
                    .iter()
                    .any(|t| t.label.as_deref() == Some("Primary") || t.type_id == 1);
            edges.push((from, to_id, primary));
        }
    }
    Ok(edges)
}

/// Owners or pipelines read in one go.
enum Metadata {
    Owners(Vec<domain::records::Owner>),
    Pipelines(Vec<domain::records::Pipeline>),
}

/// Orders the listings of a full sync that all finish at its end: contacts and companies.
///
/// A listing is a chain: each page's cursor comes from the page before, so a type's pages
/// are read one after another. Left alone, the shorter companies' chain finishes in the
/// first windows and the contacts' chain reads the last window's pages alone, one by one,
/// while the run waits. So a chain with fewer pages left than another waits for it (beyond
/// [`Lanes::SLACK`] pages), and the two end together, reading the last window side by side.
/// Deals are not held: their pages go out as read, and contacts go out once deals are in.
#[derive(Clone)]
struct Lanes {
    left: std::sync::Arc<tokio::sync::watch::Sender<Vec<(RecordType, i64)>>>,
}

impl Lanes {
    /// How many pages a chain may be behind another before it waits.
    const SLACK: i64 = 2;

    /// Lanes for `chains`: each type with the pages it has left (a type not in them is
    /// never held).
    fn new(chains: Vec<(RecordType, i64)>) -> Self {
        Self {
            left: std::sync::Arc::new(tokio::sync::watch::channel(chains).0),
        }
    }

    /// Pages left of `total` records with `fetched` read, `page_size` to a page.
    fn pages_left(total: i64, fetched: i64, page_size: u32) -> i64 {
        let left = u64::try_from(total - fetched).unwrap_or(0);
        i64::try_from(left.div_ceil(u64::from(page_size.max(1)))).unwrap_or(i64::MAX)
    }

    /// Waits until `record_type` has at least as many pages left as every other chain,
    /// less the slack.
    async fn turn(&self, record_type: RecordType) {
        let mut left = self.left.subscribe();
        // The sender lives as long as `self`, so this wait cannot fail.
        let _ = left
            .wait_for(|chains| {
                let mine = chains.iter().find(|(t, _)| *t == record_type);
                let most_other = chains
                    .iter()
                    .filter(|(t, _)| *t != record_type)
                    .map(|(_, n)| *n)
                    .max();
                match (mine, most_other) {
                    (Some((_, mine)), Some(other)) => mine + Self::SLACK >= other,
                    _ => true,
                }
            })
            .await;
    }

    /// One page of `record_type` read.
    fn page_read(&self, record_type: RecordType) {
        self.left.send_modify(|chains| {
            for (t, n) in chains.iter_mut() {
                if *t == record_type {
                    *n = (*n - 1).max(0);
                }
            }
        });
    }

    /// `record_type` has no pages left, whatever its count said (records deleted meanwhile).
    fn finished(&self, record_type: RecordType) {
        self.left
            .send_modify(|chains| chains.retain(|(t, _)| *t != record_type));
    }
}

/// Association batch reads of one object type in flight at once during a full sync.
const ASSOCIATION_READS_IN_FLIGHT: usize = 4;

/// What one edge gave for a chunk of ids: (from, to, primary) pairs.
type EdgeRead = (Edge, Vec<(i64, i64, bool)>);

/// One chunk's association reads: its ids and what each edge gave.
type AssociationRead = tokio::task::JoinHandle<Result<(Vec<i64>, Vec<EdgeRead>), HubSpotError>>;

/// One page of a full sync to write in one transaction with its checkpoint.
struct WrittenPage<'a> {
    mapped: &'a MappedPage,
    read_at: DateTime<Utc>,
    /// The cursor of the page after, `None` on the last.
    next: Option<String>,
    fetched: usize,
    /// Every record id on the page.
    ids: &'a [i64],
    /// The page's associations, when they came embedded: they replace the stored ones
    /// of `ids`.
    associations: Option<&'a [EdgeRead]>,
}

/// The (from, to, primary) pairs embedded in `objects` along `edge`, one per pair (a
/// contact's primary company is listed twice, primary and unlabeled), and the ids whose
/// embedded list was cut short (it carries paging).
fn embedded_edges(edge: Edge, objects: &[CrmObject]) -> (Vec<(i64, i64, bool)>, Vec<i64>) {
    let mut found: BTreeMap<(i64, i64), bool> = BTreeMap::new();
    let mut cut = Vec::new();
    let primary_type = format!("{}_to_{}", edge.from.name(), edge.to.name());
    for object in objects {
        let Ok(from) = object.id.parse::<i64>() else {
            continue;
        };
        let Some(block) = object
            .associations
            .as_ref()
            .and_then(|a| a.get(edge.to.api_name()))
        else {
            continue;
        };
        if block.paging.as_ref().is_some_and(|p| p.next.is_some()) {
            cut.push(from);
            continue;
        }
        for associated in &block.results {
            let Ok(to) = associated.id.parse::<i64>() else {
                continue;
            };
            let primary =
                edge == Edge::CONTACT_COMPANY && associated.association_type == primary_type;
            *found.entry((from, to)).or_default() |= primary;
        }
    }
    let found = found
        .into_iter()
        .map(|((from, to), primary)| (from, to, primary))
        .collect();
    (found, cut)
}

/// When a full sync's pages go out as `crm.changed`, rather than with the rest at its end.
enum EarlyPublish {
    /// As soon as each page is written.
    Now,
    /// Once the flag turns true (pages written before wait for it).
    After(tokio::sync::watch::Receiver<bool>),
    /// At the end of the run.
    Never,
}

struct Job<'a> {
    custom: mirror::CustomMappings,
    ctx: &'a Context,
    run: &'a Run,
    connection: &'a Connection,
    client: &'a HubSpotClient,
    shutdown: &'a Shutdown,
}

impl Job<'_> {
    fn context(&self) -> PublishContext {
        PublishContext {
            cause: v1::crm_changed::Cause::SyncRunId(self.run.id.to_string()),
            correlation_id: self.run.correlation_id.clone(),
        }
    }

    fn check_shutdown(&self) -> Result<(), RunError> {
        if self.shutdown.is_cancelled() {
            Err(RunError::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Reads every record of `types` (plus owners and pipelines when `with_metadata`),
    /// their associations, then publishes what changed.
    async fn full(&self, types: &[RecordType], with_metadata: bool) -> Result<(), RunError> {
        let mut names: Vec<&str> = types.iter().map(|t| t.name()).collect();
        if with_metadata {
            names.extend(["owner", "pipeline"]);
        }
        let mut conn = db(self.ctx).await?;
        runs::ensure_objects(
            &mut conn,
            self.run.id,
            &names,
            self.ctx.settings.inline_associations,
        )
        .await?;
        let objects = runs::objects(&mut conn, self.run.id).await?;
        drop(conn);
        let object = |name: &str| objects.iter().find(|o| o.object_type == name).cloned();

        // Totals up front: one cheap search per type gives HubSpot's count. Searches have
        // their own budget, so they run beside the metadata's reads.
        let counts = futures::future::join_all(
            types
                .iter()
                .filter(|t| object(t.name()).is_some_and(|o| o.total.is_none() && !o.records_done))
                .map(|t| self.count_total(*t)),
        );
        // Owners and pipelines come before any record goes out: deals and contacts are
        // published with them.
        let metadata = async {
            if with_metadata {
                if !object("owner").is_some_and(|o| o.records_done) {
                    // Field discovery rides along with the owners (once per run).
                    discover_properties(self.ctx, self.client, self.connection, types).await?;
                    self.owners().await?;
                }
                if !object("pipeline").is_some_and(|o| o.records_done) {
                    self.pipelines().await?;
                }
            }
            Ok::<(), RunError>(())
        };
        let (_, metadata) = tokio::join!(counts, metadata);
        metadata?;
        // With associations embedded in the pages, a deal page is complete once written,
        // so it goes out then. A contact's deal ids come from the deals' pages: contact
        // pages go out once every deal is read and the deals HubSpot no longer has are
        // flagged. Companies hear from both sides, so they go out at the end with
        // whatever is still pending.
        let (deals_settled, settled) =
            tokio::sync::watch::channel(!types.contains(&RecordType::Deal));
        let deals_settled = &deals_settled;
        // Again, with the totals counted above.
        let mut conn = db(self.ctx).await?;
        let objects = runs::objects(&mut conn, self.run.id).await?;
        drop(conn);
        let object = |name: &str| objects.iter().find(|o| o.object_type == name).cloned();
        let page_size = ListOptions::default().page_size;
        let lanes = Lanes::new(
            [RecordType::Contact, RecordType::Company]
                .into_iter()
                .filter(|t| types.contains(t))
                .filter_map(|t| {
                    let state = object(t.name())?;
                    let total = state.total.filter(|_| !state.records_done)?;
                    Some((t, Lanes::pages_left(total, state.fetched, page_size)))
                })
                .collect(),
        );
        let lanes = &lanes;
        let per_type = types.iter().map(|record_type| {
            let state = object(record_type.name());
            let settled = settled.clone();
            async move {
                let state = state.ok_or_else(|| RunError::Other("run object missing".into()))?;
                if !state.records_done {
                    let publish = match (state.associations_inline, record_type) {
                        (false, _) | (true, RecordType::Company) => EarlyPublish::Never,
                        (true, RecordType::Deal) => EarlyPublish::Now,
                        (true, RecordType::Contact) => EarlyPublish::After(settled),
                    };
                    self.list_records(
                        *record_type,
                        state.cursor.clone(),
                        state.associations_inline,
                        publish,
                        lanes,
                    )
                    .await?;
                }
                // Every page of this type read: what the run never saw is gone from HubSpot.
                self.mark_unseen_deleted(*record_type).await?;
                if !state.associations_done && !state.associations_inline {
                    self.list_associations(*record_type, state.associations_after)
                        .await?;
                }
                if *record_type == RecordType::Deal {
                    deals_settled.send_replace(true);
                }
                Ok::<(), RunError>(())
            }
        });
        futures::future::try_join_all(per_type).await?;
        self.check_shutdown()?;
        self.publish_all(types, with_metadata).await
    }

    /// Flags the records of `record_type` this run never saw as deleted, with the type's
    /// deleted count and skip reasons, once every page of the type has been read. Run again
    /// on a resumed run, it finds nothing more to flag.
    async fn mark_unseen_deleted(&self, record_type: RecordType) -> Result<(), RunError> {
        let now = Utc::now();
        let mut conn = db(self.ctx).await?;
        let run = self.run.id;
        let connection = self.connection;
        conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
            let deleted =
                mirror::mark_unseen_deleted(conn, connection, record_type, run, now).await?;
            runs::add_deleted(
                conn,
                run,
                record_type.name(),
                i64::try_from(deleted).unwrap_or(0),
            )
            .await?;
            let reasons =
                runs::mirror_skip_reasons(conn, connection.connection_id, record_type.table())
                    .await?;
            runs::set_skipped(conn, run, record_type.name(), &reasons).await
        })
        .await?;
        Ok(())
    }

    async fn count_total(&self, record_type: RecordType) {
        let request = SearchRequest {
            limit: Some(1),
            properties: vec!["hs_object_id".to_owned()],
            ..Default::default()
        };
        match self.client.search(record_type.api_name(), &request).await {
            Ok(page) => {
                if let (Some(total), Ok(mut conn)) = (page.total, self.ctx.pool.get().await) {
                    let total = i64::try_from(total).unwrap_or(i64::MAX);
                    if let Err(error) =
                        runs::set_total(&mut conn, self.run.id, record_type.name(), total).await
                    {
                        tracing::warn!(%error, "storing a sync total failed");
                    }
                }
            }
            // Progress without a percentage is still progress.
            Err(error) => {
                tracing::warn!(%error, object_type = record_type.name(), "counting records failed")
            }
        }
    }

    async fn owners(&self) -> Result<(), RunError> {
        let owners = self.client.list_owners().await?;
        let fetched = owners.len();
        let mapped: Vec<domain::records::Owner> = owners
            .iter()
            .map(|o| domain::mapping::HubSpotOwner {
                id: o.id.clone(),
                email: o.email.clone(),
                first_name: o.first_name.clone(),
                last_name: o.last_name.clone(),
                kind: o.owner_type.clone(),
                user_id: o.user_id.and_then(|u| u64::try_from(u).ok()),
                archived: o.archived,
                updated_at: None,
            })
            .filter_map(|o| domain::mapping::map_owner(&o).record().cloned())
            .collect();
        self.write_metadata("owner", fetched, Metadata::Owners(mapped))
            .await
    }

    async fn pipelines(&self) -> Result<(), RunError> {
        let pipelines = self.client.deal_pipelines().await?;
        let fetched = pipelines.len();
        let mapped: Vec<domain::records::Pipeline> = pipelines
            .iter()
            .map(|p| domain::mapping::HubSpotPipeline {
                id: p.id.clone(),
                label: p.label.clone(),
                display_order: p.display_order,
                archived: p.archived,
                stages: p
                    .stages
                    .iter()
                    .map(|s| domain::mapping::HubSpotStage {
                        id: s.id.clone(),
                        label: s.label.clone(),
                        display_order: s.display_order,
                        archived: s.archived,
                        metadata: s.metadata.clone(),
                    })
                    .collect(),
            })
            .filter_map(|p| domain::mapping::map_pipeline(&p).record().cloned())
            .collect();
        self.write_metadata("pipeline", fetched, Metadata::Pipelines(mapped))
            .await
    }

    async fn write_metadata(
        &self,
        name: &str,
        fetched: usize,
        data: Metadata,
    ) -> Result<(), RunError> {
        let mut conn = db(self.ctx).await?;
        let run = self.run;
        let connection = self.connection;
        let name = name.to_owned();
        let data = &data;
        conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
            let written = match data {
                Metadata::Owners(owners) => mirror::upsert_owners(conn, connection, owners).await?,
                Metadata::Pipelines(pipelines) => {
                    mirror::upsert_pipelines(conn, connection, pipelines).await?
                }
            };
            let fetched = i64::try_from(fetched).unwrap_or(i64::MAX);
            runs::record_page(
                conn,
                run.id,
                &name,
                &PageProgress {
                    fetched,
                    written: i64::try_from(written).unwrap_or(i64::MAX),
                    done: true,
                    ..PageProgress::default()
                },
            )
            .await
        })
        .await?;
        Ok(())
    }

    /// Pages through every record of a type from `cursor`, fetching the next page while
    /// the current one is written. With `inline`, each page carries its records'
    /// associations along the type's edges, written in the page's transaction; `publish`
    /// says when written pages go out, on a publisher beside the reads so that publishing
    /// never holds up the next page.
    async fn list_records(
        &self,
        record_type: RecordType,
        cursor: Option<String>,
        inline: bool,
        publish: EarlyPublish,
        lanes: &Lanes,
    ) -> Result<(), RunError> {
        let send = !matches!(publish, EarlyPublish::Never);
        let (written_tx, mut written_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<i64>>();
        let publisher = async {
            while let Some(ids) = written_rx.recv().await {
                if let EarlyPublish::After(settled) = &publish
                    && settled.clone().wait_for(|settled| *settled).await.is_err()
                {
                    // Never settled: the run's end publishes what is pending.
                    return Ok(());
                }
                self.publish_pending(record_type, Some(&ids)).await?;
            }
            Ok::<(), RunError>(())
        };
        let reads = async move {
            let tx = send.then_some(&written_tx);
            self.read_pages(record_type, cursor, inline, tx, lanes)
                .await
        };
        // Pages a failed publisher left pending go out when the run is tried again.
        let (read, published) = tokio::join!(reads, publisher);
        read?;
        published
    }

    /// [`Self::list_records`]'s reads and writes; each page written goes to `written`.
    async fn read_pages(
        &self,
        record_type: RecordType,
        cursor: Option<String>,
        inline: bool,
        written: Option<&tokio::sync::mpsc::UnboundedSender<Vec<i64>>>,
        lanes: &Lanes,
    ) -> Result<(), RunError> {
        let edges: Vec<Edge> = if inline {
            Edge::from_side(record_type).collect()
        } else {
            Vec::new()
        };
        let options = ListOptions {
            properties: mirror::properties_for(record_type, &self.custom),
            associations: edges.iter().map(|e| e.to.api_name().to_owned()).collect(),
            ..ListOptions::default()
        };
        let fetch = |after: Option<String>| {
            let client = self.client.clone();
            let options = options.clone();
            let lanes = lanes.clone();
            tokio::spawn(async move {
                lanes.turn(record_type).await;
                let read_at = Utc::now();
                client
                    .list_objects_page(record_type.api_name(), &options, after.as_deref())
                    .await
                    .map(|page| (read_at, page))
            })
        };
        let mut pending = fetch(cursor);
        loop {
            self.check_shutdown()?;
            let (read_at, page) = pending
                .await
                .map_err(|e| RunError::Other(format!("page fetch task failed: {e}")))??;
            let next = page.next_after().map(str::to_owned);
            let fetched = page.results.len();
            lanes.page_read(record_type);
            if next.is_none() {
                lanes.finished(record_type);
            }
            // Start reading the next page before writing this one.
            let upcoming = next.clone().map(|after| fetch(Some(after)));
            let ids: Vec<i64> = page
                .results
                .iter()
                .filter_map(|o| o.id.parse().ok())
                .collect();
            let written_page = async {
                let associations = if inline {
                    Some(self.embedded_associations(&edges, &page.results).await?)
                } else {
                    None
                };
                let mapped =
                    MappedPage::map_with(record_type, &page.results, self.custom.get(&record_type));
                let page = WrittenPage {
                    mapped: &mapped,
                    read_at,
                    next: next.clone(),
                    fetched,
                    ids: &ids,
                    associations: associations.as_deref(),
                };
                self.write_page(record_type, page).await
            };
            if let Err(error) = written_page.await {
                if let Some(task) = upcoming {
                    task.abort();
                }
                return Err(error);
            }
            if let Some(written) = written {
                // The publisher only stops early on an error, which the run reports.
                let _ = written.send(ids);
            }
            match upcoming {
                Some(task) => pending = task,
                None => return Ok(()),
            }
        }
    }

    /// The associations embedded in a page along `edges`. Records whose embedded list
    /// HubSpot cut short (it carries paging) have theirs read whole with a v4 batch read.
    async fn embedded_associations(
        &self,
        edges: &[Edge],
        objects: &[CrmObject],
    ) -> Result<Vec<EdgeRead>, RunError> {
        let mut out = Vec::with_capacity(edges.len());
        for &edge in edges {
            let (mut found, cut) = embedded_edges(edge, objects);
            if !cut.is_empty() {
                found.retain(|(from, _, _)| !cut.contains(from));
                found.extend(read_associations(self.client, edge, &cut).await?);
            }
            out.push((edge, found));
        }
        Ok(out)
    }

    async fn write_page(
        &self,
        record_type: RecordType,
        page: WrittenPage<'_>,
    ) -> Result<(), RunError> {
        let mut conn = db(self.ctx).await?;
        let run = self.run;
        let connection = self.connection;
        let interval = self.ctx.settings.progress_interval_ms;
        let page = &page;
        let written = conn
            .transaction::<_, diesel::result::Error, _>(async move |conn| {
                if !runs::is_open(conn, run.id).await? {
                    return Ok(None);
                }
                // Contacts promoted from duplicate are flagged pending like the rest and
                // go out with the run's publishing of every pending record.
                let written = mirror::upsert_page(
                    conn,
                    connection,
                    record_type,
                    page.mapped,
                    page.read_at,
                    Some(run.id),
                    &mut Vec::new(),
                )
                .await?;
                if let Some(associations) = page.associations {
                    for (edge, found) in associations {
                        mirror::replace_associations(conn, connection, *edge, page.ids, found)
                            .await?;
                    }
                    if page.next.is_none() {
                        runs::record_associations(conn, run.id, record_type.name(), None, true)
                            .await?;
                    }
                }
                let progress = PageProgress {
                    fetched: i64::try_from(page.fetched).unwrap_or(i64::MAX),
                    written: i64::try_from(written.len()).unwrap_or(i64::MAX),
                    deleted: 0,
                    skip_reasons: page.mapped.skip_reasons(),
                    done: page.next.is_none(),
                    cursor: page.next.clone(),
                };
                runs::record_page(conn, run.id, record_type.name(), &progress).await?;
                maybe_progress(conn, run, interval).await?;
                Ok(Some(written.len()))
            })
            .await?;
        self.ctx.relay.wake();
        match written {
            None => Err(RunError::Cancelled),
            Some(n) => {
                self.ctx
                    .metrics
                    .records_written
                    .with_label_values(&[record_type.name(), "sync"])
                    .inc_by(n as u64);
                Ok(())
            }
        }
    }

    /// Reads the associations of every mirror record of `record_type` (along the edges
    /// whose canonical side it is), 1,000 ids per v4 batch read, from the checkpoint.
    ///
    /// Each read waits on its own latency (about a tenth of a second for 1,000 ids), and
    /// one at a time these reads were a sync's last seconds. The next chunk of ids is known
    /// as soon as the one before is, so a few reads are in flight at once (the portal's
    /// budget still paces them); their results are written, and the checkpoint moved,
    /// strictly in order, so a restart resumes after the last chunk written.
    async fn list_associations(
        &self,
        record_type: RecordType,
        after: Option<i64>,
    ) -> Result<(), RunError> {
        let edges: Vec<Edge> = Edge::from_side(record_type).collect();
        let start = after.unwrap_or(0);
        let limit = i64::try_from(hubspot_client::ASSOCIATION_BATCH_SIZE).unwrap_or(1000);
        // Each read in flight with the last id of its chunk, in chunk order.
        let mut in_flight: std::collections::VecDeque<(i64, AssociationRead)> = Default::default();
        let mut next_from = Some(start);
        let mut after = start;
        let outcome = 'reads: loop {
            if let Err(error) = self.check_shutdown() {
                break Err(error);
            }
            while in_flight.len() < ASSOCIATION_READS_IN_FLIGHT
                && let Some(from) = next_from
            {
                let ids = match self.ids_after(record_type, from, limit).await {
                    Ok(ids) => ids,
                    Err(error) => break 'reads Err(error),
                };
                let Some(&last) = ids.last() else {
                    break;
                };
                next_from = (i64::try_from(ids.len()).unwrap_or(i64::MAX) == limit).then_some(last);
                let client = self.client.clone();
                let edges = edges.clone();
                let task = tokio::spawn(async move {
                    let mut read = Vec::with_capacity(edges.len());
                    for edge in edges {
                        read.push((edge, read_associations(&client, edge, &ids).await?));
                    }
                    Ok((ids, read))
                });
                in_flight.push_back((last, task));
            }
            let Some((last, front)) = in_flight.pop_front() else {
                break Ok(());
            };
            let written = match front.await {
                Ok(Ok((ids, read))) => {
                    self.write_associations(record_type, last, &ids, &read)
                        .await
                }
                Ok(Err(error)) => Err(RunError::from(error)),
                Err(error) => Err(RunError::Other(format!(
                    "association read task failed: {error}"
                ))),
            };
            match written {
                Ok(()) => after = last,
                Err(error) => break Err(error),
            }
        };
        if let Err(error) = outcome {
            for (_, task) in in_flight {
                task.abort();
            }
            return Err(error);
        }
        self.check_shutdown()?;
        let mut conn = db(self.ctx).await?;
        runs::record_associations(
            &mut conn,
            self.run.id,
            record_type.name(),
            Some(after),
            true,
        )
        .await?;
        Ok(())
    }

    /// The next `limit` live mirror ids of `record_type` after `from`.
    async fn ids_after(
        &self,
        record_type: RecordType,
        from: i64,
        limit: i64,
    ) -> Result<Vec<i64>, RunError> {
        let mut conn = db(self.ctx).await?;
        Ok(mirror::ids_after(
            &mut conn,
            self.connection.connection_id,
            record_type,
            from,
            limit,
        )
        .await?)
    }

    /// Replaces the associations of `ids` with what was read and moves the checkpoint to
    /// `last`, their last id, in one transaction.
    async fn write_associations(
        &self,
        record_type: RecordType,
        last: i64,
        ids: &[i64],
        read: &[EdgeRead],
    ) -> Result<(), RunError> {
        let mut conn = db(self.ctx).await?;
        let run = self.run;
        let connection = self.connection;
        conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
            for (edge, found) in read {
                mirror::replace_associations(conn, connection, *edge, ids, found).await?;
            }
            runs::record_associations(conn, run.id, record_type.name(), Some(last), false).await
        })
        .await?;
        Ok(())
    }

    /// Publishes the pending records of `record_type` (only those among `ids` when given),
    /// one transaction per message, until none is left.
    async fn publish_pending(
        &self,
        record_type: RecordType,
        ids: Option<&[i64]>,
    ) -> Result<(), RunError> {
        let mut conn = db(self.ctx).await?;
        let connection = self.connection;
        let context = &self.context();
        let limit = self.ctx.settings.publish_batch_size;
        loop {
            let taken = conn
                .transaction::<_, diesel::result::Error, _>(async move |conn| {
                    publish::publish_pending(
                        conn,
                        connection,
                        record_type,
                        ids,
                        limit,
                        Vec::new(),
                        context,
                    )
                    .await
                })
                .await?;
            self.ctx.relay.wake();
            if taken == 0 {
                return Ok(());
            }
        }
    }

    /// Publishes every pending record of `types` (and owners and pipelines), one
    /// transaction per message. The types go out side by side, each on a connection of its
    /// own: a full sync's last phase is this, and one type at a time left a core idle.
    async fn publish_all(&self, types: &[RecordType], with_metadata: bool) -> Result<(), RunError> {
        let context = self.context();
        if with_metadata {
            let mut conn = db(self.ctx).await?;
            publish::publish_owners_and_pipelines(&mut conn, self.connection, &context).await?;
        }
        let per_type = types
            .iter()
            .map(|record_type| self.publish_pending(*record_type, None));
        futures::future::try_join_all(per_type).await?;
        Ok(())
    }

    /// Reads given records (and their associations) and publishes them.
    async fn records(&self, record_type: RecordType, ids: &[i64]) -> Result<(), RunError> {
        let mut conn = db(self.ctx).await?;
        runs::ensure_objects(&mut conn, self.run.id, &[record_type.name()], false).await?;
        drop(conn);
        for chunk in ids.chunks(hubspot_client::OBJECT_BATCH_SIZE) {
            let read_at = Utc::now();
            let (found, missing) =
                read_batch(self.client, record_type, chunk, &self.custom).await?;
            let found_ids: Vec<i64> = found.iter().filter_map(|o| o.id.parse().ok()).collect();
            let mut edges = Vec::new();
            for edge in Edge::from_side(record_type) {
                edges.push((
                    edge,
                    read_associations(self.client, edge, &found_ids).await?,
                ));
            }
            let mapped = MappedPage::map_with(record_type, &found, self.custom.get(&record_type));
            let mut conn = db(self.ctx).await?;
            let (run, connection) = (self.run, self.connection);
            let (mapped, edges, found_ids, missing) = (&mapped, &edges, &found_ids, &missing);
            let fetched = found.len();
            conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
                // Promoted duplicates go out with the run's publishing of every pending
                // record.
                let mut promoted = Vec::new();
                let written = mirror::upsert_page(
                    conn,
                    connection,
                    record_type,
                    mapped,
                    read_at,
                    None,
                    &mut promoted,
                )
                .await?;
                for (edge, found) in edges {
                    mirror::replace_associations(conn, connection, *edge, found_ids, found).await?;
                }
                let deleted = mirror::mark_deleted(
                    conn,
                    connection,
                    record_type,
                    missing,
                    read_at,
                    &mut promoted,
                )
                .await?;
                runs::record_page(
                    conn,
                    run.id,
                    record_type.name(),
                    &PageProgress {
                        fetched: i64::try_from(fetched).unwrap_or(0),
                        written: i64::try_from(written.len()).unwrap_or(0),
                        deleted: i64::try_from(deleted.len()).unwrap_or(0),
                        skip_reasons: mapped.skip_reasons(),
                        cursor: None,
                        done: false,
                    },
                )
                .await
            })
            .await?;
        }
        self.publish_all(&RecordType::ALL, false).await
    }

    /// Catches what webhooks missed: a modified-since search per type from the last
    /// reconciled instant minus the look-back window (the client walks past the 10,000
    /// cap), and when due, the recycle bin against the mirror for missed deletions.
    async fn reconcile(&self) -> Result<(), RunError> {
        let names: Vec<&str> = RecordType::ALL.iter().map(|t| t.name()).collect();
        let mut conn = db(self.ctx).await?;
        runs::ensure_objects(&mut conn, self.run.id, &names, false).await?;
        let (through, archived_checked) =
            connections::reconciliation_state(&mut conn, self.connection.connection_id).await?;
        drop(conn);
        let started = Utc::now();
        let lookback = chrono::Duration::seconds(
            i64::try_from(self.ctx.settings.reconcile_lookback_secs).unwrap_or(0),
        );
        let since = through.map_or(0, |t| (t - lookback).timestamp_millis());
        let check_archived = archived_checked.is_none_or(|at| {
            started - at
                >= chrono::Duration::seconds(
                    i64::try_from(self.ctx.settings.archived_check_interval_secs).unwrap_or(0),
                )
        }) || matches!(
            self.run.reason.as_str(),
            // Asked for, or catching up after a reconnect: deletions made while the
            // connection was away are found now, not an interval later.
            "user_request" | "connection_established"
        );
        for record_type in RecordType::ALL {
            self.check_shutdown()?;
            let window = ModifiedSince {
                object_type: record_type.api_name().to_owned(),
                since_ms: since,
                until_ms: None,
                properties: mirror::properties_for(record_type, &self.custom),
                extra_filters: Vec::<Filter>::new(),
            };
            let mut stream = self.client.search_modified_since(window);
            let mut batch: Vec<CrmObject> = Vec::new();
            loop {
                let next = stream.try_next().await?;
                let end = next.is_none();
                if let Some(object) = next {
                    batch.push(object);
                }
                if batch.len() >= hubspot_client::OBJECT_BATCH_SIZE || (end && !batch.is_empty()) {
                    self.reconcile_batch(record_type, std::mem::take(&mut batch))
                        .await?;
                }
                if end {
                    break;
                }
            }
            if check_archived {
                self.reconcile_archived(record_type).await?;
            }
        }
        let mut conn = db(self.ctx).await?;
        connections::record_reconciliation(
            &mut conn,
            self.connection.connection_id,
            started,
            check_archived,
        )
        .await?;
        drop(conn);
        self.publish_all(&RecordType::ALL, false).await
    }

    async fn reconcile_batch(
        &self,
        record_type: RecordType,
        objects: Vec<CrmObject>,
    ) -> Result<(), RunError> {
        let read_at = Utc::now();
        let ids: Vec<i64> = objects.iter().filter_map(|o| o.id.parse().ok()).collect();
        let mut edges = Vec::new();
        for edge in Edge::from_side(record_type) {
            edges.push((edge, read_associations(self.client, edge, &ids).await?));
        }
        let mapped = MappedPage::map_with(record_type, &objects, self.custom.get(&record_type));
        let mut conn = db(self.ctx).await?;
        let (run, connection) = (self.run, self.connection);
        let (mapped, edges, ids) = (&mapped, &edges, &ids);
        let fetched = objects.len();
        conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
            // Promoted duplicates go out with the run's publishing of every pending record.
            let written = mirror::upsert_page(
                conn,
                connection,
                record_type,
                mapped,
                read_at,
                None,
                &mut Vec::new(),
            )
            .await?;
            for (edge, found) in edges {
                mirror::replace_associations(conn, connection, *edge, ids, found).await?;
            }
            runs::record_page(
                conn,
                run.id,
                record_type.name(),
                &PageProgress {
                    fetched: i64::try_from(fetched).unwrap_or(0),
                    written: i64::try_from(written.len()).unwrap_or(0),
                    skip_reasons: mapped.skip_reasons(),
                    ..PageProgress::default()
                },
            )
            .await
        })
        .await?;
        Ok(())
    }

    /// Lists the recycle bin and flags mirror records found there as deleted, and merged
    /// ids found on live records' merge trails as merged.
    async fn reconcile_archived(&self, record_type: RecordType) -> Result<(), RunError> {
        let options = ListOptions {
            properties: vec!["hs_object_id".to_owned()],
            archived: true,
            ..ListOptions::default()
        };
        let archived: Vec<CrmObject> = self
            .client
            .list_objects(record_type.api_name(), options)
            .try_collect()
            .await?;
        let mut by_time: BTreeMap<DateTime<Utc>, Vec<i64>> = BTreeMap::new();
        let now = Utc::now();
        for object in &archived {
            if let Ok(id) = object.id.parse::<i64>() {
                by_time
                    .entry(object.archived_at.unwrap_or(now))
                    .or_default()
                    .push(id);
            }
        }
        let mut conn = db(self.ctx).await?;
        let (run, connection) = (self.run, self.connection);
        let by_time = &by_time;
        conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
            let mut deleted = 0;
            // Promoted duplicates go out with the run's publishing of every pending record.
            let mut promoted = Vec::new();
            for (at, ids) in by_time {
                deleted +=
                    mirror::mark_deleted(conn, connection, record_type, ids, *at, &mut promoted)
                        .await?
                        .len();
            }
            runs::add_deleted(
                conn,
                run.id,
                record_type.name(),
                i64::try_from(deleted).unwrap_or(0),
            )
            .await
        })
        .await?;
        Ok(())
    }
}

/// A fresh run id for runs the worker starts itself (schedules).
pub fn new_run_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_left_round_up_and_never_go_below_zero() {
        assert_eq!(Lanes::pages_left(50_000, 0, 100), 500);
        assert_eq!(Lanes::pages_left(50_001, 0, 100), 501);
        assert_eq!(Lanes::pages_left(10_000, 9_950, 100), 1);
        assert_eq!(Lanes::pages_left(100, 180, 100), 0);
    }

    /// Whether `turn` lets `record_type` read now.
    async fn may_read(lanes: &Lanes, record_type: RecordType) -> bool {
        tokio::time::timeout(
            std::time::Duration::from_millis(50),
            lanes.turn(record_type),
        )
        .await
        .is_ok()
    }

    #[tokio::test]
    async fn the_shorter_listing_waits_for_the_longer_and_both_end_together() {
        let lanes = Lanes::new(vec![(RecordType::Contact, 6), (RecordType::Company, 2)]);
        assert!(may_read(&lanes, RecordType::Contact).await);
        assert!(
            !may_read(&lanes, RecordType::Company).await,
            "4 pages behind"
        );
        assert!(
            may_read(&lanes, RecordType::Deal).await,
            "deals are never held"
        );
        lanes.page_read(RecordType::Contact);
        lanes.page_read(RecordType::Contact);
        assert!(
            may_read(&lanes, RecordType::Company).await,
            "within the slack"
        );
        // A waiting chain wakes when the other one reads.
        lanes.page_read(RecordType::Company);
        lanes.page_read(RecordType::Company);
        let waiting = tokio::spawn({
            let lanes = lanes.clone();
            async move { lanes.turn(RecordType::Company).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "0 pages left against 4");
        lanes.page_read(RecordType::Contact);
        lanes.page_read(RecordType::Contact);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the company chain's turn came")
            .expect("task");
    }

    #[tokio::test]
    async fn a_listing_that_ends_early_releases_the_one_waiting_for_it() {
        let lanes = Lanes::new(vec![(RecordType::Contact, 50), (RecordType::Company, 1)]);
        assert!(!may_read(&lanes, RecordType::Company).await);
        // The contacts' count was too high: HubSpot had fewer by the time they were read.
        lanes.finished(RecordType::Contact);
        assert!(may_read(&lanes, RecordType::Company).await);
    }

    fn record(id: &str, associations: serde_json::Value) -> CrmObject {
        serde_json::from_value(serde_json::json!({
            "id": id, "properties": {}, "archived": false, "associations": associations
        }))
        .unwrap()
    }

    #[test]
    fn embedded_edges_are_one_per_pair_with_the_primary_kept_and_cut_lists_named() {
        let page = [
            record(
                "1",
                serde_json::json!({"companies": {"results": [
                    {"id": "10", "type": "contact_to_company"},
                    {"id": "10", "type": "contact_to_company_unlabeled"},
                    {"id": "11", "type": "contact_to_company_unlabeled"}]}}),
            ),
            record(
                "2",
                serde_json::json!({"companies": {
                    "results": [{"id": "12", "type": "contact_to_company_unlabeled"}],
                    "paging": {"next": {"after": "1"}}}}),
            ),
            record(
                "3",
                serde_json::json!({"deals": {"results": [{"id": "7"}]}}),
            ),
        ];
        let (found, cut) = embedded_edges(Edge::CONTACT_COMPANY, &page);
        assert_eq!(found, vec![(1, 10, true), (1, 11, false)]);
        assert_eq!(cut, vec![2], "a cut list is read whole, not trusted");

        let deals = [record(
            "5",
            serde_json::json!({"contacts": {"results": [
                {"id": "1", "type": "deal_to_contact"},
                {"id": "2", "type": "deal_to_contact"}]}}),
        )];
        let (found, cut) = embedded_edges(Edge::DEAL_CONTACT, &deals);
        assert_eq!(
            found,
            vec![(5, 1, false), (5, 2, false)],
            "only contacts' companies are primary"
        );
        assert!(cut.is_empty());
        assert!(embedded_edges(Edge::DEAL_COMPANY, &deals).0.is_empty());
    }
}
