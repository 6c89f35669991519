//! CRM operations on a portal's data: property validation by HubSpot's rules,
//! create / update / archive / restore / merge / privacy delete, associations with
//! HubSpot's type ids, and the serialisable record views responses are made of.
//!
//! Every mutation returns the [`Change`]s it caused; the caller emits them as
//! webhooks after releasing the lock. Nothing here does I/O.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::model::{ObjectType, PropType, Record, iso, parse_instant};
use crate::state::PortalData;
use crate::webhooks::{Change, ChangeKind};

/// Why one property value was refused.
#[derive(Debug, Clone)]
pub struct PropError {
    /// HubSpot's error code (`PROPERTY_DOESNT_EXIST`, `INVALID_OPTION`, ...).
    pub code: &'static str,
    /// The property.
    pub name: String,
    /// A human message.
    pub message: String,
}

/// Why a CRM operation failed.
#[derive(Debug, Clone)]
pub enum CrmError {
    /// Property values were not valid.
    Invalid(Vec<PropError>),
    /// A contact with that email exists.
    DuplicateEmail(u64),
    /// No such record.
    NotFound(u64),
    /// The request is wrong in another way.
    Validation(String),
}

/// The v4 association type ids of a direction: (unlabeled, primary) (hubspot-api.md §5.3).
pub fn assoc_type_ids(from: ObjectType, to: ObjectType) -> (u32, Option<u32>) {
    use ObjectType::{Companies as Co, Contacts as Ct, Deals as D};
    match (from, to) {
        (Ct, Co) => (279, Some(1)),
        (Co, Ct) => (280, Some(2)),
        (D, Ct) => (3, None),
        (Ct, D) => (4, None),
        (D, Co) => (341, Some(5)),
        (Co, D) => (342, Some(6)),
        (Ct, Ct) => (449, None),
        (Co, Co) => (450, None),
        (D, D) => (451, None),
    }
}

/// The v3 association type name (`contact_to_company`, `contact_to_company_unlabeled`).
pub fn assoc_type_name(from: ObjectType, to: ObjectType, primary: bool) -> String {
    let base = format!("{}_to_{}", from.singular(), to.singular());
    let (_, primary_id) = assoc_type_ids(from, to);
    if primary || primary_id.is_none() {
        base
    } else {
        format!("{base}_unlabeled")
    }
}

/// The v4 label of a type id: "Primary" for primary types, `null` otherwise.
pub fn assoc_label(primary: bool) -> Value {
    if primary {
        Value::String("Primary".to_owned())
    } else {
        Value::Null
    }
}

/// Interprets an association type id for a direction: `Some(primary?)` when it is valid there.
pub fn type_id_is_primary(from: ObjectType, to: ObjectType, type_id: u32) -> Option<bool> {
    let (unlabeled, primary) = assoc_type_ids(from, to);
    if type_id == unlabeled {
        Some(false)
    } else if Some(type_id) == primary {
        Some(true)
    } else {
        None
    }
}

/// The calculated association counts a type carries: (property, associated type).
pub fn association_counts(ot: ObjectType) -> &'static [(&'static str, ObjectType)] {
    match ot {
        ObjectType::Contacts => &[("num_associated_deals", ObjectType::Deals)],
        ObjectType::Companies => &[
            ("num_associated_contacts", ObjectType::Contacts),
            ("num_associated_deals", ObjectType::Deals),
        ],
        ObjectType::Deals => &[("num_associated_contacts", ObjectType::Contacts)],
    }
}

fn json_to_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn invalid(code: &'static str, name: &str, message: String) -> PropError {
    PropError {
        code,
        name: name.to_owned(),
        message,
    }
}

impl PortalData {
    /// Validates and normalises property input; `""` (or null) means clear.
    pub fn normalize(
        &self,
        ot: ObjectType,
        input: &Map<String, Value>,
    ) -> Result<Vec<(Arc<str>, String)>, Vec<PropError>> {
        let schema = self.schema(ot);
        let mut out = Vec::with_capacity(input.len());
        let mut errors = Vec::new();
        for (name, raw) in input {
            let Some(def) = schema.props.get(name.as_str()).filter(|d| !d.archived) else {
                errors.push(invalid(
                    "PROPERTY_DOESNT_EXIST",
                    name,
                    format!("Property \"{name}\" does not exist"),
                ));
                continue;
            };
            if def.read_only_value {
                errors.push(invalid(
                    "READ_ONLY_VALUE",
                    name,
                    format!("{name} is a read only property; its value cannot be set."),
                ));
                continue;
            }
            let Some(value) = json_to_string(raw) else {
                errors.push(invalid(
                    "INVALID_OPTION",
                    name,
                    format!("{name} must be a string"),
                ));
                continue;
            };
            if value.is_empty() {
                out.push((def.name.clone(), value));
                continue;
            }
            let normalized = match def.ptype {
                PropType::Number => value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|_| value.trim().to_owned())
                    .ok_or_else(|| {
                        invalid(
                            "INVALID_DECIMAL",
                            name,
                            format!("{value} was not a valid number."),
                        )
                    }),
                PropType::Datetime => parse_instant(&value).map(iso).ok_or_else(|| {
                    invalid(
                        "INVALID_DATETIME",
                        name,
                        format!("{value} was not a valid datetime."),
                    )
                }),
                PropType::Date => match parse_instant(&value) {
                    Some(ms) if ms.rem_euclid(86_400_000) == 0 => Ok(iso(ms)[..10].to_owned()),
                    Some(_) => Err(invalid(
                        "INVALID_DATE",
                        name,
                        format!("{value} is not at midnight UTC."),
                    )),
                    None => Err(invalid(
                        "INVALID_DATE",
                        name,
                        format!("{value} was not a valid date."),
                    )),
                },
                PropType::Bool => match value.to_ascii_lowercase().as_str() {
                    "true" | "false" => Ok(value.to_ascii_lowercase()),
                    _ => Err(invalid(
                        "INVALID_BOOLEAN",
                        name,
                        format!("{value} was not a valid boolean."),
                    )),
                },
                PropType::Enumeration => {
                    let allowed = |v: &str| -> bool {
                        match name.as_str() {
                            "hubspot_owner_id" => v
                                .parse::<u64>()
                                .is_ok_and(|id| self.owners.contains_key(&id)),
                            "pipeline" if ot == ObjectType::Deals => {
                                self.pipelines.iter().any(|p| p.id == v)
                            }
                            "dealstage" if ot == ObjectType::Deals => self
                                .pipelines
                                .iter()
                                .any(|p| p.stages.iter().any(|s| s.id == v)),
                            _ => def.options.iter().any(|o| o.value == v),
                        }
                    };
                    let multi = def.field_type == "checkbox";
                    let bad: Vec<&str> = if multi {
                        value.split(';').filter(|v| !allowed(v)).collect()
                    } else if allowed(&value) {
                        Vec::new()
                    } else {
                        vec![value.as_str()]
                    };
                    if bad.is_empty() {
                        Ok(value.clone())
                    } else {
                        Err(invalid(
                            "INVALID_OPTION",
                            name,
                            format!(
                                "{} was not one of the allowed options for {name}",
                                bad.join(";")
                            ),
                        ))
                    }
                }
                PropType::String | PropType::PhoneNumber => Ok(value.clone()),
            };
            match normalized {
                Ok(v) => out.push((def.name.clone(), v)),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    fn check_unique(
        &self,
        ot: ObjectType,
        values: &[(Arc<str>, String)],
        except: Option<u64>,
    ) -> Result<(), CrmError> {
        for (name, value) in values {
            if value.is_empty() {
                continue;
            }
            if ot == ObjectType::Contacts && &**name == "email" {
                if let Some(&existing) = self.email_index.get(&value.to_lowercase())
                    && Some(existing) != except
                    && self.store(ot).live.contains_key(&existing)
                {
                    return Err(CrmError::DuplicateEmail(existing));
                }
            } else if self
                .schema(ot)
                .props
                .get(&**name)
                .is_some_and(|d| d.has_unique_value)
            {
                let clash = self
                    .store(ot)
                    .live
                    .values()
                    .any(|r| Some(r.id) != except && r.get(name) == Some(value.as_str()));
                if clash {
                    return Err(CrmError::Invalid(vec![invalid(
                        "INVALID_UNIQUE_VALUE",
                        name,
                        format!(
                            "{value} is already used by another record for the unique property {name}"
                        ),
                    )]));
                }
            }
        }
        Ok(())
    }

    /// Points `email` at contact `id` unless a live contact already holds it: an entry
    /// left by an archived, merged-away or deleted contact must not shadow a live one,
    /// or duplicates slip past the 409 and `idProperty=email` finds nothing.
    fn index_email(&mut self, email: &str, id: u64) {
        let key = email.to_lowercase();
        let held = self
            .email_index
            .get(&key)
            .is_some_and(|e| *e != id && self.store(ObjectType::Contacts).live.contains_key(e));
        if !held {
            self.email_index.insert(key, id);
        }
    }

    /// Contact `gone` no longer holds `email` live: hand the entry to another live
    /// contact with the same email (seeded duplicates), or drop it.
    fn release_email(&mut self, email: &str, gone: u64) {
        let key = email.to_lowercase();
        if self.email_index.get(&key) != Some(&gone) {
            return;
        }
        let heir = self
            .store(ObjectType::Contacts)
            .live
            .values()
            .find(|r| r.id != gone && r.get("email").is_some_and(|e| e.to_lowercase() == key))
            .map(|r| r.id);
        match heir {
            Some(h) => {
                self.email_index.insert(key, h);
            }
            None => {
                self.email_index.remove(&key);
            }
        }
    }

    /// Finds a live record by an id property (`hs_object_id`, `email` for contacts, or a unique property).
    pub fn find_by(&self, ot: ObjectType, id_property: Option<&str>, value: &str) -> Option<u64> {
        match id_property {
            None | Some("hs_object_id") | Some("id") => {
                let id: u64 = value.parse().ok()?;
                let store = self.store(ot);
                if store.live.contains_key(&id) {
                    Some(id)
                } else {
                    store
                        .merged_into
                        .get(&id)
                        .copied()
                        .filter(|p| store.live.contains_key(p))
                }
            }
            Some("email") if ot == ObjectType::Contacts => self
                .email_index
                .get(&value.to_lowercase())
                .copied()
                .filter(|id| self.store(ot).live.contains_key(id)),
            Some(prop) => self
                .store(ot)
                .live
                .values()
                .find(|r| r.get(prop) == Some(value))
                .map(|r| r.id),
        }
    }

    /// Creates a record from validated values.
    pub fn create(
        &mut self,
        ot: ObjectType,
        values: Vec<(Arc<str>, String)>,
        now: i64,
    ) -> Result<(u64, Vec<Change>), CrmError> {
        let has = |n: &str| values.iter().any(|(k, v)| &**k == n && !v.is_empty());
        let missing: Vec<&str> = match ot {
            ObjectType::Deals => ["dealname", "dealstage", "pipeline"]
                .into_iter()
                .filter(|n| !has(n))
                .collect(),
            ObjectType::Companies if !has("name") && !has("domain") => vec!["name"],
            _ => Vec::new(),
        };
        if !missing.is_empty() {
            return Err(CrmError::Invalid(
                missing
                    .iter()
                    .map(|n| {
                        invalid(
                            "REQUIRED_PROPERTY",
                            n,
                            format!("Property \"{n}\" is required"),
                        )
                    })
                    .collect(),
            ));
        }
        self.check_unique(ot, &values, None)?;
        self.check_stage(ot, &values, None)?;
        let store = self.store_mut(ot);
        let id = store.next_id;
        store.next_id += 1;
        let created = values
            .iter()
            .find(|(k, _)| &**k == "createdate")
            .and_then(|(_, v)| parse_instant(v))
            .unwrap_or(now);
        let mut record = Record {
            id,
            props: Default::default(),
            created_ms: created,
            updated_ms: now,
            archived_ms: None,
        };
        let schema = self.schema(ot);
        for (name, value) in [
            ("hs_object_id", id.to_string()),
            ("createdate", iso(created)),
        ] {
            if let Some(k) = schema.intern(name) {
                record.props.insert(k, value);
            }
        }
        for (k, v) in values {
            if !v.is_empty() {
                record.props.insert(k, v);
            }
        }
        self.derive(ot, &mut record);
        self.stamp_modified(ot, &mut record, now);
        let email = record.get("email").map(str::to_owned);
        self.store_mut(ot).live.insert(id, record);
        if ot == ObjectType::Contacts
            && let Some(email) = email
        {
            self.index_email(&email, id);
        }
        Ok((
            id,
            vec![Change {
                ot,
                object_id: id,
                kind: ChangeKind::Creation,
            }],
        ))
    }

    fn check_stage(
        &self,
        ot: ObjectType,
        values: &[(Arc<str>, String)],
        existing: Option<&Record>,
    ) -> Result<(), CrmError> {
        if ot != ObjectType::Deals {
            return Ok(());
        }
        let get = |n: &str| {
            values
                .iter()
                .find(|(k, _)| &**k == n)
                .map(|(_, v)| v.as_str())
        };
        let pipeline = get("pipeline")
            .or_else(|| existing.and_then(|r| r.get("pipeline")))
            .unwrap_or("default");
        let Some(stage) = get("dealstage").or_else(|| existing.and_then(|r| r.get("dealstage")))
        else {
            return Ok(());
        };
        let valid = self
            .pipelines
            .iter()
            .any(|p| p.id == pipeline && p.stages.iter().any(|s| s.id == stage));
        if valid {
            Ok(())
        } else {
            Err(CrmError::Invalid(vec![invalid(
                "INVALID_OPTION",
                "dealstage",
                format!("{stage} is not a valid deal stage of pipeline {pipeline}"),
            )]))
        }
    }

    /// Recomputes calculated deal properties from the stage.
    fn derive(&self, ot: ObjectType, record: &mut Record) {
        if ot != ObjectType::Deals {
            return;
        }
        let stage = record.get("dealstage").and_then(|id| {
            self.pipelines
                .iter()
                .flat_map(|p| p.stages.iter())
                .find(|s| s.id == id)
                .cloned()
        });
        let schema = self.schema(ot);
        if let Some(stage) = stage {
            for (name, value) in [
                (
                    "hs_deal_stage_probability",
                    format!("{}", stage.probability),
                ),
                ("hs_is_closed", stage.closed.to_string()),
                (
                    "hs_is_closed_won",
                    (stage.closed && stage.probability >= 1.0).to_string(),
                ),
            ] {
                if let Some(k) = schema.intern(name) {
                    record.props.insert(k, value);
                }
            }
        }
    }

    fn stamp_modified(&self, ot: ObjectType, record: &mut Record, now: i64) {
        record.updated_ms = now;
        let stamp = iso(now);
        let schema = self.schema(ot);
        if let Some(k) = schema.intern("hs_lastmodifieddate") {
            record.props.insert(k, stamp.clone());
        }
        if let Some(k) = schema.intern("lastmodifieddate") {
            record.props.insert(k, stamp);
        }
    }

    /// Sets the last-modified instant without any other change (the touch control).
    pub fn touch(&mut self, ot: ObjectType, id: u64, at_ms: i64) {
        let Some(mut record) = self.store_mut(ot).live.remove(&id) else {
            return;
        };
        self.stamp_modified(ot, &mut record, at_ms);
        self.store_mut(ot).live.insert(id, record);
    }

    /// Updates a live record; one change per property whose value really changed.
    pub fn update(
        &mut self,
        ot: ObjectType,
        id: u64,
        values: Vec<(Arc<str>, String)>,
        now: i64,
    ) -> Result<Vec<Change>, CrmError> {
        if !self.store(ot).live.contains_key(&id) {
            return Err(CrmError::NotFound(id));
        }
        self.check_unique(ot, &values, Some(id))?;
        self.check_stage(ot, &values, self.store(ot).live.get(&id))?;
        let Some(mut record) = self.store_mut(ot).live.remove(&id) else {
            return Err(CrmError::NotFound(id));
        };
        let mut changes = Vec::new();
        let old_email = record.get("email").map(str::to_lowercase);
        for (k, v) in values {
            let old = record.props.get(&k).map(String::as_str).unwrap_or("");
            if old == v {
                continue;
            }
            changes.push(Change {
                ot,
                object_id: id,
                kind: ChangeKind::PropertyChange {
                    name: k.to_string(),
                    value: v.clone(),
                },
            });
            if v.is_empty() {
                record.props.remove(&k);
            } else {
                record.props.insert(k, v);
            }
        }
        let before: Vec<(Arc<str>, String)> = record
            .props
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.derive(ot, &mut record);
        for (k, v) in &record.props {
            if before.iter().any(|(bk, bv)| bk == k && bv != v) {
                changes.push(Change {
                    ot,
                    object_id: id,
                    kind: ChangeKind::PropertyChange {
                        name: k.to_string(),
                        value: v.clone(),
                    },
                });
            }
        }
        self.stamp_modified(ot, &mut record, now);
        let new_email = record.get("email").map(str::to_lowercase);
        self.store_mut(ot).live.insert(id, record);
        if ot == ObjectType::Contacts && old_email != new_email {
            if let Some(old) = old_email {
                self.release_email(&old, id);
            }
            if let Some(new) = new_email {
                self.index_email(&new, id);
            }
        }
        Ok(changes)
    }

    /// Moves a record to the recycle bin.
    pub fn archive(&mut self, ot: ObjectType, id: u64, now: i64) -> Vec<Change> {
        let store = self.store_mut(ot);
        let Some(mut record) = store.live.remove(&id) else {
            return Vec::new();
        };
        record.archived_ms = Some(now);
        let email = record.get("email").map(str::to_owned);
        store.archived.insert(id, record);
        if ot == ObjectType::Contacts
            && let Some(email) = email
        {
            self.release_email(&email, id);
        }
        self.refresh_around(ot, id);
        vec![Change {
            ot,
            object_id: id,
            kind: ChangeKind::Deletion,
        }]
    }

    /// Brings a record back from the recycle bin.
    pub fn restore(&mut self, ot: ObjectType, id: u64, now: i64) -> Result<Vec<Change>, CrmError> {
        let Some(mut record) = self.store_mut(ot).archived.remove(&id) else {
            return Err(CrmError::NotFound(id));
        };
        record.archived_ms = None;
        self.stamp_modified(ot, &mut record, now);
        let email = record.get("email").map(str::to_owned);
        self.store_mut(ot).live.insert(id, record);
        if ot == ObjectType::Contacts
            && let Some(email) = email
        {
            self.index_email(&email, id);
        }
        self.refresh_around(ot, id);
        Ok(vec![Change {
            ot,
            object_id: id,
            kind: ChangeKind::Restore,
        }])
    }

    /// Deletes a contact permanently for privacy reasons.
    pub fn privacy_delete(&mut self, id: u64) -> Result<Vec<Change>, CrmError> {
        let ot = ObjectType::Contacts;
        let store = self.store_mut(ot);
        let Some(record) = store
            .live
            .remove(&id)
            .or_else(|| store.archived.remove(&id))
        else {
            return Err(CrmError::NotFound(id));
        };
        if let Some(email) = record.get("email") {
            self.release_email(email, id);
        }
        if let Some(edges) = self.assocs.remove(&(ot, id)) {
            for other in edges.keys() {
                if let Some(back) = self.assocs.get_mut(other) {
                    back.remove(&(ot, id));
                }
            }
            for (t, n) in edges.into_keys() {
                self.refresh_association_counts(t, n);
            }
        }
        Ok(vec![
            Change {
                ot,
                object_id: id,
                kind: ChangeKind::PrivacyDeletion,
            },
            Change {
                ot,
                object_id: id,
                kind: ChangeKind::Deletion,
            },
        ])
    }

    /// Merges `other` into `primary`: blank properties of the primary are filled,
    /// associations move over, and the merged id resolves to the primary from now on.
    pub fn merge(
        &mut self,
        ot: ObjectType,
        primary: u64,
        other: u64,
        now: i64,
    ) -> Result<Vec<Change>, CrmError> {
        if primary == other {
            return Err(CrmError::Validation(
                "Cannot merge a record into itself".to_owned(),
            ));
        }
        for id in [primary, other] {
            if !self.store(ot).live.contains_key(&id) {
                return Err(CrmError::NotFound(id));
            }
        }
        let Some(merged) = self.store_mut(ot).live.remove(&other) else {
            return Err(CrmError::NotFound(other));
        };
        let Some(mut record) = self.store_mut(ot).live.remove(&primary) else {
            return Err(CrmError::NotFound(primary));
        };
        const SYSTEM: [&str; 6] = [
            "hs_object_id",
            "createdate",
            "lastmodifieddate",
            "hs_lastmodifieddate",
            "hs_merged_object_ids",
            "email",
        ];
        let mut moved = 0;
        for (k, v) in &merged.props {
            if SYSTEM.contains(&&**k) || record.props.contains_key(k) {
                continue;
            }
            record.props.insert(k.clone(), v.clone());
            moved += 1;
        }
        let mut merged_ids: Vec<String> = record
            .get("hs_merged_object_ids")
            .map(|s| s.split(';').map(str::to_owned).collect())
            .unwrap_or_default();
        merged_ids.push(other.to_string());
        if let Some(prior) = merged.get("hs_merged_object_ids") {
            merged_ids.extend(prior.split(';').map(str::to_owned));
        }
        if let Some(k) = self.schema(ot).intern("hs_merged_object_ids") {
            record.props.insert(k, merged_ids.join(";"));
        }
        self.stamp_modified(ot, &mut record, now);
        self.store_mut(ot).live.insert(primary, record);
        self.store_mut(ot).merged_into.insert(other, primary);
        if ot == ObjectType::Contacts
            && let Some(email) = merged.get("email")
        {
            self.email_index.insert(email.to_lowercase(), primary);
        }
        if let Some(edges) = self.assocs.remove(&(ot, other)) {
            for (target, _) in edges {
                if let Some(back) = self.assocs.get_mut(&target) {
                    back.remove(&(ot, other));
                }
                if target != (ot, primary) {
                    self.link(ot, primary, target.0, target.1, false);
                }
            }
        }
        self.refresh_around(ot, primary);
        Ok(vec![Change {
            ot,
            object_id: primary,
            kind: ChangeKind::Merge {
                merged: vec![other],
                moved,
            },
        }])
    }

    /// Adds an unlabeled edge in both directions; true when it was new.
    pub(crate) fn link(
        &mut self,
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
        to_id: u64,
        primary: bool,
    ) -> bool {
        let fresh = self
            .assocs
            .entry((from, from_id))
            .or_default()
            .insert((to, to_id), primary)
            .is_none();
        self.assocs
            .entry((to, to_id))
            .or_default()
            .insert((from, from_id), primary);
        fresh
    }

    fn edge_changes(
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
        to_id: u64,
        removed: bool,
        primary: bool,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        for (a, a_id, b, b_id) in [(from, from_id, to, to_id), (to, to_id, from, from_id)] {
            let (unlabeled, primary_id) = assoc_type_ids(a, b);
            let (type_id, is_primary) = if primary {
                (primary_id.unwrap_or(unlabeled), true)
            } else {
                (unlabeled, false)
            };
            out.push(Change {
                ot: a,
                object_id: a_id,
                kind: ChangeKind::AssociationChange {
                    to_type: b,
                    to_id: b_id,
                    removed,
                    primary: is_primary,
                    type_id,
                },
            });
            if from == to && from_id == to_id {
                break;
            }
        }
        out
    }

    /// Associates two live records; `primary` also makes `to` the primary record of
    /// its type for `from` (replacing an earlier primary).
    pub fn associate(
        &mut self,
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
        to_id: u64,
        primary: bool,
    ) -> Result<Vec<Change>, CrmError> {
        for (ot, id) in [(from, from_id), (to, to_id)] {
            if !self.store(ot).live.contains_key(&id) {
                return Err(CrmError::NotFound(id));
            }
        }
        let primary = primary && assoc_type_ids(from, to).1.is_some();
        let mut changes = Vec::new();
        let existing = self
            .assocs
            .get(&(from, from_id))
            .and_then(|m| m.get(&(to, to_id)).copied());
        if existing.is_none() {
            self.link(from, from_id, to, to_id, false);
            changes.extend(Self::edge_changes(from, from_id, to, to_id, false, false));
        }
        if primary && existing != Some(true) {
            let old_primary: Vec<(ObjectType, u64)> = self
                .assocs
                .get(&(from, from_id))
                .map(|m| {
                    m.iter()
                        .filter(|((t, id), p)| **p && *t == to && *id != to_id)
                        .map(|(k, _)| *k)
                        .collect()
                })
                .unwrap_or_default();
            for (t, id) in old_primary {
                self.set_primary(from, from_id, t, id, false);
                changes.extend(Self::edge_changes(from, from_id, t, id, true, true));
            }
            self.set_primary(from, from_id, to, to_id, true);
            changes.extend(Self::edge_changes(from, from_id, to, to_id, false, true));
        }
        self.refresh_association_counts(from, from_id);
        self.refresh_association_counts(to, to_id);
        Ok(changes)
    }

    fn set_primary(
        &mut self,
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
        to_id: u64,
        primary: bool,
    ) {
        if let Some(p) = self
            .assocs
            .get_mut(&(from, from_id))
            .and_then(|m| m.get_mut(&(to, to_id)))
        {
            *p = primary;
        }
        if let Some(p) = self
            .assocs
            .get_mut(&(to, to_id))
            .and_then(|m| m.get_mut(&(from, from_id)))
        {
            *p = primary;
        }
    }

    /// Removes every association between two records.
    pub fn disassociate(
        &mut self,
        from: ObjectType,
        from_id: u64,
        to: ObjectType,
        to_id: u64,
    ) -> Vec<Change> {
        let Some(primary) = self
            .assocs
            .get_mut(&(from, from_id))
            .and_then(|m| m.remove(&(to, to_id)))
        else {
            return Vec::new();
        };
        if let Some(m) = self.assocs.get_mut(&(to, to_id)) {
            m.remove(&(from, from_id));
        }
        self.refresh_association_counts(from, from_id);
        self.refresh_association_counts(to, to_id);
        let mut changes = Vec::new();
        if primary {
            changes.extend(Self::edge_changes(from, from_id, to, to_id, true, true));
        }
        changes.extend(Self::edge_changes(from, from_id, to, to_id, true, false));
        changes
    }

    /// A sales activity (a call, email or meeting a rep logged) on a live record at `at`:
    /// HubSpot moves its last-activity dates, `hs_last_sales_activity_date` included,
    /// which the API cannot write. Answers the property changes, as an update does.
    pub fn log_sales_activity(&mut self, ot: ObjectType, id: u64, at: i64) -> Vec<Change> {
        let stamp = iso(at);
        let values: Vec<(Arc<str>, String)> = [
            "notes_last_updated",
            "hs_last_sales_activity_timestamp",
            "hs_last_sales_activity_date",
        ]
        .into_iter()
        .filter_map(|name| self.schema(ot).intern(name).map(|k| (k, stamp.clone())))
        .collect();
        self.update(ot, id, values, at).unwrap_or_default()
    }

    /// Recomputes the calculated association properties of a live record: the
    /// `num_associated_*` counts (set once the record has had an association, so a
    /// count that drops back shows `0`) and a contact's `associatedcompanyid` (its
    /// primary company). Like HubSpot's rollups they change no modification date and
    /// send no webhook.
    pub fn refresh_association_counts(&mut self, ot: ObjectType, id: u64) {
        let Some(record) = self.store(ot).live.get(&id) else {
            return;
        };
        let mut set: Vec<(&'static str, Option<String>)> = Vec::new();
        for (name, to) in association_counts(ot) {
            let count = self.associations_of(ot, id, *to).len();
            if count > 0 || record.get(name).is_some() {
                set.push((name, Some(count.to_string())));
            }
        }
        if ot == ObjectType::Contacts {
            let primary = self
                .associations_of(ot, id, ObjectType::Companies)
                .into_iter()
                .find(|(_, primary)| *primary)
                .map(|(company, _)| company.to_string());
            set.push(("associatedcompanyid", primary));
        }
        let interned: Vec<(Arc<str>, Option<String>)> = set
            .into_iter()
            .filter_map(|(name, value)| self.schema(ot).intern(name).map(|k| (k, value)))
            .collect();
        if let Some(record) = self.store_mut(ot).live.get_mut(&id) {
            for (k, value) in interned {
                match value {
                    Some(v) => {
                        record.props.insert(k, v);
                    }
                    None => {
                        record.props.remove(&k);
                    }
                }
            }
        }
    }

    /// Every record (`type`, `id`) with an edge to (`ot`, `id`), live or not.
    fn neighbours(&self, ot: ObjectType, id: u64) -> Vec<(ObjectType, u64)> {
        self.assocs
            .get(&(ot, id))
            .map(|edges| edges.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Refreshes the association counts of a record and of every record linked to it.
    pub fn refresh_around(&mut self, ot: ObjectType, id: u64) {
        self.refresh_association_counts(ot, id);
        for (t, n) in self.neighbours(ot, id) {
            self.refresh_association_counts(t, n);
        }
    }

    /// The live records of type `to` associated with (from, id), in id order, with their primary flag.
    pub fn associations_of(&self, from: ObjectType, id: u64, to: ObjectType) -> Vec<(u64, bool)> {
        let Some(edges) = self.assocs.get(&(from, id)) else {
            return Vec::new();
        };
        let target = self.store(to);
        edges
            .range((to, 0)..=(to, u64::MAX))
            .filter(|((_, tid), _)| target.live.contains_key(tid))
            .map(|((_, tid), p)| (*tid, *p))
            .collect()
    }
}

/// Which properties a record view carries.
#[derive(Debug, Clone)]
pub enum PropSelection {
    /// Every property with a value.
    All,
    /// These names (defined ones), each with its value or `null`.
    Names(Vec<Arc<str>>),
}

/// Builds the selection for a read: the requested defined properties, or the type's
/// defaults, always with `createdate`, `hs_object_id` and the last-modified property.
pub fn selection(data: &PortalData, ot: ObjectType, requested: &[String]) -> PropSelection {
    let schema = data.schema(ot);
    let mut names: Vec<Arc<str>> = Vec::new();
    let mut push = |n: &str| {
        if let Some(k) = schema.intern(n)
            && !names.contains(&k)
        {
            names.push(k);
        }
    };
    if requested.is_empty() {
        ot.default_properties().iter().for_each(|n| push(n));
    } else {
        for n in ["createdate", "hs_object_id", ot.last_modified_property()] {
            push(n);
        }
        requested.iter().for_each(|n| push(n));
    }
    names.sort();
    PropSelection::Names(names)
}

/// A record as HubSpot serialises it.
pub struct RecordView<'a> {
    /// The record.
    pub record: &'a Record,
    /// Which properties.
    pub props: &'a PropSelection,
    /// With-history properties (single current value each).
    pub history: &'a [Arc<str>],
    /// The `associations` object, if asked for and non-empty.
    pub associations: Option<Value>,
    /// Whether the record is archived.
    pub archived: bool,
    /// Extra fields (`new` on upsert results, `objectWriteTraceId`).
    pub extra: Option<(&'static str, Value)>,
}

struct Props<'a>(&'a Record, &'a PropSelection);

impl Serialize for Props<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.1 {
            PropSelection::All => {
                s.collect_map(self.0.props.iter().map(|(k, v)| (&**k, v.as_str())))
            }
            PropSelection::Names(names) => {
                let mut map = s.serialize_map(Some(names.len()))?;
                for n in names {
                    map.serialize_entry(&**n, &self.0.props.get(n))?;
                }
                map.end()
            }
        }
    }
}

struct History<'a>(&'a Record, &'a [Arc<str>]);

impl Serialize for History<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.1.len()))?;
        for n in self.1 {
            let entries: Vec<Value> = match self.0.props.get(n) {
                Some(v) => vec![
                    serde_json::json!({"value": v, "timestamp": iso(self.0.updated_ms), "sourceType": "API"}),
                ],
                None => Vec::new(),
            };
            map.serialize_entry(&**n, &entries)?;
        }
        map.end()
    }
}

impl Serialize for RecordView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &self.record.id.to_string())?;
        map.serialize_entry("properties", &Props(self.record, self.props))?;
        if !self.history.is_empty() {
            map.serialize_entry("propertiesWithHistory", &History(self.record, self.history))?;
        }
        map.serialize_entry("createdAt", &iso(self.record.created_ms))?;
        map.serialize_entry("updatedAt", &iso(self.record.updated_ms))?;
        map.serialize_entry("archived", &self.archived)?;
        if let Some(at) = self.record.archived_ms {
            map.serialize_entry("archivedAt", &iso(at))?;
        }
        if let Some(assoc) = &self.associations {
            map.serialize_entry("associations", assoc)?;
        }
        if let Some((k, v)) = &self.extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The v3 `associations` object of a record: per requested type, primary and
/// unlabeled entries (both, for a primary association). `None` when empty.
pub fn v3_associations(
    data: &PortalData,
    ot: ObjectType,
    id: u64,
    types: &[ObjectType],
) -> Option<Value> {
    let mut out = Map::new();
    for &to in types {
        let edges = data.associations_of(ot, id, to);
        if edges.is_empty() {
            continue;
        }
        let mut results = Vec::new();
        for (tid, primary) in edges {
            if primary {
                results.push(serde_json::json!({"id": tid.to_string(), "type": assoc_type_name(ot, to, true)}));
            }
            results.push(
                serde_json::json!({"id": tid.to_string(), "type": assoc_type_name(ot, to, false)}),
            );
        }
        out.insert(
            to.plural().to_owned(),
            serde_json::json!({"results": results}),
        );
    }
    if out.is_empty() {
        None
    } else {
        Some(Value::Object(out))
    }
}

/// The v4 `associationTypes` array of one edge.
pub fn v4_types(from: ObjectType, to: ObjectType, primary: bool) -> Value {
    let (unlabeled, primary_id) = assoc_type_ids(from, to);
    let mut types = Vec::new();
    if primary && let Some(p) = primary_id {
        types.push(serde_json::json!({"category": "HUBSPOT_DEFINED", "typeId": p, "label": assoc_label(true)}));
    }
    types.push(serde_json::json!({"category": "HUBSPOT_DEFINED", "typeId": unlabeled, "label": assoc_label(false)}));
    Value::Array(types)
}
