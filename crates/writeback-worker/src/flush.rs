//! The flusher: writes waiting scores to HubSpot in batch updates of up to 100 records,
//! only the values that differ from what was last written successfully.
//!
//! # One writer per connection
//!
//! A connection's batches are written by whichever replica holds its PostgreSQL advisory
//! lock, taken on a connection of its own that lives exactly as long as the flush: a
//! replica that dies loses the lock with its database session, and the next one resets the
//! in-flight marks it left and carries on, after a short grace for requests the old holder
//! may still have had on the way. A holder checks its lock session every 250 ms and stops
//! (aborting the sends it has waiting) once the session is gone, since its pool may work
//! again while the lock is already someone else's. Within the holder, a record is in at
//! most one request at a time (its row is marked in flight), and a write settles only the
//! revision it carried, so a score that arrived meanwhile is written next. Hence an older
//! score is never written after a newer one, whatever the replicas and redeliveries.
//!
//! # Batches
//!
//! A record is taken once its score stopped changing for `settle_ms` (a burst of changes to
//! one record costs one write). A batch is sent when it is full (100 records whose values
//! differ) or its oldest score has waited `batch_window_ms`; during a burst (a full batch
//! of the object type went out within `burst_window_ms`) a partial batch waits up to
//! `burst_window_ms` for the records still arriving. Records whose values equal what was
//! last written are settled without a request. Up to `max_in_flight` requests of a
//! connection are outstanding; the shared rate budget paces them, so a burst goes out as
//! full batches at the portal's limit.
//!
//! Timeline events on risk-level changes (`crate::timeline`) are sent by the same lock
//! holder, between the batches.
//!
//! # Failures
//!
//! In a 207 the rows HubSpot refused are recorded: a deleted or merged record
//! (`OBJECT_NOT_FOUND`) or an invalid value is skipped for good; anything else is retried up
//! to `max_attempts`. The other rows of the batch are settled as written. 429 and 5xx are
//! retried inside the client. If a request still failed in a way that leaves its outcome
//! unknown (HubSpot unavailable, the connection cut, an unreadable answer) the records are
//! read back and those that hold the values sent count as written; the rest stay pending.
//! Resending them would be harmless too (a batch update sets absolute values and nothing
//! newer can have been written in between, since this replica holds the lock), but reading
//! back keeps the counters true. Refused credentials pause the connection's writes (the
//! scores stay pending) until `reauth_pause_ms` passes or the connection is re-established.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Bool, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::outbound::OutboundError;
use hubspot_client::{HubSpotClient, HubSpotError, UpdateInput};
use platform::db::Pool;
use platform::outbox::RelayWaker;
use platform::shutdown::Shutdown;
use prometheus::{IntCounterVec, Opts};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::config::WritebackSettings;
use crate::db::{self, PendingScore, RecordFailure};
use crate::hubspot::{Clients, ConnectionAccess};
use crate::mapping::{self, Purpose, RiskLevel, ScoreValues, TargetObject, WritebackMapping};
use crate::timeline;

/// Records a batch carries at most (HubSpot's batch limit).
pub const BATCH_SIZE: usize = 100;

/// Rows read per look at the waiting scores.
const PAGE: i64 = 500;

/// The flusher's series.
#[derive(Clone)]
pub struct FlushMetrics {
    records: IntCounterVec,
    requests: IntCounterVec,
    timeline_events: IntCounterVec,
    attribute_values_skipped: IntCounterVec,
}

impl FlushMetrics {
    /// Registers `writeback_records_total{outcome}`, `writeback_requests_total{object_type}`,
    /// `writeback_timeline_events_total{outcome}` and
    /// `writeback_attribute_values_skipped_total{reason}`.
    pub fn register(registry: &prometheus::Registry) -> anyhow::Result<Self> {
        let records = IntCounterVec::new(
            Opts::new(
                "writeback_records_total",
                "Records settled by the flusher, by outcome (written, unchanged, failed)",
            ),
            &["outcome"],
        )?;
        let requests = IntCounterVec::new(
            Opts::new(
                "writeback_requests_total",
                "Batch update requests sent to HubSpot",
            ),
            &["object_type"],
        )?;
        let timeline_events = IntCounterVec::new(
            Opts::new(
                "writeback_timeline_events_total",
                "Timeline events settled by the flusher, by outcome (sent, failed)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(records.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        let attribute_values_skipped = IntCounterVec::new(
            Opts::new(
                "writeback_attribute_values_skipped_total",
                "Custom attribute values left unwritten because their property cannot hold them",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(timeline_events.clone()))?;
        registry.register(Box::new(attribute_values_skipped.clone()))?;
        Ok(Self {
            records,
            requests,
            timeline_events,
            attribute_values_skipped,
        })
    }

    /// Counts and logs the attribute values of a record their properties cannot hold (never
    /// the values themselves: they may be personal data).
    fn attributes_skipped(&self, object_id: i64, errors: Option<Vec<OutboundError>>) {
        for error in errors.unwrap_or_default() {
            let (reason, property) = match &error {
                OutboundError::TypeMismatch { property, .. } => ("type_mismatch", property),
                OutboundError::OptionNotInEnumeration { property, .. } => {
                    ("not_an_option", property)
                }
                OutboundError::MultipleOptionsForSingleSelect { property, .. } => {
                    ("several_options", property)
                }
            };
            tracing::warn!(object_id, property = %property, reason, "attribute value not written");
            self.attribute_values_skipped
                .with_label_values(&[reason])
                .inc();
        }
    }

    fn timeline(&self, outcome: &str, n: usize) {
        if n > 0 {
            self.timeline_events
                .with_label_values(&[outcome])
                .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }

    fn records(&self, outcome: &str, n: usize) {
        self.records
            .with_label_values(&[outcome])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

/// Everything a flush needs.
pub struct Flusher {
    /// The service's pool.
    pub pool: Pool,
    /// Where lock-holding sessions connect.
    pub database_url: String,
    /// HubSpot clients per connection.
    pub clients: Clients,
    /// Batching and pacing.
    pub settings: WritebackSettings,
    /// Wakes the outbox relay after `writeback.completed` is enqueued.
    pub relay_waker: RelayWaker,
    /// Series.
    pub metrics: FlushMetrics,
    /// The OAuth app's timeline event templates.
    pub templates: Arc<timeline::Templates>,
}

/// One record in a batch.
#[derive(Debug, Clone)]
struct Item {
    object_id: i64,
    revision: i64,
    properties: BTreeMap<String, String>,
    message_id: Uuid,
    attempts: i32,
}

/// A batch ready to send.
struct Batch {
    object_type: TargetObject,
    items: Vec<Item>,
    unchanged: usize,
}

/// What one request did, settled in the database.
#[derive(Default)]
struct Settled {
    written: Vec<(i64, i64, serde_json::Value)>,
    failed: Vec<RecordFailure>,
    released: Vec<(i64, i64)>,
    pause: Option<(Duration, String)>,
    missing_scope: Option<String>,
    reprepare: bool,
    error: Option<String>,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// The instant `pause` from now.
fn after(pause: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(pause).unwrap_or_default()
}

/// How long a new holder waits before resending what a stopped one left in flight: more
/// than `platform::db::LOCK_SESSION_CHECK`'s interval and timeout together, by which time
/// the old holder has stopped.
const TAKEOVER_GRACE: Duration = Duration::from_secs(2);

impl Flusher {
    /// Runs until `shutdown`: every tick, starts a flush for each connection with waiting
    /// scores that no flush of this process is busy with. At shutdown, lets the running
    /// flushes finish their requests.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) -> anyhow::Result<()> {
        let tick = millis((self.settings.batch_window_ms / 2).clamp(20, 200));
        let mut running: JoinSet<Uuid> = JoinSet::new();
        let mut busy: HashSet<Uuid> = HashSet::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(done) = running.join_next() => {
                    if let Ok(id) = done {
                        busy.remove(&id);
                    }
                    continue;
                }
                () = tokio::time::sleep(tick) => {}
            }
            let due = match self.pool.get().await {
                Ok(mut conn) => db::connections_with_pending(&mut conn).await,
                Err(e) => {
                    tracing::warn!(error = %e, "flusher: no database connection");
                    continue;
                }
            };
            match due {
                Ok(ids) => {
                    for id in ids {
                        if !busy.insert(id) {
                            continue;
                        }
                        let this = self.clone();
                        let shutdown = shutdown.clone();
                        running.spawn(async move {
                            // A panic, too, ends in `id` coming back: the connection must
                            // not stay busy in this process for good.
                            match platform::panics::caught(this.flush_connection(id, &shutdown))
                                .await
                            {
                                Ok(Ok(())) => {}
                                Ok(Err(error)) => {
                                    tracing::warn!(connection_id = %id, error = format!("{error:#}"), "flush failed; will try again");
                                }
                                Err(panic) => {
                                    tracing::error!(connection_id = %id, panic, "flush panicked; will try again");
                                }
                            }
                            id
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "flusher: listing connections failed"),
            }
        }
        while running.join_next().await.is_some() {}
        Ok(())
    }

    /// Flushes one connection while holding its lock, until nothing is waiting (or only a
    /// partial batch that is not due yet, or the connection was paused).
    async fn flush_connection(
        &self,
        connection_id: Uuid,
        shutdown: &Shutdown,
    ) -> anyhow::Result<()> {
        let mut lock = AsyncPgConnection::establish(&self.database_url).await?;
        let key = format!("hubscore.writeback.{connection_id}");
        let locked: Locked =
            sql_query("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked")
                .bind::<Text, _>(&key)
                .get_result(&mut lock)
                .await?;
        if !locked.locked {
            return Ok(());
        }
        // A holder whose lock session ended (a database restart, a cut connection) no longer
        // holds the lock while its pool may work again: it stops before another replica
        // takes over. Dropping the flush aborts every send still waiting for the rate budget
        // or an answer.
        tokio::select! {
            result = self.flush_locked(connection_id, shutdown) => result,
            lost = platform::db::session_lost(&mut lock) => Err(lost.context(format!(
                "lost the lock of connection {connection_id}; stopping its writes"
            ))),
        }
    }

    /// [`Self::flush_connection`]'s work once the lock is held.
    async fn flush_locked(&self, connection_id: Uuid, shutdown: &Shutdown) -> anyhow::Result<()> {
        let mut conn = self.pool.get().await?;
        let stale = db::reset_inflight(&mut conn, connection_id).await?;
        if stale > 0 {
            tracing::info!(connection_id = %connection_id, records = stale, "resending writes a stopped flusher left in flight");
            // The flusher that left them may have had requests on the way when it stopped
            // (it stops within about a second of losing its session): let them land first, so
            // that one of them cannot arrive after a newer value sent from here.
            tokio::time::sleep(TAKEOVER_GRACE).await;
        }
        let Some(connection) = db::connection(&mut conn, connection_id).await? else {
            return Ok(());
        };
        if connection.status != "active" || connection.paused_until.is_some_and(|t| t > Utc::now())
        {
            return Ok(());
        }
        let access = ConnectionAccess {
            connection_id,
            portal_id: connection.portal_id,
            oauth: connection.auth_kind == "oauth",
        };
        let client = self.clients.client(access)?;
        let mapping = db::mapping(&mut conn, connection_id).await?;
        if connection.needs_prepare {
            let prepared =
                match crate::prepare::prepare(&client, &mapping, &connection.scopes).await {
                    Ok(mut targets) => self
                        .templates
                        .prepare(&mut conn, &mapping, access.oauth, &connection.scopes)
                        .await
                        .map(|more| {
                            targets.extend(more);
                            targets
                        })
                        .map_err(|e| {
                            let reason =
                                format!("hubspot_unavailable: timeline event templates: {e:#}");
                            (millis(self.settings.retry_pause_ms), reason.clone(), reason)
                        }),
                    Err(error) => {
                        let (pause, reason) = self.pause_for(&error);
                        Err((pause, reason, format!("preparing properties: {error}")))
                    }
                };
            match prepared {
                Ok(targets) => {
                    let version = connection.prepare_version;
                    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                        db::save_targets(conn, connection_id, version, &targets).await
                    })
                    .await?;
                    for t in targets.iter().filter(|t| t.state != "ready") {
                        tracing::warn!(connection_id = %connection_id, property = %t.property, state = %t.state, detail = %t.detail, "property not written");
                    }
                }
                Err((pause, reason, error)) => {
                    db::pause(&mut conn, connection_id, after(pause), &reason).await?;
                    db::count(
                        &mut conn,
                        connection_id,
                        &db::FlushCounts {
                            written: 0,
                            unchanged: 0,
                            failed: 0,
                            requests: 0,
                            error: Some(&error),
                        },
                    )
                    .await?;
                    return Ok(());
                }
            }
        }
        let targets = db::targets(&mut conn, connection_id).await?;
        let mut templates: HashMap<TargetObject, String> = HashMap::new();
        let mut unready: HashMap<TargetObject, String> = HashMap::new();
        for t in targets.iter().filter(|t| t.purpose == timeline::PURPOSE) {
            if let Some(ot) = TargetObject::parse(&t.object_type) {
                if t.state == "ready" && mapping.enabled && mapping.timeline_events {
                    templates.insert(ot, t.property.clone());
                } else if t.state == "ready" {
                    unready.insert(ot, "timeline events were turned off".to_owned());
                } else {
                    unready.insert(ot, t.detail.clone());
                }
            }
        }
        let mut timeline_waiting = timeline::pending_count(&mut conn, connection_id).await? > 0;
        drop(conn);
        let ready: HashMap<TargetObject, Ready> = TargetObject::ALL
            .into_iter()
            .map(|ot| {
                let ready = if mapping.enabled && mapping.object_types.contains(&ot) {
                    Ready {
                        purposes: db::ready_properties(&targets, ot),
                        attributes: db::ready_attributes(&targets, ot),
                    }
                } else {
                    Ready::default()
                };
                (ot, ready)
            })
            .collect();
        let context = Arc::new(SendContext {
            pool: self.pool.clone(),
            client,
            connection_id,
            prepare_version: connection.prepare_version,
            org_id: connection.org_id,
            portal_id: connection.portal_id,
            settings: self.settings.clone(),
            relay_waker: self.relay_waker.clone(),
            metrics: self.metrics.clone(),
        });
        let tick = millis((self.settings.batch_window_ms / 4).clamp(10, 100));
        let mut in_flight: JoinSet<anyhow::Result<bool>> = JoinSet::new();
        let mut paused = false;
        // A new request to prepare came in (mapping changed, reconnected): this flush ends
        // with what it has in flight, and the next one prepares and reads the mapping anew.
        let mut stale = false;
        loop {
            let stopping = shutdown.is_cancelled() || paused || stale;
            let mut started = false;
            if !stopping && timeline_waiting {
                let mut conn = self.pool.get().await?;
                let round = timeline::send_round(
                    &mut conn,
                    &context.client,
                    connection_id,
                    &templates,
                    &unready,
                    self.settings.max_attempts,
                )
                .await?;
                self.metrics.timeline("sent", round.sent);
                self.metrics.timeline("failed", round.failed);
                if let Some(error) = round.error {
                    let (pause, reason) = self.pause_for(&error);
                    tracing::warn!(connection_id = %connection_id, error = %error, "sending timeline events failed; pausing the connection's writes");
                    db::pause(&mut conn, connection_id, after(pause), &reason).await?;
                    paused = true;
                    continue;
                }
                timeline_waiting = timeline::pending_count(&mut conn, connection_id).await? > 0;
            }
            if !stopping {
                'types: for ot in TargetObject::ALL {
                    while in_flight.len() < self.settings.max_in_flight.max(1) {
                        match self.next_batch(&context, &mapping, ot, &ready[&ot]).await? {
                            Next::Batch(batch) => {
                                started = true;
                                let ctx = context.clone();
                                in_flight.spawn(async move { ctx.send(batch).await });
                            }
                            Next::Wait => break,
                            Next::Stale => {
                                tracing::info!(connection_id = %connection_id, "the mapping or the portal's properties are to be prepared again; this flush ends");
                                stale = true;
                                break 'types;
                            }
                        }
                    }
                }
            }
            if in_flight.is_empty() {
                if stopping {
                    return Ok(());
                }
                let mut conn = self.pool.get().await?;
                let (pending, _) = db::pending_counts(&mut conn, connection_id).await?;
                timeline_waiting = timeline::pending_count(&mut conn, connection_id).await? > 0;
                if pending == 0 && !timeline_waiting {
                    return Ok(());
                }
            }
            if started {
                continue;
            }
            tokio::select! {
                Some(done) = in_flight.join_next() => {
                    // A send that could not record its outcome, or that panicked, left its
                    // records in flight: end the flush so that the next one resets them.
                    match done {
                        Ok(Ok(true)) => paused = true,
                        Ok(Ok(false)) => {}
                        Ok(Err(error)) => return Err(error),
                        Err(e) => anyhow::bail!("a batch send panicked: {e}"),
                    }
                }
                () = tokio::time::sleep(tick) => {}
            }
        }
    }

    fn pause_for(&self, error: &HubSpotError) -> (Duration, String) {
        match error {
            HubSpotError::Unauthorized { .. } => (
                millis(self.settings.reauth_pause_ms),
                "reauth_required: HubSpot refused the connection's credentials".to_owned(),
            ),
            HubSpotError::DailyQuotaExhausted { until } => (
                until
                    .and_then(|u| (u - Utc::now()).to_std().ok())
                    .unwrap_or(millis(self.settings.retry_pause_ms)),
                "daily_quota_exhausted: the portal's daily API quota is used up".to_owned(),
            ),
            other => (
                millis(self.settings.retry_pause_ms),
                format!("hubspot_unavailable: {other}"),
            ),
        }
    }

    /// The next batch of one object type, if one is full or due. Settles the unchanged
    /// records it passes on the way. Both the settling and the claim happen only while the
    /// properties are still prepared as this flush read them: after a mapping change or a
    /// reconnect (a new request to prepare) this flush's idea of what can be written is
    /// stale, and a record settled on it would never get what the new mapping adds.
    async fn next_batch(
        &self,
        ctx: &SendContext,
        mapping: &WritebackMapping,
        object_type: TargetObject,
        ready: &Ready,
    ) -> anyhow::Result<Next> {
        let mut conn = self.pool.get().await?;
        let mut items: Vec<Item> = Vec::new();
        let mut oldest: Option<DateTime<Utc>> = None;
        let mut unchanged_total = 0;
        // Attribute values left out, counted once their record leaves here (sent or
        // settled): a record waiting for its batch to be due is read again on every tick.
        let mut skipped: HashMap<i64, Vec<OutboundError>> = HashMap::new();
        loop {
            let offset = i64::try_from(items.len()).unwrap_or(0);
            let settle = i64::try_from(self.settings.settle_ms).unwrap_or(0);
            let rows = db::pending_scores(
                &mut conn,
                ctx.connection_id,
                object_type,
                settle,
                offset,
                PAGE,
            )
            .await?;
            let exhausted = i64::try_from(rows.len()).unwrap_or(0) < PAGE;
            let mut unchanged: Vec<(i64, i64)> = Vec::new();
            for row in rows {
                if items.len() == BATCH_SIZE {
                    break;
                }
                let (properties, left_out) = wanted(mapping, ready, &row);
                if !left_out.is_empty() {
                    skipped.insert(row.object_id, left_out);
                }
                if properties.is_empty() {
                    unchanged.push((row.object_id, row.revision));
                    continue;
                }
                oldest = Some(oldest.map_or(row.pending_since, |o| o.min(row.pending_since)));
                items.push(Item {
                    object_id: row.object_id,
                    revision: row.revision,
                    properties,
                    message_id: row.message_id,
                    attempts: row.attempts,
                });
            }
            if !unchanged.is_empty() {
                let settled = conn
                    .transaction::<_, diesel::result::Error, _>(async |c| {
                        if !db::still_prepared(c, ctx.connection_id, ctx.prepare_version).await? {
                            return Ok(None);
                        }
                        db::settle_unsent(c, ctx.connection_id, object_type, &unchanged)
                            .await
                            .map(Some)
                    })
                    .await?;
                let Some(settled) = settled else {
                    return Ok(Next::Stale);
                };
                for (id, _) in &unchanged {
                    self.metrics.attributes_skipped(*id, skipped.remove(id));
                }
                // Records with nothing to write because no property is ready are not counted.
                if !ready.is_empty() && settled > 0 {
                    unchanged_total += settled;
                    ctx.counted_unchanged(&mut conn, object_type, settled)
                        .await?;
                }
            }
            if items.len() == BATCH_SIZE || exhausted {
                break;
            }
        }
        let waited = |ms: u64| {
            let window = chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(0));
            oldest.is_some_and(|o| o + window <= Utc::now())
        };
        let full = items.len() == BATCH_SIZE;
        let mut due = full || waited(self.settings.batch_window_ms);
        // In a burst (a full batch went out lately) more records are on the way: a partial
        // batch waits for them up to `burst_window_ms`, so a burst that arrives more slowly
        // than the portal's budget allows still goes out as full batches.
        if due && !full && !waited(self.settings.burst_window_ms) {
            let burst = db::full_batch_within(
                &mut conn,
                ctx.connection_id,
                object_type,
                i32::try_from(BATCH_SIZE).unwrap_or(i32::MAX),
                i64::try_from(self.settings.burst_window_ms).unwrap_or(i64::MAX),
            )
            .await?;
            due = !burst;
        }
        if items.is_empty() || !due {
            return Ok(Next::Wait);
        }
        let marks: Vec<(i64, i64)> = items.iter().map(|i| (i.object_id, i.revision)).collect();
        // A score stored since the rows were read is not marked; it is sent at its new
        // revision by a later batch, never with the values read here.
        let marked = conn
            .transaction::<_, diesel::result::Error, _>(async |c| {
                if !db::still_prepared(c, ctx.connection_id, ctx.prepare_version).await? {
                    return Ok(None);
                }
                db::mark_inflight(c, ctx.connection_id, object_type, &marks)
                    .await
                    .map(Some)
            })
            .await?;
        let Some(marked) = marked else {
            return Ok(Next::Stale);
        };
        items.retain(|i| marked.contains(&i.object_id));
        for item in &items {
            self.metrics
                .attributes_skipped(item.object_id, skipped.remove(&item.object_id));
        }
        if items.is_empty() {
            return Ok(Next::Wait);
        }
        Ok(Next::Batch(Batch {
            object_type,
            items,
            unchanged: unchanged_total,
        }))
    }
}

/// What of a record can be written for one object type: the hubscore fields and the custom
/// attributes whose properties are ready.
#[derive(Debug, Default)]
struct Ready {
    purposes: Vec<Purpose>,
    attributes: Vec<mapping::ReadyAttribute>,
}

impl Ready {
    fn is_empty(&self) -> bool {
        self.purposes.is_empty() && self.attributes.is_empty()
    }
}

/// The properties of a waiting record that must be sent (empty: nothing differs): its score's
/// fields (when it has a score) and its custom attributes; and the attribute values left out
/// because their properties cannot hold them.
fn wanted(
    mapping: &WritebackMapping,
    ready: &Ready,
    row: &PendingScore,
) -> (BTreeMap<String, String>, Vec<OutboundError>) {
    if ready.is_empty() {
        return (BTreeMap::new(), Vec::new());
    }
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    let written = row.written_map();
    if row.scored && !ready.purposes.is_empty() {
        let values = ScoreValues {
            score: row.score.and_then(|s| u8::try_from(s).ok()),
            risk_level: RiskLevel::parse(&row.risk_level),
            top_factor: row.top_factor.clone(),
            computed_at: row.computed_at,
        };
        let mut rendered = mapping::render(mapping, &values);
        rendered.retain(|purpose, _| ready.purposes.contains(purpose));
        out = mapping::changed(mapping, &rendered, &written, row.force_write);
    }
    if !ready.attributes.is_empty() {
        let (values, left_out) = mapping::render_attributes(&ready.attributes, &row.attributes);
        for (property, value) in values {
            if row.force_write || written.get(&property) != Some(&value) {
                out.insert(property, value);
            }
        }
        errors = left_out;
    }
    (out, errors)
}

/// What [`Flusher::next_batch`] found.
enum Next {
    /// A batch to send.
    Batch(Batch),
    /// Nothing due yet.
    Wait,
    /// The connection is to be prepared again: this flush must end.
    Stale,
}

/// What a batch send needs, shared by a connection's concurrent sends.
struct SendContext {
    pool: Pool,
    client: HubSpotClient,
    connection_id: Uuid,
    /// The prepare version this flush's targets and mapping belong to.
    prepare_version: i64,
    org_id: Uuid,
    portal_id: i64,
    settings: WritebackSettings,
    relay_waker: RelayWaker,
    metrics: FlushMetrics,
}

/// Whether a 207 error entry is final for its record.
fn permanent_category(category: Option<&str>) -> bool {
    matches!(
        category,
        Some("OBJECT_NOT_FOUND" | "VALIDATION_ERROR" | "INVALID_OPTION" | "PROPERTY_DOESNT_EXIST")
    )
}

impl SendContext {
    async fn counted_unchanged(
        &self,
        conn: &mut AsyncPgConnection,
        object_type: TargetObject,
        n: usize,
    ) -> anyhow::Result<()> {
        self.metrics.records("unchanged", n);
        let unchanged = i64::try_from(n).unwrap_or(i64::MAX);
        let now = Utc::now();
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            db::count(
                conn,
                self.connection_id,
                &db::FlushCounts {
                    written: 0,
                    unchanged,
                    failed: 0,
                    requests: 0,
                    error: None,
                },
            )
            .await?;
            db::log(
                conn,
                self.connection_id,
                &db::LogEntry {
                    object_type,
                    written: 0,
                    unchanged: i32::try_from(n).unwrap_or(i32::MAX),
                    failed: 0,
                    error: None,
                    started_at: now,
                    finished_at: now,
                },
            )
            .await?;
            let event = contracts::v1::WritebackCompleted {
                org_id: self.org_id.to_string(),
                connection_id: self.connection_id.to_string(),
                portal_id: self.portal_id,
                written: 0,
                unchanged: u64::try_from(n).unwrap_or(0),
                failed: 0,
                failures: Vec::new(),
                score_message_ids: Vec::new(),
                started_at: Some(contracts::time::to_timestamp(now)),
                finished_at: Some(contracts::time::to_timestamp(now)),
            };
            platform::outbox::enqueue_event(
                conn,
                &event,
                platform::amqp::MessageMeta::start_trace(Some(self.org_id)),
            )
            .await?;
            Ok(())
        })
        .await?;
        self.relay_waker.wake();
        Ok(())
    }

    /// Sends one batch and settles its records; `true` when the connection was paused. An
    /// error means the outcome could not be recorded and the records are still in flight.
    async fn send(&self, batch: Batch) -> anyhow::Result<bool> {
        let started = Utc::now();
        let object_type = batch.object_type;
        let inputs: Vec<UpdateInput> = batch
            .items
            .iter()
            .map(|i| UpdateInput {
                id: i.object_id.to_string(),
                properties: i.properties.clone(),
                ..UpdateInput::default()
            })
            .collect();
        self.metrics
            .requests
            .with_label_values(&[object_type.as_str()])
            .inc();
        let result = self
            .client
            .batch_update(object_type.as_str(), &inputs)
            .await;
        let settled = self.settle(&batch, result).await;
        let paused = settled.pause.is_some();
        let mut attempts = 0u32;
        // Settling must land: the records stay in flight (and are resent after a restart)
        // until it does.
        while let Err(error) = self.record(&batch, &settled, started).await {
            attempts += 1;
            tracing::warn!(connection_id = %self.connection_id, error = %error, "recording a flush failed; retrying");
            if attempts >= 20 {
                return Err(
                    error.context("recording a flush keeps failing; its records will be resent")
                );
            }
            tokio::time::sleep(millis(250 * u64::from(attempts))).await;
        }
        Ok(paused)
    }

    /// Sorts the batch's records into written, failed and released.
    async fn settle(
        &self,
        batch: &Batch,
        result: Result<Vec<hubspot_client::CrmObject>, HubSpotError>,
    ) -> Settled {
        let mut settled = Settled::default();
        let by_id: HashMap<String, &Item> = batch
            .items
            .iter()
            .map(|i| (i.object_id.to_string(), i))
            .collect();
        let mut handled: HashSet<String> = HashSet::new();
        match result {
            Ok(_) => {}
            Err(HubSpotError::PartialBatch {
                errors,
                failed_chunks,
                ..
            }) => {
                for error in &errors {
                    let permanent = permanent_category(error.category.as_deref());
                    let reason = format!(
                        "{}: {}",
                        error.category.as_deref().unwrap_or("ERROR"),
                        error.message
                    );
                    for id in error.failed_ids() {
                        if let Some(item) = by_id.get(&id)
                            && handled.insert(id)
                        {
                            settled.failed.push(self.failure(item, &reason, !permanent));
                        }
                    }
                }
                for chunk in failed_chunks {
                    let items: Vec<&Item> = chunk
                        .ids
                        .iter()
                        .filter(|id| handled.insert((*id).clone()))
                        .filter_map(|id| by_id.get(id).copied())
                        .collect();
                    self.whole_request_failed(batch.object_type, &items, chunk.cause, &mut settled)
                        .await;
                }
            }
            Err(cause) => {
                let items: Vec<&Item> = batch.items.iter().collect();
                for item in &items {
                    handled.insert(item.object_id.to_string());
                }
                self.whole_request_failed(batch.object_type, &items, cause, &mut settled)
                    .await;
            }
        }
        for item in &batch.items {
            if !handled.contains(&item.object_id.to_string()) {
                settled.written.push(written(item));
            }
        }
        settled
    }

    fn failure(&self, item: &Item, reason: &str, retryable: bool) -> RecordFailure {
        // A retryable failure that keeps coming back is given up on, like a permanent one.
        let retryable = retryable && item.attempts + 1 < self.settings.max_attempts;
        RecordFailure {
            object_id: item.object_id,
            revision: item.revision,
            reason: reason.to_owned(),
            retryable,
        }
    }

    async fn whole_request_failed(
        &self,
        object_type: TargetObject,
        items: &[&Item],
        cause: HubSpotError,
        settled: &mut Settled,
    ) {
        let retry_pause = millis(self.settings.retry_pause_ms);
        settled.error = Some(cause.to_string());
        match cause {
            // The outcome is unknown: look at what HubSpot holds now.
            HubSpotError::Transport(_)
            | HubSpotError::Transient { .. }
            | HubSpotError::Decode { .. } => {
                let released = settled.released.len();
                self.read_back(object_type, items, settled).await;
                if settled.released.len() > released {
                    settled
                        .pause
                        .get_or_insert((retry_pause, format!("hubspot_unavailable: {cause}")));
                }
            }
            // Not sent at all: the records wait.
            HubSpotError::RateLimited { .. }
            | HubSpotError::Budget(_)
            | HubSpotError::TokenUnavailable(_) => {
                settled
                    .released
                    .extend(items.iter().map(|i| (i.object_id, i.revision)));
                settled
                    .pause
                    .get_or_insert((retry_pause, format!("hubspot_unavailable: {cause}")));
            }
            HubSpotError::DailyQuotaExhausted { until } => {
                settled
                    .released
                    .extend(items.iter().map(|i| (i.object_id, i.revision)));
                let pause = until
                    .and_then(|u| (u - Utc::now()).to_std().ok())
                    .unwrap_or(retry_pause);
                settled.pause = Some((
                    pause,
                    "daily_quota_exhausted: the portal's daily API quota is used up".to_owned(),
                ));
            }
            HubSpotError::Unauthorized { .. } => {
                settled
                    .released
                    .extend(items.iter().map(|i| (i.object_id, i.revision)));
                settled.pause = Some((
                    millis(self.settings.reauth_pause_ms),
                    "reauth_required: HubSpot refused the connection's credentials".to_owned(),
                ));
            }
            HubSpotError::MissingScopes { required } => {
                settled
                    .released
                    .extend(items.iter().map(|i| (i.object_id, i.revision)));
                settled.missing_scope =
                    Some(format!("writing needs one of the scopes {required:?}"));
            }
            // The request was refused for what it carried (a property deleted or changed
            // since it was prepared): prepare again and retry, a limited number of times.
            other => {
                let reason = other.to_string();
                for item in items {
                    settled.failed.push(self.failure(item, &reason, true));
                }
                settled.reprepare = true;
                settled
                    .pause
                    .get_or_insert((retry_pause, format!("write_refused: {reason}")));
            }
        }
    }

    async fn read_back(&self, object_type: TargetObject, items: &[&Item], settled: &mut Settled) {
        let ids: Vec<String> = items.iter().map(|i| i.object_id.to_string()).collect();
        let mut names: Vec<&str> = items
            .iter()
            .flat_map(|i| i.properties.keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        let found = match self
            .client
            .batch_read(object_type.as_str(), &ids, &names)
            .await
        {
            Ok(found) => found,
            Err(HubSpotError::PartialBatch { succeeded, .. }) => succeeded,
            Err(_) => Vec::new(),
        };
        let by_id: HashMap<&str, &hubspot_client::CrmObject> =
            found.iter().map(|o| (o.id.as_str(), o)).collect();
        for item in items {
            let holds = by_id
                .get(item.object_id.to_string().as_str())
                .is_some_and(|o| {
                    item.properties.iter().all(|(k, v)| {
                        o.property(k).unwrap_or_default() == v || same_instant(o.property(k), v)
                    })
                });
            if holds {
                settled.written.push(written(item));
            } else {
                settled.released.push((item.object_id, item.revision));
            }
        }
    }

    /// Writes the batch's outcome, its log line and `writeback.completed` in one
    /// transaction, and pauses the connection if the batch said so.
    async fn record(
        &self,
        batch: &Batch,
        s: &Settled,
        started: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut conn = self.pool.get().await?;
        let object_type = batch.object_type;
        let finished = Utc::now();
        let failed_final = s.failed.iter().filter(|f| !f.retryable).count();
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            db::record_written(conn, self.connection_id, object_type, &s.written).await?;
            db::record_failed(conn, self.connection_id, object_type, &s.failed).await?;
            if !s.released.is_empty() {
                db::release_inflight(conn, self.connection_id, object_type, &s.released).await?;
            }
            let error = s
                .error
                .as_deref()
                .or_else(|| <[RecordFailure]>::first(&s.failed).map(|f| f.reason.as_str()));
            db::count(
                conn,
                self.connection_id,
                &db::FlushCounts {
                    written: i64::try_from(s.written.len()).unwrap_or(0),
                    unchanged: 0,
                    failed: i64::try_from(failed_final).unwrap_or(0),
                    requests: 1,
                    error,
                },
            )
            .await?;
            db::log(
                conn,
                self.connection_id,
                &db::LogEntry {
                    object_type,
                    written: i32::try_from(s.written.len()).unwrap_or(0),
                    unchanged: 0,
                    failed: i32::try_from(s.failed.len()).unwrap_or(0),
                    error: s.error.as_deref(),
                    started_at: started,
                    finished_at: finished,
                },
            )
            .await?;
            if let Some(detail) = &s.missing_scope {
                db::mark_missing_scope(conn, self.connection_id, object_type, detail).await?;
            }
            if s.reprepare {
                db::request_prepare(conn, self.connection_id).await?;
            }
            if let Some((pause, reason)) = &s.pause {
                let until = finished + chrono::Duration::from_std(*pause).unwrap_or_default();
                db::pause(conn, self.connection_id, until, reason).await?;
            }
            let proto_type = match object_type {
                TargetObject::Contacts => contracts::v1::ObjectType::Contact,
                TargetObject::Companies => contracts::v1::ObjectType::Company,
            };
            let event = contracts::v1::WritebackCompleted {
                org_id: self.org_id.to_string(),
                connection_id: self.connection_id.to_string(),
                portal_id: self.portal_id,
                written: u64::try_from(s.written.len()).unwrap_or(0),
                unchanged: u64::try_from(batch.unchanged).unwrap_or(0),
                failed: u64::try_from(s.failed.len()).unwrap_or(0),
                failures: s
                    .failed
                    .iter()
                    .map(|f| contracts::v1::WritebackFailure {
                        object_type: proto_type.into(),
                        object_id: f.object_id,
                        reason: f.reason.clone(),
                        retryable: f.retryable,
                    })
                    .collect(),
                score_message_ids: batch
                    .items
                    .iter()
                    .map(|i| i.message_id.to_string())
                    .collect(),
                started_at: Some(contracts::time::to_timestamp(started)),
                finished_at: Some(contracts::time::to_timestamp(finished)),
            };
            platform::outbox::enqueue_event(
                conn,
                &event,
                platform::amqp::MessageMeta::start_trace(Some(self.org_id)),
            )
            .await?;
            Ok(())
        })
        .await?;
        self.relay_waker.wake();
        self.metrics.records("written", s.written.len());
        self.metrics.records("failed", failed_final);
        Ok(())
    }
}

fn written(item: &Item) -> (i64, i64, serde_json::Value) {
    let sent: serde_json::Map<String, serde_json::Value> = item
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    (
        item.object_id,
        item.revision,
        serde_json::Value::Object(sent),
    )
}

/// HubSpot may echo a datetime in another ISO form than the one sent.
fn same_instant(held: Option<&str>, sent: &str) -> bool {
    match (
        held.and_then(|h| DateTime::parse_from_rfc3339(h).ok()),
        DateTime::parse_from_rfc3339(sent).ok(),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}
