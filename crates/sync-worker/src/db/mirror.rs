//! The mirror: records mapped through `domain`, written in bulk, never overwritten by
//! older data (HubSpot's last-modified time decides), deletions kept as flags.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use diesel::sql_types::{
    Array, BigInt, Bool, Double, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel::{QueryResult, QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::custom::ValidMappingConfig;
use domain::mapping::{self, HubSpotRecord, MappingOutcome, SkipReason};
use hubspot_client::CrmObject;
use uuid::Uuid;

use crate::db::connections::Connection;

/// The mirror's tables, whose statistics the service keeps fresh (a full sync grows them
/// faster than autovacuum analyzes them).
pub const TABLES: &[&str] = &[
    "contacts",
    "companies",
    "deals",
    "contact_companies",
    "deal_contacts",
    "deal_companies",
];

/// The object types with records in the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    /// Contacts (customers).
    Contact,
    /// Companies.
    Company,
    /// Deals.
    Deal,
}

impl RecordType {
    /// All three, in sync order.
    pub const ALL: [RecordType; 3] = [RecordType::Contact, RecordType::Company, RecordType::Deal];

    /// The table holding it.
    pub fn table(self) -> &'static str {
        match self {
            RecordType::Contact => "contacts",
            RecordType::Company => "companies",
            RecordType::Deal => "deals",
        }
    }

    /// HubSpot's API name (`contacts`, ...), which is also the table name.
    pub fn api_name(self) -> &'static str {
        self.table()
    }

    /// The singular name used in counts, routing keys and the API.
    pub fn name(self) -> &'static str {
        match self {
            RecordType::Contact => "contact",
            RecordType::Company => "company",
            RecordType::Deal => "deal",
        }
    }

    /// Parses a singular or plural name.
    pub fn parse(name: &str) -> Option<RecordType> {
        match name {
            "contact" | "contacts" | "0-1" => Some(RecordType::Contact),
            "company" | "companies" | "0-2" => Some(RecordType::Company),
            "deal" | "deals" | "0-3" => Some(RecordType::Deal),
            _ => None,
        }
    }

    /// The domain's object type.
    pub fn domain(self) -> domain::ids::ObjectType {
        match self {
            RecordType::Contact => domain::ids::ObjectType::Contact,
            RecordType::Company => domain::ids::ObjectType::Company,
            RecordType::Deal => domain::ids::ObjectType::Deal,
        }
    }

    /// The contract's object type.
    pub fn proto(self) -> contracts::v1::ObjectType {
        match self {
            RecordType::Contact => contracts::v1::ObjectType::Contact,
            RecordType::Company => contracts::v1::ObjectType::Company,
            RecordType::Deal => contracts::v1::ObjectType::Deal,
        }
    }

    /// From the contract's object type.
    pub fn from_proto(object_type: contracts::v1::ObjectType) -> Option<RecordType> {
        match object_type {
            contracts::v1::ObjectType::Contact => Some(RecordType::Contact),
            contracts::v1::ObjectType::Company => Some(RecordType::Company),
            contracts::v1::ObjectType::Deal => Some(RecordType::Deal),
            _ => None,
        }
    }

    /// The properties sync asks HubSpot for: the default mapping's, plus the merge trail.
    pub fn properties(self) -> Vec<String> {
        let mut names: Vec<String> = mapping::default_properties(self.domain())
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
        names.push(MERGED_IDS.to_owned());
        names
    }
}

/// A connection's valid custom mappings by object type.
pub type CustomMappings = BTreeMap<RecordType, ValidMappingConfig>;

/// The properties sync asks HubSpot for under an optional custom mapping.
pub fn properties_for(record_type: RecordType, custom: &CustomMappings) -> Vec<String> {
    match custom.get(&record_type) {
        Some(config) => {
            let mut names = config.properties_to_fetch();
            names.push(MERGED_IDS.to_owned());
            names
        }
        None => record_type.properties(),
    }
}

/// The property listing the ids merged into a record.
pub const MERGED_IDS: &str = "hs_merged_object_ids";

/// The stable name of a skip reason (also the `sync.progress` / API key).
pub fn skip_reason_name(reason: &SkipReason) -> &'static str {
    match reason {
        SkipReason::MissingEmail => "missing_email",
        SkipReason::InvalidEmail { .. } => "invalid_email",
        SkipReason::MissingId => "missing_id",
        SkipReason::InvalidId { .. } => "invalid_id",
        SkipReason::FilteredOut { .. } => "filtered_out",
    }
}

/// The reason name duplicates are kept under.
pub const DUPLICATE_EMAIL: &str = "duplicate_email";

fn to_record(object: &CrmObject) -> HubSpotRecord {
    HubSpotRecord {
        id: object.id.clone(),
        properties: object.properties.clone(),
        created_at: object.created_at,
        updated_at: object.updated_at,
        archived: object.archived,
        contact_ids: Vec::new(),
        company_ids: Vec::new(),
    }
}

fn merged_ids(object: &CrmObject) -> Vec<i64> {
    object
        .property(MERGED_IDS)
        .map(|s| {
            s.split(';')
                .filter_map(|id| id.trim().parse::<i64>().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn id_of(object: &CrmObject) -> Option<i64> {
    object.id.trim().parse::<i64>().ok()
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn modified_at(object: &CrmObject, property: &str) -> Option<DateTime<Utc>> {
    object
        .property(property)
        .and_then(|v| domain::parse::parse_timestamp(v).ok().flatten())
        .or(object.updated_at)
}

/// A page of records mapped into column arrays, ready for one bulk upsert.
#[derive(Debug, Default)]
pub struct MappedPage {
    /// Record ids written (every record with a usable id).
    pub ids: Vec<i64>,
    /// Records without a usable id, by reason (not stored).
    pub unstorable: BTreeMap<&'static str, u64>,
    /// Per record id: the ids HubSpot says were merged into it.
    pub merged: Vec<(i64, Vec<i64>)>,
    columns: Columns,
}

#[derive(Debug, Default)]
struct Columns {
    text: BTreeMap<&'static str, Vec<Option<String>>>,
    int: BTreeMap<&'static str, Vec<Option<i64>>>,
    time: BTreeMap<&'static str, Vec<Option<DateTime<Utc>>>>,
    float: BTreeMap<&'static str, Vec<Option<f64>>>,
    custom: Vec<serde_json::Value>,
}

impl Columns {
    fn text(&mut self, name: &'static str, value: Option<String>) {
        self.text.entry(name).or_default().push(value);
    }
    fn int(&mut self, name: &'static str, value: Option<i64>) {
        self.int.entry(name).or_default().push(value);
    }
    fn time(&mut self, name: &'static str, value: Option<DateTime<Utc>>) {
        self.time.entry(name).or_default().push(value);
    }
    fn float(&mut self, name: &'static str, value: Option<f64>) {
        self.float.entry(name).or_default().push(value);
    }
}

impl MappedPage {
    /// Maps `objects` of `record_type` with the default mapping.
    pub fn map(record_type: RecordType, objects: &[CrmObject]) -> MappedPage {
        MappedPage::map_with(record_type, objects, None)
    }

    /// Maps `objects` of `record_type`; a connection's custom mapping adds its inbound
    /// attributes and its record filters (a record they exclude is kept as
    /// `filtered_out`).
    pub fn map_with(
        record_type: RecordType,
        objects: &[CrmObject],
        custom: Option<&ValidMappingConfig>,
    ) -> MappedPage {
        let mut page = MappedPage::default();
        for object in objects {
            let record = to_record(object);
            let filtered = custom.and_then(|c| c.check_filters(&record).err());
            let attributes = custom.map_or(serde_json::Value::Object(Default::default()), |c| {
                serde_json::to_value(c.read_attributes(&record).0).unwrap_or_default()
            });
            let Some(id) = id_of(object) else {
                let reason = match record_type {
                    RecordType::Contact => mapping::map_contact(&record).skip_reason().cloned(),
                    RecordType::Company => mapping::map_company(&record).skip_reason().cloned(),
                    RecordType::Deal => mapping::map_deal(&record).skip_reason().cloned(),
                };
                let name = reason.as_ref().map_or("invalid_id", skip_reason_name);
                *page.unstorable.entry(name).or_default() += 1;
                continue;
            };
            page.ids.push(id);
            page.merged.push((id, merged_ids(object)));
            let c = &mut page.columns;
            c.custom.push(attributes);
            match record_type {
                RecordType::Contact => match mapping::map_contact(&record) {
                    MappingOutcome::Mapped { record: r, .. } => {
                        c.text("email", Some(r.email));
                        c.text("name", r.name);
                        c.text("company_name", r.company_name);
                        c.text("phone", r.phone);
                        c.text("job_title", r.job_title);
                        c.text("city", r.city);
                        c.text("state", r.state);
                        c.text("country", r.country);
                        c.text("website", r.website);
                        c.text("lead_status", r.lead_status.map(|s| s.as_str().to_owned()));
                        c.text(
                            "lifecycle_stage",
                            r.lifecycle_stage.map(|s| s.as_str().to_owned()),
                        );
                        c.int("owner_id", r.owner_id.map(|o| as_i64(o.0)));
                        c.time("last_activity_at", r.last_activity_at);
                        c.time("first_seen_at", r.first_seen_at);
                        c.time("source_updated_at", r.source_updated_at);
                        c.text(
                            "skip_reason",
                            filtered.as_ref().map(|r| skip_reason_name(r).to_owned()),
                        );
                    }
                    MappingOutcome::Skipped { reason, .. } => {
                        let email = match &reason {
                            SkipReason::InvalidEmail { value } => Some(value.clone()),
                            _ => None,
                        };
                        c.text("email", email);
                        for name in [
                            "name",
                            "company_name",
                            "phone",
                            "job_title",
                            "city",
                            "state",
                            "country",
                            "website",
                            "lead_status",
                            "lifecycle_stage",
                        ] {
                            c.text(name, None);
                        }
                        c.int("owner_id", None);
                        c.time("last_activity_at", None);
                        c.time("first_seen_at", object.created_at);
                        c.time(
                            "source_updated_at",
                            modified_at(object, mapping::props::LASTMODIFIEDDATE),
                        );
                        c.text("skip_reason", Some(skip_reason_name(&reason).to_owned()));
                    }
                },
                RecordType::Company => match mapping::map_company(&record) {
                    MappingOutcome::Mapped { record: r, .. } => {
                        c.text("name", r.name);
                        c.text("domain", r.domain);
                        c.text("website", r.website);
                        c.text("industry", r.industry);
                        c.int("employee_count", r.employee_count.map(as_i64));
                        c.int("annual_revenue_cents", r.annual_revenue_cents);
                        c.text(
                            "lifecycle_stage",
                            r.lifecycle_stage.map(|s| s.as_str().to_owned()),
                        );
                        c.int("owner_id", r.owner_id.map(|o| as_i64(o.0)));
                        c.time("last_activity_at", r.last_activity_at);
                        c.time("created_at", r.created_at);
                        c.time("source_updated_at", r.source_updated_at);
                        c.text(
                            "skip_reason",
                            filtered.as_ref().map(|r| skip_reason_name(r).to_owned()),
                        );
                    }
                    MappingOutcome::Skipped { reason, .. } => {
                        for name in ["name", "domain", "website", "industry", "lifecycle_stage"] {
                            c.text(name, None);
                        }
                        c.int("employee_count", None);
                        c.int("annual_revenue_cents", None);
                        c.int("owner_id", None);
                        c.time("last_activity_at", None);
                        c.time("created_at", object.created_at);
                        c.time(
                            "source_updated_at",
                            modified_at(object, mapping::props::HS_LASTMODIFIEDDATE),
                        );
                        c.text("skip_reason", Some(skip_reason_name(&reason).to_owned()));
                    }
                },
                RecordType::Deal => match mapping::map_deal(&record) {
                    MappingOutcome::Mapped { record: r, .. } => {
                        c.text("name", r.name);
                        c.text("pipeline_id", r.pipeline_id.map(|p| p.0));
                        c.text("stage_id", r.stage_id.map(|s| s.0));
                        c.int("amount_cents", r.amount_cents);
                        c.time("closed_at", r.closed_at);
                        c.float("close_probability", r.close_probability.map(f64::from));
                        c.int("owner_id", r.owner_id.map(|o| as_i64(o.0)));
                        c.time("created_at", r.created_at);
                        c.time("source_updated_at", r.source_updated_at);
                        c.text(
                            "skip_reason",
                            filtered.as_ref().map(|r| skip_reason_name(r).to_owned()),
                        );
                    }
                    MappingOutcome::Skipped { reason, .. } => {
                        for name in ["name", "pipeline_id", "stage_id"] {
                            c.text(name, None);
                        }
                        c.int("amount_cents", None);
                        c.time("closed_at", None);
                        c.float("close_probability", None);
                        c.int("owner_id", None);
                        c.time("created_at", object.created_at);
                        c.time(
                            "source_updated_at",
                            modified_at(object, mapping::props::HS_LASTMODIFIEDDATE),
                        );
                        c.text("skip_reason", Some(skip_reason_name(&reason).to_owned()));
                    }
                },
            }
        }
        page
    }

    /// Skip reasons of the stored records, by name, as mapped (duplicates are decided later).
    pub fn skip_reasons(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = self
            .unstorable
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        if let Some(reasons) = self.columns.text.get("skip_reason") {
            for reason in reasons.iter().flatten() {
                *out.entry(reason.clone()).or_default() += 1;
            }
        }
        out
    }
}

/// The columns of each table, in bind order after `connection_id, org_id, id`.
fn table_columns(record_type: RecordType) -> &'static [(&'static str, &'static str)] {
    match record_type {
        RecordType::Contact => &[
            ("email", "text"),
            ("name", "text"),
            ("company_name", "text"),
            ("phone", "text"),
            ("job_title", "text"),
            ("city", "text"),
            ("state", "text"),
            ("country", "text"),
            ("website", "text"),
            ("lead_status", "text"),
            ("lifecycle_stage", "text"),
            ("owner_id", "bigint"),
            ("last_activity_at", "timestamptz"),
            ("first_seen_at", "timestamptz"),
            ("source_updated_at", "timestamptz"),
            ("skip_reason", "text"),
        ],
        RecordType::Company => &[
            ("name", "text"),
            ("domain", "text"),
            ("website", "text"),
            ("industry", "text"),
            ("employee_count", "bigint"),
            ("annual_revenue_cents", "bigint"),
            ("lifecycle_stage", "text"),
            ("owner_id", "bigint"),
            ("last_activity_at", "timestamptz"),
            ("created_at", "timestamptz"),
            ("source_updated_at", "timestamptz"),
            ("skip_reason", "text"),
        ],
        RecordType::Deal => &[
            ("name", "text"),
            ("pipeline_id", "text"),
            ("stage_id", "text"),
            ("amount_cents", "bigint"),
            ("closed_at", "timestamptz"),
            ("close_probability", "double precision"),
            ("owner_id", "bigint"),
            ("created_at", "timestamptz"),
            ("source_updated_at", "timestamptz"),
            ("skip_reason", "text"),
        ],
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// A row of [`upsert_page`]'s answer: an id written, or a contact's e-mail before it.
#[derive(QueryableByName)]
struct UpsertRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
}

#[derive(QueryableByName)]
struct EmailRow {
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
}

/// Upserts a mapped page: records read live from HubSpot at `read_at`. Data older than
/// what is stored (HubSpot's last-modified time) changes nothing. A full run stamps the
/// rows with `seen_run`. Returns the ids actually written; contacts whose duplicate status
/// changed with them go to `promoted` ([`resolve_duplicates`]).
pub async fn upsert_page(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    record_type: RecordType,
    page: &MappedPage,
    read_at: DateTime<Utc>,
    seen_run: Option<Uuid>,
    promoted: &mut Vec<i64>,
) -> QueryResult<Vec<i64>> {
    if page.ids.is_empty() {
        return Ok(Vec::new());
    }
    let table = record_type.table();
    let columns = table_columns(record_type);
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let unnest_args: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::{}[]", i + 7, ty))
        .collect();
    let updates: Vec<String> = names
        .iter()
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    let upsert = format!(
        "INSERT INTO {table} AS t (connection_id, org_id, seen_run, status_changed_at, archived,
             merged_into, publish_pending, id, custom_attributes, {cols})
         SELECT $1, $2, $3, $4, false, NULL, true, u.*
         FROM UNNEST($5::bigint[], $6::jsonb[], {unnest}) AS u
         ON CONFLICT (connection_id, id) DO UPDATE SET {updates},
           custom_attributes = excluded.custom_attributes,
           archived = CASE WHEN t.status_changed_at IS NULL OR t.status_changed_at <= excluded.status_changed_at
                           THEN false ELSE t.archived END,
           merged_into = CASE WHEN t.status_changed_at IS NULL OR t.status_changed_at <= excluded.status_changed_at
                           THEN NULL ELSE t.merged_into END,
           status_changed_at = GREATEST(t.status_changed_at, excluded.status_changed_at),
           seen_run = COALESCE(excluded.seen_run, t.seen_run),
           publish_pending = true
         WHERE t.source_updated_at IS NULL OR excluded.source_updated_at IS NULL
            OR t.source_updated_at <= excluded.source_updated_at
         RETURNING id",
        cols = names.join(", "),
        unnest = unnest_args.join(", "),
        updates = updates.join(", "),
    );
    // Contacts whose e-mail changes leave a group whose winner must be decided again: their
    // e-mails before the upsert come back with it (every part of one statement reads the
    // same snapshot), one round trip instead of two.
    let sql = if record_type == RecordType::Contact {
        format!(
            "WITH old AS MATERIALIZED (
               SELECT email FROM contacts WHERE connection_id = $1 AND id = ANY($5)
                 AND email IS NOT NULL),
             up AS ({upsert})
             SELECT id, NULL::text AS email FROM up
             UNION ALL SELECT NULL::bigint, email FROM old"
        )
    } else {
        format!("WITH up AS ({upsert}) SELECT id, NULL::text AS email FROM up")
    };
    let mut query = sql_query(sql)
        .into_boxed::<diesel::pg::Pg>()
        .bind::<SqlUuid, _>(connection.connection_id)
        .bind::<SqlUuid, _>(connection.org_id)
        .bind::<Nullable<SqlUuid>, _>(seen_run)
        .bind::<Timestamptz, _>(read_at)
        .bind::<Array<BigInt>, _>(page.ids.clone())
        .bind::<Array<Jsonb>, _>(page.columns.custom.clone());
    let c = &page.columns;
    for (name, ty) in columns {
        query = match *ty {
            "text" => query
                .bind::<Array<Nullable<Text>>, _>(c.text.get(name).cloned().unwrap_or_default()),
            "bigint" => query
                .bind::<Array<Nullable<BigInt>>, _>(c.int.get(name).cloned().unwrap_or_default()),
            "timestamptz" => query.bind::<Array<Nullable<Timestamptz>>, _>(
                c.time.get(name).cloned().unwrap_or_default(),
            ),
            _ => query
                .bind::<Array<Nullable<Double>>, _>(c.float.get(name).cloned().unwrap_or_default()),
        };
    }
    let rows: Vec<UpsertRow> = query.load(conn).await?;
    let mut written = Vec::with_capacity(rows.len());
    let mut old_emails = Vec::new();
    for row in rows {
        match (row.id, row.email) {
            (Some(id), _) => written.push(id),
            (None, Some(email)) => old_emails.push(email),
            (None, None) => {}
        }
    }

    // Rows not rewritten (stored data is newer) were still seen by this run.
    if let Some(run) = seen_run {
        sql_query(format!(
            "UPDATE {table} SET seen_run = $3 WHERE connection_id = $1 AND id = ANY($2)
               AND seen_run IS DISTINCT FROM $3"
        ))
        .bind::<SqlUuid, _>(connection.connection_id)
        .bind::<Array<BigInt>, _>(&page.ids)
        .bind::<SqlUuid, _>(run)
        .execute(conn)
        .await?;
    }

    // Merge trails: ids merged into a record are gone from HubSpot, even those the mirror
    // only learns of from hs_merged_object_ids.
    let mut losers = Vec::new();
    let mut winners = Vec::new();
    for (winner, merged) in &page.merged {
        for loser in merged {
            if loser != winner {
                losers.push(*loser);
                winners.push(*winner);
            }
        }
    }
    if !losers.is_empty() {
        let _moved = mark_merged(
            conn,
            connection,
            record_type,
            &winners,
            &losers,
            read_at,
            promoted,
        )
        .await?;
    }

    if record_type == RecordType::Contact {
        let emails: BTreeSet<String> = page
            .columns
            .text
            .get("email")
            .into_iter()
            .flatten()
            .flatten()
            .cloned()
            .chain(old_emails)
            .collect();
        resolve_duplicates(
            conn,
            connection.connection_id,
            &emails.into_iter().collect::<Vec<_>>(),
            promoted,
        )
        .await?;
    }
    Ok(written)
}

/// Marks `losers[i]` merged into `winners[i]` (kept, flagged deleted) and moves their
/// associations onto the winner. Contacts whose duplicate status changed because a
/// merged-away contact was the customer for its e-mail go to `promoted`
/// ([`resolve_duplicates`]).
pub async fn mark_merged(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    record_type: RecordType,
    winners: &[i64],
    losers: &[i64],
    at: DateTime<Utc>,
    promoted: &mut Vec<i64>,
) -> QueryResult<Vec<(RecordType, i64)>> {
    let mut touched = Vec::new();
    let table = record_type.table();
    let merged: Vec<IdRow> = sql_query(format!(
        "UPDATE {table} AS t SET merged_into = m.winner, archived = true, publish_pending = true,
           status_changed_at = GREATEST(t.status_changed_at, $4)
         FROM UNNEST($2::bigint[], $3::bigint[]) AS m(winner, loser)
         WHERE t.connection_id = $1 AND t.id = m.loser AND t.merged_into IS DISTINCT FROM m.winner
         RETURNING t.id"
    ))
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<Array<BigInt>, _>(winners)
    .bind::<Array<BigInt>, _>(losers)
    .bind::<Timestamptz, _>(at)
    .load(conn)
    .await?;
    if record_type == RecordType::Contact && !merged.is_empty() {
        let ids: Vec<i64> = merged.iter().map(|r| r.id).collect();
        let emails = emails_of(conn, connection.connection_id, &ids).await?;
        resolve_duplicates(conn, connection.connection_id, &emails, promoted).await?;
    }
    // Edges of the merged-away records now belong to the winner (as in HubSpot).
    for edge in Edge::ALL {
        let (side, other) = if edge.from == record_type {
            (edge.from_column, edge.to_column)
        } else if edge.to == record_type {
            (edge.to_column, edge.from_column)
        } else {
            continue;
        };
        let moved: Vec<IdRow> = sql_query(format!(
            "WITH gone AS (
               DELETE FROM {t} e USING UNNEST($2::bigint[], $3::bigint[]) AS m(winner, loser)
               WHERE e.connection_id = $1 AND e.{side} = m.loser
               RETURNING m.winner AS winner, e.{other} AS other)
             INSERT INTO {t} (connection_id, org_id, {side}, {other})
             SELECT $1, $4, winner, other FROM gone
             ON CONFLICT DO NOTHING
             RETURNING {other} AS id",
            t = edge.table
        ))
        .bind::<SqlUuid, _>(connection.connection_id)
        .bind::<Array<BigInt>, _>(winners)
        .bind::<Array<BigInt>, _>(losers)
        .bind::<SqlUuid, _>(connection.org_id)
        .load(conn)
        .await?;
        let other_type = if edge.from == record_type {
            edge.to
        } else {
            edge.from
        };
        let ids: Vec<i64> = moved.into_iter().map(|r| r.id).collect();
        mark_pending(conn, connection.connection_id, other_type, &ids).await?;
        mark_pending(conn, connection.connection_id, record_type, winners).await?;
        touched.extend(ids.into_iter().map(|id| (other_type, id)));
    }
    Ok(touched)
}

/// Flags records to be published again (their associations changed).
pub async fn mark_pending(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    record_type: RecordType,
    ids: &[i64],
) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sql_query(format!(
        "UPDATE {} SET publish_pending = true
         WHERE connection_id = $1 AND id = ANY($2) AND NOT publish_pending",
        record_type.table()
    ))
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Array<BigInt>, _>(ids)
    .execute(conn)
    .await
    .map(drop)
}

/// The e-mails the mirror holds for contacts `ids` of a connection.
async fn emails_of(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    ids: &[i64],
) -> QueryResult<Vec<String>> {
    let rows: Vec<EmailRow> = sql_query(
        "SELECT email FROM contacts WHERE connection_id = $1 AND id = ANY($2) AND email IS NOT NULL",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Array<BigInt>, _>(ids)
    .load(conn)
    .await?;
    Ok(rows.into_iter().filter_map(|r| r.email).collect())
}

/// Decides again which contact is the customer for each of `emails`: among live contacts
/// with that e-mail the most recently modified wins, then the lower id (as
/// `domain::dedupe`); the others are skipped as duplicates. Adds to `promoted` the contacts
/// whose status this changed: they are flagged for publishing like the records the caller
/// wrote, and a caller that publishes only what it touched must publish them too (a
/// duplicate that became the customer when its twin was deleted was otherwise never
/// scored).
pub async fn resolve_duplicates(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    emails: &[String],
    promoted: &mut Vec<i64>,
) -> QueryResult<()> {
    if emails.is_empty() {
        return Ok(());
    }
    let rows: Vec<IdRow> = sql_query(
        // MATERIALIZED: the ranking is computed once. Inlined, a plan made when the
        // planner expected one row of this connection (its rows newer than the table's
        // statistics) ranked the e-mails again for every row of the connection: 44 s a
        // statement at 5,800 rows. The rows to change are then found by their keys
        // (`id = ANY(...)`), not by joining the ranking: with that estimate of one row,
        // the join scanned the whole connection for each ranked row, 100-180 ms a page
        // of 100 at 3,500 rows during a new connection's first sync.
        "WITH ranked AS MATERIALIZED (
           SELECT id, skip_reason AS old,
                  CASE WHEN row_number() OVER (PARTITION BY email
                         ORDER BY source_updated_at DESC NULLS LAST, id) = 1
                       THEN NULL ELSE 'duplicate_email' END AS new
           FROM contacts
           WHERE connection_id = $1 AND email = ANY($2) AND NOT archived AND merged_into IS NULL
             AND (skip_reason IS NULL OR skip_reason = 'duplicate_email')),
         changed AS MATERIALIZED (SELECT id, new FROM ranked WHERE old IS DISTINCT FROM new)
         UPDATE contacts c SET
           skip_reason = (SELECT x.new FROM changed x WHERE x.id = c.id),
           publish_pending = true
         WHERE c.connection_id = $1 AND c.id = ANY(ARRAY(SELECT id FROM changed))
           AND c.skip_reason IS DISTINCT FROM (SELECT x.new FROM changed x WHERE x.id = c.id)
         RETURNING c.id",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Array<Text>, _>(emails)
    .load(conn)
    .await?;
    promoted.extend(rows.into_iter().map(|r| r.id));
    Ok(())
}

/// Marks records deleted in HubSpot at `at` (kept, flagged), unless a newer state change
/// is already stored. Returns the ids changed; contacts whose duplicate status changed with
/// them go to `promoted` ([`resolve_duplicates`]).
pub async fn mark_deleted(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    record_type: RecordType,
    ids: &[i64],
    at: DateTime<Utc>,
    promoted: &mut Vec<i64>,
) -> QueryResult<Vec<i64>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<IdRow> = sql_query(format!(
        "UPDATE {} SET archived = true, status_changed_at = $3, publish_pending = true
         WHERE connection_id = $1 AND id = ANY($2) AND NOT archived
           AND (status_changed_at IS NULL OR status_changed_at <= $3)
         RETURNING id",
        record_type.table()
    ))
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Timestamptz, _>(at)
    .load(conn)
    .await?;
    let changed: Vec<i64> = rows.into_iter().map(|r| r.id).collect();
    if record_type == RecordType::Contact && !changed.is_empty() {
        let emails = emails_of(conn, connection.connection_id, &changed).await?;
        resolve_duplicates(conn, connection.connection_id, &emails, promoted).await?;
    }
    Ok(changed)
}

/// Erases a contact's personal fields after a GDPR deletion in HubSpot; the row stays,
/// flagged deleted, so the id is known to be gone. Contacts whose duplicate status changed
/// with it go to `promoted` ([`resolve_duplicates`]).
pub async fn erase_personal_data(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    ids: &[i64],
    at: DateTime<Utc>,
    promoted: &mut Vec<i64>,
) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let emails = emails_of(conn, connection.connection_id, ids).await?;
    // A privacy deletion never arrives for a contact the mirror has not seen; store a
    // tombstone anyway so a late, older read cannot bring the data back.
    sql_query(
        "INSERT INTO contacts AS t (connection_id, org_id, id, archived, privacy_deleted,
           status_changed_at, source_updated_at, publish_pending)
         SELECT $1, $2, id, true, true, $4, $4, true FROM UNNEST($3::bigint[]) AS id
         ON CONFLICT (connection_id, id) DO UPDATE SET
           email = NULL, name = NULL, company_name = NULL, phone = NULL, job_title = NULL,
           city = NULL, state = NULL, country = NULL, website = NULL,
           custom_attributes = '{}', archived = true, privacy_deleted = true,
           status_changed_at = GREATEST(t.status_changed_at, $4),
           source_updated_at = GREATEST(t.source_updated_at, $4),
           publish_pending = true",
    )
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<SqlUuid, _>(connection.org_id)
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    resolve_duplicates(conn, connection.connection_id, &emails, promoted).await
}

/// Marks live mirror records of a full run's scope that the run never saw as deleted.
pub async fn mark_unseen_deleted(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    record_type: RecordType,
    run: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<u64> {
    let rows: Vec<IdRow> = sql_query(format!(
        "UPDATE {} SET archived = true, status_changed_at = $3, publish_pending = true
         WHERE connection_id = $1 AND NOT archived AND seen_run IS DISTINCT FROM $2
           AND (status_changed_at IS NULL OR status_changed_at <= $3)
         RETURNING id",
        record_type.table()
    ))
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<SqlUuid, _>(run)
    .bind::<Timestamptz, _>(at)
    .load(conn)
    .await?;
    Ok(rows.len() as u64)
}

/// Mirror ids of a type after `after`, in id order (the association phase's keyset).
pub async fn ids_after(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    record_type: RecordType,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<i64>> {
    let rows: Vec<IdRow> = sql_query(format!(
        "SELECT id FROM {} WHERE connection_id = $1 AND id > $2 AND NOT archived
         ORDER BY id LIMIT $3",
        record_type.table()
    ))
    .bind::<SqlUuid, _>(connection_id)
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Live mirror ids of a type among `ids`.
pub async fn live_ids(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    record_type: RecordType,
) -> QueryResult<Vec<i64>> {
    let rows: Vec<IdRow> = sql_query(format!(
        "SELECT id FROM {} WHERE connection_id = $1 AND NOT archived ORDER BY id",
        record_type.table()
    ))
    .bind::<SqlUuid, _>(connection_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// One kind of association, stored once from its canonical side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// The table.
    pub table: &'static str,
    /// The canonical side, whose associations are read from HubSpot.
    pub from: RecordType,
    /// Its column.
    pub from_column: &'static str,
    /// The other side.
    pub to: RecordType,
    /// Its column.
    pub to_column: &'static str,
}

impl Edge {
    /// Contact to company.
    pub const CONTACT_COMPANY: Edge = Edge {
        table: "contact_companies",
        from: RecordType::Contact,
        from_column: "contact_id",
        to: RecordType::Company,
        to_column: "company_id",
    };
    /// Deal to contact.
    pub const DEAL_CONTACT: Edge = Edge {
        table: "deal_contacts",
        from: RecordType::Deal,
        from_column: "deal_id",
        to: RecordType::Contact,
        to_column: "contact_id",
    };
    /// Deal to company.
    pub const DEAL_COMPANY: Edge = Edge {
        table: "deal_companies",
        from: RecordType::Deal,
        from_column: "deal_id",
        to: RecordType::Company,
        to_column: "company_id",
    };
    /// Every association kind.
    pub const ALL: [Edge; 3] = [
        Edge::CONTACT_COMPANY,
        Edge::DEAL_CONTACT,
        Edge::DEAL_COMPANY,
    ];

    /// The edges whose canonical side is `record_type`.
    pub fn from_side(record_type: RecordType) -> impl Iterator<Item = Edge> {
        Edge::ALL.into_iter().filter(move |e| e.from == record_type)
    }

    /// The edge between two types, in either direction.
    pub fn between(a: RecordType, b: RecordType) -> Option<Edge> {
        Edge::ALL
            .into_iter()
            .find(|e| (e.from == a && e.to == b) || (e.from == b && e.to == a))
    }
}

#[derive(QueryableByName)]
struct EdgeRow {
    #[diesel(sql_type = BigInt)]
    from_id: i64,
    #[diesel(sql_type = BigInt)]
    to_id: i64,
}

/// Replaces every association of `from_ids` (canonical side of `edge`) with `edges`
/// (`(from, to, primary)`), and flags both sides of every changed edge for publishing.
/// Returns the ids of both sides whose associations changed.
pub async fn replace_associations(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    edge: Edge,
    from_ids: &[i64],
    edges: &[(i64, i64, bool)],
) -> QueryResult<Vec<(RecordType, i64)>> {
    if from_ids.is_empty() {
        return Ok(Vec::new());
    }
    let old: Vec<EdgeRow> = sql_query(format!(
        "DELETE FROM {t} WHERE connection_id = $1 AND {f} = ANY($2)
         RETURNING {f} AS from_id, {to} AS to_id",
        t = edge.table,
        f = edge.from_column,
        to = edge.to_column
    ))
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<Array<BigInt>, _>(from_ids)
    .load(conn)
    .await?;
    let froms: Vec<i64> = edges.iter().map(|e| e.0).collect();
    let tos: Vec<i64> = edges.iter().map(|e| e.1).collect();
    if !edges.is_empty() {
        let primary = if edge == Edge::CONTACT_COMPANY {
            ", is_primary"
        } else {
            ""
        };
        let primary_value = if edge == Edge::CONTACT_COMPANY {
            ", u.p"
        } else {
            ""
        };
        let prims: Vec<bool> = edges.iter().map(|e| e.2).collect();
        sql_query(format!(
            "INSERT INTO {t} (connection_id, org_id, {f}, {to}{primary})
             SELECT $1, $2, u.f, u.t{primary_value} FROM UNNEST($3::bigint[], $4::bigint[], $5::boolean[]) AS u(f, t, p)
             ON CONFLICT DO NOTHING",
            t = edge.table,
            f = edge.from_column,
            to = edge.to_column
        ))
        .bind::<SqlUuid, _>(connection.connection_id)
        .bind::<SqlUuid, _>(connection.org_id)
        .bind::<Array<BigInt>, _>(&froms)
        .bind::<Array<BigInt>, _>(&tos)
        .bind::<Array<Bool>, _>(&prims)
        .execute(conn)
        .await?;
    }
    let before: BTreeSet<(i64, i64)> = old.iter().map(|r| (r.from_id, r.to_id)).collect();
    let after: BTreeSet<(i64, i64)> = edges.iter().map(|e| (e.0, e.1)).collect();
    let changed: Vec<(i64, i64)> = before.symmetric_difference(&after).copied().collect();
    let changed_from: Vec<i64> = changed
        .iter()
        .map(|c| c.0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let changed_to: Vec<i64> = changed
        .iter()
        .map(|c| c.1)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    mark_pending(conn, connection.connection_id, edge.from, &changed_from).await?;
    mark_pending(conn, connection.connection_id, edge.to, &changed_to).await?;
    Ok(changed_from
        .into_iter()
        .map(|id| (edge.from, id))
        .chain(changed_to.into_iter().map(|id| (edge.to, id)))
        .collect())
}

/// Stores owners (all of them: the owners API has no paging cursor worth checkpointing).
pub async fn upsert_owners(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    owners: &[domain::records::Owner],
) -> QueryResult<usize> {
    if owners.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = owners.iter().map(|o| as_i64(o.id.0)).collect();
    let emails: Vec<Option<String>> = owners.iter().map(|o| o.email.clone()).collect();
    let (firsts, lasts): (Vec<Option<String>>, Vec<Option<String>>) = owners
        .iter()
        .map(|o| {
            let name = o.name.clone().unwrap_or_default();
            let mut parts = name.splitn(2, ' ');
            let first = parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
            let last = parts.next().map(str::to_owned);
            (first, last)
        })
        .unzip();
    let kinds: Vec<String> = owners.iter().map(|o| o.kind.as_str().to_owned()).collect();
    let users: Vec<Option<i64>> = owners.iter().map(|o| o.user_id.map(as_i64)).collect();
    let archived: Vec<bool> = owners.iter().map(|o| o.archived).collect();
    let updated: Vec<Option<DateTime<Utc>>> = owners.iter().map(|o| o.updated_at).collect();
    sql_query(
        "INSERT INTO owners (connection_id, org_id, id, email, first_name, last_name, kind, user_id, archived, source_updated_at)
         SELECT $1, $2, u.* FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::boolean[], $10::timestamptz[]) AS u
         ON CONFLICT (connection_id, id) DO UPDATE SET email = excluded.email, first_name = excluded.first_name,
           last_name = excluded.last_name, kind = excluded.kind, user_id = excluded.user_id,
           archived = excluded.archived, source_updated_at = excluded.source_updated_at",
    )
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<SqlUuid, _>(connection.org_id)
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Nullable<Text>>, _>(emails)
    .bind::<Array<Nullable<Text>>, _>(firsts)
    .bind::<Array<Nullable<Text>>, _>(lasts)
    .bind::<Array<Text>, _>(kinds)
    .bind::<Array<Nullable<BigInt>>, _>(users)
    .bind::<Array<Bool>, _>(archived)
    .bind::<Array<Nullable<Timestamptz>>, _>(updated)
    .execute(conn)
    .await
}

/// Stores deal pipelines with their stages.
pub async fn upsert_pipelines(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    pipelines: &[domain::records::Pipeline],
) -> QueryResult<usize> {
    if pipelines.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = pipelines.iter().map(|p| p.id.0.clone()).collect();
    let labels: Vec<String> = pipelines.iter().map(|p| p.label.clone()).collect();
    let orders: Vec<i32> = pipelines
        .iter()
        .map(|p| i32::try_from(p.display_order).unwrap_or(i32::MAX))
        .collect();
    let archived: Vec<bool> = pipelines.iter().map(|p| p.archived).collect();
    let stages: Vec<serde_json::Value> = pipelines
        .iter()
        .map(|p| serde_json::to_value(&p.stages).unwrap_or(serde_json::Value::Null))
        .collect();
    sql_query(
        "INSERT INTO pipelines (connection_id, org_id, id, label, display_order, archived, stages)
         SELECT $1, $2, u.* FROM UNNEST($3::text[], $4::text[], $5::integer[], $6::boolean[], $7::jsonb[]) AS u
         ON CONFLICT (connection_id, id) DO UPDATE SET label = excluded.label,
           display_order = excluded.display_order, archived = excluded.archived, stages = excluded.stages",
    )
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<SqlUuid, _>(connection.org_id)
    .bind::<Array<Text>, _>(ids)
    .bind::<Array<Text>, _>(labels)
    .bind::<Array<Integer>, _>(orders)
    .bind::<Array<Bool>, _>(archived)
    .bind::<Array<Jsonb>, _>(stages)
    .execute(conn)
    .await
}
