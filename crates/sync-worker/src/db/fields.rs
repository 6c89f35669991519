//! Field discovery (the portal's property definitions per object type) and the
//! connection's inbound custom mappings.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Jsonb, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{QueryResult, QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::custom::{FieldType, PropertyDefinition, PropertyOption, PropertyType};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::connections::Connection;

/// A discovered property: the domain's definition plus what the UI shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiscoveredProperty {
    /// What mappings are validated against.
    #[serde(flatten)]
    pub definition: PropertyDefinition,
    /// Created by the portal rather than defined by HubSpot.
    pub custom: bool,
    /// HubSpot's property group.
    pub group_name: String,
}

impl DiscoveredProperty {
    /// From the client's wire type.
    pub fn from_hubspot(p: &hubspot_client::Property) -> Self {
        DiscoveredProperty {
            definition: PropertyDefinition {
                name: p.name.clone(),
                label: p.label.clone(),
                property_type: PropertyType::from_hubspot(&p.property_type),
                field_type: FieldType::from_hubspot(&p.field_type),
                options: p
                    .options
                    .iter()
                    .map(|o| PropertyOption {
                        label: o.label.clone(),
                        value: o.value.clone(),
                        hidden: o.hidden,
                    })
                    .collect(),
                has_unique_value: p.has_unique_value.unwrap_or(false),
                read_only_value: p
                    .modification_metadata
                    .as_ref()
                    .is_some_and(|m| m.read_only_value),
                calculated: p.calculated.unwrap_or(false),
                archived: p.archived.unwrap_or(false),
            },
            custom: !p.hubspot_defined.unwrap_or(false),
            group_name: p.group_name.clone(),
        }
    }
}

/// Replaces the stored properties of one object type.
pub async fn replace_properties(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    object_type: &str,
    properties: &[DiscoveredProperty],
    at: DateTime<Utc>,
) -> QueryResult<()> {
    sql_query("DELETE FROM properties WHERE connection_id = $1 AND object_type = $2")
        .bind::<SqlUuid, _>(connection.connection_id)
        .bind::<Text, _>(object_type)
        .execute(conn)
        .await?;
    let names: Vec<String> = properties
        .iter()
        .map(|p| p.definition.name.clone())
        .collect();
    let definitions: Vec<serde_json::Value> = properties
        .iter()
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .collect();
    sql_query(
        "INSERT INTO properties (connection_id, org_id, object_type, name, definition, refreshed_at)
         SELECT $1, $2, $3, u.n, u.d, $6 FROM UNNEST($4::text[], $5::jsonb[]) AS u(n, d)
         ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(connection.connection_id)
    .bind::<SqlUuid, _>(connection.org_id)
    .bind::<Text, _>(object_type)
    .bind::<Array<Text>, _>(names)
    .bind::<Array<Jsonb>, _>(definitions)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await
    .map(drop)
}

#[derive(QueryableByName)]
struct PropertyRow {
    #[diesel(sql_type = Jsonb)]
    definition: serde_json::Value,
    #[diesel(sql_type = Timestamptz)]
    refreshed_at: DateTime<Utc>,
}

/// The stored properties of one object type, by name, and when they were read.
pub async fn properties(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    object_type: &str,
) -> QueryResult<(Vec<DiscoveredProperty>, Option<DateTime<Utc>>)> {
    let rows: Vec<PropertyRow> = sql_query(
        "SELECT definition, refreshed_at FROM properties
         WHERE connection_id = $1 AND object_type = $2 ORDER BY name",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Text, _>(object_type)
    .load(conn)
    .await?;
    let refreshed = <[PropertyRow]>::first(&rows).map(|r| r.refreshed_at);
    Ok((
        rows.into_iter()
            .filter_map(|r| serde_json::from_value(r.definition).ok())
            .collect(),
        refreshed,
    ))
}

#[derive(QueryableByName)]
struct MappingRow {
    #[diesel(sql_type = Jsonb)]
    config: serde_json::Value,
}

/// The connection's stored mappings.
pub async fn mappings(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
) -> QueryResult<Vec<domain::custom::MappingConfig>> {
    let rows: Vec<MappingRow> =
        sql_query("SELECT config FROM mappings WHERE connection_id = $1 ORDER BY object_type")
            .bind::<SqlUuid, _>(connection_id)
            .load(conn)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| serde_json::from_value(r.config).ok())
        .collect())
}

/// Replaces the connection's mappings; true when anything changed.
pub async fn replace_mappings(
    conn: &mut AsyncPgConnection,
    connection: &Connection,
    configs: &[domain::custom::MappingConfig],
) -> QueryResult<bool> {
    let before = mappings(conn, connection.connection_id).await?;
    sql_query("DELETE FROM mappings WHERE connection_id = $1")
        .bind::<SqlUuid, _>(connection.connection_id)
        .execute(conn)
        .await?;
    for config in configs {
        let object_type = serde_json::to_value(config.object_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        sql_query(
            "INSERT INTO mappings (connection_id, org_id, object_type, config) VALUES ($1, $2, $3, $4)",
        )
        .bind::<SqlUuid, _>(connection.connection_id)
        .bind::<SqlUuid, _>(connection.org_id)
        .bind::<Text, _>(object_type)
        .bind::<Jsonb, _>(serde_json::to_value(config).unwrap_or_default())
        .execute(conn)
        .await?;
    }
    let mut after = configs.to_vec();
    after.sort_by_key(|c| format!("{:?}", c.object_type));
    let mut before = before;
    before.sort_by_key(|c| format!("{:?}", c.object_type));
    Ok(before != after)
}

/// The connection's mappings, validated again against the stored properties (a property
/// archived since is dropped from use, with a warning), by object type.
pub async fn valid_mappings(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
) -> QueryResult<crate::db::mirror::CustomMappings> {
    let mut out = crate::db::mirror::CustomMappings::new();
    for config in mappings(conn, connection_id).await? {
        let record_type = match config.object_type {
            domain::ids::ObjectType::Contact => crate::db::mirror::RecordType::Contact,
            domain::ids::ObjectType::Company => crate::db::mirror::RecordType::Company,
            domain::ids::ObjectType::Deal => crate::db::mirror::RecordType::Deal,
        };
        let (found, _) = properties(conn, connection_id, record_type.name()).await?;
        let definitions: Vec<PropertyDefinition> =
            found.into_iter().map(|p| p.definition).collect();
        match config.validate(&definitions) {
            Ok(valid) => {
                out.insert(record_type, valid);
            }
            Err(error) => tracing::warn!(
                object_type = record_type.name(),
                error = %error,
                "a stored mapping no longer validates; the default mapping is used"
            ),
        }
    }
    Ok(out)
}
