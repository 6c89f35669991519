//! The account's catalogue over plain HTTP: account info and daily usage (§2),
//! properties and groups (§4), owners and deal pipelines (§6), timeline events read
//! back (§7) and the HubSpot-defined association type ids of deals (§5.3).

mod common;

use common::Harness;
use serde_json::{Value, json};

#[tokio::test]
async fn account_details_and_daily_private_app_usage_have_hubspots_fields() {
    let h = Harness::start().await;
    let p = h
        .portal(json!({"tier": "professional", "time_zone": "Europe/Berlin"}))
        .await;
    let (status, headers, details) = h.get(&p.token, "/account-info/v3/details").await;
    assert_eq!(status, 200);
    assert_eq!(details["portalId"], p.id);
    assert_eq!(details["timeZone"], "Europe/Berlin");
    assert_eq!(details["utcOffset"], "+01:00");
    assert_eq!(details["utcOffsetMilliseconds"], 3_600_000);
    for field in [
        "accountType",
        "companyCurrency",
        "additionalCurrencies",
        "uiDomain",
        "dataHostingLocation",
    ] {
        assert!(details.get(field).is_some(), "{field} is missing");
    }
    assert!(headers.get("x-hubspot-ratelimit-daily").is_some());
    let (_, _, dated) = h.get(&p.token, "/account-info/2026-03/details").await;
    assert_eq!(dated["portalId"], p.id, "the date-versioned path works too");

    for _ in 0..3 {
        h.get(&p.token, "/crm/v3/objects/contacts").await;
    }
    let (status, _, usage) = h
        .get(&p.token, "/account-info/v3/api-usage/daily/private-apps")
        .await;
    assert_eq!(status, 200);
    let r = &usage["results"][0];
    assert_eq!(r["name"], "private-apps-api-calls-daily");
    assert_eq!(r["usageLimit"], 625_000);
    assert_eq!(
        r["currentUsage"], 6,
        "two details calls, three lists and this one"
    );
    assert_eq!(r["fetchStatus"], "SUCCESS");
    let resets = r["resetsAt"].as_str().expect("resetsAt");
    assert!(
        resets.ends_with("T23:00:00.000Z"),
        "Berlin's midnight is 23:00 UTC (no DST here): {resets}"
    );
    assert!(
        r["collectedAt"]
            .as_str()
            .expect("collectedAt")
            .ends_with('Z')
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn properties_list_get_create_with_409_and_type_field_type_pairs_checked() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let (status, headers, list) = h.get(&p.token, "/crm/v3/properties/companies").await;
    assert_eq!(status, 200);
    assert!(headers.get("x-hubspot-ratelimit-max").is_some());
    let names: Vec<&str> = list["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert!(names.contains(&"hs_lastmodifieddate") && names.contains(&"domain"));
    assert!(list.get("paging").is_none(), "properties are not paged");

    let (status, _, domain) = h.get(&p.token, "/crm/v3/properties/companies/domain").await;
    assert_eq!(status, 200);
    for field in [
        "name",
        "label",
        "type",
        "fieldType",
        "groupName",
        "description",
        "options",
    ] {
        assert!(domain.get(field).is_some(), "{field} is missing");
    }
    assert_eq!(domain["hubspotDefined"], true);

    let body = json!({"name": "customer_health_score", "label": "Customer health score", "groupName": "companyinformation",
                      "type": "number", "fieldType": "number", "formField": false});
    let (status, _, created) = h
        .post(&p.token, "/crm/v3/properties/companies", body.clone())
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["type"], "number");
    assert_eq!(created["hubspotDefined"], false);
    let (status, _, again) = h
        .post(&p.token, "/crm/properties/2026-03/companies", body)
        .await;
    assert_eq!(status, 409);
    assert_eq!(again["category"], "OBJECT_ALREADY_EXISTS");
    assert!(again["correlationId"].is_string());

    let (status, _, fetched) = h
        .get(
            &p.token,
            "/crm/v3/properties/companies/customer_health_score",
        )
        .await;
    assert_eq!(
        (status, fetched["label"].as_str()),
        (200, Some("Customer health score"))
    );

    for (ptype, field_type, ok) in [
        ("string", "text", true),
        ("string", "number", false),
        ("number", "text", false),
        ("bool", "booleancheckbox", true),
        ("bool", "select", false),
        ("enumeration", "radio", true),
        ("enumeration", "text", false),
        ("date", "date", true),
        ("datetime", "date", true),
        ("datetime", "text", false),
        ("colour", "text", false),
    ] {
        let name = format!("p_{ptype}_{field_type}");
        let (status, _, body) = h
            .post(
                &p.token,
                "/crm/v3/properties/companies",
                json!({"name": name, "label": "x", "groupName": "companyinformation", "type": ptype, "fieldType": field_type,
                       "options": [{"label": "A", "value": "a"}]}),
            )
            .await;
        let expected = if ok { 201 } else { 400 };
        assert_eq!(status, expected, "{ptype}/{field_type}: {body}");
        if !ok {
            assert_eq!(body["category"], "VALIDATION_ERROR");
        }
    }

    let (status, _, _) = h
        .post(
            &p.token,
            "/crm/v3/properties/companies",
            json!({"name": "x_no_group", "label": "x", "groupName": "nope", "type": "string", "fieldType": "text"}),
        )
        .await;
    assert_eq!(status, 400, "the group must exist");
    let (status, _, group) = h
        .post(
            &p.token,
            "/crm/v3/properties/companies/groups",
            json!({"name": "health", "label": "Health"}),
        )
        .await;
    assert_eq!((status, group["name"].as_str()), (201, Some("health")));
    let (status, _, _) = h
        .post(
            &p.token,
            "/crm/v3/properties/companies/groups",
            json!({"name": "health", "label": "Health"}),
        )
        .await;
    assert_eq!(status, 409);
    let (_, _, groups) = h.get(&p.token, "/crm/v3/properties/companies/groups").await;
    assert!(
        groups["results"]
            .as_array()
            .expect("groups")
            .iter()
            .any(|g| g["name"] == "health")
    );

    let (status, _, set) = h
        .post(
            &p.token,
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Acme", "customer_health_score": 82}}),
        )
        .await;
    assert_eq!(status, 201, "a created property takes values: {set}");
    assert_eq!(set["properties"]["customer_health_score"], "82");

    let reader = h
        .portal(json!({"private_app_scopes": ["crm.objects.companies.read"]}))
        .await;
    let (status, _, _) = h.get(&reader.token, "/crm/v3/properties/companies").await;
    assert_eq!(status, 200, "any object read scope reads properties");
    let (status, _, denied) = h
        .post(
            &reader.token,
            "/crm/v3/properties/companies",
            json!({"name": "y", "label": "y", "groupName": "companyinformation", "type": "string", "fieldType": "text"}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        denied["errors"][0]["context"]["requiredGranularScopes"][0],
        "crm.schemas.companies.write"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn owners_page_and_deal_pipelines_carry_string_probability_and_closed_flags() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    h.seed(p.id, 0, 0, 0).await; // five owners
    let (status, _, first) = h.get(&p.token, "/crm/v3/owners?limit=3").await;
    assert_eq!(status, 200);
    let owners = first["results"].as_array().expect("owners");
    assert_eq!(owners.len(), 3);
    let o = &owners[0];
    assert!(o["id"].is_string(), "owner ids are strings: {o}");
    assert!(o["email"].as_str().expect("email").contains('@'));
    assert_eq!(o["type"], "PERSON");
    assert!(o["userId"].is_number() && o["firstName"].is_string() && o["teams"].is_array());
    let after = first["paging"]["next"]["after"].as_str().expect("after");
    let (_, _, second) = h
        .get(
            &p.token,
            &format!("/crm/owners/2026-03?limit=3&after={after}"),
        )
        .await;
    assert_eq!(second["results"].as_array().map(Vec::len), Some(2));
    assert!(
        second.get("paging").is_none(),
        "the last page has no paging"
    );
    let email = o["email"].as_str().expect("email");
    let (_, _, by_email) = h
        .get(&p.token, &format!("/crm/v3/owners?email={email}"))
        .await;
    assert_eq!(by_email["results"][0]["id"], o["id"]);
    let (status, _, one) = h
        .get(
            &p.token,
            &format!("/crm/v3/owners/{}", o["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!((status, &one["email"]), (200, &o["email"]));

    let (status, _, pipelines) = h.get(&p.token, "/crm/v3/pipelines/deals").await;
    assert_eq!(status, 200);
    let default = pipelines["results"]
        .as_array()
        .expect("pipelines")
        .iter()
        .find(|p| p["id"] == "default")
        .expect("the default pipeline");
    let stages = default["stages"].as_array().expect("stages");
    let stage = |id: &str| {
        stages
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("stage {id}"))
            .clone()
    };
    assert_eq!(
        stage("closedwon")["metadata"],
        json!({"isClosed": "true", "probability": "1.0"})
    );
    assert_eq!(
        stage("closedlost")["metadata"],
        json!({"isClosed": "true", "probability": "0.0"})
    );
    assert_eq!(
        stage("qualifiedtobuy")["metadata"],
        json!({"isClosed": "false", "probability": "0.4"})
    );
    let (status, _, one) = h
        .get(&p.token, "/crm/pipelines/2026-03/deals/default/stages")
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["results"].as_array().map(Vec::len), Some(stages.len()));
    let (status, _, _) = h.get(&p.token, "/crm/v3/pipelines/deals/nope").await;
    assert_eq!(status, 404);
    h.sim.stop().await;
}

#[tokio::test]
async fn timeline_events_read_back_by_template_and_id_and_batches_report_failures() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let contact = h
        .create(&p.token, "contacts", json!({"email": "ada@x.example"}))
        .await;
    let access = &h
        .oauth_access(
            &p,
            json!({"redirect_uri": "http://localhost/cb", "scopes": ["timeline"]}),
        )
        .await;
    let t = h.template_id(&p, "contacts", &["score"]).await;
    let (status, _, batch) = h
        .post(
            access,
            "/integrators/timeline/v3/events/batch/create",
            json!({"inputs": [
                {"eventTemplateId": t, "id": "b-1", "email": "ada@x.example", "tokens": {"score": "9"},
                 "timestamp": "2026-03-01T08:00:00.000Z", "extraData": {"k": [1, 2]}},
                {"eventTemplateId": t, "id": "b-2", "objectId": contact["id"], "tokens": {"score": "3"}},
                {"eventTemplateId": t, "id": "b-3", "email": "nobody@x.example", "tokens": {}},
                {"eventTemplateId": t, "id": "b-4", "email": "ada@x.example", "tokens": {}, "timestamp": "yesterday"},
            ]}),
        )
        .await;
    assert_eq!(status, 207, "{batch}");
    assert_eq!(batch["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(batch["numErrors"], 2);
    let (status, _, event) = h
        .get(access, &format!("/integrators/timeline/v3/events/{t}/b-1"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(event["objectId"], contact["id"]);
    assert_eq!(event["objectType"], "CONTACT");
    assert_eq!(event["tokens"]["score"], "9");
    assert_eq!(event["extraData"]["k"][1], 2);
    assert!(event["createdAt"].is_string());
    let (status, _, _) = h
        .get(access, &format!("/integrators/timeline/v3/events/{t}/b-3"))
        .await;
    assert_eq!(status, 404, "rejected events are not stored");
    let (status, _, old_path) = h
        .get(access, &format!("/crm/v3/timeline/events/{t}/b-2"))
        .await;
    assert_eq!((status, &old_path["tokens"]["score"]), (200, &json!("3")));
    let listed = h
        .sim_get(&format!("/_sim/portals/{}/timeline-events", p.id))
        .await;
    let ids: Vec<&str> = listed["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec!["b-1", "b-2"]);
    h.sim.stop().await;
}

#[tokio::test]
async fn deal_associations_use_hubspots_type_ids_in_both_directions() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let company = h
        .create(&p.token, "companies", json!({"name": "Acme"}))
        .await;
    let contact = h
        .create(&p.token, "contacts", json!({"email": "buyer@acme.example"}))
        .await;
    let (status, _, deal) = h
        .post(
            &p.token,
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "Platform", "pipeline": "default", "dealstage": "qualifiedtobuy"},
                   "associations": [
                       {"to": {"id": company["id"]}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]},
                       {"to": {"id": contact["id"]}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}]}),
        )
        .await;
    assert_eq!(status, 201, "{deal}");
    let deal_id = deal["id"].as_str().expect("id");
    let type_ids = |body: &Value| -> Vec<u64> {
        body["results"][0]["to"][0]["associationTypes"]
            .as_array()
            .expect("types")
            .iter()
            .map(|t| t["typeId"].as_u64().expect("typeId"))
            .collect()
    };
    let read = |from: &'static str, to: &'static str, id: Value| {
        let h = &h;
        let token = p.token.clone();
        async move {
            let (status, _, body) = h
                .post(
                    &token,
                    &format!("/crm/v4/associations/{from}/{to}/batch/read"),
                    json!({"inputs": [{"id": id}]}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let deal_company = read("deals", "companies", json!(deal_id)).await;
    assert_eq!(type_ids(&deal_company), vec![5, 341]);
    assert_eq!(
        deal_company["results"][0]["to"][0]["associationTypes"][0]["label"],
        "Primary"
    );
    assert_eq!(
        deal_company["results"][0]["to"][0]["associationTypes"][1]["label"],
        Value::Null
    );
    assert_eq!(
        type_ids(&read("deals", "contacts", json!(deal_id)).await),
        vec![3]
    );
    assert_eq!(
        type_ids(&read("companies", "deals", company["id"].clone()).await),
        vec![6, 342]
    );
    assert_eq!(
        type_ids(&read("contacts", "deals", contact["id"].clone()).await),
        vec![4]
    );
    let (status, _, bad) = h
        .post(
            &p.token,
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "X", "pipeline": "default", "dealstage": "qualifiedtobuy"},
                   "associations": [{"to": {"id": company["id"]}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]}),
        )
        .await;
    assert_eq!(
        status, 400,
        "279 is contact-to-company, not valid from a deal: {bad}"
    );
    let (_, _, labels) = h
        .get(&p.token, "/crm/v4/associations/deals/companies/labels")
        .await;
    assert_eq!(
        labels["results"],
        json!([{"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"},
               {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": null}])
    );
    h.sim.stop().await;
}
