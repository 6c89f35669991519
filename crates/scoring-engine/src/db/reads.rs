//! Reads behind the API: customer lists, one customer with history, the distribution.
//! Every query is scoped by the caller's org.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::sql_types::Uuid as SqlUuid;
use diesel::sql_types::{Array, BigInt, Double, Int2, Int4, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// How a list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Score ascending (N/A first), then id.
    ScoreAsc,
    /// Score descending (N/A last), then id.
    ScoreDesc,
    /// Name ascending, then id.
    NameAsc,
    /// Name descending, then id.
    NameDesc,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CursorKey {
    /// The last score (`-1` for N/A).
    Score(i32),
    /// The last name.
    Name(String),
}

/// A list request.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// Only these risk levels (contracts' values); empty for all.
    pub risk_levels: Vec<i16>,
    /// Lowest score (N/A excluded when set).
    pub min_score: Option<i16>,
    /// Highest score (N/A excluded when set).
    pub max_score: Option<i16>,
    /// Only contacts or only companies.
    pub object_type: Option<i16>,
    /// Order.
    pub sort: Sort,
    /// After this row.
    pub cursor: Option<(CursorKey, Uuid)>,
    /// Page size.
    pub limit: i64,
}

/// One listed customer.
#[derive(Debug, Clone, QueryableByName)]
pub struct ListRow {
    /// Customer id.
    #[diesel(sql_type = SqlUuid)]
    pub score_id: Uuid,
    /// CONTACT or COMPANY.
    #[diesel(sql_type = Int2)]
    pub object_type: i16,
    /// HubSpot id.
    #[diesel(sql_type = BigInt)]
    pub object_id: i64,
    /// The portal.
    #[diesel(sql_type = BigInt)]
    pub portal_id: i64,
    /// Name, e-mail or domain.
    #[diesel(sql_type = Text)]
    pub display_name: String,
    /// 0-100 or N/A.
    #[diesel(sql_type = Nullable<Int2>)]
    pub score: Option<i16>,
    /// contracts' risk level.
    #[diesel(sql_type = Int2)]
    pub risk_level: i16,
    /// Config version.
    #[diesel(sql_type = BigInt)]
    pub config_version: i64,
    /// When computed.
    #[diesel(sql_type = Timestamptz)]
    pub computed_at: DateTime<Utc>,
}

/// One page of customers.
pub async fn list(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    filter: &ListFilter,
) -> diesel::QueryResult<Vec<ListRow>> {
    let mut sql = String::from(
        "SELECT score_id, object_type, object_id, portal_id, display_name, score, risk_level, \
         config_version, computed_at FROM scores WHERE org_id = $1",
    );
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    let risk_bind = (!filter.risk_levels.is_empty()).then(|| {
        let i = next();
        sql.push_str(&format!(" AND risk_level = ANY(${i})"));
    });
    let min_bind = filter.min_score.map(|_| {
        let i = next();
        sql.push_str(&format!(" AND score >= ${i}"));
    });
    let max_bind = filter.max_score.map(|_| {
        let i = next();
        sql.push_str(&format!(" AND score <= ${i}"));
    });
    let type_bind = filter.object_type.map(|_| {
        let i = next();
        sql.push_str(&format!(" AND object_type = ${i}"));
    });
    let (key_expr, desc) = match filter.sort {
        Sort::ScoreAsc => ("coalesce(score, -1)::int4", false),
        Sort::ScoreDesc => ("coalesce(score, -1)::int4", true),
        Sort::NameAsc => ("display_name", false),
        Sort::NameDesc => ("display_name", true),
    };
    if filter.cursor.is_some() {
        let (a, b) = (next(), next());
        let op = if desc { "<" } else { ">" };
        sql.push_str(&format!(" AND ({key_expr}, score_id) {op} (${a}, ${b})"));
    }
    let dir = if desc { "DESC" } else { "ASC" };
    let limit = next();
    sql.push_str(&format!(
        " ORDER BY {key_expr} {dir}, score_id {dir} LIMIT ${limit}"
    ));
    let mut query = diesel::sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<SqlUuid, _>(org_id);
    if risk_bind.is_some() {
        query = query.bind::<Array<Int2>, _>(filter.risk_levels.clone());
    }
    if let (Some(()), Some(v)) = (min_bind, filter.min_score) {
        query = query.bind::<Int2, _>(v);
    }
    if let (Some(()), Some(v)) = (max_bind, filter.max_score) {
        query = query.bind::<Int2, _>(v);
    }
    if let (Some(()), Some(v)) = (type_bind, filter.object_type) {
        query = query.bind::<Int2, _>(v);
    }
    if let Some((key, id)) = &filter.cursor {
        query = match key {
            CursorKey::Score(s) => query.bind::<Int4, _>(*s),
            CursorKey::Name(name) => query.bind::<Text, _>(name.clone()),
        };
        query = query.bind::<SqlUuid, _>(*id);
    }
    query.bind::<BigInt, _>(filter.limit).load(conn).await
}

/// A stored score with its breakdown.
#[derive(Debug, Clone, QueryableByName)]
pub struct DetailRow {
    /// Customer id.
    #[diesel(sql_type = SqlUuid)]
    pub score_id: Uuid,
    /// CONTACT or COMPANY.
    #[diesel(sql_type = Int2)]
    pub object_type: i16,
    /// HubSpot id.
    #[diesel(sql_type = BigInt)]
    pub object_id: i64,
    /// The portal.
    #[diesel(sql_type = BigInt)]
    pub portal_id: i64,
    /// The connection.
    #[diesel(sql_type = SqlUuid)]
    pub connection_id: Uuid,
    /// The contact (0 for a company).
    #[diesel(sql_type = BigInt)]
    pub contact_id: i64,
    /// The (primary) company.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub company_id: Option<i64>,
    /// Name, e-mail or domain.
    #[diesel(sql_type = Text)]
    pub display_name: String,
    /// 0-100 or N/A.
    #[diesel(sql_type = Nullable<Int2>)]
    pub score: Option<i16>,
    /// contracts' risk level.
    #[diesel(sql_type = Int2)]
    pub risk_level: i16,
    /// Days since the last sales activity.
    #[diesel(sql_type = Nullable<Double>)]
    pub recency_days: Option<f64>,
    /// Mean open-deal probability.
    #[diesel(sql_type = Nullable<Double>)]
    pub deal_probability: Option<f64>,
    /// Lifecycle stage.
    #[diesel(sql_type = Nullable<Text>)]
    pub lifecycle_stage: Option<String>,
    /// Updates within the window.
    #[diesel(sql_type = Int4)]
    pub update_count: i32,
    /// Open and won amount.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub deal_amount_cents: Option<i64>,
    /// Factor values.
    #[diesel(sql_type = Array<Double>)]
    pub factor_values: Vec<f64>,
    /// Weights.
    #[diesel(sql_type = Array<Double>)]
    pub weights: Vec<f64>,
    /// Contributions.
    #[diesel(sql_type = Array<Double>)]
    pub contributions: Vec<f64>,
    /// Config version.
    #[diesel(sql_type = BigInt)]
    pub config_version: i64,
    /// When computed.
    #[diesel(sql_type = Timestamptz)]
    pub computed_at: DateTime<Utc>,
}

/// One customer of the org, if it has one with that id.
pub async fn detail(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    score_id: Uuid,
) -> diesel::QueryResult<Option<DetailRow>> {
    let rows: Vec<DetailRow> = diesel::sql_query(
        "SELECT score_id, object_type, object_id, portal_id, connection_id, contact_id, company_id, \
            display_name, score, risk_level, recency_days, deal_probability, lifecycle_stage, \
            update_count, deal_amount_cents, factor_values, weights, contributions, config_version, \
            computed_at \
         FROM scores WHERE org_id = $1 AND score_id = $2",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<SqlUuid, _>(score_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// One history row.
#[derive(Debug, Clone, QueryableByName)]
pub struct HistoryRow {
    /// The score from `computed_at` on.
    #[diesel(sql_type = Nullable<Int2>)]
    pub score: Option<i16>,
    /// Its risk level.
    #[diesel(sql_type = Int2)]
    pub risk_level: i16,
    /// Its contributions.
    #[diesel(sql_type = Array<Double>)]
    pub contributions: Vec<f64>,
    /// Config version.
    #[diesel(sql_type = BigInt)]
    pub config_version: i64,
    /// When.
    #[diesel(sql_type = Timestamptz)]
    pub computed_at: DateTime<Utc>,
}

/// The latest `limit` history rows of a customer (`row`'s), newest first.
pub async fn history(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    row: &DetailRow,
    limit: i64,
) -> diesel::QueryResult<Vec<HistoryRow>> {
    diesel::sql_query(
        "SELECT score, risk_level, contributions, config_version, computed_at FROM score_history \
         WHERE org_id = $1 AND object_type = $2 AND portal_id = $3 AND object_id = $4 \
         ORDER BY computed_at DESC, id DESC LIMIT $5",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<Int2, _>(row.object_type)
    .bind::<BigInt, _>(row.portal_id)
    .bind::<BigInt, _>(row.object_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Counts per risk level and the mean score of a set of scores.
#[derive(Debug, Clone, Default, PartialEq, QueryableByName)]
pub struct Distribution {
    /// Healthy.
    #[diesel(sql_type = BigInt)]
    pub healthy: i64,
    /// At risk.
    #[diesel(sql_type = BigInt)]
    pub at_risk: i64,
    /// Critical.
    #[diesel(sql_type = BigInt)]
    pub critical: i64,
    /// N/A.
    #[diesel(sql_type = BigInt)]
    pub none: i64,
    /// Mean of the scored ones.
    #[diesel(sql_type = Nullable<Double>)]
    pub mean_score: Option<f64>,
}

const COUNTS: &str = "count(*) FILTER (WHERE risk_level = 1) AS healthy, \
    count(*) FILTER (WHERE risk_level = 2) AS at_risk, \
    count(*) FILTER (WHERE risk_level = 3) AS critical, \
    count(*) FILTER (WHERE risk_level = 4) AS none, \
    avg(score)::float8 AS mean_score";

/// The org's distribution now.
pub async fn distribution_now(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
) -> diesel::QueryResult<Distribution> {
    diesel::sql_query(format!("SELECT {COUNTS} FROM scores WHERE org_id = $1"))
        .bind::<SqlUuid, _>(org_id)
        .get_result(conn)
        .await
}

/// The org's distribution as it was at `at`: each customer that still exists, at the
/// history row in force then (customers scored only later are left out).
pub async fn distribution_at(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    at: DateTime<Utc>,
) -> diesel::QueryResult<Distribution> {
    diesel::sql_query(format!(
        "SELECT {COUNTS} FROM ( \
            SELECT DISTINCT ON (h.score_id) h.score, h.risk_level FROM score_history h \
            JOIN scores s ON s.score_id = h.score_id AND s.org_id = $1 \
            WHERE h.org_id = $1 AND h.computed_at <= $2 \
            ORDER BY h.score_id, h.computed_at DESC, h.id DESC) x"
    ))
    .bind::<SqlUuid, _>(org_id)
    .bind::<Timestamptz, _>(at)
    .get_result(conn)
    .await
}
