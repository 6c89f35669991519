//! HubSpot's request and response shapes as serde structs. Unknown fields are ignored so new
//! HubSpot fields never break decoding; property values stay strings (the `domain` crate
//! parses them), and `None` means HubSpot sent `null`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// Property values as HubSpot sends them. A number or boolean where a string was documented
/// is kept as its JSON text rather than failing the whole page.
pub type Properties = BTreeMap<String, Option<String>>;

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

fn lenient_required_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(lenient_string(d)?.unwrap_or_default())
}

fn lenient_properties<'de, D: Deserializer<'de>>(d: D) -> Result<Properties, D::Error> {
    let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s),
                other => Some(other.to_string()),
            };
            (k, v)
        })
        .collect())
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A CRM record (contact, company, deal, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmObject {
    /// Record id (also `hs_object_id`).
    pub id: String,
    /// Requested property values.
    #[serde(default, deserialize_with = "lenient_properties")]
    pub properties: Properties,
    /// Value history per property, when requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties_with_history: Option<BTreeMap<String, Vec<PropertyHistoryEntry>>>,
    /// Creation instant.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Last modification instant.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// In the recycle bin.
    #[serde(default)]
    pub archived: bool,
    /// When it was archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<DateTime<Utc>>,
    /// v3 embedded associations, keyed by plural object type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub associations: Option<BTreeMap<String, AssociatedIds>>,
    /// `new` on upsert results: the record was created.
    #[serde(default, rename = "new", skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

impl CrmObject {
    /// A property's value, `None` when absent or null.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }
}

/// One historical value of a property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyHistoryEntry {
    /// The value then.
    #[serde(default, deserialize_with = "lenient_string")]
    pub value: Option<String>,
    /// When it was set (ISO 8601).
    #[serde(default)]
    pub timestamp: Option<String>,
    /// What set it (`CRM_UI`, `API`, ...).
    #[serde(default)]
    pub source_type: Option<String>,
    /// Finer source id.
    #[serde(default)]
    pub source_id: Option<String>,
}

/// The v3 `associations` block of one type on a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AssociatedIds {
    /// Associated records; the same id may appear twice (primary and unlabeled).
    #[serde(default)]
    pub results: Vec<AssociatedId>,
    /// More of them, when there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
}

/// One associated record in a v3 read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssociatedId {
    /// The other record's id.
    #[serde(deserialize_with = "lenient_required_string")]
    pub id: String,
    /// e.g. `contact_to_company_unlabeled`.
    #[serde(rename = "type", default)]
    pub association_type: String,
}

/// Forward cursor paging; absent `next` means the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Paging {
    /// The next page, if any.
    #[serde(default)]
    pub next: Option<NextPage>,
}

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextPage {
    /// Opaque cursor.
    #[serde(deserialize_with = "lenient_required_string")]
    pub after: String,
    /// Informational link.
    #[serde(default)]
    pub link: Option<String>,
}

/// A page of a list or search.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Page<T> {
    /// Items on this page.
    #[serde(default = "Vec::new", deserialize_with = "null_as_default")]
    pub results: Vec<T>,
    /// Cursor for the next page.
    #[serde(default)]
    pub paging: Option<Paging>,
    /// Search only: matches in total (capped at 10,000 reachable).
    #[serde(default)]
    pub total: Option<u64>,
}

impl<T> Page<T> {
    /// The cursor of the next page, `None` on the last page.
    pub fn next_after(&self) -> Option<&str> {
        self.paging
            .as_ref()?
            .next
            .as_ref()
            .map(|n| n.after.as_str())
    }
}

/// HubSpot's `StandardError`, as found in batch `errors[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct StandardError {
    /// Usually `error`.
    pub status: Option<String>,
    /// The failed input's id, when given.
    pub id: Option<String>,
    /// e.g. `OBJECT_NOT_FOUND`, `VALIDATION_ERROR`.
    pub category: Option<String>,
    /// Finer classification.
    pub sub_category: Option<serde_json::Value>,
    /// Human-readable text.
    pub message: String,
    /// Per-field errors.
    #[serde(skip_serializing)]
    pub errors: Vec<crate::error::FieldError>,
    /// e.g. `{"ids": ["1", "2"]}` or `{"objectWriteTraceId": ["t-2"]}`.
    pub context: BTreeMap<String, Vec<String>>,
}

impl StandardError {
    /// The input ids this error is about.
    pub fn failed_ids(&self) -> Vec<String> {
        // `fromObjectId` names the input of a v4 association read.
        let from_context = ["ids", "objectWriteTraceId", "id", "fromObjectId"]
            .iter()
            .filter_map(|k| self.context.get(*k))
            .flatten()
            .cloned();
        self.id.iter().cloned().chain(from_context).collect()
    }
}

/// A batch response; `errors` is filled on 207.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: Deserialize<'de>"))]
pub struct BatchResponse<T> {
    /// `COMPLETE` etc.
    #[serde(default)]
    pub status: Option<String>,
    /// Successful items.
    #[serde(default = "Vec::new", deserialize_with = "null_as_default")]
    pub results: Vec<T>,
    /// Failed inputs.
    #[serde(default = "Vec::new", deserialize_with = "null_as_default")]
    pub errors: Vec<StandardError>,
}

/// An id reference (`{"id": "..."}`), used for batch read/archive inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectId {
    /// The id.
    #[serde(deserialize_with = "lenient_required_string")]
    pub id: String,
}

/// A record to create.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreateInput {
    /// Property values.
    pub properties: BTreeMap<String, String>,
    /// Associations to create with it (raw HubSpot JSON).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub associations: Vec<serde_json::Value>,
    /// Unique per input: turns on 207 partial results and names failed inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
}

/// A record to update (by id, or by a unique property with `id_property`) or upsert.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UpdateInput {
    /// Record id, or the unique value when `id_property` is set.
    pub id: String,
    /// e.g. `email` for contacts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_property: Option<String>,
    /// New values; an empty string clears a value.
    pub properties: BTreeMap<String, String>,
    /// Unique per input: names failed inputs in 207 responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
}

/// Search filter operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operator {
    /// Equal.
    Eq,
    /// Not equal.
    Neq,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Between `value` and `high_value`.
    Between,
    /// In `values`.
    In,
    /// Not in `values`.
    NotIn,
    /// Has a value.
    HasProperty,
    /// Has no value.
    NotHasProperty,
    /// Contains a token (`*` wildcards).
    ContainsToken,
    /// Does not contain a token.
    NotContainsToken,
}

/// One search filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Property to test.
    pub property_name: String,
    /// How.
    pub operator: Operator,
    /// Operand (dates as epoch-ms strings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Operands for `IN` / `NOT_IN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// Upper bound for `BETWEEN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
}

impl Filter {
    /// `property <op> value`.
    pub fn new(property_name: &str, operator: Operator, value: impl Into<String>) -> Self {
        Self {
            property_name: property_name.to_owned(),
            operator,
            value: Some(value.into()),
            values: None,
            high_value: None,
        }
    }
}

/// Filters ANDed together; groups are ORed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FilterGroup {
    /// The filters.
    pub filters: Vec<Filter>,
}

/// Sort order of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    /// Oldest / smallest first.
    Ascending,
    /// Newest / largest first.
    Descending,
}

/// One sort (HubSpot allows only one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sort {
    /// Property to sort by.
    pub property_name: String,
    /// Direction.
    pub direction: Direction,
}

/// A CRM search request.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    /// ORed groups of ANDed filters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_groups: Vec<FilterGroup>,
    /// At most one sort.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sorts: Vec<Sort>,
    /// Properties to return.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<String>,
    /// Free-text query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Page size, at most 200.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Offset cursor (an integer string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// A property definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Property {
    /// Internal name.
    pub name: String,
    /// Display label.
    pub label: String,
    /// `string`, `number`, `date`, `datetime`, `enumeration`, `bool`, `phone_number`.
    #[serde(rename = "type")]
    pub property_type: String,
    /// UI field type, e.g. `text`, `number`, `select`.
    pub field_type: String,
    /// Group the property belongs to.
    pub group_name: String,
    /// Description.
    pub description: String,
    /// Options of enumerations.
    pub options: Vec<PropertyOption>,
    /// Defined by HubSpot rather than the portal.
    pub hubspot_defined: Option<bool>,
    /// Values must be unique.
    pub has_unique_value: Option<bool>,
    /// Hidden in the UI.
    pub hidden: Option<bool>,
    /// Shown on forms.
    pub form_field: Option<bool>,
    /// Archived.
    pub archived: Option<bool>,
    /// Computed by HubSpot from other properties; never writable.
    pub calculated: Option<bool>,
    /// What may be changed about the property and its values. `read_only_value` is what
    /// tells a mapping that hubscore cannot write the property back.
    pub modification_metadata: Option<ModificationMetadata>,
}

/// `modificationMetadata` of a property definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ModificationMetadata {
    /// The property can be archived.
    pub archivable: bool,
    /// The definition cannot be changed.
    pub read_only_definition: bool,
    /// Values cannot be written through the API.
    pub read_only_value: bool,
    /// The options cannot be changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_options: Option<bool>,
}

/// One option of an enumeration property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PropertyOption {
    /// Label.
    pub label: String,
    /// Stored value.
    pub value: String,
    /// Order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i64>,
    /// Hidden.
    pub hidden: bool,
}

/// A property to create.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PropertyCreate {
    /// Internal name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Data type.
    #[serde(rename = "type")]
    pub property_type: String,
    /// UI field type.
    pub field_type: String,
    /// Group.
    pub group_name: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Options for enumerations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PropertyOption>,
    /// Unique values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_unique_value: Option<bool>,
    /// Hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    /// On forms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_field: Option<bool>,
    /// e.g. `unformatted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_display_hint: Option<String>,
}

/// A property group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PropertyGroup {
    /// Internal name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i64>,
    /// Archived.
    #[serde(skip_serializing)]
    pub archived: bool,
}

/// One association type on a v4 association.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationType {
    /// `HUBSPOT_DEFINED` or `USER_DEFINED`.
    #[serde(default)]
    pub category: String,
    /// Type id (e.g. 279 contact→company unlabeled, 1 primary).
    pub type_id: i64,
    /// Label, `None` for unlabeled types.
    #[serde(default)]
    pub label: Option<String>,
}

/// An associated record in a v4 read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociatedObject {
    /// The other record's id (HubSpot sends a string or a number; both become a string).
    #[serde(deserialize_with = "lenient_required_string")]
    pub to_object_id: String,
    /// The types linking the two.
    #[serde(default)]
    pub association_types: Vec<AssociationType>,
}

/// All associations of one `from` record, every page followed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectAssociations {
    /// The record the associations start from.
    pub from_id: String,
    /// Everything it is associated with.
    pub to: Vec<AssociatedObject>,
}

/// Raw v4 batch result for one input.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AssociationBatchResult {
    pub from: ObjectId,
    #[serde(default)]
    pub to: Vec<AssociatedObject>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

/// The outcome of a v4 batch read: associations found, plus inputs HubSpot reported on.
#[derive(Debug, Clone, Default)]
pub struct AssociationBatch {
    /// One entry per `from` id that had associations.
    pub results: Vec<ObjectAssociations>,
    /// Errors for inputs (e.g. ids with no associations, or unknown ids).
    pub errors: Vec<StandardError>,
}

/// A CRM owner (user or queue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Owner {
    /// Owner id (the value of `hubspot_owner_id`).
    #[serde(deserialize_with = "lenient_required_string")]
    pub id: String,
    /// Email.
    pub email: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// `PERSON` or `QUEUE`.
    #[serde(rename = "type")]
    pub owner_type: Option<String>,
    /// User id, `None` for deactivated users.
    pub user_id: Option<i64>,
    /// Archived.
    pub archived: bool,
    /// Teams.
    pub teams: Vec<OwnerTeam>,
}

/// A team an owner belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct OwnerTeam {
    /// Team id.
    #[serde(deserialize_with = "lenient_required_string")]
    pub id: String,
    /// Name.
    pub name: String,
    /// The owner's primary team.
    pub primary: bool,
}

/// A deal (or other object) pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Pipeline {
    /// Pipeline id, e.g. `default`.
    pub id: String,
    /// Label.
    pub label: String,
    /// Order.
    pub display_order: i64,
    /// Archived.
    pub archived: bool,
    /// Stages in the pipeline.
    pub stages: Vec<PipelineStage>,
}

/// A pipeline stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PipelineStage {
    /// Stage id, e.g. `closedwon`.
    pub id: String,
    /// Label.
    pub label: String,
    /// Order.
    pub display_order: i64,
    /// Archived.
    pub archived: bool,
    /// String-valued metadata: `probability` ("0.0".."1.0"), `isClosed` ("true"/"false").
    #[serde(deserialize_with = "lenient_properties")]
    pub metadata: Properties,
}

/// A timeline event to create (v3 event templates).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEvent {
    /// The app's event template.
    pub event_template_id: String,
    /// Your id for this event (idempotency).
    pub id: String,
    /// Template token values.
    pub tokens: BTreeMap<String, String>,
    /// Target record id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Target contact email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Target company domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Target visitor token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utk: Option<String>,
    /// When it happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Free-form data for the detail template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_data: Option<serde_json::Value>,
}

/// A created timeline event as HubSpot echoes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TimelineEventResponse {
    /// Your event id.
    pub id: String,
    /// Template id.
    #[serde(deserialize_with = "lenient_required_string")]
    pub event_template_id: String,
    /// Target object type.
    pub object_type: Option<String>,
    /// Target record id.
    #[serde(deserialize_with = "lenient_string")]
    pub object_id: Option<String>,
    /// Token values.
    pub tokens: BTreeMap<String, String>,
    /// When HubSpot stored it.
    pub created_at: Option<String>,
}

/// A timeline event template of an OAuth app, as HubSpot answers it
/// ([`crate::DeveloperClient`]). Its `id` is the `event_template_id` of its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct EventTemplate {
    /// Template id (a string of digits).
    #[serde(deserialize_with = "lenient_required_string")]
    pub id: String,
    /// Name.
    #[serde(deserialize_with = "lenient_required_string")]
    pub name: String,
    /// The type of record its events go on: `contacts`, `companies` or `deals`.
    #[serde(deserialize_with = "lenient_required_string")]
    pub object_type: String,
    /// Markdown/Handlebars header.
    #[serde(deserialize_with = "lenient_string")]
    pub header_template: Option<String>,
    /// Markdown/Handlebars body.
    #[serde(deserialize_with = "lenient_string")]
    pub detail_template: Option<String>,
    /// The tokens its events may fill in.
    #[serde(deserialize_with = "null_as_default")]
    pub tokens: Vec<EventTemplateToken>,
}

/// A token an event template declares; events set it in [`TimelineEvent::tokens`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct EventTemplateToken {
    /// The name events use.
    #[serde(deserialize_with = "lenient_required_string")]
    pub name: String,
    /// Shown to users.
    #[serde(deserialize_with = "lenient_required_string")]
    pub label: String,
    /// `string`, `number`, `date` or `enumeration`.
    #[serde(rename = "type", deserialize_with = "lenient_required_string")]
    pub kind: String,
    /// The choices of an `enumeration` token (required for those, absent for the others).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub options: Vec<TokenOption>,
    /// A CRM property of the record the token's value is also written to.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub object_property_name: Option<String>,
}

/// One choice of an `enumeration` event template token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TokenOption {
    /// Shown to users.
    #[serde(deserialize_with = "lenient_required_string")]
    pub label: String,
    /// What events send.
    #[serde(deserialize_with = "lenient_required_string")]
    pub value: String,
}

/// An event template to create ([`crate::DeveloperClient::create_event_template`]).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NewEventTemplate {
    /// Name (required).
    pub name: String,
    /// `contacts`, `companies` or `deals` (required).
    pub object_type: String,
    /// Markdown/Handlebars header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_template: Option<String>,
    /// Markdown/Handlebars body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail_template: Option<String>,
    /// The tokens its events may fill in.
    pub tokens: Vec<EventTemplateToken>,
}

/// `GET /account-info/v3/details`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct AccountDetails {
    /// The portal (HubSpot account) id.
    pub portal_id: i64,
    /// `STANDARD`, `DEVELOPER_TEST`, `SANDBOX`, `APP_DEVELOPER`.
    pub account_type: Option<String>,
    /// e.g. `US/Eastern`.
    pub time_zone: Option<String>,
    /// e.g. `USD`.
    pub company_currency: Option<String>,
    /// Other currencies.
    pub additional_currencies: Vec<String>,
    /// e.g. `-05:00`.
    pub utc_offset: Option<String>,
    /// Offset in ms.
    pub utc_offset_milliseconds: Option<i64>,
    /// e.g. `app.hubspot.com`.
    pub ui_domain: Option<String>,
    /// e.g. `na1`.
    pub data_hosting_location: Option<String>,
}

/// One entry of `GET /account-info/v3/api-usage/daily/private-apps`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct DailyUsage {
    /// `private-apps-api-calls-daily`.
    pub name: String,
    /// Allowed per day.
    pub usage_limit: Option<u64>,
    /// Used today.
    pub current_usage: Option<u64>,
    /// When the quota resets.
    pub resets_at: Option<DateTime<Utc>>,
    /// `SUCCESS`, `CACHED`, ...
    pub fetch_status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_string_values_and_tolerate_nulls_numbers_and_new_fields() {
        let json = r#"{"id":"51","properties":{"email":"a@b.example","annualrevenue":"1000","score":7,"firstname":null},
            "createdAt":"2025-11-03T09:12:44.120Z","updatedAt":"2026-02-14T16:01:09.874Z","archived":false,"url":"x","brandNew":{}}"#;
        let record: CrmObject = serde_json::from_str(json).unwrap();
        assert_eq!(record.property("annualrevenue"), Some("1000"));
        assert_eq!(record.property("score"), Some("7"));
        assert_eq!(record.property("firstname"), None);
        assert!(record.properties.contains_key("firstname"));
        let null_props: CrmObject =
            serde_json::from_str(r#"{"id":"1","properties":null}"#).unwrap();
        assert!(null_props.properties.is_empty());
    }

    #[test]
    fn association_targets_may_be_numbers_or_strings() {
        let json = r#"{"from":{"id":"7001"},"to":[{"toObjectId":8123,"associationTypes":[{"category":"HUBSPOT_DEFINED","typeId":5,"label":"Primary"}]},
            {"toObjectId":"8124","associationTypes":[{"category":"HUBSPOT_DEFINED","typeId":341,"label":null}]}]}"#;
        let result: AssociationBatchResult = serde_json::from_str(json).unwrap();
        assert_eq!(result.to[0].to_object_id, "8123");
        assert_eq!(result.to[1].to_object_id, "8124");
        assert_eq!(result.to[1].association_types[0].label, None);
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        let page: Page<CrmObject> = serde_json::from_str(r#"{"results":[]}"#).unwrap();
        assert_eq!(page.next_after(), None);
        let page: Page<CrmObject> =
            serde_json::from_str(r#"{"results":[],"paging":{"next":{"after":"52","link":"x"}}}"#)
                .unwrap();
        assert_eq!(page.next_after(), Some("52"));
    }

    #[test]
    fn search_requests_serialise_as_hubspot_expects() {
        let request = SearchRequest {
            filter_groups: vec![FilterGroup {
                filters: vec![Filter::new(
                    "hs_lastmodifieddate",
                    Operator::Gte,
                    "1767225600000",
                )],
            }],
            sorts: vec![Sort {
                property_name: "hs_lastmodifieddate".into(),
                direction: Direction::Ascending,
            }],
            limit: Some(200),
            ..SearchRequest::default()
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["filterGroups"][0]["filters"][0]["operator"], "GTE");
        assert_eq!(json["sorts"][0]["direction"], "ASCENDING");
        assert!(json.get("after").is_none());
    }

    #[test]
    fn event_templates_serialise_camel_case_and_decode_leniently() {
        let new = NewEventTemplate {
            name: "Health score".into(),
            object_type: "companies".into(),
            header_template: Some("Now {{score}}".into()),
            tokens: vec![EventTemplateToken {
                name: "band".into(),
                label: "Band".into(),
                kind: "enumeration".into(),
                options: vec![TokenOption {
                    label: "Healthy".into(),
                    value: "healthy".into(),
                }],
                ..EventTemplateToken::default()
            }],
            ..NewEventTemplate::default()
        };
        let json = serde_json::to_value(&new).unwrap();
        assert_eq!(json["objectType"], "companies");
        assert_eq!(json["headerTemplate"], "Now {{score}}");
        assert!(json.get("detailTemplate").is_none());
        assert_eq!(json["tokens"][0]["type"], "enumeration");
        assert_eq!(json["tokens"][0]["options"][0]["value"], "healthy");
        assert!(json["tokens"][0].get("objectPropertyName").is_none());
        let template: EventTemplate = serde_json::from_str(
            r#"{"id":1001001,"name":"x","objectType":"contacts","headerTemplate":null,"tokens":null,"createdAt":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(template.id, "1001001");
        assert_eq!(template.header_template, None);
        assert!(template.tokens.is_empty());
    }

    #[test]
    fn partial_batch_errors_name_their_inputs() {
        let error: StandardError = serde_json::from_str(
            r#"{"status":"error","category":"OBJECT_NOT_FOUND","message":"missing","context":{"ids":["424242","7"]}}"#,
        )
        .unwrap();
        assert_eq!(
            error.failed_ids(),
            vec!["424242".to_owned(), "7".to_owned()]
        );
    }
}
