//! Sync runs, their per-object-type counts and checkpoints.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{QueryResult, QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a run reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every object type.
    Full,
    /// Every record of one object type (`contact`, `company`, `deal`).
    ObjectType(String),
    /// Given records of one object type.
    Records {
        /// `contact`, `company` or `deal`.
        object_type: String,
        /// HubSpot ids.
        ids: Vec<i64>,
    },
}

/// A sync run row.
#[derive(Debug, Clone, QueryableByName)]
pub struct Run {
    /// The run id (chosen by the requester).
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// Organization.
    #[diesel(sql_type = SqlUuid)]
    pub org_id: Uuid,
    /// Connection.
    #[diesel(sql_type = SqlUuid)]
    pub connection_id: Uuid,
    /// Portal.
    #[diesel(sql_type = BigInt)]
    pub portal_id: i64,
    /// `full`, `incremental` or `reconciliation`.
    #[diesel(sql_type = Text)]
    pub mode: String,
    /// [`Scope`] as JSON.
    #[diesel(sql_type = Jsonb)]
    pub scope: serde_json::Value,
    /// Why it was asked for.
    #[diesel(sql_type = Text)]
    pub reason: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    #[diesel(sql_type = Text)]
    pub state: String,
    /// When it was asked for.
    #[diesel(sql_type = Timestamptz)]
    pub requested_at: DateTime<Utc>,
    /// When a worker first started it.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The last failure, free of secrets.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    /// Trace id.
    #[diesel(sql_type = Text)]
    pub correlation_id: String,
    /// When the last `sync.progress` went out.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_progress_at: Option<DateTime<Utc>>,
}

impl Run {
    /// The decoded scope (a full run when unreadable).
    pub fn scope(&self) -> Scope {
        serde_json::from_value(self.scope.clone()).unwrap_or(Scope::Full)
    }
}

/// Counts and checkpoint of one object type in a run.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct RunObject {
    /// `contact`, `company`, `deal`, `owner` or `pipeline`.
    #[diesel(sql_type = Text)]
    pub object_type: String,
    /// HubSpot's count at the start, when known.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub total: Option<i64>,
    /// Records read from HubSpot.
    #[diesel(sql_type = BigInt)]
    pub fetched: i64,
    /// Records inserted or updated in the mirror.
    #[diesel(sql_type = BigInt)]
    pub written: i64,
    /// Records not stored as customers/records, by reason in `skip_reasons`.
    #[diesel(sql_type = BigInt)]
    pub skipped: i64,
    /// Records marked deleted.
    #[diesel(sql_type = BigInt)]
    pub deleted: i64,
    /// Reason -> count.
    #[diesel(sql_type = Jsonb)]
    pub skip_reasons: serde_json::Value,
    /// Paging cursor of the next page.
    #[diesel(sql_type = Nullable<Text>)]
    #[serde(skip)]
    pub cursor: Option<String>,
    /// Every page read.
    #[diesel(sql_type = Bool)]
    #[serde(skip)]
    pub records_done: bool,
    /// Association keyset checkpoint.
    #[diesel(sql_type = Nullable<BigInt>)]
    #[serde(skip)]
    pub associations_after: Option<i64>,
    /// Every association read.
    #[diesel(sql_type = Bool)]
    #[serde(skip)]
    pub associations_done: bool,
    /// Associations come embedded in the list pages and are written with them.
    #[diesel(sql_type = Bool)]
    #[serde(skip)]
    pub associations_inline: bool,
}

const RUN_COLUMNS: &str = "id, org_id, connection_id, portal_id, mode, scope, reason, state, \
    requested_at, started_at, finished_at, last_error, correlation_id, last_progress_at";

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Id (the requester's `sync_run_id`).
    pub id: Uuid,
    /// Organization.
    pub org_id: Uuid,
    /// Connection.
    pub connection_id: Uuid,
    /// Portal.
    pub portal_id: i64,
    /// Mode.
    pub mode: String,
    /// Scope.
    pub scope: Scope,
    /// Reason.
    pub reason: String,
    /// When asked for.
    pub requested_at: DateTime<Utc>,
    /// Trace id.
    pub correlation_id: String,
}

/// Queues a run; a run with that id already existing (a redelivered request) is left
/// alone. True when created.
pub async fn create(conn: &mut AsyncPgConnection, run: &NewRun) -> QueryResult<bool> {
    let scope = serde_json::to_value(&run.scope).unwrap_or(serde_json::Value::Null);
    let inserted = sql_query(
        "INSERT INTO sync_runs (id, org_id, connection_id, portal_id, mode, scope, reason, state,
           requested_at, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9) ON CONFLICT (id) DO NOTHING",
    )
    .bind::<SqlUuid, _>(run.id)
    .bind::<SqlUuid, _>(run.org_id)
    .bind::<SqlUuid, _>(run.connection_id)
    .bind::<BigInt, _>(run.portal_id)
    .bind::<Text, _>(&run.mode)
    .bind::<Jsonb, _>(scope)
    .bind::<Text, _>(&run.reason)
    .bind::<Timestamptz, _>(run.requested_at)
    .bind::<Text, _>(&run.correlation_id)
    .execute(conn)
    .await?;
    Ok(inserted == 1)
}

/// Queued and running runs of active connections, oldest first (a running one whose
/// worker died is taken over).
pub async fn open(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Run>> {
    sql_query(format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs r
         WHERE r.state IN ('queued', 'running')
           AND EXISTS (SELECT 1 FROM connections c WHERE c.connection_id = r.connection_id AND c.status = 'active')
         ORDER BY r.requested_at, r.id LIMIT 100"
    ))
    .load(conn)
    .await
}

/// One run.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Run>> {
    let rows: Vec<Run> = sql_query(format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1"))
        .bind::<SqlUuid, _>(id)
        .load(conn)
        .await?;
    Ok(rows.into_iter().next())
}

/// A connection's runs, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    connection_id: Uuid,
    limit: i64,
) -> QueryResult<Vec<Run>> {
    sql_query(format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE org_id = $1 AND connection_id = $2
         ORDER BY requested_at DESC, id DESC LIMIT $3"
    ))
    .bind::<SqlUuid, _>(org_id)
    .bind::<SqlUuid, _>(connection_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Marks a run running (keeping its first start time).
pub async fn start(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    sql_query(
        "UPDATE sync_runs SET state = 'running', started_at = COALESCE(started_at, now())
         WHERE id = $1 AND state IN ('queued', 'running')",
    )
    .bind::<SqlUuid, _>(id)
    .execute(conn)
    .await
    .map(drop)
}

/// Ends a run.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    state: &str,
    error: Option<&str>,
) -> QueryResult<()> {
    sql_query(
        "UPDATE sync_runs SET state = $2, finished_at = now(), last_error = COALESCE($3, last_error)
         WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(state)
    .bind::<Nullable<Text>, _>(error)
    .execute(conn)
    .await
    .map(drop)
}

/// Records a failure that will be retried (the run stays open).
pub async fn note_error(conn: &mut AsyncPgConnection, id: Uuid, error: &str) -> QueryResult<()> {
    sql_query("UPDATE sync_runs SET last_error = $2 WHERE id = $1")
        .bind::<SqlUuid, _>(id)
        .bind::<Text, _>(error)
        .execute(conn)
        .await
        .map(drop)
}

/// Cancels the open runs of a connection; returns them.
pub async fn cancel_open(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
) -> QueryResult<Vec<Run>> {
    sql_query(format!(
        "UPDATE sync_runs SET state = 'cancelled', finished_at = now(),
           last_error = COALESCE(last_error, 'the connection was closed')
         WHERE connection_id = $1 AND state IN ('queued', 'running') RETURNING {RUN_COLUMNS}"
    ))
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await
}

/// Whether the run is still open (not cancelled or finished by someone else).
pub async fn is_open(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    Ok(find(conn, id)
        .await?
        .is_some_and(|r| r.state == "queued" || r.state == "running"))
}

/// Creates the object rows of a run (idempotent).
pub async fn ensure_objects(
    conn: &mut AsyncPgConnection,
    run: Uuid,
    object_types: &[&str],
    associations_inline: bool,
) -> QueryResult<()> {
    let types: Vec<String> = object_types.iter().map(|t| (*t).to_owned()).collect();
    sql_query(
        "INSERT INTO sync_run_objects (run_id, object_type, associations_inline)
         SELECT $1, t, $3 FROM UNNEST($2::text[]) AS t ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(run)
    .bind::<diesel::sql_types::Array<Text>, _>(types)
    .bind::<Bool, _>(associations_inline)
    .execute(conn)
    .await
    .map(drop)
}

/// The object rows of a run.
pub async fn objects(conn: &mut AsyncPgConnection, run: Uuid) -> QueryResult<Vec<RunObject>> {
    sql_query(
        "SELECT object_type, total, fetched, written, skipped, deleted, skip_reasons, cursor,
           records_done, associations_after, associations_done, associations_inline
         FROM sync_run_objects WHERE run_id = $1 ORDER BY object_type",
    )
    .bind::<SqlUuid, _>(run)
    .load(conn)
    .await
}

/// Sets HubSpot's total for an object type.
pub async fn set_total(
    conn: &mut AsyncPgConnection,
    run: Uuid,
    object_type: &str,
    total: i64,
) -> QueryResult<()> {
    sql_query("UPDATE sync_run_objects SET total = $3 WHERE run_id = $1 AND object_type = $2")
        .bind::<SqlUuid, _>(run)
        .bind::<Text, _>(object_type)
        .bind::<BigInt, _>(total)
        .execute(conn)
        .await
        .map(drop)
}

/// What one page changed in a run's counts, and the checkpoint after it.
#[derive(Debug, Clone, Default)]
pub struct PageProgress {
    /// Records read.
    pub fetched: i64,
    /// Records written.
    pub written: i64,
    /// Records deleted.
    pub deleted: i64,
    /// Skipped, by reason (as mapped).
    pub skip_reasons: BTreeMap<String, u64>,
    /// The cursor of the next page; `None` with `done` at the end.
    pub cursor: Option<String>,
    /// The last page was read.
    pub done: bool,
}

/// Adds a page's counts and moves the checkpoint, in the page's transaction.
pub async fn record_page(
    conn: &mut AsyncPgConnection,
    run: Uuid,
    object_type: &str,
    page: &PageProgress,
) -> QueryResult<()> {
    let skipped: u64 = page.skip_reasons.values().sum();
    let reasons = serde_json::to_value(&page.skip_reasons).unwrap_or_default();
    sql_query(
        "UPDATE sync_run_objects SET fetched = fetched + $3, written = written + $4,
           deleted = deleted + $5, skipped = skipped + $6,
           skip_reasons = (SELECT COALESCE(jsonb_object_agg(k, v), '{}') FROM (
               SELECT k, SUM(v::bigint) AS v FROM (
                 SELECT key AS k, value AS v FROM jsonb_each_text(skip_reasons)
                 UNION ALL SELECT key, value FROM jsonb_each_text($7)) x GROUP BY k) y),
           cursor = $8, records_done = $9
         WHERE run_id = $1 AND object_type = $2",
    )
    .bind::<SqlUuid, _>(run)
    .bind::<Text, _>(object_type)
    .bind::<BigInt, _>(page.fetched)
    .bind::<BigInt, _>(page.written)
    .bind::<BigInt, _>(page.deleted)
    .bind::<BigInt, _>(i64::try_from(skipped).unwrap_or(i64::MAX))
    .bind::<Jsonb, _>(reasons)
    .bind::<Nullable<Text>, _>(page.cursor.as_deref())
    .bind::<Bool, _>(page.done)
    .execute(conn)
    .await
    .map(drop)
}

/// Sets the final skipped counts of an object type (duplicates are only known at the end).
pub async fn set_skipped(
    conn: &mut AsyncPgConnection,
    run: Uuid,
    object_type: &str,
    reasons: &BTreeMap<String, u64>,
) -> QueryResult<()> {
    let skipped: u64 = reasons.values().sum();
    sql_query(
        "UPDATE sync_run_objects SET skipped = $3, skip_reasons = $4
         WHERE run_id = $1 AND object_type = $2",
    )
    .bind::<SqlUuid, _>(run)
    .bind::<Text, _>(object_type)
    .bind::<BigInt, _>(i64::try_from(skipped).unwrap_or(i64::MAX))
    .bind::<Jsonb, _>(serde_json::to_value(reasons).unwrap_or_default())
    .execute(conn)
    .await
    .map(drop)
}

/// Adds deletions found at the end of a run.
pub async fn add_deleted(
    conn: &mut AsyncPgConnection,
    run: Uuid,
    object_type: &str,
    deleted: i64,
) -> QueryResult<()> {
    sql_query(
        "UPDATE sync_run_objects SET deleted = deleted + $3 WHERE run_id = $1 AND object_type = $2",
    )
    .bind::<SqlUuid, _>(run)
    .bind::<Text, _>(object_type)
    .bind::<BigInt, _>(deleted)
    .execute(conn)
    .await
    .map(drop)
}

/// Moves the association checkpoint.
pub async fn record_associations(
    conn: &mut AsyncPgConnection,
    run: Uuid,
    object_type: &str,
    after: Option<i64>,
    done: bool,
) -> QueryResult<()> {
    sql_query(
        "UPDATE sync_run_objects SET associations_after = $3, associations_done = $4
         WHERE run_id = $1 AND object_type = $2",
    )
    .bind::<SqlUuid, _>(run)
    .bind::<Text, _>(object_type)
    .bind::<Nullable<BigInt>, _>(after)
    .bind::<Bool, _>(done)
    .execute(conn)
    .await
    .map(drop)
}

/// Claims the right to send a progress message: true (and stamped) when the last one is
/// older than `interval_ms`.
pub async fn claim_progress(
    conn: &mut AsyncPgConnection,
    run: Uuid,
    interval_ms: i64,
) -> QueryResult<bool> {
    let updated = sql_query(
        "UPDATE sync_runs SET last_progress_at = now()
         WHERE id = $1 AND (last_progress_at IS NULL
           OR last_progress_at < now() - ($2 * interval '1 millisecond'))",
    )
    .bind::<SqlUuid, _>(run)
    .bind::<BigInt, _>(interval_ms)
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

#[derive(QueryableByName)]
struct ReasonCount {
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Skip reasons of the live records of a type in the mirror, by reason.
pub async fn mirror_skip_reasons(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    table: &str,
) -> QueryResult<BTreeMap<String, u64>> {
    let rows: Vec<ReasonCount> = sql_query(format!(
        "SELECT skip_reason AS reason, count(*) AS count FROM {table}
         WHERE connection_id = $1 AND NOT archived AND skip_reason IS NOT NULL GROUP BY skip_reason"
    ))
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.reason, u64::try_from(r.count).unwrap_or(0)))
        .collect())
}
