//! The `scoring` schema: the CRM projection, configs, scores, history, alerts.
//!
//! Queries are SQL next to the rows they return. Set-based statements (a whole batch of
//! customers read or written in one statement) keep an org rescore within seconds.

pub mod configs;
pub mod inputs;
pub mod projection;
pub mod reads;
pub mod writes;

use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use uuid::Uuid;

/// The service's own migrations (the outbox's are applied next to them).
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serializes everything that writes one org's scores, across replicas: the lock is held
/// until the transaction ends, so two replicas never compute the same customer from
/// different moments, and a score can never be overwritten by an older computation.
pub async fn lock_org(conn: &mut AsyncPgConnection, org_id: Uuid) -> diesel::QueryResult<()> {
    org_lock(conn, org_id, "pg_advisory_xact_lock").await
}

/// [`lock_org`] shared: the batches of one whole-org rescore, read and written in lanes
/// side by side, take it so; everything else that writes the org's scores waits for them,
/// and they for it. Two whole-org rescores of one org never run at once (the engine's
/// rescore lock), so the lanes never score one customer twice.
pub async fn lock_org_shared(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
) -> diesel::QueryResult<()> {
    org_lock(conn, org_id, "pg_advisory_xact_lock_shared").await
}

/// The org lock taken with `function` (exclusive or shared), until the transaction ends.
async fn org_lock(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    function: &str,
) -> diesel::QueryResult<()> {
    diesel::sql_query(format!(
        "SELECT {function}(hashtextextended('scoring.org.' || $1::text, 0))"
    ))
    .bind::<SqlUuid, _>(org_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// contracts' `ObjectType` values as stored.
pub mod object_type {
    /// A contact (a customer).
    pub const CONTACT: i16 = 1;
    /// A company.
    pub const COMPANY: i16 = 2;
    /// A deal.
    pub const DEAL: i16 = 3;
}

/// contracts' `DealStatus` values as stored.
pub mod deal_status {
    /// Open.
    pub const OPEN: i16 = 1;
    /// Won.
    pub const WON: i16 = 2;
}
