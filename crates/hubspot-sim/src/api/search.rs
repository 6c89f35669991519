//! CRM search (hubspot-api.md §3.5): filter groups ORed, filters ANDed, HubSpot's
//! operators and case rules, one sort in either form, `limit` ≤ 200, integer
//! `after`, `total`, the 10,000-result cap (400 past it) and the 3,000-character
//! body limit. Archived records are never returned.

use std::cmp::Ordering;

use serde::Serialize;
use serde_json::{Value, json};

use crate::crm::{RecordView, selection};
use crate::http::{ApiError, ApiResult, Ctx, json_bytes};
use crate::model::{ObjectType, PropType, Record, parse_instant};
use crate::state::PortalData;

/// Results reachable through paging at most.
pub const RESULT_CAP: usize = 10_000;
/// Largest page.
pub const MAX_LIMIT: usize = 200;
/// Largest request body, in characters.
pub const MAX_BODY_CHARS: usize = 3_000;

#[derive(Debug, Clone)]
struct Filter {
    property: String,
    operator: String,
    value: Option<String>,
    high: Option<String>,
    values: Vec<String>,
}

fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_filters(body: &Value) -> Result<Vec<Vec<Filter>>, ApiError> {
    let groups = body
        .get("filterGroups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if groups.len() > 5 {
        return Err(ApiError::validation(
            "The maximum number of filter groups is 5.",
        ));
    }
    let mut out = Vec::new();
    let mut total = 0;
    for g in groups {
        let filters = g
            .get("filters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if filters.len() > 6 {
            return Err(ApiError::validation(
                "The maximum number of filters per group is 6.",
            ));
        }
        total += filters.len();
        let mut parsed = Vec::new();
        for f in filters {
            let property = f
                .get("propertyName")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::validation("propertyName is required"))?;
            let operator = f
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or("EQ")
                .to_owned();
            const OPS: [&str; 13] = [
                "EQ",
                "NEQ",
                "LT",
                "LTE",
                "GT",
                "GTE",
                "BETWEEN",
                "IN",
                "NOT_IN",
                "HAS_PROPERTY",
                "NOT_HAS_PROPERTY",
                "CONTAINS_TOKEN",
                "NOT_CONTAINS_TOKEN",
            ];
            if !OPS.contains(&operator.as_str()) {
                return Err(ApiError::validation(format!("Unknown operator {operator}")));
            }
            let values = f
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| scalar(Some(v))).collect())
                .unwrap_or_default();
            parsed.push(Filter {
                property: property.to_owned(),
                operator,
                value: scalar(f.get("value")),
                high: scalar(f.get("highValue")),
                values,
            });
        }
        out.push(parsed);
    }
    if total > 18 {
        return Err(ApiError::validation("The maximum number of filters is 18."));
    }
    Ok(out)
}

/// A comparable form of a value for a property type.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Num(f64),
    Text(String),
}

fn key(ptype: Option<PropType>, v: &str) -> Key {
    match ptype {
        Some(PropType::Number) => v
            .trim()
            .parse::<f64>()
            .map(Key::Num)
            .unwrap_or_else(|_| Key::Text(v.to_lowercase())),
        Some(PropType::Datetime | PropType::Date) => parse_instant(v)
            .map(|ms| Key::Num(ms as f64))
            .unwrap_or_else(|| Key::Text(v.to_lowercase())),
        Some(PropType::Enumeration) => Key::Text(v.to_owned()),
        _ => Key::Text(v.to_lowercase()),
    }
}

fn record_value<'a>(r: &'a Record, property: &str, id_buf: &'a mut String) -> Option<&'a str> {
    if property == "hs_object_id" {
        *id_buf = r.id.to_string();
        return Some(id_buf.as_str());
    }
    r.get(property)
}

fn tokens(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric() && c != '@' && c != '.' && c != '-' && c != '_')
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(pos) = rest.find(part) else {
                return false;
            };
            rest = &rest[pos + part.len()..];
        }
    }
    true
}

fn contains_token(value: &str, pattern: &str) -> bool {
    let pattern = pattern.to_lowercase();
    glob(&pattern, &value.to_lowercase()) || tokens(value).any(|t| glob(&pattern, &t))
}

fn matches(data: &PortalData, ot: ObjectType, r: &Record, f: &Filter) -> bool {
    if let Some(assoc) = f.property.strip_prefix("associations.") {
        let Some(to) = ObjectType::parse(assoc) else {
            return false;
        };
        let Some(target) = f.value.as_deref().and_then(|v| v.parse::<u64>().ok()) else {
            return false;
        };
        let linked = data
            .assocs
            .get(&(ot, r.id))
            .is_some_and(|m| m.contains_key(&(to, target)));
        return match f.operator.as_str() {
            "EQ" | "IN" => linked,
            "NEQ" | "NOT_IN" => !linked,
            _ => false,
        };
    }
    let ptype = if f.property == "hs_object_id" {
        Some(PropType::Number)
    } else {
        data.schema(ot).props.get(&f.property).map(|d| d.ptype)
    };
    let mut buf = String::new();
    let value = record_value(r, &f.property, &mut buf);
    let cmp = |other: &str| -> Option<Ordering> {
        value.and_then(|v| key(ptype, v).partial_cmp(&key(ptype, other)))
    };
    match f.operator.as_str() {
        "HAS_PROPERTY" => value.is_some(),
        "NOT_HAS_PROPERTY" => value.is_none(),
        "EQ" => f
            .value
            .as_deref()
            .is_some_and(|x| cmp(x) == Some(Ordering::Equal)),
        "NEQ" => f
            .value
            .as_deref()
            .is_none_or(|x| cmp(x) != Some(Ordering::Equal)),
        "LT" => f
            .value
            .as_deref()
            .is_some_and(|x| cmp(x) == Some(Ordering::Less)),
        "LTE" => f
            .value
            .as_deref()
            .is_some_and(|x| matches!(cmp(x), Some(Ordering::Less | Ordering::Equal))),
        "GT" => f
            .value
            .as_deref()
            .is_some_and(|x| cmp(x) == Some(Ordering::Greater)),
        "GTE" => f
            .value
            .as_deref()
            .is_some_and(|x| matches!(cmp(x), Some(Ordering::Greater | Ordering::Equal))),
        "BETWEEN" => match (f.value.as_deref(), f.high.as_deref()) {
            (Some(lo), Some(hi)) => {
                matches!(cmp(lo), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(hi), Some(Ordering::Less | Ordering::Equal))
            }
            _ => false,
        },
        // IN on strings compares against lower-cased values: upper-case inputs never match,
        // as HubSpot documents. Enumerations compare exactly.
        "IN" | "NOT_IN" => {
            let hit = value.is_some_and(|v| {
                let stored = match ptype {
                    Some(PropType::Enumeration) => v.to_owned(),
                    Some(PropType::Number | PropType::Datetime | PropType::Date) => {
                        return f.values.iter().any(|x| key(ptype, v) == key(ptype, x));
                    }
                    _ => v.to_lowercase(),
                };
                f.values.contains(&stored)
            });
            if f.operator == "IN" { hit } else { !hit }
        }
        "CONTAINS_TOKEN" => {
            value.is_some_and(|v| f.value.as_deref().is_some_and(|p| contains_token(v, p)))
        }
        "NOT_CONTAINS_TOKEN" => {
            !value.is_some_and(|v| f.value.as_deref().is_some_and(|p| contains_token(v, p)))
        }
        _ => false,
    }
}

fn query_matches(ot: ObjectType, r: &Record, query: &str) -> bool {
    let fields: &[&str] = match ot {
        ObjectType::Contacts => &["firstname", "lastname", "email", "phone", "company"],
        ObjectType::Companies => &["name", "domain", "phone"],
        ObjectType::Deals => &["dealname"],
    };
    let q = query.to_lowercase();
    fields.iter().any(|f| {
        r.get(f)
            .is_some_and(|v| tokens(v).any(|t| t.starts_with(&q)) || v.to_lowercase().contains(&q))
    })
}

fn parse_sort(body: &Value) -> Result<Option<(String, bool)>, ApiError> {
    let sorts = body
        .get("sorts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if sorts.len() > 1 {
        return Err(ApiError::validation("Only one sort is allowed."));
    }
    let Some(s) = sorts.first() else {
        return Ok(None);
    };
    match s {
        Value::String(text) => Ok(Some(match text.strip_prefix('-') {
            Some(p) => (p.to_owned(), false),
            None => (text.trim_start_matches('+').to_owned(), true),
        })),
        Value::Object(o) => {
            let p = o
                .get("propertyName")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::validation("sort propertyName is required"))?;
            let dir = o
                .get("direction")
                .and_then(Value::as_str)
                .unwrap_or("ASCENDING");
            Ok(Some((p.to_owned(), dir != "DESCENDING")))
        }
        _ => Err(ApiError::validation("Invalid sort")),
    }
}

#[derive(Serialize)]
struct SearchPage<'a> {
    total: usize,
    results: Vec<RecordView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paging: Option<Value>,
}

/// `POST /crm/v3/objects/{t}/search`.
pub fn search(ctx: &Ctx, ot: ObjectType) -> ApiResult {
    ctx.require_any(&[ot.read_scope()])?;
    let text =
        std::str::from_utf8(&ctx.body).map_err(|_| ApiError::validation("Body is not UTF-8"))?;
    if text.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::validation(format!(
            "The request body is larger than the maximum of {MAX_BODY_CHARS} characters."
        )));
    }
    let body: Value = if text.trim().is_empty() {
        json!({})
    } else {
        ctx.json()?
    };
    let limit = match body.get("limit") {
        None | Some(Value::Null) => 10,
        Some(v) => scalar(Some(v))
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| ApiError::validation("limit must be an integer"))?,
    };
    if limit > MAX_LIMIT {
        return Err(ApiError::validation(format!(
            "limit must be less than or equal to {MAX_LIMIT}"
        )));
    }
    let offset = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(v) => scalar(Some(v))
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| ApiError::validation("after must be an integer-valued string"))?,
    };
    if offset >= RESULT_CAP {
        return Err(ApiError::validation(format!(
            "Paging past {RESULT_CAP} results is not supported (after={offset}). Narrow the search with filters."
        )));
    }
    let groups = parse_filters(&body)?;
    let sort = parse_sort(&body)?;
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .filter(|q| !q.trim().is_empty())
        .map(str::to_owned);
    let props: Vec<String> = body
        .get("properties")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();

    let data = ctx.portal.data.read();
    let mut hits: Vec<&Record> = data
        .store(ot)
        .live
        .values()
        .filter(|r| {
            groups.is_empty()
                || groups
                    .iter()
                    .any(|g| g.iter().all(|f| matches(&data, ot, r, f)))
        })
        .filter(|r| query.as_deref().is_none_or(|q| query_matches(ot, r, q)))
        .collect();
    match &sort {
        None => hits.sort_by_key(|r| (r.created_ms, r.id)),
        Some((property, ascending)) => {
            let ptype = if property == "hs_object_id" {
                Some(PropType::Number)
            } else {
                data.schema(ot).props.get(property).map(|d| d.ptype)
            };
            let mut keyed: Vec<(Option<Key>, &Record)> = hits
                .into_iter()
                .map(|r| {
                    let mut buf = String::new();
                    (
                        record_value(r, property, &mut buf).map(|v| key(ptype, v)),
                        r,
                    )
                })
                .collect();
            keyed.sort_by(|(ka, ra), (kb, rb)| {
                let ord = match (ka, kb) {
                    (Some(a), Some(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                };
                let ord = if *ascending { ord } else { ord.reverse() };
                ord.then(ra.id.cmp(&rb.id))
            });
            hits = keyed.into_iter().map(|(_, r)| r).collect();
        }
    }
    let total = hits.len();
    let end = (offset + limit).min(total).min(RESULT_CAP);
    let sel = selection(&data, ot, &props);
    let results: Vec<RecordView<'_>> = hits
        .get(offset.min(total)..end)
        .unwrap_or_default()
        .iter()
        .map(|r| RecordView {
            record: r,
            props: &sel,
            history: &[],
            associations: None,
            archived: false,
            extra: None,
        })
        .collect();
    let paging = (end < total && limit > 0).then(|| json!({"next": {"after": end.to_string()}}));
    let bytes = serde_json::to_vec(&SearchPage {
        total,
        results,
        paging,
    })
    .map_err(|e| ApiError::new(500, "INTERNAL_ERROR", e.to_string()))?;
    drop(data);
    Ok(json_bytes(200, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_tokens_match_inside_values() {
        assert!(contains_token(
            "ada@northwind.example",
            "*@northwind.example"
        ));
        assert!(contains_token("Ada Lovelace", "love*"));
        assert!(!contains_token("Ada Lovelace", "babbage"));
    }
}
