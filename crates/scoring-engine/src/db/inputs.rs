//! Reads what scoring needs for a batch of contacts or companies in one statement each,
//! together with the score stored for them now.
//!
//! A contact's inputs: its own and its companies' last activity, the deals associated with
//! it, its lifecycle stage, and its own and its deals' updates within the window.
//! A company's inputs roll up its contacts and deals: the latest activity of the company
//! and its contacts, the deals associated with the company or with any of its contacts,
//! its contacts' most valuable lifecycle stage, and the updates of those contacts and
//! deals within the window.

use chrono::{DateTime, Utc};
use diesel::sql_types::Uuid as SqlUuid;
use diesel::sql_types::{Array, BigInt, Double, Int2, Nullable, Text, Timestamptz};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::configs::OrgMeans;

/// Which records of an org to read.
#[derive(Debug, Clone)]
pub enum Selection {
    /// The next `limit` records after `(portal_id, id)` (keyset pagination over the org).
    After {
        /// The last key of the previous batch; `None` to start.
        after: Option<(i64, i64)>,
        /// Batch size.
        limit: i64,
    },
    /// Exactly these `(portal_id, id)` records (those that exist).
    Keys(Vec<(i64, i64)>),
}

/// One record with its inputs and its stored score.
#[derive(Debug, Clone, QueryableByName)]
pub struct InputRow {
    /// The portal.
    #[diesel(sql_type = BigInt)]
    pub portal_id: i64,
    /// The contact or company id.
    #[diesel(sql_type = BigInt)]
    pub object_id: i64,
    /// The connection it comes from.
    #[diesel(sql_type = SqlUuid)]
    pub connection_id: Uuid,
    /// Name, e-mail or domain for lists.
    #[diesel(sql_type = Text)]
    pub display_name: String,
    /// A contact's primary company.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub primary_company_id: Option<i64>,
    /// Latest sales activity (see the module docs).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_activity_at: Option<DateTime<Utc>>,
    /// A contact's stage, or every distinct stage of a company's contacts.
    #[diesel(sql_type = Nullable<Array<Text>>)]
    pub stages: Option<Vec<String>>,
    /// Deals in any status.
    #[diesel(sql_type = BigInt)]
    pub deal_count: i64,
    /// Mean close probability of open deals.
    #[diesel(sql_type = Nullable<Double>)]
    pub open_probability: Option<f64>,
    /// Open and won amount, cents.
    #[diesel(sql_type = BigInt)]
    pub amount_cents: i64,
    /// Open and won deals (what `amount_cents` sums; 0 for none).
    #[diesel(sql_type = BigInt)]
    pub open_won_count: i64,
    /// Every update time of the record and its deals (contacts and deals for a company)
    /// in the activity log, whatever the window: the window is counted at scoring time.
    #[diesel(sql_type = Array<Timestamptz>)]
    pub activity_at: Vec<DateTime<Utc>>,
    /// The stored row's id (the customer id), if any row: read rather than derived again
    /// (a SHA-1 a customer, 4 % of a rescore's CPU in this process).
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub old_score_id: Option<Uuid>,
    /// The stored score, if any.
    #[diesel(sql_type = Nullable<Int2>)]
    pub old_score: Option<i16>,
    /// The stored risk level (contracts' `RiskLevel`), if any row.
    #[diesel(sql_type = Nullable<Int2>)]
    pub old_risk_level: Option<i16>,
    /// The stored contributions.
    #[diesel(sql_type = Nullable<Array<Double>>)]
    pub old_contributions: Option<Vec<f64>>,
    /// The stored config version.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub old_config_version: Option<i64>,
    /// The stored display name.
    #[diesel(sql_type = Nullable<Text>)]
    pub old_display_name: Option<String>,
    /// The stored company id.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub old_company_id: Option<i64>,
    /// Where the stored score row is (its `ctid`, as text), so that rewriting it in the
    /// same transaction goes straight to it; `None` without a row (or in a preview).
    #[diesel(sql_type = Nullable<Text>)]
    pub old_row_tid: Option<String>,
    /// The stored inputs (`None` without a row, or a row from before they were stored).
    #[diesel(embed)]
    pub old_inputs: StoredInputs,
    /// The row was read from its score row: its name, company and inputs are the stored
    /// ones (and `old_display_name`, `old_company_id` and `old_inputs` are left unread).
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub olds_are_inputs: bool,
}

/// The raw inputs stored with a score (`scores.input_*`).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct StoredInputs {
    /// Latest sales activity.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub old_last_activity_at: Option<DateTime<Utc>>,
    /// Deals in any status; `None` when nothing is stored.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub old_deal_count: Option<i64>,
    /// Mean close probability of open deals.
    #[diesel(sql_type = Nullable<Double>)]
    pub old_open_probability: Option<f64>,
    /// Open and won amount.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub old_amount_cents: Option<i64>,
    /// Open and won deals.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub old_open_won_count: Option<i64>,
    /// Stages.
    #[diesel(sql_type = Nullable<Array<Text>>)]
    pub old_stages: Option<Vec<String>>,
    /// Update times.
    #[diesel(sql_type = Nullable<Array<Timestamptz>>)]
    pub old_activity_at: Option<Vec<DateTime<Utc>>>,
}

impl InputRow {
    /// Whether the stored inputs are exactly these (nothing to rewrite for them).
    pub fn inputs_unchanged(&self) -> bool {
        let o = &self.old_inputs;
        o.old_deal_count == Some(self.deal_count)
            && o.old_last_activity_at == self.last_activity_at
            && o.old_open_probability == self.open_probability
            && o.old_amount_cents == Some(self.amount_cents)
            && o.old_open_won_count == Some(self.open_won_count)
            && o.old_stages == self.stages
            && o.old_activity_at.as_ref() == Some(&self.activity_at)
    }
}

const OLD_COLUMNS: &str = "s.score_id AS old_score_id, s.score AS old_score, \
    s.risk_level AS old_risk_level, \
    s.contributions AS old_contributions, s.config_version AS old_config_version, \
    s.display_name AS old_display_name, s.company_id AS old_company_id, \
    s.ctid::text AS old_row_tid, \
    s.input_last_activity_at AS old_last_activity_at, s.input_deal_count AS old_deal_count, \
    s.input_open_probability AS old_open_probability, s.input_amount_cents AS old_amount_cents, \
    s.input_open_won_count AS old_open_won_count, s.input_stages AS old_stages, s.input_activity_at AS old_activity_at, \
    false AS olds_are_inputs";

/// A batch read from the score rows themselves: their name, company and inputs are the
/// ones read, so they are not read twice (`olds_are_inputs`).
const STORED_OLD_COLUMNS: &str = "s.score_id AS old_score_id, s.score AS old_score, \
    s.risk_level AS old_risk_level, \
    s.contributions AS old_contributions, s.config_version AS old_config_version, \
    NULL::text AS old_display_name, NULL::int8 AS old_company_id, s.ctid::text AS old_row_tid, \
    NULL::timestamptz AS old_last_activity_at, NULL::int8 AS old_deal_count, \
    NULL::float8 AS old_open_probability, NULL::int8 AS old_amount_cents, \
    NULL::int8 AS old_open_won_count, NULL::text[] AS old_stages, NULL::timestamptz[] AS old_activity_at, \
    true AS olds_are_inputs";

/// What a preview compares (score and level); the rest of the stored row is left unread.
const PREVIEW_OLD_COLUMNS: &str = "s.score_id AS old_score_id, s.score AS old_score, \
    s.risk_level AS old_risk_level, \
    NULL::float8[] AS old_contributions, NULL::int8 AS old_config_version, \
    NULL::text AS old_display_name, NULL::int8 AS old_company_id, NULL::text AS old_row_tid, \
    NULL::timestamptz AS old_last_activity_at, NULL::int8 AS old_deal_count, \
    NULL::float8 AS old_open_probability, NULL::int8 AS old_amount_cents, \
    NULL::int8 AS old_open_won_count, NULL::text[] AS old_stages, NULL::timestamptz[] AS old_activity_at, \
    true AS olds_are_inputs";

// Each record's aggregates are LATERAL subqueries over the indexes (one index probe per
// record and association), which stays linear in the batch size whatever the planner
// guesses about the batch (grouped CTEs joined afterwards went quadratic). The stored
// score too (`LIMIT 1` keeps it a probe by the whole key): the planner estimates a later
// batch's keyset filter `(portal_id, id) > (p, i)` at one row, and with the stored score
// as a plain join it scanned every score of the org per record (a minute per batch).
const CONTACTS: &str = "
WITH t AS MATERIALIZED (
    SELECT c.* FROM contacts c WHERE c.org_id = $1 AND {filter}
    ORDER BY c.portal_id, c.contact_id LIMIT $2
)
SELECT t.portal_id, t.contact_id AS object_id, t.connection_id,
    coalesce(t.name, t.email) AS display_name, t.primary_company_id,
    greatest(t.last_activity_at, comp.at) AS last_activity_at,
    CASE WHEN t.lifecycle_stage IS NULL THEN NULL ELSE ARRAY[t.lifecycle_stage] END AS stages,
    dl.deal_count, dl.open_probability, coalesce(dl.amount, 0)::bigint AS amount_cents,
    dl.open_won AS open_won_count,
    own.at || dact.at AS activity_at,
    {old}
FROM t
CROSS JOIN LATERAL (
    SELECT max(co.last_activity_at) AS at FROM contact_companies cc
    JOIN companies co ON co.org_id = $1 AND co.portal_id = cc.portal_id AND co.company_id = cc.company_id
    WHERE cc.org_id = $1 AND cc.portal_id = t.portal_id AND cc.contact_id = t.contact_id
) comp
CROSS JOIN LATERAL (
    SELECT count(*) AS deal_count,
        avg(coalesce(d.close_probability, 0)) FILTER (WHERE d.status = 1) AS open_probability,
        sum(coalesce(d.amount_cents, 0)) FILTER (WHERE d.status IN (1, 2)) AS amount,
        count(*) FILTER (WHERE d.status IN (1, 2)) AS open_won,
        array_agg(d.deal_id) AS deal_ids
    FROM deal_contacts dc
    JOIN deals d ON d.org_id = $1 AND d.portal_id = dc.portal_id AND d.deal_id = dc.deal_id
    WHERE dc.org_id = $1 AND dc.portal_id = t.portal_id AND dc.contact_id = t.contact_id
) dl
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(a.occurred_at ORDER BY a.occurred_at), '{}') AS at
    FROM activity_log a
    WHERE a.org_id = $1 AND a.portal_id = t.portal_id AND a.object_type = 1
      AND a.object_id = t.contact_id
) own
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(a.occurred_at ORDER BY a.occurred_at), '{}') AS at
    FROM unnest(dl.deal_ids) AS x(deal_id)
    JOIN activity_log a ON a.org_id = $1 AND a.portal_id = t.portal_id
      AND a.object_type = 3 AND a.object_id = x.deal_id
) dact
LEFT JOIN LATERAL (
    SELECT s.*, s.ctid FROM scores s WHERE s.org_id = $1 AND s.object_type = 1
      AND s.portal_id = t.portal_id AND s.object_id = t.contact_id LIMIT 1
) s ON true
ORDER BY t.portal_id, t.contact_id";

const COMPANIES: &str = "
WITH t AS MATERIALIZED (
    SELECT c.* FROM companies c WHERE c.org_id = $1 AND {filter}
    ORDER BY c.portal_id, c.company_id LIMIT $2
)
SELECT t.portal_id, t.company_id AS object_id, t.connection_id,
    coalesce(t.name, t.domain, 'company ' || t.company_id) AS display_name,
    NULL::bigint AS primary_company_id,
    greatest(t.last_activity_at, cagg.at) AS last_activity_at, cagg.stages,
    dl.deal_count, dl.open_probability, coalesce(dl.amount, 0)::bigint AS amount_cents,
    dl.open_won AS open_won_count,
    cact.at || dact.at AS activity_at,
    {old}
FROM t
CROSS JOIN LATERAL (
    SELECT max(k.last_activity_at) AS at,
        array_agg(DISTINCT k.lifecycle_stage) FILTER (WHERE k.lifecycle_stage IS NOT NULL) AS stages,
        array_agg(k.contact_id) AS contact_ids
    FROM contact_companies cc
    JOIN contacts k ON k.org_id = $1 AND k.portal_id = cc.portal_id AND k.contact_id = cc.contact_id
    WHERE cc.org_id = $1 AND cc.portal_id = t.portal_id AND cc.company_id = t.company_id
) cagg
CROSS JOIN LATERAL (
    SELECT count(*) AS deal_count,
        avg(coalesce(d.close_probability, 0)) FILTER (WHERE d.status = 1) AS open_probability,
        sum(coalesce(d.amount_cents, 0)) FILTER (WHERE d.status IN (1, 2)) AS amount,
        count(*) FILTER (WHERE d.status IN (1, 2)) AS open_won,
        array_agg(d.deal_id) AS deal_ids
    FROM deals d
    WHERE d.org_id = $1 AND d.portal_id = t.portal_id AND d.deal_id IN (
        SELECT dco.deal_id FROM deal_companies dco
        WHERE dco.org_id = $1 AND dco.portal_id = t.portal_id AND dco.company_id = t.company_id
        UNION
        SELECT dc.deal_id FROM deal_contacts dc
        WHERE dc.org_id = $1 AND dc.portal_id = t.portal_id
          AND dc.contact_id = ANY(coalesce(cagg.contact_ids, '{}'::bigint[])))
) dl
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(a.occurred_at ORDER BY a.occurred_at), '{}') AS at
    FROM unnest(cagg.contact_ids) AS x(contact_id)
    JOIN activity_log a ON a.org_id = $1 AND a.portal_id = t.portal_id
      AND a.object_type = 1 AND a.object_id = x.contact_id
) cact
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(a.occurred_at ORDER BY a.occurred_at), '{}') AS at
    FROM unnest(dl.deal_ids) AS x(deal_id)
    JOIN activity_log a ON a.org_id = $1 AND a.portal_id = t.portal_id
      AND a.object_type = 3 AND a.object_id = x.deal_id
) dact
LEFT JOIN LATERAL (
    SELECT s.*, s.ctid FROM scores s WHERE s.org_id = $1 AND s.object_type = 2
      AND s.portal_id = t.portal_id AND s.object_id = t.company_id LIMIT 1
) s ON true
ORDER BY t.portal_id, t.company_id";

/// The same rows from the inputs stored with the current scores (`$1` org, `$2` limit,
/// `$3` object type): what a config change and its preview re-weigh.
const STORED: &str = "
SELECT s.portal_id, s.object_id, s.connection_id, s.display_name,
    CASE WHEN s.object_type = 1 THEN s.company_id END AS primary_company_id,
    s.input_last_activity_at AS last_activity_at, s.input_stages AS stages,
    s.input_deal_count AS deal_count, s.input_open_probability AS open_probability,
    s.input_amount_cents AS amount_cents, s.input_open_won_count AS open_won_count,
    s.input_activity_at AS activity_at,
    {old}
FROM scores s WHERE s.org_id = $1 AND s.object_type = $3 AND {filter}
ORDER BY s.portal_id, s.object_id LIMIT $2";

/// Reads the inputs of a batch of contacts (`kind` CONTACT) or companies (COMPANY) from
/// the projection.
pub async fn load(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    kind: i16,
    selection: &Selection,
) -> diesel::QueryResult<Vec<InputRow>> {
    let (template, id_column) = if kind == super::object_type::COMPANY {
        (COMPANIES, "c.company_id")
    } else {
        (CONTACTS, "c.contact_id")
    };
    let template = template.replace("{old}", OLD_COLUMNS);
    match selection {
        Selection::After { after, limit } => {
            let (portal, id) = after.unwrap_or((i64::MIN, i64::MIN));
            let sql = template.replace(
                "{filter}",
                &format!("(c.portal_id, {id_column}) > ($3, $4)"),
            );
            diesel::sql_query(sql)
                .bind::<SqlUuid, _>(org_id)
                .bind::<BigInt, _>(*limit)
                .bind::<BigInt, _>(portal)
                .bind::<BigInt, _>(id)
                .load(conn)
                .await
        }
        Selection::Keys(keys) => {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let (portals, ids): (Vec<i64>, Vec<i64>) = keys.iter().copied().unzip();
            let sql = template.replace(
                "{filter}",
                &format!(
                    "(c.portal_id, {id_column}) IN (SELECT * FROM unnest($3::bigint[], $4::bigint[]))"
                ),
            );
            let limit = i64::try_from(keys.len()).unwrap_or(i64::MAX);
            diesel::sql_query(sql)
                .bind::<SqlUuid, _>(org_id)
                .bind::<BigInt, _>(limit)
                .bind::<Array<BigInt>, _>(portals)
                .bind::<Array<BigInt>, _>(ids)
                .load(conn)
                .await
        }
    }
}

/// Reads the next `limit` contacts or companies after `after` from the inputs stored with
/// their current scores (the same rows [`load`] gives from the projection, as long as every
/// projection change rescored what it affected, which it does in its own transaction).
pub async fn load_stored(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    kind: i16,
    after: Option<(i64, i64)>,
    limit: i64,
    olds: Olds,
) -> diesel::QueryResult<Vec<InputRow>> {
    let (portal, id) = after.unwrap_or((i64::MIN, i64::MIN));
    let sql = STORED
        .replace(
            "{old}",
            match olds {
                Olds::All => STORED_OLD_COLUMNS,
                Olds::ScoreAndLevel => PREVIEW_OLD_COLUMNS,
            },
        )
        .replace("{filter}", "(s.portal_id, s.object_id) > ($4, $5)");
    diesel::sql_query(sql)
        .bind::<SqlUuid, _>(org_id)
        .bind::<BigInt, _>(limit)
        .bind::<Int2, _>(kind)
        .bind::<BigInt, _>(portal)
        .bind::<BigInt, _>(id)
        .load(conn)
        .await
}

/// The keys that split an org's contacts (`kind` CONTACT) or companies, in key order where
/// it reads them from, into up to `parts` about equal ranges: none when there are fewer
/// than two batches of them (not worth splitting), and never so many that a range holds
/// less than a batch. Any key splits correctly; the parts only have to be about even.
pub async fn split_keys(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    kind: i16,
    source: crate::engine::InputSource,
    batch_size: i64,
    parts: usize,
) -> diesel::QueryResult<Vec<(i64, i64)>> {
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = BigInt)]
        portal_id: i64,
        #[diesel(sql_type = BigInt)]
        object_id: i64,
    }
    let parts = i64::try_from(parts).unwrap_or(i64::MAX);
    if parts < 2 {
        return Ok(Vec::new());
    }
    let (table, id, filter) = match (source, kind) {
        (crate::engine::InputSource::Stored, _) => ("scores", "object_id", "object_type = $2"),
        (_, super::object_type::COMPANY) => ("companies", "company_id", "$2 = $2"),
        _ => ("contacts", "contact_id", "$2 = $2"),
    };
    // A large org: split a sample of the table's pages (1 %, or about 300 pages where that
    // is more), about 20 ms where counting and skipping a million index entries took most
    // of a second. The sample only has to split about evenly, which 1 % of a table of a few
    // thousand pages did not (a 60,000-row org split 68/32 once its pages were kept half
    // free).
    #[derive(QueryableByName)]
    struct Percent {
        #[diesel(sql_type = diesel::sql_types::Double)]
        percent: f64,
    }
    let percent: Percent = diesel::sql_query(format!(
        "SELECT CASE WHEN relpages = 0 THEN 1 \
            ELSE least(100, greatest(1, 30000.0 / relpages)) END::float8 AS percent \
         FROM pg_class WHERE oid = '{table}'::regclass"
    ))
    .get_result(conn)
    .await?;
    #[derive(QueryableByName)]
    struct Sampled {
        #[diesel(sql_type = BigInt)]
        portal_id: i64,
        #[diesel(sql_type = BigInt)]
        object_id: i64,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    // The split points: the sampled key at each position where position times `parts`,
    // divided by the sample's size, steps up (each ends a part, see `KeyRange::until`).
    let sampled: Vec<Sampled> = diesel::sql_query(format!(
        "SELECT portal_id, object_id, n FROM ( \
            SELECT portal_id, {id} AS object_id, \
                row_number() OVER (ORDER BY portal_id, {id}) - 1 AS rn, count(*) OVER () AS n \
            FROM {table} TABLESAMPLE SYSTEM ($3) REPEATABLE (0) WHERE org_id = $1 AND {filter}) x \
         WHERE rn > 0 AND rn * $4 / n > (rn - 1) * $4 / n \
         ORDER BY rn"
    ))
    .bind::<SqlUuid, _>(org_id)
    .bind::<Int2, _>(kind)
    .bind::<diesel::sql_types::Double, _>(percent.percent)
    .bind::<BigInt, _>(parts)
    .load(conn)
    .await?;
    // A sample of rows this many: about 100 / percent times as many in the org.
    if let Some(n) = <[Sampled]>::first(&sampled).map(|s| s.n)
        && n >= SAMPLED_ENOUGH
        && sampled.len() == usize::try_from(parts - 1).unwrap_or(0)
        && n as f64 * 100.0 / percent.percent >= (parts * batch_size) as f64
    {
        return Ok(sampled.iter().map(|s| (s.portal_id, s.object_id)).collect());
    }
    // A small one (or a small part of a large table): count and skip exactly.
    let count: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM {table} WHERE org_id = $1 AND {filter}"
    ))
    .bind::<SqlUuid, _>(org_id)
    .bind::<Int2, _>(kind)
    .get_result(conn)
    .await?;
    let fit = (count.n / batch_size.max(1)).min(parts);
    let mut keys = Vec::new();
    for part in 1..fit {
        let key: Option<Key> = diesel::sql_query(format!(
            "SELECT portal_id, {id} AS object_id FROM {table} WHERE org_id = $1 AND {filter} \
             ORDER BY portal_id, {id} OFFSET $3 LIMIT 1"
        ))
        .bind::<SqlUuid, _>(org_id)
        .bind::<Int2, _>(kind)
        .bind::<BigInt, _>(count.n * part / fit)
        .get_result(conn)
        .await
        .optional()?;
        keys.extend(key.map(|k| (k.portal_id, k.object_id)));
    }
    Ok(keys)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Sampled rows enough to take the middle key from the sample (a 1 % sample of pages holds
/// this many rows of the org's kind only when it has many thousands).
const SAMPLED_ENOUGH: i64 = 100;

/// Which of the stored row's own values a read of stored inputs returns as `old_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Olds {
    /// All of them: what a rescore compares to decide what to write.
    All,
    /// Only the score and risk level (the rest `None`): what a preview compares.
    ScoreAndLevel,
}

/// Whether every score of the org carries its inputs (rows written before they were
/// stored do not; such an org is rescored from the projection once).
pub async fn inputs_stored(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
) -> diesel::QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Missing {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        missing: bool,
    }
    let row: Missing = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM scores WHERE org_id = $1 \
            AND (input_deal_count IS NULL OR input_open_won_count IS NULL)) AS missing",
    )
    .bind::<SqlUuid, _>(org_id)
    .get_result(conn)
    .await?;
    Ok(!row.missing)
}

#[derive(QueryableByName)]
struct Means {
    #[diesel(sql_type = Nullable<Double>)]
    contact_cents: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    company_cents: Option<f64>,
}

/// The org's mean open-and-won deal amount per contact and per company with such deals
/// (a company's deals as in the module docs), from the projection.
pub async fn compute_means(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
) -> diesel::QueryResult<OrgMeans> {
    let row: Means = diesel::sql_query(
        "WITH open_won AS (
            SELECT portal_id, deal_id, coalesce(amount_cents, 0) AS amount FROM deals
            WHERE org_id = $1 AND status IN (1, 2)
        ), per_contact AS (
            SELECT dc.portal_id, dc.contact_id, sum(ow.amount) AS amount
            FROM deal_contacts dc
            JOIN open_won ow ON ow.portal_id = dc.portal_id AND ow.deal_id = dc.deal_id
            JOIN contacts k ON k.org_id = $1 AND k.portal_id = dc.portal_id AND k.contact_id = dc.contact_id
            WHERE dc.org_id = $1 GROUP BY 1, 2
        ), company_deals AS (
            SELECT DISTINCT portal_id, company_id, deal_id FROM (
                SELECT portal_id, company_id, deal_id FROM deal_companies WHERE org_id = $1
                UNION ALL
                SELECT cc.portal_id, cc.company_id, dc.deal_id FROM contact_companies cc
                JOIN contacts k ON k.org_id = $1 AND k.portal_id = cc.portal_id
                    AND k.contact_id = cc.contact_id
                JOIN deal_contacts dc ON dc.org_id = $1 AND dc.portal_id = cc.portal_id
                    AND dc.contact_id = cc.contact_id
                WHERE cc.org_id = $1
            ) x
        ), per_company AS (
            SELECT cd.portal_id, cd.company_id, sum(ow.amount) AS amount
            FROM company_deals cd
            JOIN open_won ow ON ow.portal_id = cd.portal_id AND ow.deal_id = cd.deal_id
            JOIN companies co ON co.org_id = $1 AND co.portal_id = cd.portal_id AND co.company_id = cd.company_id
            GROUP BY 1, 2
        )
        SELECT (SELECT avg(amount)::float8 FROM per_contact) AS contact_cents,
               (SELECT avg(amount)::float8 FROM per_company) AS company_cents",
    )
    .bind::<SqlUuid, _>(org_id)
    .get_result(conn)
    .await?;
    Ok(OrgMeans {
        contact_cents: row.contact_cents,
        company_cents: row.company_cents,
    })
}

/// The same means from the inputs stored with the org's scores: one pass over its score
/// rows instead of the projection's joins. Equal to [`compute_means`] whenever the stored
/// inputs are (see [`load_stored`]); for an org whose every score carries its inputs
/// ([`inputs_stored`]).
pub async fn stored_input_means(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
) -> diesel::QueryResult<OrgMeans> {
    let row: Means = diesel::sql_query(
        "SELECT avg(input_amount_cents) FILTER (WHERE object_type = 1)::float8 AS contact_cents, \
            avg(input_amount_cents) FILTER (WHERE object_type = 2)::float8 AS company_cents \
         FROM scores WHERE org_id = $1 AND input_open_won_count > 0",
    )
    .bind::<SqlUuid, _>(org_id)
    .get_result(conn)
    .await?;
    Ok(OrgMeans {
        contact_cents: row.contact_cents,
        company_cents: row.company_cents,
    })
}

/// Every org with a projection row or a score, for the scheduler's first pass.
pub async fn known_orgs(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct Org {
        #[diesel(sql_type = SqlUuid)]
        org_id: Uuid,
    }
    let rows: Vec<Org> = diesel::sql_query("SELECT org_id FROM org_state")
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.org_id).collect())
}
