//! Applies `crm.changed` records to the projection, newest wins by HubSpot's modified
//! time, and says which contacts and companies need rescoring.
//!
//! Associations have one owner each: a contact's record decides its companies, a deal's
//! record decides its contacts and companies (both sides travel in `crm.changed` when an
//! association changes, so one side is enough and the two can never disagree here).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use contracts::v1::{Company, Customer, Deal};
use diesel::QueryableByName;
use diesel::sql_types::Uuid as SqlUuid;
use diesel::sql_types::{Array, BigInt, Bool, Double, Int2, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::object_type;

/// How long the activity log keeps updates.
pub const ACTIVITY_RETENTION_DAYS: i64 = 90;

/// Where a record comes from.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// The org.
    pub org_id: Uuid,
    /// The connection.
    pub connection_id: Uuid,
    /// The HubSpot portal.
    pub portal_id: i64,
}

/// Contacts and companies (as `(portal_id, id)`) whose score may have changed.
#[derive(Debug, Default, Clone)]
pub struct Affected {
    /// Contacts to rescore.
    pub contacts: BTreeSet<(i64, i64)>,
    /// Companies to rescore.
    pub companies: BTreeSet<(i64, i64)>,
}

#[derive(QueryableByName)]
struct Applied {
    #[diesel(sql_type = Bool)]
    applied: bool,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

async fn log_activity(
    conn: &mut AsyncPgConnection,
    source: &Source,
    kind: i16,
    id: i64,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    if at <= now - Duration::days(ACTIVITY_RETENTION_DAYS) {
        return Ok(());
    }
    diesel::sql_query(
        "INSERT INTO activity_log (org_id, portal_id, object_type, object_id, occurred_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<Int2, _>(kind)
    .bind::<BigInt, _>(id)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    Ok(())
}

fn timestamp(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    ts.and_then(|t| contracts::time::to_datetime(t).ok())
}

/// A record's modified time; a record without one sorts before every dated one.
fn modified(ts: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    timestamp(ts).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Upserts a contact unless a newer version is stored; `true` when applied.
pub async fn upsert_contact(
    conn: &mut AsyncPgConnection,
    source: &Source,
    contact: &Customer,
    now: DateTime<Utc>,
    affected: &mut Affected,
) -> diesel::QueryResult<bool> {
    let updated_at = modified(contact.source_updated_at.as_ref());
    let applied: Vec<Applied> = diesel::sql_query(
        "INSERT INTO contacts (org_id, portal_id, contact_id, connection_id, email, name, \
            lifecycle_stage, last_activity_at, primary_company_id, source_updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (org_id, portal_id, contact_id) DO UPDATE SET \
            connection_id = excluded.connection_id, email = excluded.email, name = excluded.name, \
            lifecycle_stage = excluded.lifecycle_stage, last_activity_at = excluded.last_activity_at, \
            primary_company_id = excluded.primary_company_id, \
            source_updated_at = excluded.source_updated_at \
         WHERE contacts.source_updated_at <= excluded.source_updated_at \
         RETURNING true AS applied",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<BigInt, _>(contact.external_id)
    .bind::<SqlUuid, _>(source.connection_id)
    .bind::<Text, _>(&contact.email)
    .bind::<Nullable<Text>, _>(contact.name.as_deref())
    .bind::<Nullable<Text>, _>(contact.lifecycle_stage.as_deref())
    .bind::<Nullable<Timestamptz>, _>(timestamp(contact.last_activity_at.as_ref()))
    .bind::<Nullable<BigInt>, _>(contact.primary_company_id)
    .bind::<Timestamptz, _>(updated_at)
    .load(conn)
    .await?;
    // Logged whether or not this version is applied: an older version that arrived after
    // a newer one (replicas, retries) changes no field, but the update it records did
    // happen, so the result does not depend on the order messages were handled in.
    log_activity(
        conn,
        source,
        object_type::CONTACT,
        contact.external_id,
        updated_at,
        now,
    )
    .await?;
    affected
        .contacts
        .insert((source.portal_id, contact.external_id));
    if !applied.iter().any(|a| a.applied) {
        return Ok(false);
    }
    let old: Vec<Id> = diesel::sql_query(
        "DELETE FROM contact_companies WHERE org_id = $1 AND portal_id = $2 AND contact_id = $3 \
         RETURNING company_id AS id",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<BigInt, _>(contact.external_id)
    .load(conn)
    .await?;
    let mut companies: BTreeSet<i64> = contact.company_ids.iter().copied().collect();
    companies.extend(contact.primary_company_id);
    let ids: Vec<i64> = companies.iter().copied().collect();
    diesel::sql_query(
        "INSERT INTO contact_companies (org_id, portal_id, contact_id, company_id) \
         SELECT $1, $2, $3, unnest($4::bigint[]) ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<BigInt, _>(contact.external_id)
    .bind::<Array<BigInt>, _>(&ids)
    .execute(conn)
    .await?;
    for id in old.into_iter().map(|r| r.id).chain(ids) {
        affected.companies.insert((source.portal_id, id));
    }
    Ok(true)
}

/// Upserts a company unless a newer version is stored; `true` when applied.
pub async fn upsert_company(
    conn: &mut AsyncPgConnection,
    source: &Source,
    company: &Company,
    affected: &mut Affected,
) -> diesel::QueryResult<bool> {
    let applied: Vec<Applied> = diesel::sql_query(
        "INSERT INTO companies (org_id, portal_id, company_id, connection_id, name, domain, \
            last_activity_at, source_updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (org_id, portal_id, company_id) DO UPDATE SET \
            connection_id = excluded.connection_id, name = excluded.name, domain = excluded.domain, \
            last_activity_at = excluded.last_activity_at, source_updated_at = excluded.source_updated_at \
         WHERE companies.source_updated_at <= excluded.source_updated_at \
         RETURNING true AS applied",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<BigInt, _>(company.external_id)
    .bind::<SqlUuid, _>(source.connection_id)
    .bind::<Nullable<Text>, _>(company.name.as_deref())
    .bind::<Nullable<Text>, _>(company.domain.as_deref())
    .bind::<Nullable<Timestamptz>, _>(timestamp(company.last_activity_at.as_ref()))
    .bind::<Timestamptz, _>(modified(company.source_updated_at.as_ref()))
    .load(conn)
    .await?;
    if !applied.iter().any(|a| a.applied) {
        return Ok(false);
    }
    affected
        .companies
        .insert((source.portal_id, company.external_id));
    // Its contacts' recency includes the company's activity.
    let contacts: Vec<Id> = diesel::sql_query(
        "SELECT contact_id AS id FROM contact_companies \
         WHERE org_id = $1 AND portal_id = $2 AND company_id = $3",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<BigInt, _>(company.external_id)
    .load(conn)
    .await?;
    affected
        .contacts
        .extend(contacts.into_iter().map(|r| (source.portal_id, r.id)));
    Ok(true)
}

/// Upserts a deal unless a newer version is stored; `true` when applied.
pub async fn upsert_deal(
    conn: &mut AsyncPgConnection,
    source: &Source,
    deal: &Deal,
    now: DateTime<Utc>,
    affected: &mut Affected,
) -> diesel::QueryResult<bool> {
    let updated_at = modified(deal.source_updated_at.as_ref());
    let status = i16::try_from(deal.status).unwrap_or(0);
    let applied: Vec<Applied> = diesel::sql_query(
        "INSERT INTO deals (org_id, portal_id, deal_id, connection_id, status, amount_cents, \
            close_probability, source_updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (org_id, portal_id, deal_id) DO UPDATE SET \
            connection_id = excluded.connection_id, status = excluded.status, \
            amount_cents = excluded.amount_cents, close_probability = excluded.close_probability, \
            source_updated_at = excluded.source_updated_at \
         WHERE deals.source_updated_at <= excluded.source_updated_at \
         RETURNING true AS applied",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<BigInt, _>(deal.external_id)
    .bind::<SqlUuid, _>(source.connection_id)
    .bind::<Int2, _>(status)
    .bind::<Nullable<BigInt>, _>(deal.amount_cents)
    .bind::<Nullable<Double>, _>(deal.close_probability)
    .bind::<Timestamptz, _>(updated_at)
    .load(conn)
    .await?;
    // As for contacts: logged whether or not this version is applied.
    log_activity(
        conn,
        source,
        object_type::DEAL,
        deal.external_id,
        updated_at,
        now,
    )
    .await?;
    if !applied.iter().any(|a| a.applied) {
        // A late older version still counts as activity for the records the deal is
        // associated with now.
        let bind = |sql: &'static str| {
            diesel::sql_query(sql)
                .bind::<SqlUuid, _>(source.org_id)
                .bind::<BigInt, _>(source.portal_id)
                .bind::<BigInt, _>(deal.external_id)
        };
        let contacts: Vec<Id> = bind(
            "SELECT contact_id AS id FROM deal_contacts \
             WHERE org_id = $1 AND portal_id = $2 AND deal_id = $3",
        )
        .load(conn)
        .await?;
        let companies: Vec<Id> = bind(
            "SELECT company_id AS id FROM deal_companies \
             WHERE org_id = $1 AND portal_id = $2 AND deal_id = $3",
        )
        .load(conn)
        .await?;
        affected
            .contacts
            .extend(contacts.into_iter().map(|r| (source.portal_id, r.id)));
        affected
            .companies
            .extend(companies.into_iter().map(|r| (source.portal_id, r.id)));
        return Ok(false);
    }
    let (old_contacts, old_companies) =
        delete_deal_associations(conn, source, deal.external_id).await?;
    let contacts: Vec<i64> = deal
        .contact_ids
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let companies: Vec<i64> = deal
        .company_ids
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    diesel::sql_query(
        "INSERT INTO deal_contacts (org_id, portal_id, deal_id, contact_id) \
         SELECT $1, $2, $3, unnest($4::bigint[]) ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<BigInt, _>(deal.external_id)
    .bind::<Array<BigInt>, _>(&contacts)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "INSERT INTO deal_companies (org_id, portal_id, deal_id, company_id) \
         SELECT $1, $2, $3, unnest($4::bigint[]) ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<BigInt, _>(deal.external_id)
    .bind::<Array<BigInt>, _>(&companies)
    .execute(conn)
    .await?;
    for id in old_contacts.into_iter().chain(contacts) {
        affected.contacts.insert((source.portal_id, id));
    }
    for id in old_companies.into_iter().chain(companies) {
        affected.companies.insert((source.portal_id, id));
    }
    Ok(true)
}

async fn delete_deal_associations(
    conn: &mut AsyncPgConnection,
    source: &Source,
    deal_id: i64,
) -> diesel::QueryResult<(Vec<i64>, Vec<i64>)> {
    let contacts: Vec<Id> = diesel::sql_query(
        "DELETE FROM deal_contacts WHERE org_id = $1 AND portal_id = $2 AND deal_id = $3 \
         RETURNING contact_id AS id",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<BigInt, _>(deal_id)
    .load(conn)
    .await?;
    let companies: Vec<Id> = diesel::sql_query(
        "DELETE FROM deal_companies WHERE org_id = $1 AND portal_id = $2 AND deal_id = $3 \
         RETURNING company_id AS id",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<BigInt, _>(deal_id)
    .load(conn)
    .await?;
    Ok((
        contacts.into_iter().map(|r| r.id).collect(),
        companies.into_iter().map(|r| r.id).collect(),
    ))
}

/// How long a removed record is remembered ([`remember_removed`]): longer than any
/// redelivery or replica lag, short enough that the table stays small.
pub const REMOVED_RETENTION_DAYS: i64 = 7;

/// Of `ids` (of type `kind`), those removed by a message committed after `committed`:
/// their changes are older than the removal and are not applied. Forgets removals
/// committed before it (a restore brings the record back). A message without a commit
/// time cannot be ordered and is applied as before removals were remembered.
pub async fn removed_after(
    conn: &mut AsyncPgConnection,
    source: &Source,
    kind: i16,
    ids: &[i64],
    committed: Option<DateTime<Utc>>,
) -> diesel::QueryResult<BTreeSet<i64>> {
    let Some(committed) = committed else {
        return Ok(BTreeSet::new());
    };
    if ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let rows: Vec<Id> = diesel::sql_query(
        "WITH restored AS (
            DELETE FROM removed_records WHERE org_id = $1 AND portal_id = $2
              AND object_type = $3 AND object_id = ANY($4) AND removed_at < $5)
         SELECT object_id AS id FROM removed_records WHERE org_id = $1 AND portal_id = $2
           AND object_type = $3 AND object_id = ANY($4) AND removed_at >= $5",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<Int2, _>(kind)
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Timestamptz, _>(committed)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Remembers `ids` as removed at `removed_at` (the removing message's commit time), and
/// forgets the org's removals older than [`REMOVED_RETENTION_DAYS`] before `now`.
pub async fn remember_removed(
    conn: &mut AsyncPgConnection,
    source: &Source,
    kind: i16,
    ids: &[i64],
    removed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "INSERT INTO removed_records (org_id, portal_id, object_type, object_id, removed_at)
         SELECT $1, $2, $3, id, $5 FROM unnest($4::bigint[]) AS id
         ON CONFLICT (org_id, portal_id, object_type, object_id)
         DO UPDATE SET removed_at = GREATEST(removed_records.removed_at, excluded.removed_at)",
    )
    .bind::<SqlUuid, _>(source.org_id)
    .bind::<BigInt, _>(source.portal_id)
    .bind::<Int2, _>(kind)
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Timestamptz, _>(removed_at)
    .execute(conn)
    .await?;
    diesel::sql_query("DELETE FROM removed_records WHERE org_id = $1 AND removed_at < $2")
        .bind::<SqlUuid, _>(source.org_id)
        .bind::<Timestamptz, _>(now - Duration::days(REMOVED_RETENTION_DAYS))
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes records deleted or merged away in HubSpot, with their scores and history.
pub async fn delete_records(
    conn: &mut AsyncPgConnection,
    source: &Source,
    kind: i16,
    ids: &[i64],
    affected: &mut Affected,
) -> diesel::QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let portal = source.portal_id;
    let bind = |sql: &'static str| {
        diesel::sql_query(sql)
            .bind::<SqlUuid, _>(source.org_id)
            .bind::<BigInt, _>(portal)
            .bind::<Array<BigInt>, _>(ids.to_vec())
    };
    match kind {
        object_type::CONTACT => {
            bind("DELETE FROM contacts WHERE org_id = $1 AND portal_id = $2 AND contact_id = ANY($3)")
                .execute(conn)
                .await?;
            let companies: Vec<Id> = bind(
                "DELETE FROM contact_companies WHERE org_id = $1 AND portal_id = $2 \
                 AND contact_id = ANY($3) RETURNING company_id AS id",
            )
            .load(conn)
            .await?;
            affected
                .companies
                .extend(companies.into_iter().map(|r| (portal, r.id)));
            for id in ids {
                affected.contacts.remove(&(portal, *id));
            }
        }
        object_type::COMPANY => {
            bind("DELETE FROM companies WHERE org_id = $1 AND portal_id = $2 AND company_id = ANY($3)")
                .execute(conn)
                .await?;
            let contacts: Vec<Id> = bind(
                "DELETE FROM contact_companies WHERE org_id = $1 AND portal_id = $2 \
                 AND company_id = ANY($3) RETURNING contact_id AS id",
            )
            .load(conn)
            .await?;
            bind("DELETE FROM deal_companies WHERE org_id = $1 AND portal_id = $2 AND company_id = ANY($3)")
                .execute(conn)
                .await?;
            affected
                .contacts
                .extend(contacts.into_iter().map(|r| (portal, r.id)));
            for id in ids {
                affected.companies.remove(&(portal, *id));
            }
        }
        _ => {
            bind("DELETE FROM deals WHERE org_id = $1 AND portal_id = $2 AND deal_id = ANY($3)")
                .execute(conn)
                .await?;
            for id in ids {
                let (contacts, companies) = delete_deal_associations(conn, source, *id).await?;
                affected
                    .contacts
                    .extend(contacts.into_iter().map(|c| (portal, c)));
                affected
                    .companies
                    .extend(companies.into_iter().map(|c| (portal, c)));
            }
        }
    }
    if kind == object_type::CONTACT || kind == object_type::COMPANY {
        diesel::sql_query(
            "WITH gone AS (DELETE FROM scores WHERE org_id = $1 AND portal_id = $2 \
                AND object_id = ANY($3) AND object_type = $4) \
             DELETE FROM score_history WHERE org_id = $1 AND object_type = $4 \
                AND portal_id = $2 AND object_id = ANY($3)",
        )
        .bind::<SqlUuid, _>(source.org_id)
        .bind::<BigInt, _>(portal)
        .bind::<Array<BigInt>, _>(ids.to_vec())
        .bind::<Int2, _>(kind)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Adds the companies of every affected contact: a company's score rolls its contacts up.
pub async fn add_companies_of_contacts(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    affected: &mut Affected,
) -> diesel::QueryResult<()> {
    if affected.contacts.is_empty() {
        return Ok(());
    }
    let (portals, ids): (Vec<i64>, Vec<i64>) = affected.contacts.iter().copied().unzip();
    #[derive(QueryableByName)]
    struct Pair {
        #[diesel(sql_type = BigInt)]
        portal_id: i64,
        #[diesel(sql_type = BigInt)]
        company_id: i64,
    }
    let pairs: Vec<Pair> = diesel::sql_query(
        "SELECT cc.portal_id, cc.company_id FROM contact_companies cc \
         JOIN unnest($2::bigint[], $3::bigint[]) AS t(portal_id, contact_id) \
           ON cc.portal_id = t.portal_id AND cc.contact_id = t.contact_id \
         WHERE cc.org_id = $1",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<Array<BigInt>, _>(portals)
    .bind::<Array<BigInt>, _>(ids)
    .load(conn)
    .await?;
    affected
        .companies
        .extend(pairs.into_iter().map(|p| (p.portal_id, p.company_id)));
    Ok(())
}

/// Forgets activity older than the retention for one org.
pub async fn prune_activity(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    now: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    diesel::sql_query("DELETE FROM activity_log WHERE org_id = $1 AND occurred_at <= $2")
        .bind::<SqlUuid, _>(org_id)
        .bind::<Timestamptz, _>(now - Duration::days(ACTIVITY_RETENTION_DAYS))
        .execute(conn)
        .await
}
