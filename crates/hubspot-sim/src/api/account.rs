//! Account information (hubspot-api.md §2): the portal's details and its private
//! apps' daily API usage.

use serde_json::json;

use crate::http::{ApiResult, Ctx, json_response};
use crate::model::{iso, now_ms};
use crate::state::TokenKind;

/// `GET /account-info/v3/details`.
pub(crate) fn details(ctx: &Ctx) -> ApiResult {
    if ctx.token.kind != TokenKind::PrivateApp {
        ctx.require_any(&["oauth"])?;
    }
    let p = &ctx.portal;
    let offset_min = p.utc_offset_ms / 60_000;
    let sign = if offset_min < 0 { '-' } else { '+' };
    let utc_offset = format!(
        "{sign}{:02}:{:02}",
        offset_min.abs() / 60,
        offset_min.abs() % 60
    );
    Ok(json_response(
        200,
        &json!({
            "portalId": p.id, "accountType": "STANDARD", "timeZone": p.time_zone, "companyCurrency": "USD",
            "additionalCurrencies": [], "utcOffset": utc_offset, "utcOffsetMilliseconds": p.utc_offset_ms,
            "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1",
        }),
    ))
}

/// `GET /account-info/v3/api-usage/daily/private-apps`.
pub(crate) fn daily_usage(ctx: &Ctx) -> ApiResult {
    let p = &ctx.portal;
    let now = now_ms();
    let used = {
        let limits = p.limits.lock();
        if limits.daily_day == p.day_number(now) {
            limits.daily_used
        } else {
            0
        }
    };
    Ok(json_response(
        200,
        &json!({"results": [{
            "name": "private-apps-api-calls-daily", "usageLimit": p.daily_limit(), "currentUsage": used,
            "collectedAt": iso(now), "fetchStatus": "SUCCESS", "resetsAt": iso(p.next_reset_ms(now)),
        }]}),
    ))
}
