//! `crm.changed`: records flagged `publish_pending` (in the transaction that changed them)
//! go out through the outbox with their association ids, in the transaction that clears
//! the flag. A full sync publishes once its associations are in, so every record goes
//! out once, complete; webhook batches publish in the transaction that applied them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use contracts::time::to_timestamp;
use contracts::v1::{self, crm_changed::Cause};
use diesel::sql_types::{
    Array, BigInt, Bool, Double, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel::{QueryResult, QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use platform::amqp::MessageMeta;

use crate::db::connections::Connection;
use crate::db::mirror::RecordType;

/// What a batch of `crm.changed` messages is attributed to, and its trace.
#[derive(Debug, Clone)]
pub struct PublishContext {
    /// The run or webhook batch that caused the change.
    pub cause: Cause,
    /// The trace id carried on.
    pub correlation_id: String,
}

#[derive(QueryableByName)]
struct ContactRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Jsonb)]
    custom_attributes: serde_json::Value,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    company_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    lead_status: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_activity_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first_seen_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    lifecycle_stage: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    owner_id: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    source_updated_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    live: bool,
    #[diesel(sql_type = Bool)]
    published_live: bool,
    #[diesel(sql_type = Array<BigInt>)]
    company_ids: Vec<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    primary_company_id: Option<i64>,
    #[diesel(sql_type = Array<BigInt>)]
    deal_ids: Vec<i64>,
}

#[derive(QueryableByName)]
struct CompanyRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Jsonb)]
    custom_attributes: serde_json::Value,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    domain: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    industry: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    employee_count: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    annual_revenue_cents: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_activity_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    source_updated_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    live: bool,
    #[diesel(sql_type = Bool)]
    published_live: bool,
    #[diesel(sql_type = Array<BigInt>)]
    contact_ids: Vec<i64>,
    #[diesel(sql_type = Array<BigInt>)]
    deal_ids: Vec<i64>,
}

#[derive(QueryableByName)]
struct DealRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Jsonb)]
    custom_attributes: serde_json::Value,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pipeline_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    stage_id: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    amount_cents: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    closed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Double>)]
    close_probability: Option<f64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    owner_id: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    source_updated_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    live: bool,
    #[diesel(sql_type = Bool)]
    published_live: bool,
    #[diesel(sql_type = Array<BigInt>)]
    contact_ids: Vec<i64>,
    #[diesel(sql_type = Array<BigInt>)]
    company_ids: Vec<i64>,
}

#[derive(QueryableByName)]
struct PipelineRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    label: String,
    #[diesel(sql_type = Integer)]
    display_order: i32,
    #[diesel(sql_type = Bool)]
    archived: bool,
    #[diesel(sql_type = Jsonb)]
    stages: serde_json::Value,
}

#[derive(QueryableByName)]
struct OwnerRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    first_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_name: Option<String>,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    user_id: Option<i64>,
    #[diesel(sql_type = Bool)]
    archived: bool,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    source_updated_at: Option<DateTime<Utc>>,
}

/// Stored custom attributes (domain's JSON form) as the contract's values.
fn attributes(stored: serde_json::Value) -> HashMap<String, v1::AttributeValue> {
    use domain::custom::AttributeValue as Domain;
    use v1::attribute_value::Kind;
    let values: std::collections::BTreeMap<String, Domain> =
        serde_json::from_value(stored).unwrap_or_default();
    values
        .into_iter()
        .map(|(name, value)| {
            let kind = match value {
                Domain::Text(text) => Kind::StringValue(text),
                Domain::Number(n) => {
                    let whole = (n.scale() == 0).then(|| i64::try_from(n.mantissa()).ok());
                    match whole.flatten() {
                        Some(i) => Kind::IntValue(i),
                        None => Kind::DoubleValue(n.to_string().parse().unwrap_or(0.0)),
                    }
                }
                Domain::Date(date) => {
                    Kind::TimestampValue(to_timestamp(domain::parse::midnight_utc(date)))
                }
                Domain::Datetime(at) => Kind::TimestampValue(to_timestamp(at)),
                Domain::Bool(b) => Kind::BoolValue(b),
                Domain::Options(options) => Kind::StringValue(options.join(";")),
            };
            (name, v1::AttributeValue { kind: Some(kind) })
        })
        .collect()
}

fn ts(at: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    at.map(to_timestamp)
}

const LIVE: &str = "(t.skip_reason IS NULL AND NOT t.archived AND t.merged_into IS NULL)";

fn pending_filter(ids: Option<&[i64]>) -> &'static str {
    if ids.is_some() {
        "t.connection_id = $1 AND t.publish_pending AND t.id = ANY($3)"
    } else {
        "t.connection_id = $1 AND t.publish_pending"
    }
}

fn envelope(
    connection: &Connection,
    context: &PublishContext,
    record_type: v1::ObjectType,
) -> v1::CrmChanged {
    v1::CrmChanged {
        org_id: connection.org_id.to_string(),
        connection_id: connection.connection_id.to_string(),
        portal_id: connection.portal_id,
        object_type: record_type as i32,
        cause: Some(context.cause.clone()),
        committed_at: Some(to_timestamp(Utc::now())),
        ..Default::default()
    }
}

async fn enqueue(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    context: &PublishContext,
    message: &v1::CrmChanged,
) -> QueryResult<()> {
    let meta = MessageMeta::new(context.correlation_id.clone(), Some(connection.org_id));
    platform::outbox::enqueue_event(conn, message, meta)
        .await
        .map(drop)
}

async fn clear_pending(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    record_type: RecordType,
    ids: &[i64],
    live: &[bool],
) -> QueryResult<()> {
    sql_query(format!(
        "UPDATE {} AS t SET publish_pending = false, published_live = u.live
         FROM UNNEST($2::bigint[], $3::boolean[]) AS u(id, live)
         WHERE t.connection_id = $1 AND t.id = u.id",
        record_type.table()
    ))
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Bool>, _>(live)
    .execute(conn)
    .await
    .map(drop)
}

/// Publishes up to `limit` pending records of `record_type` (only those among `ids` when
/// given) as one `crm.changed` message, plus `merges`. Returns how many records it took;
/// call again until 0 to drain. Rows another transaction is publishing are skipped.
pub async fn publish_pending(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    record_type: RecordType,
    ids: Option<&[i64]>,
    limit: i64,
    merges: Vec<v1::Merge>,
    context: &PublishContext,
) -> QueryResult<usize> {
    let mut message = envelope(connection, context, record_type.proto());
    message.merges = merges;
    let filter = pending_filter(ids);
    // An associated record counts unless it is archived, asked as a lookup by its key. As
    // `NOT EXISTS (... AND x.archived)`, the planner made it an anti join that, while a
    // connection's rows were newer than the table's statistics, scanned the connection's
    // records once per association: about 1 ms a published record during a first sync.
    let (taken, live): (Vec<i64>, Vec<bool>) = match record_type {
        RecordType::Contact => {
            let rows: Vec<ContactRow> = bind_ids(
                sql_query(format!(
                    "SELECT t.id, t.custom_attributes, t.email, t.name, t.company_name, t.lead_status, t.last_activity_at,
                       t.first_seen_at, t.lifecycle_stage, t.owner_id, t.source_updated_at,
                       {LIVE} AS live, t.published_live,
                       ARRAY(SELECT e.company_id FROM contact_companies e
                             WHERE e.connection_id = t.connection_id AND e.contact_id = t.id AND NOT coalesce((SELECT x.archived FROM companies x WHERE x.connection_id = e.connection_id AND x.id = e.company_id), false) ORDER BY 1) AS company_ids,
                       (SELECT e.company_id FROM contact_companies e WHERE e.connection_id = t.connection_id
                          AND e.contact_id = t.id AND e.is_primary AND NOT coalesce((SELECT x.archived FROM companies x WHERE x.connection_id = e.connection_id AND x.id = e.company_id), false) ORDER BY 1 LIMIT 1) AS primary_company_id,
                       ARRAY(SELECT e.deal_id FROM deal_contacts e
                             WHERE e.connection_id = t.connection_id AND e.contact_id = t.id AND NOT coalesce((SELECT x.archived FROM deals x WHERE x.connection_id = e.connection_id AND x.id = e.deal_id), false) ORDER BY 1) AS deal_ids
                     FROM contacts t WHERE {filter}
                     ORDER BY t.id LIMIT $2 FOR UPDATE OF t SKIP LOCKED"
                )),
                connection,
                limit,
                ids,
            )
            .load(conn)
            .await?;
            let mut out = (Vec::new(), Vec::new());
            for r in rows {
                out.0.push(r.id);
                out.1.push(r.live);
                if r.live {
                    message.customers.push(v1::Customer {
                        external_id: r.id,
                        email: r.email.unwrap_or_default(),
                        name: r.name,
                        company_name: r.company_name,
                        lead_status: r.lead_status,
                        last_activity_at: ts(r.last_activity_at),
                        first_seen_at: ts(r.first_seen_at),
                        lifecycle_stage: r.lifecycle_stage,
                        owner_id: r.owner_id,
                        source_updated_at: ts(r.source_updated_at),
                        company_ids: r.company_ids,
                        primary_company_id: r.primary_company_id,
                        deal_ids: r.deal_ids,
                        custom_attributes: attributes(r.custom_attributes),
                    });
                } else if r.published_live {
                    message.deleted_ids.push(r.id);
                }
            }
            out
        }
        RecordType::Company => {
            let rows: Vec<CompanyRow> = bind_ids(
                sql_query(format!(
                    "SELECT t.id, t.custom_attributes, t.name, t.domain, t.industry, t.employee_count, t.annual_revenue_cents,
                       t.last_activity_at, t.source_updated_at, {LIVE} AS live, t.published_live,
                       ARRAY(SELECT e.contact_id FROM contact_companies e
                             WHERE e.connection_id = t.connection_id AND e.company_id = t.id AND NOT coalesce((SELECT x.archived FROM contacts x WHERE x.connection_id = e.connection_id AND x.id = e.contact_id), false) ORDER BY 1) AS contact_ids,
                       ARRAY(SELECT e.deal_id FROM deal_companies e
                             WHERE e.connection_id = t.connection_id AND e.company_id = t.id AND NOT coalesce((SELECT x.archived FROM deals x WHERE x.connection_id = e.connection_id AND x.id = e.deal_id), false) ORDER BY 1) AS deal_ids
                     FROM companies t WHERE {filter}
                     ORDER BY t.id LIMIT $2 FOR UPDATE OF t SKIP LOCKED"
                )),
                connection,
                limit,
                ids,
            )
            .load(conn)
            .await?;
            let mut out = (Vec::new(), Vec::new());
            for r in rows {
                out.0.push(r.id);
                out.1.push(r.live);
                if r.live {
                    message.companies.push(v1::Company {
                        external_id: r.id,
                        name: r.name,
                        domain: r.domain,
                        industry: r.industry,
                        employee_count: r.employee_count,
                        annual_revenue_cents: r.annual_revenue_cents,
                        last_activity_at: ts(r.last_activity_at),
                        source_updated_at: ts(r.source_updated_at),
                        contact_ids: r.contact_ids,
                        deal_ids: r.deal_ids,
                        custom_attributes: attributes(r.custom_attributes),
                    });
                } else if r.published_live {
                    message.deleted_ids.push(r.id);
                }
            }
            out
        }
        RecordType::Deal => {
            let stages = stage_statuses(conn, connection).await?;
            let rows: Vec<DealRow> = bind_ids(
                sql_query(format!(
                    "SELECT t.id, t.custom_attributes, t.name, t.pipeline_id, t.stage_id, t.amount_cents, t.closed_at,
                       t.close_probability, t.owner_id, t.source_updated_at, {LIVE} AS live, t.published_live,
                       ARRAY(SELECT e.contact_id FROM deal_contacts e
                             WHERE e.connection_id = t.connection_id AND e.deal_id = t.id AND NOT coalesce((SELECT x.archived FROM contacts x WHERE x.connection_id = e.connection_id AND x.id = e.contact_id), false) ORDER BY 1) AS contact_ids,
                       ARRAY(SELECT e.company_id FROM deal_companies e
                             WHERE e.connection_id = t.connection_id AND e.deal_id = t.id AND NOT coalesce((SELECT x.archived FROM companies x WHERE x.connection_id = e.connection_id AND x.id = e.company_id), false) ORDER BY 1) AS company_ids
                     FROM deals t WHERE {filter}
                     ORDER BY t.id LIMIT $2 FOR UPDATE OF t SKIP LOCKED"
                )),
                connection,
                limit,
                ids,
            )
            .load(conn)
            .await?;
            let mut out = (Vec::new(), Vec::new());
            for r in rows {
                out.0.push(r.id);
                out.1.push(r.live);
                if r.live {
                    let status = r
                        .stage_id
                        .as_ref()
                        .and_then(|s| stages.get(s))
                        .copied()
                        .unwrap_or(v1::DealStatus::Unspecified);
                    message.deals.push(v1::Deal {
                        external_id: r.id,
                        name: r.name,
                        stage: r.stage_id.unwrap_or_default(),
                        pipeline: r.pipeline_id.unwrap_or_default(),
                        amount_cents: r.amount_cents,
                        closed_at: ts(r.closed_at),
                        close_probability: r.close_probability,
                        status: status as i32,
                        owner_id: r.owner_id,
                        source_updated_at: ts(r.source_updated_at),
                        contact_ids: r.contact_ids,
                        company_ids: r.company_ids,
                        custom_attributes: attributes(r.custom_attributes),
                    });
                } else if r.published_live {
                    message.deleted_ids.push(r.id);
                }
            }
            out
        }
    };
    if !taken.is_empty() {
        clear_pending(conn, connection, record_type, &taken, &live).await?;
    }
    let has_content = !message.customers.is_empty()
        || !message.companies.is_empty()
        || !message.deals.is_empty()
        || !message.deleted_ids.is_empty()
        || !message.merges.is_empty();
    if has_content {
        enqueue(conn, connection, context, &message).await?;
    }
    Ok(taken.len())
}

fn bind_ids<'a>(
    query: diesel::query_builder::SqlQuery,
    connection: &Connection,
    limit: i64,
    ids: Option<&'a [i64]>,
) -> diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    let query = query
        .into_boxed::<diesel::pg::Pg>()
        .bind::<SqlUuid, _>(connection.connection_id)
        .bind::<BigInt, _>(limit);
    match ids {
        Some(ids) => query.bind::<Array<BigInt>, _>(ids),
        None => query,
    }
}

/// Stage id -> deal status, from the mirror's pipelines.
async fn stage_statuses(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
) -> QueryResult<HashMap<String, v1::DealStatus>> {
    let rows: Vec<PipelineRow> = pipelines(conn, connection).await?;
    let mut out = HashMap::new();
    for row in rows {
        let stages: Vec<domain::records::Stage> =
            serde_json::from_value(row.stages).unwrap_or_default();
        for stage in stages {
            let status = match stage.deal_status() {
                domain::records::DealStatus::Open => v1::DealStatus::Open,
                domain::records::DealStatus::Won => v1::DealStatus::Won,
                domain::records::DealStatus::Lost => v1::DealStatus::Lost,
            };
            out.insert(stage.id.0, status);
        }
    }
    Ok(out)
}

async fn pipelines(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
) -> QueryResult<Vec<PipelineRow>> {
    sql_query(
        "SELECT id, label, display_order, archived, stages FROM pipelines
         WHERE connection_id = $1 ORDER BY display_order, id",
    )
    .bind::<SqlUuid, _>(connection.connection_id)
    .load(conn)
    .await
}

/// Publishes every owner and pipeline of the connection (two small messages).
pub async fn publish_owners_and_pipelines(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    context: &PublishContext,
) -> QueryResult<()> {
    let owners: Vec<OwnerRow> = sql_query(
        "SELECT id, email, first_name, last_name, kind, user_id, archived, source_updated_at
         FROM owners WHERE connection_id = $1 ORDER BY id",
    )
    .bind::<SqlUuid, _>(connection.connection_id)
    .load(conn)
    .await?;
    if !owners.is_empty() {
        let mut message = envelope(connection, context, v1::ObjectType::Owner);
        message.owners = owners
            .into_iter()
            .map(|o| v1::Owner {
                external_id: o.id,
                email: o.email,
                first_name: o.first_name,
                last_name: o.last_name,
                kind: match o.kind.as_str() {
                    "QUEUE" => v1::OwnerKind::Queue,
                    _ => v1::OwnerKind::Person,
                } as i32,
                user_id: o.user_id,
                archived: o.archived,
                source_updated_at: ts(o.source_updated_at),
            })
            .collect();
        enqueue(conn, connection, context, &message).await?;
    }
    let rows = pipelines(conn, connection).await?;
    if !rows.is_empty() {
        let mut message = envelope(connection, context, v1::ObjectType::Pipeline);
        message.pipelines = rows
            .into_iter()
            .map(|p| {
                let stages: Vec<domain::records::Stage> =
                    serde_json::from_value(p.stages).unwrap_or_default();
                v1::Pipeline {
                    external_id: p.id,
                    label: p.label,
                    display_order: p.display_order,
                    archived: p.archived,
                    stages: stages
                        .into_iter()
                        .map(|s| v1::PipelineStage {
                            id: s.id.0,
                            label: s.label,
                            display_order: i32::try_from(s.display_order).unwrap_or(i32::MAX),
                            archived: s.archived,
                            probability: s.probability.map(f64::from),
                            is_closed: s.is_closed,
                        })
                        .collect(),
                    source_updated_at: None,
                }
            })
            .collect();
        enqueue(conn, connection, context, &message).await?;
    }
    Ok(())
}
