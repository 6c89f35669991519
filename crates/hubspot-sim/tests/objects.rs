//! CRM objects over plain HTTP: shapes, status codes, paging, batches and scopes.

mod common;

use common::Harness;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn contacts_page_to_the_end_and_the_last_page_has_no_paging() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    h.seed(p.id, 250, 10, 10).await;
    let mut after: Option<String> = None;
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/crm/v3/objects/contacts?limit=100&after={a}"),
            None => "/crm/v3/objects/contacts?limit=100".to_owned(),
        };
        let (status, _, body) = h.get(&p.token, &path).await;
        assert_eq!(status, 200);
        let results = body["results"].as_array().expect("results");
        seen += results.len();
        pages += 1;
        let first = &results[0];
        assert!(first["id"].is_string());
        assert!(first["properties"]["hs_object_id"].is_string());
        assert!(first["properties"].get("lastmodifieddate").is_some());
        assert!(
            first["createdAt"]
                .as_str()
                .expect("createdAt")
                .ends_with('Z')
        );
        match body.get("paging") {
            Some(paging) => {
                after = Some(paging["next"]["after"].as_str().expect("after").to_owned())
            }
            None => break,
        }
    }
    assert_eq!((seen, pages), (250, 3));
    let (_, _, big) = h.get(&p.token, "/crm/v3/objects/contacts?limit=500").await;
    assert_eq!(
        big["results"].as_array().map(Vec::len),
        Some(100),
        "limit is capped at 100"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn create_update_archive_round_trip_with_hubspot_status_codes() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let created = h
        .create(
            &p.token,
            "companies",
            json!({"name": "Northwind", "domain": "northwind.example", "numberofemployees": 12}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created["properties"]["numberofemployees"], "12",
        "numbers come back as strings"
    );
    let before = created["properties"]["hs_lastmodifieddate"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, _, updated) = h
        .send(
            Method::PATCH,
            &p.token,
            &format!("/crm/v3/objects/companies/{id}"),
            json!({"properties": {"name": "Northwind Traders"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(updated["properties"]["name"], "Northwind Traders");
    assert_ne!(updated["properties"]["hs_lastmodifieddate"], before);
    let (status, _, bad) = h
        .send(
            Method::PATCH,
            &p.token,
            &format!("/crm/v3/objects/companies/{id}"),
            json!({"properties": {"healthscore_x": "1"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(bad["category"], "VALIDATION_ERROR");
    assert_eq!(bad["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
    let (status, _, _) = h
        .send(
            Method::DELETE,
            &p.token,
            &format!("/crm/v3/objects/companies/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, missing) = h
        .get(&p.token, &format!("/crm/v3/objects/companies/{id}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(missing["category"], "OBJECT_NOT_FOUND");
    let (status, _, archived) = h
        .get(
            &p.token,
            &format!("/crm/v3/objects/companies/{id}?archived=true"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(archived["archived"], true);
    h.sim.stop().await;
}

#[tokio::test]
async fn duplicate_contact_email_is_a_409_conflict() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let (s1, _, first) = h
        .post(
            &p.token,
            "/crm/objects/2026-03/contacts",
            json!({"properties": {"email": "ada@x.example"}}),
        )
        .await;
    assert_eq!(s1, 201);
    let (s2, _, second) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "ADA@x.example"}}),
        )
        .await;
    assert_eq!(s2, 409);
    assert_eq!(second["category"], "CONFLICT");
    assert!(
        second["message"]
            .as_str()
            .expect("msg")
            .contains(first["id"].as_str().expect("id"))
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn an_email_freed_by_archiving_belongs_to_the_next_contact_that_takes_it() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let first = h
        .create(&p.token, "contacts", json!({"email": "reuse@x.example"}))
        .await;
    let first_id = first["id"].as_str().expect("id").to_owned();
    let (status, _, _) = h
        .send(
            reqwest::Method::DELETE,
            &p.token,
            &format!("/crm/v3/objects/contacts/{first_id}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let (s2, _, second) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "reuse@x.example"}}),
        )
        .await;
    assert_eq!(s2, 201, "the archived contact no longer holds the email");
    let second_id = second["id"].as_str().expect("id").to_owned();
    let (s3, _, third) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "reuse@x.example"}}),
        )
        .await;
    assert_eq!(
        s3, 409,
        "the live contact with the email is a conflict: {third}"
    );
    assert!(third["message"].as_str().expect("msg").contains(&second_id));
    let (s4, _, found) = h
        .get(
            &p.token,
            "/crm/v3/objects/contacts/reuse%40x.example?idProperty=email",
        )
        .await;
    assert_eq!(s4, 200);
    assert_eq!(found["id"], second_id.as_str());
    h.sim.stop().await;
}

#[tokio::test]
async fn batch_read_with_a_missing_id_answers_207_with_the_id_in_context() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    h.seed(p.id, 5, 1, 1).await;
    let (_, _, list) = h.get(&p.token, "/crm/v3/objects/contacts?limit=2").await;
    let ids: Vec<Value> = list["results"]
        .as_array()
        .expect("r")
        .iter()
        .map(|r| json!({"id": r["id"]}))
        .collect();
    let mut inputs = ids.clone();
    inputs.push(json!({"id": "424242"}));
    let (status, _, body) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": inputs, "properties": ["email"]}),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(body["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["numErrors"], 1);
    assert_eq!(body["errors"][0]["context"]["ids"][0], "424242");
    let (status, _, ok) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": ids}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ok["status"], "COMPLETE");
    h.sim.stop().await;
}

#[tokio::test]
async fn batches_over_100_inputs_are_rejected_with_400() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let inputs: Vec<Value> = (0..101)
        .map(|i| json!({"properties": {"email": format!("c{i}@x.example")}}))
        .collect();
    let (status, _, body) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    h.sim.stop().await;
}

#[tokio::test]
async fn batch_create_with_trace_ids_reports_the_failed_input_in_a_207() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let inputs = json!([
        {"properties": {"dealname": "Good", "pipeline": "default", "dealstage": "closedwon", "amount": "100"}, "objectWriteTraceId": "t-1"},
        {"properties": {"dealname": "Bad", "pipeline": "default", "dealstage": "nope"}, "objectWriteTraceId": "t-2"},
    ]);
    let (status, _, body) = h
        .post(
            &p.token,
            "/crm/v3/objects/deals/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(body["results"][0]["properties"]["hs_is_closed_won"], "true");
    assert_eq!(body["errors"][0]["context"]["objectWriteTraceId"][0], "t-2");
    let (status, _, _) = h
        .post(&p.token, "/crm/v3/objects/deals/batch/create", json!({"inputs": [{"properties": {"dealname": "x", "pipeline": "default", "dealstage": "closedwon"}}]}))
        .await;
    assert_eq!(status, 201);
    h.sim.stop().await;
}

#[tokio::test]
async fn upsert_by_email_reports_which_records_are_new() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    h.create(&p.token, "contacts", json!({"email": "old@x.example"}))
        .await;
    let inputs = json!([
        {"id": "old@x.example", "idProperty": "email", "properties": {"firstname": "Old"}},
        {"id": "new@x.example", "idProperty": "email", "properties": {"firstname": "New"}},
    ]);
    let (status, _, body) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(status, 200);
    let news: Vec<bool> = body["results"]
        .as_array()
        .expect("r")
        .iter()
        .map(|r| r["new"].as_bool().expect("new"))
        .collect();
    assert_eq!(news, vec![false, true]);
    assert_eq!(body["results"][1]["properties"]["email"], "new@x.example");
    h.sim.stop().await;
}

#[tokio::test]
async fn a_record_is_found_by_a_percent_encoded_email_in_the_path() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    h.create(&p.token, "contacts", json!({"email": "a+b@x.example"}))
        .await;
    let (status, _, body) = h
        .get(
            &p.token,
            "/crm/v3/objects/contacts/a%2Bb%40x.example?idProperty=email&properties=email",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["email"], "a+b@x.example");
    h.sim.stop().await;
}

/// A company and a contact created with it as its primary company: the contact's id.
#[expect(clippy::expect_used, reason = "a test helper fails its test loudly")]
async fn contact_with_primary_company(h: &Harness, token: &str) -> String {
    let company = h.create(token, "companies", json!({"name": "Acme"})).await;
    let cid = company["id"].as_str().expect("id").to_owned();
    let (status, _, contact) = h
        .post(
            token,
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "a@acme.example"},
                   "associations": [{"to": {"id": cid}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}]}),
        )
        .await;
    assert_eq!(status, 201);
    contact["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn associations_param_lists_primary_and_unlabeled_duplicates() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let contact = contact_with_primary_company(&h, &p.token).await;
    let id = contact.as_str();
    let (_, _, read) = h
        .get(
            &p.token,
            &format!("/crm/v3/objects/contacts/{id}?associations=companies"),
        )
        .await;
    let types: Vec<&str> = read["associations"]["companies"]["results"]
        .as_array()
        .expect("r")
        .iter()
        .map(|r| r["type"].as_str().expect("t"))
        .collect();
    assert_eq!(
        types,
        vec!["contact_to_company", "contact_to_company_unlabeled"]
    );
    let (status, _, v4) = h
        .post(
            &p.token,
            "/crm/v4/associations/contacts/companies/batch/read",
            json!({"inputs": [{"id": id}, {"id": "999"}]}),
        )
        .await;
    assert_eq!(
        status, 207,
        "the input without associations is reported as an error"
    );
    let type_ids: Vec<u64> = v4["results"][0]["to"][0]["associationTypes"]
        .as_array()
        .expect("t")
        .iter()
        .map(|t| t["typeId"].as_u64().expect("id"))
        .collect();
    assert_eq!(type_ids, vec![1, 279]);
    let too_many: Vec<Value> = (0..1001).map(|i| json!({"id": i.to_string()})).collect();
    let (status, _, _) = h
        .post(
            &p.token,
            "/crm/v4/associations/contacts/companies/batch/read",
            json!({"inputs": too_many}),
        )
        .await;
    assert_eq!(status, 400);
    h.sim.stop().await;
}

#[tokio::test]
async fn v4_batch_read_pages_one_records_associations() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let company = h
        .create(&p.token, "companies", json!({"name": "Big"}))
        .await;
    let cid = company["id"].as_str().expect("id").to_owned();
    for chunk in 0..6 {
        let inputs: Vec<Value> = (0..100)
            .map(|i| json!({"properties": {"email": format!("p{chunk}-{i}@big.example")}}))
            .collect();
        let (_, _, created) = h
            .post(
                &p.token,
                "/crm/v3/objects/contacts/batch/create",
                json!({"inputs": inputs}),
            )
            .await;
        let links: Vec<Value> = created["results"]
            .as_array()
            .expect("r")
            .iter()
            .map(|r| json!({"from": {"id": cid}, "to": {"id": r["id"]}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 280}]}))
            .collect();
        let (status, _, _) = h
            .post(
                &p.token,
                "/crm/v4/associations/companies/contacts/batch/create",
                json!({"inputs": links}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (_, _, first) = h
        .post(
            &p.token,
            "/crm/v4/associations/companies/contacts/batch/read",
            json!({"inputs": [{"id": cid}]}),
        )
        .await;
    assert_eq!(
        first["results"][0]["to"].as_array().map(Vec::len),
        Some(500)
    );
    let after = first["results"][0]["paging"]["next"]["after"]
        .as_str()
        .expect("after")
        .to_owned();
    let (_, _, second) = h
        .post(
            &p.token,
            "/crm/v4/associations/companies/contacts/batch/read",
            json!({"inputs": [{"id": cid, "after": after}]}),
        )
        .await;
    assert_eq!(
        second["results"][0]["to"].as_array().map(Vec::len),
        Some(100)
    );
    assert!(second["results"][0].get("paging").is_none());
    h.sim.stop().await;
}

#[tokio::test]
async fn a_token_without_the_scope_gets_403_missing_scopes() {
    let h = Harness::start().await;
    let p = h
        .portal(json!({"private_app_scopes": ["crm.objects.contacts.read"]}))
        .await;
    let (status, _, _) = h.get(&p.token, "/crm/v3/objects/contacts").await;
    assert_eq!(status, 200);
    let (status, _, body) = h.get(&p.token, "/crm/v3/objects/deals").await;
    assert_eq!(status, 403);
    assert_eq!(body["category"], "MISSING_SCOPES");
    assert_eq!(
        body["errors"][0]["context"]["requiredGranularScopes"][0],
        "crm.objects.deals.read"
    );
    let (status, _, body) = h.get("pat-na1-bogus", "/crm/v3/objects/contacts").await;
    assert_eq!(status, 401);
    assert!(
        body["message"]
            .as_str()
            .expect("m")
            .starts_with("Authentication credentials not found")
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn merge_keeps_the_primary_and_resolves_the_merged_id_to_it() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let a = h
        .create(&p.token, "contacts", json!({"email": "a@m.example"}))
        .await;
    let b = h
        .create(
            &p.token,
            "contacts",
            json!({"email": "b@m.example", "jobtitle": "CTO"}),
        )
        .await;
    let (status, _, merged) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": a["id"], "objectIdToMerge": b["id"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(merged["id"], a["id"]);
    assert_eq!(merged["properties"]["jobtitle"], "CTO");
    assert_eq!(merged["properties"]["hs_merged_object_ids"], b["id"]);
    let (status, _, via_old) = h
        .get(
            &p.token,
            &format!("/crm/v3/objects/contacts/{}", b["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(via_old["id"], a["id"]);
    let old_id = b["id"].as_str().expect("id");
    let (status, _, body) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": old_id, "properties": {"jobtitle": "CEO"}}]}),
        )
        .await;
    assert_eq!(status, 207, "batch update refuses merged ids: {body}");
    assert_eq!(body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["errors"][0]["context"]["ids"], json!([old_id]));
    let (_, _, survivor) = h
        .get(
            &p.token,
            &format!(
                "/crm/v3/objects/contacts/{}?properties=jobtitle",
                a["id"].as_str().expect("id")
            ),
        )
        .await;
    assert_eq!(
        survivor["properties"]["jobtitle"], "CTO",
        "nothing was written"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn batch_update_answers_207_for_missing_ids_and_moves_each_types_last_modified_date() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    let contact = h
        .create(&p.token, "contacts", json!({"email": "lm@x.example"}))
        .await;
    let deal = h
        .create(
            &p.token,
            "deals",
            json!({"dealname": "D", "pipeline": "default", "dealstage": "appointmentscheduled"}),
        )
        .await;
    assert!(contact["properties"]["lastmodifieddate"].is_string());
    assert!(deal["properties"]["hs_lastmodifieddate"].is_string());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, _, body) = h
        .post(
            &p.token,
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": contact["id"], "properties": {"firstname": "Ada"}, "objectWriteTraceId": "u-1"},
                              {"id": "424242", "properties": {"firstname": "Nobody"}}]}),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(body["numErrors"], 1);
    assert_eq!(body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["errors"][0]["context"]["ids"][0], "424242");
    assert!(body["startedAt"].is_string() && body["completedAt"].is_string());
    let updated = &body["results"][0];
    assert_eq!(updated["properties"]["firstname"], "Ada");
    assert_ne!(
        updated["properties"]["lastmodifieddate"],
        contact["properties"]["lastmodifieddate"]
    );
    assert_eq!(
        updated["updatedAt"], updated["properties"]["lastmodifieddate"],
        "updatedAt and the last-modified property agree"
    );
    let (status, _, body) = h
        .post(
            &p.token,
            "/crm/v3/objects/deals/batch/update",
            json!({"inputs": [{"id": deal["id"], "properties": {"dealstage": "closedwon"}}]}),
        )
        .await;
    assert_eq!(status, 200);
    let moved = &body["results"][0]["properties"];
    assert_ne!(
        moved["hs_lastmodifieddate"],
        deal["properties"]["hs_lastmodifieddate"]
    );
    assert_eq!(moved["hs_is_closed_won"], "true");
    h.sim.stop().await;
}

#[tokio::test]
async fn batch_archive_answers_204_and_archived_records_list_only_with_archived_true() {
    let h = Harness::start().await;
    let p = h.portal(json!({})).await;
    h.seed(p.id, 0, 5, 0).await;
    let (_, _, list) = h.get(&p.token, "/crm/v3/objects/companies").await;
    let ids: Vec<Value> = list["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids.len(), 5);
    let (status, _, body) = h
        .post(
            &p.token,
            "/crm/v3/objects/companies/batch/archive",
            json!({"inputs": [{"id": ids[0]}, {"id": ids[1]}]}),
        )
        .await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, _, live) = h.get(&p.token, "/crm/v3/objects/companies").await;
    assert_eq!(live["results"].as_array().map(Vec::len), Some(3));
    let (_, _, archived) = h
        .get(&p.token, "/crm/v3/objects/companies?archived=true")
        .await;
    let archived = archived["results"].as_array().expect("results");
    assert_eq!(archived.len(), 2);
    assert!(archived.iter().all(|r| r["archived"] == true));
    let (status, _, read) = h
        .post(
            &p.token,
            "/crm/v3/objects/companies/batch/read",
            json!({"inputs": [{"id": ids[0]}]}),
        )
        .await;
    assert_eq!(
        status, 207,
        "an archived record is missing from a live read: {read}"
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn embedded_associations_past_the_configured_limit_are_cut_with_paging() {
    let h = Harness::with(hubspot_sim::SimConfig {
        embedded_associations_limit: Some(1),
        ..Default::default()
    })
    .await;
    let p = h.portal(json!({})).await;
    let contact = contact_with_primary_company(&h, &p.token).await;
    let id = contact.as_str();
    // Primary and unlabeled are two entries: one is embedded, paging says there is more.
    for path in [
        format!("/crm/v3/objects/contacts/{id}?associations=companies"),
        "/crm/v3/objects/contacts?associations=companies".to_owned(),
    ] {
        let (status, _, body) = h.get(&p.token, &path).await;
        assert_eq!(status, 200, "{body}");
        let record = if body["results"].is_array() {
            body["results"][0].clone()
        } else {
            body
        };
        let block = &record["associations"]["companies"];
        assert_eq!(
            block["results"].as_array().map(Vec::len),
            Some(1),
            "{block}"
        );
        assert!(block["paging"]["next"]["after"].is_string(), "{block}");
    }
    h.sim.stop().await;
}
