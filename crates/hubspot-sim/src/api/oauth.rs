//! OAuth 2.0 as HubSpot serves it (hubspot-api.md §1): the consent page, the
//! token endpoints (v1, v3 and date-versioned), token metadata, revoke and
//! introspect, with errors in the `{error, error_description, status, message}` shape.
//!
//! Codes are single-use; access tokens live `SimConfig::access_token_ttl_secs`.

#![expect(
    clippy::result_large_err,
    reason = "an OAuth check short-circuits with the finished error response"
)]

use std::collections::HashSet;
use std::sync::Arc;

use actix_web::HttpResponse;
use serde_json::{Value, json};

use crate::http::json_response;
use crate::model::now_ms;
use crate::state::{AUTH_CODE_TTL_MS, AuthCode, RefreshToken, Sim, TokenKind, new_uuid};

fn oauth_error(error: &str, status: &str, description: &str) -> HttpResponse {
    json_response(
        400,
        &json!({"error": error, "error_description": description, "status": status, "message": description}),
    )
}

fn get<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `POST /oauth/{v1,v3,YYYY-MM}/token`. v1 also reads the legacy query parameters; the
/// newer versions refuse secrets in the query string.
pub(crate) fn token_endpoint(
    sim: &Arc<Sim>,
    ver: &str,
    query: &[(String, String)],
    form: Vec<(String, String)>,
) -> HttpResponse {
    if ver != "v1"
        && ["client_secret", "refresh_token", "code"]
            .iter()
            .any(|k| get(query, k).is_some())
    {
        return oauth_error(
            "invalid_request",
            "BAD_REQUEST",
            "Parameters must be sent in the form-encoded body, not the query string",
        );
    }
    let mut all = form;
    if ver == "v1" {
        all.extend(query.iter().cloned());
    }
    token(sim, &all, ver == "v1")
}

/// `DELETE /oauth/v1/refresh-tokens/{token}`.
pub(crate) fn delete_refresh_token(sim: &Sim, token: &str) -> HttpResponse {
    if sim.refresh_tokens.write().remove(token).is_some() {
        HttpResponse::NoContent().finish()
    } else {
        oauth_error(
            "invalid_grant",
            "BAD_REFRESH_TOKEN",
            "refresh token is invalid, expired or revoked",
        )
    }
}

/// `POST /oauth/v3/token/revoke`.
pub(crate) fn revoke(sim: &Sim, form: &[(String, String)]) -> HttpResponse {
    if let Err(resp) = check_client(sim, form) {
        return resp;
    }
    match get(form, "token").or_else(|| get(form, "refresh_token")) {
        Some(t) => {
            sim.refresh_tokens.write().remove(t);
            HttpResponse::Ok().finish()
        }
        None => oauth_error("invalid_request", "BAD_REQUEST", "token is required"),
    }
}

/// `GET /oauth/authorize`: the consent page.
pub(crate) fn consent_page(sim: &Sim, query: &[(String, String)]) -> HttpResponse {
    let client_id = get(query, "client_id").unwrap_or_default();
    let Some(portal_id) = sim.clients.read().get(client_id).copied() else {
        return HttpResponse::BadRequest()
            .content_type("text/html; charset=utf-8")
            .body("<!doctype html><title>Error</title><h1>Unknown client_id</h1>");
    };
    let Some(redirect_uri) = get(query, "redirect_uri") else {
        return HttpResponse::BadRequest()
            .content_type("text/html; charset=utf-8")
            .body("<!doctype html><title>Error</title><h1>Missing redirect_uri</h1>");
    };
    let scope = [get(query, "scope"), get(query, "optional_scope")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let state = get(query, "state").unwrap_or_default();
    let hidden = format!(
        r#"<input type="hidden" name="client_id" value="{}"><input type="hidden" name="redirect_uri" value="{}"><input type="hidden" name="scope" value="{}"><input type="hidden" name="state" value="{}">"#,
        html_escape(client_id),
        html_escape(redirect_uri),
        html_escape(&scope),
        html_escape(state)
    );
    let scopes_html: String = scope
        .split_whitespace()
        .map(|s| format!("<li>{}</li>", html_escape(s)))
        .collect();
    let page = format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Connect app to HubSpot account {portal_id}</title></head>
<body>
<h1>Grant access to HubSpot account {portal_id}</h1>
<p>The app is asking for:</p><ul>{scopes_html}</ul>
<form method="post" action="/oauth/authorize/decision">{hidden}<button type="submit" name="decision" value="grant">Grant access</button></form>
<form method="post" action="/oauth/authorize/decision">{hidden}<button type="submit" name="decision" value="cancel">Cancel</button></form>
</body></html>"#
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}

fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> HttpResponse {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return HttpResponse::BadRequest().body("invalid redirect_uri"),
    };
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in params {
            if !v.is_empty() {
                pairs.append_pair(k, v);
            }
        }
    }
    HttpResponse::Found()
        .insert_header(("Location", url.to_string()))
        .finish()
}

/// `POST /oauth/authorize/decision`: the consent page's buttons.
pub(crate) fn decision(sim: &Sim, form: &[(String, String)]) -> HttpResponse {
    let client_id = get(form, "client_id").unwrap_or_default();
    let Some(portal_id) = sim.clients.read().get(client_id).copied() else {
        return HttpResponse::BadRequest().body("Unknown client_id");
    };
    let redirect_uri = get(form, "redirect_uri").unwrap_or_default();
    let state = get(form, "state").unwrap_or_default();
    if get(form, "decision") != Some("grant") {
        return redirect_with(
            redirect_uri,
            &[("error", "access_denied"), ("state", state)],
        );
    }
    let scopes: Vec<String> = get(form, "scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let code = issue_code(sim, portal_id, redirect_uri, scopes);
    redirect_with(redirect_uri, &[("code", &code), ("state", state)])
}

/// Issues a single-use authorization code (what Grant access does).
pub fn issue_code(sim: &Sim, portal_id: u64, redirect_uri: &str, scopes: Vec<String>) -> String {
    let mut granted: HashSet<String> = scopes.into_iter().collect();
    if granted.is_empty()
        && let Some(p) = sim.portal(portal_id)
    {
        granted.extend(p.oauth_scopes.iter().cloned());
    }
    // Every HubSpot OAuth app holds the `oauth` scope.
    granted.insert("oauth".to_owned());
    let code = new_uuid();
    sim.codes.lock().insert(
        code.clone(),
        AuthCode {
            portal_id,
            redirect_uri: redirect_uri.to_owned(),
            scopes: Arc::new(granted),
            issued_ms: now_ms(),
            used: false,
        },
    );
    code
}

fn check_client(sim: &Sim, form: &[(String, String)]) -> Result<u64, HttpResponse> {
    let client_id = get(form, "client_id").unwrap_or_default();
    let secret = get(form, "client_secret").unwrap_or_default();
    let portal = sim
        .clients
        .read()
        .get(client_id)
        .copied()
        .and_then(|id| sim.portal(id));
    match portal {
        Some(p) if crate::signing::signatures_equal(&p.client_secret, secret) => Ok(p.id),
        _ => Err(oauth_error(
            "invalid_client",
            "BAD_CLIENT_ID",
            "The client ID or client secret is invalid",
        )),
    }
}

fn token_response(
    sim: &Sim,
    portal_id: u64,
    access: &str,
    refresh: Option<&str>,
    scopes: &HashSet<String>,
    v1: bool,
    use_: &str,
) -> HttpResponse {
    let mut out = json!({"token_type": "bearer", "access_token": access, "expires_in": sim.config.access_token_ttl_secs});
    if let Some(r) = refresh {
        out["refresh_token"] = json!(r);
    }
    if !v1 {
        let mut list: Vec<&String> = scopes.iter().collect();
        list.sort();
        out["hub_id"] = json!(portal_id);
        out["user_id"] = json!(1);
        out["scopes"] = json!(list);
        out["token_use"] = json!(use_);
    }
    json_response(200, &out)
}

fn token(sim: &Sim, form: &[(String, String)], v1: bool) -> HttpResponse {
    let grant = get(form, "grant_type").unwrap_or_default();
    let portal_id = match check_client(sim, form) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    match grant {
        "authorization_code" => {
            let code = get(form, "code").unwrap_or_default();
            let redirect_uri = get(form, "redirect_uri").unwrap_or_default();
            let mut codes = sim.codes.lock();
            let Some(entry) = codes.get_mut(code).filter(|c| c.portal_id == portal_id) else {
                return oauth_error(
                    "invalid_grant",
                    "BAD_AUTH_CODE",
                    "missing or invalid auth code",
                );
            };
            if entry.used {
                return oauth_error(
                    "invalid_grant",
                    "BAD_AUTH_CODE",
                    "auth code has already been used",
                );
            }
            if now_ms() - entry.issued_ms > AUTH_CODE_TTL_MS {
                return oauth_error("invalid_grant", "EXPIRED_AUTH_CODE", "auth code is expired");
            }
            if entry.redirect_uri != redirect_uri {
                return oauth_error(
                    "redirect_uri_mismatch",
                    "BAD_REDIRECT_URI",
                    "redirect_uri does not match the one the code was issued for",
                );
            }
            entry.used = true;
            let scopes = entry.scopes.clone();
            drop(codes);
            let (access, refresh) = sim.issue_tokens(portal_id, scopes.clone(), None);
            token_response(
                sim,
                portal_id,
                &access,
                Some(&refresh),
                &scopes,
                v1,
                "access_token",
            )
        }
        "refresh_token" => {
            let refresh = get(form, "refresh_token").unwrap_or_default();
            let entry = sim.refresh_tokens.read().get(refresh).cloned();
            let Some(RefreshToken {
                portal_id: rp,
                scopes,
                ..
            }) = entry.filter(|r| r.portal_id == portal_id)
            else {
                return oauth_error(
                    "invalid_grant",
                    "BAD_REFRESH_TOKEN",
                    "refresh token is invalid, expired or revoked",
                );
            };
            // HubSpot hands back the same refresh token; clients must store whatever comes back.
            let (access, refresh) = sim.issue_tokens(rp, scopes.clone(), Some(refresh.to_owned()));
            token_response(
                sim,
                rp,
                &access,
                Some(&refresh),
                &scopes,
                v1,
                "access_token",
            )
        }
        "client_credentials" => {
            let (access, _) = sim.issue_tokens(
                portal_id,
                Arc::new(HashSet::from(["oauth".to_owned()])),
                Some(String::new()),
            );
            if let Some(t) = sim.tokens.write().get_mut(&access) {
                t.kind = TokenKind::ClientCredentials;
            }
            token_response(
                sim,
                portal_id,
                &access,
                None,
                &HashSet::from(["oauth".to_owned()]),
                v1,
                "client_credentials",
            )
        }
        _ => oauth_error(
            "unsupported_grant_type",
            "BAD_GRANT_TYPE",
            "grant_type must be authorization_code, refresh_token or client_credentials",
        ),
    }
}

fn sorted(scopes: &HashSet<String>) -> Vec<&String> {
    let mut v: Vec<&String> = scopes.iter().collect();
    v.sort();
    v
}

fn access_token_json(sim: &Sim, token: &str) -> Option<Value> {
    let t = sim.tokens.read().get(token).cloned()?;
    let exp = t.expires_at_ms?;
    let now = now_ms();
    if now >= exp {
        return None;
    }
    let p = sim.portal(t.portal_id)?;
    Some(json!({
        "token": token, "user": "admin@sim.example", "hub_domain": format!("portal-{}.sim.example", p.id),
        "scopes": sorted(&t.scopes), "hub_id": p.id, "app_id": p.app_id, "expires_in": (exp - now) / 1000,
        "user_id": t.user_id, "token_type": "access", "is_private_distribution": false,
        "signed_access_token": {"expiresAt": exp, "scopes": sorted(&t.scopes), "hubId": p.id, "userId": t.user_id, "appId": p.app_id,
            "signature": "sim", "scopeToScopeGroupPks": "", "newSignature": "sim", "hublet": "na1", "trialScopes": "",
            "trialScopeToScopeGroupPks": "", "isUserLevel": false, "isPrivateDistribution": false},
    }))
}

/// `GET /oauth/v1/access-tokens/{token}`.
pub(crate) fn access_token_info(sim: &Sim, token: &str) -> HttpResponse {
    match access_token_json(sim, token) {
        Some(v) => json_response(200, &v),
        None => json_response(
            404,
            &json!({"status": "EXPIRED_OR_INVALID_TOKEN", "message": "The access token is invalid, expired or revoked"}),
        ),
    }
}

fn refresh_token_json(sim: &Sim, token: &str) -> Option<Value> {
    let r = sim.refresh_tokens.read().get(token).cloned()?;
    let p = sim.portal(r.portal_id)?;
    Some(
        json!({"token": token, "user": "admin@sim.example", "hub_domain": format!("portal-{}.sim.example", p.id),
        "scopes": sorted(&r.scopes), "hub_id": p.id, "client_id": p.client_id, "user_id": r.user_id, "token_type": "refresh"}),
    )
}

/// `GET /oauth/v1/refresh-tokens/{token}`.
pub(crate) fn refresh_token_info(sim: &Sim, token: &str) -> HttpResponse {
    match refresh_token_json(sim, token) {
        Some(v) => json_response(200, &v),
        None => oauth_error(
            "invalid_grant",
            "BAD_REFRESH_TOKEN",
            "refresh token is invalid, expired or revoked",
        ),
    }
}

/// `POST /oauth/v3/token/introspect`.
pub(crate) fn introspect(sim: &Sim, form: &[(String, String)]) -> HttpResponse {
    if let Err(resp) = check_client(sim, form) {
        return resp;
    }
    // The spec names the field `token`; the docs send `access_token` / `refresh_token`. Accept all.
    let (token, hint) = if let Some(t) = get(form, "token") {
        (t, get(form, "token_type_hint").unwrap_or("access_token"))
    } else if let Some(t) = get(form, "access_token") {
        (t, "access_token")
    } else if let Some(t) = get(form, "refresh_token") {
        (t, "refresh_token")
    } else {
        return oauth_error("invalid_request", "BAD_REQUEST", "token is required");
    };
    let client_id = get(form, "client_id").unwrap_or_default();
    let as_access = || {
        access_token_json(sim, token).map(|mut v| {
            v["active"] = json!(true);
            v["client_id"] = json!(client_id);
            v["token_use"] = json!("access_token");
            v["token_type"] = json!("Bearer");
            v
        })
    };
    let as_refresh = || {
        refresh_token_json(sim, token).map(|mut v| {
            v["active"] = json!(true);
            v["app_id"] = sim
                .clients
                .read()
                .get(client_id)
                .and_then(|id| sim.portal(*id))
                .map(|p| json!(p.app_id))
                .unwrap_or(Value::Null);
            v["is_private_distribution"] = json!(false);
            v["token_use"] = json!("refresh_token");
            v["token_type"] = json!("Bearer");
            v
        })
    };
    let found = if hint == "refresh_token" {
        as_refresh().or_else(as_access)
    } else {
        as_access().or_else(as_refresh)
    };
    json_response(200, &found.unwrap_or_else(|| json!({"active": false})))
}
