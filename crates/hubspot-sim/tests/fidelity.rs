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

/// Reads the calculated association properties of a record.
async fn counts(h: &Harness, token: &str, object_type: &str, id: &str) -> Value {
    let (status, _, body) = h
        .get(
            token,
            &format!(
                "/crm/v3/objects/{object_type}/{id}?properties=num_associated_contacts,num_associated_deals,associatedcompanyid"
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["properties"].clone()
}

#[tokio::test]
async fn association_counts_follow_associations_as_they_are_made_and_removed() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    let company = id(&h
        .create(&p.token, "companies", json!({"name": "Acme"}))
        .await);
    let ada = id(&h
        .create(&p.token, "contacts", json!({"email": "ada@acme.example"}))
        .await);
    let alan = id(&h
        .create(&p.token, "contacts", json!({"email": "alan@acme.example"}))
        .await);
    let fresh = counts(&h, &p.token, "companies", &company).await;
    assert_eq!(fresh["num_associated_contacts"], Value::Null, "{fresh}");

    // Both contacts to the company (Ada as primary), a deal with the company and Ada.
    for (contact, type_id) in [(&ada, 1), (&alan, 279)] {
        let (status, _, body) = h
            .send(
                Method::PUT,
                &p.token,
                &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
                json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _, deal) = h
        .post(
            &p.token,
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "Platform", "pipeline": "default", "dealstage": "qualifiedtobuy"},
                   "associations": [
                       {"to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]},
                       {"to": {"id": ada}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}]}),
        )
        .await;
    assert_eq!(status, 201, "{deal}");
    let deal = id(&deal);
    let c = counts(&h, &p.token, "companies", &company).await;
    assert_eq!(
        (&c["num_associated_contacts"], &c["num_associated_deals"]),
        (&json!("2"), &json!("1")),
        "{c}"
    );
    let d = counts(&h, &p.token, "deals", &deal).await;
    assert_eq!(d["num_associated_contacts"], "1", "{d}");
    let a = counts(&h, &p.token, "contacts", &ada).await;
    assert_eq!(
        (&a["num_associated_deals"], &a["associatedcompanyid"]),
        (&json!("1"), &json!(company)),
        "{a}"
    );
    let b = counts(&h, &p.token, "contacts", &alan).await;
    assert_eq!(
        b["associatedcompanyid"],
        Value::Null,
        "Alan's company is not primary: {b}"
    );

    // Removing an association, and archiving an associated record, lower the counts.
    let (status, _, _) = h
        .send(
            Method::DELETE,
            &p.token,
            &format!("/crm/v4/objects/deals/{deal}/associations/contacts/{ada}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let a = counts(&h, &p.token, "contacts", &ada).await;
    assert_eq!(
        a["num_associated_deals"], "0",
        "a count that drops shows 0: {a}"
    );
    let d = counts(&h, &p.token, "deals", &deal).await;
    assert_eq!(d["num_associated_contacts"], "0", "{d}");
    let (status, _, _) = h
        .send(
            Method::DELETE,
            &p.token,
            &format!("/crm/v3/objects/contacts/{alan}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let c = counts(&h, &p.token, "companies", &company).await;
    assert_eq!(c["num_associated_contacts"], "1", "{c}");

    // A calculated property is HubSpot's to write.
    let (status, _, refused) = h
        .send(
            Method::PATCH,
            &p.token,
            &format!("/crm/v3/objects/companies/{company}"),
            json!({"properties": {"num_associated_contacts": "9"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(refused["errors"][0]["code"], "READ_ONLY_VALUE", "{refused}");
    h.sim.stop().await;
}

#[tokio::test]
async fn seeded_records_carry_association_counts_that_match_their_associations() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    h.seed(p.id, 40, 5, 20).await;
    let (_, _, page) = h
        .get(
            &p.token,
            "/crm/v3/objects/companies?limit=5&associations=contacts,deals&properties=num_associated_contacts,num_associated_deals",
        )
        .await;
    let companies = page["results"].as_array().expect("companies");
    assert_eq!(companies.len(), 5);
    let mut total = 0;
    for company in companies {
        for (property, kind) in [
            ("num_associated_contacts", "contacts"),
            ("num_associated_deals", "deals"),
        ] {
            // v3 lists each association once as `..._unlabeled` (a primary one twice).
            let listed = company["associations"][kind]["results"]
                .as_array()
                .map_or(0, |r| {
                    r.iter()
                        .filter(|a| {
                            a["type"]
                                .as_str()
                                .is_some_and(|t| t.ends_with("_unlabeled"))
                        })
                        .count()
                });
            let counted = company["properties"][property]
                .as_str()
                .map_or(0, |n| n.parse::<usize>().expect("a count"));
            assert_eq!(listed, counted, "{property} of {company}");
            total += counted;
        }
    }
    assert!(
        total > 0,
        "the seed associates contacts and deals with companies"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn the_default_catalogue_carries_hubspots_default_properties_with_groups_and_options() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    for (object_type, at_least, expected) in [
        (
            "contacts",
            100,
            &[
                "email",
                "mobilephone",
                "hs_buying_role",
                "hs_analytics_source",
                "num_associated_deals",
                "hs_email_optout",
            ][..],
        ),
        (
            "companies",
            80,
            &[
                "domain",
                "industry",
                "type",
                "hs_num_open_deals",
                "num_associated_contacts",
                "linkedin_company_page",
            ][..],
        ),
        (
            "deals",
            60,
            &[
                "dealname",
                "hs_priority",
                "closed_lost_reason",
                "hs_date_entered_closedwon",
                "num_associated_contacts",
            ][..],
        ),
    ] {
        let (status, _, list) = h
            .get(&p.token, &format!("/crm/v3/properties/{object_type}"))
            .await;
        assert_eq!(status, 200);
        let results = list["results"].as_array().expect("results");
        assert!(
            results.len() >= at_least,
            "{object_type}: {} properties",
            results.len()
        );
        let (_, _, groups) = h
            .get(
                &p.token,
                &format!("/crm/v3/properties/{object_type}/groups"),
            )
            .await;
        let group_names: Vec<&str> = groups["results"]
            .as_array()
            .expect("groups")
            .iter()
            .filter_map(|g| g["name"].as_str())
            .collect();
        for name in expected {
            let property = results
                .iter()
                .find(|r| r["name"] == *name)
                .unwrap_or_else(|| panic!("{object_type} has no {name}"));
            assert_eq!(property["hubspotDefined"], true, "{property}");
            let group = property["groupName"].as_str().expect("groupName");
            assert!(
                group_names.contains(&group),
                "{object_type}.{name} is in {group}"
            );
        }
        let calculated = results
            .iter()
            .find(|r| r["name"] == "num_associated_contacts" || r["name"] == "num_associated_deals")
            .expect("a count");
        assert_eq!(calculated["calculated"], true);
        assert_eq!(calculated["modificationMetadata"]["readOnlyValue"], true);
    }
    let (_, _, industry) = h
        .get(&p.token, "/crm/v3/properties/companies/industry")
        .await;
    assert!(
        industry["options"].as_array().expect("options").len() > 100,
        "HubSpot's industry list"
    );

    // Writes to real default properties take, with their types' rules.
    let (status, _, contact) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "grace@navy.example", "mobilephone": "+1 555 0100", "website": "navy.example",
                                  "hs_buying_role": "DECISION_MAKER;CHAMPION", "numemployees": "25-50", "hs_language": "en"}}),
        )
        .await;
    assert_eq!(status, 201, "{contact}");
    assert_eq!(
        contact["properties"]["hs_buying_role"],
        "DECISION_MAKER;CHAMPION"
    );
    let (status, _, company) = h
        .post(
            &p.token,
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Navy", "industry": "ACCOUNTING", "type": "PARTNER", "is_public": true,
                                  "description": "Ships", "hs_ideal_customer_profile": "tier_1"}}),
        )
        .await;
    assert_eq!(status, 201, "{company}");
    let (status, _, deal) = h
        .post(
            &p.token,
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "Fleet", "pipeline": "default", "dealstage": "closedlost",
                                  "hs_priority": "high", "closed_lost_reason": "Budget", "deal_currency_code": "USD"}}),
        )
        .await;
    assert_eq!(status, 201, "{deal}");
    let (status, _, bad) = h
        .post(
            &p.token,
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "Fleet", "pipeline": "default", "dealstage": "closedlost",
                                  "hs_priority": "urgent", "no_such_property": "x"}}),
        )
        .await;
    assert_eq!(status, 400);
    let codes: Vec<&str> = bad["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["code"].as_str())
        .collect();
    assert!(
        codes.contains(&"INVALID_OPTION") && codes.contains(&"PROPERTY_DOESNT_EXIST"),
        "{bad}"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn seeded_sales_activity_sets_hubspots_last_sales_activity_date_which_the_api_cannot_write() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    h.seed(p.id, 30, 5, 0).await;
    for object_type in ["contacts", "companies"] {
        let (_, _, page) = h
            .get(
                &p.token,
                &format!("/crm/v3/objects/{object_type}?limit=30&properties=notes_last_updated,hs_last_sales_activity_date"),
            )
            .await;
        let records = page["results"].as_array().expect("results");
        let active: Vec<&Value> = records
            .iter()
            .filter(|r| r["properties"]["notes_last_updated"].is_string())
            .collect();
        assert!(!active.is_empty(), "{object_type}: the seed logs activity");
        for r in active {
            assert_eq!(
                r["properties"]["hs_last_sales_activity_date"],
                r["properties"]["notes_last_updated"],
                "{r}"
            );
        }
    }
    let (status, _, refused) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "x@y.example", "hs_last_sales_activity_date": "2026-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(refused["errors"][0]["code"], "READ_ONLY_VALUE", "{refused}");
    h.sim.stop().await;
}
