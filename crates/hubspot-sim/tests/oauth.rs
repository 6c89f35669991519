//! OAuth over plain HTTP: consent page, code exchange, refresh, errors, metadata,
//! introspection and access-token expiry (hubspot-api.md §1).

mod common;

use common::{Harness, PortalInfo};
use hubspot_sim::SimConfig;
use serde_json::{Value, json};

/// HubSpot's OAuth error body: RFC 6749 fields plus the legacy `status` and `message`.
fn assert_hubspot_oauth_error(body: &Value) {
    for field in ["error", "error_description", "status", "message"] {
        assert!(body[field].is_string(), "{field} missing in {body}");
    }
}

/// Consents (with contacts read) and exchanges the code at the v3 token endpoint.
async fn grant(h: &Harness, p: &PortalInfo) -> Value {
    let c = code(h, p, "http://localhost/cb").await;
    h.exchange(p, &c).await
}

/// Consents with contacts read for `redirect` and returns the code.
async fn code(h: &Harness, p: &PortalInfo, redirect: &str) -> String {
    h.auth_code(
        p.id,
        json!({"redirect_uri": redirect, "scopes": ["crm.objects.contacts.read"]}),
    )
    .await
}

#[tokio::test]
async fn consent_page_grant_and_cancel_redirect_back_with_code_or_error() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = no_redirects
        .get(h.url("/oauth/authorize"))
        .query(&[
            ("client_id", p.client_id.as_str()),
            ("redirect_uri", "http://localhost/cb"),
            ("scope", "oauth crm.objects.contacts.read"),
            ("state", "s1"),
        ])
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Grant access") && page.contains("Cancel"));
    let decide = |decision: &'static str| {
        let no_redirects = no_redirects.clone();
        let url = h.url("/oauth/authorize/decision");
        let client_id = p.client_id.clone();
        async move {
            let resp = no_redirects
                .post(url)
                .form(&[
                    ("client_id", client_id.as_str()),
                    ("redirect_uri", "http://localhost/cb"),
                    ("scope", "oauth"),
                    ("state", "s1"),
                    ("decision", decision),
                ])
                .send()
                .await
                .expect("decision");
            assert_eq!(resp.status(), 302);
            resp.headers()["location"]
                .to_str()
                .expect("location")
                .to_owned()
        }
    };
    let granted = decide("grant").await;
    assert!(
        granted.starts_with("http://localhost/cb?code=") && granted.ends_with("&state=s1"),
        "{granted}"
    );
    let cancelled = decide("cancel").await;
    assert_eq!(
        cancelled,
        "http://localhost/cb?error=access_denied&state=s1"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn codes_are_single_use_and_errors_use_hubspots_shape() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let c = code(&h, &p, "http://localhost/cb").await;
    let base =
        |code: &str, redirect: &'static str, secret: String| -> Vec<(&'static str, String)> {
            vec![
                ("grant_type", "authorization_code".to_owned()),
                ("client_id", p.client_id.clone()),
                ("client_secret", secret),
                ("redirect_uri", redirect.to_owned()),
                ("code", code.to_owned()),
            ]
        };
    let as_refs = |v: &Vec<(&'static str, String)>| {
        v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };
    let send = |fields: Vec<(&'static str, String)>| {
        let h = &h;
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.form("/oauth/v3/token", &pairs).await
        }
    };
    let (status, body) = send(as_refs(&base(
        &c,
        "http://localhost/cb",
        "wrong".to_owned(),
    )))
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client"))
    );
    assert_hubspot_oauth_error(&body);
    let (status, body) = send(as_refs(&base(
        &c,
        "http://elsewhere/cb",
        p.client_secret.clone(),
    )))
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("redirect_uri_mismatch"))
    );
    assert_hubspot_oauth_error(&body);
    let (status, tokens) = send(as_refs(&base(
        &c,
        "http://localhost/cb",
        p.client_secret.clone(),
    )))
    .await;
    assert_eq!(status, 200);
    assert_eq!(tokens["expires_in"], 1800);
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["hub_id"], p.id);
    let (status, body) = send(as_refs(&base(
        &c,
        "http://localhost/cb",
        p.client_secret.clone(),
    )))
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["status"], "BAD_AUTH_CODE");
    assert_hubspot_oauth_error(&body);
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let (status, refreshed) = h.refresh(&p, "/oauth/v1/token", refresh).await;
    assert_eq!(status, 200);
    assert_ne!(refreshed["access_token"], tokens["access_token"]);
    let (status, bad) = h.refresh(&p, "/oauth/2026-03/token", "na1-nope").await;
    assert_eq!(
        (status, bad["error"].as_str(), bad["status"].as_str()),
        (400, Some("invalid_grant"), Some("BAD_REFRESH_TOKEN"))
    );
    assert_hubspot_oauth_error(&bad);
    let (status, refreshed_v3) = h.refresh(&p, "/oauth/v3/token", refresh).await;
    assert_eq!(status, 200, "{refreshed_v3}");
    assert_eq!(refreshed_v3["expires_in"], 1800);
    assert_eq!(refreshed_v3["refresh_token"], refresh);
    let resp = h
        .http
        .post(h.url("/oauth/v3/token"))
        .json(&json!({"grant_type": "refresh_token", "client_id": p.client_id, "client_secret": p.client_secret, "refresh_token": refresh}))
        .send()
        .await
        .expect("json body");
    assert_eq!(resp.status(), 400, "token endpoints take form bodies only");
    h.sim.stop().await;
}

#[tokio::test]
async fn an_expired_access_token_gets_401_expired_authentication_and_metadata_reports_lifetime() {
    let h = Harness::with(SimConfig {
        access_token_ttl_secs: 600,
        ..SimConfig::default()
    })
    .await;
    let p = h.portal(json!({})).await;
    let tokens = grant(&h, &p).await;
    assert_eq!(tokens["expires_in"], 600);
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let (status, _, meta) = h
        .get("", &format!("/oauth/v1/access-tokens/{access}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(meta["hub_id"], p.id);
    assert!(meta["expires_in"].as_i64().expect("expires_in") > 590);
    assert!(
        meta["scopes"]
            .as_array()
            .expect("scopes")
            .iter()
            .any(|s| s == "crm.objects.contacts.read")
    );
    let (status, intro) = h
        .form(
            "/oauth/v3/token/introspect",
            &[
                ("client_id", &p.client_id),
                ("client_secret", &p.client_secret),
                ("access_token", &access),
            ],
        )
        .await;
    assert_eq!((status, intro["active"].as_bool()), (200, Some(true)));
    let (status, _, _) = h.get(&access, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 200);
    let (status, _, denied) = h.get(&access, "/crm/v3/objects/deals").await;
    assert_eq!(
        (status, denied["category"].as_str()),
        (403, Some("MISSING_SCOPES"))
    );
    let resp = h
        .http
        .post(h.url(&format!("/_sim/tokens/{access}/expire")))
        .send()
        .await
        .expect("expire");
    assert_eq!(resp.status(), 204);
    let (status, _, body) = h.get(&access, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");
    assert!(
        body["message"]
            .as_str()
            .expect("m")
            .starts_with("The OAuth token used to make this call expired")
    );
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let resp = h
        .http
        .delete(h.url(&format!("/oauth/v1/refresh-tokens/{refresh}")))
        .send()
        .await
        .expect("revoke");
    assert_eq!(resp.status(), 204);
    let (_, gone) = h
        .form(
            "/oauth/v3/token/introspect",
            &[
                ("client_id", &p.client_id),
                ("client_secret", &p.client_secret),
                ("token", refresh),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(gone["active"], false);
    h.sim.stop().await;
}

#[tokio::test]
async fn timeline_events_are_validated_stored_and_listed() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let tokens = grant(&h, &p).await;
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    h.create(
        &p.token,
        "companies",
        json!({"name": "Northwind", "domain": "northwind.example"}),
    )
    .await;
    let template = h.template_id(&p, "companies", &["health_score"]).await;
    let event = json!({"eventTemplateId": template, "id": "e-1", "domain": "northwind.example", "tokens": {"health_score": "82"}});
    let (status, _, stored) = h
        .post(&access, "/integrators/timeline/v3/events", event.clone())
        .await;
    assert_eq!(status, 403, "this token lacks the timeline scope: {stored}");
    let (status, _, _) = h
        .post(&p.token, "/integrators/timeline/v3/events", event.clone())
        .await;
    assert_eq!(status, 403, "private apps do not support timeline events");
    let timeline = h
        .oauth_access(
            &p,
            json!({"redirect_uri": "http://localhost/cb", "scopes": ["timeline"]}),
        )
        .await;
    let (status, _, stored) = h
        .post(&timeline, "/integrators/timeline/v3/events", event.clone())
        .await;
    assert_eq!(status, 201);
    assert_eq!(stored["objectType"], "COMPANY");
    let (status, _, _) = h
        .post(&timeline, "/integrators/timeline/v3/events", event)
        .await;
    assert_eq!(status, 409);
    let (status, _, _) = h
        .post(
            &timeline,
            "/integrators/timeline/v3/events",
            json!({"eventTemplateId": template, "id": "e-2", "tokens": {}}),
        )
        .await;
    assert_eq!(status, 400, "an event needs a target");
    let listed = h
        .sim_get(&format!("/_sim/portals/{}/timeline-events", p.id))
        .await;
    assert_eq!(listed["results"][0]["tokens"]["health_score"], "82");
    h.sim.stop().await;
}

#[tokio::test]
async fn a_refresh_token_revoked_at_v3_no_longer_refreshes_but_its_access_token_still_works() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let tokens = grant(&h, &p).await;
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let access = tokens["access_token"].as_str().expect("access");
    let (status, _) = h
        .form(
            "/oauth/v3/token/revoke",
            &[
                ("client_id", &p.client_id),
                ("client_secret", "wrong"),
                ("token", refresh),
            ],
        )
        .await;
    assert_eq!(status, 400, "revoking needs the client's credentials");
    let (status, _) = h
        .form(
            "/oauth/v3/token/revoke",
            &[
                ("client_id", &p.client_id),
                ("client_secret", &p.client_secret),
                ("token", refresh),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = h.refresh(&p, "/oauth/v3/token", refresh).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_REFRESH_TOKEN"))
    );
    assert_hubspot_oauth_error(&body);
    let (status, _, _) = h.get(access, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 200, "minted access tokens live until they expire");
    h.sim.stop().await;
}
