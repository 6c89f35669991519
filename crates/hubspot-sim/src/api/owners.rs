//! Owners (hubspot-api.md §6.1): the users records can be assigned to.

use serde_json::{Value, json};

use crate::http::{ApiError, ApiResult, Ctx, json_response};

const SCOPE: &str = "crm.objects.owners.read";

/// `GET /crm/v3/owners`: paged (up to 500), filtered by `email` and `archived`.
pub(crate) fn list(ctx: &Ctx) -> ApiResult {
    ctx.require_any(&[SCOPE])?;
    let archived = ctx.q_bool("archived");
    let limit = ctx
        .q("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let after: u64 = ctx.q("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let email = ctx.q("email").map(str::to_lowercase);
    let data = ctx.portal.data.read();
    let mut matching = data.owners.range(after..).map(|(_, o)| o).filter(|o| {
        o.archived == archived && email.as_ref().is_none_or(|e| o.email.to_lowercase() == *e)
    });
    let page: Vec<Value> = matching.by_ref().take(limit).map(|o| o.to_json()).collect();
    let mut out = json!({"results": page});
    if let Some(next) = matching.next() {
        out["paging"] = json!({"next": {"after": next.id.to_string(), "link": format!("{}{}?after={}", ctx.base_url(), ctx.path, next.id)}});
    }
    Ok(json_response(200, &out))
}

/// `GET /crm/v3/owners/{id}` (`idProperty=userId` looks up by user id).
pub(crate) fn get(ctx: &Ctx, id: &str) -> ApiResult {
    ctx.require_any(&[SCOPE])?;
    let by_user = ctx.q("idProperty") == Some("userId");
    let n: u64 = id
        .parse()
        .map_err(|_| ApiError::validation("Invalid owner id"))?;
    let data = ctx.portal.data.read();
    let owner = data
        .owners
        .values()
        .find(|o| if by_user { o.user_id == n } else { o.id == n });
    match owner {
        Some(o) => Ok(json_response(200, &o.to_json())),
        None => Err(ApiError::not_found(format!("Owner {id} not found"))),
    }
}
