//! Timeline event templates over plain HTTP (hubspot-api.md §7): managed as the app with its
//! developer API key (`hapikey`), shared by the portals that installed the app, and what a
//! timeline event must agree with in its template.

mod common;

use common::{Harness, PortalInfo};
use reqwest::Method;
use serde_json::{Value, json};

const APP: u64 = 424_242;
const KEY: &str = "dev-key-0000-0000-0000-000000000001";

fn templates_path(app_id: u64) -> String {
    format!("/integrators/timeline/v3/{app_id}/event-templates")
}

/// A portal of app [`APP`] whose developer API key is [`KEY`].
async fn app_portal(h: &Harness) -> PortalInfo {
    h.portal(json!({"app_id": APP, "developer_api_key": KEY}))
        .await
}

/// An OAuth access token with the `timeline` scope for `p`.
async fn timeline_token(h: &Harness, p: &PortalInfo) -> String {
    h.oauth_access(
        p,
        json!({"redirect_uri": "http://localhost/cb", "scopes": ["timeline"]}),
    )
    .await
}

/// HubSpot's error body: `status`, `message`, `correlationId` and `category`.
fn assert_error(body: &Value, category: &str) {
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["category"], category, "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["correlationId"].is_string(), "{body}");
}

#[tokio::test]
async fn event_templates_are_created_listed_read_and_deleted_with_the_developer_api_key() {
    let h = Harness::start().await;
    let p = app_portal(&h).await;
    assert_eq!((p.app_id, p.developer_api_key.as_str()), (APP, KEY));
    let path = templates_path(APP);
    let (status, _, empty) = h.developer(Method::GET, &path, Some(KEY), None).await;
    assert_eq!((status, &empty), (200, &json!({"results": []})));

    let created = h
        .template(
            &p,
            json!({
                "name": "Health score changed",
                "objectType": "companies",
                "headerTemplate": "Health score is now {{health_score}}",
                "detailTemplate": "Band: {{band}}",
                "tokens": [
                    {"name": "health_score", "label": "Health score", "type": "number"},
                    {"name": "band", "label": "Band", "type": "enumeration",
                     "options": [{"label": "Healthy", "value": "healthy"}, {"label": "At risk", "value": "at_risk"}]},
                    {"name": "scored_at", "label": "Scored at", "type": "date", "objectPropertyName": "last_scored_at"},
                ],
            }),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{created}");
    assert_eq!(created["name"], "Health score changed");
    assert_eq!(created["objectType"], "companies");
    assert_eq!(created["detailTemplate"], "Band: {{band}}");
    assert_eq!(created["tokens"][1]["options"][1]["value"], "at_risk");
    assert_eq!(created["tokens"][2]["objectPropertyName"], "last_scored_at");
    assert!(created["createdAt"].is_string() && created["updatedAt"].is_string());
    let second = h.template_id(&p, "contacts", &["score"]).await;
    assert_ne!(second, id, "template ids are unique");

    let (status, _, listed) = h.developer(Method::GET, &path, Some(KEY), None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![id.as_str(), second.as_str()]);
    let (status, _, one) = h
        .developer(Method::GET, &format!("{path}/{id}"), Some(KEY), None)
        .await;
    assert_eq!((status, &one), (200, &created));
    // The older path is an alias.
    let (status, _, old) = h
        .developer(
            Method::GET,
            &format!("/crm/v3/timeline/{APP}/event-templates/{id}"),
            Some(KEY),
            None,
        )
        .await;
    assert_eq!((status, &old["id"]), (200, &json!(id)));
    let control = h
        .sim_get(&format!("/_sim/apps/{APP}/event-templates"))
        .await;
    assert_eq!(control["results"], listed["results"]);

    let (status, _, _) = h
        .developer(Method::DELETE, &format!("{path}/{id}"), Some(KEY), None)
        .await;
    assert_eq!(status, 204);
    let (status, _, gone) = h
        .developer(Method::GET, &format!("{path}/{id}"), Some(KEY), None)
        .await;
    assert_eq!(status, 404);
    assert_error(&gone, "OBJECT_NOT_FOUND");
    let (status, _, _) = h
        .developer(Method::DELETE, &format!("{path}/{id}"), Some(KEY), None)
        .await;
    assert_eq!(status, 404);
    let (_, _, listed) = h.developer(Method::GET, &path, Some(KEY), None).await;
    assert_eq!(listed["results"].as_array().map(Vec::len), Some(1));
    let stats = h.stats(p.id).await;
    assert_eq!(
        stats["requests_total"], 0,
        "developer API calls count against no portal: {stats}"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn template_calls_without_the_apps_own_developer_key_are_401() {
    let h = Harness::start().await;
    let p = app_portal(&h).await;
    let other = h
        .portal(json!({"developer_api_key": "other-app-key"}))
        .await;
    assert_ne!(other.app_id, APP);
    let path = templates_path(APP);
    let body = json!({"name": "x", "objectType": "contacts"});
    for (case, key) in [
        ("no key", None),
        ("an empty key", Some("")),
        ("an unknown key", Some("not-a-key")),
        ("another app's key", Some("other-app-key")),
    ] {
        for method in [Method::GET, Method::POST] {
            let (status, headers, error) = h
                .developer(method.clone(), &path, key, Some(body.clone()))
                .await;
            assert_eq!(status, 401, "{method} with {case}: {error}");
            assert_error(&error, "INVALID_AUTHENTICATION");
            assert!(headers.contains_key("x-hubspot-correlation-id"));
            if let Some(key) = key.filter(|k| !k.is_empty()) {
                assert!(!error.to_string().contains(key), "{error}");
            }
        }
    }
    // A portal's bearer token is no developer key.
    let resp = h
        .http
        .get(h.url(&path))
        .bearer_auth(&p.token)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 401);
    // The other app's key works for its own app, which has none of this app's templates.
    h.template_id(&p, "contacts", &[]).await;
    let (status, _, theirs) = h
        .developer(
            Method::GET,
            &templates_path(other.app_id),
            Some("other-app-key"),
            None,
        )
        .await;
    assert_eq!((status, &theirs), (200, &json!({"results": []})));
    let control = h
        .sim_get(&format!("/_sim/apps/{APP}/event-templates"))
        .await;
    assert_eq!(
        control["results"].as_array().map(Vec::len),
        Some(1),
        "refused creates stored nothing"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn invalid_templates_are_400_validation_errors_naming_the_field() {
    let h = Harness::start().await;
    app_portal(&h).await;
    let path = templates_path(APP);
    let token = |kind: &str| json!({"name": "t", "label": "T", "type": kind});
    for (body, field) in [
        (json!({"objectType": "contacts"}), "name"),
        (json!({"name": "  ", "objectType": "contacts"}), "name"),
        (json!({"name": "x"}), "objectType"),
        (json!({"name": "x", "objectType": "tickets"}), "objectType"),
        (
            json!({"name": "x", "objectType": "contacts", "headerTemplate": 5}),
            "headerTemplate",
        ),
        (
            json!({"name": "x", "objectType": "contacts", "tokens": [token("boolean")]}),
            "tokens[0].type",
        ),
        (
            json!({"name": "x", "objectType": "contacts", "tokens": [{"label": "T", "type": "string"}]}),
            "tokens[0].name",
        ),
        (
            json!({"name": "x", "objectType": "contacts", "tokens": [token("enumeration")]}),
            "tokens[0].options",
        ),
        (
            json!({"name": "x", "objectType": "contacts", "tokens": [token("string"), token("number")]}),
            "tokens[1].name",
        ),
        (
            json!({"name": "x", "objectType": "contacts", "tokens": {"t": "string"}}),
            "tokens",
        ),
    ] {
        let (status, _, error) = h
            .developer(Method::POST, &path, Some(KEY), Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_error(&error, "VALIDATION_ERROR");
        assert_eq!(error["errors"][0]["in"], field, "{body}: {error}");
        let message = error["message"].as_str().expect("message");
        assert!(
            message.contains(field.rsplit('.').next().unwrap_or(field)),
            "{message}"
        );
    }
    let control = h
        .sim_get(&format!("/_sim/apps/{APP}/event-templates"))
        .await;
    assert_eq!(control["results"], json!([]));
    h.sim.stop().await;
}

#[tokio::test]
async fn portals_of_one_app_share_its_developer_key_and_another_key_is_refused() {
    let h = Harness::start().await;
    let first = app_portal(&h).await;
    let second = h.portal(json!({"app_id": APP})).await;
    assert_eq!(second.developer_api_key, KEY);
    let resp = h
        .http
        .post(h.url("/_sim/portals"))
        .json(&json!({"app_id": APP, "developer_api_key": "a-different-key"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 409, "one app, one developer key");
    let fresh = h.portal(json!({})).await;
    assert!(!fresh.developer_api_key.is_empty());
    assert_ne!(fresh.developer_api_key, KEY);
    let portal = h.sim_get(&format!("/_sim/portals/{}", first.id)).await;
    assert_eq!(portal["developer_api_key"], KEY);
    let app = h.sim_get(&format!("/_sim/apps/{APP}")).await;
    assert_eq!(app["portal_ids"], json!([first.id, second.id]));
    // A template of the app serves the events of every portal that installed it.
    let template = h.template_id(&first, "contacts", &["score"]).await;
    let token = timeline_token(&h, &second).await;
    h.create(&second.token, "contacts", json!({"email": "ada@x.example"}))
        .await;
    let (status, _, stored) = h
        .post(
            &token,
            "/integrators/timeline/v3/events",
            json!({"eventTemplateId": template, "id": "e-1", "email": "ada@x.example", "tokens": {"score": "7"}}),
        )
        .await;
    assert_eq!(status, 201, "{stored}");
    h.sim.stop().await;
}

#[tokio::test]
async fn timeline_events_must_name_a_template_of_the_portals_app_with_its_tokens_and_object_type() {
    let h = Harness::start().await;
    let p = app_portal(&h).await;
    let other = h.portal(json!({})).await;
    let companies = h.template_id(&p, "companies", &["health_score"]).await;
    let deals = h.template_id(&p, "deals", &["health_score"]).await;
    let theirs = h.template_id(&other, "companies", &["health_score"]).await;
    let company = h
        .create(
            &p.token,
            "companies",
            json!({"name": "Northwind", "domain": "northwind.example"}),
        )
        .await;
    let token = timeline_token(&h, &p).await;
    let post = |event: Value| {
        let token = token.clone();
        let h = &h;
        async move {
            let (status, _, body) = h
                .post(&token, "/integrators/timeline/v3/events", event)
                .await;
            (status, body)
        }
    };
    let event = |template: &str, id: &str, tokens: Value| json!({"eventTemplateId": template, "id": id, "domain": "northwind.example", "tokens": tokens});

    let (status, error) = post(event("999999999", "e-1", json!({}))).await;
    assert_eq!(status, 404, "{error}");
    assert_error(&error, "OBJECT_NOT_FOUND");
    assert_eq!(error["message"], "Event template 999999999 not found");
    let (status, error) = post(event(&theirs, "e-2", json!({}))).await;
    assert_eq!(status, 404, "another app's template: {error}");
    assert_eq!(
        error["message"],
        format!("Event template {theirs} not found")
    );
    let (status, error) = post(event(
        &companies,
        "e-3",
        json!({"health_score": "82", "mood": "sunny"}),
    ))
    .await;
    assert_eq!(status, 400, "{error}");
    assert_error(&error, "VALIDATION_ERROR");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("mood")),
        "{error}"
    );
    let (status, error) = post(event(&deals, "e-4", json!({"health_score": "82"}))).await;
    assert_eq!(status, 400, "a deals template for a company: {error}");
    assert_error(&error, "VALIDATION_ERROR");
    let (status, error) = post(
        json!({"eventTemplateId": deals, "id": "e-5", "objectId": company["id"], "tokens": {}}),
    )
    .await;
    assert_eq!(status, 400, "by objectId too: {error}");
    let listed = h
        .sim_get(&format!("/_sim/portals/{}/timeline-events", p.id))
        .await;
    assert_eq!(
        listed["results"],
        json!([]),
        "rejected events are not stored"
    );

    let (status, stored) = post(event(&companies, "e-6", json!({"health_score": "82"}))).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["objectType"], "COMPANY");
    assert_eq!(stored["objectId"], company["id"]);
    let (status, stored) = post(
        json!({"eventTemplateId": companies, "id": "e-7", "objectId": company["id"], "tokens": {}}),
    )
    .await;
    assert_eq!(status, 201, "tokens may be left out: {stored}");
    let (status, _) = post(event(&companies, "e-6", json!({"health_score": "82"}))).await;
    assert_eq!(status, 409, "the same (template, id) twice");
    let (status, _, read) = h
        .get(
            &token,
            &format!("/integrators/timeline/v3/events/{companies}/e-6"),
        )
        .await;
    assert_eq!(
        (status, &read["tokens"]["health_score"]),
        (200, &json!("82"))
    );
    let listed = h
        .sim_get(&format!("/_sim/portals/{}/timeline-events", p.id))
        .await;
    assert_eq!(listed["results"].as_array().map(Vec::len), Some(2));
    h.sim.stop().await;
}
