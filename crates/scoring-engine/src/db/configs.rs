//! Model configs (every change a new version) and per-org scoring state (org means for
//! deal value, when the next scheduled rescore is due).

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::Uuid as SqlUuid;
use diesel::sql_types::{BigInt, Double, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::model::ModelConfig;

/// A config in force: version 0 is the built-in default.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedConfig {
    /// 0 for the default, then 1, 2, ...
    pub version: i64,
    /// The model.
    pub config: ModelConfig,
    /// When it was saved (`None` for the default).
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct ConfigRow {
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = Jsonb)]
    config: serde_json::Value,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// The org's config in force.
pub async fn current(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
) -> diesel::QueryResult<VersionedConfig> {
    let rows: Vec<ConfigRow> = diesel::sql_query(
        "SELECT version, config, created_at FROM configs WHERE org_id = $1 \
         ORDER BY version DESC LIMIT 1",
    )
    .bind::<SqlUuid, _>(org_id)
    .load(conn)
    .await?;
    match rows.into_iter().next() {
        None => Ok(VersionedConfig {
            version: 0,
            config: ModelConfig::default(),
            created_at: None,
        }),
        Some(row) => {
            let config = serde_json::from_value(row.config)
                .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
            Ok(VersionedConfig {
                version: row.version,
                config,
                created_at: Some(row.created_at),
            })
        }
    }
}

/// Stores `config` as the org's next version and returns that version.
pub async fn save(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    config: &ModelConfig,
    created_by: &str,
    now: DateTime<Utc>,
) -> diesel::QueryResult<i64> {
    let json = serde_json::to_value(config)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    #[derive(QueryableByName)]
    struct Version {
        #[diesel(sql_type = BigInt)]
        version: i64,
    }
    let row: Version = diesel::sql_query(
        "INSERT INTO configs (org_id, version, config, created_by, created_at) \
         SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4 FROM configs WHERE org_id = $1 \
         RETURNING version",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<Jsonb, _>(json)
    .bind::<Text, _>(created_by)
    .bind::<Timestamptz, _>(now)
    .get_result(conn)
    .await?;
    Ok(row.version)
}

/// The org means deal value is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OrgMeans {
    /// Mean open-and-won amount per contact with such deals.
    pub contact_cents: Option<f64>,
    /// Mean open-and-won amount per company with such deals.
    pub company_cents: Option<f64>,
}

#[derive(QueryableByName)]
struct MeansRow {
    #[diesel(sql_type = Nullable<Double>)]
    contact_mean_deal_cents: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    company_mean_deal_cents: Option<f64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    means_at: Option<DateTime<Utc>>,
}

/// Makes sure the org has a state row; a new org's first scheduled rescore is one
/// interval away.
pub async fn ensure_org(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    next_rescore_at: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO org_state (org_id, next_rescore_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<Timestamptz, _>(next_rescore_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The stored means, computing and storing them when the org has none yet.
pub async fn stored_means(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    now: DateTime<Utc>,
) -> diesel::QueryResult<OrgMeans> {
    let rows: Vec<MeansRow> = diesel::sql_query(
        "SELECT contact_mean_deal_cents, company_mean_deal_cents, means_at FROM org_state \
         WHERE org_id = $1",
    )
    .bind::<SqlUuid, _>(org_id)
    .load(conn)
    .await?;
    // Means are refreshed by every whole-org rescore; an org that had no deal when they
    // were taken gets them as soon as one arrives.
    if let Some(row) = rows.into_iter().next()
        && row.means_at.is_some()
        && (row.contact_mean_deal_cents.is_some() || row.company_mean_deal_cents.is_some())
    {
        return Ok(OrgMeans {
            contact_cents: row.contact_mean_deal_cents,
            company_cents: row.company_mean_deal_cents,
        });
    }
    let means = super::inputs::compute_means(conn, org_id).await?;
    store_means(conn, org_id, means, now).await?;
    Ok(means)
}

/// Stores freshly computed means.
pub async fn store_means(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    means: OrgMeans,
    now: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO org_state (org_id, contact_mean_deal_cents, company_mean_deal_cents, means_at, \
            next_rescore_at) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (org_id) DO UPDATE SET contact_mean_deal_cents = excluded.contact_mean_deal_cents, \
            company_mean_deal_cents = excluded.company_mean_deal_cents, means_at = excluded.means_at",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<Nullable<Double>, _>(means.contact_cents)
    .bind::<Nullable<Double>, _>(means.company_cents)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets when the org's next scheduled rescore is due.
pub async fn schedule_rescore(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    at: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO org_state (org_id, next_rescore_at) VALUES ($1, $2) \
         ON CONFLICT (org_id) DO UPDATE SET next_rescore_at = excluded.next_rescore_at",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Orgs whose scheduled rescore is due at `now`, the longest waiting first.
pub async fn due_orgs(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> diesel::QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = SqlUuid)]
        org_id: Uuid,
    }
    let rows: Vec<Due> = diesel::sql_query(
        "SELECT org_id FROM org_state WHERE next_rescore_at <= $1 \
         ORDER BY next_rescore_at, org_id LIMIT $2",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.org_id).collect())
}

/// Whether the org's scheduled rescore is due at `now`.
pub async fn is_due(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    now: DateTime<Utc>,
) -> diesel::QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM org_state WHERE org_id = $1 AND next_rescore_at <= $2",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<Timestamptz, _>(now)
    .get_result(conn)
    .await?;
    Ok(row.n > 0)
}

/// Records that the org is owed a rescore under config `version` (in the transaction that
/// saves it); a new org's row gets its first scheduled rescore at `next_rescore_at`.
pub async fn owe_rescore(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    version: i64,
    next_rescore_at: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO org_state (org_id, next_rescore_at, rescore_owed_version) VALUES ($1, $2, $3) \
         ON CONFLICT (org_id) DO UPDATE SET rescore_owed_version = \
            greatest(org_state.rescore_owed_version, excluded.rescore_owed_version)",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<Timestamptz, _>(next_rescore_at)
    .bind::<BigInt, _>(version)
    .execute(conn)
    .await?;
    Ok(())
}

/// The config version whose rescore the org is still owed, if any.
pub async fn owed_rescore(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
) -> diesel::QueryResult<Option<i64>> {
    #[derive(QueryableByName)]
    struct Owed {
        #[diesel(sql_type = Nullable<BigInt>)]
        rescore_owed_version: Option<i64>,
    }
    let rows: Vec<Owed> =
        diesel::sql_query("SELECT rescore_owed_version FROM org_state WHERE org_id = $1")
            .bind::<SqlUuid, _>(org_id)
            .load(conn)
            .await?;
    Ok(rows.into_iter().next().and_then(|r| r.rescore_owed_version))
}

/// Settles what the org was owed up to config `version` (a newer version stays owed).
pub async fn rescore_paid(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    version: i64,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "UPDATE org_state SET rescore_owed_version = NULL \
         WHERE org_id = $1 AND rescore_owed_version <= $2",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<BigInt, _>(version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every org still owed a config change's rescore.
pub async fn orgs_owed_rescore(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct Org {
        #[diesel(sql_type = SqlUuid)]
        org_id: Uuid,
    }
    let rows: Vec<Org> = diesel::sql_query(
        "SELECT org_id FROM org_state WHERE rescore_owed_version IS NOT NULL ORDER BY org_id",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.org_id).collect())
}
