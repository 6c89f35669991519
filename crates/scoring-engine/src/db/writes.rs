//! Set-based writes of a batch of computed scores: the current rows, one history row per
//! change and alerts, each batch in one statement per table (their outbox entries go
//! through `platform::outbox::{enqueue_all, enqueue_bundle}`).

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::QueryableByName;
use diesel::sql_types::Uuid as SqlUuid;
use diesel::sql_types::{Array, BigInt, Double, Int2, Int4, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::model::FACTOR_NAMES;

/// A computed score ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// hubscore's id of the scored customer.
    pub score_id: Uuid,
    /// The portal.
    pub portal_id: i64,
    /// The connection.
    pub connection_id: Uuid,
    /// CONTACT or COMPANY.
    pub object_type: i16,
    /// The contact or company id.
    pub object_id: i64,
    /// The contact id (0 for a company).
    pub contact_id: i64,
    /// The (primary) company id.
    pub company_id: Option<i64>,
    /// For lists.
    pub display_name: String,
    /// 0-100 or N/A.
    pub score: Option<i16>,
    /// contracts' `RiskLevel`.
    pub risk_level: i16,
    /// Raw inputs.
    pub recency_days: Option<f64>,
    /// Mean open-deal probability.
    pub deal_probability: Option<f64>,
    /// Lifecycle stage.
    pub lifecycle_stage: Option<String>,
    /// Updates within the window.
    pub update_count: i32,
    /// Open and won amount (absent for N/A).
    pub deal_amount_cents: Option<i64>,
    /// Normalised factor values (empty for N/A).
    pub factor_values: Vec<f64>,
    /// Contributions (empty for N/A).
    pub contributions: Vec<f64>,
    /// The raw inputs, stored for re-weighing (see `inputs::StoredInputs`).
    pub inputs: RawInputs,
    /// Where the stored row was read, in this transaction (`ctid`), if it was.
    pub row_tid: Option<String>,
}

/// A score's raw inputs as stored (`scores.input_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct RawInputs {
    /// Latest sales activity.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Deals in any status.
    pub deal_count: i64,
    /// Mean close probability of open deals.
    pub open_probability: Option<f64>,
    /// Open and won amount.
    pub amount_cents: i64,
    /// Open and won deals.
    pub open_won_count: i64,
    /// A contact's stage, or its contacts' stages for a company.
    pub stages: Option<Vec<String>>,
    /// Every update time (contact and deals; contacts and deals for a company).
    pub activity_at: Vec<DateTime<Utc>>,
}

/// Every row's factor array (five values, or none for N/A) as five binary `float8[]`
/// parameters, the i-th holding each row's i-th factor (NULL for N/A). Formatting the
/// arrays as text literals for the server to parse back cost more CPU than the rest of a
/// whole-org rescore's writes; [`factor_array`] puts a row's five back together.
fn factor_columns<'a>(arrays: impl Iterator<Item = &'a [f64]>) -> [Vec<Option<f64>>; 5] {
    let mut columns: [Vec<Option<f64>>; 5] = Default::default();
    for values in arrays {
        debug_assert!(values.is_empty() || values.len() == FACTOR_NAMES.len());
        for (i, column) in columns.iter_mut().enumerate() {
            column.push(values.get(i).copied());
        }
    }
    columns
}

/// The SQL that rebuilds a row's factor array from the five columns `{prefix}0`..`{prefix}4`
/// of [`factor_columns`]: empty where they are NULL (N/A).
fn factor_array(prefix: &str) -> String {
    let items: Vec<String> = (0..FACTOR_NAMES.len())
        .map(|i| format!("u.{prefix}{i}"))
        .collect();
    format!(
        "CASE WHEN u.{prefix}0 IS NULL THEN '{{}}'::float8[] ELSE ARRAY[{}] END",
        items.join(", ")
    )
}

/// The `unnest` parameter list and column names of [`factor_columns`] from parameter
/// `$first` on.
fn factor_params(prefix: &str, first: usize) -> (String, String) {
    let params: Vec<String> = (0..FACTOR_NAMES.len())
        .map(|i| format!("${}::float8[]", first + i))
        .collect();
    let names: Vec<String> = (0..FACTOR_NAMES.len())
        .map(|i| format!("{prefix}{i}"))
        .collect();
    (params.join(", "), names.join(", "))
}

/// A `timestamptz[]` literal (microseconds, as stored).
fn pg_timestamps(values: &[DateTime<Utc>]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
        .collect();
    format!("{{{}}}", items.join(","))
}

/// A `text[]` literal, every element quoted.
fn pg_texts(values: &[String]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|t| format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", items.join(","))
}

/// Binds the five columns of [`factor_columns`] to `query`, in order.
macro_rules! bind_factor_columns {
    ($query:expr, $columns:expr) => {{
        let [c0, c1, c2, c3, c4] = $columns;
        $query
            .bind::<Array<Nullable<Double>>, _>(c0)
            .bind::<Array<Nullable<Double>>, _>(c1)
            .bind::<Array<Nullable<Double>>, _>(c2)
            .bind::<Array<Nullable<Double>>, _>(c3)
            .bind::<Array<Nullable<Double>>, _>(c4)
    }};
}

/// Upserts the current score rows; a row computed earlier than the stored one is not
/// written (the stored one is newer).
pub async fn upsert_scores(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    rows: &[&ScoreRow],
    weights: &[f64],
    config_version: i64,
    computed_at: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let weights = if rows.iter().all(|r| r.factor_values.is_empty()) {
        Vec::new()
    } else {
        weights.to_vec()
    };
    let value_columns = factor_columns(rows.iter().map(|r| r.factor_values.as_slice()));
    let contribution_columns = factor_columns(rows.iter().map(|r| r.contributions.as_slice()));
    let (values, value_names) = factor_params("fv", 27);
    let (contributions, contribution_names) = factor_params("fc", 32);
    let query = diesel::sql_query(format!(
        "INSERT INTO scores (score_id, org_id, portal_id, connection_id, object_type, object_id, \
            contact_id, company_id, display_name, score, risk_level, recency_days, deal_probability, \
            lifecycle_stage, update_count, deal_amount_cents, factor_values, weights, contributions, \
            config_version, computed_at, input_last_activity_at, input_deal_count, \
            input_open_probability, input_amount_cents, input_stages, input_activity_at, \
            input_open_won_count) \
         SELECT u.score_id, $1, u.portal_id, u.connection_id, u.object_type, u.object_id, u.contact_id, \
            u.company_id, u.display_name, u.score, u.risk_level, u.recency_days, u.deal_probability, \
            u.lifecycle_stage, u.update_count, u.deal_amount_cents, {value_array}, \
            CASE WHEN u.fv0 IS NULL THEN '{{}}'::float8[] ELSE $17 END, \
            {contribution_array}, $18, $19, u.last_activity_at, u.deal_count, \
            u.open_probability, u.amount_cents, u.stages::text[], u.activity_at::timestamptz[], \
            u.open_won_count \
         FROM unnest($2::uuid[], $3::bigint[], $4::uuid[], $5::int2[], $6::bigint[], $7::bigint[], \
            $8::bigint[], $9::text[], $10::int2[], $11::int2[], $12::float8[], $13::float8[], \
            $14::text[], $15::int4[], $16::bigint[], \
            $20::timestamptz[], $21::bigint[], $22::float8[], $23::bigint[], $24::text[], $25::text[], \
            $26::bigint[], {values}, {contributions}) \
            AS u(score_id, portal_id, connection_id, object_type, object_id, contact_id, company_id, \
                 display_name, score, risk_level, recency_days, deal_probability, lifecycle_stage, \
                 update_count, deal_amount_cents, last_activity_at, \
                 deal_count, open_probability, amount_cents, stages, activity_at, open_won_count, \
                 {value_names}, {contribution_names}) \
         ON CONFLICT (score_id) DO UPDATE SET connection_id = excluded.connection_id, \
            contact_id = excluded.contact_id, company_id = excluded.company_id, \
            display_name = excluded.display_name, score = excluded.score, \
            risk_level = excluded.risk_level, recency_days = excluded.recency_days, \
            deal_probability = excluded.deal_probability, lifecycle_stage = excluded.lifecycle_stage, \
            update_count = excluded.update_count, deal_amount_cents = excluded.deal_amount_cents, \
            factor_values = excluded.factor_values, weights = excluded.weights, \
            contributions = excluded.contributions, config_version = excluded.config_version, \
            computed_at = excluded.computed_at, \
            input_last_activity_at = excluded.input_last_activity_at, \
            input_deal_count = excluded.input_deal_count, \
            input_open_probability = excluded.input_open_probability, \
            input_amount_cents = excluded.input_amount_cents, input_stages = excluded.input_stages, \
            input_activity_at = excluded.input_activity_at, \
            input_open_won_count = excluded.input_open_won_count \
         WHERE scores.computed_at <= excluded.computed_at",
        value_array = factor_array("fv"),
        contribution_array = factor_array("fc"),
    ))
    .bind::<SqlUuid, _>(org_id)
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.score_id).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.portal_id).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.connection_id).collect::<Vec<_>>())
    .bind::<Array<Int2>, _>(rows.iter().map(|r| r.object_type).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.object_id).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.contact_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.company_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.display_name.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Int2>>, _>(rows.iter().map(|r| r.score).collect::<Vec<_>>())
    .bind::<Array<Int2>, _>(rows.iter().map(|r| r.risk_level).collect::<Vec<_>>())
    .bind::<Array<Nullable<Double>>, _>(rows.iter().map(|r| r.recency_days).collect::<Vec<_>>())
    .bind::<Array<Nullable<Double>>, _>(rows.iter().map(|r| r.deal_probability).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.lifecycle_stage.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Int4>, _>(rows.iter().map(|r| r.update_count).collect::<Vec<_>>())
    .bind::<Array<Nullable<BigInt>>, _>(
        rows.iter().map(|r| r.deal_amount_cents).collect::<Vec<_>>(),
    )
    .bind::<Array<Double>, _>(weights)
    .bind::<BigInt, _>(config_version)
    .bind::<Timestamptz, _>(computed_at)
    .bind::<Array<Nullable<Timestamptz>>, _>(
        rows.iter()
            .map(|r| r.inputs.last_activity_at)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.inputs.deal_count).collect::<Vec<_>>())
    .bind::<Array<Nullable<Double>>, _>(
        rows.iter()
            .map(|r| r.inputs.open_probability)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.inputs.amount_cents).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.inputs.stages.as_deref().map(pg_texts))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(
        rows.iter()
            .map(|r| pg_timestamps(&r.inputs.activity_at))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(
        rows.iter()
            .map(|r| r.inputs.open_won_count)
            .collect::<Vec<_>>(),
    );
    let query = bind_factor_columns!(query, value_columns);
    bind_factor_columns!(query, contribution_columns)
        .execute(conn)
        .await
}

/// Writes only the score columns of existing rows (a config change re-weighing the inputs
/// stored in them: the inputs, name and ids stay as they are); a row computed earlier than
/// the stored one is not written.
///
/// Rows read in this transaction are rewritten where they were read (`ctid`): finding each
/// by its random key again cost more than rewriting it. Nothing else writes the org's
/// scores while the caller holds the org lock, so they are still there; any row that is
/// not (or that a later score kept) sends the batch the way of the key.
pub async fn update_score_columns(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    rows: &[&ScoreRow],
    weights: &[f64],
    config_version: i64,
    computed_at: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    // By place first, where every row has one; then, if any was not there, by key.
    let mut rewrite = async |tids: Option<Vec<&str>>| {
        rewrite_score_columns(
            conn,
            org_id,
            rows,
            weights,
            config_version,
            computed_at,
            tids,
        )
        .await
    };
    let tids: Option<Vec<&str>> = rows.iter().map(|r| r.row_tid.as_deref()).collect();
    if tids.is_some() {
        let written = rewrite(tids).await?;
        if written == rows.len() {
            return Ok(written);
        }
    }
    rewrite(None).await
}

/// [`update_score_columns`]' statement, each row found by `tids` (its `ctid` and key) or,
/// without, by key alone.
async fn rewrite_score_columns(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    rows: &[&ScoreRow],
    weights: &[f64],
    config_version: i64,
    computed_at: DateTime<Utc>,
    tids: Option<Vec<&str>>,
) -> diesel::QueryResult<usize> {
    let value_columns = factor_columns(rows.iter().map(|r| r.factor_values.as_slice()));
    let contribution_columns = factor_columns(rows.iter().map(|r| r.contributions.as_slice()));
    let (values, value_names) = factor_params("fv", 13);
    let (contributions, contribution_names) = factor_params("fc", 18);
    let (tid_param, tid_name, tid_match) = if tids.is_some() {
        (
            ", $23::text[]::tid[]",
            ", row_tid",
            "s.ctid = u.row_tid AND ",
        )
    } else {
        ("", "", "")
    };
    let query = diesel::sql_query(format!(
        "UPDATE scores s SET score = u.score, risk_level = u.risk_level, \
            recency_days = u.recency_days, deal_probability = u.deal_probability, \
            lifecycle_stage = u.lifecycle_stage, update_count = u.update_count, \
            deal_amount_cents = u.deal_amount_cents, factor_values = {value_array}, \
            weights = CASE WHEN u.fv0 IS NULL THEN '{{}}'::float8[] ELSE $10 END, \
            contributions = {contribution_array}, config_version = $11, computed_at = $12 \
         FROM unnest($2::uuid[], $3::int2[], $4::int2[], $5::float8[], $6::float8[], \
            $7::text[], $8::int4[], $9::bigint[], {values}, {contributions}{tid_param}) \
            AS u(score_id, score, risk_level, recency_days, deal_probability, lifecycle_stage, \
                 update_count, deal_amount_cents, {value_names}, {contribution_names}{tid_name}) \
         WHERE {tid_match}s.score_id = u.score_id AND s.org_id = $1 AND s.computed_at <= $12",
        value_array = factor_array("fv"),
        contribution_array = factor_array("fc"),
    ))
    .into_boxed::<diesel::pg::Pg>()
    .bind::<SqlUuid, _>(org_id)
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.score_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<Int2>>, _>(rows.iter().map(|r| r.score).collect::<Vec<_>>())
    .bind::<Array<Int2>, _>(rows.iter().map(|r| r.risk_level).collect::<Vec<_>>())
    .bind::<Array<Nullable<Double>>, _>(rows.iter().map(|r| r.recency_days).collect::<Vec<_>>())
    .bind::<Array<Nullable<Double>>, _>(rows.iter().map(|r| r.deal_probability).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.lifecycle_stage.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Int4>, _>(rows.iter().map(|r| r.update_count).collect::<Vec<_>>())
    .bind::<Array<Nullable<BigInt>>, _>(
        rows.iter().map(|r| r.deal_amount_cents).collect::<Vec<_>>(),
    )
    .bind::<Array<Double>, _>(weights.to_vec())
    .bind::<BigInt, _>(config_version)
    .bind::<Timestamptz, _>(computed_at);
    let query = bind_factor_columns!(query, value_columns);
    let query = bind_factor_columns!(query, contribution_columns);
    match tids {
        Some(tids) => query.bind::<Array<Text>, _>(tids).execute(conn).await,
        None => query.execute(conn).await,
    }
}

/// Appends one history row per changed score; returns the new history row ids of the
/// scores in `wanted` (returning all of a million-row rescore's cost a second of its
/// time, and only alerts refer to them). `wanted` is joined, not searched: `= ANY` of a
/// batch's few hundred alerting ids, row by row over its 10,000 rows, took 24 ms a batch.
pub async fn insert_history(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    rows: &[&ScoreRow],
    wanted: &[Uuid],
    config_version: i64,
    computed_at: DateTime<Utc>,
) -> diesel::QueryResult<HashMap<Uuid, i64>> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    #[derive(QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = SqlUuid)]
        score_id: Uuid,
    }
    let contribution_columns = factor_columns(rows.iter().map(|r| r.contributions.as_slice()));
    let (contributions, contribution_names) = factor_params("fc", 7);
    let query = diesel::sql_query(format!(
        "WITH inserted AS ( \
            INSERT INTO score_history (score_id, org_id, score, risk_level, contributions, \
                config_version, computed_at, object_type, portal_id, object_id) \
            SELECT u.score_id, $1, u.score, u.risk_level, {contribution_array}, $5, $6, \
                u.object_type, u.portal_id, u.object_id \
            FROM unnest($2::uuid[], $3::int2[], $4::int2[], {contributions}, $12::int2[], \
                $13::bigint[], $14::bigint[]) \
                AS u(score_id, score, risk_level, {contribution_names}, object_type, portal_id, \
                    object_id) \
            RETURNING id, score_id) \
         SELECT i.id, i.score_id FROM inserted i \
         JOIN unnest($15::uuid[]) AS w(score_id) ON w.score_id = i.score_id",
        contribution_array = factor_array("fc"),
    ))
    .bind::<SqlUuid, _>(org_id)
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.score_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<Int2>>, _>(rows.iter().map(|r| r.score).collect::<Vec<_>>())
    .bind::<Array<Int2>, _>(rows.iter().map(|r| r.risk_level).collect::<Vec<_>>())
    .bind::<BigInt, _>(config_version)
    .bind::<Timestamptz, _>(computed_at);
    let inserted: Vec<Inserted> = bind_factor_columns!(query, contribution_columns)
        .bind::<Array<Int2>, _>(rows.iter().map(|r| r.object_type).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.portal_id).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.object_id).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(wanted)
        .load(conn)
        .await?;
    Ok(inserted.into_iter().map(|r| (r.score_id, r.id)).collect())
}

/// The highest score each of `candidates` had within the drop window: history rows
/// computed after `window_start`, the row in force at `window_start`, but nothing before
/// the history row of the score's last drop alert (so one drop alerts once).
pub async fn drop_references(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    candidates: &[&ScoreRow],
    window_start: DateTime<Utc>,
) -> diesel::QueryResult<HashMap<Uuid, i16>> {
    if candidates.is_empty() {
        return Ok(HashMap::new());
    }
    #[derive(QueryableByName)]
    struct Reference {
        #[diesel(sql_type = SqlUuid)]
        score_id: Uuid,
        #[diesel(sql_type = Nullable<Int2>)]
        reference: Option<i16>,
    }
    let rows: Vec<Reference> = diesel::sql_query(
        "SELECT s.score_id, max(h.score) AS reference \
         FROM unnest($2::uuid[], $4::int2[], $5::bigint[], $6::bigint[]) \
            AS s(score_id, object_type, portal_id, object_id) \
         CROSS JOIN LATERAL ( \
            SELECT coalesce(max(a.history_id), 0) AS since FROM alerts a \
            WHERE a.org_id = $1 AND a.score_id = s.score_id AND 2 = ANY(a.reasons)) la \
         CROSS JOIN LATERAL ( \
            SELECT coalesce(( \
                SELECT h0.id FROM score_history h0 WHERE h0.org_id = $1 \
                AND h0.object_type = s.object_type AND h0.portal_id = s.portal_id \
                AND h0.object_id = s.object_id AND h0.computed_at <= $3 \
                ORDER BY h0.computed_at DESC, h0.id DESC LIMIT 1), 0) AS start_id) ws \
         JOIN score_history h ON h.org_id = $1 AND h.object_type = s.object_type \
            AND h.portal_id = s.portal_id AND h.object_id = s.object_id \
            AND h.id >= la.since AND (h.computed_at > $3 OR h.id = ws.start_id) \
         GROUP BY s.score_id",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<Array<SqlUuid>, _>(candidates.iter().map(|r| r.score_id).collect::<Vec<_>>())
    .bind::<Timestamptz, _>(window_start)
    .bind::<Array<Int2>, _>(candidates.iter().map(|r| r.object_type).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(candidates.iter().map(|r| r.portal_id).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(candidates.iter().map(|r| r.object_id).collect::<Vec<_>>())
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.reference.map(|v| (r.score_id, v)))
        .collect())
}

/// An alert to record.
#[derive(Debug, Clone)]
pub struct AlertRow {
    /// Its id (also in the event).
    pub alert_id: Uuid,
    /// The score it is about.
    pub score_id: Uuid,
    /// The history row of the score that raised it.
    pub history_id: i64,
    /// contracts' `ScoreAlertReason` values.
    pub reasons: Vec<i16>,
    /// Before.
    pub old_score: Option<i16>,
    /// Now.
    pub new_score: i16,
    /// The window's highest score, for drops.
    pub reference_score: Option<i16>,
}

/// Records alerts (one statement per batch).
pub async fn insert_alerts(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    alerts: &[AlertRow],
    created_at: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    let reasons = |a: &AlertRow| {
        let items: Vec<String> = a.reasons.iter().map(i16::to_string).collect();
        format!("{{{}}}", items.join(","))
    };
    diesel::sql_query(
        "INSERT INTO alerts (alert_id, score_id, org_id, history_id, reasons, old_score, \
            new_score, reference_score, created_at) \
         SELECT u.alert_id, u.score_id, $1, u.history_id, u.reasons::int2[], u.old_score, \
            u.new_score, u.reference_score, $9 \
         FROM unnest($2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::int2[], $7::int2[], \
            $8::int2[]) AS u(alert_id, score_id, history_id, reasons, old_score, new_score, \
            reference_score)",
    )
    .bind::<SqlUuid, _>(org_id)
    .bind::<Array<SqlUuid>, _>(alerts.iter().map(|a| a.alert_id).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(alerts.iter().map(|a| a.score_id).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(alerts.iter().map(|a| a.history_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(alerts.iter().map(reasons).collect::<Vec<_>>())
    .bind::<Array<Nullable<Int2>>, _>(alerts.iter().map(|a| a.old_score).collect::<Vec<_>>())
    .bind::<Array<Int2>, _>(alerts.iter().map(|a| a.new_score).collect::<Vec<_>>())
    .bind::<Array<Nullable<Int2>>, _>(alerts.iter().map(|a| a.reference_score).collect::<Vec<_>>())
    .bind::<Timestamptz, _>(created_at)
    .execute(conn)
    .await?;
    Ok(())
}
