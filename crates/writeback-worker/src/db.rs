//! The `writeback` schema's queries. Every one names its connection (and, where a caller's
//! request drives it, its org); multi-step writes run inside the caller's transaction.
//!
//! Written as SQL: the upserts carry version checks and the batch updates use `UNNEST`,
//! which read more plainly as SQL than as query-builder chains.
//!
//! The batch updates joined to `UNNEST` are index lookups only while the planner knows the
//! table's size; the service keeps its statistics current (`with_fresh_statistics` in
//! `startup`), since a burst grows it faster than autovacuum analyzes it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_query;
use diesel::sql_types::{
    Array, BigInt, Bool, Integer, Jsonb, Nullable, SmallInt, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use uuid::Uuid;

use crate::mapping::{ATTRIBUTE_PREFIX, Purpose, ReadyAttribute, TargetObject, WritebackMapping};

/// The `writeback` schema's migrations.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!();

type Result<T> = diesel::QueryResult<T>;

/// A connection as the worker knows it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Connection {
    /// The connection.
    #[diesel(sql_type = SqlUuid)]
    pub connection_id: Uuid,
    /// Its org.
    #[diesel(sql_type = SqlUuid)]
    pub org_id: Uuid,
    /// Its portal.
    #[diesel(sql_type = BigInt)]
    pub portal_id: i64,
    /// `oauth` or `private_app`.
    #[diesel(sql_type = Text)]
    pub auth_kind: String,
    /// Scopes granted.
    #[diesel(sql_type = Array<Text>)]
    pub scopes: Vec<String>,
    /// `active` or `closed`.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// Properties must be prepared before the next write.
    #[diesel(sql_type = Bool)]
    pub needs_prepare: bool,
    /// Bumped by every request to prepare.
    #[diesel(sql_type = BigInt)]
    pub prepare_version: i64,
    /// Writes wait until then.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub paused_until: Option<DateTime<Utc>>,
    /// Why.
    #[diesel(sql_type = Nullable<Text>)]
    pub paused_reason: Option<String>,
}

const CONNECTION_COLUMNS: &str = "connection_id, org_id, portal_id, auth_kind, scopes, status, \
    needs_prepare, prepare_version, paused_until, paused_reason";

/// What `connection.established` says.
pub struct Established<'a> {
    /// The connection.
    pub connection_id: Uuid,
    /// Its org.
    pub org_id: Uuid,
    /// Its portal.
    pub portal_id: i64,
    /// `oauth` or `private_app`.
    pub auth_kind: &'a str,
    /// Scopes granted.
    pub scopes: &'a [String],
    /// When.
    pub at: DateTime<Utc>,
}

/// Records an established (or re-established) connection: active, properties to be
/// prepared, any pause lifted. An event older than the stored status changes nothing.
pub async fn connection_established(
    conn: &mut AsyncPgConnection,
    e: &Established<'_>,
) -> Result<()> {
    sql_query(
        "INSERT INTO connections (connection_id, org_id, portal_id, auth_kind, scopes, status, status_changed_at) \
         VALUES ($1, $2, $3, $4, $5, 'active', $6) \
         ON CONFLICT (connection_id) DO UPDATE SET org_id = EXCLUDED.org_id, portal_id = EXCLUDED.portal_id, \
           auth_kind = EXCLUDED.auth_kind, scopes = EXCLUDED.scopes, status = 'active', \
           status_changed_at = EXCLUDED.status_changed_at, needs_prepare = TRUE, \
           prepare_version = connections.prepare_version + 1, paused_until = NULL, \
           paused_reason = NULL, updated_at = now() \
         WHERE connections.status_changed_at <= EXCLUDED.status_changed_at",
    )
    .bind::<SqlUuid, _>(e.connection_id)
    .bind::<SqlUuid, _>(e.org_id)
    .bind::<BigInt, _>(e.portal_id)
    .bind::<Text, _>(e.auth_kind)
    .bind::<Array<Text>, _>(e.scopes)
    .bind::<Timestamptz, _>(e.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a closed connection; its scores stay, nothing more is written.
pub async fn connection_closed(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    org_id: Uuid,
    portal_id: i64,
    auth_kind: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    sql_query(
        "INSERT INTO connections (connection_id, org_id, portal_id, auth_kind, status, status_changed_at) \
         VALUES ($1, $2, $3, $4, 'closed', $5) \
         ON CONFLICT (connection_id) DO UPDATE SET status = 'closed', \
           status_changed_at = EXCLUDED.status_changed_at, updated_at = now() \
         WHERE connections.status_changed_at <= EXCLUDED.status_changed_at",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<SqlUuid, _>(org_id)
    .bind::<BigInt, _>(portal_id)
    .bind::<Text, _>(auth_kind)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A connection of an org.
pub async fn connection_of_org(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    org_id: Uuid,
) -> Result<Option<Connection>> {
    let rows: Vec<Connection> = sql_query(format!(
        "SELECT {CONNECTION_COLUMNS} FROM connections WHERE connection_id = $1 AND org_id = $2"
    ))
    .bind::<SqlUuid, _>(connection_id)
    .bind::<SqlUuid, _>(org_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// A connection by id (the flusher's view).
pub async fn connection(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
) -> Result<Option<Connection>> {
    let rows: Vec<Connection> = sql_query(format!(
        "SELECT {CONNECTION_COLUMNS} FROM connections WHERE connection_id = $1"
    ))
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    connection_id: Uuid,
}

/// Active, unpaused connections with scores or timeline events waiting, or properties to
/// prepare.
pub async fn connections_with_pending(conn: &mut AsyncPgConnection) -> Result<Vec<Uuid>> {
    let rows: Vec<Id> = sql_query(
        "SELECT c.connection_id FROM connections c \
         WHERE c.status = 'active' AND (c.paused_until IS NULL OR c.paused_until <= now()) \
           AND (c.needs_prepare OR EXISTS (SELECT 1 FROM record_scores r \
                       WHERE r.connection_id = c.connection_id AND r.pending_since IS NOT NULL) \
                OR EXISTS (SELECT 1 FROM timeline_events e \
                       WHERE e.connection_id = c.connection_id AND e.state = 'pending'))",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.connection_id).collect())
}

/// Pauses a connection's writes until `until`, saying why.
pub async fn pause(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    until: DateTime<Utc>,
    reason: &str,
) -> Result<()> {
    sql_query(
        "UPDATE connections SET paused_until = $2, paused_reason = $3, updated_at = now() \
         WHERE connection_id = $1",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Timestamptz, _>(until)
    .bind::<Text, _>(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Asks for the properties to be prepared again before the next write.
pub async fn request_prepare(conn: &mut AsyncPgConnection, connection_id: Uuid) -> Result<()> {
    sql_query(
        "UPDATE connections SET needs_prepare = TRUE, prepare_version = prepare_version + 1 \
         WHERE connection_id = $1",
    )
    .bind::<SqlUuid, _>(connection_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Prepared {
    #[diesel(sql_type = Bool)]
    prepared: bool,
}

/// Whether the connection is still prepared as of `version` (no request to prepare came
/// since). Holds a share lock on the connection's row for the rest of the transaction, so
/// that no such request commits before what the caller does next.
pub async fn still_prepared(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    version: i64,
) -> Result<bool> {
    let rows: Vec<Prepared> = sql_query(
        "SELECT (prepare_version = $2 AND NOT needs_prepare) AS prepared FROM connections \
         WHERE connection_id = $1 FOR SHARE",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<BigInt, _>(version)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().is_some_and(|r| r.prepared))
}

#[derive(QueryableByName)]
struct MappingRow {
    #[diesel(sql_type = Jsonb)]
    mapping: serde_json::Value,
}

/// The stored mapping of a connection, or the defaults.
pub async fn mapping(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
) -> Result<WritebackMapping> {
    let rows: Vec<MappingRow> = sql_query("SELECT mapping FROM mappings WHERE connection_id = $1")
        .bind::<SqlUuid, _>(connection_id)
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|r| serde_json::from_value(r.mapping).ok())
        .unwrap_or_default())
}

/// Stores a (validated) mapping; its properties are prepared before the next write.
pub async fn save_mapping(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    org_id: Uuid,
    mapping: &WritebackMapping,
) -> Result<()> {
    let json = serde_json::to_value(mapping)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let before = self::mapping(conn, connection_id).await?;
    // Records already holding a newly mapped attribute wait to be written: their values
    // came before the mapping did. (Values written before are compared as ever.)
    for object_type in TargetObject::ALL {
        let added: Vec<&str> = mapping
            .attributes_of(object_type)
            .filter(|a| !before.attributes_of(object_type).any(|b| b == *a))
            .map(|a| a.attribute.as_str())
            .collect();
        if !added.is_empty() {
            sql_query(
                "UPDATE record_scores SET revision = revision + 1, \
                   pending_since = COALESCE(pending_since, now()), stored_at = now(), attempts = 0 \
                 WHERE connection_id = $1 AND object_type = $2 AND attributes ?| $3",
            )
            .bind::<SqlUuid, _>(connection_id)
            .bind::<Text, _>(object_type.as_str())
            .bind::<Array<Text>, _>(added)
            .execute(conn)
            .await?;
        }
    }
    sql_query(
        "INSERT INTO mappings (connection_id, org_id, mapping) VALUES ($1, $2, $3) \
         ON CONFLICT (connection_id) DO UPDATE SET mapping = EXCLUDED.mapping, updated_at = now()",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<SqlUuid, _>(org_id)
    .bind::<Jsonb, _>(json)
    .execute(conn)
    .await?;
    request_prepare(conn, connection_id).await
}

/// What preparing one purpose's property found.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName, serde::Serialize)]
pub struct PropertyTarget {
    /// `contacts` or `companies`.
    #[diesel(sql_type = Text)]
    pub object_type: String,
    /// `score`, `risk_level`, `score_updated_at`, `top_factor`, `attribute:<name>` or
    /// `timeline`.
    #[diesel(sql_type = Text)]
    pub purpose: String,
    /// The HubSpot property.
    #[diesel(sql_type = Text)]
    pub property: String,
    /// `ready`, `incompatible`, `missing` (an attribute's property), `missing_scope` or
    /// `error`; for `timeline` also `unsupported` and `unconfigured`.
    #[diesel(sql_type = Text)]
    pub state: String,
    /// Why it is not ready.
    #[diesel(sql_type = Text)]
    pub detail: String,
    /// How a ready attribute's values are rendered (domain's `Conversion`).
    #[diesel(sql_type = Nullable<Jsonb>)]
    #[serde(skip)]
    pub conversion: Option<serde_json::Value>,
}

/// Replaces what preparing found, and marks the connection prepared unless another
/// request to prepare came in since `version` was read. Call inside a transaction.
pub async fn save_targets(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    version: i64,
    targets: &[PropertyTarget],
) -> Result<()> {
    sql_query("DELETE FROM property_targets WHERE connection_id = $1")
        .bind::<SqlUuid, _>(connection_id)
        .execute(conn)
        .await?;
    for t in targets {
        sql_query(
            "INSERT INTO property_targets (connection_id, object_type, purpose, property, state, \
               detail, conversion) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind::<SqlUuid, _>(connection_id)
        .bind::<Text, _>(&t.object_type)
        .bind::<Text, _>(&t.purpose)
        .bind::<Text, _>(&t.property)
        .bind::<Text, _>(&t.state)
        .bind::<Text, _>(&t.detail)
        .bind::<Nullable<Jsonb>, _>(&t.conversion)
        .execute(conn)
        .await?;
    }
    sql_query(
        "UPDATE connections SET needs_prepare = FALSE \
         WHERE connection_id = $1 AND prepare_version = $2",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<BigInt, _>(version)
    .execute(conn)
    .await?;
    Ok(())
}

/// What preparing found, for a connection.
pub async fn targets(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
) -> Result<Vec<PropertyTarget>> {
    sql_query(
        "SELECT object_type, purpose, property, state, detail, conversion FROM property_targets \
         WHERE connection_id = $1 ORDER BY object_type, purpose",
    )
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await
}

/// Marks the ready targets of an object type as lacking the write scope.
pub async fn mark_missing_scope(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
    detail: &str,
) -> Result<()> {
    sql_query(
        "UPDATE property_targets SET state = 'missing_scope', detail = $3, checked_at = now() \
         WHERE connection_id = $1 AND object_type = $2 AND state = 'ready' \
           AND purpose <> 'timeline'",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<Text, _>(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// One received score, ready to store.
#[derive(Debug, Clone)]
pub struct IncomingScore {
    /// The connection.
    pub connection_id: Uuid,
    /// `contacts` or `companies`.
    pub object_type: TargetObject,
    /// The HubSpot record.
    pub object_id: i64,
    /// The org.
    pub org_id: Uuid,
    /// The portal.
    pub portal_id: i64,
    /// 0-100 or N/A.
    pub score: Option<i16>,
    /// `healthy`, `at_risk`, `critical`, `none`.
    pub risk_level: String,
    /// The factor that moved it most.
    pub top_factor: String,
    /// When it was computed.
    pub computed_at: DateTime<Utc>,
    /// The scoring config version.
    pub config_version: i64,
    /// The `score.updated` message.
    pub message_id: Uuid,
    /// The risk level and score before this change, when the record had a risk level
    /// (healthy, at risk or critical) before and has another one now: a timeline event's
    /// subject.
    pub level_change: Option<LevelChange>,
}

/// A move between risk levels, as a timeline event shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelChange {
    /// `healthy`, `at_risk` or `critical`.
    pub old_risk_level: String,
    /// The score before.
    pub old_score: Option<i16>,
}

impl IncomingScore {
    /// Whether this score is newer than `other` (same record).
    pub fn newer_than(&self, other: &IncomingScore) -> bool {
        (self.computed_at, self.config_version) > (other.computed_at, other.config_version)
    }
}

/// Stores scores in one statement: each becomes its record's latest score and waits to be
/// written, unless the stored one is as new or newer. `scores` must name each record once.
pub async fn store_scores(conn: &mut AsyncPgConnection, scores: &[IncomingScore]) -> Result<usize> {
    if scores.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&IncomingScore) -> Uuid| scores.iter().map(f).collect::<Vec<_>>();
    let connection_ids = col(|s| s.connection_id);
    let org_ids = col(|s| s.org_id);
    let message_ids = col(|s| s.message_id);
    let object_types: Vec<&str> = scores.iter().map(|s| s.object_type.as_str()).collect();
    let object_ids: Vec<i64> = scores.iter().map(|s| s.object_id).collect();
    let portal_ids: Vec<i64> = scores.iter().map(|s| s.portal_id).collect();
    let values: Vec<Option<i16>> = scores.iter().map(|s| s.score).collect();
    let risks: Vec<&str> = scores.iter().map(|s| s.risk_level.as_str()).collect();
    let factors: Vec<&str> = scores.iter().map(|s| s.top_factor.as_str()).collect();
    let computed: Vec<DateTime<Utc>> = scores.iter().map(|s| s.computed_at).collect();
    let versions: Vec<i64> = scores.iter().map(|s| s.config_version).collect();
    sql_query(
        "INSERT INTO record_scores (connection_id, object_type, object_id, org_id, portal_id, score, \
           risk_level, top_factor, computed_at, config_version, message_id, pending_since) \
         SELECT u.*, now() FROM UNNEST($1::uuid[], $2::text[], $3::bigint[], $4::uuid[], $5::bigint[], \
           $6::smallint[], $7::text[], $8::text[], $9::timestamptz[], $10::bigint[], $11::uuid[]) AS u \
         ON CONFLICT (connection_id, object_type, object_id) DO UPDATE SET \
           org_id = EXCLUDED.org_id, portal_id = EXCLUDED.portal_id, score = EXCLUDED.score, \
           risk_level = EXCLUDED.risk_level, top_factor = EXCLUDED.top_factor, \
           computed_at = EXCLUDED.computed_at, config_version = EXCLUDED.config_version, \
           message_id = EXCLUDED.message_id, revision = record_scores.revision + 1, \
           pending_since = COALESCE(record_scores.pending_since, now()), stored_at = now(), \
           attempts = 0, scored = TRUE \
         WHERE NOT record_scores.scored OR (record_scores.computed_at, record_scores.config_version) \
             < (EXCLUDED.computed_at, EXCLUDED.config_version)",
    )
    .bind::<Array<SqlUuid>, _>(connection_ids)
    .bind::<Array<Text>, _>(object_types)
    .bind::<Array<BigInt>, _>(object_ids)
    .bind::<Array<SqlUuid>, _>(org_ids)
    .bind::<Array<BigInt>, _>(portal_ids)
    .bind::<Array<Nullable<SmallInt>>, _>(values)
    .bind::<Array<Text>, _>(risks)
    .bind::<Array<Text>, _>(factors)
    .bind::<Array<Timestamptz>, _>(computed)
    .bind::<Array<BigInt>, _>(versions)
    .bind::<Array<SqlUuid>, _>(message_ids)
    .execute(conn)
    .await
}

/// A stored score waiting to be written.
#[derive(Debug, Clone, QueryableByName)]
pub struct PendingScore {
    /// The HubSpot record.
    #[diesel(sql_type = BigInt)]
    pub object_id: i64,
    /// 0-100 or N/A.
    #[diesel(sql_type = Nullable<SmallInt>)]
    pub score: Option<i16>,
    /// The stored risk level.
    #[diesel(sql_type = Text)]
    pub risk_level: String,
    /// The factor that moved it most.
    #[diesel(sql_type = Text)]
    pub top_factor: String,
    /// When it was computed.
    #[diesel(sql_type = Timestamptz)]
    pub computed_at: DateTime<Utc>,
    /// Its revision; a write settles only this one.
    #[diesel(sql_type = BigInt)]
    pub revision: i64,
    /// Written even if unchanged.
    #[diesel(sql_type = Bool)]
    pub force_write: bool,
    /// What was last written (property -> value).
    #[diesel(sql_type = Jsonb)]
    pub written: serde_json::Value,
    /// The message that brought it.
    #[diesel(sql_type = SqlUuid)]
    pub message_id: Uuid,
    /// Failed attempts so far.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    /// Waiting since.
    #[diesel(sql_type = Timestamptz)]
    pub pending_since: DateTime<Utc>,
    /// The score columns hold a score (false: only attribute values are known).
    #[diesel(sql_type = Bool)]
    pub scored: bool,
    /// Custom attribute values (name -> domain's JSON form).
    #[diesel(sql_type = Jsonb)]
    pub attributes: serde_json::Value,
}

impl PendingScore {
    /// What was last written, as a map.
    pub fn written_map(&self) -> BTreeMap<String, String> {
        match &self.written {
            serde_json::Value::Object(map) => map
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect(),
            _ => BTreeMap::new(),
        }
    }
}

/// Clears the marks of writes a previous holder of the connection's lock left in flight.
pub async fn reset_inflight(conn: &mut AsyncPgConnection, connection_id: Uuid) -> Result<usize> {
    sql_query(
        "UPDATE record_scores SET inflight_revision = NULL \
         WHERE connection_id = $1 AND inflight_revision IS NOT NULL",
    )
    .bind::<SqlUuid, _>(connection_id)
    .execute(conn)
    .await
}

/// Waiting scores of one object type not in flight and unchanged for `settle_ms`, oldest
/// first, skipping the first `offset`.
pub async fn pending_scores(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
    settle_ms: i64,
    offset: i64,
    limit: i64,
) -> Result<Vec<PendingScore>> {
    sql_query(
        "SELECT object_id, score, risk_level, top_factor, computed_at, revision, force_write, \
           written, message_id, attempts, pending_since, scored, attributes \
         FROM record_scores WHERE connection_id = $1 AND object_type = $2 \
           AND pending_since IS NOT NULL AND inflight_revision IS NULL \
           AND stored_at <= now() - make_interval(secs => $3 / 1000.0) \
         ORDER BY pending_since, object_id OFFSET $4 LIMIT $5",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<BigInt, _>(settle_ms)
    .bind::<BigInt, _>(offset)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct ObjectId {
    #[diesel(sql_type = BigInt)]
    object_id: i64,
}

/// Marks records as in flight at the given revisions and returns the ones marked. A record
/// whose score changed since its revision was read is not marked: it must not be sent with
/// the older values, and stays pending at its new revision.
pub async fn mark_inflight(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
    rows: &[(i64, i64)],
) -> Result<HashSet<i64>> {
    let (ids, revisions): (Vec<i64>, Vec<i64>) = rows.iter().copied().unzip();
    let marked: Vec<ObjectId> = sql_query(
        "UPDATE record_scores r SET inflight_revision = u.revision \
         FROM UNNEST($3::bigint[], $4::bigint[]) AS u(object_id, revision) \
         WHERE r.connection_id = $1 AND r.object_type = $2 AND r.object_id = u.object_id \
           AND r.revision = u.revision AND r.inflight_revision IS NULL \
         RETURNING r.object_id",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<BigInt>, _>(revisions)
    .load(conn)
    .await?;
    Ok(marked.into_iter().map(|r| r.object_id).collect())
}

/// Settles records at the given revisions without a request (unchanged, or no property to
/// write); a newer revision stays pending. Returns how many were settled.
pub async fn settle_unsent(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
    rows: &[(i64, i64)],
) -> Result<usize> {
    let (ids, revisions): (Vec<i64>, Vec<i64>) = rows.iter().copied().unzip();
    sql_query(
        "UPDATE record_scores r SET pending_since = NULL, force_write = FALSE, attempts = 0 \
         FROM UNNEST($3::bigint[], $4::bigint[]) AS u(object_id, revision) \
         WHERE r.connection_id = $1 AND r.object_type = $2 AND r.object_id = u.object_id \
           AND r.revision = u.revision AND r.inflight_revision IS NULL",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<BigInt>, _>(revisions)
    .execute(conn)
    .await
}

/// Records written successfully: what HubSpot now holds, settled if no newer score came.
/// Only rows still in flight at the revision sent are touched: a write whose mark was
/// cleared (a new holder of the connection's lock took over) leaves the row pending, so the
/// record is written again rather than its `written` values going stale.
pub async fn record_written(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
    rows: &[(i64, i64, serde_json::Value)],
) -> Result<usize> {
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let revisions: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let sent: Vec<serde_json::Value> = rows.iter().map(|r| r.2.clone()).collect();
    let n = sql_query(
        "UPDATE record_scores r SET written = r.written || u.sent, written_at = now(), \
           inflight_revision = NULL, attempts = 0, force_write = FALSE, \
           pending_since = CASE WHEN r.revision = u.revision THEN NULL ELSE r.pending_since END \
         FROM UNNEST($3::bigint[], $4::bigint[], $5::jsonb[]) AS u(object_id, revision, sent) \
         WHERE r.connection_id = $1 AND r.object_type = $2 AND r.object_id = u.object_id \
           AND r.inflight_revision = u.revision",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<BigInt>, _>(revisions)
    .bind::<Array<Jsonb>, _>(sent)
    .execute(conn)
    .await?;
    sql_query(
        "DELETE FROM record_failures WHERE connection_id = $1 AND object_type = $2 \
         AND object_id = ANY($3)",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<Array<BigInt>, _>(&ids)
    .execute(conn)
    .await?;
    Ok(n)
}

/// One record HubSpot refused.
#[derive(Debug, Clone)]
pub struct RecordFailure {
    /// The record.
    pub object_id: i64,
    /// The revision that was sent.
    pub revision: i64,
    /// Why.
    pub reason: String,
    /// Will be tried again.
    pub retryable: bool,
}

/// Records refused records: a permanent failure settles the revision (it is skipped), a
/// retryable one counts an attempt and stays pending. Only rows still in flight at the
/// revision sent are touched, as in [`record_written`].
pub async fn record_failed(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
    failures: &[RecordFailure],
) -> Result<()> {
    for f in failures {
        // A retryable failure waits before its next try, doubling from 2 s up to a minute
        // (a future `stored_at` keeps the record out of batches until then), so that
        // `max_attempts` spans a passing problem rather than the next few milliseconds.
        let settle = if f.retryable {
            ", stored_at = now() + make_interval(secs => least(60, power(2, attempts + 1)))"
        } else {
            ", pending_since = CASE WHEN revision = $4 THEN NULL ELSE pending_since END, force_write = FALSE"
        };
        let counted = sql_query(format!(
            "UPDATE record_scores SET inflight_revision = NULL, attempts = attempts + 1{settle} \
             WHERE connection_id = $1 AND object_type = $2 AND object_id = $3 \
               AND inflight_revision = $4"
        ))
        .bind::<SqlUuid, _>(connection_id)
        .bind::<Text, _>(object_type.as_str())
        .bind::<BigInt, _>(f.object_id)
        .bind::<BigInt, _>(f.revision)
        .execute(conn)
        .await?;
        if counted == 0 {
            // No longer in flight at that revision: another holder of the lock took over.
            continue;
        }
        sql_query(
            "INSERT INTO record_failures (connection_id, object_type, object_id, reason, retryable) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connection_id, object_type, object_id) \
             DO UPDATE SET reason = EXCLUDED.reason, retryable = EXCLUDED.retryable, failed_at = now()",
        )
        .bind::<SqlUuid, _>(connection_id)
        .bind::<Text, _>(object_type.as_str())
        .bind::<BigInt, _>(f.object_id)
        .bind::<Text, _>(&f.reason)
        .bind::<Bool, _>(f.retryable)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Takes records out of flight at the given revisions without settling them (the request
/// was not sent, or its outcome is still unknown): they are tried again. A mark set since by
/// another holder of the connection's lock is left alone.
pub async fn release_inflight(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
    rows: &[(i64, i64)],
) -> Result<usize> {
    let (ids, revisions): (Vec<i64>, Vec<i64>) = rows.iter().copied().unzip();
    sql_query(
        "UPDATE record_scores r SET inflight_revision = NULL \
         FROM UNNEST($3::bigint[], $4::bigint[]) AS u(object_id, revision) \
         WHERE r.connection_id = $1 AND r.object_type = $2 AND r.object_id = u.object_id \
           AND r.inflight_revision = u.revision",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<BigInt>, _>(revisions)
    .execute(conn)
    .await
}

/// Counts one flush's outcome into the connection's counters.
pub struct FlushCounts<'a> {
    /// Records written.
    pub written: i64,
    /// Records skipped as unchanged.
    pub unchanged: i64,
    /// Records that failed.
    pub failed: i64,
    /// Requests sent.
    pub requests: i64,
    /// The last error, if any.
    pub error: Option<&'a str>,
}

/// Adds to the connection's counters.
pub async fn count(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    c: &FlushCounts<'_>,
) -> Result<()> {
    sql_query(
        "INSERT INTO writeback_stats (connection_id, written, unchanged, failed, requests, \
           last_success_at, last_error, last_error_at) \
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $2 > 0 THEN now() END, $6, CASE WHEN $6 IS NOT NULL THEN now() END) \
         ON CONFLICT (connection_id) DO UPDATE SET \
           written = writeback_stats.written + EXCLUDED.written, \
           unchanged = writeback_stats.unchanged + EXCLUDED.unchanged, \
           failed = writeback_stats.failed + EXCLUDED.failed, \
           requests = writeback_stats.requests + EXCLUDED.requests, \
           last_success_at = COALESCE(EXCLUDED.last_success_at, writeback_stats.last_success_at), \
           last_error = COALESCE(EXCLUDED.last_error, writeback_stats.last_error), \
           last_error_at = COALESCE(EXCLUDED.last_error_at, writeback_stats.last_error_at)",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<BigInt, _>(c.written)
    .bind::<BigInt, _>(c.unchanged)
    .bind::<BigInt, _>(c.failed)
    .bind::<BigInt, _>(c.requests)
    .bind::<Nullable<Text>, _>(c.error)
    .execute(conn)
    .await?;
    Ok(())
}

/// One line of the writeback log.
pub struct LogEntry<'a> {
    /// `contacts` or `companies`.
    pub object_type: TargetObject,
    /// Records written.
    pub written: i32,
    /// Records unchanged.
    pub unchanged: i32,
    /// Records failed.
    pub failed: i32,
    /// The request's error, if it failed as a whole.
    pub error: Option<&'a str>,
    /// When the flush started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

/// Appends to the writeback log.
pub async fn log(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    e: &LogEntry<'_>,
) -> Result<()> {
    sql_query(
        "INSERT INTO writeback_log (connection_id, object_type, written, unchanged, failed, error, \
           started_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(e.object_type.as_str())
    .bind::<Integer, _>(e.written)
    .bind::<Integer, _>(e.unchanged)
    .bind::<Integer, _>(e.failed)
    .bind::<Nullable<Text>, _>(e.error)
    .bind::<Timestamptz, _>(e.started_at)
    .bind::<Timestamptz, _>(e.finished_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    found: bool,
}

/// Whether a full batch request of this object type finished within the last `within_ms`
/// (among the connection's last 50 log rows, read backwards along its index): a burst is
/// going on.
pub async fn full_batch_within(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
    batch_size: i32,
    within_ms: i64,
) -> Result<bool> {
    let row: Exists = sql_query(
        "SELECT EXISTS (SELECT 1 FROM (SELECT object_type, written, failed, finished_at \
             FROM writeback_log WHERE connection_id = $1 ORDER BY id DESC LIMIT 50) AS recent \
           WHERE object_type = $2 AND written + failed >= $3 \
             AND finished_at > now() - make_interval(secs => $4 / 1000.0)) AS found",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<Integer, _>(batch_size)
    .bind::<BigInt, _>(within_ms)
    .get_result(conn)
    .await?;
    Ok(row.found)
}

/// Counters of a connection.
#[derive(Debug, Clone, Default, QueryableByName)]
pub struct Stats {
    /// Records written.
    #[diesel(sql_type = BigInt)]
    pub written: i64,
    /// Records skipped as unchanged.
    #[diesel(sql_type = BigInt)]
    pub unchanged: i64,
    /// Records failed.
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    /// Batch requests sent.
    #[diesel(sql_type = BigInt)]
    pub requests: i64,
    /// Last successful write.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_success_at: Option<DateTime<Utc>>,
    /// Last error.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    /// When.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_error_at: Option<DateTime<Utc>>,
    /// Last backfill request.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub backfill_requested_at: Option<DateTime<Utc>>,
    /// Records it covered.
    #[diesel(sql_type = BigInt)]
    pub backfill_total: i64,
}

/// The counters of a connection (zero when nothing happened yet).
pub async fn stats(conn: &mut AsyncPgConnection, connection_id: Uuid) -> Result<Stats> {
    let rows: Vec<Stats> = sql_query(
        "SELECT written, unchanged, failed, requests, last_success_at, last_error, last_error_at, \
           backfill_requested_at, backfill_total FROM writeback_stats WHERE connection_id = $1",
    )
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    pending: i64,
    #[diesel(sql_type = BigInt)]
    backfill_remaining: i64,
}

/// Records waiting to be written, and how many of them a backfill forces.
pub async fn pending_counts(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
) -> Result<(i64, i64)> {
    let rows: Vec<Counts> = sql_query(
        "SELECT count(*) AS pending, count(*) FILTER (WHERE force_write) AS backfill_remaining \
         FROM record_scores WHERE connection_id = $1 AND pending_since IS NOT NULL",
    )
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .next()
        .map(|c| (c.pending, c.backfill_remaining))
        .unwrap_or((0, 0)))
}

/// Failed records grouped by reason.
#[derive(Debug, Clone, QueryableByName, serde::Serialize)]
pub struct FailureReason {
    /// HubSpot's or our reason.
    #[diesel(sql_type = Text)]
    pub reason: String,
    /// Will be retried.
    #[diesel(sql_type = Bool)]
    pub retryable: bool,
    /// Records currently failing for it.
    #[diesel(sql_type = BigInt)]
    pub records: i64,
}

/// The reasons records currently fail for.
pub async fn failure_reasons(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
) -> Result<Vec<FailureReason>> {
    sql_query(
        "SELECT reason, retryable, count(*) AS records FROM record_failures \
         WHERE connection_id = $1 GROUP BY reason, retryable ORDER BY records DESC, reason LIMIT 20",
    )
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await
}

/// Marks every stored score of a connection to be written again, even if unchanged.
/// Returns how many records that covers.
pub async fn start_backfill(conn: &mut AsyncPgConnection, connection_id: Uuid) -> Result<usize> {
    let n = sql_query(
        "UPDATE record_scores SET force_write = TRUE, pending_since = COALESCE(pending_since, now()) \
         WHERE connection_id = $1",
    )
    .bind::<SqlUuid, _>(connection_id)
    .execute(conn)
    .await?;
    sql_query(
        "INSERT INTO writeback_stats (connection_id, backfill_requested_at, backfill_total) \
         VALUES ($1, now(), $2) ON CONFLICT (connection_id) DO UPDATE SET \
           backfill_requested_at = now(), backfill_total = EXCLUDED.backfill_total",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<BigInt, _>(i64::try_from(n).unwrap_or(i64::MAX))
    .execute(conn)
    .await?;
    Ok(n)
}

/// The purposes whose properties are ready to be written, by object type.
pub fn ready_properties(targets: &[PropertyTarget], object_type: TargetObject) -> Vec<Purpose> {
    targets
        .iter()
        .filter(|t| t.object_type == object_type.as_str() && t.state == "ready")
        .filter_map(|t| Purpose::parse(&t.purpose))
        .collect()
}

/// The attributes whose properties are ready to be written, for an object type.
pub fn ready_attributes(
    targets: &[PropertyTarget],
    object_type: TargetObject,
) -> Vec<ReadyAttribute> {
    targets
        .iter()
        .filter(|t| t.object_type == object_type.as_str() && t.state == "ready")
        .filter_map(|t| {
            Some(ReadyAttribute {
                attribute: t.purpose.strip_prefix(ATTRIBUTE_PREFIX)?.to_owned(),
                property: t.property.clone(),
                conversion: serde_json::from_value(t.conversion.clone()?).ok()?,
            })
        })
        .collect()
}

/// One record's custom attribute values from `crm.changed`.
#[derive(Debug, Clone)]
pub struct IncomingAttributes {
    /// The HubSpot record.
    pub object_id: i64,
    /// Attribute name -> value (domain's JSON form); empty when the record has none.
    pub values: serde_json::Value,
    /// HubSpot's modified time of the record.
    pub at: DateTime<Utc>,
}

/// Where a `crm.changed` came from.
#[derive(Debug, Clone, Copy)]
pub struct AttributeSource {
    /// The connection.
    pub connection_id: Uuid,
    /// The org.
    pub org_id: Uuid,
    /// The portal.
    pub portal_id: i64,
    /// `contacts` or `companies`.
    pub object_type: TargetObject,
    /// The message.
    pub message_id: Uuid,
}

/// Stores records' attribute values in one statement, newest (by HubSpot's modified time)
/// wins. A record whose value of a `mapped` attribute changed waits to be written. A record
/// hubscore holds nothing for gets a row (without a score) only when it has values. `records`
/// must name each record once. Returns how many rows changed.
pub async fn store_attributes(
    conn: &mut AsyncPgConnection,
    source: AttributeSource,
    records: &[IncomingAttributes],
    mapped: &[String],
) -> Result<usize> {
    if records.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = records.iter().map(|r| r.object_id).collect();
    let values: Vec<serde_json::Value> = records.iter().map(|r| r.values.clone()).collect();
    let at: Vec<DateTime<Utc>> = records.iter().map(|r| r.at).collect();
    // Whether a mapped attribute's value differs: only then is the record written again.
    const CHANGED: &str = "EXISTS (SELECT 1 FROM unnest($6::text[]) AS n \
        WHERE r.attributes -> n IS DISTINCT FROM EXCLUDED.attributes -> n)";
    sql_query(format!(
        "INSERT INTO record_scores AS r (connection_id, object_type, object_id, org_id, portal_id, \
           score, risk_level, top_factor, computed_at, config_version, message_id, scored, \
           attributes, attributes_at, pending_since) \
         SELECT $1, $2, u.object_id, $7, $8, NULL, 'none', '', u.at, 0, $9, FALSE, u.attrs, u.at, \
           CASE WHEN u.attrs ?| $6 THEN now() END \
         FROM UNNEST($3::bigint[], $4::jsonb[], $5::timestamptz[]) AS u(object_id, attrs, at) \
         WHERE u.attrs <> '{{}}'::jsonb OR EXISTS (SELECT 1 FROM record_scores e \
           WHERE e.connection_id = $1 AND e.object_type = $2 AND e.object_id = u.object_id) \
         ON CONFLICT (connection_id, object_type, object_id) DO UPDATE SET \
           attributes = EXCLUDED.attributes, attributes_at = EXCLUDED.attributes_at, \
           revision = r.revision + CASE WHEN {CHANGED} THEN 1 ELSE 0 END, \
           pending_since = CASE WHEN {CHANGED} THEN COALESCE(r.pending_since, now()) \
             ELSE r.pending_since END, \
           stored_at = CASE WHEN {CHANGED} THEN now() ELSE r.stored_at END, \
           attempts = CASE WHEN {CHANGED} THEN 0 ELSE r.attempts END \
         WHERE (r.attributes_at IS NULL OR r.attributes_at <= EXCLUDED.attributes_at) \
           AND r.attributes IS DISTINCT FROM EXCLUDED.attributes",
    ))
    .bind::<SqlUuid, _>(source.connection_id)
    .bind::<Text, _>(source.object_type.as_str())
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Jsonb>, _>(values)
    .bind::<Array<Timestamptz>, _>(at)
    .bind::<Array<Text>, _>(mapped)
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<SqlUuid, _>(source.message_id)
    .execute(conn)
    .await
}

/// How long a removed record is remembered ([`remember_removed`]).
pub const REMOVED_RETENTION_DAYS: i64 = 7;

#[derive(QueryableByName)]
struct RemovedId {
    #[diesel(sql_type = BigInt)]
    object_id: i64,
}

/// Of `ids`, those removed by a message committed after `committed`: their values are
/// older than the removal and are not stored. Forgets removals committed before it (the
/// record was restored).
pub async fn removed_after(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
    ids: &[i64],
    committed: DateTime<Utc>,
) -> Result<BTreeSet<i64>> {
    if ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let rows: Vec<RemovedId> = sql_query(
        "WITH restored AS (
            DELETE FROM removed_records WHERE connection_id = $1 AND object_type = $2
              AND object_id = ANY($3) AND removed_at < $4)
         SELECT object_id FROM removed_records WHERE connection_id = $1 AND object_type = $2
           AND object_id = ANY($3) AND removed_at >= $4",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Timestamptz, _>(committed)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.object_id).collect())
}

/// Remembers `ids` as removed at `removed_at` (the removing message's commit time), and
/// forgets the connection's removals older than [`REMOVED_RETENTION_DAYS`].
pub async fn remember_removed(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
    ids: &[i64],
    removed_at: DateTime<Utc>,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sql_query(
        "INSERT INTO removed_records (connection_id, object_type, object_id, removed_at)
         SELECT $1, $2, id, $4 FROM unnest($3::bigint[]) AS id
         ON CONFLICT (connection_id, object_type, object_id)
         DO UPDATE SET removed_at = GREATEST(removed_records.removed_at, excluded.removed_at)",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Timestamptz, _>(removed_at)
    .execute(conn)
    .await?;
    sql_query(
        "DELETE FROM removed_records WHERE connection_id = $1 \
           AND removed_at < now() - make_interval(days => $2)",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<diesel::sql_types::Integer, _>(i32::try_from(REMOVED_RETENTION_DAYS).unwrap_or(7))
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets records gone from HubSpot (deleted, or merged into another) that hubscore holds
/// only attribute values for; a scored record stays, as its score does.
pub async fn forget_unscored(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: TargetObject,
    ids: &[i64],
) -> Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    sql_query(
        "DELETE FROM record_scores WHERE connection_id = $1 AND object_type = $2 \
           AND object_id = ANY($3) AND NOT scored AND inflight_revision IS NULL",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type.as_str())
    .bind::<Array<BigInt>, _>(ids)
    .execute(conn)
    .await
}
