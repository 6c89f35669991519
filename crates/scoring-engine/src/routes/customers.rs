//! `GET /api/v1/customers` and `GET /api/v1/customers/{id}`.

use actix_web::{HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use platform::caller::Caller;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::db::object_type;
use crate::db::reads::{self, CursorKey, ListFilter, Sort};
use crate::engine::risk_name;
use crate::error::ApiError;
use crate::model::{FACTOR_NAMES, FactorInput, describe};
use crate::state::AppState;

/// Query parameters of the list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Comma-separated risk levels: `healthy`, `at_risk`, `critical`, `none`.
    risk_level: Option<String>,
    /// Lowest score.
    min_score: Option<i16>,
    /// Highest score.
    max_score: Option<i16>,
    /// `contact` or `company`.
    object_type: Option<String>,
    /// `score` (default), `-score`, `name`, `-name`.
    sort: Option<String>,
    /// 1-500, default 50.
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn risk_value(name: &str) -> Option<i16> {
    match name {
        "healthy" => Some(1),
        "at_risk" => Some(2),
        "critical" => Some(3),
        "none" => Some(4),
        _ => None,
    }
}

fn type_name(kind: i16) -> &'static str {
    if kind == object_type::COMPANY {
        "company"
    } else {
        "contact"
    }
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    k: serde_json::Value,
    id: Uuid,
}

fn parse_filter(query: &ListQuery) -> Result<ListFilter, ApiError> {
    let mut risk_levels = Vec::new();
    if let Some(levels) = &query.risk_level {
        for name in levels.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            risk_levels.push(risk_value(name).ok_or_else(|| {
                ApiError::bad(
                    "risk_level",
                    format!("unknown risk level {name:?}; use healthy, at_risk, critical or none"),
                )
            })?);
        }
    }
    for (field, value) in [
        ("min_score", query.min_score),
        ("max_score", query.max_score),
    ] {
        if let Some(v) = value
            && !(0..=100).contains(&v)
        {
            return Err(ApiError::bad(
                field,
                format!("must be between 0 and 100, got {v}"),
            ));
        }
    }
    if let (Some(min), Some(max)) = (query.min_score, query.max_score)
        && min > max
    {
        return Err(ApiError::bad("min_score", "must not be above max_score"));
    }
    let object_type = match query.object_type.as_deref() {
        None => None,
        Some("contact") => Some(object_type::CONTACT),
        Some("company") => Some(object_type::COMPANY),
        Some(other) => {
            return Err(ApiError::bad(
                "object_type",
                format!("unknown object type {other:?}; use contact or company"),
            ));
        }
    };
    let sort = match query.sort.as_deref().unwrap_or("score") {
        "score" => Sort::ScoreAsc,
        "-score" => Sort::ScoreDesc,
        "name" => Sort::NameAsc,
        "-name" => Sort::NameDesc,
        other => {
            return Err(ApiError::bad(
                "sort",
                format!("unknown sort {other:?}; use score, -score, name or -name"),
            ));
        }
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad(
            "limit",
            format!("must be between 1 and 500, got {limit}"),
        ));
    }
    let cursor = match &query.cursor {
        None => None,
        Some(raw) => {
            let invalid = || ApiError::bad("cursor", "not a cursor this list returned");
            let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
            let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
            let key = match (sort, cursor.k) {
                (Sort::ScoreAsc | Sort::ScoreDesc, serde_json::Value::Number(n)) => {
                    CursorKey::Score(
                        n.as_i64()
                            .and_then(|v| i32::try_from(v).ok())
                            .ok_or_else(invalid)?,
                    )
                }
                (Sort::NameAsc | Sort::NameDesc, serde_json::Value::String(s)) => {
                    CursorKey::Name(s)
                }
                _ => return Err(invalid()),
            };
            Some((key, cursor.id))
        }
    };
    Ok(ListFilter {
        risk_levels,
        min_score: query.min_score,
        max_score: query.max_score,
        object_type,
        sort,
        cursor,
        limit,
    })
}

/// `GET /api/v1/customers`: the org's customers with score and risk level.
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = parse_filter(&query)?;
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let rows = reads::list(&mut conn, caller.org_id, &filter).await?;
    let next_cursor = if i64::try_from(rows.len()).unwrap_or(0) == filter.limit {
        rows.last().map(|last| {
            let k = match filter.sort {
                Sort::ScoreAsc | Sort::ScoreDesc => json!(last.score.map_or(-1, i32::from)),
                Sort::NameAsc | Sort::NameDesc => json!(last.display_name),
            };
            let bytes = serde_json::to_vec(&Cursor {
                k,
                id: last.score_id,
            })
            .unwrap_or_default();
            URL_SAFE_NO_PAD.encode(bytes)
        })
    } else {
        None
    };
    let customers: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.score_id,
                "object_type": type_name(r.object_type),
                "object_id": r.object_id,
                "portal_id": r.portal_id,
                "name": r.display_name,
                "score": r.score,
                "risk_level": risk_name(r.risk_level),
                "config_version": r.config_version,
                "computed_at": r.computed_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"customers": customers, "next_cursor": next_cursor})))
}

/// How many history rows the detail shows.
const HISTORY_ROWS: i64 = 50;

fn input_json(input: &FactorInput) -> (serde_json::Value, &'static str) {
    match input {
        FactorInput::Number(n, unit) => (json!(n), unit),
        FactorInput::Text(t) => (json!(t), ""),
        FactorInput::Missing => (serde_json::Value::Null, ""),
    }
}

/// `GET /api/v1/customers/{id}`: score, factor breakdown, history, and what changed since
/// the previous score, factor by factor.
pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&path).map_err(|_| ApiError::NotFound)?;
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let row = reads::detail(&mut conn, caller.org_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let history = reads::history(&mut conn, caller.org_id, &row, HISTORY_ROWS).await?;
    let config = crate::db::configs::current(&mut conn, caller.org_id).await?;
    let window = config.config.activity_frequency.window_days;
    let inputs = [
        row.recency_days
            .map_or(FactorInput::Missing, |d| FactorInput::Number(d, "days")),
        row.deal_probability.map_or(FactorInput::Missing, |p| {
            FactorInput::Number(p, "probability")
        }),
        row.lifecycle_stage
            .clone()
            .map_or(FactorInput::Missing, FactorInput::Text),
        FactorInput::Number(f64::from(row.update_count), "updates"),
        #[expect(clippy::cast_precision_loss, reason = "cents shown to people")]
        FactorInput::Number(row.deal_amount_cents.unwrap_or(0) as f64, "cents"),
    ];
    let factors: Vec<serde_json::Value> = if row.contributions.len() == FACTOR_NAMES.len() {
        inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let (value, unit) = input_json(input);
                json!({
                    "name": FACTOR_NAMES[i],
                    "input": value,
                    "input_unit": unit,
                    "description": describe(i, input, window),
                    "value": row.factor_values.get(i),
                    "weight": row.weights.get(i),
                    "contribution": row.contributions.get(i),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    // The score before the current one: the second history row (the first is the
    // current score's own).
    let previous = history.get(1);
    let changes = previous.map(|p| {
        let per_factor: Vec<serde_json::Value> = FACTOR_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let before = p.contributions.get(i).copied();
                let now = row.contributions.get(i).copied();
                json!({
                    "name": name,
                    "previous_contribution": before,
                    "contribution": now,
                    "delta": match (before, now) {
                        (Some(b), Some(n)) => Some(n - b),
                        _ => None,
                    },
                })
            })
            .collect();
        json!({
            "previous_score": p.score,
            "previous_risk_level": risk_name(p.risk_level),
            "previous_computed_at": p.computed_at,
            "score_delta": match (p.score, row.score) {
                (Some(b), Some(n)) => Some(n - b),
                _ => None,
            },
            "factors": per_factor,
        })
    });
    let history: Vec<serde_json::Value> = history
        .iter()
        .map(|h| {
            json!({
                "score": h.score,
                "risk_level": risk_name(h.risk_level),
                "config_version": h.config_version,
                "computed_at": h.computed_at,
            })
        })
        .collect();
    let computed_at: DateTime<Utc> = row.computed_at;
    Ok(HttpResponse::Ok().json(json!({
        "id": row.score_id,
        "object_type": type_name(row.object_type),
        "object_id": row.object_id,
        "portal_id": row.portal_id,
        "connection_id": row.connection_id,
        "contact_id": row.contact_id,
        "company_id": row.company_id,
        "name": row.display_name,
        "score": row.score,
        "risk_level": risk_name(row.risk_level),
        "config_version": row.config_version,
        "computed_at": computed_at,
        "factors": factors,
        "changes_since_previous": changes,
        "history": history,
    })))
}
