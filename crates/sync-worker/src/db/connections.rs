//! Connections as sync-worker knows them from `connection.established` and
//! `connection.closed`.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{QueryResult, QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// A connection row.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Connection {
    /// auth-gateway's connection id.
    #[diesel(sql_type = SqlUuid)]
    pub connection_id: Uuid,
    /// The organization owning it.
    #[diesel(sql_type = SqlUuid)]
    pub org_id: Uuid,
    /// The HubSpot portal.
    #[diesel(sql_type = BigInt)]
    pub portal_id: i64,
    /// `oauth` or `private_app`.
    #[diesel(sql_type = Text)]
    pub auth_kind: String,
    /// `active` or `closed`.
    #[diesel(sql_type = Text)]
    pub status: String,
}

impl Connection {
    /// Whether work for it may go on.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

const COLUMNS: &str = "connection_id, org_id, portal_id, auth_kind, status";

/// Records an established connection (again: redelivery and re-establishing are fine).
/// A connection closed after `established_at` stays closed.
pub async fn upsert_established(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    established_at: DateTime<Utc>,
) -> QueryResult<()> {
    sql_query(
        "INSERT INTO connections (connection_id, org_id, portal_id, auth_kind, status, established_at)
         VALUES ($1, $2, $3, $4, 'active', $5)
         ON CONFLICT (connection_id) DO UPDATE SET
           org_id = excluded.org_id, portal_id = excluded.portal_id, auth_kind = excluded.auth_kind,
           status = CASE WHEN connections.closed_at IS NOT NULL AND connections.closed_at >= excluded.established_at
                         THEN connections.status ELSE 'active' END,
           established_at = excluded.established_at, updated_at = now()",
    )
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<SqlUuid, _>(connection.org_id)
    .bind::<BigInt, _>(connection.portal_id)
    .bind::<Text, _>(&connection.auth_kind)
    .bind::<Timestamptz, _>(established_at)
    .execute(conn)
    .await
    .map(drop)
}

/// Marks a connection closed (creating the row if its establishment was never seen).
pub async fn mark_closed(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    closed_at: DateTime<Utc>,
) -> QueryResult<()> {
    sql_query(
        "INSERT INTO connections (connection_id, org_id, portal_id, auth_kind, status, closed_at)
         VALUES ($1, $2, $3, $4, 'closed', $5)
         ON CONFLICT (connection_id) DO UPDATE SET status = 'closed', closed_at = excluded.closed_at,
           updated_at = now()",
    )
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<SqlUuid, _>(connection.org_id)
    .bind::<BigInt, _>(connection.portal_id)
    .bind::<Text, _>(&connection.auth_kind)
    .bind::<Timestamptz, _>(closed_at)
    .execute(conn)
    .await
    .map(drop)
}

/// One connection by id.
pub async fn find(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
) -> QueryResult<Option<Connection>> {
    let rows: Vec<Connection> = sql_query(format!(
        "SELECT {COLUMNS} FROM connections WHERE connection_id = $1"
    ))
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// One connection by id, only when it belongs to `org_id`.
pub async fn find_in_org(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    connection_id: Uuid,
) -> QueryResult<Option<Connection>> {
    Ok(find(conn, connection_id)
        .await?
        .filter(|c| c.org_id == org_id))
}

/// The active connections of a portal (several organizations may connect one portal).
pub async fn active_for_portal(
    conn: &mut AsyncPgConnection,
    portal_id: i64,
) -> QueryResult<Vec<Connection>> {
    sql_query(format!(
        "SELECT {COLUMNS} FROM connections WHERE portal_id = $1 AND status = 'active'"
    ))
    .bind::<BigInt, _>(portal_id)
    .load(conn)
    .await
}

/// Active connections whose reconciliation is due: never reconciled, or last reconciled
/// before `before`.
pub async fn due_for_reconciliation(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
) -> QueryResult<Vec<Connection>> {
    sql_query(format!(
        "SELECT {COLUMNS} FROM connections
         WHERE status = 'active' AND (reconciled_at IS NULL OR reconciled_at < $1)"
    ))
    .bind::<Timestamptz, _>(before)
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct Reconciliation {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    reconciled_through: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    archived_checked_at: Option<DateTime<Utc>>,
}

/// Where the last reconciliation's window ended and when the recycle bin was last checked.
pub async fn reconciliation_state(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
) -> QueryResult<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    let rows: Vec<Reconciliation> = sql_query(
        "SELECT reconciled_through, archived_checked_at FROM connections WHERE connection_id = $1",
    )
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map_or((None, None), |r| {
        (r.reconciled_through, r.archived_checked_at)
    }))
}

/// Records a finished reconciliation.
pub async fn record_reconciliation(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    through: DateTime<Utc>,
    archived_checked: bool,
) -> QueryResult<()> {
    sql_query(
        "UPDATE connections SET reconciled_through = $2, reconciled_at = now(),
           archived_checked_at = CASE WHEN $3 THEN now() ELSE archived_checked_at END
         WHERE connection_id = $1",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Timestamptz, _>(through)
    .bind::<diesel::sql_types::Bool, _>(archived_checked)
    .execute(conn)
    .await
    .map(drop)
}
