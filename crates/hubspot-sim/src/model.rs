//! The CRM data model the simulator keeps in memory: object types, property
//! definitions, records and their stores, pipelines and owners. The definitions a new
//! portal starts with are in [`crate::catalogue`].
//!
//! It holds data and enforces HubSpot's value rules; it knows nothing of HTTP,
//! auth or webhooks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

/// The CRM object types the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ObjectType {
    /// `contacts`, `0-1`.
    Contacts,
    /// `companies`, `0-2`.
    Companies,
    /// `deals`, `0-3`.
    Deals,
}

impl ObjectType {
    /// All three types, in HubSpot's type-id order.
    pub const ALL: [ObjectType; 3] = [
        ObjectType::Contacts,
        ObjectType::Companies,
        ObjectType::Deals,
    ];

    /// Parses a path segment: the plural name, the singular name or the numeric type id.
    pub fn parse(segment: &str) -> Option<ObjectType> {
        match segment.to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Some(ObjectType::Contacts),
            "companies" | "company" | "0-2" => Some(ObjectType::Companies),
            "deals" | "deal" | "0-3" => Some(ObjectType::Deals),
            _ => None,
        }
    }

    /// The plural name used in paths and in v3 association maps.
    pub fn plural(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
            ObjectType::Deals => "deals",
        }
    }

    /// The singular name used in webhook subscription types and association type names.
    pub fn singular(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contact",
            ObjectType::Companies => "company",
            ObjectType::Deals => "deal",
        }
    }

    /// The numeric type id (`0-1` ...).
    pub fn type_id(self) -> &'static str {
        match self {
            ObjectType::Contacts => "0-1",
            ObjectType::Companies => "0-2",
            ObjectType::Deals => "0-3",
        }
    }

    /// The property that moves on every change.
    pub fn last_modified_property(self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    /// The properties returned when a read names none (hubspot-api.md §3.3).
    pub fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contacts => &[
                "createdate",
                "email",
                "firstname",
                "lastname",
                "lastmodifieddate",
                "hs_object_id",
            ],
            ObjectType::Companies => &[
                "name",
                "domain",
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
            ],
            ObjectType::Deals => &[
                "dealname",
                "amount",
                "closedate",
                "pipeline",
                "dealstage",
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
            ],
        }
    }

    /// The upper-case name HubSpot uses in messages (`CONTACT`).
    pub fn upper(self) -> &'static str {
        match self {
            ObjectType::Contacts => "CONTACT",
            ObjectType::Companies => "COMPANY",
            ObjectType::Deals => "DEAL",
        }
    }

    /// The granular scope that reads this type.
    pub fn read_scope(self) -> &'static str {
        match self {
            ObjectType::Contacts => "crm.objects.contacts.read",
            ObjectType::Companies => "crm.objects.companies.read",
            ObjectType::Deals => "crm.objects.deals.read",
        }
    }

    /// The granular scope that writes this type.
    pub fn write_scope(self) -> &'static str {
        match self {
            ObjectType::Contacts => "crm.objects.contacts.write",
            ObjectType::Companies => "crm.objects.companies.write",
            ObjectType::Deals => "crm.objects.deals.write",
        }
    }

    /// The scope that reads this type's schema (properties).
    pub fn schema_read_scope(self) -> &'static str {
        match self {
            ObjectType::Contacts => "crm.schemas.contacts.read",
            ObjectType::Companies => "crm.schemas.companies.read",
            ObjectType::Deals => "crm.schemas.deals.read",
        }
    }

    /// The scope that writes this type's schema (properties).
    pub fn schema_write_scope(self) -> &'static str {
        match self {
            ObjectType::Contacts => "crm.schemas.contacts.write",
            ObjectType::Companies => "crm.schemas.companies.write",
            ObjectType::Deals => "crm.schemas.deals.write",
        }
    }
}

/// Formats epoch milliseconds the way HubSpot does: ISO 8601 UTC with milliseconds and `Z`.
pub fn iso(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// Parses an ISO 8601 instant, a `YYYY-MM-DD` date or epoch milliseconds into epoch ms.
pub fn parse_instant(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Some(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis());
    }
    None
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A property's data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropType {
    /// `string`
    String,
    /// `number`
    Number,
    /// `date` (midnight UTC)
    Date,
    /// `datetime`
    Datetime,
    /// `enumeration`
    Enumeration,
    /// `bool`
    Bool,
    /// `phone_number`
    PhoneNumber,
}

impl PropType {
    /// Parses HubSpot's `type` name.
    pub fn parse(name: &str) -> Option<PropType> {
        Some(match name {
            "string" => PropType::String,
            "number" => PropType::Number,
            "date" => PropType::Date,
            "datetime" => PropType::Datetime,
            "enumeration" => PropType::Enumeration,
            "bool" => PropType::Bool,
            "phone_number" => PropType::PhoneNumber,
            _ => return None,
        })
    }

    /// HubSpot's `type` name.
    pub fn name(self) -> &'static str {
        match self {
            PropType::String => "string",
            PropType::Number => "number",
            PropType::Date => "date",
            PropType::Datetime => "datetime",
            PropType::Enumeration => "enumeration",
            PropType::Bool => "bool",
            PropType::PhoneNumber => "phone_number",
        }
    }

    /// Whether `field_type` is a valid pairing for this type (hubspot-api.md §4).
    pub fn accepts_field_type(self, field_type: &str) -> bool {
        let allowed: &[&str] = match self {
            PropType::Bool => &["booleancheckbox", "calculation_equation"],
            PropType::Enumeration => &[
                "booleancheckbox",
                "checkbox",
                "radio",
                "select",
                "calculation_equation",
            ],
            PropType::Date | PropType::Datetime => &["date"],
            PropType::String => &[
                "text",
                "textarea",
                "html",
                "phonenumber",
                "file",
                "calculation_equation",
            ],
            PropType::Number => &["number", "calculation_equation"],
            PropType::PhoneNumber => &["phonenumber", "text"],
        };
        allowed.contains(&field_type)
    }
}

/// One option of an enumeration property.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropOption {
    /// Shown to users.
    pub label: String,
    /// Stored in records.
    pub value: String,
    /// Order in the UI.
    pub display_order: i64,
    /// Hidden from forms.
    pub hidden: bool,
}

/// A property definition.
#[derive(Debug, Clone)]
pub struct PropertyDef {
    /// Internal name; shared by every record that carries the property.
    pub name: Arc<str>,
    /// Label.
    pub label: String,
    /// Data type.
    pub ptype: PropType,
    /// UI field type.
    pub field_type: String,
    /// Group name.
    pub group_name: String,
    /// Description.
    pub description: String,
    /// Enumeration options.
    pub options: Vec<PropOption>,
    /// Defined by HubSpot (not custom).
    pub hubspot_defined: bool,
    /// Values must be unique per object type.
    pub has_unique_value: bool,
    /// The API cannot write it.
    pub read_only_value: bool,
    /// HubSpot computes its value.
    pub calculated: bool,
    /// Hidden in the UI.
    pub hidden: bool,
    /// Order in the UI.
    pub display_order: i64,
    /// Shown on forms.
    pub form_field: bool,
    /// Creation instant (ms).
    pub created_ms: i64,
    /// Last change (ms).
    pub updated_ms: i64,
    /// Archived.
    pub archived: bool,
}

impl PropertyDef {
    /// The Property JSON HubSpot returns.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": &*self.name,
            "label": self.label,
            "type": self.ptype.name(),
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options,
            "displayOrder": self.display_order,
            "calculated": self.calculated,
            "externalOptions": false,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "hubspotDefined": self.hubspot_defined,
            "formField": self.form_field,
            "dataSensitivity": "non_sensitive",
            "archived": self.archived,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms),
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value,
            },
        })
    }
}

/// A property group.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyGroup {
    /// Internal name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Order in the UI.
    pub display_order: i64,
    /// Archived.
    pub archived: bool,
}

/// One CRM record. Property names are shared `Arc<str>` from the schema, so a
/// hundred thousand records do not each own copies of the same names.
#[derive(Debug, Clone)]
pub struct Record {
    /// Record id.
    pub id: u64,
    /// Property values; absent means no value.
    pub props: BTreeMap<Arc<str>, String>,
    /// `createdAt` in ms.
    pub created_ms: i64,
    /// `updatedAt` in ms.
    pub updated_ms: i64,
    /// When it was archived, if it is.
    pub archived_ms: Option<i64>,
}

impl Record {
    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.props.get(name).map(String::as_str)
    }
}

/// The records of one object type.
#[derive(Debug, Default)]
pub struct ObjectStore {
    /// Live records by id (ordered, so cursor paging is a range scan).
    pub live: BTreeMap<u64, Record>,
    /// Archived (deleted) records, restorable.
    pub archived: BTreeMap<u64, Record>,
    /// The next id to hand out.
    pub next_id: u64,
    /// Ids merged away, pointing at the record that absorbed them.
    pub merged_into: HashMap<u64, u64>,
}

/// A property schema per object type, with groups and interned names.
#[derive(Debug, Default)]
pub struct Schema {
    /// Definitions by name.
    pub props: BTreeMap<String, PropertyDef>,
    /// Groups by name.
    pub groups: BTreeMap<String, PropertyGroup>,
}

impl Schema {
    /// The interned name of a defined property.
    pub fn intern(&self, name: &str) -> Option<Arc<str>> {
        self.props.get(name).map(|p| p.name.clone())
    }
}

/// A deal pipeline stage.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Stage id, stored in `dealstage`.
    pub id: String,
    /// Label.
    pub label: String,
    /// Win probability, `0.0` to `1.0`.
    pub probability: f64,
    /// Closed (won or lost).
    pub closed: bool,
}

/// A deal pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Pipeline id, stored in `pipeline`.
    pub id: String,
    /// Label.
    pub label: String,
    /// Stages in order.
    pub stages: Vec<Stage>,
    /// Creation instant (ms).
    pub created_ms: i64,
}

impl Pipeline {
    /// The Pipeline JSON HubSpot returns.
    pub fn to_json(&self, display_order: usize) -> serde_json::Value {
        let stages: Vec<serde_json::Value> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| stage_json(s, i, self.created_ms))
            .collect();
        serde_json::json!({
            "id": self.id, "label": self.label, "displayOrder": display_order, "archived": false,
            "createdAt": iso(self.created_ms), "updatedAt": iso(self.created_ms), "stages": stages,
        })
    }
}

/// The PipelineStage JSON HubSpot returns (probability and isClosed as strings).
pub fn stage_json(s: &Stage, order: usize, created_ms: i64) -> serde_json::Value {
    serde_json::json!({
        "id": s.id, "label": s.label, "displayOrder": order, "archived": false,
        "metadata": {"isClosed": if s.closed { "true" } else { "false" }, "probability": format!("{:.1}", s.probability)},
        "createdAt": iso(created_ms), "updatedAt": iso(created_ms), "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
    })
}

/// An owner (a HubSpot user who can own records).
#[derive(Debug, Clone)]
pub struct Owner {
    /// Owner id (goes into `hubspot_owner_id`).
    pub id: u64,
    /// User id.
    pub user_id: u64,
    /// Email.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Creation instant (ms).
    pub created_ms: i64,
    /// Archived (deactivated).
    pub archived: bool,
}

impl Owner {
    /// The PublicOwner JSON HubSpot returns.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id.to_string(), "email": self.email, "firstName": self.first_name, "lastName": self.last_name,
            "type": "PERSON", "userId": if self.archived { None } else { Some(self.user_id) },
            "userIdIncludingInactive": self.user_id,
            "createdAt": iso(self.created_ms), "updatedAt": iso(self.created_ms), "archived": self.archived,
            "teams": [{"id": "1001", "name": "Sales", "primary": true}],
        })
    }
}
