//! Details a HubSpot client notices: the schemas endpoint, HubSpot's exact 404 wording,
//! calculated association counts and the default property catalogue.

mod common;

use common::Harness;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn the_schemas_endpoint_lists_no_custom_objects_or_names_the_missing_scope() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    for path in [
        "/crm/v3/schemas",
        "/crm-object-schemas/v3/schemas",
        "/crm/schemas/2026-03",
    ] {
        let (status, _, body) = h.get(&p.token, path).await;
        assert_eq!((status, &body), (200, &json!({"results": []})), "{path}");
    }
    let (status, _, one) = h.get(&p.token, "/crm/v3/schemas/p_cars").await;
    assert_eq!(
        (status, &one["category"]),
        (404, &json!("OBJECT_NOT_FOUND"))
    );

    let narrow = h
        .portal(json!({"private_app_scopes": ["crm.objects.contacts.read"]}))
        .await;
    let (status, _, denied) = h.get(&narrow.token, "/crm/v3/schemas").await;
    assert_eq!(status, 403, "{denied}");
    assert_eq!(denied["category"], "MISSING_SCOPES");
    assert_eq!(
        denied["errors"][0]["context"]["requiredGranularScopes"],
        json!(["crm.schemas.custom.read"])
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn a_missing_record_is_a_404_in_hubspots_exact_words() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let expect_hubspots_404 = |body: &Value, id: &str| {
        assert_eq!(body["status"], "error", "{body}");
        assert_eq!(body["category"], "OBJECT_NOT_FOUND", "{body}");
        assert_eq!(
            body["message"], "Object not found.  objectId are usually numeric.",
            "{body}"
        );
        assert_eq!(body["context"], json!({"id": [id]}), "{body}");
        assert!(body["correlationId"].is_string(), "{body}");
    };
    for id in ["424242", "not-a-number"] {
        let (status, _, body) = h
            .get(&p.token, &format!("/crm/v3/objects/contacts/{id}"))
            .await;
        assert_eq!(status, 404);
        expect_hubspots_404(&body, id);
    }
    let (status, _, body) = h
        .send(
            Method::PATCH,
            &p.token,
            "/crm/objects/2026-03/deals/777",
            json!({"properties": {"dealname": "x"}}),
        )
        .await;
    assert_eq!(status, 404);
    expect_hubspots_404(&body, "777");
    let company = h
        .create(&p.token, "companies", json!({"name": "Acme"}))
        .await;
    let company_id = company["id"].as_str().expect("id");
    let (status, _, body) = h
        .send(
            Method::PUT,
            &p.token,
            &format!("/crm/v4/objects/companies/{company_id}/associations/default/contacts/31337"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 404, "an association to a missing record: {body}");
    expect_hubspots_404(&body, "31337");
    h.sim.stop().await;
}
