//! Every typed call against the simulator: paging to the end, batches and their 207s,
//! properties, associations, owners, pipelines, timeline events, account info and errors.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use common::{Budget, Sim};
use futures::TryStreamExt as _;
use hubspot_client::{
    CreateInput, CrmObject, Filter, FilterGroup, HubSpotError, ListOptions, Operator,
    PropertyCreate, PropertyGroup, SearchRequest, StaticToken, Tier, UpdateInput,
};
use reqwest::Method;
use serde_json::json;

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_follows_paging_to_the_last_record_exactly_once() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    sim.seed(
        &portal,
        json!({"seed": 7, "contacts": 345, "companies": 0, "deals": 0, "owners": 0}),
    )
    .await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let options = ListOptions {
        properties: vec!["email".into()],
        ..ListOptions::default()
    };
    let contacts: Vec<CrmObject> = client
        .list_objects("contacts", options)
        .try_collect()
        .await
        .unwrap();
    let ids: HashSet<_> = contacts.iter().map(|c| c.id.clone()).collect();
    assert_eq!(contacts.len(), 345);
    assert_eq!(ids.len(), 345);
    assert!(contacts.iter().all(|c| c.properties.contains_key("email")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_records_can_be_created_read_updated_merged_and_archived() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let input = CreateInput {
        properties: props(&[("email", "ada@northwind.example"), ("firstname", "Ada")]),
        ..Default::default()
    };
    let created = client.create_object("contacts", &input).await.unwrap();
    let fetched = client
        .get_object("contacts", &created.id, &["email", "firstname"], None)
        .await
        .unwrap();
    assert_eq!(fetched.property("firstname"), Some("Ada"));
    let by_email = client
        .get_object(
            "contacts",
            "ada@northwind.example",
            &["firstname"],
            Some("email"),
        )
        .await
        .unwrap();
    assert_eq!(by_email.id, created.id);

    let updated = client
        .update_object("contacts", &created.id, &props(&[("firstname", "Augusta")]))
        .await
        .unwrap();
    assert_eq!(updated.property("firstname"), Some("Augusta"));

    let duplicate = client.create_object("contacts", &input).await.unwrap_err();
    assert!(
        matches!(duplicate, HubSpotError::Conflict { .. }),
        "{duplicate:?}"
    );

    let other = client
        .create_object(
            "contacts",
            &CreateInput {
                properties: props(&[("email", "grace@northwind.example")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let merged = client
        .merge_objects("contacts", &created.id, &other.id)
        .await
        .unwrap();
    assert_eq!(merged.id, created.id);

    client
        .archive_object("contacts", &created.id)
        .await
        .unwrap();
    let gone = client
        .get_object("contacts", &created.id, &[], None)
        .await
        .unwrap_err();
    assert!(matches!(gone, HubSpotError::NotFound { .. }), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_calls_are_chunked_to_100_and_report_partial_failures_by_id() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));

    let inputs: Vec<CreateInput> = (0..150)
        .map(|i| CreateInput {
            properties: props(&[
                ("email", &format!("c{i}@batch.example")),
                ("firstname", "Batch"),
            ]),
            object_write_trace_id: Some(format!("trace-{i}")),
            ..Default::default()
        })
        .collect();
    let created = client.batch_create("contacts", &inputs).await.unwrap();
    assert_eq!(created.len(), 150);
    let mut ids: Vec<String> = created.iter().map(|c| c.id.clone()).collect();

    let updates: Vec<UpdateInput> = ids
        .iter()
        .map(|id| UpdateInput {
            id: id.clone(),
            properties: props(&[("firstname", "Renamed")]),
            ..Default::default()
        })
        .collect();
    let updated = client.batch_update("contacts", &updates).await.unwrap();
    assert!(
        updated
            .iter()
            .all(|c| c.property("firstname") == Some("Renamed"))
    );

    let upserts = vec![
        UpdateInput {
            id: "c1@batch.example".into(),
            id_property: Some("email".into()),
            properties: props(&[("lastname", "Known")]),
            ..Default::default()
        },
        UpdateInput {
            id: "new@batch.example".into(),
            id_property: Some("email".into()),
            properties: props(&[("lastname", "New")]),
            ..Default::default()
        },
    ];
    let upserted = client.batch_upsert("contacts", &upserts).await.unwrap();
    let created_flags: Vec<_> = upserted
        .iter()
        .map(|r| (r.property("email").map(str::to_owned), r.created))
        .collect();
    assert!(
        created_flags.contains(&(Some("new@batch.example".into()), Some(true))),
        "{created_flags:?}"
    );
    assert!(
        created_flags.contains(&(Some("c1@batch.example".into()), Some(false))),
        "{created_flags:?}"
    );

    ids.push("999999991".into());
    ids.push("999999992".into());
    match client
        .batch_read("contacts", &ids, &["email"])
        .await
        .unwrap_err()
    {
        HubSpotError::PartialBatch {
            succeeded,
            failed_ids,
            ..
        } => {
            assert_eq!(succeeded.len(), 150);
            assert!(
                failed_ids.contains(&"999999991".to_owned())
                    && failed_ids.contains(&"999999992".to_owned()),
                "{failed_ids:?}"
            );
        }
        other => panic!("{other:?}"),
    }

    client.batch_archive("contacts", &ids[..150]).await.unwrap();
    let left: Vec<CrmObject> = client
        .list_objects("contacts", ListOptions::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "only the upserted new contact remains");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_search_page_filters_and_reports_the_total() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    sim.seed(
        &portal,
        json!({"seed": 3, "contacts": 0, "companies": 50, "deals": 0, "owners": 0}),
    )
    .await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let request = SearchRequest {
        filter_groups: vec![FilterGroup {
            filters: vec![Filter::new("hs_object_id", Operator::Gt, "0")],
        }],
        limit: Some(20),
        ..SearchRequest::default()
    };
    let page = client.search("companies", &request).await.unwrap();
    assert_eq!(page.total, Some(50));
    assert_eq!(page.results.len(), 20);
    assert!(page.next_after().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_existing_property_or_group_returns_the_existing_one() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let group = PropertyGroup {
        name: "hubscore".into(),
        label: "hubscore".into(),
        ..Default::default()
    };
    let first = client
        .create_property_group("companies", &group)
        .await
        .unwrap();
    let again = client
        .create_property_group("companies", &group)
        .await
        .unwrap();
    assert_eq!(first.name, again.name);
    assert!(
        client
            .list_property_groups("companies")
            .await
            .unwrap()
            .iter()
            .any(|g| g.name == "hubscore")
    );

    let property = PropertyCreate {
        name: "customer_health_score".into(),
        label: "Customer health score".into(),
        property_type: "number".into(),
        field_type: "number".into(),
        group_name: "hubscore".into(),
        description: Some("0-100".into()),
        ..Default::default()
    };
    let created = client
        .create_property("companies", &property)
        .await
        .unwrap();
    let existing = client
        .create_property("companies", &property)
        .await
        .unwrap();
    assert_eq!(created.name, existing.name);
    assert_eq!(existing.property_type, "number");
    let all = client.list_properties("companies").await.unwrap();
    assert!(all.iter().any(|p| p.name == "customer_health_score"));
    let read_only = |name: &str| {
        all.iter()
            .find(|p| p.name == name)
            .and_then(|p| p.modification_metadata.as_ref())
            .map(|m| m.read_only_value)
    };
    // Mappings must know which properties hubscore may never write back.
    assert_eq!(read_only("hs_lastmodifieddate"), Some(true));
    assert_eq!(read_only("customer_health_score"), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn association_reads_follow_each_inputs_paging_to_the_end() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let company = client
        .create_object(
            "companies",
            &CreateInput {
                properties: props(&[("name", "Northwind")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let contacts: Vec<CreateInput> = (0..650)
        .map(|i| CreateInput {
            properties: props(&[("email", &format!("a{i}@assoc.example"))]),
            ..Default::default()
        })
        .collect();
    let contact_ids: Vec<String> = client
        .batch_create("contacts", &contacts)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    // No typed call creates associations (hubscore only reads them), so the raw API does.
    let inputs: Vec<_> = contact_ids
        .iter()
        .map(|id| json!({"from": {"id": company.id}, "to": {"id": id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 280}]}))
        .collect();
    let response = sim
        .http
        .request(
            Method::POST,
            format!(
                "{}/crm/v4/associations/companies/contacts/batch/create",
                sim.base
            ),
        )
        .bearer_auth(&portal.token)
        .json(&json!({ "inputs": inputs }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );

    let lonely = client
        .create_object(
            "companies",
            &CreateInput {
                properties: props(&[("name", "Alone")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let batch = client
        .batch_read_associations(
            "companies",
            "contacts",
            &[company.id.clone(), lonely.id.clone()],
        )
        .await
        .unwrap();
    assert_eq!(batch.results.len(), 1);
    let found: HashSet<_> = batch.results[0]
        .to
        .iter()
        .map(|a| a.to_object_id.clone())
        .collect();
    assert_eq!(found, contact_ids.iter().cloned().collect::<HashSet<_>>());
    assert_eq!(
        batch.errors.len(),
        1,
        "the company without contacts is reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn association_reads_of_more_than_1000_records_cover_every_input() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    sim.seed(
        &portal,
        json!({"seed": 13, "contacts": 1_250, "companies": 40, "deals": 0, "owners": 0}),
    )
    .await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    // What the v3 list embeds is what the v4 batch read must find.
    let options = ListOptions {
        associations: vec!["companies".into()],
        ..ListOptions::default()
    };
    let contacts: Vec<CrmObject> = client
        .list_objects("contacts", options)
        .try_collect()
        .await
        .unwrap();
    let expected: BTreeMap<String, HashSet<String>> = contacts
        .iter()
        .filter_map(|c| {
            let companies = c.associations.as_ref()?.get("companies")?;
            let ids: HashSet<String> = companies.results.iter().map(|a| a.id.clone()).collect();
            (!ids.is_empty()).then(|| (c.id.clone(), ids))
        })
        .collect();
    assert!(
        expected.len() > 100 && expected.len() < contacts.len(),
        "the seed links some contacts to companies: {}",
        expected.len()
    );
    let ids: Vec<String> = contacts.iter().map(|c| c.id.clone()).collect();

    let batch = client
        .batch_read_associations("contacts", "companies", &ids)
        .await
        .unwrap();
    let found: BTreeMap<String, HashSet<String>> = batch
        .results
        .iter()
        .map(|r| {
            let to = r.to.iter().map(|a| a.to_object_id.clone()).collect();
            (r.from_id.clone(), to)
        })
        .collect();
    assert_eq!(found, expected);
    let without: HashSet<String> = batch.errors.iter().flat_map(|e| e.failed_ids()).collect();
    let expected_without: HashSet<String> = ids
        .iter()
        .filter(|id| !expected.contains_key(*id))
        .cloned()
        .collect();
    assert_eq!(
        without, expected_without,
        "inputs without companies are named"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_pipelines_and_account_details_are_read() {
    let sim = Sim::start().await;
    let portal = sim
        .portal(json!({"tier": "professional", "time_zone": "Europe/Berlin"}))
        .await;
    sim.seed(
        &portal,
        json!({"seed": 1, "contacts": 0, "companies": 0, "deals": 0, "owners": 230}),
    )
    .await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let owners = client.list_owners().await.unwrap();
    assert_eq!(owners.len(), 230, "all pages of 100");
    let pipelines = client.deal_pipelines().await.unwrap();
    let stages: Vec<_> = pipelines.iter().flat_map(|p| &p.stages).collect();
    assert!(
        stages
            .iter()
            .any(|s| s.metadata.get("probability").is_some_and(Option::is_some)),
        "{pipelines:?}"
    );
    let account = client.account_details().await.unwrap();
    assert_eq!(account.portal_id, portal.portal_id);
    assert_eq!(account.time_zone.as_deref(), Some("Europe/Berlin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_scopes_are_reported_with_the_scopes_hubspot_named() {
    let sim = Sim::start().await;
    let portal = sim
        .portal(
            json!({"tier": "professional", "private_app_scopes": ["crm.objects.contacts.read"]}),
        )
        .await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let error = client
        .list_objects_page("deals", &ListOptions::default(), None)
        .await
        .unwrap_err();
    match error {
        HubSpotError::MissingScopes { required } => assert!(
            required.contains(&"crm.objects.deals.read".to_owned()),
            "{required:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_reported_as_transient_when_they_persist() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    sim.control(
        Method::POST,
        "/_sim/faults",
        Some(json!({"path_prefix": "/crm/v3/owners", "error_rate": 1.0, "error_status": 503})),
    )
    .await;
    let error = client.list_owners().await.unwrap_err();
    assert!(
        matches!(error, HubSpotError::Transient { status: 503, .. }),
        "{error:?}"
    );
    let stats = sim.stats(&portal).await;
    assert_eq!(
        stats["by_status"]["503"], 5,
        "one try and four retries: {stats}"
    );
    sim.control(Method::DELETE, "/_sim/faults", None).await;
    assert!(client.list_owners().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgeted_clients_work_the_same_and_keep_under_the_limit() {
    let sim = Sim::start().await;
    let budget = Budget::create().await;
    let portal = sim.portal(json!({"tier": "starter"})).await;
    sim.seed(
        &portal,
        json!({"seed": 9, "contacts": 1000, "companies": 0, "deals": 0, "owners": 0}),
    )
    .await;
    let client = sim.budgeted_client(&portal, Tier::Starter, &budget);
    let options = ListOptions {
        page_size: 10,
        ..ListOptions::default()
    };
    let contacts: Vec<CrmObject> = client
        .list_objects("contacts", options)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(contacts.len(), 1000);
    sim.assert_kept_under(&portal, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_creates_name_failed_inputs_by_their_trace_ids() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let inputs = vec![
        CreateInput {
            properties: props(&[("name", "Good Co")]),
            object_write_trace_id: Some("t-good".into()),
            ..Default::default()
        },
        CreateInput {
            properties: props(&[("name", "Bad Co"), ("no_such_property_xyz", "1")]),
            object_write_trace_id: Some("t-bad".into()),
            ..Default::default()
        },
    ];
    match client.batch_create("companies", &inputs).await.unwrap_err() {
        HubSpotError::PartialBatch {
            succeeded,
            failed_ids,
            errors,
            ..
        } => {
            assert_eq!(succeeded.len(), 1);
            assert_eq!(succeeded[0].property("name"), Some("Good Co"));
            assert_eq!(failed_ids, vec!["t-bad".to_owned()], "{errors:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_bodies_are_retried_then_reported_as_decode_errors() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    sim.control(
        Method::POST,
        "/_sim/faults",
        Some(json!({"path_prefix": "/crm/v3/pipelines", "truncate_body": true})),
    )
    .await;
    let error = client.deal_pipelines().await.unwrap_err();
    assert!(
        matches!(
            error,
            HubSpotError::Decode {
                endpoint: "pipelines.list",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        sim.stats(&portal).await["by_status"]["200"],
        5,
        "one try and four retries"
    );
}
